//! `command-api token`: a bearer token signed with `AUTH_JWT_SECRET`, for
//! development, scripts and the load generator.

use std::time::Duration;

use identity::{
    mint_hs256, AuthError, Claims, KeySet, MintError, Scope, Verifier, TOKEN_LIFETIME_SECONDS_MAX,
};
use wallet_domain::OwnerId;

use crate::config::{AuthConfig, TokenArgs};

/// A token could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("command-api token signs with AUTH_JWT_SECRET: set it")]
    NoSecret,
    #[error(transparent)]
    Mint(#[from] MintError),
    /// `AUTH_JWT_SECRET` refused by its own rules: a bad setting, exit 2.
    #[error("{0}")]
    Secret(#[source] observability::SettingRefused),
    #[error("--scope names no scope: a token without one may do nothing; give wallets, deposits or admin")]
    NoScope,
    #[error("--scope {word:?} is not a scope: each word must be wallets, deposits or admin")]
    UnknownScope { word: String },
    #[error("the server would refuse this token")]
    Refused(#[source] AuthError),
    /// With the wallets scope the subject is the owner id of the caller's
    /// wallets; one that is not an owner id could own none.
    #[error(
        "--sub {sub:?} with the wallets scope could own no wallet: an owner id is {}",
        OwnerId::RULE.described()
    )]
    NotAnOwner { sub: String },
}

impl TokenError {
    /// The error the binary ends with: an argument or a setting refused by
    /// its own rules (every refusal but a signing failure) holds a
    /// [`observability::SettingRefused`], so the token command exits 2 as a
    /// bad argument does, not 1.
    pub fn into_exit_error(self) -> Box<dyn std::error::Error> {
        match self {
            Self::Mint(_) | Self::Secret(_) => Box::new(self),
            refused => Box::new(observability::SettingRefused::new(refused)),
        }
    }
}

/// `--ttl`: a whole number and a unit (s, m, h or d; none is s), from 1 s to a year.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let unit_at = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds_per_unit = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "ttl {text:?}: the unit must be s, m, h or d (e.g. 1h)"
            ))
        }
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(seconds_per_unit))
        .filter(|seconds| (1..=TOKEN_LIFETIME_SECONDS_MAX).contains(seconds))
        .ok_or_else(|| format!("ttl {text:?} must be from 1s to 365d"))?;
    Ok(Duration::from_secs(seconds))
}

/// The token `args` asks for, with the issuer and audience `auth` checks,
/// once a server with the same settings accepts it: a secret the server
/// refuses (shorter than 32 bytes), a `sub` it refuses (empty, too long, a
/// control character), a scope word it does not know, or a `sub` that is no
/// owner id with the wallets scope is an error, not a token that could never
/// be used.
pub fn mint(auth: &AuthConfig, args: &TokenArgs) -> Result<String, TokenError> {
    let secret = auth.jwt_secret.as_deref().ok_or(TokenError::NoSecret)?;
    let keys = KeySet::secret(secret.as_bytes())
        .map_err(|refusal| TokenError::Secret(observability::SettingRefused::new(refusal)))?;
    let mut words = args
        .scope
        .split(' ')
        .filter(|word| !word.is_empty())
        .peekable();
    if words.peek().is_none() {
        return Err(TokenError::NoScope);
    }
    let scopes = words
        .map(|word| Scope::parse(word).ok_or(word))
        .collect::<Vec<_>>();
    if let Some(Err(word)) = scopes.iter().find(|scope| scope.is_err()) {
        return Err(TokenError::UnknownScope {
            word: (*word).into(),
        });
    }

    let claims = Claims {
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
        ..Claims::new(&args.sub, &args.scope, args.ttl)
    };
    let token = mint_hs256(secret.as_bytes(), &claims)?;
    Verifier::new(Some(keys), None, auth.issuer.clone(), auth.audience.clone())
        .verify(&token)
        .map_err(TokenError::Refused)?;
    if scopes.contains(&Ok(Scope::Wallets)) && OwnerId::parse(&args.sub).is_err() {
        return Err(TokenError::NotAnOwner {
            sub: args.sub.clone(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings that sign with a secret the server takes.
    fn signing() -> AuthConfig {
        AuthConfig {
            jwt_secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
            ..AuthConfig::default()
        }
    }

    /// A minute's token for `sub` with `scope`.
    fn args(sub: &str, scope: &str) -> TokenArgs {
        TokenArgs {
            sub: sub.into(),
            scope: scope.into(),
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_refused_argument_ends_as_a_bad_setting() {
        let auth = signing();
        for (auth, args) in [
            (&auth, args("user-1", "")),
            (&auth, args("user-1", "wallets payments")),
            (&auth, args("an owner?", "wallets")),
            (&AuthConfig::default(), args("user-1", "wallets")),
        ] {
            let error = mint(auth, &args).expect_err("refused").into_exit_error();
            assert!(
                error.is::<observability::SettingRefused>(),
                "{error} exits 2"
            );
        }
    }

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ttl("120"), Ok(Duration::from_secs(120)));
        for bad in ["", "0s", "1w", "h", "-1h", "400d", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_minted_token_verifies_with_the_same_settings() {
        let auth = AuthConfig {
            jwt_secret: Some("a-test-secret-of-at-least-32-bytes!!".into()),
            issuer: Some("wallex".into()),
            audience: Some("wallex-api".into()),
            ..AuthConfig::default()
        };
        let args = TokenArgs {
            sub: "user-456".into(),
            scope: "wallets".into(),
            ttl: Duration::from_secs(60),
        };
        let token = mint(&auth, &args).expect("minted");
        let secret = auth.jwt_secret.as_deref().expect("secret").as_bytes();
        let verifier = identity::Verifier::new(
            Some(identity::KeySet::secret(secret).expect("secret")),
            None,
            auth.issuer.clone(),
            auth.audience.clone(),
        );
        let principal = verifier.verify(&token).expect("verifies");
        assert_eq!(principal.subject(), Some("user-456"));
        assert!(matches!(
            mint(&AuthConfig::default(), &args),
            Err(TokenError::NoSecret)
        ));
    }

    #[test]
    fn a_token_the_server_would_refuse_is_not_printed() {
        let auth = signing();
        let short = AuthConfig {
            jwt_secret: Some("short".into()),
            ..AuthConfig::default()
        };
        let refused = mint(&short, &args("user-1", "wallets"));
        assert!(
            matches!(&refused, Err(TokenError::Secret(refusal))
                if matches!(refusal.refusal().downcast_ref(), Some(identity::KeyError::SecretTooShort))),
            "{refused:?}"
        );
        let status = observability::exit_code("command-api", refused.map(drop).map_err(Into::into));
        assert_eq!(
            status,
            std::process::ExitCode::from(observability::EXIT_STATUS_BAD_SETTING),
            "a secret refused by its own rules is a bad setting"
        );
        for sub in [
            "",
            "a\u{0}b",
            "bob ",
            "\u{feff}",
            &"u".repeat(identity::SUBJECT_LENGTH_MAX + 1),
        ] {
            assert!(
                matches!(
                    mint(&auth, &args(sub, "wallets")),
                    Err(TokenError::Refused(_))
                ),
                "{sub:?}"
            );
        }
        for sub in [
            "auth0|123",
            "a.b+c@example.com",
            "urn:x:y",
            &"u".repeat(255),
        ] {
            assert!(mint(&auth, &args(sub, "wallets")).is_ok(), "{sub:?}");
        }
        for sub in ["bob smith", "a/b", "zoë", "100%"] {
            assert!(
                matches!(
                    mint(&auth, &args(sub, "deposits wallets")),
                    Err(TokenError::NotAnOwner { .. })
                ),
                "{sub:?}"
            );
            assert!(mint(&auth, &args(sub, "admin")).is_ok(), "{sub:?}");
        }
        for scope in ["wallet", "wallets admins", "wallets\tadmin"] {
            assert!(
                matches!(
                    mint(&auth, &args("user-1", scope)),
                    Err(TokenError::UnknownScope { .. })
                ),
                "{scope:?}"
            );
        }
        for scope in ["", " "] {
            assert!(
                matches!(
                    mint(&auth, &args("user-1", scope)),
                    Err(TokenError::NoScope)
                ),
                "{scope:?}"
            );
        }
        for scope in ["wallets", "deposits admin", "wallets  deposits"] {
            assert!(mint(&auth, &args("user-1", scope)).is_ok(), "{scope:?}");
        }
    }
}
