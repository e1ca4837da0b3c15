//! The choice of event store, in one place: every binary and command that
//! reads or writes the event log (command-api, outbox-relay, `ledger-consumer
//! rebuild`) takes `EVENT_STORE` and `KURRENTDB_URL` through [`EventStoreArgs`]
//! or [`EventStoreKind`] and opens the store with [`open`], so a rebuild
//! reads the very log the API writes and the relay publishes.
//!
//! KurrentDB is behind the cargo feature `kurrentdb` (each binary's, on by
//! default): a build without it skips the gRPC stack and refuses
//! `EVENT_STORE=kurrentdb` with [`ChoiceError::KurrentDbNotBuilt`].
//!
//! The embedded store (SQLite files) is command-api's alone: it runs the
//! relays in its own process, so it opens it itself; [`open`] refuses it,
//! and [`EventStoreArgs`] does not offer it.

use std::sync::Arc;

use event_store::{EventStore, PostgresEventStore, StoreError};
use sqlx::PgPool;
use transfer_process::TransferJournal;

/// Where the events are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventStoreKind {
    /// SQLite files under WALLEX_DATA_DIR; relays, ledger and read model run in command-api's process.
    Embedded,
    /// The events table of PostgreSQL at DATABASE_URL.
    Postgres,
    /// KurrentDB at KURRENTDB_URL (wallet streams; transfers run as the
    /// transfer process, its journal on KurrentDB too).
    Kurrentdb,
}

/// The stores a process other than command-api reads: a server's. The
/// embedded one is not offered (h157 F7: `--help` listed it, and it was
/// refused only once PostgreSQL answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerEventStoreKind {
    /// The events table of PostgreSQL at DATABASE_URL.
    Postgres,
    /// KurrentDB at KURRENTDB_URL.
    Kurrentdb,
}

impl From<ServerEventStoreKind> for EventStoreKind {
    fn from(kind: ServerEventStoreKind) -> Self {
        match kind {
            ServerEventStoreKind::Postgres => EventStoreKind::Postgres,
            ServerEventStoreKind::Kurrentdb => EventStoreKind::Kurrentdb,
        }
    }
}

/// `EVENT_STORE` and `KURRENTDB_URL` of the binaries whose store is a
/// server's (outbox-relay, `ledger-consumer rebuild`): PostgreSQL unless
/// told. Both are checked as they are parsed, before any connection:
/// `embedded` is no possible value, and `kurrentdb` needs `KURRENTDB_URL`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct EventStoreArgs {
    /// Where the event log is read from: postgres or kurrentdb.
    #[arg(long, env = "EVENT_STORE", value_enum, default_value = "postgres")]
    pub event_store: ServerEventStoreKind,
    /// KurrentDB connection string, required when EVENT_STORE=kurrentdb
    /// (e.g. kurrentdb://host:2113?tls=false).
    #[arg(long, env = "KURRENTDB_URL", hide_env_values = true,
          required_if_eq("event_store", "kurrentdb"),
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub kurrentdb_url: Option<String>,
}

impl EventStoreArgs {
    /// The PostgreSQL event store: for tests and defaults.
    pub fn postgres() -> Self {
        Self {
            event_store: ServerEventStoreKind::Postgres,
            kurrentdb_url: None,
        }
    }

    /// [`open`] of these settings.
    pub async fn open(&self, pool: &PgPool) -> Result<OpenedStore, ChoiceError> {
        open(self.event_store.into(), pool, self.kurrentdb_url.as_deref()).await
    }
}

/// Why no store was opened.
#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    #[error("KURRENTDB_URL must be set when EVENT_STORE=kurrentdb")]
    MissingKurrentDbUrl,
    #[error(
        "EVENT_STORE=embedded is command-api's own store (SQLite files in its process); \
         this command reads a server's store: EVENT_STORE=postgres or kurrentdb"
    )]
    EmbeddedIsNotShared,
    #[error(
        "EVENT_STORE=kurrentdb, but this build has no KurrentDB support \
         (build with the cargo feature kurrentdb, on by default)"
    )]
    KurrentDbNotBuilt,
    #[error("event store: {0}")]
    Store(#[from] StoreError),
}

/// An opened store, with the transfer journal of the same server when it has
/// one (KurrentDB: transfers run as the transfer process there).
pub struct OpenedStore {
    pub store: Arc<dyn EventStore>,
    pub journal: Option<Arc<dyn TransferJournal>>,
}

/// Opens the store of `kind`: PostgreSQL's events table on `pool` (which
/// holds the migrated schema), or KurrentDB at `kurrentdb_url`.
///
/// # Errors
/// [`ChoiceError::EmbeddedIsNotShared`] for the embedded store,
/// [`ChoiceError::MissingKurrentDbUrl`] for KurrentDB without a URL, and the
/// store's own error when it cannot be reached.
pub async fn open(
    kind: EventStoreKind,
    pool: &PgPool,
    kurrentdb_url: Option<&str>,
) -> Result<OpenedStore, ChoiceError> {
    match kind {
        EventStoreKind::Embedded => Err(ChoiceError::EmbeddedIsNotShared),
        EventStoreKind::Postgres => Ok(OpenedStore {
            store: Arc::new(PostgresEventStore::connect(pool.clone()).await?),
            journal: None,
        }),
        EventStoreKind::Kurrentdb => open_kurrentdb(kurrentdb_url).await,
    }
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: Option<&str>) -> Result<OpenedStore, ChoiceError> {
    let url = url.ok_or(ChoiceError::MissingKurrentDbUrl)?;
    let (store, journal) = event_store_kurrentdb::open_with_journal(url).await?;
    Ok(OpenedStore {
        store,
        journal: Some(journal),
    })
}

#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(_url: Option<&str>) -> Result<OpenedStore, ChoiceError> {
    Err(ChoiceError::KurrentDbNotBuilt)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        store: EventStoreArgs,
    }

    #[test]
    fn postgres_unless_told() {
        let parsed = Command::try_parse_from(["test"]).expect("parses");
        assert_eq!(parsed.store, EventStoreArgs::postgres());
        let parsed = Command::try_parse_from([
            "test",
            "--event-store",
            "kurrentdb",
            "--kurrentdb-url",
            "kurrentdb://k:2113?tls=false",
        ])
        .expect("parses");
        assert_eq!(parsed.store.event_store, ServerEventStoreKind::Kurrentdb);
        assert!(Command::try_parse_from(["test", "--event-store", "sqlite"]).is_err());
    }

    #[test]
    fn the_embedded_store_and_kurrentdb_without_url_are_refused_at_parse_time() {
        use clap::CommandFactory;
        let embedded = Command::try_parse_from(["test", "--event-store", "embedded"])
            .expect_err("command-api's own store");
        assert_eq!(embedded.kind(), clap::error::ErrorKind::InvalidValue);
        let help = Command::command().render_long_help().to_string();
        assert!(
            !help.contains("- embedded") && help.contains("- kurrentdb"),
            "{help}"
        );
        let no_url = Command::try_parse_from(["test", "--event-store", "kurrentdb"])
            .expect_err("KurrentDB needs its URL");
        assert_eq!(
            no_url.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(no_url.to_string().contains("KURRENTDB_URL"), "{no_url}");
        let empty = ["test", "--event-store", "kurrentdb", "--kurrentdb-url", ""];
        assert!(Command::try_parse_from(empty).is_err());
    }

    #[tokio::test]
    async fn the_embedded_store_and_kurrentdb_without_url_are_refused_before_connecting() {
        // A pool that never connects: neither refusal may touch it.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        assert!(matches!(
            open(EventStoreKind::Embedded, &pool, None).await,
            Err(ChoiceError::EmbeddedIsNotShared)
        ));
        if cfg!(feature = "kurrentdb") {
            assert!(matches!(
                open(EventStoreKind::Kurrentdb, &pool, None).await,
                Err(ChoiceError::MissingKurrentDbUrl)
            ));
        } else {
            let url = Some("kurrentdb://127.0.0.1:1?tls=false");
            assert!(matches!(
                open(EventStoreKind::Kurrentdb, &pool, url).await,
                Err(ChoiceError::KurrentDbNotBuilt)
            ));
        }
    }
}
