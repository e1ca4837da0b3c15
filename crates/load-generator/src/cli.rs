//! Command-line options of `wallex-load`. Defaults reproduce the seed's full load test:
//! 1000 wallets, 20000 operations, 20 workers.

use clap::Parser;
use rust_decimal::Decimal;

/// Upper bounds on the sizes a run may ask for, so a typo cannot plan an unbounded run.
pub const WALLETS_MAX: usize = 1_000_000;
pub const OPERATIONS_MAX: usize = 10_000_000;
pub const WORKERS_MAX: usize = 1_024;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "wallex-load",
    version,
    about = "Load test for a running Wallex server: create wallets, run a mix of credits, \
             debits and transfers, then verify that money was conserved."
)]
pub struct Args {
    /// Base URL of the running server.
    #[arg(long, env = "WALLEX_LOAD_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// Number of wallets to create in phase 1.
    #[arg(long, default_value_t = 1000, value_parser = parse_wallets)]
    pub wallets: usize,

    /// Number of credit/debit/transfer operations in phase 2.
    #[arg(long, default_value_t = 20000, value_parser = parse_operations)]
    pub operations: usize,

    /// Number of concurrent worker tasks (and of pooled keep-alive connections).
    #[arg(long, default_value_t = 20, value_parser = parse_workers)]
    pub workers: usize,

    /// Seed of the random generator that plans the operations; random when absent.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Initial balance of every created wallet.
    #[arg(long, default_value = "1000", value_parser = parse_initial_balance)]
    pub initial_balance: Decimal,

    /// Run identifier used in wallet ids (`load-<run-id>-<n>`); random when absent,
    /// so repeated runs against one server use fresh wallets.
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,

    /// Print the report as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Accepted for the seed's command line (`quick_load_test.py … --fast`,
    /// its README's load test): this generator never paces its requests,
    /// so it is always as fast, and the flag changes nothing.
    #[arg(long)]
    pub fast: bool,
    /// A consumer whose acknowledgement-to-write lag to report, as
    /// NAME=URL of its /metrics (repeatable), e.g. ledger=http://127.0.0.1:3002/metrics;
    /// reported per handler, as NAME/handler when the consumer runs more than one.
    #[arg(long = "lag-metrics", value_parser = crate::lag::parse_lag_source)]
    pub lag_metrics: Vec<crate::lag::LagSource>,

    /// Bearer token sent with every request, for a server with authentication
    /// on. It needs the admin scope: the load opens wallets with a balance for
    /// many owners and moves money between them.
    #[arg(long, env = "WALLEX_LOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Without --token: mint an admin token (sub `wallex-load`) signed with
    /// this HS256 secret, the server's AUTH_JWT_SECRET.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Issuer of the minted token, when the server checks one (AUTH_ISSUER).
    #[arg(long, env = "AUTH_ISSUER")]
    pub issuer: Option<String>,
    /// Audience of the minted token, when the server checks one (AUTH_AUDIENCE).
    #[arg(long, env = "AUTH_AUDIENCE")]
    pub audience: Option<String>,
}

/// How long a minted token is valid: longer than any run the bounds allow.
pub const MINTED_TOKEN_TTL_SECONDS: u64 = 24 * 3600;
/// The principal of a minted token.
pub const MINTED_TOKEN_SUBJECT: &str = "wallex-load";

impl Args {
    /// The bearer token to send: `--token`, or one minted from `--jwt-secret`;
    /// `None` for a server without authentication.
    pub fn bearer_token(&self) -> Result<Option<String>, identity::MintError> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        let Some(secret) = &self.jwt_secret else {
            return Ok(None);
        };
        let claims = identity::Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            ..identity::Claims::new(
                MINTED_TOKEN_SUBJECT,
                "admin",
                std::time::Duration::from_secs(MINTED_TOKEN_TTL_SECONDS),
            )
        };
        identity::mint_hs256(secret.as_bytes(), &claims).map(Some)
    }
}

fn parse_bounded(value: &str, name: &str, maximum: usize) -> Result<usize, String> {
    let parsed: usize = value
        .parse()
        .map_err(|error| format!("Failed to parse {name} `{value}`: {error}"))?;
    if parsed == 0 || parsed > maximum {
        return Err(format!(
            "{name} must be between 1 and {maximum}, got {parsed}"
        ));
    }
    Ok(parsed)
}

fn parse_wallets(value: &str) -> Result<usize, String> {
    parse_bounded(value, "wallets", WALLETS_MAX)
}

fn parse_operations(value: &str) -> Result<usize, String> {
    parse_bounded(value, "operations", OPERATIONS_MAX)
}

fn parse_workers(value: &str) -> Result<usize, String> {
    parse_bounded(value, "workers", WORKERS_MAX)
}

fn parse_initial_balance(value: &str) -> Result<Decimal, String> {
    let parsed: Decimal = value
        .parse()
        .map_err(|error| format!("Failed to parse initial balance `{value}`: {error}"))?;
    if parsed.is_sign_negative() || parsed.scale() > 2 || parsed > wallet_domain::AMOUNT_MAX {
        return Err(format!(
            "initial balance must be from 0 to {} with at most 2 decimal places, got {value}",
            wallet_domain::AMOUNT_MAX
        ));
    }
    Ok(parsed)
}

/// Run ids end up in URL paths, so they are restricted to characters that need no escaping.
fn parse_run_id(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "run id must be 1 to 32 ASCII letters, digits or '-', got `{value}`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_load_test() -> Result<(), clap::Error> {
        let args = Args::try_parse_from(["wallex-load"])?;
        assert_eq!(args.url, "http://127.0.0.1:3000");
        assert_eq!(args.wallets, 1000);
        assert_eq!(args.operations, 20000);
        assert_eq!(args.workers, 20);
        assert_eq!(args.initial_balance, Decimal::new(1000, 0));
        assert_eq!(args.seed, None);
        assert_eq!(args.run_id, None);
        assert!(!args.json);
        Ok(())
    }

    #[test]
    fn the_seeds_documented_load_test_command_lines_are_taken() -> Result<(), clap::Error> {
        // The seed README's "Quick" and "Full" load tests, as written there.
        for (line, wallets, operations, workers) in [
            (
                "--wallets 100 --operations 1000 --fast --workers 10",
                100,
                1000,
                10,
            ),
            (
                "--wallets 1000 --operations 20000 --fast --workers 20",
                1000,
                20000,
                20,
            ),
        ] {
            let args = Args::try_parse_from(std::iter::once("wallex-load").chain(line.split(' ')))?;
            assert_eq!(
                (args.wallets, args.operations, args.workers, args.fast),
                (wallets, operations, workers, true),
                "{line}"
            );
        }
        Ok(())
    }

    #[test]
    fn an_initial_balance_is_one_a_wallet_may_open_with() {
        for refused in ["-5", "0.001", "1000000000000.01", "1e13", "x"] {
            let parsed = Args::try_parse_from(["wallex-load", "--initial-balance", refused]);
            assert!(parsed.is_err(), "{refused}");
        }
        for accepted in ["0", "1000000000000.00", "12.5"] {
            let parsed = Args::try_parse_from(["wallex-load", "--initial-balance", accepted]);
            assert!(parsed.is_ok(), "{accepted}");
        }
    }

    #[test]
    fn a_token_is_given_or_minted_from_the_secret() -> Result<(), Box<dyn std::error::Error>> {
        let given = Args::try_parse_from(["wallex-load", "--token", "abc", "--jwt-secret", "x"])?;
        assert_eq!(given.bearer_token()?, Some("abc".to_owned()));
        let secret = "a-test-secret-of-at-least-32-bytes!!";
        let minted = Args::try_parse_from(["wallex-load", "--jwt-secret", secret])?;
        let token = minted.bearer_token()?.ok_or("a minted token")?;
        let verifier = identity::Verifier::new(
            Some(identity::KeySet::secret(secret.as_bytes())?),
            None,
            None,
            None,
        );
        let principal = verifier.verify(&token)?;
        assert_eq!(principal.subject(), Some(MINTED_TOKEN_SUBJECT));
        assert!(principal.has(identity::Scope::Admin));
        Ok(())
    }

    #[test]
    fn rejects_zero_workers_and_bad_run_ids() {
        assert!(Args::try_parse_from(["wallex-load", "--workers", "0"]).is_err());
        assert!(Args::try_parse_from(["wallex-load", "--run-id", "a/b"]).is_err());
        assert!(Args::try_parse_from(["wallex-load", "--initial-balance", "1.001"]).is_err());
        assert!(Args::try_parse_from(["wallex-load", "--initial-balance", "-1"]).is_err());
    }
}
