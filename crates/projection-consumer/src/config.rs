//! Configuration, from flags or the environment.

use clap::builder::RangedU64ValueParser;
use observability::LogFormat;

/// Dead letters one `replay-dlq` run puts back at most, unless told otherwise.
pub const DLQ_REPLAY_LIMIT_DEFAULT: usize = 10_000;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projection-consumer",
    version,
    about = "Projects Wallex wallet events from Kafka into the PostgreSQL read model and the search index"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// PostgreSQL of the read model.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Kafka bootstrap servers, comma-separated.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// Elasticsearch or OpenSearch of the search index.
    #[arg(long, env = "ELASTICSEARCH_URL", hide_env_values = true)]
    pub elasticsearch_url: String,
    /// Topic of the wallet events (key = wallet id).
    #[arg(long, env = "KAFKA_TOPIC", default_value = event_bus::TOPIC_DEFAULT)]
    pub kafka_topic: String,
    /// Topic where events that cannot be projected are parked.
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = event_bus::DLQ_TOPIC_DEFAULT)]
    pub kafka_dlq_topic: String,
    /// Consumer group of this service's replicas.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "wallex-projection")]
    pub kafka_group_id: String,
    /// Events handed to the read model and the search index per batch.
    #[arg(long, env = "KAFKA_BATCH_SIZE", default_value_t = event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=search_index::BULK_EVENTS_MAX as u64))]
    pub kafka_batch_size: usize,
    /// Attempts at a failing batch before its messages are retried one by one.
    #[arg(long, env = "HANDLER_ATTEMPTS_MAX", default_value_t = event_bus::HANDLER_ATTEMPTS_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub handler_attempts_max: u32,
    /// Prefix of the indices `<prefix>-wallets` and `<prefix>-transactions`.
    #[arg(long, env = "ELASTICSEARCH_INDEX_PREFIX", default_value = "wallex")]
    pub elasticsearch_index_prefix: String,
    /// Bound on one request to the search index.
    #[arg(long, env = "ELASTICSEARCH_REQUEST_TIMEOUT_MS", default_value_t = search_index::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub elasticsearch_request_timeout_ms: u64,
    /// PostgreSQL connections of the pool.
    #[arg(long, env = "DATABASE_CONNECTIONS_MAX", default_value_t = 4)]
    pub database_connections_max: u32,
    /// Address of the health and metrics endpoints.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port of the health and metrics endpoints (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3003)]
    pub port: u16,
    /// Seconds the HTTP server gives requests in flight on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Puts this group's dead letters back on the topic (once their cause is
    /// fixed), then exits. Reads the same environment as the consumer.
    ReplayDlq {
        /// Dead letters to replay at most.
        #[arg(long, default_value_t = DLQ_REPLAY_LIMIT_DEFAULT)]
        limit: usize,
    },
}

impl Config {
    /// The bus settings of this consumer.
    pub fn consumer_config(&self) -> event_bus::ConsumerConfig {
        let mut consumer =
            event_bus::ConsumerConfig::new(&self.kafka_brokers, &self.kafka_group_id);
        consumer.topic = self.kafka_topic.clone();
        consumer.dlq_topic = self.kafka_dlq_topic.clone();
        consumer.batch_size_max = self.kafka_batch_size;
        consumer.handler_attempts_max = self.handler_attempts_max;
        consumer
    }

    /// A consumer for tests: a free port on 127.0.0.1.
    pub fn for_test(
        database_url: &str,
        kafka_brokers: &str,
        elasticsearch_url: &str,
        kafka_topic: &str,
        kafka_group_id: &str,
        elasticsearch_index_prefix: &str,
    ) -> Self {
        Self {
            command: None,
            database_url: database_url.to_owned(),
            kafka_brokers: kafka_brokers.to_owned(),
            elasticsearch_url: elasticsearch_url.to_owned(),
            kafka_topic: kafka_topic.to_owned(),
            kafka_dlq_topic: format!("{kafka_topic}-dlq"),
            kafka_group_id: kafka_group_id.to_owned(),
            kafka_batch_size: event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT,
            handler_attempts_max: event_bus::HANDLER_ATTEMPTS_MAX_DEFAULT,
            elasticsearch_index_prefix: elasticsearch_index_prefix.to_owned(),
            elasticsearch_request_timeout_ms: search_index::REQUEST_TIMEOUT_MS_DEFAULT,
            database_connections_max: 4,
            host: "127.0.0.1".to_owned(),
            port: 0,
            shutdown_timeout_seconds: 5,
            log_format: LogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const REQUIRED: [&str; 7] = [
        "projection-consumer",
        "--database-url",
        "postgres://localhost/wallex",
        "--kafka-brokers",
        "localhost:9092",
        "--elasticsearch-url",
        "http://localhost:9200",
    ];

    #[test]
    fn defaults_parse_from_the_required_settings() {
        let config = Config::try_parse_from(REQUIRED).expect("the required settings suffice");
        assert_eq!(config.command, None);
        assert_eq!(config.kafka_topic, "wallet-events");
        assert_eq!(config.kafka_group_id, "wallex-projection");
        assert_eq!(config.port, 3003);
        assert_eq!(config.elasticsearch_index_prefix, "wallex");
        let consumer = config.consumer_config();
        assert_eq!(consumer.group_id, "wallex-projection");
        assert_eq!(
            consumer.batch_size_max,
            event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT
        );
    }

    #[test]
    fn batches_beyond_one_bulk_request_are_refused() {
        let too_big = search_index::BULK_EVENTS_MAX + 1;
        let arguments = REQUIRED
            .iter()
            .map(|argument| argument.to_string())
            .chain(["--kafka-batch-size".to_owned(), too_big.to_string()]);
        assert!(Config::try_parse_from(arguments).is_err());
    }

    #[test]
    fn replay_dlq_is_a_subcommand_with_a_limit() {
        let arguments = REQUIRED
            .iter()
            .copied()
            .chain(["replay-dlq", "--limit", "5"]);
        let config = Config::try_parse_from(arguments).expect("replay-dlq parses");
        assert_eq!(config.command, Some(Command::ReplayDlq { limit: 5 }));
    }
}
