//! Identity and access for Wallex: who calls (a [`Principal`] from a verified
//! bearer JWT), and what they may do ([`authorize`], [`visibility`]).
//!
//! No HTTP and no storage here: command-api extracts the token, asks the
//! [`Verifier`], looks up a wallet's owner and asks the rules; the errors
//! ([`AuthError`] 401, [`Refusal`] 403 or 404) are mapped to HTTP there.

mod access;
mod key_fitness;
mod keys;
mod principal;
mod token;
mod verified;
mod verify;

/// The signing algorithms, as `jsonwebtoken` names them.
pub use jsonwebtoken::Algorithm;

pub use access::{authorize, visibility, Action, Refusal, Visibility};
pub use key_fitness::RSA_MODULUS_BITS;
pub use keys::{
    KeyError, KeyFile, KeySet, VerifyingKey, KEY_FILE_BYTES_MAX, KEY_FILE_CHECK_INTERVAL_MS,
    PUBLIC_KEY_ALGORITHMS, SECRET_BYTES_MIN, SECRET_DISTINCT_BYTES_MIN,
};
pub use principal::{Principal, Scope};
pub use token::{mint_hs256, unix_now_seconds, Claims, MintError};
#[cfg(any(test, feature = "testing"))]
pub use token::{mint_with_pem, unsigned};
pub use verified::VERIFIED_TOKENS_BYTES_MAX;
pub use verify::{
    AuthError, Verifier, LEEWAY_SECONDS, SUBJECT_LENGTH_MAX, TOKEN_BYTES_MAX,
    TOKEN_LIFETIME_SECONDS_MAX,
};
