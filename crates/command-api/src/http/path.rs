//! Path segments: read by one set of rules on every route. A segment that is
//! not a valid id is a 400 naming the parameter, as a body field would be.
//!
//! Every handler takes its path parameter as a [`Parameter`], decoded here
//! from the request's raw URI: the router's own decoding replaces bytes that
//! are not UTF-8 with U+FFFD, so `/holds/%FE/capture` would otherwise be read
//! as another id instead of refused.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use wallet_domain::{HoldId, ValidationError, WalletId, IDENTIFIER_LENGTH_MAX};

use super::error::ApiError;

/// The text of a route's one path parameter (`{walletId}`, `{holdId}`,
/// `{referenceId}`...), percent-decoded from the raw URI: 400 naming the
/// parameter when its bytes are not UTF-8. Derefs to the decoded text.
#[derive(Debug)]
pub struct Parameter(String);

impl Deref for Parameter {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromRequest for Parameter {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parameter(request).map(Parameter))
    }
}

/// The route's parameter segment of the raw path, decoded strictly.
fn parameter(request: &HttpRequest) -> Result<String, ApiError> {
    let pattern = request.match_pattern().ok_or_else(|| {
        ApiError::Internal("a path parameter was asked of a route without a pattern".into())
    })?;
    let found = pattern
        .split('/')
        .zip(request.uri().path().split('/'))
        .find_map(|(declared, raw)| {
            let name = declared.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), raw))
        });
    let Some((name, raw)) = found else {
        return Err(ApiError::Internal(format!(
            "the route {pattern} has no path parameter"
        )));
    };
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    String::from_utf8(bytes).map_err(|_| {
        ApiError::BadRequest(format!(
            "{name} must be UTF-8 text: its percent-encoded bytes are not"
        ))
    })
}

/// The wallet id of a path (`{walletId}`): 400 naming it when it is not 1
/// to 64 characters of `A-Z a-z 0-9 - _`.
pub fn wallet_id(raw: &str) -> Result<WalletId, ApiError> {
    wallet_id_named("walletId", raw)
}

/// As [`wallet_id`], for a path parameter of another name (`{fromWalletId}`
/// of a transfer, the seed's name for it), which the 400 names.
pub fn wallet_id_named(name: &'static str, raw: &str) -> Result<WalletId, ApiError> {
    WalletId::parse_field(name, raw)
        .map_err(|error: ValidationError| ApiError::BadRequest(error.to_string()))
}

/// The hold id of a path (`{holdId}`): 400 naming it when it is empty,
/// longer than 128 characters or holds a control character.
pub fn hold_id(raw: &str) -> Result<HoldId, ApiError> {
    HoldId::parse(raw).map_err(ApiError::from)
}

/// The reference id of a path (`{referenceId}`: an operation or a transfer):
/// 400 naming it when it is empty, longer than an id or holds a control character.
pub fn reference_id(raw: &str) -> Result<&str, ApiError> {
    let fits = !raw.is_empty() && raw.chars().count() <= REFERENCE_LENGTH_MAX;
    if fits && !raw.chars().any(char::is_control) {
        Ok(raw)
    } else {
        Err(ApiError::BadRequest(format!(
            "referenceId must be 1 to {REFERENCE_LENGTH_MAX} characters, none a control character"
        )))
    }
}

/// Longest reference id: an id, or a transfer's UUID with a prefix.
pub const REFERENCE_LENGTH_MAX: usize = IDENTIFIER_LENGTH_MAX * 2;
