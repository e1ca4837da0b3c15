//! SQLite as the embedded default's storage.
//!
//! Durability: every file runs in WAL mode. A [`Durability::Durable`] file
//! (the event store, the transfer journal) runs with `synchronous=FULL`, so a
//! transaction's commit returns only after its WAL frames are fsynced; a
//! commit that returned survives a kill -9 or a power cut. A
//! [`Durability::Replayable`] file (a projection) runs with
//! `synchronous=NORMAL`: atomic, but a power cut may take its last commits,
//! which it replays from the event log. Each file has one writer
//! connection (SQLite admits one writer at a time anyway) and a pool of
//! read-only connections that read concurrently with it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_sqlite::{Config, Pool, PoolConfig, Runtime};
use rusqlite::Connection;

/// How long a connection waits for a lock held by another before failing.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Read-only connections per file.
pub const READ_CONNECTIONS_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("sqlite connection pool: {0}")]
    Pool(String),
    #[error("sqlite worker thread failed: {0}")]
    Worker(String),
}

/// Page size of a new file, in bytes (an existing file keeps its own). A
/// commit writes every page it dirtied to the WAL, whole, and a checkpoint
/// writes it again: with keys spread over many pages (per wallet), bytes
/// written per event follow the page size. 1 KiB rather than SQLite's 4 KiB
/// wrote a fifth less per operation on the benchmark's mix (bench/README.md).
pub const PAGE_SIZE_BYTES: u32 = 1_024;
/// WAL pages after which a commit of a [`Durability::Durable`] file copies
/// the WAL back into the file. A page changed many times between two
/// checkpoints is copied once.
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 1_000;
/// The same for a [`Durability::Replayable`] file (a projection), ten times
/// more (10 MiB of 1 KiB pages): its rows are keyed by wallet and account, so
/// the same pages change again and again, and each is copied back once per
/// checkpoint however often it changed in between (bench/README.md).
pub const REPLAYABLE_WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// What a file's commits promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A commit returns once its WAL frames are fsynced (`synchronous=FULL`):
    /// it survives a power cut. The event store and the transfer journal.
    Durable,
    /// A commit is atomic and survives a kill -9, but the last ones may be
    /// lost to a power cut (`synchronous=NORMAL`: fsync at checkpoints). For
    /// the projections: they keep their checkpoint in the transaction of
    /// their writes, so a lost commit is replayed from the event log.
    Replayable,
}

/// Opens the single writer connection of a database file, creating it.
pub fn open_writer(path: &Path, durability: Durability) -> Result<Connection, SqliteError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // Only a new, empty file takes it; it must come before WAL mode.
    connection.pragma_update(None, "page_size", PAGE_SIZE_BYTES)?;
    let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Worker(format!(
            "{} refused WAL mode (got {mode})",
            path.display()
        )));
    }
    let (synchronous, autocheckpoint_pages) = match durability {
        Durability::Durable => ("FULL", WAL_AUTOCHECKPOINT_PAGES),
        Durability::Replayable => ("NORMAL", REPLAYABLE_WAL_AUTOCHECKPOINT_PAGES),
    };
    connection.pragma_update(None, "synchronous", synchronous)?;
    // Statement journals (every savepoint, every statement that may fail
    // halfway inside a transaction) and sorts in memory, not in files under
    // /var/tmp: they only serve a rollback before the commit.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection.pragma_update(None, "wal_autocheckpoint", autocheckpoint_pages)?;
    Ok(connection)
}

/// Read-only connections to a database file whose writer created it.
#[derive(Clone)]
pub struct ReadPool {
    pool: Pool,
}

impl ReadPool {
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        let mut config = Config::new(path);
        config.pool = Some(PoolConfig::new(READ_CONNECTIONS_MAX));
        let pool = config
            .create_pool(Runtime::Tokio1)
            .map_err(|error| SqliteError::Pool(error.to_string()))?;
        Ok(Self { pool })
    }

    /// Runs a read on a pooled connection, off the async threads.
    pub async fn read<T, F>(&self, read: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = self
            .pool
            .get()
            .await
            .map_err(|error| SqliteError::Pool(error.to_string()))?;
        let result = connection
            .interact(move |connection| {
                connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
                read(connection)
            })
            .await
            .map_err(|error| SqliteError::Worker(error.to_string()))?;
        Ok(result?)
    }
}

/// A writer connection shared by the tasks of one process, used one at a time.
#[derive(Clone)]
pub struct SharedWriter {
    connection: Arc<Mutex<Connection>>,
}

impl SharedWriter {
    /// Opens the writer and brings the schema up to date with `migrations`.
    pub fn open(
        path: &Path,
        migrations: &[&str],
        durability: Durability,
    ) -> Result<Self, SqliteError> {
        let mut connection = open_writer(path, durability)?;
        migrate(&mut connection, migrations)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs a write on the writer connection, off the async threads.
    pub async fn write<T, F>(&self, write: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .map_err(|_| SqliteError::Worker("writer connection lock poisoned".into()))?;
            write(&mut guard).map_err(SqliteError::from)
        })
        .await
        .map_err(|error| SqliteError::Worker(error.to_string()))?;
        result
    }
}

/// Brings a database file's schema up to date: `migrations[i]` is schema
/// version `i + 1`, applied once, in one transaction, recorded in `user_version`.
pub fn migrate(connection: &mut Connection, migrations: &[&str]) -> Result<(), SqliteError> {
    let applied: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in migrations.iter().enumerate().skip(applied) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index + 1)?;
        transaction.commit()?;
    }
    Ok(())
}
