//! Request bodies: read with a size limit, parsed as a JSON object, and each
//! field checked by hand so every mistake gets a message naming the field.
//! Numbers are read from their exact digits, never through a float
//! ([`super::number`]); a key repeated at any depth is refused rather than
//! letting the last one win, and so is a key the parser reserves
//! ([`super::json_keys`]).

use std::io::Read;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use wallet_domain::{AMOUNT_MAX, MONEY_SCALE};

use super::error::ApiError;
use super::json_keys::{KeyCheck, KeyProblem, RESERVED_KEY_PREFIX};
use super::malformed::{not_json_message, shown};
use super::number::{parse_exact, NumberError};

/// Largest request body accepted.
pub const BODY_SIZE_MAX: usize = 64 * 1024;

/// Seconds a request's whole body may take to arrive once it is read, unless
/// `BODY_READ_TIMEOUT_SECONDS` says otherwise: a [`BODY_SIZE_MAX`] body
/// at a few KiB per second arrives well within it.
pub const BODY_READ_TIMEOUT_SECONDS_DEFAULT: u64 = 10;
/// Longest `BODY_READ_TIMEOUT_SECONDS` accepted, in seconds.
pub const BODY_READ_TIMEOUT_SECONDS_MAX: u64 = 300;

/// How long a request's head (request line and headers) may take to arrive,
/// in milliseconds, from the first byte of the request (actix-web's
/// `client_request_timeout`, set explicitly at its default). Past it the
/// connection is answered 408, with no body (the HTTP layer answers before
/// any handler), and closed.
pub const HEAD_READ_TIMEOUT_MS: u64 = 5_000;

/// How long a request's whole body may take to arrive, from when the handler
/// starts reading it, right after the head and any owner lookup (the
/// application's data, from `BODY_READ_TIMEOUT_SECONDS`). actix-web's own
/// `client_request_timeout` covers the head only: without this, a client
/// that declares a `Content-Length` and sends less would hold its connection
/// and the handler's read open for ever. Past it the answer is 408 and the
/// connection is closed.
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub Duration);

impl Default for BodyReadTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(BODY_READ_TIMEOUT_SECONDS_DEFAULT))
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!("Request body exceeds {BODY_SIZE_MAX} bytes"))
}

/// The names a `charset` parameter may give UTF-8: the labels of UTF-8 in
/// the WHATWG Encoding Standard (section 4.2, "Names and labels"), which
/// browsers and most HTTP clients follow.
const UTF8_LABELS: [&str; 6] = [
    "utf-8",
    "utf8",
    "unicode-1-1-utf-8",
    "unicode11utf8",
    "unicode20utf8",
    "x-unicode20utf8",
];

/// A `Content-Type` value read by RFC 9110 section 8.3.1's grammar, quoted
/// values included, as the `mime` crate reads it (h153 F2: split by hand on
/// `;`, a `;` inside quotes cut the value, and an empty name, an unclosed
/// quote or a bare `=` passed). `mime` takes no white space around a
/// parameter's `;` or `=`, which RFC 9110 allows before and after the `;`
/// and the seed's parser (the `content-type` package) also around the `=`:
/// a value without quotes, where no `;` or `=` can be inside a value, is
/// read again with that space taken out.
fn media_type(text: &str) -> Option<actix_web::mime::Mime> {
    text.parse().ok().or_else(|| {
        if text.contains('"') {
            return None;
        }
        let without_spaces: Vec<String> = text
            .split(';')
            .map(|part| part.split('=').map(str::trim).collect::<Vec<_>>().join("="))
            .collect();
        without_spaces.join(";").parse().ok()
    })
}

/// Refuses a body declared as anything but JSON in UTF-8 (415). No
/// `Content-Type` is taken as JSON; any other type is refused, so a web page
/// cannot send a command as a form or as text (the kinds of request a browser
/// sends to another site without asking it first).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut values = headers.get_all(CONTENT_TYPE);
    let Some(value) = values.next() else {
        return Ok(());
    };
    // Which one would the body be read as? Ambiguous, so refused (400), as
    // every header the API reads is when sent more than once.
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "Content-Type must be sent once, not several times".to_owned(),
        ));
    }
    let refused = || {
        ApiError::UnsupportedMediaType("Content-Type must be application/json (UTF-8)".to_owned())
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(media_type)
        .ok_or_else(refused)?;
    if media_type.essence_str() != "application/json" {
        return Err(refused());
    }
    // Parameters other than `charset` mean nothing to JSON (RFC 8259
    // section 11 defines none) and are passed over, as the seed's parser did
    // (h152 F6: `application/json; foo=bar` was refused); every `charset`
    // given names UTF-8.
    let utf8 = |label: &str| {
        UTF8_LABELS
            .iter()
            .any(|known| label.eq_ignore_ascii_case(known))
    };
    if media_type
        .params()
        .filter(|(name, _)| *name == actix_web::mime::CHARSET)
        .any(|(_, label)| !utf8(label.as_str()))
    {
        return Err(refused());
    }
    Ok(())
}

/// The content coding a body is sent in (`Content-Encoding`, RFC 9110
/// section 8.4): the ones the seed's parser (body-parser) decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentCoding {
    Identity,
    /// RFC 1952 (`gzip`, or its old name `x-gzip`).
    Gzip,
    /// The zlib format of RFC 1950, which HTTP's `deflate` names.
    Deflate,
}

/// The body's coding; a coding the server cannot decode, or more than one,
/// is 415, as RFC 9110 section 15.5.16 says for an unsupported coding, not a
/// JSON error about compressed bytes.
fn content_coding(headers: &HeaderMap) -> Result<ContentCoding, ApiError> {
    let mut codings = headers
        .get_all(CONTENT_ENCODING)
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    let coding = match codings.next() {
        None => ContentCoding::Identity,
        Some(coding)
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") =>
        {
            ContentCoding::Gzip
        }
        Some(coding) if coding.eq_ignore_ascii_case("deflate") => ContentCoding::Deflate,
        Some(_) => return Err(unsupported_coding()),
    };
    match codings.next() {
        None => Ok(coding),
        Some(_) => Err(unsupported_coding()),
    }
}

fn unsupported_coding() -> ApiError {
    ApiError::UnsupportedMediaType(
        "Content-Encoding must be one of identity, gzip, deflate (one coding)".to_owned(),
    )
}

/// `body` decoded from `coding`, at most [`BODY_SIZE_MAX`] bytes once decoded
/// (413 beyond: the limit holds for what is read, whatever it was sent as).
/// Every gzip member is read, one after the other (RFC 1952 section 2.2), and
/// a byte after the last member or after the zlib stream is refused: the body
/// read is the one any other reader of the coding would read.
fn decoded(body: Vec<u8>, coding: ContentCoding) -> Result<Vec<u8>, ApiError> {
    let mut plain = Vec::new();
    let left = match coding {
        ContentCoding::Identity => return Ok(body),
        ContentCoding::Gzip => {
            if !body.is_empty() && !body.starts_with(GZIP_MAGIC) {
                return Err(not_decodable(
                    "it is not gzip data (a gzip member begins with the bytes 1F 8B)".to_owned(),
                ));
            }
            let mut rest = body.as_slice();
            while rest.starts_with(GZIP_MAGIC) {
                let mut member = flate2::bufread::GzDecoder::new(rest);
                read_at_most(&mut member, &mut plain)?;
                let after = member.into_inner();
                if after.len() == rest.len() {
                    break;
                }
                rest = after;
            }
            rest.len()
        }
        ContentCoding::Deflate => {
            let mut decoder = flate2::bufread::ZlibDecoder::new(body.as_slice());
            read_at_most(&mut decoder, &mut plain)?;
            decoder.into_inner().len()
        }
    };
    if left > 0 {
        let bytes = if left == 1 {
            "byte follows"
        } else {
            "bytes follow"
        };
        return Err(not_decodable(format!(
            "{left} {bytes} the end of the coded data"
        )));
    }
    Ok(plain)
}

/// The first bytes of every gzip member (RFC 1952 section 2.3.1).
pub(super) const GZIP_MAGIC: &[u8] = b"\x1F\x8B";

/// Reads `decoder` after what `plain` holds, refusing more than
/// [`BODY_SIZE_MAX`] bytes in all.
fn read_at_most(decoder: &mut impl Read, plain: &mut Vec<u8>) -> Result<(), ApiError> {
    let room = (BODY_SIZE_MAX + 1).saturating_sub(plain.len());
    decoder
        .take(room as u64)
        .read_to_end(plain)
        .map_err(|error| not_decodable(error.to_string()))?;
    if plain.len() > BODY_SIZE_MAX {
        return Err(too_large());
    }
    Ok(())
}

fn not_decodable(reason: String) -> ApiError {
    ApiError::BadRequest(format!(
        "Request body could not be decoded from its Content-Encoding: {reason}"
    ))
}

/// A body the HTTP layer could not read, said in the client's terms
/// (actix's own text for an incomplete body ends in a Rust `None`).
fn unreadable(error: actix_web::error::PayloadError) -> ApiError {
    use actix_web::error::PayloadError;
    let reason = match error {
        PayloadError::Incomplete(_) => {
            "it ended before its Content-Length, or its chunked framing is invalid \
             (each chunk a hexadecimal size line, that many bytes and CRLF, then a 0 chunk)"
                .to_owned()
        }
        PayloadError::EncodingCorrupted => "its content coding is corrupt".to_owned(),
        PayloadError::Overflow => return too_large(),
        other => other.to_string(),
    };
    ApiError::BadRequest(format!("Request body could not be read: {reason}"))
}

/// The UTF-8 byte order mark, which some clients write before a JSON text.
pub(super) const UTF8_BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Reads the whole body, refusing it as soon as it passes [`BODY_SIZE_MAX`]
/// (as sent or once decoded), a `Content-Type` other than JSON, a content
/// coding other than gzip or deflate, and a body that has not all arrived
/// within the application's [`BodyReadTimeout`] (408). A UTF-8 byte order
/// mark before the JSON text is dropped: RFC 8259 section 8.1 lets a parser
/// ignore one, and the seed's parser (body-parser) did.
pub async fn read_body(request: &HttpRequest, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let headers = request.headers();
    check_content_type(headers)?;
    let coding = content_coding(headers)?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_SIZE_MAX) {
        return Err(too_large());
    }
    let BodyReadTimeout(limit) = request
        .app_data::<BodyReadTimeout>()
        .copied()
        .unwrap_or_default();
    let mut body = tokio::time::timeout(limit, read_chunks(payload, declared.unwrap_or(0)))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "Request body did not arrive within {} s",
                limit.as_secs()
            ))
        })??;
    body = decoded(body, coding)?;
    if body.starts_with(UTF8_BYTE_ORDER_MARK) {
        body.drain(..UTF8_BYTE_ORDER_MARK.len());
    }
    Ok(body)
}

/// The body's chunks as they come, at most [`BODY_SIZE_MAX`] bytes in all.
async fn read_chunks(mut payload: web::Payload, declared: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(declared);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(unreadable)?;
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
    /// Parses the body and refuses a repeated key, a reserved key (see
    /// [`super::json_keys`]) and any field not in `allowed`.
    pub fn parse(body: &[u8], allowed: &[&str]) -> Result<Self, ApiError> {
        let not_json = |error| ApiError::BadRequest(not_json_message(body, &error));
        // The keys first: the parser reads a value under a reserved key as a
        // number or as JSON text, and fails on one that is neither.
        let KeyCheck(problem) = serde_json::from_slice(body).map_err(not_json)?;
        match problem {
            Some(KeyProblem::Repeated(key)) => {
                return Err(ApiError::BadRequest(format!(
                    "property {} is repeated: each key may appear once in an object",
                    shown(&key)
                )))
            }
            Some(KeyProblem::Reserved(key)) => {
                return Err(ApiError::BadRequest(format!(
                    "property {} should not exist: keys starting with {RESERVED_KEY_PREFIX} are reserved",
                    shown(&key)
                )))
            }
            None => {}
        }
        let value: Value = serde_json::from_slice(body).map_err(not_json)?;
        let Value::Object(fields) = value else {
            return Err(ApiError::BadRequest(
                "Request body must be a JSON object".into(),
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "property {} should not exist",
                shown(unknown)
            )));
        }
        Ok(Self { fields })
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

/// The number's own digits as a decimal, in any notation, never rounded. A
/// number that cannot be read exactly is refused with the rules of money
/// (every decimal a body carries is an amount, a balance or a limit), which it
/// breaks whatever its digits: it has more decimal places or is larger than
/// money may be.
fn parse_decimal(field: &str, digits: &str) -> Result<Decimal, ApiError> {
    parse_exact(digits).map_err(|error| {
        let message = match error {
            NumberError::Malformed => format!("{field} {error}"),
            NumberError::TooLarge | NumberError::TooPrecise => format!(
                "{field} {error}; money has at most {MONEY_SCALE} decimal places and is at most \
                 {AMOUNT_MAX}"
            ),
        };
        ApiError::BadRequest(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_read_in_one_coding_of_gzip_deflate_or_none() {
        let with = |codings: &[&str]| {
            let mut headers = HeaderMap::new();
            for coding in codings {
                headers.append(
                    CONTENT_ENCODING,
                    actix_web::http::header::HeaderValue::from_str(coding).expect("header"),
                );
            }
            content_coding(&headers).ok()
        };
        assert_eq!(with(&[]), Some(ContentCoding::Identity));
        assert_eq!(with(&["Identity, identity"]), Some(ContentCoding::Identity));
        assert_eq!(with(&["identity", "GZIP"]), Some(ContentCoding::Gzip));
        assert_eq!(with(&["x-gzip"]), Some(ContentCoding::Gzip));
        assert_eq!(with(&["deflate, identity"]), Some(ContentCoding::Deflate));
        for refused in [
            &["br"][..],
            &["identity", "br"],
            &["gzip", "gzip"],
            &["gzip, deflate"],
            &["compress"],
        ] {
            assert_eq!(with(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn only_json_in_utf8_is_a_body() {
        let with = |content_type: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                actix_web::http::header::HeaderValue::from_str(content_type).expect("header"),
            );
            check_content_type(&headers).is_ok()
        };
        assert!(check_content_type(&HeaderMap::new()).is_ok());
        for order in [
            ["application/json", "text/plain"],
            ["text/plain", "application/json"],
        ] {
            let mut headers = HeaderMap::new();
            for content_type in order {
                headers.append(
                    CONTENT_TYPE,
                    actix_web::http::header::HeaderValue::from_static(content_type),
                );
            }
            assert!(
                matches!(check_content_type(&headers), Err(ApiError::BadRequest(_))),
                "{order:?}: sent twice is refused in either order"
            );
        }
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json; charset=utf8",
            "application/json; charset=UNICODE-1-1-UTF-8",
            "application/json; foo=bar",
            "application/json; foo=bar; charset=utf-8",
            "application/json; foo=\"a;b\"",
            "application/json; foo=\"a;charset=latin1\"",
            "application/json ; charset=utf-8",
            "application/json;charset = utf-8",
        ] {
            assert!(with(accepted), "{accepted}");
        }
        for refused in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "application/json; charset=utf_8",
            "application/json; charset=latin1",
            "application/json; foo=bar; charset=latin1",
            "application/json; foo",
            "application/json; =bar",
            "application/json; =",
            "application/json; foo=bar=baz",
            "application/json; charset=\"utf-8",
            "application/json; charset=\"\"utf-8\"\"",
            "application/json; charset *=latin1''x",
            "application/json; charset=utf-8; charset=latin1",
            "application/json; charset=latin1; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(!with(refused), "{refused}");
        }
    }

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
    fn exponent_forms_keep_every_digit() {
        let amount = object(r#"{"amount": 0.000000000000000000000000000149e28}"#)
            .required_decimal("amount")
            .expect("decimal");
        assert_eq!(amount, Decimal::new(149, 2));
    }

    #[test]
    fn a_repeated_or_reserved_key_is_refused_at_any_depth() {
        let refusal = |text: &str| {
            JsonObject::parse(text.as_bytes(), &["amount", "x"])
                .err()
                .expect("refused")
                .to_string()
        };
        assert_eq!(
            refusal(r#"{"x": [{"y": 1}, {"amount": 1, "amount": 2}]}"#),
            "property amount is repeated: each key may appear once in an object"
        );
        assert_eq!(
            refusal(r#"{"$serde_json::private::RawValue": "{\"amount\":1,\"amount\":900}"}"#),
            "property $serde_json::private::RawValue should not exist: keys starting with \
             $serde_json::private:: are reserved"
        );
        assert_eq!(
            refusal(r#"{"amount": {"$serde_json::private::Number": "2.50"}}"#),
            "property $serde_json::private::Number should not exist: keys starting with \
             $serde_json::private:: are reserved"
        );
        assert_eq!(
            refusal(r#"{"amount": 1, "x": {"$serde_json::private::Number": [1]}}"#),
            "property $serde_json::private::Number should not exist: keys starting with \
             $serde_json::private:: are reserved"
        );
        assert!(JsonObject::parse(br#"{"x": [{"amount": 1}, {"amount": 2}]}"#, &["x"]).is_ok());
    }

    #[test]
    fn absurd_numbers_are_a_client_error() {
        let error = object(r#"{"amount": 1e400}"#)
            .required_decimal("amount")
            .expect_err("range");
        assert!(error.to_string().starts_with("amount "), "{error}");
        assert!(error.to_string().contains("too large"), "{error}");
        let digits = format!(r#"{{"amount": 0.{}}}"#, "1".repeat(40));
        let error = object(&digits)
            .required_decimal("amount")
            .expect_err("digits");
        // What money accepts is said, whichever way the number broke.
        for broken in [r#"{"amount": 1e400}"#, &digits, r#"{"amount": 1e-40}"#] {
            let error = object(broken)
                .required_decimal("amount")
                .expect_err("unreadable");
            assert!(
                error.to_string().ends_with(
                    "money has at most 2 decimal places and is at most 1000000000000.00"
                ),
                "{broken}: {error}"
            );
        }
        assert!(error.to_string().starts_with("amount "), "{error}");
    }
}
