//! Configuration, from flags or the environment.

use clap::builder::RangedU64ValueParser;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use event_store_choice::EventStoreArgs;
use observability::LogFormat;

/// The leader's batches fail in a row this long, in ms, before it steps
/// down: two of Kafka's default message timeouts.
pub const RELAY_STEP_DOWN_AFTER_FAILING_MS_DEFAULT: u64 =
    2 * event_bus::PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT;
/// The longest `RELAY_POLL_INTERVAL_MS` accepted, in ms (the least is 1: 0
/// polls the log without pause).
pub const RELAY_POLL_INTERVAL_MS_MAX: u64 = 60_000;
/// The longest `RELAY_RETRY_BACKOFF_MS` accepted, in ms (the least is 1: 0
/// doubles to 0, retrying a failed batch without pause).
pub const RELAY_RETRY_BACKOFF_MS_MAX: u64 = 60_000;
/// The longest `RELAY_LINGER_MS` and `KAFKA_LINGER_MS` accepted, in ms: each
/// adds up to that much lag to every event.
pub const RELAY_LINGER_MS_MAX: u64 = 5_000;
/// The longest `KAFKA_MESSAGE_TIMEOUT_MS` accepted, in ms (the least is 1:
/// librdkafka reads 0 as no bound, so a message Kafka never takes would
/// hold its batch for ever).
pub const KAFKA_MESSAGE_TIMEOUT_MS_MAX: u64 = 600_000;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "outbox-relay",
    version,
    about = "Publishes the Wallex event log (PostgreSQL or KurrentDB) to Kafka in order; one leader among replicas"
)]
pub struct Config {
    /// PostgreSQL of the event store, the relay's checkpoint and its leader lock.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Where the events are read from (EVENT_STORE, KURRENTDB_URL).
    #[command(flatten)]
    pub event_store: EventStoreArgs,
    /// Kafka bootstrap servers, comma-separated host:port entries (a host alone: port 9092; port 1 to
    /// 65535).
    #[arg(long, env = "KAFKA_BROKERS", value_parser = event_bus::brokers_list)]
    pub kafka_brokers: String,
    /// Topic the events are published to (key = wallet id).
    #[arg(long, env = "KAFKA_TOPIC", default_value = event_bus::TOPIC_DEFAULT,
          value_parser = event_bus::topic_name)]
    pub kafka_topic: String,
    /// Address of the health and metrics endpoints.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub host: String,
    /// Port of the health and metrics endpoints (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,
    /// Events read from the log (or taken from KurrentDB's subscription) and
    /// published per batch (at most 1000): the most events the relay holds.
    #[arg(long, env = "RELAY_BATCH_SIZE", default_value_t = 500,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=event_store::READ_ALL_BATCH_MAX as u64))]
    pub relay_batch_size: usize,
    /// How often the PostgreSQL log is polled for events appended by other
    /// processes (KurrentDB's subscription brings them without polling).
    #[arg(long, env = "RELAY_POLL_INTERVAL_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=RELAY_POLL_INTERVAL_MS_MAX))]
    pub relay_poll_interval_ms: u64,
    /// Pause before a failed batch is tried again, or a failed KurrentDB
    /// subscription is opened again from the checkpoint, in ms; it doubles
    /// with each failure in a row, up to `event_relay::RELAY_RETRY_BACKOFF_MAX_MS`.
    #[arg(long, env = "RELAY_RETRY_BACKOFF_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=RELAY_RETRY_BACKOFF_MS_MAX))]
    pub relay_retry_backoff_ms: u64,
    /// Wait after a wake-up (or a subscription's first event) before the batch
    /// is closed, so one batch carries many appends.
    #[arg(long, env = "RELAY_LINGER_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=RELAY_LINGER_MS_MAX))]
    pub relay_linger_ms: u64,
    /// How long, in ms, the leader's batches may fail in a row before it
    /// gives up the leadership (and stands by, sitting out
    /// `STEP_DOWN_SIT_OUT_MS` first), so a replica whose path to the log and
    /// to Kafka works publishes instead. At least two Kafka message timeouts
    /// is sensible: a batch Kafka cannot take fails after one.
    #[arg(long, env = "RELAY_STEP_DOWN_AFTER_FAILING_MS", default_value_t = RELAY_STEP_DOWN_AFTER_FAILING_MS_DEFAULT,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub relay_step_down_after_failing_ms: u64,
    /// How long Kafka gets to acknowledge one message, retries included.
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = event_bus::PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=KAFKA_MESSAGE_TIMEOUT_MS_MAX))]
    pub kafka_message_timeout_ms: u64,
    /// How long the producer waits to fill a request.
    #[arg(long, env = "KAFKA_LINGER_MS", default_value_t = event_bus::PRODUCER_LINGER_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=RELAY_LINGER_MS_MAX))]
    pub kafka_linger_ms: u64,
    /// PostgreSQL connections of the pool (the leader lock has its own), 1 to 1000.
    #[arg(long, env = "DATABASE_CONNECTIONS_MAX", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(postgres_support::POOL_CONNECTIONS_MAX_LIMIT)))]
    pub database_connections_max: u32,
    /// Seconds the HTTP server gives requests in flight on SIGTERM, 0 to 3600.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=observability::SHUTDOWN_TIMEOUT_SECONDS_MAX))]
    pub shutdown_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// From the process's arguments and environment, checked as
    /// [`Config::try_parse_checked`] does; on `--help`, `--version` or a bad
    /// setting prints clap's message and exits (2 for a bad setting).
    pub fn from_env() -> Self {
        Self::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// The configuration from `arguments` (the program's name first) and
    /// the environment, with what clap's parsers cannot see checked before
    /// any connection: `DATABASE_URL` must be a PostgreSQL URL.
    pub fn try_parse_checked<I, T>(arguments: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let config = Self::try_parse_from(arguments)?;
        postgres_support::check_database_url(&config.database_url)
            .map_err(|refusal| Self::command().error(ErrorKind::ValueValidation, refusal))?;
        Ok(config)
    }

    /// A replica for tests: a free port on 127.0.0.1 and a short poll interval.
    pub fn for_test(database_url: &str, kafka_brokers: &str, kafka_topic: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            event_store: EventStoreArgs::postgres(),
            kafka_brokers: kafka_brokers.to_owned(),
            kafka_topic: kafka_topic.to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 0,
            relay_batch_size: 500,
            relay_poll_interval_ms: 50,
            relay_retry_backoff_ms: 200,
            relay_linger_ms: 5,
            relay_step_down_after_failing_ms: RELAY_STEP_DOWN_AFTER_FAILING_MS_DEFAULT,
            kafka_message_timeout_ms: event_bus::PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT,
            kafka_linger_ms: event_bus::PRODUCER_LINGER_MS_DEFAULT,
            database_connections_max: 4,
            shutdown_timeout_seconds: 5,
            log_format: LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits_parse() {
        let config = Config::try_parse_from([
            "outbox-relay",
            "--database-url",
            "postgres://localhost/wallex",
            "--kafka-brokers",
            "localhost:9092",
        ])
        .expect("the required settings suffice");
        assert_eq!(config.kafka_topic, "wallet-events");
        assert_eq!(config.port, 3001);
        assert_eq!(config.relay_batch_size, 500);

        let too_big = Config::try_parse_from([
            "outbox-relay",
            "--database-url",
            "postgres://localhost/wallex",
            "--kafka-brokers",
            "localhost:9092",
            "--relay-batch-size",
            "5000",
        ]);
        assert!(
            too_big.is_err(),
            "a batch beyond the store's read limit is refused"
        );
    }

    fn parsed(extra: &str) -> Result<Config, clap::Error> {
        let line = format!(
            "outbox-relay --database-url postgres://localhost/wallex --kafka-brokers k:9092 {extra}"
        );
        Config::try_parse_checked(line.split_whitespace())
    }

    #[test]
    fn a_database_url_of_another_scheme_is_refused_as_a_bad_setting() {
        for url in ["mysql://u:p@h/db", "redis://h:6379", "postgress://u:p@h/db"] {
            let refused = Config::try_parse_checked([
                "outbox-relay",
                "--database-url",
                url,
                "--kafka-brokers",
                "k:9092",
            ])
            .expect_err(url);
            assert_eq!(refused.kind(), ErrorKind::ValueValidation, "{url}");
            assert_eq!(refused.exit_code(), 2, "{url}");
            assert!(refused.to_string().contains("DATABASE_URL"), "{refused}");
        }
        assert!(parsed("").is_ok());
    }

    #[test]
    fn the_embedded_store_empty_names_and_kurrentdb_without_url_are_refused_at_parse_time() {
        for refused in [
            "--event-store embedded",
            "--event-store kurrentdb",
            "--kafka-topic=",
            "--host=",
        ] {
            let error = parsed(refused).expect_err(refused);
            assert_eq!(error.exit_code(), 2, "{refused}");
        }
        let kurrentdb =
            parsed("--event-store kurrentdb --kurrentdb-url kurrentdb://k:2113?tls=false");
        assert!(kurrentdb.is_ok(), "{kurrentdb:?}");
    }

    #[test]
    fn a_brokers_list_or_a_topic_kafka_would_refuse_is_a_bad_setting() {
        for brokers in [",", " ", "k:9092,", "kafka 9092", "k:0"] {
            let refused = Config::try_parse_checked([
                "outbox-relay",
                "--database-url",
                "postgres://h/db",
                "--kafka-brokers",
                brokers,
            ])
            .expect_err(brokers);
            assert_eq!(refused.exit_code(), 2, "{brokers:?}");
            assert!(refused.to_string().contains("entry"), "{refused}");
        }
        for topic in ["--kafka-topic=bad-topic!", "--kafka-topic=.."] {
            let refused = parsed(topic).expect_err(topic);
            assert_eq!(refused.exit_code(), 2, "{topic}");
        }
        assert!(parsed("--kafka-topic=wallet.events_2").is_ok());
    }

    #[test]
    fn a_size_or_an_interval_that_must_be_positive_is_refused_at_zero() {
        for refused in [
            "--database-connections-max 0",
            "--database-connections-max 1001",
            "--relay-poll-interval-ms 0",
            "--relay-retry-backoff-ms 0",
            "--kafka-message-timeout-ms 0",
            "--relay-linger-ms 5001",
            "--kafka-linger-ms 5001",
            "--shutdown-timeout-seconds 3601",
        ] {
            assert!(parsed(refused).is_err(), "{refused}");
        }
        let bounds = parsed(
            "--database-connections-max 1000 --relay-poll-interval-ms 1 --relay-retry-backoff-ms 1 \
             --kafka-message-timeout-ms 1 --relay-linger-ms 0 --kafka-linger-ms 0 \
             --shutdown-timeout-seconds 0",
        )
        .expect("the bounds are accepted");
        assert_eq!(bounds.database_connections_max, 1_000);
    }
}
