//! Who may reach the API: the authentication mode the configuration asks
//! for, the address that mode may listen on, and the per-principal rate limit.
//!
//! Modes:
//! - **verified**: `AUTH_JWT_SECRET` and/or `AUTH_JWT_PUBLIC_KEYS` set; every
//!   protected route needs a bearer token; any address (default `0.0.0.0`).
//! - **open by default**: no `AUTH_*` at all on the embedded default; the
//!   seed's open contract, on loopback only (default `127.0.0.1`), with one
//!   warning at start.
//! - **open by choice**: `AUTH=none`; any address and backend.
//!
//! Anything else (a production backend or a non-loopback `HOST` without
//! authentication) refuses to start, naming the variables to set.

use std::net::{IpAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use identity::{AuthError, KeyFile, KeySet, Principal, Verifier, KEY_FILE_CHECK_INTERVAL_MS};

use crate::config::{AuthConfig, AuthSwitch, Config};

/// Default sustained requests per second of one principal: above what one
/// replica serves in all (bench/README.md), so a single service token (the
/// load generator's) is not throttled; lower it for end users' tokens.
pub const RATE_LIMIT_PER_SECOND_DEFAULT: u32 = 10_000;
/// Default burst of one principal above its sustained rate.
pub const RATE_LIMIT_BURST_DEFAULT: u32 = 20_000;
/// Principals the rate limiter tracks before it forgets those whose quota is
/// full again (so unbounded distinct subjects cannot grow memory without end).
pub const RATE_LIMIT_PRINCIPALS_MAX: usize = 100_000;
/// Where the API listens by default when it authenticates (or is open by choice).
pub const ANY_ADDRESS: &str = "0.0.0.0";
/// Where the API listens by default when it is open by default.
pub const LOOPBACK_ADDRESS: &str = "127.0.0.1";

const KEYS_HINT: &str =
    "set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEYS (or AUTH=none to run without authentication, behind something that authenticates)";

/// A configuration that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    #[error("authentication is not configured while {reason}: {KEYS_HINT}")]
    AuthenticationRequired { reason: String },
    #[error("AUTH=none contradicts {0}: unset one of them")]
    Contradiction(&'static str),
    #[error(
        "AUTH_ISSUER and AUTH_AUDIENCE need a key: set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEYS"
    )]
    ClaimsWithoutKey,
    /// An identity provider's keys sign tokens for its other applications
    /// too: without an audience, any of them would be taken here (RFC 8725
    /// §3.9: a token for another relying party must be refused by its `aud`).
    #[error(
        "AUTH_JWT_PUBLIC_KEYS needs AUTH_AUDIENCE: an identity provider's keys sign tokens for \
         its other applications too, and only the aud claim tells this API's apart (RFC 8725 \
         section 3.9); set AUTH_AUDIENCE to the aud of this API's tokens (and AUTH_ISSUER to \
         the provider's iss)"
    )]
    AudienceRequired,
    #[error("authentication keys: {0}")]
    Keys(#[from] identity::KeyError),
    #[error("AUTH_JWT_PUBLIC_KEYS={path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: identity::KeyError,
    },
}

impl AccessConfigError {
    /// Whether the settings are refused by their own rules, on any machine:
    /// a secret too short, too plain or padded, or settings that contradict
    /// each other or lack their companion. A key file that cannot be read
    /// or holds no usable key is the machine's state (its file), not that.
    pub fn is_bad_setting(&self) -> bool {
        !matches!(self, Self::KeyFile { .. })
    }
}

/// A request refused before it reaches its handler.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Unauthenticated(#[from] AuthError),
    #[error("Too many requests; retry in {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
}

/// How requests are authenticated and limited; built once at start.
pub struct Access {
    verifier: Option<Verifier>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

/// What [`Access::from_config`] decided.
pub struct AccessPlan {
    pub access: Access,
    /// The address to listen on.
    pub host: String,
    /// True when open by default: to be said once in the log.
    pub open_by_default: bool,
}

impl AccessPlan {
    /// Whether only a loopback name may be named in `Host` (and `Origin`):
    /// without authentication on a loopback address, as by default or with
    /// `AUTH=none` and a loopback `HOST`, a web page the browser was led to
    /// by a name that resolves to 127.0.0.1 (DNS rebinding) would otherwise
    /// reach every wallet. Not on another address: there a gateway in front
    /// names the service as it likes, and authenticates.
    pub fn loopback_hosts_only(&self) -> bool {
        !self.access.verifies() && listens_on_loopback_only(&self.host)
    }
}

/// Whether a server listening on `host` is reachable from this machine
/// only: `host` is [`is_loopback`], or every address the resolver gives for
/// it is a loopback one (`127.1`, `0x7f.1`, a name `/etc/hosts` maps to
/// 127.0.0.1: the socket binds what the resolver answers, not the text, so
/// judging the text alone left the `Host` guard off on such a listener,
/// h106 F3). A name that does not resolve is not.
pub(crate) fn listens_on_loopback_only(host: &str) -> bool {
    is_loopback(host)
        || (host, 0).to_socket_addrs().is_ok_and(|addresses| {
            let mut addresses = addresses.peekable();
            addresses.peek().is_some() && addresses.all(|address| address.ip().is_loopback())
        })
}

/// Whether `host` (a name or an address, without a port) is this machine's
/// loopback: `localhost` or a loopback IPv4/IPv6 address.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn production_backend(config: &Config) -> Option<&'static str> {
    [
        ("DATABASE_URL", config.database_url.is_some()),
        ("KURRENTDB_URL", config.kurrentdb_url.is_some()),
        ("KAFKA_BROKERS", config.kafka_brokers.is_some()),
    ]
    .into_iter()
    .find_map(|(name, set)| set.then_some(name))
}

impl Access {
    /// The mode, the verifier and the listen address `config` asks for.
    pub fn from_config(config: &Config) -> Result<AccessPlan, AccessConfigError> {
        let auth = &config.auth;
        let keyed = auth.jwt_secret.is_some() || auth.jwt_public_keys.is_some();
        let claims = auth.issuer.is_some() || auth.audience.is_some();
        let limiter = rate_limiter(auth.rate_limit_per_second, auth.rate_limit_burst);
        if auth.switch == Some(AuthSwitch::Off) {
            if keyed {
                return Err(AccessConfigError::Contradiction(
                    "AUTH_JWT_SECRET and AUTH_JWT_PUBLIC_KEYS",
                ));
            }
            if claims {
                return Err(AccessConfigError::Contradiction(
                    "AUTH_ISSUER and AUTH_AUDIENCE",
                ));
            }
            warn_unused_rate_limit(auth);
            return Ok(AccessPlan {
                access: Access {
                    verifier: None,
                    limiter: None,
                },
                host: config.host.clone().unwrap_or_else(|| ANY_ADDRESS.into()),
                open_by_default: false,
            });
        }
        if keyed {
            if auth.jwt_public_keys.is_some() && auth.audience.is_none() {
                return Err(AccessConfigError::AudienceRequired);
            }
            let secret = auth
                .jwt_secret
                .as_deref()
                .map(|secret| KeySet::secret(secret.as_bytes()))
                .transpose()?;
            let key_file =
                auth.jwt_public_keys
                    .clone()
                    .map(|path| {
                        let shown = path.display().to_string();
                        KeyFile::open(path, Duration::from_millis(KEY_FILE_CHECK_INTERVAL_MS))
                            .map_err(|source| AccessConfigError::KeyFile {
                                path: shown,
                                source,
                            })
                    })
                    .transpose()?;
            let verifier =
                Verifier::new(secret, key_file, auth.issuer.clone(), auth.audience.clone());
            return Ok(AccessPlan {
                access: Access {
                    verifier: Some(verifier),
                    limiter,
                },
                host: config.host.clone().unwrap_or_else(|| ANY_ADDRESS.into()),
                open_by_default: false,
            });
        }
        if claims {
            return Err(AccessConfigError::ClaimsWithoutKey);
        }
        if let Some(variable) = production_backend(config) {
            return Err(AccessConfigError::AuthenticationRequired {
                reason: format!("{variable} is set (a production backend)"),
            });
        }
        let host = config
            .host
            .clone()
            .unwrap_or_else(|| LOOPBACK_ADDRESS.into());
        if !listens_on_loopback_only(&host) {
            return Err(AccessConfigError::AuthenticationRequired {
                reason: format!(
                    "HOST={host} is not a loopback address (127.0.0.1, ::1 without brackets, or localhost)"
                ),
            });
        }
        warn_unused_rate_limit(auth);
        Ok(AccessPlan {
            access: Access {
                verifier: None,
                limiter: None,
            },
            host,
            open_by_default: true,
        })
    }

    /// The key file tokens are verified with, when there is one.
    pub fn key_file(&self) -> Option<&KeyFile> {
        self.verifier.as_ref().and_then(Verifier::key_file)
    }

    /// Whether requests are authenticated (else every caller is [`Principal::open`]).
    pub fn verifies(&self) -> bool {
        self.verifier.is_some()
    }

    /// The caller of a request with this `Authorization` header, admitted by
    /// the rate limit.
    pub fn admit(&self, authorization: Option<&HeaderValue>) -> Result<Principal, AdmissionError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Principal::open());
        };
        let token = bearer_token(authorization)?;
        let principal = verifier.verify(token)?;
        if let (Some(limiter), Some(subject)) = (&self.limiter, principal.subject()) {
            if let Err(not_until) = limiter.check_key(&subject.to_owned()) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(AdmissionError::RateLimited {
                    retry_after_seconds: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                });
            }
            if limiter.len() > RATE_LIMIT_PRINCIPALS_MAX {
                limiter.retain_recent();
            }
        }
        Ok(principal)
    }
}

/// A keyed limiter of `per_second` sustained and `burst` at once; `None` when
/// `per_second` is 0 (no limit).
/// The open modes have no principal to count requests for: a rate limit
/// set below its defaults there is said to do nothing.
fn warn_unused_rate_limit(auth: &AuthConfig) {
    if auth.rate_limit_per_second != RATE_LIMIT_PER_SECOND_DEFAULT
        || auth.rate_limit_burst != RATE_LIMIT_BURST_DEFAULT
    {
        tracing::warn!(
            "RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST do nothing without authentication: \
             there is no principal to count; limit requests in front of this server"
        );
    }
}

fn rate_limiter(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let per_second = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(per_second);
    Some(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(authorization: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let Some(value) = authorization else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(AuthError::Malformed(
            "the Authorization header must be `Bearer <JWT>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    fn config() -> Config {
        Config {
            host: None,
            ..Config::embedded_for_test(PathBuf::from("unused"))
        }
    }

    fn refusal(config: &Config) -> String {
        match Access::from_config(config) {
            Ok(_) => panic!("should refuse to start"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn open_by_default_listens_on_loopback_only() {
        let plan = Access::from_config(&config()).expect("starts");
        assert_eq!(plan.host, LOOPBACK_ADDRESS);
        assert!(plan.open_by_default && !plan.access.verifies());
        let localhost = Config {
            host: Some("::1".into()),
            ..config()
        };
        assert!(Access::from_config(&localhost).is_ok());
        let short = Config {
            host: Some("127.1".into()),
            ..config()
        };
        assert!(Access::from_config(&short).is_ok(), "127.1 is 127.0.0.1");
        let anywhere = Config {
            host: Some("0.0.0.0".into()),
            ..config()
        };
        let message = refusal(&anywhere);
        assert!(message.contains("HOST=0.0.0.0"), "{message}");
        assert!(message.contains("AUTH_JWT_SECRET"), "{message}");
        assert!(message.contains("AUTH=none"), "{message}");
    }

    #[test]
    fn host_names_are_held_to_loopback_without_authentication_on_loopback() {
        let plan = |config: Config| Access::from_config(&config).expect("starts");
        assert!(plan(config()).loopback_hosts_only(), "open by default");
        let mut none_on_loopback = config();
        none_on_loopback.auth.switch = Some(AuthSwitch::Off);
        none_on_loopback.host = Some("127.0.0.1".into());
        assert!(plan(none_on_loopback.clone()).loopback_hosts_only());
        // Written as the resolver reads it, not as an address Rust parses.
        for short in ["127.1", "0x7f.1", "localhost"] {
            let mut none_on_short_loopback = none_on_loopback.clone();
            none_on_short_loopback.host = Some(short.into());
            assert!(
                plan(none_on_short_loopback).loopback_hosts_only(),
                "{short}"
            );
        }
        let mut none_anywhere = none_on_loopback.clone();
        none_anywhere.host = Some("0.0.0.0".into());
        assert!(
            !plan(none_anywhere).loopback_hosts_only(),
            "a gateway names it"
        );
        let mut keyed = config();
        keyed.auth.jwt_secret = Some(SECRET.into());
        keyed.host = Some("127.0.0.1".into());
        assert!(
            !plan(keyed).loopback_hosts_only(),
            "every call carries a token"
        );
    }

    #[test]
    fn a_production_backend_needs_authentication_or_an_explicit_none() {
        for production in [
            Config {
                database_url: Some("postgres://x".into()),
                ..config()
            },
            Config {
                kurrentdb_url: Some("kurrentdb://x".into()),
                ..config()
            },
            Config {
                kafka_brokers: Some("x:9092".into()),
                ..config()
            },
        ] {
            let message = refusal(&production);
            assert!(message.contains("production backend"), "{message}");
            let mut open = production.clone();
            open.auth.switch = Some(AuthSwitch::Off);
            let plan = Access::from_config(&open).expect("open by choice");
            assert_eq!(plan.host, ANY_ADDRESS);
            assert!(!plan.open_by_default);
            let mut keyed = production;
            keyed.auth.jwt_secret = Some(SECRET.into());
            let plan = Access::from_config(&keyed).expect("verified");
            assert!(plan.access.verifies());
            assert_eq!(plan.host, ANY_ADDRESS);
        }
    }

    #[test]
    fn settings_refused_by_their_own_rules_exit_2_and_an_unreadable_key_file_1() {
        let status = |config: &Config| {
            let refused = Access::from_config(config).map(drop).expect_err("refused");
            let error = crate::startup::StartupError::from_access(refused);
            observability::exit_code("command-api", Err(Box::new(error)))
        };
        let bad_setting = std::process::ExitCode::from(observability::EXIT_STATUS_BAD_SETTING);
        for secret in [
            "short",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &format!(" {SECRET}"),
            &format!("{SECRET}\n"),
        ] {
            let mut weak = config();
            weak.auth.jwt_secret = Some(secret.to_owned());
            assert_eq!(status(&weak), bad_setting, "{secret:?}");
            assert!(refusal(&weak).starts_with("authentication keys: AUTH_JWT_SECRET"));
        }
        let mut contradiction = config();
        contradiction.auth.switch = Some(AuthSwitch::Off);
        contradiction.auth.jwt_secret = Some(SECRET.into());
        assert_eq!(status(&contradiction), bad_setting);
        let mut missing_file = config();
        missing_file.auth.jwt_public_keys = Some(PathBuf::from("/nonexistent/keys.pem"));
        missing_file.auth.audience = Some("wallex-api".into());
        assert_eq!(status(&missing_file), std::process::ExitCode::FAILURE);
    }

    #[test]
    fn contradictions_and_weak_secrets_are_refused() {
        let mut both = config();
        both.auth.switch = Some(AuthSwitch::Off);
        both.auth.jwt_secret = Some(SECRET.into());
        assert!(refusal(&both).contains("AUTH=none"));
        let mut issuer_only = config();
        issuer_only.auth.issuer = Some("idp".into());
        assert!(refusal(&issuer_only).contains("need a key"));
        let mut weak = config();
        weak.auth.jwt_secret = Some("short".into());
        assert!(refusal(&weak).contains("at least 32 bytes"));
        let mut no_audience = config();
        no_audience.auth.jwt_public_keys = Some(PathBuf::from("/nonexistent/keys.pem"));
        assert!(refusal(&no_audience).contains("needs AUTH_AUDIENCE"));
        let mut missing_file = no_audience;
        missing_file.auth.audience = Some("wallex-api".into());
        assert!(refusal(&missing_file).contains("/nonexistent/keys.pem"));
        let folder = tempfile::tempdir().expect("tempdir");
        let empty = folder.path().join("keys.pem");
        std::fs::write(&empty, "").expect("write");
        let mut empty_file = missing_file;
        empty_file.auth.jwt_public_keys = Some(empty.clone());
        let message = refusal(&empty_file);
        assert!(
            message.starts_with(&format!("AUTH_JWT_PUBLIC_KEYS={}: ", empty.display()))
                && message.contains("no public key"),
            "{message}"
        );
    }

    #[test]
    fn a_principal_over_its_quota_is_told_when_to_retry() {
        let mut limited = config();
        limited.auth.jwt_secret = Some(SECRET.into());
        limited.auth.rate_limit_per_second = 1;
        limited.auth.rate_limit_burst = 2;
        let access = Access::from_config(&limited).expect("starts").access;
        let token = |sub: &str| {
            let claims = identity::Claims::new(sub, "wallets", Duration::from_secs(60));
            let token = identity::mint_hs256(SECRET.as_bytes(), &claims).expect("mint");
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
        };
        let alice = token("alice");
        assert!(access.admit(Some(&alice)).is_ok());
        assert!(access.admit(Some(&alice)).is_ok());
        match access.admit(Some(&alice)) {
            Err(AdmissionError::RateLimited {
                retry_after_seconds,
            }) => assert_eq!(retry_after_seconds, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Another principal has its own quota.
        assert!(access.admit(Some(&token("bob"))).is_ok());
        assert!(matches!(
            access.admit(None),
            Err(AdmissionError::Unauthenticated(AuthError::Missing))
        ));
        let basic = HeaderValue::from_static("Basic dXNlcjpwYXNz");
        assert!(matches!(
            access.admit(Some(&basic)),
            Err(AdmissionError::Unauthenticated(AuthError::Malformed(_)))
        ));
    }
}
