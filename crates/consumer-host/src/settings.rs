//! The settings every consumer reads, from flags or the environment, with
//! the few defaults that differ per binary supplied by its [`Profile`].

use clap::builder::RangedU64ValueParser;
use clap::{CommandFactory, Parser};
use observability::LogFormat;
use postgres_support::PostgresError;
use postgres_support::StartupWait;
use sqlx::PgPool;

/// The longest `KAFKA_BATCH_WAIT_MS` and `KAFKA_FETCH_WAIT_MAX_MS` taken, in
/// milliseconds: each adds up to that much lag to every event.
pub const KAFKA_WAIT_MS_MAX: u64 = 5_000;

/// Dead letters one `replay-dlq` run puts back at most, unless told otherwise.
pub const DLQ_REPLAY_LIMIT_DEFAULT: usize = 10_000;

/// What differs between the consumer binaries' shared settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The binary, in logs.
    pub name: &'static str,
    /// Default of `KAFKA_GROUP_ID`.
    pub group_id: &'static str,
    /// Default of `PORT`, as clap reads it.
    pub port: &'static str,
    /// The largest `KAFKA_BATCH_SIZE` the binary's handler takes in one call
    /// (at least the default, `event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT`).
    pub batch_size_max: usize,
}

/// Settings shared by every consumer; flatten it into a binary's `Config`
/// and parse with [`parse`] so the [`Profile`]'s defaults apply.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL of this consumer's tables (migrated at start-up).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Kafka bootstrap servers, comma-separated host:port entries (a host alone: port 9092; port 1 to
    /// 65535).
    #[arg(long, env = "KAFKA_BROKERS", value_parser = event_bus::brokers_list)]
    pub kafka_brokers: String,
    /// Consumer group of this service's replicas.
    #[arg(long, env = "KAFKA_GROUP_ID", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub kafka_group_id: String,
    /// This replica's static member id in the group (Kafka's
    /// `group.instance.id`): stable across its restarts and unique among live
    /// replicas, such as a pod's name. A replica restarted after a crash then
    /// takes its partitions back at once instead of after the session
    /// timeout; unset: dynamic membership (see
    /// `event_bus::ConsumerConfig::group_instance_id`).
    #[arg(long, env = "KAFKA_GROUP_INSTANCE_ID",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub kafka_group_instance_id: Option<String>,
    /// Topic of the wallet events (key = wallet id).
    #[arg(long, env = "KAFKA_TOPIC", default_value = event_bus::TOPIC_DEFAULT,
          value_parser = event_bus::topic_name)]
    pub kafka_topic: String,
    /// Topic where events that cannot be handled are parked (not KAFKA_TOPIC).
    #[arg(long, env = "KAFKA_DLQ_TOPIC", default_value = event_bus::DLQ_TOPIC_DEFAULT,
          value_parser = event_bus::topic_name)]
    pub kafka_dlq_topic: String,
    /// Events handed to the handler per batch.
    #[arg(long, env = "KAFKA_BATCH_SIZE", default_value_t = event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT)]
    pub kafka_batch_size: usize,
    /// Milliseconds a batch keeps filling after its first event: longer makes
    /// fewer, larger transactions (and search bulks) at the cost of lag.
    #[arg(long, env = "KAFKA_BATCH_WAIT_MS", default_value_t = event_bus::CONSUMER_BATCH_WAIT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=KAFKA_WAIT_MS_MAX))]
    pub kafka_batch_wait_ms: u64,
    /// Milliseconds the broker may hold a fetch back to gather
    /// `KAFKA_FETCH_MIN_BYTES` (librdkafka's `fetch.wait.max.ms`).
    #[arg(long, env = "KAFKA_FETCH_WAIT_MAX_MS", default_value_t = event_bus::CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=KAFKA_WAIT_MS_MAX))]
    pub kafka_fetch_wait_max_ms: u64,
    /// Bytes the broker gathers before it answers a fetch (librdkafka's
    /// `fetch.min.bytes`), 1 to 100,000,000.
    #[arg(long, env = "KAFKA_FETCH_MIN_BYTES", default_value_t = event_bus::CONSUMER_FETCH_MIN_BYTES_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub kafka_fetch_min_bytes: u32,
    /// Attempts at a failing batch before its messages are retried one by one.
    #[arg(long, env = "HANDLER_ATTEMPTS_MAX", default_value_t = event_bus::HANDLER_ATTEMPTS_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub handler_attempts_max: u32,
    /// Milliseconds one call of the handler (a batch's writes) may take
    /// before it is cut short and retried as a transient failure
    /// (1,000–600,000).
    #[arg(long, env = "HANDLER_TIMEOUT_MS", default_value_t = event_bus::HANDLER_TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub handler_timeout_ms: u64,
    /// librdkafka's `debug` contexts for each group member's client, comma
    /// separated (`cgrp` shows its join states, assignments and commits),
    /// logged at debug level under the target `librdkafka` (so with
    /// `RUST_LOG=info,librdkafka=debug`); unset: none.
    #[arg(long, env = "KAFKA_DEBUG",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub kafka_debug: Option<String>,
    /// PostgreSQL connections of the pool, 1 to 1000.
    #[arg(long, env = "DATABASE_CONNECTIONS_MAX", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(postgres_support::POOL_CONNECTIONS_MAX_LIMIT)))]
    pub database_connections_max: u32,
    /// Address of the health and metrics endpoints.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub host: String,
    /// Port of the health and metrics endpoints (0 picks a free one).
    #[arg(long, env = "PORT")]
    pub port: u16,
    /// Seconds the HTTP server gives requests in flight on SIGTERM, 0 to 3600.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=observability::SHUTDOWN_TIMEOUT_SECONDS_MAX))]
    pub shutdown_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// `replay-dlq`: puts this group's dead letters back on the topic (once
/// their cause is fixed), then exits.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ReplayDlqArgs {
    /// Dead letters to replay at most.
    #[arg(long, default_value_t = DLQ_REPLAY_LIMIT_DEFAULT)]
    pub limit: usize,
}

impl Settings {
    /// A pool of `database_connections_max` on `database_url`, its schema
    /// migrated; a server that does not answer yet is waited for as
    /// [`StartupWait::default`] says.
    pub async fn connect_postgres(&self) -> Result<PgPool, PostgresError> {
        StartupWait::default()
            .until_ready("postgres", PostgresError::is_transient, || {
                postgres_support::connect(&self.database_url, self.database_connections_max)
            })
            .await
    }

    /// The bus settings of this consumer.
    pub fn consumer_config(&self) -> event_bus::ConsumerConfig {
        let mut consumer =
            event_bus::ConsumerConfig::new(&self.kafka_brokers, &self.kafka_group_id);
        consumer.group_instance_id = self.kafka_group_instance_id.clone();
        consumer.topic = self.kafka_topic.clone();
        consumer.dlq_topic = self.kafka_dlq_topic.clone();
        consumer.batch_size_max = self.kafka_batch_size;
        consumer.batch_wait_ms = self.kafka_batch_wait_ms;
        consumer.fetch_wait_max_ms = self.kafka_fetch_wait_max_ms;
        consumer.fetch_min_bytes = self.kafka_fetch_min_bytes;
        consumer.handler_attempts_max = self.handler_attempts_max;
        consumer.handler_timeout_ms = self.handler_timeout_ms;
        consumer.client_debug = self.kafka_debug.clone();
        consumer
    }

    /// A consumer for tests: a free port on 127.0.0.1, the DLQ `<topic>-dlq`.
    pub fn for_test(
        database_url: &str,
        kafka_brokers: &str,
        kafka_topic: &str,
        kafka_group_id: &str,
    ) -> Self {
        Self {
            database_url: database_url.to_owned(),
            kafka_brokers: kafka_brokers.to_owned(),
            kafka_topic: kafka_topic.to_owned(),
            kafka_dlq_topic: format!("{kafka_topic}-dlq"),
            kafka_group_id: kafka_group_id.to_owned(),
            kafka_group_instance_id: None,
            kafka_batch_size: event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT,
            kafka_batch_wait_ms: event_bus::CONSUMER_BATCH_WAIT_MS_DEFAULT,
            kafka_fetch_wait_max_ms: event_bus::CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT,
            kafka_fetch_min_bytes: event_bus::CONSUMER_FETCH_MIN_BYTES_DEFAULT,
            handler_attempts_max: event_bus::HANDLER_ATTEMPTS_MAX_DEFAULT,
            handler_timeout_ms: event_bus::HANDLER_TIMEOUT_MS_DEFAULT,
            kafka_debug: None,
            database_connections_max: 4,
            host: "127.0.0.1".to_owned(),
            port: 0,
            shutdown_timeout_seconds: 5,
            log_format: LogFormat::Text,
        }
    }
}

/// `C`'s command line with `profile`'s defaults and limits.
fn command<C: CommandFactory>(profile: &Profile) -> clap::Command {
    let batch_size_max = u64::try_from(profile.batch_size_max).unwrap_or(u64::MAX);
    C::command()
        // The derive makes a field without a default required: these have one now.
        .mut_arg("kafka_group_id", |arg| {
            arg.default_value(profile.group_id).required(false)
        })
        .mut_arg("port", |arg| {
            arg.default_value(profile.port).required(false)
        })
        .mut_arg("kafka_batch_size", |arg| {
            arg.value_parser(RangedU64ValueParser::<usize>::new().range(1..=batch_size_max))
        })
}

/// Parses `arguments` (the first is the program) into `C`, a binary's
/// `Config` that flattens [`Settings`], and checks what clap's parsers
/// cannot (a refusal is a clap error, exit status 2).
pub fn try_parse_from<C, I, T>(profile: &Profile, arguments: I) -> Result<C, clap::Error>
where
    C: Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command::<C>(profile).try_get_matches_from(arguments)?;
    check(&matches).map_err(|refusal| {
        command::<C>(profile).error(clap::error::ErrorKind::ValueValidation, refusal)
    })?;
    C::from_arg_matches(&matches)
}

/// What clap's parsers cannot see, checked before any connection:
/// `DATABASE_URL` must be a PostgreSQL URL, and `KAFKA_DLQ_TOPIC` another
/// topic than `KAFKA_TOPIC` (a dead letter parked on the topic it came from
/// would be consumed again, and parked again, without end).
fn check(matches: &clap::ArgMatches) -> Result<(), String> {
    let text = |id: &str| matches.try_get_one::<String>(id).ok().flatten();
    if let Some(url) = text("database_url") {
        postgres_support::check_database_url(url).map_err(|refusal| refusal.to_string())?;
    }
    let topic = text("kafka_topic");
    if topic.is_some() && topic == text("kafka_dlq_topic") {
        return Err(
            "KAFKA_DLQ_TOPIC must be another topic than KAFKA_TOPIC: the dead letters' own".into(),
        );
    }
    Ok(())
}

/// Parses the process's arguments and environment into `C`; on `--help`,
/// `--version` or a bad setting prints what clap says and exits.
pub fn parse<C: Parser>(profile: &Profile) -> C {
    match try_parse_from(profile, std::env::args_os()) {
        Ok(config) => config,
        Err(error) => error.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: Profile = Profile {
        name: "test-consumer",
        group_id: "wallex-test",
        port: "3999",
        batch_size_max: 1_000,
    };

    #[derive(Debug, clap::Parser)]
    #[command(name = "test-consumer")]
    struct Config {
        #[command(subcommand)]
        command: Option<Command>,
        #[command(flatten)]
        settings: Settings,
    }

    #[derive(Debug, PartialEq, Eq, clap::Subcommand)]
    enum Command {
        ReplayDlq(ReplayDlqArgs),
    }

    fn parsed(extra: &[&str]) -> Result<Config, clap::Error> {
        let line = "test-consumer --database-url postgres://db --kafka-brokers=k:9092";
        try_parse_from(&PROFILE, line.split(' ').chain(extra.iter().copied()))
    }

    #[test]
    fn the_profile_supplies_the_group_and_the_port() {
        let config = parsed(&[]).expect("the required settings suffice");
        let settings = &config.settings;
        assert_eq!(config.command, None);
        assert_eq!(settings.kafka_group_id, "wallex-test");
        assert_eq!(settings.port, 3999);
        assert_eq!(settings.kafka_topic, event_bus::TOPIC_DEFAULT);
        assert_eq!(settings.kafka_dlq_topic, event_bus::DLQ_TOPIC_DEFAULT);
        let consumer = settings.consumer_config();
        assert_eq!(consumer.group_id, "wallex-test");
        assert_eq!(consumer.batch_size_max, settings.kafka_batch_size);
        assert_eq!(
            consumer.batch_wait_ms,
            event_bus::CONSUMER_BATCH_WAIT_MS_DEFAULT
        );
        assert_eq!(
            consumer.fetch_min_bytes,
            event_bus::CONSUMER_FETCH_MIN_BYTES_DEFAULT
        );
        assert_eq!(
            consumer.client_debug, None,
            "no librdkafka debug unless asked"
        );
    }

    #[test]
    fn librdkafka_debug_contexts_reach_the_member() {
        let config = parsed(&["--kafka-debug", "cgrp,fetch"]).expect("parses");
        let consumer = config.settings.consumer_config();
        assert_eq!(consumer.client_debug.as_deref(), Some("cgrp,fetch"));
        assert!(parsed(&["--kafka-debug", ""]).is_err(), "empty is refused");
    }

    #[test]
    fn the_batching_knobs_reach_the_consumer_within_their_bounds() {
        let config = parsed(&[
            "--kafka-batch-wait-ms",
            "80",
            "--kafka-fetch-wait-max-ms",
            "250",
            "--kafka-fetch-min-bytes",
            "1",
        ])
        .expect("parses");
        let consumer = config.settings.consumer_config();
        assert_eq!(consumer.batch_wait_ms, 80);
        assert_eq!(consumer.fetch_wait_max_ms, 250);
        assert_eq!(consumer.fetch_min_bytes, 1);
        assert!(parsed(&["--kafka-batch-wait-ms", "5001"]).is_err());
        assert!(parsed(&["--kafka-fetch-wait-max-ms", "5001"]).is_err());
        assert!(parsed(&["--kafka-fetch-min-bytes", "0"]).is_err());
    }

    #[test]
    fn a_pool_of_no_connection_and_an_endless_shutdown_are_refused() {
        for refused in [
            "--database-connections-max=0",
            "--database-connections-max=1001",
            "--shutdown-timeout-seconds=3601",
        ] {
            assert!(parsed(&[refused]).is_err(), "{refused}");
        }
        let bounds = parsed(&[
            "--database-connections-max=1000",
            "--shutdown-timeout-seconds=0",
        ])
        .expect("the bounds are accepted");
        assert_eq!(bounds.settings.database_connections_max, 1_000);
    }

    #[test]
    fn a_database_url_of_another_scheme_is_refused_as_a_bad_setting() {
        let line = "test-consumer --database-url mysql://u:secret@h/db --kafka-brokers=k:9092";
        let refused = try_parse_from::<Config, _, _>(&PROFILE, line.split(' '))
            .expect_err("mysql is no PostgreSQL");
        assert_eq!(refused.exit_code(), 2);
        let message = refused.to_string();
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(message.contains("mysql"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn empty_kafka_names_and_a_dead_letter_topic_that_is_the_topic_are_refused() {
        for refused in [
            "--kafka-group-id=",
            "--kafka-topic=",
            "--kafka-dlq-topic=",
            "--host=",
            "--kafka-dlq-topic=wallet-events",
        ] {
            let error = parsed(&[refused]).expect_err(refused);
            assert_eq!(error.exit_code(), 2, "{refused}");
        }
        let same = parsed(&["--kafka-topic=t", "--kafka-dlq-topic=t"]).expect_err("the same");
        assert!(same.to_string().contains("KAFKA_DLQ_TOPIC"), "{same}");
        assert!(parsed(&["--kafka-topic=t", "--kafka-dlq-topic=t-dlq"]).is_ok());
    }

    #[test]
    fn a_brokers_list_or_a_topic_kafka_would_refuse_is_a_bad_setting() {
        let with_brokers = |brokers: &str| {
            let line =
                format!("test-consumer --database-url postgres://db --kafka-brokers={brokers}");
            try_parse_from::<Config, _, _>(&PROFILE, line.split(' '))
        };
        for (brokers, wrong) in [
            (",", "entry 1"),
            ("k:9092,,k:9093", "entry 2"),
            ("k:9092", ""),
        ] {
            match with_brokers(brokers) {
                Ok(_) => assert!(wrong.is_empty(), "{brokers} accepted"),
                Err(error) => {
                    assert_eq!(error.exit_code(), 2, "{brokers}");
                    assert!(error.to_string().contains(wrong), "{brokers}: {error}");
                }
            }
        }
        assert!(with_brokers("k:0").is_err());
        for refused in [
            "--kafka-topic=bad topic!",
            "--kafka-dlq-topic=bad topic!",
            "--kafka-topic=..",
            "--kafka-dlq-topic=.",
        ] {
            let line = "test-consumer --database-url postgres://db --kafka-brokers=k:1";
            let arguments = line.split(' ').chain([refused]);
            let error = try_parse_from::<Config, _, _>(&PROFILE, arguments).expect_err(refused);
            assert_eq!(error.exit_code(), 2, "{refused}");
        }
    }

    #[test]
    fn flags_override_the_profile() {
        let config = parsed(&["--kafka-group-id", "other", "--port", "0"]).expect("parses");
        assert_eq!(config.settings.kafka_group_id, "other");
        assert_eq!(config.settings.port, 0);
    }

    #[test]
    fn batches_beyond_the_profile_limit_are_refused() {
        assert!(parsed(&["--kafka-batch-size", "1000"]).is_ok());
        assert!(parsed(&["--kafka-batch-size", "1001"]).is_err());
        assert!(parsed(&["--kafka-batch-size", "0"]).is_err());
    }

    #[test]
    fn replay_dlq_takes_a_limit() {
        let limit = |extra: &[&str]| match parsed(extra).map(|config| config.command) {
            Ok(Some(Command::ReplayDlq(replay))) => Some(replay.limit),
            _ => None,
        };
        assert_eq!(limit(&["replay-dlq", "--limit", "5"]), Some(5));
        assert_eq!(limit(&["replay-dlq"]), Some(DLQ_REPLAY_LIMIT_DEFAULT));
    }

    #[test]
    fn help_names_every_variable_and_the_profile_defaults() {
        let help = command::<Config>(&PROFILE).render_long_help().to_string();
        for variable in [
            "DATABASE_URL",
            "KAFKA_BROKERS",
            "KAFKA_TOPIC",
            "KAFKA_DLQ_TOPIC",
            "KAFKA_GROUP_ID",
            "KAFKA_GROUP_INSTANCE_ID",
            "KAFKA_BATCH_SIZE",
            "KAFKA_DEBUG",
            "HANDLER_ATTEMPTS_MAX",
            "DATABASE_CONNECTIONS_MAX",
            "HOST",
            "PORT",
            "SHUTDOWN_TIMEOUT_SECONDS",
            "LOG_FORMAT",
        ] {
            assert!(
                help.contains(&format!("env: {variable}")),
                "{variable}: {help}"
            );
        }
        assert!(help.contains("wallex-test"), "{help}");
        assert!(help.contains("3999"), "{help}");
    }
}
