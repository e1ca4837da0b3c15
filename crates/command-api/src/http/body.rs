//! Request bodies: read with a size limit, parsed as a JSON object, and each
//! field checked by hand so every mistake gets a message naming the field.
//! Numbers are read from their exact digits, never through a float.

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::web;
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest request body accepted.
pub const BODY_SIZE_MAX: usize = 64 * 1024;

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("Request body exceeds {BODY_SIZE_MAX} bytes"))
}

/// Reads the whole body, refusing it as soon as it passes [`BODY_SIZE_MAX`].
pub async fn read_body(
    headers: &HeaderMap,
    mut payload: web::Payload,
) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_SIZE_MAX) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            ApiError::BadRequest(format!("Request body could not be read: {error}"))
        })?;
        if body.len() + chunk.len() > BODY_SIZE_MAX {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request body that is a JSON object.
pub struct JsonObject {
    fields: Map<String, Value>,
}

impl JsonObject {
    /// Parses the body and refuses any field not in `allowed`.
    pub fn parse(body: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|error| {
            ApiError::BadRequest(format!("Request body is not valid JSON: {error}"))
        })?;
        let Value::Object(fields) = value else {
            return Err(ApiError::BadRequest(
                "Request body must be a JSON object".into(),
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "property {unknown} should not exist"
            )));
        }
        Ok(Self { fields })
    }

    /// The object in a canonical form (keys sorted), to fingerprint a request.
    pub fn canonical(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|value| !value.is_null())
    }

    pub fn required_string(&self, field: &str) -> Result<&str, ApiError> {
        self.optional_string(field)?
            .ok_or_else(|| ApiError::BadRequest(format!("{field} is required")))
    }

    pub fn optional_string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::BadRequest(format!("{field} must be a string"))),
        }
    }

    pub fn required_decimal(&self, field: &str) -> Result<Decimal, ApiError> {
        self.optional_decimal(field)?
            .ok_or_else(|| ApiError::BadRequest(format!("{field} is required")))
    }

    pub fn optional_decimal(&self, field: &str) -> Result<Option<Decimal>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Number(number)) => parse_decimal(field, &number.to_string()).map(Some),
            Some(_) => Err(ApiError::BadRequest(format!("{field} must be a number"))),
        }
    }
}

/// The number's own digits as a decimal; exponent forms such as `1e2` too.
fn parse_decimal(field: &str, digits: &str) -> Result<Decimal, ApiError> {
    let parsed = if digits.contains(['e', 'E']) {
        Decimal::from_scientific(digits)
    } else {
        Decimal::from_str_exact(digits)
    };
    parsed.map_err(|_| {
        ApiError::BadRequest(format!("{field} is out of range or has too many digits"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> JsonObject {
        JsonObject::parse(text.as_bytes(), &["amount", "description"]).expect("valid object")
    }

    #[test]
    fn decimals_keep_their_exact_digits() {
        let amount = object(r#"{"amount": 0.1}"#)
            .required_decimal("amount")
            .expect("decimal");
        assert_eq!(amount.to_string(), "0.1");
        let big = object(r#"{"amount": 1e2}"#)
            .required_decimal("amount")
            .expect("decimal");
        assert_eq!(big, Decimal::from(100));
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_named() {
        let error = object(r#"{"amount": "10"}"#)
            .required_decimal("amount")
            .expect_err("string");
        assert_eq!(error.to_string(), "amount must be a number");
        let unknown = JsonObject::parse(br#"{"amount": 1, "x": 2}"#, &["amount"])
            .err()
            .expect("unknown");
        assert_eq!(unknown.to_string(), "property x should not exist");
        assert!(JsonObject::parse(b"[1]", &[]).is_err());
        assert!(JsonObject::parse(b"{", &[]).is_err());
    }

    #[test]
    fn absurd_numbers_are_a_client_error() {
        let error = object(r#"{"amount": 1e400}"#)
            .required_decimal("amount")
            .expect_err("range");
        assert!(error.to_string().contains("out of range"));
        let digits = format!(r#"{{"amount": 0.{}}}"#, "1".repeat(40));
        assert!(object(&digits).required_decimal("amount").is_err());
    }
}
