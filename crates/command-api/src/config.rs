//! Configuration, from flags or the environment, with defaults that run the
//! whole system in one process on embedded storage.

use std::path::PathBuf;

use observability::LogFormat;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "command-api",
    version,
    about = "Wallex REST API (embedded default: the whole system in one process)"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Folder of the embedded storage (SQLite files).
    #[arg(long, env = "WALLEX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub shutdown_timeout_seconds: u64,
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
    /// PostgreSQL connections this process holds at most.
    #[arg(long, env = "DATABASE_CONNECTIONS_MAX", default_value_t = postgres_support::POOL_CONNECTIONS_MAX_DEFAULT)]
    pub database_connections_max: u32,
    /// Bound on one PostgreSQL read statement, in milliseconds (the event
    /// store's writer has connections and bounds of its own).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = postgres_support::READ_STATEMENT_TIMEOUT_MS_DEFAULT)]
    pub database_statement_timeout_ms: u64,
    /// Redis for per-wallet locks shared by replicas (default: in-process locks).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Kafka brokers, for the publisher health endpoints of the distributed mode.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topic the outbox relay publishes to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "wallet-events")]
    pub kafka_topic: String,
    /// Elasticsearch or OpenSearch serving transaction history and search in
    /// the distributed mode (the embedded default has its own SQLite index).
    #[arg(long, env = "ELASTICSEARCH_URL", hide_env_values = true)]
    pub elasticsearch_url: Option<String>,
    /// Prefix of the indices `<prefix>-wallets` and `<prefix>-transactions`
    /// (the projection-consumer's, which fills them).
    #[arg(long, env = "ELASTICSEARCH_INDEX_PREFIX", default_value = "wallex")]
    pub elasticsearch_index_prefix: String,
    /// Bound on one request to the search server, connection included.
    #[arg(long, env = "ELASTICSEARCH_REQUEST_TIMEOUT_MS", default_value_t = search_index::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub elasticsearch_request_timeout_ms: u64,
    /// Hours a stored idempotent response answers retries of its key; older
    /// ones are purged and their keys may serve again (embedded and postgres
    /// stores; on kurrentdb keys do not expire).
    #[arg(long, env = "IDEMPOTENCY_RETENTION_HOURS", default_value_t = crate::retention::IDEMPOTENCY_RETENTION_HOURS_DEFAULT)]
    pub idempotency_retention_hours: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Applies the PostgreSQL migrations to DATABASE_URL, then exits (the
    /// deployment's migration Job; the services also apply them at start-up).
    Migrate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventStoreKind {
    /// SQLite files under WALLEX_DATA_DIR; relays, ledger and read model run in this process.
    Embedded,
    /// PostgreSQL at DATABASE_URL; outbox-relay, ledger-consumer and projection-consumer run apart.
    Postgres,
    /// KurrentDB at KURRENTDB_URL, the rest as with `postgres`. Transfers
    /// run as the transfer process (its journal on KurrentDB too).
    Kurrentdb,
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

    /// The defaults, rooted at `data_dir`, on a free port: for tests.
    pub fn embedded_for_test(data_dir: PathBuf) -> Self {
        Self {
            command: None,
            host: "127.0.0.1".into(),
            port: 0,
            data_dir,
            http_workers: Some(2),
            shutdown_timeout_seconds: 5,
            log_format: LogFormat::Text,
            event_store: None,
            transfers: None,
            database_url: None,
            kurrentdb_url: None,
            database_connections_max: postgres_support::POOL_CONNECTIONS_MAX_DEFAULT,
            database_statement_timeout_ms: postgres_support::READ_STATEMENT_TIMEOUT_MS_DEFAULT,
            redis_url: None,
            kafka_brokers: None,
            kafka_topic: "wallet-events".into(),
            elasticsearch_url: None,
            elasticsearch_index_prefix: "wallex".into(),
            elasticsearch_request_timeout_ms: search_index::REQUEST_TIMEOUT_MS_DEFAULT,
            idempotency_retention_hours: crate::retention::IDEMPOTENCY_RETENTION_HOURS_DEFAULT,
        }
    }
}
