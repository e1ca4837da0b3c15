//! Bearer token verification: which key, which algorithm, which claims.
//!
//! Checks, in order: the token's form, `alg` (never `none`, and only the
//! algorithm of a configured key), no `crit` header (RFC 7515 §4.1.11: a
//! token naming extensions its reader must understand is refused, as this
//! reader understands none), the signature, then `iss` and `aud` (when
//! configured), `exp` (required, and at most [`TOKEN_LIFETIME_SECONDS_MAX`]
//! ahead) and `nbf` with [`LEEWAY_SECONDS`] of clock skew, and a usable
//! `sub`. `exp` and `nbf` are NumericDates (RFC 7519 §2): seconds since
//! 1970, a fraction allowed. Each failure is its own
//! [`AuthError`], whose text says which check failed and is safe to show the
//! caller.

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use crate::keys::{KeyFile, KeySet, VerifyingKey};
use crate::principal::Principal;
use crate::token::unix_now_seconds;
use crate::verified::VerifiedTokens;

/// What a verified token gives the principal; the time, issuer and audience
/// claims are checked by `jsonwebtoken` from the same payload.
#[derive(serde::Deserialize)]
struct Granted {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    scope: String,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iss: Option<serde_json::Value>,
}

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// How far ahead a token's `exp` may be, in seconds (one year): a token that
/// leaks can be used until it expires, so one that practically never does
/// (`exp` 1e300) is refused rather than trusted for ever. `command-api
/// token` mints no longer one.
pub const TOKEN_LIFETIME_SECONDS_MAX: u64 = 365 * 24 * 3600;
/// Longest token read; a longer one is refused unread.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Longest `sub` accepted.
pub const SUBJECT_LENGTH_MAX: usize = 255;

/// Why a request is not authenticated (401). The text names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing bearer token: send Authorization: Bearer <JWT>")]
    Missing,
    #[error("Malformed bearer token: {0}")]
    Malformed(&'static str),
    #[error("Token algorithm none is refused: tokens must be signed")]
    AlgorithmNone,
    #[error("Token algorithm {token} is not accepted here (accepted: {accepted})")]
    WrongAlgorithm { token: String, accepted: String },
    #[error("Token key id {0:?} is not among the configured keys")]
    UnknownKeyId(String),
    #[error("Token key id {key_id:?} names a key for {key_algorithm}, but the token is signed with {token}")]
    KeyAlgorithmMismatch {
        key_id: String,
        key_algorithm: String,
        token: String,
    },
    #[error("Token signature is invalid")]
    BadSignature,
    #[error("Token expired")]
    Expired,
    #[error(
        "Token expires too far ahead: exp may be at most {} days from now; ask its issuer for a shorter-lived one",
        TOKEN_LIFETIME_SECONDS_MAX / 86_400
    )]
    LifetimeTooLong,
    #[error("Token is not valid yet (nbf)")]
    NotYetValid,
    #[error("Token issuer (iss) is not the one expected")]
    WrongIssuer,
    #[error("Token issuer (iss) must be one string (RFC 7519 §4.1.1)")]
    IssuerNotAString,
    #[error("Token audience (aud) is not the one expected")]
    WrongAudience,
    #[error("Token audience (aud) must be a string or an array of strings (RFC 7519 §4.1.3)")]
    AudienceNotStrings,
    /// The token names an audience and this server is configured with none
    /// (no `AUTH_AUDIENCE`): it cannot identify itself with any value of
    /// `aud`, so RFC 7519 §4.1.3 says the token MUST be rejected.
    #[error("Token audience (aud) is present, but this server expects none: a token that names an audience is for that service only (RFC 7519 §4.1.3); set AUTH_AUDIENCE to the audience its tokens name")]
    AudienceNotExpected,
    #[error("Token lacks the {0} claim")]
    MissingClaim(String),
    #[error("Token subject (sub) must be 1 to {SUBJECT_LENGTH_MAX} characters with a visible one (a letter, digit, punctuation or symbol), none a control, format (invisible) or line or paragraph separator character, and no white space at either end")]
    BadSubject,
}

/// What verifies tokens: the configured keys and the expected issuer and
/// audience, and the tokens it verified already ([`crate::verified`]).
pub struct Verifier {
    secret: Option<Arc<KeySet>>,
    key_file: Option<KeyFile>,
    issuer: Option<String>,
    audience: Option<String>,
    verified: VerifiedTokens,
}

impl Verifier {
    /// A verifier of tokens signed by the HS256 `secret` and/or a key of
    /// `key_file`, checking `iss` and `aud` when given.
    pub fn new(
        secret: Option<KeySet>,
        key_file: Option<KeyFile>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            secret: secret.map(Arc::new),
            key_file,
            issuer,
            audience,
            verified: VerifiedTokens::default(),
        }
    }

    /// The key file, when tokens are verified with one.
    pub fn key_file(&self) -> Option<&KeyFile> {
        self.key_file.as_ref()
    }

    /// Every configured key: the secret's and `file_keys` (the key file's now).
    fn keys(&self, file_keys: Option<&Arc<KeySet>>) -> KeySet {
        match (&self.secret, file_keys) {
            (Some(secret), Some(file)) => secret.chain(file),
            (Some(secret), None) => KeySet::clone(secret),
            (None, Some(file)) => KeySet::clone(file),
            (None, None) => KeySet::default(),
        }
    }

    /// The principal of `token` (the text after `Bearer `), or why not.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed("longer than 8 KiB"));
        }
        let file_keys = self.key_file.as_ref().map(KeyFile::current);
        let now = unix_now_seconds();
        if let Some(known) = self.verified.recall(token, file_keys.as_ref(), now) {
            return known;
        }
        let keys = self.keys(file_keys.as_ref());
        let algorithm = header_algorithm(token, &keys)?;
        let key_id = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Malformed("its header cannot be read"))?
            .kid;
        let candidates = candidates(&keys, algorithm, key_id.as_deref())?;
        let mut failure = AuthError::BadSignature;
        for candidate in candidates {
            match jsonwebtoken::decode::<Granted>(
                token,
                &candidate.key,
                &self.validation(algorithm),
            ) {
                // An `aud` of another type than a string or strings is
                // passed over by `jsonwebtoken` when no audience is expected.
                Ok(_) if self.audience.is_none() && payload_holds(token, "aud") => {
                    return Err(AuthError::AudienceNotStrings)
                }
                Ok(data) => {
                    let (principal, expires_at) = self.principal(data.claims, now)?;
                    self.verified
                        .remember(token, &principal, expires_at, file_keys.as_ref());
                    return Ok(principal);
                }
                Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => {}
                Err(error) if matches!(error.kind(), ErrorKind::InvalidAudience) => {
                    failure = match self.audience {
                        Some(_) => AuthError::WrongAudience,
                        None => AuthError::AudienceNotExpected,
                    }
                }
                Err(error) => failure = claim_error(token, error.kind()),
            }
            if failure != AuthError::BadSignature {
                break;
            }
        }
        Err(failure)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // `exp` and `nbf` are checked by `time_claims`, which reads fractions.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = vec!["sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // `aud` stays checked: present, it names no audience of this
            // server's, and `jsonwebtoken` refuses it (InvalidAudience).
            None => validation.aud = None,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// The `alg` of the token's header, read before anything else so that `none`
/// is named as such.
fn header_algorithm(token: &str, keys: &KeySet) -> Result<Algorithm, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed(
            "a JWT is three base64url parts joined by dots",
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("its header is not base64url"))?;
    let header: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("its header is not JSON"))?;
    let Some(name) = header.get("alg").and_then(serde_json::Value::as_str) else {
        return Err(AuthError::Malformed("its header has no alg"));
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNone);
    }
    if header.get("crit").is_some() {
        return Err(AuthError::Malformed(
            "its header names critical extensions (crit), which this server does not understand",
        ));
    }
    name.parse::<Algorithm>()
        .map_err(|_| AuthError::WrongAlgorithm {
            token: name.chars().take(16).collect(),
            accepted: accepted_algorithms(keys),
        })
}

/// The algorithms of the configured keys, for a refusal's message.
fn accepted_algorithms(keys: &KeySet) -> String {
    let mut names: Vec<String> = keys
        .keys()
        .iter()
        .map(|key| format!("{:?}", key.algorithm))
        .collect();
    names.dedup();
    names.join(", ")
}

/// The keys that may have signed a token of `algorithm` and `key_id`: the
/// keys of that id and the keys without one (the HS256 secret, PEM keys)
/// when the token names a key, else every key; of those, the keys of
/// `algorithm` (each key verifies one algorithm only, so a token cannot
/// choose how a key is used).
fn candidates<'a>(
    keys: &'a KeySet,
    algorithm: Algorithm,
    key_id: Option<&str>,
) -> Result<Vec<&'a VerifyingKey>, AuthError> {
    let selected: Vec<&VerifyingKey> = keys
        .keys()
        .iter()
        .filter(|key| key_id.is_none() || key.key_id.is_none() || key.key_id.as_deref() == key_id)
        .collect();
    let fitting: Vec<_> = selected
        .iter()
        .copied()
        .filter(|key| key.algorithm == algorithm)
        .collect();
    if !fitting.is_empty() {
        return Ok(fitting);
    }
    let keyed = keys.keys().iter().any(|key| key.key_id.is_some());
    let named = selected
        .iter()
        .find(|key| key.key_id.is_some() && key.key_id.as_deref() == key_id);
    Err(match (key_id, named) {
        (Some(key_id), Some(key)) => AuthError::KeyAlgorithmMismatch {
            key_id: key_id.chars().take(64).collect(),
            key_algorithm: format!("{:?}", key.algorithm),
            token: format!("{algorithm:?}"),
        },
        (Some(key_id), None) if keyed => AuthError::UnknownKeyId(key_id.chars().take(64).collect()),
        _ => AuthError::WrongAlgorithm {
            token: format!("{algorithm:?}"),
            accepted: accepted_algorithms(keys),
        },
    })
}

/// The bytes of part `index` of `token` (0 the header, 1 the payload, 2 the
/// signature), when it is base64url without padding, as `jsonwebtoken`
/// reads the payload and signature.
fn decoded_part(token: &str, index: usize) -> Option<Vec<u8>> {
    let part = token.split('.').nth(index)?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
}

/// Whether the payload of `token` (already verified) holds `claim`.
fn payload_holds(token: &str, claim: &str) -> bool {
    decoded_part(token, 1)
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|claims| claims.get(claim).is_some())
}

fn claim_error(token: &str, kind: &ErrorKind) -> AuthError {
    match kind {
        // `jsonwebtoken` reads an `iss` or `aud` of another type (a number,
        // an object) as no such claim at all.
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" && payload_holds(token, "iss") => {
            AuthError::IssuerNotAString
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" && payload_holds(token, "aud") => {
            AuthError::AudienceNotStrings
        }
        // A public-key signature is decoded before it is checked (an HMAC is
        // compared as text, so a broken one reads as invalid): h121 F2.
        ErrorKind::Base64(_) if decoded_part(token, 2).is_none() => {
            AuthError::Malformed("its signature is not base64url")
        }
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm {
            token: "of this token".into(),
            accepted: "the configured keys' algorithms".into(),
        },
        _ => AuthError::Malformed(
            "its claims cannot be read (sub and scope must be strings, exp and nbf numbers)",
        ),
    }
}

/// A NumericDate (RFC 7519 §2: any JSON number of seconds since 1970) in
/// whole seconds, a fraction dropped: a time before 1970 is 0, one past
/// `u64::MAX` seconds (such as `1e20`, h111 F3, or `1e400`, past even a
/// float's range, h116 F2) is `u64::MAX`. `None` when it is not a number.
fn whole_seconds(date: &serde_json::Value) -> Option<u64> {
    let number = date.as_number()?;
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    // A time, never money: a float is exact enough to the second here, and
    // the cast saturates at both ends.
    match number.as_f64() {
        Some(seconds) => Some(seconds.floor() as u64),
        None if number.to_string().starts_with('-') => Some(0),
        None => Some(u64::MAX),
    }
}

/// Whether a token whose `exp` is `expires_at` is expired at `now` (both
/// seconds since 1970), with [`LEEWAY_SECONDS`].
pub(crate) fn is_expired(expires_at: u64, now: u64) -> bool {
    expires_at.saturating_add(LEEWAY_SECONDS) < now
}

/// `exp` (required) and `nbf` against `now` (seconds since 1970), with
/// [`LEEWAY_SECONDS`]; answers `exp` in whole seconds.
fn time_claims(claims: &Granted, now: u64) -> Result<u64, AuthError> {
    let exp = claims
        .exp
        .as_ref()
        .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
    let exp = whole_seconds(exp).ok_or(AuthError::Malformed(
        "exp must be a NumericDate (seconds since 1970)",
    ))?;
    if is_expired(exp, now) {
        return Err(AuthError::Expired);
    }
    if exp > now.saturating_add(TOKEN_LIFETIME_SECONDS_MAX + LEEWAY_SECONDS) {
        return Err(AuthError::LifetimeTooLong);
    }
    if let Some(nbf) = &claims.nbf {
        let nbf = whole_seconds(nbf).ok_or(AuthError::Malformed(
            "nbf must be a NumericDate (seconds since 1970)",
        ))?;
        if nbf > now.saturating_add(LEEWAY_SECONDS) {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok(exp)
}

impl Verifier {
    /// The principal of a token whose signature, issuer and audience
    /// `jsonwebtoken` has checked: its times, the issuer's form and the
    /// subject; with its `exp` in whole seconds.
    fn principal(&self, claims: Granted, now: u64) -> Result<(Principal, u64), AuthError> {
        let expires_at = time_claims(&claims, now)?;
        // `jsonwebtoken` takes an `iss` list holding the expected issuer;
        // RFC 7519 §4.1.1 makes `iss` one StringOrURI.
        if self.issuer.is_some()
            && !claims
                .iss
                .as_ref()
                .is_some_and(serde_json::Value::is_string)
        {
            return Err(AuthError::IssuerNotAString);
        }
        Ok((subject_principal(claims)?, expires_at))
    }
}

fn subject_principal(claims: Granted) -> Result<Principal, AuthError> {
    if !subject_is_readable(&claims.sub) {
        return Err(AuthError::BadSubject);
    }
    Ok(Principal::authenticated(claims.sub, &claims.scope))
}

/// Whether `subject` can stand as the principal every event's metadata
/// records and an audit shows: 1 to [`SUBJECT_LENGTH_MAX`] characters, one
/// of them visible (a letter, digit, punctuation or symbol), none a control
/// character (U+0000 cannot even be held by PostgreSQL text), a format
/// character (zero-width, bidirectional, U+FEFF: Unicode category Cf) or a
/// line or paragraph separator (Zl, Zp), and no white space at either end,
/// so that no two principals read alike and none reads as blank.
fn subject_is_readable(subject: &str) -> bool {
    use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};
    let invisible = |character: char| {
        matches!(
            character.general_category(),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
    };
    let visible = |character: char| {
        matches!(
            character.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Number
                | GeneralCategoryGroup::Punctuation
                | GeneralCategoryGroup::Symbol
        )
    };
    (1..=SUBJECT_LENGTH_MAX).contains(&subject.chars().count())
        && subject.trim() == subject
        && !subject.chars().any(invisible)
        && subject.chars().any(visible)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::principal::Scope;
    use crate::token::{mint_hs256, mint_with_pem, unix_now_seconds, unsigned, Claims};

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";
    const HOUR: Duration = Duration::from_secs(3600);

    fn hs256_verifier(issuer: Option<&str>, audience: Option<&str>) -> Verifier {
        Verifier::new(
            Some(KeySet::secret(SECRET).expect("secret")),
            None,
            issuer.map(str::to_owned),
            audience.map(str::to_owned),
        )
    }

    fn claims() -> Claims {
        Claims::new("user-456", "wallets", HOUR)
    }

    fn token(claims: &Claims) -> String {
        mint_hs256(SECRET, claims).expect("mint")
    }

    #[test]
    fn a_good_token_gives_its_principal() {
        let principal = hs256_verifier(None, None)
            .verify(&token(&claims()))
            .expect("valid");
        assert_eq!(principal.subject(), Some("user-456"));
        assert!(principal.has(Scope::Wallets));
        assert!(!principal.has(Scope::Admin));
    }

    #[test]
    fn each_failed_check_is_named() {
        let verifier = hs256_verifier(Some("wallex-idp"), Some("wallex"));
        let good = Claims {
            iss: Some("wallex-idp".into()),
            aud: Some("wallex".into()),
            ..claims()
        };
        assert!(verifier.verify(&token(&good)).is_ok());
        let now = unix_now_seconds();
        let cases = [
            (
                Claims {
                    exp: now - LEEWAY_SECONDS - 5,
                    ..good.clone()
                },
                AuthError::Expired,
            ),
            (
                Claims {
                    nbf: Some(now + LEEWAY_SECONDS + 60),
                    ..good.clone()
                },
                AuthError::NotYetValid,
            ),
            (
                Claims {
                    iss: Some("someone-else".into()),
                    ..good.clone()
                },
                AuthError::WrongIssuer,
            ),
            (
                Claims {
                    aud: Some("another-api".into()),
                    ..good.clone()
                },
                AuthError::WrongAudience,
            ),
            (
                Claims {
                    aud: None,
                    ..good.clone()
                },
                AuthError::MissingClaim("aud".into()),
            ),
            (
                Claims {
                    sub: String::new(),
                    ..good.clone()
                },
                AuthError::BadSubject,
            ),
            (
                Claims {
                    sub: "gw\u{0}x".into(),
                    ..good.clone()
                },
                AuthError::BadSubject,
            ),
            (
                Claims {
                    sub: "gw\u{85}x".into(),
                    ..good.clone()
                },
                AuthError::BadSubject,
            ),
        ];
        let unreadable = [
            "\u{feff}",
            "\u{2028}\u{2029}",
            "gw\u{200b}",
            "\u{202e}wg",
            " gw",
            "gw\u{3000}",
            "\u{0301}\u{0301}",
            &"g".repeat(SUBJECT_LENGTH_MAX + 1),
        ];
        let cases = cases.into_iter().chain(unreadable.iter().map(|sub| {
            (
                Claims {
                    sub: (*sub).to_owned(),
                    ..good.clone()
                },
                AuthError::BadSubject,
            )
        }));
        for (claims, expected) in cases {
            assert_eq!(verifier.verify(&token(&claims)), Err(expected));
        }
        let forged = mint_hs256(b"another-secret-of-at-least-32-bytes!", &good).expect("mint");
        assert_eq!(verifier.verify(&forged), Err(AuthError::BadSignature));
        let unsigned = unsigned(&good).expect("unsigned");
        assert_eq!(verifier.verify(&unsigned), Err(AuthError::AlgorithmNone));
        assert_eq!(verifier.verify(""), Err(AuthError::Missing));
        assert!(matches!(
            verifier.verify("not-a-jwt"),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn a_leeway_forgives_a_little_clock_skew() {
        let verifier = hs256_verifier(None, None);
        let now = unix_now_seconds();
        let just_expired = Claims {
            exp: now - 5,
            ..claims()
        };
        assert!(verifier.verify(&token(&just_expired)).is_ok());
    }

    /// A token of `claims` as JSON, signed with the test secret and `header`.
    fn signed(header: serde_json::Value, claims: serde_json::Value) -> String {
        let encode = |value: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(value).expect("json"))
        };
        let signing_input = format!("{}.{}", encode(&header), encode(&claims));
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .expect("sign");
        format!("{signing_input}.{signature}")
    }

    #[test]
    fn a_fractional_exp_is_a_numeric_date_and_a_string_one_is_not() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let mut value = serde_json::to_value(claims()).expect("json");
        let exp = unix_now_seconds() + 600;
        value["exp"] = serde_json::json!(exp as f64 + 0.5);
        assert!(verifier
            .verify(&signed(header.clone(), value.clone()))
            .is_ok());
        value["exp"] = serde_json::json!((unix_now_seconds() - LEEWAY_SECONDS - 5) as f64 + 0.5);
        assert_eq!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::Expired)
        );
        value["exp"] = serde_json::json!(exp.to_string());
        assert!(matches!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::Malformed(message)) if message.contains("exp")
        ));
    }

    /// Any JSON number is a NumericDate: one past `u64` seconds is far in
    /// the future, one before 1970 long past (h111 F3: `1e20` was refused
    /// as malformed). A far future `exp` is a token that practically never
    /// expires, refused by its own rule (h115 F2: `1e300` was accepted).
    #[test]
    fn a_numeric_date_out_of_range_is_far_future_or_long_past() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let mut value = serde_json::to_value(claims()).expect("json");
        let far: serde_json::Value = serde_json::from_str("1e20").expect("a number");
        value["nbf"] = far.clone();
        assert_eq!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::NotYetValid)
        );
        value.as_object_mut().expect("object").remove("nbf");
        for far in ["1e20", "1e300", "18446744073709551616", "1e400"] {
            value["exp"] = serde_json::from_str(far).expect("a number");
            assert_eq!(
                verifier.verify(&signed(header.clone(), value.clone())),
                Err(AuthError::LifetimeTooLong),
                "exp {far}"
            );
        }
        value["exp"] = serde_json::json!(-5);
        assert_eq!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::Expired)
        );
        value["exp"] = serde_json::from_str("-1e400").expect("a number");
        assert_eq!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::Expired)
        );
        // A far past `nbf` is no reason to refuse; a far future one is
        // "not valid yet", past a float's range too.
        value["exp"] = serde_json::json!(unix_now_seconds() + 600);
        value["nbf"] = serde_json::from_str("-1e400").expect("a number");
        assert!(verifier
            .verify(&signed(header.clone(), value.clone()))
            .is_ok());
        value["nbf"] = serde_json::from_str("1e400").expect("a number");
        assert_eq!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::NotYetValid)
        );
    }

    /// `exp` up to [`TOKEN_LIFETIME_SECONDS_MAX`] ahead (and the leeway) is
    /// accepted, a minute more is not.
    #[test]
    fn a_token_may_live_a_year_and_no_longer() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let mut value = serde_json::to_value(claims()).expect("json");
        value["exp"] = serde_json::json!(unix_now_seconds() + TOKEN_LIFETIME_SECONDS_MAX);
        assert!(verifier
            .verify(&signed(header.clone(), value.clone()))
            .is_ok());
        value["exp"] = serde_json::json!(
            unix_now_seconds() + TOKEN_LIFETIME_SECONDS_MAX + LEEWAY_SECONDS + 60
        );
        assert_eq!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::LifetimeTooLong)
        );
        assert!(AuthError::LifetimeTooLong
            .to_string()
            .contains("at most 365 days from now"));
    }

    #[test]
    fn a_critical_header_extension_is_refused() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "HS256", "crit": ["x"], "x": 1});
        let value = serde_json::to_value(claims()).expect("json");
        assert!(matches!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::Malformed(message)) if message.contains("crit")
        ));
    }

    #[test]
    fn a_scope_that_is_not_a_string_is_named_not_exp() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "HS256"});
        let mut value = serde_json::to_value(claims()).expect("json");
        value["scope"] = serde_json::json!(["admin"]);
        assert!(matches!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::Malformed(message)) if message.contains("scope")
        ));
    }

    #[test]
    fn an_issuer_list_is_refused_even_when_it_holds_the_expected_issuer() {
        let verifier = hs256_verifier(Some("wallex-idp"), None);
        let header = serde_json::json!({"alg": "HS256"});
        let mut value = serde_json::to_value(claims()).expect("json");
        value["iss"] = serde_json::json!("wallex-idp");
        assert!(verifier
            .verify(&signed(header.clone(), value.clone()))
            .is_ok());
        for issuers in [
            serde_json::json!(["someone-else", "wallex-idp"]),
            serde_json::json!(["wallex-idp"]),
            serde_json::json!(7),
            serde_json::json!(null),
            serde_json::json!({"iss": "wallex-idp"}),
        ] {
            value["iss"] = issuers;
            assert_eq!(
                verifier.verify(&signed(header.clone(), value.clone())),
                Err(AuthError::IssuerNotAString)
            );
        }
    }

    #[test]
    fn an_audience_of_another_type_is_named_as_such_not_as_missing() {
        let verifier = hs256_verifier(None, Some("wallex"));
        let header = serde_json::json!({"alg": "HS256"});
        let mut value = serde_json::to_value(claims()).expect("json");
        for audience in [
            serde_json::json!("wallex"),
            serde_json::json!(["x", "wallex"]),
        ] {
            value["aud"] = audience;
            assert!(verifier
                .verify(&signed(header.clone(), value.clone()))
                .is_ok());
        }
        for audience in [
            serde_json::json!(5),
            serde_json::json!({"aud": "wallex"}),
            serde_json::json!(true),
        ] {
            value["aud"] = audience.clone();
            assert_eq!(
                verifier.verify(&signed(header.clone(), value.clone())),
                Err(AuthError::AudienceNotStrings),
                "{audience}"
            );
        }
        value["aud"] = serde_json::json!(null);
        assert_eq!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::AudienceNotStrings),
            "a null aud is present, of the wrong type"
        );
    }

    /// h101 F4: with no audience configured, a token naming one (or an
    /// `aud` of another type) was accepted; RFC 7519 §4.1.3 says a token
    /// whose `aud` does not name this server MUST be rejected.
    #[test]
    fn without_an_expected_audience_a_token_that_names_one_is_refused() {
        let verifier = hs256_verifier(None, None);
        assert!(
            verifier.verify(&token(&claims())).is_ok(),
            "no aud: accepted"
        );
        let named = Claims {
            aud: Some("another-api".into()),
            ..claims()
        };
        assert_eq!(
            verifier.verify(&token(&named)),
            Err(AuthError::AudienceNotExpected)
        );
        let header = serde_json::json!({"alg": "HS256"});
        let mut value = serde_json::to_value(claims()).expect("json");
        value["aud"] = serde_json::json!(["x", "y"]);
        assert_eq!(
            verifier.verify(&signed(header.clone(), value.clone())),
            Err(AuthError::AudienceNotExpected)
        );
        for audience in [serde_json::json!(5), serde_json::json!(null)] {
            value["aud"] = audience.clone();
            assert_eq!(
                verifier.verify(&signed(header.clone(), value.clone())),
                Err(AuthError::AudienceNotStrings),
                "{audience}"
            );
        }
    }

    #[test]
    fn an_unknown_algorithm_name_is_refused_naming_the_accepted_ones() {
        let verifier = hs256_verifier(None, None);
        let header = serde_json::json!({"alg": "Ed25519"});
        let value = serde_json::to_value(claims()).expect("json");
        assert_eq!(
            verifier.verify(&signed(header, value)),
            Err(AuthError::WrongAlgorithm {
                token: "Ed25519".into(),
                accepted: "HS256".into(),
            })
        );
    }

    #[test]
    fn exp_is_required() {
        let verifier = hs256_verifier(None, None);
        let mut value = serde_json::to_value(claims()).expect("json");
        value.as_object_mut().expect("object").remove("exp");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &value,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .expect("mint");
        assert_eq!(
            verifier.verify(&token),
            Err(AuthError::MissingClaim("exp".into()))
        );
    }

    const PRIVATE: [(Algorithm, &str, &str); 3] = [
        (
            Algorithm::RS256,
            "rsa-1",
            include_str!("../testdata/rsa_private.pem"),
        ),
        (
            Algorithm::ES256,
            "ec-1",
            include_str!("../testdata/ec_private.pem"),
        ),
        (
            Algorithm::EdDSA,
            "ed-1",
            include_str!("../testdata/ed_private.pem"),
        ),
    ];

    fn file_verifier(text: &str) -> (Verifier, tempfile::TempDir) {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys");
        std::fs::write(&path, text).expect("write");
        let file = KeyFile::open(path, Duration::ZERO).expect("key file");
        (Verifier::new(None, Some(file), None, None), folder)
    }

    #[test]
    fn public_keys_from_pem_and_jwks_verify_their_algorithms() {
        let pems = [
            include_str!("../testdata/rsa_public.pem"),
            include_str!("../testdata/ec_public.pem"),
            include_str!("../testdata/ed_public.pem"),
        ]
        .concat();
        for text in [pems.as_str(), include_str!("../testdata/jwks.json")] {
            let (verifier, _folder) = file_verifier(text);
            for (algorithm, key_id, private) in PRIVATE {
                let signed = mint_with_pem(algorithm, private.as_bytes(), Some(key_id), &claims())
                    .expect("mint");
                let principal = verifier.verify(&signed).expect("verifies");
                assert_eq!(principal.subject(), Some("user-456"));
            }
            // A secret-signed token is refused by a public key set: no HS256 key.
            assert!(matches!(
                verifier.verify(&token(&claims())),
                Err(AuthError::WrongAlgorithm { .. })
            ));
        }
    }

    #[test]
    fn a_kid_selects_the_key_and_an_unknown_kid_is_named() {
        let (verifier, _folder) = file_verifier(include_str!("../testdata/jwks.json"));
        let (algorithm, _, private) = PRIVATE[0];
        let unknown =
            mint_with_pem(algorithm, private.as_bytes(), Some("gone"), &claims()).expect("mint");
        assert_eq!(
            verifier.verify(&unknown),
            Err(AuthError::UnknownKeyId("gone".into()))
        );
        // Signed by the RSA key but claiming the EC key's id.
        let mismatched =
            mint_with_pem(algorithm, private.as_bytes(), Some("ec-1"), &claims()).expect("mint");
        assert_eq!(
            verifier.verify(&mismatched),
            Err(AuthError::KeyAlgorithmMismatch {
                key_id: "ec-1".into(),
                key_algorithm: "ES256".into(),
                token: "RS256".into(),
            })
        );
    }

    #[test]
    fn the_secret_verifies_an_hs256_token_whatever_its_kid_beside_a_keyed_jwks() {
        let folder = tempfile::tempdir().expect("tempdir");
        let path = folder.path().join("keys");
        std::fs::write(&path, include_str!("../testdata/jwks.json")).expect("write");
        let file = KeyFile::open(path, Duration::ZERO).expect("key file");
        let verifier = Verifier::new(
            Some(KeySet::secret(SECRET).expect("secret")),
            Some(file),
            None,
            None,
        );
        let header = serde_json::json!({"alg": "HS256", "kid": "rsa-1"});
        let value = serde_json::to_value(claims()).expect("json");
        assert!(verifier.verify(&signed(header, value.clone())).is_ok());
        let header = serde_json::json!({"alg": "HS256", "kid": "any"});
        assert!(verifier.verify(&signed(header, value)).is_ok());
        let (algorithm, key_id, private) = PRIVATE[1];
        let ec =
            mint_with_pem(algorithm, private.as_bytes(), Some(key_id), &claims()).expect("mint");
        assert!(verifier.verify(&ec).is_ok());
    }

    #[test]
    fn a_public_key_signature_that_is_not_base64url_is_named_as_such() {
        let (verifier, _folder) = file_verifier(include_str!("../testdata/ec_public.pem"));
        let (algorithm, _, private) = PRIVATE[1];
        let token = mint_with_pem(algorithm, private.as_bytes(), None, &claims()).expect("mint");
        let cut = &token[..token.len() - 1];
        for broken in [cut.to_owned(), format!("{token}="), format!("{token}!")] {
            assert_eq!(
                verifier.verify(&broken),
                Err(AuthError::Malformed("its signature is not base64url")),
                "{broken}"
            );
        }
        assert!(verifier.verify(&token).is_ok());
    }

    #[test]
    fn a_rotated_key_file_takes_effect_without_a_restart() {
        let (verifier, folder) = file_verifier(include_str!("../testdata/rsa_public.pem"));
        let (algorithm, _, private) = PRIVATE[2];
        let ed = mint_with_pem(algorithm, private.as_bytes(), None, &claims()).expect("mint");
        assert!(matches!(
            verifier.verify(&ed),
            Err(AuthError::WrongAlgorithm { .. })
        ));
        std::fs::write(
            folder.path().join("keys"),
            include_str!("../testdata/ed_public.pem"),
        )
        .expect("rotate");
        assert!(verifier.verify(&ed).is_ok());
    }

    #[test]
    fn a_token_verified_before_is_refused_once_its_key_leaves_the_key_file() {
        let (verifier, folder) = file_verifier(include_str!("../testdata/ed_public.pem"));
        let (algorithm, _, private) = PRIVATE[2];
        let ed = mint_with_pem(algorithm, private.as_bytes(), None, &claims()).expect("mint");
        assert!(verifier.verify(&ed).is_ok());
        assert!(verifier.verify(&ed).is_ok(), "answered again, as verified");
        std::fs::write(
            folder.path().join("keys"),
            include_str!("../testdata/rsa_public.pem"),
        )
        .expect("rotate");
        assert!(matches!(
            verifier.verify(&ed),
            Err(AuthError::WrongAlgorithm { .. })
        ));
    }
}
