//! Configuration, from flags or the environment: the settings every
//! consumer shares (`consumer_host::Settings`) and the subcommands.

use clap::builder::RangedU64ValueParser;
use consumer_host::{Profile, ReplayDlqArgs, Settings};
use event_store_choice::EventStoreArgs;

/// The ledger consumer's defaults: its group, its port, and batches that
/// fit one set of the ledger's array statements.
pub const PROFILE: Profile = Profile {
    name: "ledger-consumer",
    group_id: "wallex-ledger",
    port: "3002",
    batch_size_max: ledger::POST_CHUNK_EVENTS_MAX,
};

/// Events `rebuild` reads and posts per transaction, unless told otherwise.
pub const REBUILD_BATCH_SIZE_DEFAULT: usize = event_store::READ_ALL_BATCH_MAX;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ledger-consumer",
    version,
    about = "Posts Wallex wallet events from Kafka to the double-entry ledger in PostgreSQL"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Puts this group's dead letters back on the topic (once their cause is
    /// fixed), then exits. Reads the same environment as the consumer.
    ReplayDlq(ReplayDlqArgs),
    /// Stop the ledger-consumers first. Empties the ledger and posts every
    /// event of the configured event store (EVENT_STORE) again, in log
    /// order, then exits; refuses, changing nothing, when that log is empty
    /// or behind the ledger's checkpoint.
    ///
    /// Kafka offsets need no reset: when the consumers restart, the events
    /// they consume again or for the first time are posted only if the
    /// rebuild did not post them (deduplicated by event id).
    Rebuild(RebuildArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RebuildArgs {
    /// Events read from the event store and posted per transaction.
    #[arg(long, default_value_t = REBUILD_BATCH_SIZE_DEFAULT,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=event_store::READ_ALL_BATCH_MAX as u64))]
    pub batch_size: usize,
    /// The event store to read (EVENT_STORE, KURRENTDB_URL), as command-api and outbox-relay do.
    #[command(flatten)]
    pub event_store: EventStoreArgs,
}

impl Config {
    /// From the process's arguments and environment; exits with clap's
    /// message on `--help`, `--version` or a bad setting.
    pub fn from_env() -> Self {
        consumer_host::parse(&PROFILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(extra: &str) -> Result<Config, clap::Error> {
        let line =
            format!("ledger-consumer --database-url=postgres://db --kafka-brokers=k:9092 {extra}");
        consumer_host::try_parse_from(&PROFILE, line.split_whitespace())
    }

    #[test]
    fn defaults_are_the_ledger_consumers() {
        let config = parsed("").expect("the required settings suffice");
        let settings = &config.settings;
        let defaults = (
            settings.kafka_group_id.as_str(),
            settings.port,
            config.command,
        );
        assert_eq!(defaults, ("wallex-ledger", 3002, None));
        assert_eq!(settings.consumer_config().topic, event_bus::TOPIC_DEFAULT);
    }

    #[test]
    fn batches_beyond_one_posting_chunk_are_refused() {
        let too_big = (ledger::POST_CHUNK_EVENTS_MAX + 1).to_string();
        assert!(parsed(&format!("--kafka-batch-size {too_big}")).is_err());
    }

    #[test]
    fn rebuild_is_a_subcommand_with_a_bounded_batch() {
        let config = parsed("rebuild").expect("rebuild parses");
        let expected = RebuildArgs {
            batch_size: REBUILD_BATCH_SIZE_DEFAULT,
            event_store: EventStoreArgs::postgres(),
        };
        assert_eq!(config.command, Some(Command::Rebuild(expected)));
        let too_big = (event_store::READ_ALL_BATCH_MAX + 1).to_string();
        assert!(parsed(&format!("rebuild --batch-size {too_big}")).is_err());
        assert!(parsed("replay-dlq").is_ok());
    }
}
