//! SQLite as the embedded default's storage.
//!
//! Durability: every file runs in WAL mode with `synchronous=FULL`, so a
//! transaction's commit returns only after its WAL frames are fsynced; a commit
//! that returned survives a kill -9 or a power cut. Each file has one writer
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

/// Opens the single writer connection of a database file, creating it.
pub fn open_writer(path: &Path) -> Result<Connection, SqliteError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Worker(format!(
            "{} refused WAL mode (got {mode})",
            path.display()
        )));
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
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
    pub fn open(path: &Path, migrations: &[&str]) -> Result<Self, SqliteError> {
        let mut connection = open_writer(path)?;
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
