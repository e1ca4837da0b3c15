//! Configuration, from flags or the environment: the settings every
//! consumer shares (`consumer_host::Settings`), the search index's, and the
//! subcommand.

use clap::CommandFactory;
use consumer_host::{Profile, ReplayDlqArgs, Settings};

use crate::rebuild::RebuildArgs;

/// The projection consumer's defaults: its group, its port, and batches that
/// fit one bulk request to the search index.
pub const PROFILE: Profile = Profile {
    name: "projection-consumer",
    group_id: "wallex-projection",
    port: "3003",
    batch_size_max: search_index::BULK_EVENTS_MAX,
};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projection-consumer",
    version,
    about = "Projects Wallex wallet events from Kafka into the PostgreSQL read model and the search index"
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
    /// Elasticsearch or OpenSearch of the search index: an http:// or
    /// https:// URL with a host.
    #[arg(long, env = "ELASTICSEARCH_URL", hide_env_values = true)]
    pub elasticsearch_url: String,
    /// Prefix of the indices `<prefix>-wallets` and `<prefix>-transactions`.
    #[arg(long, env = "ELASTICSEARCH_INDEX_PREFIX", default_value = "wallex")]
    pub elasticsearch_index_prefix: String,
    /// Bound on one request to the search index, in ms: 1 to 600000.
    #[arg(long, env = "ELASTICSEARCH_REQUEST_TIMEOUT_MS", default_value_t = search_index::REQUEST_TIMEOUT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=search_index::REQUEST_TIMEOUT_MS_MAX))]
    pub elasticsearch_request_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Puts the dead letters of both groups (the read model's, the search
    /// index's) back on the topic (once their cause is fixed), then exits.
    /// Reads the same environment as the consumer.
    ReplayDlq(ReplayDlqArgs),
    /// Stop the projection-consumers first. Builds the read model and the
    /// search index again from the configured event store (EVENT_STORE),
    /// beside the live ones, and switches them in atomically (a table swap,
    /// an index alias), then exits; refuses, changing nothing, when the log
    /// is empty or behind the read model's checkpoint.
    Rebuild(RebuildArgs),
}

impl Config {
    /// From the process's arguments and environment, checked as
    /// [`Config::try_parse_checked`] does; exits with clap's message on
    /// `--help`, `--version` or a bad setting (2).
    pub fn from_env() -> Self {
        Self::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// The configuration from `arguments` (the program's name first) and the
    /// environment, as `consumer_host::try_parse_from` checks it, and
    /// `ELASTICSEARCH_URL` an http:// or https:// URL with a host (refused
    /// without repeating it: it may hold a password).
    pub fn try_parse_checked<I, T>(arguments: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let config: Self = consumer_host::try_parse_from(&PROFILE, arguments)?;
        search_index::check_search_url(&config.elasticsearch_url).map_err(|refusal| {
            Self::command().error(clap::error::ErrorKind::ValueValidation, refusal)
        })?;
        Ok(config)
    }

    /// The search index's consumer group: `<KAFKA_GROUP_ID>-search-index`
    /// (`search_index::consumer_group`).
    pub fn search_group_id(&self) -> String {
        search_index::consumer_group(&self.settings.kafka_group_id)
    }

    /// A consumer for tests on `settings` (see `Settings::for_test`).
    pub fn for_test(
        settings: Settings,
        elasticsearch_url: &str,
        elasticsearch_index_prefix: &str,
    ) -> Self {
        Self {
            command: None,
            settings,
            elasticsearch_url: elasticsearch_url.to_owned(),
            elasticsearch_index_prefix: elasticsearch_index_prefix.to_owned(),
            elasticsearch_request_timeout_ms: search_index::REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The required settings, then `extra`.
    fn parsed(extra: &[&str]) -> Result<Config, clap::Error> {
        let mut arguments = vec!["projection-consumer", "--database-url=postgres://db"];
        arguments.extend(["--kafka-brokers=k:9092", "--elasticsearch-url=http://es"]);
        Config::try_parse_checked(arguments.into_iter().chain(extra.iter().copied()))
    }

    #[test]
    fn an_elasticsearch_url_that_is_no_http_url_is_a_bad_setting() {
        let with_url = |url: &str| {
            Config::try_parse_checked([
                "projection-consumer",
                "--database-url=postgres://db",
                "--kafka-brokers=k:9092",
                &format!("--elasticsearch-url={url}"),
            ])
        };
        for url in ["", "notaurl", "ftp://u:secret@h", "localhost:9200"] {
            let refused = with_url(url).expect_err(url);
            assert_eq!(refused.exit_code(), 2, "{url}");
            let message = refused.to_string();
            assert!(message.contains("ELASTICSEARCH_URL"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        assert!(with_url("https://u:p@os:9200").is_ok());
    }

    #[test]
    fn defaults_parse_from_the_required_settings() {
        let config = parsed(&[]).expect("the required settings suffice");
        assert_eq!(config.command, None);
        assert_eq!(config.settings.kafka_topic, "wallet-events");
        assert_eq!(config.settings.kafka_group_id, "wallex-projection");
        assert_eq!(config.search_group_id(), "wallex-projection-search-index");
        assert_eq!(config.settings.port, 3003);
        assert_eq!(config.elasticsearch_index_prefix, "wallex");
        let consumer = config.settings.consumer_config();
        assert_eq!(consumer.group_id, "wallex-projection");
        assert_eq!(
            consumer.batch_size_max,
            event_bus::CONSUMER_BATCH_SIZE_MAX_DEFAULT
        );
    }

    #[test]
    fn batches_beyond_one_bulk_request_are_refused_and_replay_dlq_parses() {
        let too_big = (search_index::BULK_EVENTS_MAX + 1).to_string();
        assert!(parsed(&["--kafka-batch-size", &too_big]).is_err());
        let replay = parsed(&["replay-dlq"]).map(|config| config.command);
        assert!(
            matches!(replay, Ok(Some(Command::ReplayDlq(_)))),
            "{replay:?}"
        );
    }

    #[test]
    fn a_search_request_bound_of_zero_is_refused() {
        assert!(parsed(&["--elasticsearch-request-timeout-ms", "0"]).is_err());
        assert!(parsed(&["--elasticsearch-request-timeout-ms", "600001"]).is_err());
        assert!(parsed(&["--elasticsearch-request-timeout-ms", "1"]).is_ok());
    }

    #[test]
    fn rebuild_parses_with_a_bounded_batch_and_the_configured_store() {
        let rebuild = parsed(&["rebuild"]).map(|config| config.command);
        let expected = RebuildArgs {
            batch_size: crate::REBUILD_BATCH_SIZE_DEFAULT,
            event_store: event_store_choice::EventStoreArgs::postgres(),
        };
        assert_eq!(rebuild.ok(), Some(Some(Command::Rebuild(expected))));
        let too_big = (search_index::BULK_EVENTS_MAX + 1).to_string();
        assert!(parsed(&["rebuild", "--batch-size", &too_big]).is_err());
    }
}
