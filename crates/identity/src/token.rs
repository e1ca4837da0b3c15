//! A token's claims as Wallex reads and writes them, and minting HS256 tokens
//! (`command-api token`, tests, the load generator).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The claims Wallex uses. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal; for the `wallets` scope, the `ownerId` of its wallets.
    pub sub: String,
    /// Space-separated scopes: `wallets`, `deposits`, `admin`.
    #[serde(default)]
    pub scope: String,
    /// Expiry (required).
    pub exp: u64,
    /// Not valid before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

impl Claims {
    /// Claims for `sub` with `scope`, valid from now for `ttl`.
    pub fn new(sub: &str, scope: &str, ttl: Duration) -> Self {
        let now = unix_now_seconds();
        Self {
            sub: sub.to_owned(),
            scope: scope.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            nbf: None,
            iat: Some(now),
            iss: None,
            aud: None,
        }
    }
}

/// A token could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token: {0}")]
pub struct MintError(#[from] jsonwebtoken::errors::Error);

/// An HS256 token of `claims`, signed with `secret` (as `AUTH_JWT_SECRET` verifies).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, MintError> {
    let key = EncodingKey::from_secret(secret);
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &key,
    )?)
}

#[cfg(any(test, feature = "testing"))]
/// A token of `claims` signed with a PEM private key (PKCS#8) for `algorithm`
/// (RS256, ES256 or EdDSA): for tests of key files.
pub fn mint_with_pem(
    algorithm: Algorithm,
    private_pem: &[u8],
    key_id: Option<&str>,
    claims: &Claims,
) -> Result<String, MintError> {
    let key = match algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem)?,
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem)?,
        _ => EncodingKey::from_rsa_pem(private_pem)?,
    };
    let mut header = Header::new(algorithm);
    header.kid = key_id.map(str::to_owned);
    Ok(jsonwebtoken::encode(&header, claims, &key)?)
}

#[cfg(any(test, feature = "testing"))]
/// A token with `alg: none` and no signature, which every verifier must refuse: for tests.
pub fn unsigned(claims: &Claims) -> Result<String, serde_json::Error> {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = encode(&serde_json::to_vec(claims)?);
    Ok(format!("{header}.{payload}."))
}
