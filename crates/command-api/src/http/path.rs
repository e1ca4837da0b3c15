//! Path segments: read by one set of rules on every route. A segment that is
//! not a valid id is a 400 naming the parameter, as a body field would be.

use wallet_domain::{HoldId, ValidationError, WalletId, IDENTIFIER_LENGTH_MAX};

use super::error::ApiError;

/// The wallet id of a path (`{walletId}`, `{fromWalletId}`): 400 naming it
/// when it is not 1 to 64 characters of `A-Z a-z 0-9 - _`.
pub fn wallet_id(raw: &str) -> Result<WalletId, ApiError> {
    WalletId::parse(raw).map_err(|error: ValidationError| ApiError::BadRequest(error.to_string()))
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
