//! Configuration, from flags or the environment, with defaults that run the
//! whole system in one process on embedded storage.

/// Where the events are stored: one choice for every binary and command.
pub use event_store_choice::EventStoreKind;
use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use observability::LogFormat;

/// The most HTTP worker threads (`HTTP_WORKERS`) accepted.
pub const HTTP_WORKERS_MAX: u64 = 256;

/// Connections one HTTP worker serves at once by default
/// (`HTTP_CONNECTIONS_PER_WORKER`): more wait in the listen backlog until one
/// closes. It bounds the requests in flight, and so the memory they hold
/// (a copy of each request's wallet state: README, "Memory").
pub const HTTP_CONNECTIONS_PER_WORKER_DEFAULT: usize = 4_096;
/// The most `HTTP_CONNECTIONS_PER_WORKER` accepted (actix-web's own default).
pub const HTTP_CONNECTIONS_PER_WORKER_MAX: u64 = 25_000;

/// The secret's flag, refused by [`Config::try_parse_checked`].
const SECRET_ARGUMENT_ID: &str = "jwt_secret";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "command-api",
    version,
    about = "Wallex REST API (embedded default: the whole system in one process)"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on (default: 0.0.0.0 with authentication on or
    /// AUTH=none; 127.0.0.1 on the embedded default without AUTH_* settings,
    /// which then refuses any address but loopback).
    #[arg(long, env = "HOST")]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Folder of the embedded storage (SQLite files).
    #[arg(long, env = "WALLEX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HTTP worker threads, 1 to 256 (default: one per core).
    #[arg(long, env = "HTTP_WORKERS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=HTTP_WORKERS_MAX))]
    pub http_workers: Option<usize>,
    /// Connections each HTTP worker serves at once, 1 to 25,000; more wait
    /// in the listen backlog until one closes.
    #[arg(long, env = "HTTP_CONNECTIONS_PER_WORKER", default_value_t = HTTP_CONNECTIONS_PER_WORKER_DEFAULT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=HTTP_CONNECTIONS_PER_WORKER_MAX))]
    pub http_connections_per_worker: usize,
    /// Seconds in-flight requests get to finish on SIGTERM, 0 to 3600.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=observability::SHUTDOWN_TIMEOUT_SECONDS_MAX))]
    pub shutdown_timeout_seconds: u64,
    /// Seconds a request's whole body may take to arrive once it is read;
    /// past them the answer is 408 and the connection is closed. 1 to 300.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECONDS", default_value_t = crate::http::BODY_READ_TIMEOUT_SECONDS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=crate::http::BODY_READ_TIMEOUT_SECONDS_MAX))]
    pub body_read_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Where events are stored (default: postgres when DATABASE_URL is set, else embedded).
    #[arg(long, env = "EVENT_STORE", value_enum)]
    pub event_store: Option<EventStoreKind>,
    /// How a transfer is stored: `atomic` (one append to both wallets) or
    /// `process` (the crash-safe transfer process, one wallet at a time).
    /// Default: atomic when the store can append to two streams at once
    /// (embedded, postgres), process otherwise (kurrentdb).
    #[arg(long, env = "TRANSFERS", value_enum)]
    pub transfers: Option<TransferMode>,
    /// PostgreSQL of the distributed mode: event store, ledger, read model.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// KurrentDB connection string, when EVENT_STORE=kurrentdb
    /// (e.g. kurrentdb://127.0.0.1:2113?tls=false); DATABASE_URL still holds
    /// the ledger and the read model.
    #[arg(long, env = "KURRENTDB_URL", hide_env_values = true)]
    pub kurrentdb_url: Option<String>,
    /// PostgreSQL connections of the read pool, 1 to 1000.
    #[arg(long, env = "DATABASE_CONNECTIONS_MAX", default_value_t = postgres_support::POOL_CONNECTIONS_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(postgres_support::POOL_CONNECTIONS_MAX_LIMIT)))]
    pub database_connections_max: u32,
    /// Bound on one PostgreSQL read statement, in milliseconds (the event
    /// store's writer has connections and bounds of its own), 1 to 600000.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = postgres_support::READ_STATEMENT_TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=postgres_support::READ_STATEMENT_TIMEOUT_MS_MAX))]
    pub database_statement_timeout_ms: u64,
    /// Redis for per-wallet locks shared by replicas (default: in-process
    /// locks): redis://, rediss:// or unix://, as the redis crate parses it.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What every wallet lock's Redis key starts with, before the wallet id:
    /// deployments sharing one Redis each set their own.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = wallet_lock::LOCK_KEY_PREFIX_DEFAULT,
          value_parser = NonEmptyStringValueParser::new())]
    pub redis_key_prefix: String,
    /// Kafka brokers, for the publisher health endpoints of the distributed
    /// mode: comma-separated host:port entries (a host alone: port 9092; port 1 to 65535).
    #[arg(long, env = "KAFKA_BROKERS", value_parser = event_bus::brokers_list)]
    pub kafka_brokers: Option<String>,
    /// Topic the outbox relay publishes to (a name Kafka takes: ASCII
    /// letters, digits, '.', '_' and '-').
    #[arg(long, env = "KAFKA_TOPIC", default_value = event_bus::TOPIC_DEFAULT,
          value_parser = event_bus::topic_name)]
    pub kafka_topic: String,
    /// Consumer group of `ledger-consumer` (its `KAFKA_GROUP_ID`): a ledger
    /// read waits for it to reach the writes acknowledged before the read.
    #[arg(long, env = "LEDGER_CONSUMER_GROUP", default_value = "wallex-ledger",
          value_parser = NonEmptyStringValueParser::new())]
    pub ledger_consumer_group: String,
    /// Consumer group of `projection-consumer` (its `KAFKA_GROUP_ID`): a read
    /// of the read model or of the search index waits for it the same way.
    #[arg(long, env = "PROJECTION_CONSUMER_GROUP", default_value = "wallex-projection",
          value_parser = NonEmptyStringValueParser::new())]
    pub projection_consumer_group: String,
    /// Elasticsearch or OpenSearch serving transaction history and search in
    /// the distributed mode (the embedded default has its own SQLite index):
    /// an http:// or https:// URL with a host.
    #[arg(long, env = "ELASTICSEARCH_URL", hide_env_values = true)]
    pub elasticsearch_url: Option<String>,
    /// Prefix of the indices `<prefix>-wallets` and `<prefix>-transactions`
    /// (the projection-consumer's, which fills them).
    #[arg(long, env = "ELASTICSEARCH_INDEX_PREFIX", default_value = "wallex")]
    pub elasticsearch_index_prefix: String,
    /// Bound on one request to the search server, connection included, in
    /// ms: 1 to 600000.
    #[arg(long, env = "ELASTICSEARCH_REQUEST_TIMEOUT_MS", default_value_t = search_index::REQUEST_TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=search_index::REQUEST_TIMEOUT_MS_MAX))]
    pub elasticsearch_request_timeout_ms: u64,
    /// Hours a stored idempotent response answers retries of its key; older
    /// ones are purged and their keys may serve again (embedded and postgres
    /// stores; on kurrentdb keys do not expire). 1 to 87600 (ten years):
    /// 0 would let every retry run again.
    #[arg(long, env = "IDEMPOTENCY_RETENTION_HOURS", default_value_t = crate::retention::IDEMPOTENCY_RETENTION_HOURS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::retention::IDEMPOTENCY_RETENTION_HOURS_MAX)))]
    pub idempotency_retention_hours: u32,
    /// MiB the wallet cache holds at most: recently used wallets with their
    /// newest events (see `wallets::footprint`); the least used are evicted
    /// past it, and a read of an evicted wallet goes to the store. 1 to 65536.
    #[arg(long, env = "WALLET_CACHE_MIB", default_value_t = crate::wallets::WALLET_CACHE_MIB_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::wallets::WALLET_CACHE_MIB_MAX)))]
    pub wallet_cache_mib: u32,
    /// Origins whose pages may send commands besides this server's own, as
    /// a browser writes them in `Origin` (`https://app.example.com`,
    /// `http://localhost:5173`), comma-separated: a web app served from
    /// another origin, or behind a proxy that gives this server another
    /// `Host`. Compared whole (scheme, host and port), case aside.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',',
          value_parser = crate::http::allowed_origin)]
    pub allowed_origins: Vec<String>,
    #[command(flatten)]
    pub auth: AuthConfig,
}

/// Authentication and rate limiting (see `crate::access` for the modes).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthConfig {
    /// `none` runs without authentication, on any address and backend (every
    /// caller may do everything): only behind something that authenticates.
    #[arg(long = "auth", env = "AUTH", value_enum)]
    pub switch: Option<AuthSwitch>,
    /// HS256 shared secret of bearer tokens (at least 32 bytes); also what
    /// `command-api token` signs with. From the environment only: the flag
    /// is refused, as every user of the host reads a process's arguments
    /// (`ps`).
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// File of PEM public keys or a JWKS document (RS256, ES256, EdDSA),
    /// re-read when it changes.
    #[arg(long, env = "AUTH_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
    /// Issuer (`iss`) every token must carry, when set; `command-api token` sets it.
    /// An empty value, or one with white space at either end, is refused (it
    /// would demand that exact text of every token).
    #[arg(long, env = "AUTH_ISSUER", value_parser = claim_value)]
    pub issuer: Option<String>,
    /// Audience (`aud`) every token must carry, when set; `command-api token` sets it.
    /// An empty value, or one with white space at either end, is refused (it
    /// would demand that exact text of every token).
    #[arg(long, env = "AUTH_AUDIENCE", value_parser = claim_value)]
    pub audience: Option<String>,
    /// Requests per second each principal may make, sustained (0: no limit).
    /// Applies only with a key (`AUTH_JWT_SECRET`, `AUTH_JWT_PUBLIC_KEYS`):
    /// without one there is no principal to count for.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = crate::access::RATE_LIMIT_PER_SECOND_DEFAULT)]
    pub rate_limit_per_second: u32,
    /// Requests a principal may make at once: the size of its bucket, which
    /// refills at the sustained rate (0: the sustained rate).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = crate::access::RATE_LIMIT_BURST_DEFAULT)]
    pub rate_limit_burst: u32,
}

/// An issuer or audience to demand of every token: not empty, and no white
/// space at either end (a template's stray space would refuse every token).
fn claim_value(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.trim() != raw {
        return Err(
            "must be the exact iss or aud text: not empty, no white space at either end".into(),
        );
    }
    Ok(raw.to_owned())
}

/// The one value of `AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthSwitch {
    /// No authentication: every caller may do everything.
    #[value(name = "none")]
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Applies the PostgreSQL migrations to DATABASE_URL, then exits (the
    /// deployment's migration Job; the services also apply them at start-up).
    Migrate,
    /// Prints a bearer token signed with AUTH_JWT_SECRET (with AUTH_ISSUER and
    /// AUTH_AUDIENCE when set), then exits.
    Token(TokenArgs),
    /// Hands the events the in-process relays parked (embedded store, in
    /// WALLEX_DATA_DIR) back to their sinks in position order, then says how
    /// many each sink took.
    ReplayDeadLetters(ReplayDeadLettersArgs),
}

/// `command-api replay-dead-letters [--sink ledger] [--limit 10000]`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReplayDeadLettersArgs {
    /// The sink whose dead letters to replay; every sink when absent.
    #[arg(long, value_enum)]
    pub sink: Option<RelaySink>,
    /// Dead letters to replay at most, per sink.
    #[arg(long, default_value_t = DEAD_LETTER_REPLAY_LIMIT_DEFAULT)]
    pub limit: usize,
}

/// Dead letters one `replay-dead-letters` hands back per sink, by default.
pub const DEAD_LETTER_REPLAY_LIMIT_DEFAULT: usize = 10_000;

/// A sink of the in-process relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RelaySink {
    Ledger,
    ReadModel,
    SearchIndex,
}

/// `command-api token --sub user-456 --scope wallets --ttl 1h`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TokenArgs {
    /// The principal (`sub`); with the wallets scope, the ownerId of its wallets.
    #[arg(long)]
    pub sub: String,
    /// Space-separated scopes, each wallets, deposits or admin (another word is refused).
    #[arg(long)]
    pub scope: String,
    /// How long the token is valid: a number and a unit, s, m, h or d (e.g. 90s, 1h, 7d);
    /// a bare number is seconds.
    #[arg(long, default_value = "1h", value_parser = crate::token::parse_ttl)]
    pub ttl: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransferMode {
    /// One atomic append to both wallet streams (embedded, postgres).
    Atomic,
    /// The crash-safe transfer process: intent, debit, credit or compensation, end.
    Process,
}

impl Config {
    pub fn event_store_kind(&self) -> EventStoreKind {
        self.event_store.unwrap_or(if self.database_url.is_some() {
            EventStoreKind::Postgres
        } else {
            EventStoreKind::Embedded
        })
    }

    /// The settings of the distributed mode that are given though the
    /// event store is the embedded one, which uses none of them (h140 F3:
    /// `EVENT_STORE=embedded` beside them started silently, writing to a
    /// local folder its consumers never see). Named for a warning at start.
    pub fn ignored_by_embedded(&self) -> Vec<&'static str> {
        if self.event_store_kind() != EventStoreKind::Embedded {
            return Vec::new();
        }
        [
            ("DATABASE_URL", self.database_url.is_some()),
            ("KURRENTDB_URL", self.kurrentdb_url.is_some()),
            ("KAFKA_BROKERS", self.kafka_brokers.is_some()),
            ("ELASTICSEARCH_URL", self.elasticsearch_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The defaults, rooted at `data_dir`, on a free port: for tests.
    pub fn embedded_for_test(data_dir: PathBuf) -> Self {
        Self {
            command: None,
            host: Some("127.0.0.1".into()),
            port: 0,
            data_dir,
            http_workers: Some(2),
            http_connections_per_worker: HTTP_CONNECTIONS_PER_WORKER_DEFAULT,
            shutdown_timeout_seconds: 5,
            body_read_timeout_seconds: crate::http::BODY_READ_TIMEOUT_SECONDS_DEFAULT,
            log_format: LogFormat::Text,
            event_store: None,
            transfers: None,
            database_url: None,
            kurrentdb_url: None,
            database_connections_max: postgres_support::POOL_CONNECTIONS_MAX_DEFAULT,
            database_statement_timeout_ms: postgres_support::READ_STATEMENT_TIMEOUT_MS_DEFAULT,
            redis_url: None,
            redis_key_prefix: wallet_lock::LOCK_KEY_PREFIX_DEFAULT.into(),
            kafka_brokers: None,
            kafka_topic: "wallet-events".into(),
            ledger_consumer_group: "wallex-ledger".into(),
            projection_consumer_group: "wallex-projection".into(),
            elasticsearch_url: None,
            elasticsearch_index_prefix: "wallex".into(),
            elasticsearch_request_timeout_ms: search_index::REQUEST_TIMEOUT_MS_DEFAULT,
            idempotency_retention_hours: crate::retention::IDEMPOTENCY_RETENTION_HOURS_DEFAULT,
            wallet_cache_mib: crate::wallets::WALLET_CACHE_MIB_DEFAULT,
            allowed_origins: Vec::new(),
            auth: AuthConfig {
                rate_limit_per_second: crate::access::RATE_LIMIT_PER_SECOND_DEFAULT,
                rate_limit_burst: crate::access::RATE_LIMIT_BURST_DEFAULT,
                ..AuthConfig::default()
            },
        }
    }
}

impl Config {
    /// The configuration from `arguments` (the program's name first) and the
    /// environment, as [`clap::Parser::try_parse_from`] reads it, but with
    /// `--jwt-secret` refused: the secret comes from `AUTH_JWT_SECRET`, which
    /// only the process's user reads, never from the arguments, which every
    /// user of the host reads.
    pub fn try_parse_checked<I, T>(arguments: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(arguments)?;
        if matches.value_source(SECRET_ARGUMENT_ID) == Some(ValueSource::CommandLine) {
            return Err(Self::command().error(
                ErrorKind::ArgumentConflict,
                "--jwt-secret is refused: every user of the host can read a process's \
                 arguments; set AUTH_JWT_SECRET in its environment instead",
            ));
        }
        let config = Self::from_arg_matches(&matches)?;
        // Before any connection: another database's URL is no PostgreSQL
        // that does not answer yet.
        if let Some(url) = &config.database_url {
            postgres_support::check_database_url(url)
                .map_err(|refusal| Self::command().error(ErrorKind::ValueValidation, refusal))?;
        }
        if let Some(url) = &config.redis_url {
            wallet_lock::check_redis_url(url)
                .map_err(|refusal| Self::command().error(ErrorKind::ValueValidation, refusal))?;
        }
        if let Some(url) = &config.elasticsearch_url {
            search_index::check_search_url(url)
                .map_err(|refusal| Self::command().error(ErrorKind::ValueValidation, refusal))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_secret_is_taken_from_the_environment_only() {
        let refused = Config::try_parse_checked(["command-api", "--jwt-secret", "s3cr3t-in-ps"])
            .expect_err("the flag is refused");
        assert_eq!(refused.kind(), ErrorKind::ArgumentConflict);
        assert!(refused.to_string().contains("AUTH_JWT_SECRET"), "{refused}");
        assert!(
            !refused.to_string().contains("s3cr3t-in-ps"),
            "the message does not repeat the secret: {refused}"
        );
        let plain = Config::try_parse_checked(["command-api", "--port", "3100"]).expect("parsed");
        assert_eq!(plain.port, 3100);
    }

    #[test]
    fn a_database_url_of_another_scheme_is_refused_as_a_bad_setting() {
        for url in ["mysql://u:p@h/db", "redis://h:6379", "postgress://u:p@h/db"] {
            let refused =
                Config::try_parse_checked(["command-api", "--database-url", url]).expect_err(url);
            assert_eq!(refused.exit_code(), 2, "{url}");
            assert!(refused.to_string().contains("DATABASE_URL"), "{refused}");
        }
        let accepted =
            Config::try_parse_checked(["command-api", "--database-url", "postgresql://u@h/db"]);
        assert!(accepted.is_ok());
    }

    #[test]
    fn an_elasticsearch_url_that_is_no_http_url_is_a_bad_setting() {
        for url in ["", "notaurl", "ftp://u:secret@h"] {
            let refused = Config::try_parse_checked(["command-api", "--elasticsearch-url", url])
                .expect_err(url);
            assert_eq!(refused.exit_code(), 2, "{url}");
            let message = refused.to_string();
            assert!(message.contains("ELASTICSEARCH_URL"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let accepted =
            Config::try_parse_checked(["command-api", "--elasticsearch-url", "http://os:9200"]);
        assert!(accepted.is_ok());
    }

    #[test]
    fn a_redis_url_the_redis_client_refuses_is_a_bad_setting() {
        for url in [
            "",
            "notaurl",
            "http://:secret@h",
            "redis://:secret@h/notadb",
        ] {
            let refused =
                Config::try_parse_checked(["command-api", "--redis-url", url]).expect_err(url);
            assert_eq!(refused.exit_code(), 2, "{url}");
            let message = refused.to_string();
            assert!(message.contains("REDIS_URL"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        let accepted =
            Config::try_parse_checked(["command-api", "--redis-url", "redis://:p@r:6379/1"]);
        assert!(accepted.is_ok());
    }

    #[test]
    fn the_distributed_settings_an_embedded_store_ignores_are_named() {
        let config = parsed(
            "--event-store embedded --database-url postgres://h/db --kafka-brokers k:9092 \
             --elasticsearch-url http://os:9200 --redis-url redis://r",
        )
        .expect("parsed");
        assert_eq!(
            config.ignored_by_embedded(),
            ["DATABASE_URL", "KAFKA_BROKERS", "ELASTICSEARCH_URL"]
        );
        let distributed =
            parsed("--database-url postgres://h/db --kafka-brokers k:9092").expect("parsed");
        assert!(distributed.ignored_by_embedded().is_empty());
        assert!(parsed("").expect("parsed").ignored_by_embedded().is_empty());
    }

    fn parsed(arguments: &str) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("command-api").chain(arguments.split_whitespace()))
    }

    #[test]
    fn settings_out_of_their_range_are_refused_at_start() {
        for refused in [
            "--http-workers 0",
            "--http-workers 257",
            "--idempotency-retention-hours 0",
            "--idempotency-retention-hours 87601",
            "--idempotency-retention-hours 4294967295",
            "--body-read-timeout-seconds 0",
            "--body-read-timeout-seconds 301",
            "--wallet-cache-mib 0",
            "--wallet-cache-mib 65537",
            "--database-connections-max 0",
            "--database-connections-max 1001",
            "--database-statement-timeout-ms 0",
            "--elasticsearch-request-timeout-ms 0",
            "--shutdown-timeout-seconds 3601",
        ] {
            assert!(parsed(refused).is_err(), "{refused}");
        }
        let accepted = parsed(
            "--http-workers 256 --idempotency-retention-hours 87600 --body-read-timeout-seconds 300 \
             --wallet-cache-mib 65536",
        )
        .expect("in range");
        assert_eq!(accepted.wallet_cache_mib, 65_536);
        assert_eq!(accepted.http_workers, Some(256));
        assert_eq!(accepted.body_read_timeout_seconds, 300);
        assert_eq!(accepted.idempotency_retention_hours, 87_600);
    }

    #[test]
    fn a_brokers_list_or_a_topic_kafka_would_refuse_is_a_bad_setting() {
        for refused in [
            ["--kafka-brokers", ","],
            ["--kafka-brokers", " "],
            ["--kafka-topic", ""],
            ["--kafka-topic", "bad topic!"],
        ] {
            let arguments = ["command-api", "--kafka-brokers", "k:9092"].into_iter();
            let error =
                Config::try_parse_checked(arguments.chain(refused)).expect_err(&refused.join(" "));
            assert_eq!(error.exit_code(), 2, "{refused:?}");
        }
        let accepted = parsed("--kafka-brokers k1:9092,k2:9092 --kafka-topic t.1").expect("parsed");
        assert_eq!(accepted.kafka_topic, "t.1");
    }

    #[test]
    fn an_empty_consumer_group_is_refused_at_start() {
        for setting in ["--ledger-consumer-group", "--projection-consumer-group"] {
            let refused = Config::try_parse_from(["command-api", setting, ""]);
            assert!(refused.is_err(), "{setting} empty");
        }
        let defaults = parsed("").expect("the defaults");
        assert_eq!(defaults.ledger_consumer_group, "wallex-ledger");
        assert_eq!(defaults.projection_consumer_group, "wallex-projection");
    }

    #[test]
    fn the_help_states_each_range_as_enforced_with_no_rustdoc_links() {
        use clap::CommandFactory;
        let help = Config::command().render_long_help().to_string();
        assert!(!help.contains("[`"), "{help}");
        for (setting, bound) in [
            ("HTTP worker threads, 1 to", HTTP_WORKERS_MAX),
            ("1 to", crate::http::BODY_READ_TIMEOUT_SECONDS_MAX),
            (
                "1 to",
                u64::from(crate::retention::IDEMPOTENCY_RETENTION_HOURS_MAX),
            ),
        ] {
            assert!(
                help.contains(&format!("{setting} {bound}")),
                "{setting} {bound}"
            );
        }
    }
}
