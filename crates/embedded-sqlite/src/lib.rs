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

mod checkpoint_failures;
mod checkpointer;
mod data_dir_lock;
mod file_place;
mod grouped_writer;
mod identifier_words;
mod stored_values;
mod writer_thread;

pub use checkpoint_failures::{failing_checkpoints, FailingCheckpoints};
pub use checkpointer::{save_unlinked_wal, BesideOwnedWriter, CHECKPOINT_INTERVAL_MS};
pub use data_dir_lock::{DataDirLock, DataDirLockError, Released, PID_FILE_NAME};
pub use file_place::{is_damage, FilePlace};
pub use grouped_writer::{GroupedWriter, GROUP_QUEUE_CAPACITY, GROUP_WRITES_MAX};
pub use identifier_words::identifier_word;
pub use stored_values::{integer_as_stored, text_as_stored};
pub use writer_thread::spawn_writer_thread;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkpointer::{Checkpointer, Finish};
use deadpool_sqlite::{Config, Hook, HookError, Pool, PoolConfig, Runtime};
use observability::LogThrottle;
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};
use rusqlite::config::DbConfig;
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
    #[error(
        "the database file {path} or its folder was moved, deleted or replaced while the server \
         ran: restart the server on the folder that holds the data"
    )]
    Moved { path: std::path::PathBuf },
    /// A read or a write found the file damaged ([`FilePlace`] remembers
    /// it for every reader and writer of the file): nothing is read from or
    /// written to it again until the server restarts.
    #[error(
        "the database file {path} is damaged ({detail}): with the server stopped, keep a copy \
         of the data folder as it is, -wal files included (writes acknowledged since the last \
         copy are in it); `PRAGMA integrity_check` says what is damaged. A projection file (ledger.db, read_model.db, \
         search_index.db) moved out of the folder is built again from the event log at the \
         next start; events.db, transfers.db and dead_letters.db are derived from nothing: \
         one of them damaged needs a repair (sqlite3's `.recover`, or `.dump` where that \
         fails) or a copy of it, and what that copy lacks is lost"
    )]
    Damaged {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "cannot open the database file {path}: {source}{}",
        disk_full_hint(source)
    )]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite opens a file it may not write read-only, without an error;
    /// every write would then fail.
    #[error(
        "the database file {path} cannot be written by this process: give the server's user \
         write access to it, to its -wal and -shm files and to their folder"
    )]
    ReadOnly { path: std::path::PathBuf },
    #[error("cannot create or find the database file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's schema is newer than this build's: a newer version wrote
    /// it, and this one would misread it.
    #[error(
        "the database file {file} has schema version {found}, newer than this build's \
         {known}: run the version that wrote it, or restore the backup taken before the \
         upgrade"
    )]
    SchemaNewer {
        file: String,
        found: usize,
        known: usize,
    },
    /// A file where one of this server's belongs that it did not write:
    /// tables but no schema version, or a schema version without the tables
    /// this build's migrations up to it create (another program's database:
    /// tester h157 F8, its journal mode switched to WAL before the schema
    /// refused it; h161 N1, one with `user_version` 2 migrated in place).
    /// Refused before anything is written to it.
    #[error(
        "{path} is not a Wallex database ({why}): it was left as it was; give WALLEX_DATA_DIR \
         a folder of its own, or move that file out"
    )]
    Foreign {
        path: std::path::PathBuf,
        why: String,
    },
    /// A migration of the file failed (a full disk, a read-only folder): the
    /// file keeps the schema version before it, as its transaction rolled back.
    #[error("cannot migrate the database file {file} to schema version {version}: {source}")]
    Migration {
        file: String,
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    /// The file's schema is older than this build's, and this process may
    /// not change the files of its folder ([`forbid_migrations`]).
    #[error(
        "the database file {file} has schema version {found}, older than this build's \
         {known}, and the server of an earlier version is running on its folder: run this \
         tool with that server's own binary, or stop the server and start this version's"
    )]
    SchemaBehind {
        file: String,
        found: usize,
        known: usize,
    },
}

impl SqliteError {
    /// True when SQLite refused the statement for what it was given: a
    /// constraint (`UNIQUE`, `CHECK`, `NOT NULL`, a foreign key) or a value
    /// past its limits, which the same statement meets again however often
    /// it is retried, as PostgreSQL's class 23 (integrity constraint
    /// violation). Everything else (busy, full, I/O, moved, damaged) may
    /// pass, or waits for an operator without the input being at fault.
    pub fn refuses_the_input(&self) -> bool {
        matches!(self, SqliteError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
        if matches!(
            failure.code,
            rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TooBig
        ))
    }
}

/// The folders given to [`forbid_migrations`], canonical.
static MIGRATIONS_FORBIDDEN: std::sync::Mutex<Vec<std::path::PathBuf>> =
    std::sync::Mutex::new(Vec::new());

/// From now on, this process opens the database files of `folder` as they
/// are and refuses one whose schema is older than this build's
/// ([`SqliteError::SchemaBehind`]) instead of migrating it; a file not made
/// yet is made. For tools that run beside a live server on purpose
/// (replaying dead letters): a migration would change the files under a
/// server of an earlier version, which cannot read them after it.
pub fn forbid_migrations(folder: &Path) {
    MIGRATIONS_FORBIDDEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(canonical(folder));
}

/// `folder` with its links and dots resolved, as given when it cannot be.
fn canonical(folder: &Path) -> std::path::PathBuf {
    folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf())
}

/// Whether [`forbid_migrations`] named the folder of `connection`'s file.
fn migrations_forbidden(connection: &Connection) -> bool {
    let Some(folder) = connection
        .path()
        .filter(|path| !path.is_empty())
        .and_then(|path| Path::new(path).parent())
        .map(canonical)
    else {
        return false;
    };
    MIGRATIONS_FORBIDDEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&folder)
}

/// Permission bits of a database file this server creates: its owner's
/// only, whatever the folder's mode (the money of every wallet is in it).
/// SQLite gives the WAL and shared-memory files beside it the same. A file
/// that exists already keeps its own.
pub const DATABASE_FILE_MODE: u32 = 0o600;

/// Creates `path` empty (a valid new database) with [`DATABASE_FILE_MODE`]
/// unless it exists, so SQLite does not create it with its default 0644.
fn create_private(path: &Path) -> Result<(), SqliteError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, DATABASE_FILE_MODE);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(SqliteError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Refuses a database whose `-wal` or `-shm` file (left by an earlier run,
/// perhaps of another user) this process may not write: SQLite would open
/// it, and every write would fail. The database file itself is checked by
/// SQLite's read-only fallback ([`SqliteError::ReadOnly`]).
fn refuse_unwritable(path: &Path) -> Result<(), SqliteError> {
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = std::path::PathBuf::from(companion);
        match std::fs::OpenOptions::new().write(true).open(&companion) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(SqliteError::ReadOnly { path: companion });
            }
            Err(source) => {
                return Err(SqliteError::File {
                    path: companion,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// What an open that failed for want of space adds to its message: SQLite
/// says `SQLITE_FULL`, or, when it cannot grow the WAL's shared-memory file
/// (`-shm`) on a full disk, "disk I/O error" (`SQLITE_IOERR_SHMSIZE`,
/// `SQLITE_IOERR_SHMMAP`), which names no cause.
fn disk_full_hint(source: &rusqlite::Error) -> &'static str {
    let out_of_space = matches!(source, rusqlite::Error::SqliteFailure(failure, _)
        if failure.code == rusqlite::ErrorCode::DiskFull
            || failure.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
            || failure.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMMAP);
    if out_of_space {
        " (is the disk holding it full? SQLite could not grow it or its -shm file)"
    } else {
        ""
    }
}

/// Page size of a new file, in bytes (an existing file keeps its own). A
/// commit writes every page it dirtied to the WAL, whole, and a checkpoint
/// writes it again: with keys spread over many pages (per wallet), bytes
/// written per event follow the page size. 1 KiB rather than SQLite's 4 KiB
/// wrote a fifth less per operation on the benchmark's mix (bench/README.md).
pub const PAGE_SIZE_BYTES: u32 = 1_024;
/// WAL pages (50 MiB of 1 KiB pages) after which a commit copies the WAL
/// back into the file itself, holding every write of the file behind it
/// for the copy and its fsync. Every writer has a checkpointer beside it
/// ([`SharedWriter::open`]'s own, every [`CHECKPOINT_INTERVAL_MS`];
/// [`BesideOwnedWriter`] for the event store's, at its own interval), so a
/// commit reaches this bound only when that thread falls behind: it is about
/// twice what the busiest file (the event store's, 1 s apart) gathered
/// between two copies on the benchmark's mix (bench/README.md).
pub const WAL_AUTOCHECKPOINT_PAGES: u32 = 50_000;
/// Bytes a WAL file keeps on disk when it starts again from its beginning
/// (`PRAGMA journal_size_limit`): a WAL is reused, not truncated, so without
/// it the file would keep the most it ever held, as after checkpoints that
/// failed for a while (tester h110 saw 84 MB stay). Above what a writer's
/// WAL reaches between two copies on a steady load, so that it is not cut
/// and grown again each time.
pub const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// Page cache of a writer connection, in KiB (SQLite's default is 2,000).
/// At the end of a write transaction SQLite drops every cached page past
/// the file's end, and a B-tree rebalance parks a page at the number of the
/// lock page (1 GiB / page size), far past it: after such a transaction the
/// drop scans the cache's whole hash table (`pcache1TruncateUnsafe`, 3.6 %
/// of the server's samples on the benchmark's mix, most under the event
/// store's commits). A smaller cache makes that scan short; the pages it no
/// longer keeps are read from the operating system's cache. 256 rather than
/// 2,000 KiB: 4-15 % less CPU per operation in each of six pairs of runs
/// (bench/README.md). Read connections keep the default. The bound holds
/// only with a page cache per connection, as `.cargo/config.toml` builds
/// SQLite (without `SQLITE_ENABLE_MEMORY_MANAGEMENT`, a writer's cache grew
/// to 1,600 pages on pages taken from the other connections' caches).
pub const WRITER_PAGE_CACHE_KIB: u32 = 256;

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

/// Opens the single writer connection of a database file, creating it
/// with [`DATABASE_FILE_MODE`]. The writer refuses to commit (rolls back:
/// `SQLITE_CONSTRAINT_COMMITHOOK`) once a read or a write of the file found
/// it damaged ([`FilePlace::damage`]), so no write is acknowledged into a
/// damaged file; a [`Durability::Durable`] writer also once the file or its
/// folder is no longer where it was opened ([`FilePlace`]), so no write is
/// acknowledged into a folder an operator moved or deleted. A caller that
/// runs its own statements on the connection passes their errors through a
/// [`FilePlace`] of the file ([`FilePlace::sqlite_error`]), so that damage
/// they meet is marked.
///
/// # Errors
/// [`SqliteError::Damaged`] when the file was found damaged already in this
/// process; the errors of opening and configuring the file.
pub fn open_writer(path: &Path, durability: Durability) -> Result<Connection, SqliteError> {
    open_writer_of(path, durability, None)
}

/// [`open_writer`] for a file of `migrations` (as [`migrate`] takes them),
/// whose schema it then brings up to date. A file that is not one of theirs
/// ([`SqliteError::Foreign`]) or is of a newer schema
/// ([`SqliteError::SchemaNewer`]) is refused before the writer changes any
/// of its bytes.
///
/// # Errors
/// Those of [`open_writer`] and [`migrate`].
pub fn open_migrated_writer(
    path: &Path,
    durability: Durability,
    migrations: &[&str],
) -> Result<Connection, SqliteError> {
    let mut connection = open_writer_of(path, durability, Some(migrations))?;
    migrate(&mut connection, migrations)?;
    Ok(connection)
}

/// [`open_writer`], the file checked against `migrations` when known.
fn open_writer_of(
    path: &Path,
    durability: Durability,
    migrations: Option<&[&str]>,
) -> Result<Connection, SqliteError> {
    create_private(path)?;
    // A file SQLite finds damaged while opening it is named so, with the way
    // back ([`SqliteError::Damaged`]), rather than as a failure to open.
    let at = |source: rusqlite::Error| {
        if is_damage(&source) {
            return SqliteError::Damaged {
                path: path.to_path_buf(),
                detail: source.to_string(),
            };
        }
        SqliteError::Open {
            path: path.to_path_buf(),
            source,
        }
    };
    refuse_unwritable(path)?;
    let connection = Connection::open(path).map_err(at)?;
    if connection
        .is_readonly(rusqlite::DatabaseName::Main)
        .map_err(at)?
    {
        return Err(SqliteError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    // Until the file is known to be ours, its close must not checkpoint a
    // WAL another program left beside it into it, nor delete that WAL (h163
    // M2): a refused file is left as it was.
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(at)?;
    refuse_foreign(&connection, path, migrations).map_err(|error| match error {
        ForeignCheck::Foreign(refusal) => refusal,
        ForeignCheck::Sqlite(source) => at(source),
    })?;
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        .map_err(at)?;
    let place = FilePlace::of(path)?;
    if let Some(damage) = place.damage() {
        return Err(damage);
    }
    data_dir_lock::note_written_file(path);
    // Every commit is refused alike once the file is gone or damaged: one
    // line an interval, with the count held back.
    let mut refusals = LogThrottle::every(Duration::from_millis(REFUSED_COMMIT_LOG_INTERVAL_MS));
    connection.commit_hook(Some(move || {
        // Three `stat`s a commit (of a group of appends, or of a
        // projection's batch): a commit into a file or a WAL moved, deleted
        // or replaced would be read back by no restart, or would land in a
        // copy put in the file's place. A damaged file takes none.
        let refused = place.note_wal().err();
        match refused {
            None => false,
            Some(refused) => {
                if let Some(line) = refusals.occurred(std::time::Instant::now()) {
                    tracing::error!(
                        error = %refused,
                        held_back = line.held_back,
                        "commit refused"
                    );
                }
                true
            }
        }
    }));
    connection
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(at)?;
    // Only a new, empty file takes it; it must come before WAL mode.
    connection
        .pragma_update(None, "page_size", PAGE_SIZE_BYTES)
        .map_err(at)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(at)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::Worker(format!(
            "{} refused WAL mode (got {mode})",
            path.display()
        )));
    }
    // Negative: a size in KiB, not in pages.
    connection
        .pragma_update(None, "cache_size", -i64::from(WRITER_PAGE_CACHE_KIB))
        .map_err(at)?;
    let synchronous = match durability {
        Durability::Durable => "FULL",
        Durability::Replayable => "NORMAL",
    };
    connection
        .pragma_update(None, "synchronous", synchronous)
        .map_err(at)?;
    // Statement journals (every savepoint, every statement that may fail
    // halfway inside a transaction) and sorts in memory, not in files under
    // /var/tmp: they only serve a rollback before the commit.
    connection
        .pragma_update(None, "temp_store", "MEMORY")
        .map_err(at)?;
    connection
        .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(at)?;
    connection
        .pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)
        .map_err(at)?;
    Ok(connection)
}

/// Why [`refuse_foreign`] refused a file, or could not read it.
enum ForeignCheck {
    Foreign(SqliteError),
    Sqlite(rusqlite::Error),
}

/// Refuses a file this server did not write, reading only, before the
/// writer sets its page size and WAL mode, so a refused file keeps every
/// byte: one with tables but no schema version (`user_version` 0, which
/// [`migrate`] sets with a file's first tables, in their transaction); and,
/// when the file's `migrations` are known, one of a newer schema than they
/// make, or one whose schema version is theirs but which lacks a table
/// they create up to that version.
fn refuse_foreign(
    connection: &Connection,
    path: &Path,
    migrations: Option<&[&str]>,
) -> Result<(), ForeignCheck> {
    let foreign = |why: String| {
        ForeignCheck::Foreign(SqliteError::Foreign {
            path: path.to_path_buf(),
            why,
        })
    };
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(ForeignCheck::Sqlite)?;
    let Ok(version) = usize::try_from(version) else {
        return Err(foreign(format!("schema version {version}")));
    };
    let tables = table_names(connection).map_err(ForeignCheck::Sqlite)?;
    if version == 0 {
        return match tables.is_empty() {
            true => Ok(()),
            false => Err(foreign(format!(
                "{} tables, no schema version",
                tables.len()
            ))),
        };
    }
    let Some(migrations) = migrations else {
        return Ok(());
    };
    if let Some(refusal) = version_refusal(connection, version, migrations.len()) {
        return Err(ForeignCheck::Foreign(refusal));
    }
    // A schema that cannot be made in memory (a migration needing what only
    // a server's connection has) cannot be compared: taken as the file says.
    let Some(expected) = schema_columns(&migrations[..version]) else {
        return Ok(());
    };
    let found = table_columns(connection).map_err(ForeignCheck::Sqlite)?;
    let missing: Vec<&String> = expected
        .difference(&found)
        .take(FOREIGN_MISSING_NAMED_MAX)
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(foreign(format!(
            "schema version {version} without its tables' columns {missing:?}"
        ))),
    }
}

/// Columns a refusal of a file lacking some names at most.
const FOREIGN_MISSING_NAMED_MAX: usize = 5;

/// The names of the tables of the database on `connection`.
fn table_names(connection: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut statement =
        connection.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}

/// Every column of every table of the database on `connection`, as
/// `table.column`: a table of another program under one of our names
/// lacks ours (h163 M1: decoy tables passed a check of names alone).
fn table_columns(connection: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut statement = connection.prepare(
        "SELECT m.name || '.' || c.name FROM sqlite_schema AS m \
         JOIN pragma_table_info(m.name) AS c WHERE m.type = 'table'",
    )?;
    let columns = statement.query_map([], |row| row.get(0))?;
    columns.collect()
}

/// The tables' columns `migrations` make in an empty database
/// ([`table_columns`]), made in memory; `None` when they cannot be.
fn schema_columns(migrations: &[&str]) -> Option<BTreeSet<String>> {
    let connection = Connection::open_in_memory().ok()?;
    for sql in migrations {
        connection.execute_batch(sql).ok()?;
    }
    table_columns(&connection).ok()
}

/// Whether a commit failed with its outcome known, nothing of it written:
/// [`open_writer`]'s guard refused it (the file or its folder moved, or the
/// file is damaged), or
/// the disk was full (`SQLITE_FULL`: a WAL write failed, so the frame that
/// carries the commit mark is not on disk, and a WAL without it is not
/// read back). An I/O error is not: it may come after that frame.
pub fn is_refused_commit(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK
            || failure.code == rusqlite::ErrorCode::DiskFull)
}

/// Read-only connections to a database file whose writer created it.
#[derive(Clone)]
pub struct ReadPool {
    pool: Pool,
    place: FilePlace,
}

impl ReadPool {
    /// A pool of up to [`READ_CONNECTIONS_MAX`] connections to `path`, each
    /// opened on first need, and only while `path` is where it is now
    /// ([`FilePlace`]): a connection is never opened on another file.
    ///
    /// The connections read pages through `pread`, not a memory map
    /// (`mmap_size` 0, SQLite's default): a mapped connection unmaps the
    /// whole file at the start of every read after another connection
    /// committed, and the next pages fault in again, with TLB shootdowns on
    /// every core. Mapped (1 GiB) from 2026-12-04 to 2026-12-05 for long
    /// audit-trail reads, which the wallet cache's recent events took over;
    /// unmapped, the benchmark's mix ran 8-12 % faster, reads beside writes
    /// 9-26 %, the transfer process 15-30 % (bench/README.md).
    pub fn open(path: &Path) -> Result<Self, SqliteError> {
        let place = FilePlace::of(path)?;
        let mut config = Config::new(existing_file_uri(path));
        config.pool = Some(PoolConfig::new(READ_CONNECTIONS_MAX));
        let checked = place.clone();
        let pool = config
            .builder(Runtime::Tokio1)
            .map_err(|error| SqliteError::Pool(error.to_string()))?
            .post_create(Hook::async_fn(move |_, _| {
                let checked = checked.clone();
                Box::pin(async move {
                    checked
                        .check()
                        .map_err(|moved| HookError::Message(moved.to_string().into()))
                })
            }))
            .build()
            .map_err(|error| SqliteError::Pool(error.to_string()))?;
        Ok(Self { pool, place })
    }

    /// Where the file was when the pool was opened, to check it is still there.
    pub fn place(&self) -> &FilePlace {
        &self.place
    }

    /// [`Self::read`], refused first when the file, its folder or its
    /// `-wal` is no longer where it was opened ([`FilePlace::check`]): for
    /// the reads that say whether the file can be used (a health probe, a
    /// checkpoint), which a pooled connection still open on the moved file
    /// would answer. Three `stat` calls more than [`Self::read`].
    pub async fn read_in_place<T, F>(&self, read: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.place.check()?;
        self.read(read).await
    }

    /// Runs a read on a pooled connection, off the async threads.
    pub async fn read<T, F>(&self, read: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if let Some(damage) = self.place.damage() {
            return Err(damage);
        }
        // A connection that cannot open because the file, its folder or
        // its `-wal` moved is that move (h102 F3: "unavailable, retry").
        let connection = self.pool.get().await.map_err(|error| {
            self.place
                .check()
                .err()
                .unwrap_or_else(|| SqliteError::Pool(error.to_string()))
        })?;
        let result = connection
            .interact(move |connection| {
                connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
                read(connection)
            })
            .await
            .map_err(|error| SqliteError::Worker(error.to_string()))?;
        result.map_err(|error| self.place.sqlite_error(error))
    }
}

/// Bytes escaped in a URI's path: what would end the path (`?`, `#`),
/// the escape itself (`%`), and what is not printable ASCII.
const URI_PATH_ESCAPED: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');

/// `path` as an SQLite URI that opens the file only if it exists
/// (`mode=rw`: never creates it), so a connection opened after the data
/// folder moved creates nothing at the old path.
fn existing_file_uri(path: &Path) -> String {
    let escaped = percent_encode(path.as_os_str().as_encoded_bytes(), URI_PATH_ESCAPED);
    format!("file:{escaped}?mode=rw")
}

/// A writer connection shared by the tasks of one process, used one at a time.
#[derive(Clone)]
pub struct SharedWriter {
    connection: Arc<Mutex<Connection>>,
    /// The file's place: its damage, found by a read or a write of the file
    /// in this process, refuses every write.
    place: FilePlace,
    /// The file's background checkpointer: it stops when the last clone of
    /// this writer is dropped.
    _checkpointer: Arc<Checkpointer>,
}

/// Least time between two log lines of a writer's refused commits, in
/// milliseconds (the ones between are counted in the next line).
pub const REFUSED_COMMIT_LOG_INTERVAL_MS: u64 = 10_000;

impl SharedWriter {
    /// Where the file is, and whether it was found damaged.
    pub fn place(&self) -> &FilePlace {
        &self.place
    }

    /// Opens the writer and brings the schema up to date with `migrations`.
    ///
    /// # Errors
    /// [`open_writer`]'s and [`migrate`]'s.
    pub fn open(
        path: &Path,
        migrations: &[&str],
        durability: Durability,
    ) -> Result<Self, SqliteError> {
        let opened = open_beside_checkpointer(path, migrations, durability)?;
        Ok(Self {
            connection: opened.connection,
            place: opened.place,
            _checkpointer: opened.checkpointer,
        })
    }

    /// Runs a write on the writer connection, off the async threads.
    ///
    /// # Errors
    /// [`SqliteError::Damaged`] without running `write` once the file was
    /// found damaged, and when `write` finds it damaged (SQLite's
    /// `SQLITE_CORRUPT`, `SQLITE_NOTADB`: the file is then marked, and
    /// every later read or write of it is refused); SQLite's other errors.
    pub async fn write<T, F>(&self, write: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let place = self.place.clone();
        tokio::task::spawn_blocking(move || write_on(&connection, &place, write))
            .await
            .map_err(|error| SqliteError::Worker(error.to_string()))?
    }

    /// [`Self::write`] on the calling thread, for a start-up's own writes
    /// before the file is served. A second writer connection is never
    /// opened beside this one instead: [`open_writer`]'s checks open and
    /// close the file's `-wal` and `-shm`, and closing any descriptor of a
    /// file drops every POSIX lock this process holds on it, SQLite's among
    /// them. Without its lock on the `-shm`, another process's `sqlite3`
    /// took itself for the file's only user and rebuilt the `-shm` under
    /// this one's memory map: the server died of SIGBUS (h144 F1).
    ///
    /// # Errors
    /// [`Self::write`]'s.
    pub fn write_at_start<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SqliteError> {
        write_on(&self.connection, &self.place, write)
    }
}

/// Runs `write` on the writer `connection` of the file at `place`, unless
/// the file was found damaged; marks damage the write meets.
fn write_on<T>(
    connection: &Mutex<Connection>,
    place: &FilePlace,
    write: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> Result<T, SqliteError> {
    let mut guard = writer_thread::lock_writer(connection)?;
    // Checked holding the connection: a write waiting for it while another
    // found the damage does not start.
    if let Some(damage) = place.damage() {
        return Err(damage);
    }
    write(&mut guard).map_err(|error| place.sqlite_error(error))
}

/// A writer connection shared with the [`Checkpointer`] of its file.
struct BesideCheckpointer {
    /// The writer connection, schema up to date.
    connection: Arc<Mutex<Connection>>,
    /// Where the file is, and whether it was found damaged.
    place: FilePlace,
    /// Finishes its rounds by taking `connection`'s lock; stops when dropped.
    checkpointer: Arc<Checkpointer>,
}

/// The writer connection of `path` with its schema up to date, shared with
/// a [`Checkpointer`] that finishes its rounds by taking the connection's
/// lock, and the file's place.
fn open_beside_checkpointer(
    path: &Path,
    migrations: &[&str],
    durability: Durability,
) -> Result<BesideCheckpointer, SqliteError> {
    let connection = open_migrated_writer(path, durability, migrations)?;
    let place = FilePlace::of(path)?;
    let connection = Arc::new(Mutex::new(connection));
    let checkpointer = Arc::new(Checkpointer::start(
        path,
        CHECKPOINT_INTERVAL_MS,
        Finish::Shared(Arc::clone(&connection)),
        place.clone(),
    )?);
    Ok(BesideCheckpointer {
        connection,
        place,
        checkpointer,
    })
}

/// Why a file at schema version `applied` cannot be brought to `known`:
/// a newer build wrote it ([`SqliteError::SchemaNewer`]), or it is older
/// and its folder is given to [`forbid_migrations`]
/// ([`SqliteError::SchemaBehind`]); `None` when it can.
fn version_refusal(connection: &Connection, applied: usize, known: usize) -> Option<SqliteError> {
    let file = || connection.path().unwrap_or_default().to_owned();
    if applied > known {
        return Some(SqliteError::SchemaNewer {
            file: file(),
            found: applied,
            known,
        });
    }
    if 0 < applied && applied < known && migrations_forbidden(connection) {
        return Some(SqliteError::SchemaBehind {
            file: file(),
            found: applied,
            known,
        });
    }
    None
}

/// Brings a database file's schema up to date: `migrations[i]` is schema
/// version `i + 1`, applied once, in one transaction, recorded in `user_version`.
///
/// # Errors
/// [`SqliteError::SchemaNewer`] for a file a newer build wrote (nothing is
/// changed), [`SqliteError::SchemaBehind`] for an older file (not a new one)
/// of a folder given to [`forbid_migrations`], and SQLite's errors.
pub fn migrate(connection: &mut Connection, migrations: &[&str]) -> Result<(), SqliteError> {
    let applied: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if let Some(refusal) = version_refusal(connection, applied, migrations.len()) {
        return Err(refusal);
    }
    let file = connection.path().unwrap_or_default().to_owned();
    for (index, sql) in migrations.iter().enumerate().skip(applied) {
        let version = index + 1;
        let step = |connection: &mut Connection| {
            let transaction = connection.transaction()?;
            transaction.execute_batch(sql)?;
            transaction.pragma_update(None, "user_version", version)?;
            transaction.commit()
        };
        step(connection).map_err(|source| SqliteError::Migration {
            file: file.clone(),
            version,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages written beyond what the file's own schema takes.
    const ROWS: usize = 200;
    const ROW_BYTES: usize = 1_000;
    /// Far more than the checkpointer's interval.
    const CHECKPOINT_WAIT_MS: u64 = 10_000;

    /// The bundled SQLite is built as `.cargo/config.toml` asks: a page
    /// cache per connection, bounded by its own `cache_size` and taking no
    /// process-wide lock (no `ENABLE_MEMORY_MANAGEMENT`), and no allocation
    /// counters (`DEFAULT_MEMSTATUS=0`).
    #[test]
    fn sqlite_is_built_with_the_repositorys_options() {
        let connection = Connection::open_in_memory().expect("in memory");
        let mut statement = connection
            .prepare("PRAGMA compile_options")
            .expect("prepared");
        let options: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .expect("options")
            .collect::<Result<_, _>>()
            .expect("read");
        assert!(
            !options
                .iter()
                .any(|option| option == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        assert!(
            options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// Another program's database where a file of ours belongs is refused
    /// with every byte kept: still in its rollback journal mode, no `-wal`.
    #[test]
    fn another_program_s_database_is_refused_unchanged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        {
            let other = Connection::open(&path).expect("open");
            other
                .execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO events (body) VALUES ('theirs');")
                .expect("their table");
        }
        let before = std::fs::read(&path).expect("read");
        let refused = open_writer(&path, Durability::Durable);
        assert!(
            matches!(&refused, Err(SqliteError::Foreign { why, .. }) if why.contains("1 tables")),
            "{:?}",
            refused.err()
        );
        assert_eq!(std::fs::read(&path).expect("read"), before);
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        assert!(!std::path::Path::new(&wal).exists());

        // One in WAL mode whose WAL another program left beside it: neither
        // checkpointed into the file nor deleted.
        let walled = dir.path().join("read_model.db");
        {
            let other = Connection::open(&walled).expect("open");
            other
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .expect("keep the WAL");
            other
                .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE theirs (x); INSERT INTO theirs VALUES (1);")
                .expect("their file");
        }
        let mut walled_wal = walled.clone().into_os_string();
        walled_wal.push("-wal");
        let both = || {
            (
                std::fs::read(&walled).expect("file"),
                std::fs::read(&walled_wal).expect("its WAL"),
            )
        };
        let before = both();
        assert!(!before.1.is_empty(), "frames in the WAL");
        assert!(matches!(
            open_writer(&walled, Durability::Durable),
            Err(SqliteError::Foreign { .. })
        ));
        assert_eq!(both(), before);

        let ours = dir.path().join("ledger.db");
        let mut writer = open_writer(&ours, Durability::Durable).expect("new file");
        migrate(&mut writer, &["CREATE TABLE a (x);"]).expect("migrated");
        drop(writer);
        assert!(
            open_writer(&ours, Durability::Durable).is_ok(),
            "ours again"
        );
    }

    /// A file whose schema version is one of ours but whose tables are not
    /// what our migrations up to it make, or whose version is past them, is
    /// refused by [`open_migrated_writer`] with every byte kept; a file our
    /// migrations made opens at any of their versions.
    #[test]
    fn a_schema_version_without_its_tables_is_refused_unchanged() {
        const MIGRATIONS: [&str; 3] = [
            "CREATE TABLE entries (id INTEGER PRIMARY KEY);",
            "CREATE TABLE accounts (name TEXT PRIMARY KEY);",
            "CREATE INDEX entries_by_id ON entries (id);",
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        let theirs = "CREATE TABLE entries (id INTEGER PRIMARY KEY, body TEXT); \
                      INSERT INTO entries (body) VALUES ('theirs');";
        let decoys = "CREATE TABLE entries (x); CREATE TABLE accounts (y); \
                      INSERT INTO entries VALUES (1);";
        for (name, tables, version) in [
            ("theirs.db", theirs, 2),
            ("decoys.db", decoys, 2),
            ("newer.db", theirs, 99),
            ("negative.db", theirs, -1),
        ] {
            let path = dir.path().join(name);
            {
                let other = Connection::open(&path).expect("open");
                other
                    .execute_batch(&format!("{tables} PRAGMA user_version = {version};"))
                    .expect("their file");
            }
            let before = std::fs::read(&path).expect("read");
            let refused = open_migrated_writer(&path, Durability::Durable, &MIGRATIONS)
                .map(|_| ())
                .expect_err("refused");
            match version {
                2 => assert!(
                    matches!(&refused, SqliteError::Foreign { why, .. } if why.contains("accounts.name")),
                    "{refused}"
                ),
                -1 => assert!(
                    matches!(&refused, SqliteError::Foreign { why, .. } if why.contains("-1")),
                    "{refused}"
                ),
                _ => assert!(
                    matches!(refused, SqliteError::SchemaNewer { found: 99, .. }),
                    "{refused}"
                ),
            }
            assert_eq!(std::fs::read(&path).expect("read"), before, "{name}");
        }
        for version in 1..=MIGRATIONS.len() {
            let path = dir.path().join(format!("ours-{version}.db"));
            open_migrated_writer(&path, Durability::Durable, &MIGRATIONS[..version]).expect("made");
            open_migrated_writer(&path, Durability::Durable, &MIGRATIONS)
                .expect("opened and brought up to date");
        }
    }

    /// A migration that fails names the file and the version, and leaves the
    /// file at the version before it.
    #[test]
    fn a_failed_migration_names_its_file_and_keeps_the_version_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("failing.db");
        let mut connection = Connection::open(&path).expect("open");
        let failing = ["CREATE TABLE a (x);", "CREATE TABLE a (x);"];
        let refused = migrate(&mut connection, &failing);
        let Err(SqliteError::Migration { file, version, .. }) = &refused else {
            panic!("a migration error, not {refused:?}");
        };
        assert_eq!((file.ends_with("failing.db"), *version), (true, 2));
        assert!(refused
            .as_ref()
            .map_err(ToString::to_string)
            .expect_err("refused")
            .contains("failing.db"));
        let applied: usize = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(applied, 1);
    }

    /// A file a newer build migrated further is refused, and left as it is.
    #[test]
    fn a_file_of_a_newer_schema_is_refused_unchanged() {
        let mut connection = Connection::open_in_memory().expect("in memory");
        let newer = ["CREATE TABLE a (x);", "CREATE TABLE b (x);"];
        migrate(&mut connection, &newer).expect("migrated");
        let refused = migrate(&mut connection, &newer[..1]);
        assert!(
            matches!(
                refused,
                Err(SqliteError::SchemaNewer {
                    found: 2,
                    known: 1,
                    ..
                })
            ),
            "{refused:?}"
        );
        let version: usize = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(version, 2);
    }

    /// A file of one table, `rows (id, body)`.
    fn open_rows(path: &Path, durability: Durability) -> SharedWriter {
        SharedWriter::open(
            path,
            &["CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL);"],
            durability,
        )
        .expect("opened")
    }

    /// Inserts one row through `writer`.
    async fn insert(writer: &SharedWriter) -> Result<usize, SqliteError> {
        writer
            .write(|connection| connection.execute("INSERT INTO rows (body) VALUES (x'00')", []))
            .await
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_and_its_wal_are_its_owners_only_in_an_open_folder() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("folder opened to everyone");
        let path = dir.path().join("projection.db");
        let writer = open_rows(&path, Durability::Durable);
        insert(&writer).await.expect("written");
        for name in ["projection.db", "projection.db-wal", "projection.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).expect(name).mode() & 0o777;
            assert_eq!(mode, DATABASE_FILE_MODE, "{name}: {mode:o}");
        }
        // A file that exists keeps its mode; its data is read as before.
        drop(writer);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let writer = open_rows(&path, Durability::Durable);
        let rows: i64 = writer
            .write(|connection| {
                connection.query_row("SELECT count(*) FROM rows", [], |row| row.get(0))
            })
            .await
            .expect("read");
        assert_eq!(rows, 1);
        let mode = std::fs::metadata(&path).expect("file").mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    /// Clears the immutable attribute of a file when dropped.
    struct Immutable<'a>(&'a Path);

    impl Immutable<'_> {
        /// `chattr +i` on `path`, or `None` where it cannot be set (a file
        /// system without it, or no `CAP_LINUX_IMMUTABLE`).
        fn set(path: &Path) -> Option<Immutable<'_>> {
            let set = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status();
            set.is_ok_and(|status| status.success())
                .then_some(Immutable(path))
        }
    }

    impl Drop for Immutable<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(self.0)
                .status();
        }
    }

    #[tokio::test]
    async fn a_file_this_process_may_not_write_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("projection.db");
        drop(open_rows(&path, Durability::Durable));
        // Not writable even by root, which chmod cannot do.
        let Some(_immutable) = Immutable::set(&path) else {
            eprintln!("SKIPPED: chattr +i is not available here");
            return;
        };
        let refused = open_writer(&path, Durability::Durable).expect_err("read-only");
        assert!(matches!(refused, SqliteError::ReadOnly { .. }), "{refused}");
        assert!(
            refused.to_string().contains("cannot be written"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_wal_this_process_may_not_write_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("projection.db");
        let wal = dir.path().join("projection.db-wal");
        let writer = open_rows(&path, Durability::Durable);
        insert(&writer).await.expect("written");
        // A kill -9 leaves the WAL behind; here it is kept by copying it.
        let kept = std::fs::read(&wal).expect("a WAL");
        drop(writer);
        std::fs::write(&wal, kept).expect("the WAL left behind");
        let Some(_immutable) = Immutable::set(&wal) else {
            eprintln!("SKIPPED: chattr +i is not available here");
            return;
        };
        let refused = open_writer(&path, Durability::Durable).expect_err("read-only WAL");
        assert!(
            matches!(&refused, SqliteError::ReadOnly { path } if path.ends_with("projection.db-wal")),
            "{refused}"
        );
    }

    #[test]
    fn an_open_refused_for_want_of_space_asks_whether_the_disk_is_full() {
        let failed = |code| SqliteError::Open {
            path: "events.db".into(),
            source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
        };
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR_SHMMAP,
            rusqlite::ffi::SQLITE_IOERR_SHMSIZE,
        ] {
            assert!(
                failed(code).to_string().contains("disk holding it full"),
                "{code}"
            );
        }
        assert!(!failed(rusqlite::ffi::SQLITE_CANTOPEN)
            .to_string()
            .contains("full"));
    }

    #[test]
    fn a_writer_keeps_a_small_page_cache_and_cuts_its_wal_file_back_to_the_limit() {
        let root = tempfile::tempdir().expect("temp dir");
        for durability in [Durability::Durable, Durability::Replayable] {
            let writer = open_writer(&root.path().join("writer.db"), durability).expect("opened");
            let pragma = |name: &str| -> i64 {
                writer
                    .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                    .expect(name)
            };
            assert_eq!(pragma("cache_size"), -i64::from(WRITER_PAGE_CACHE_KIB));
            assert_eq!(pragma("journal_size_limit"), WAL_SIZE_LIMIT_BYTES);
        }
        // Above what a copy interval gathers: the file is not cut each time.
        assert!(
            WAL_SIZE_LIMIT_BYTES > i64::from(WAL_AUTOCHECKPOINT_PAGES) * i64::from(PAGE_SIZE_BYTES)
        );
    }

    #[test]
    fn a_full_disk_refuses_a_commit_and_an_io_error_leaves_it_unknown() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(is_refused_commit(&failure(rusqlite::ffi::SQLITE_FULL)));
        assert!(!is_refused_commit(&failure(
            rusqlite::ffi::SQLITE_IOERR_FSYNC
        )));
        assert!(!is_refused_commit(&failure(rusqlite::ffi::SQLITE_IOERR)));
    }

    /// Rows [`fill`] writes, of [`FILLED_ROW_BYTES`] each.
    const FILLED_ROWS: i64 = 2_000;
    const FILLED_ROW_BYTES: i64 = 200;

    /// Writes [`FILLED_ROWS`] rows through `writer` and copies them into the
    /// file itself (its WAL emptied), so that [`damage`] reaches them.
    async fn fill(writer: &SharedWriter) {
        writer
            .write(|connection| {
                connection.execute_batch(&format!(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                     WHERE i < {FILLED_ROWS}) \
                     INSERT INTO rows (body) SELECT randomblob({FILLED_ROW_BYTES}) FROM n; \
                     PRAGMA wal_checkpoint(TRUNCATE);"
                ))
            })
            .await
            .expect("rows written");
    }

    /// Overwrites pages 3 to 40 of the file at `path`, in place, with bytes
    /// that are no B-tree page: leaves of `rows`, not its root (page 2) nor
    /// its last leaf.
    fn damage(path: &Path) {
        use std::io::{Seek, SeekFrom, Write};
        let header = std::fs::read(path).expect("file");
        let page = u64::from(u16::from_be_bytes([header[16], header[17]]));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("opened");
        file.seek(SeekFrom::Start(2 * page)).expect("sought");
        let garbage = vec![0x5a; usize::try_from(38 * page).expect("small")];
        file.write_all(&garbage).expect("damaged");
        file.sync_all().expect("synced");
    }

    /// The total length of the bodies of `rows`, which reads every leaf.
    async fn sum(pool: &ReadPool) -> Result<i64, SqliteError> {
        pool.read(|connection| {
            connection.query_row("SELECT sum(length(body)) FROM rows", [], |row| row.get(0))
        })
        .await
    }

    /// The largest id in `rows`, read by a connection of its own along the
    /// right edge of the table (the root and the last leaf, which [`damage`]
    /// leaves whole).
    fn last_id(path: &Path) -> i64 {
        Connection::open(path)
            .expect("opened")
            .query_row("SELECT max(id) FROM rows", [], |row| row.get(0))
            .expect("the right edge reads")
    }

    /// h97 F4: a file with no database header stopped the start with "file
    /// is not a database" and no way back; it is named damaged, with one.
    #[test]
    fn a_file_that_is_no_database_is_named_damaged_when_opened() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("read_model.db");
        std::fs::write(&path, [0x5a_u8; 4096]).expect("written");
        let opened = open_writer(&path, Durability::Replayable).expect_err("no database");
        assert!(matches!(opened, SqliteError::Damaged { .. }), "{opened}");
        let message = opened.to_string();
        assert!(message.contains("read_model.db is damaged"), "{message}");
        assert!(message.contains("moved out of the folder"), "{message}");
    }

    #[tokio::test]
    async fn a_read_that_finds_the_file_damaged_leaves_it_untrusted() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("damaged.db");
        fill(&open_rows(&path, Durability::Durable)).await;
        let healthy = ReadPool::open(&path).expect("pool");
        assert_eq!(
            sum(&healthy).await.expect("read"),
            FILLED_ROWS * FILLED_ROW_BYTES
        );
        assert!(healthy.place().check().is_ok());
        drop(healthy);

        damage(&path);

        let pool = ReadPool::open(&path).expect("pool");
        let found = sum(&pool).await.expect_err("a damaged file is not read");
        assert!(matches!(found, SqliteError::Damaged { .. }), "{found}");
        assert!(
            found.to_string().contains("damaged.db is damaged"),
            "{found}"
        );
        let checked = pool.place().check().expect_err("damage is remembered");
        assert!(matches!(checked, SqliteError::Damaged { .. }), "{checked}");
        let later = pool
            .read(|connection| connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
            .await
            .expect_err("no read of a file found damaged");
        assert!(matches!(later, SqliteError::Damaged { .. }), "{later}");
    }

    /// h97 F2: the writer went on committing into a file its readers had
    /// found damaged.
    #[tokio::test]
    async fn a_write_after_a_read_found_the_file_damaged_is_refused_unstarted() {
        for durability in [Durability::Durable, Durability::Replayable] {
            let root = tempfile::tempdir().expect("temp dir");
            let path = root.path().join("damaged.db");
            let writer = open_rows(&path, durability);
            fill(&writer).await;
            damage(&path);

            let readers = ReadPool::open(&path).expect("pool");
            let found = sum(&readers).await.expect_err("damage found");
            assert!(matches!(found, SqliteError::Damaged { .. }), "{found}");

            let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let started_in_write = Arc::clone(&started);
            let refused = writer
                .write(move |connection| {
                    started_in_write.store(true, std::sync::atomic::Ordering::SeqCst);
                    connection.execute("INSERT INTO rows (body) VALUES (x'00')", [])
                })
                .await
                .expect_err("no write into a damaged file");
            assert!(
                matches!(&refused, SqliteError::Damaged { detail, .. } if *detail == found_detail(&found)),
                "{refused}"
            );
            assert!(
                !started.load(std::sync::atomic::Ordering::SeqCst),
                "{durability:?}: the write was not started"
            );
            assert_eq!(
                last_id(&path),
                FILLED_ROWS,
                "{durability:?}: nothing committed"
            );
            // A writer opened afterwards is refused too.
            let reopened = open_writer(&path, durability).expect_err("damaged");
            assert!(
                matches!(reopened, SqliteError::Damaged { .. }),
                "{reopened}"
            );
        }
    }

    /// The detail of a [`SqliteError::Damaged`].
    fn found_detail(error: &SqliteError) -> String {
        match error {
            SqliteError::Damaged { detail, .. } => detail.clone(),
            other => panic!("not damage: {other}"),
        }
    }

    /// The guard of a writer connection used directly (the event store's)
    /// refuses to commit into a file a read found damaged.
    #[tokio::test]
    async fn a_writer_connection_commits_nothing_into_a_file_found_damaged() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("damaged.db");
        fill(&open_rows(&path, Durability::Durable)).await;
        let connections = [Durability::Durable, Durability::Replayable]
            .map(|durability| (durability, open_writer(&path, durability).expect("healthy")));
        damage(&path);
        let readers = ReadPool::open(&path).expect("pool");
        let found = sum(&readers).await.expect_err("damage found");
        assert!(matches!(found, SqliteError::Damaged { .. }), "{found}");
        for (durability, connection) in connections {
            let refused = connection
                .execute("INSERT INTO rows (body) VALUES (x'00')", [])
                .expect_err("the commit is refused");
            assert!(is_refused_commit(&refused), "{durability:?}: {refused}");
            let refused = readers.place().sqlite_error(refused);
            assert!(
                matches!(refused, SqliteError::Damaged { .. }),
                "{durability:?}: {refused}"
            );
            assert_eq!(
                last_id(&path),
                FILLED_ROWS,
                "{durability:?}: nothing committed"
            );
        }
    }

    /// h97 F3: damage a write met was not marked, so reads went on.
    #[tokio::test]
    async fn a_write_that_finds_the_file_damaged_refuses_the_reads_after_it() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("damaged.db");
        fill(&open_rows(&path, Durability::Durable)).await;
        let readers = ReadPool::open(&path).expect("pool");
        let read_one = || {
            readers
                .read(|connection| connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
        };
        assert_eq!(read_one().await.expect("healthy"), 1);

        damage(&path);
        // Opened on the damaged file: its first page is whole.
        let writer = open_rows(&path, Durability::Durable);
        let found = writer
            .write(|connection| connection.execute("UPDATE rows SET body = x'01'", []))
            .await
            .expect_err("the update reads the damaged leaves");
        assert!(matches!(found, SqliteError::Damaged { .. }), "{found}");

        for later in [
            read_one().await,
            ReadPool::open(&path)
                .expect("pool")
                .read(|connection| connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
                .await,
        ] {
            let later = later.expect_err("no read of a file a write found damaged");
            assert!(
                matches!(&later, SqliteError::Damaged { detail, .. } if *detail == found_detail(&found)),
                "{later}"
            );
        }
        let checked = readers
            .place()
            .check()
            .expect_err("for the health report too");
        assert!(matches!(checked, SqliteError::Damaged { .. }), "{checked}");
        let refused = insert(&writer).await.expect_err("nor a later write");
        assert!(matches!(refused, SqliteError::Damaged { .. }), "{refused}");
        assert_eq!(last_id(&path), FILLED_ROWS, "nothing committed");
    }

    /// h98: a `-wal` deleted (or replaced) while the server ran still took
    /// commits through its open descriptor, which no restart read back; a
    /// projection file replaced by a copy took commits meant for the old one.
    #[tokio::test]
    async fn a_wal_deleted_or_a_file_replaced_takes_no_commit_in_either_durability() {
        for durability in [Durability::Durable, Durability::Replayable] {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("rows.db");
            let writer = open_rows(&path, durability);
            insert(&writer).await.expect("committed");
            insert(&writer).await.expect("committed, the WAL seen");
            std::fs::remove_file(dir.path().join("rows.db-wal")).expect("WAL deleted");
            let refused = insert(&writer)
                .await
                .expect_err("no commit into a deleted WAL");
            assert!(
                matches!(&refused, SqliteError::Moved { path } if path.ends_with("rows.db-wal")),
                "{durability:?}: {refused}"
            );
            // Readers see it too, so the health check that reads says so.
            let readers = ReadPool::open(&path).expect("pool");
            let checked = readers.place().check().expect_err("the WAL is gone");
            assert!(
                matches!(&checked, SqliteError::Moved { path } if path.ends_with("rows.db-wal")),
                "{checked}"
            );

            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("rows.db");
            let writer = open_rows(&path, durability);
            insert(&writer).await.expect("committed");
            let copy = dir.path().join("copy.db");
            std::fs::copy(&path, &copy).expect("copied");
            std::fs::rename(&copy, &path).expect("replaced");
            let refused = insert(&writer)
                .await
                .expect_err("no commit into a replaced file");
            assert!(
                matches!(&refused, SqliteError::Moved { path } if path.ends_with("rows.db")),
                "{durability:?}: {refused}"
            );
        }
    }

    #[tokio::test]
    async fn a_durable_file_moved_away_takes_no_commit_and_no_new_reader() {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("folder");
        let path = data.join("events.db");
        let writer = open_rows(&path, Durability::Durable);
        insert(&writer).await.expect("committed in place");
        let readers = ReadPool::open(&path).expect("pool");
        assert!(readers.place().check().is_ok());

        std::fs::rename(&data, root.path().join("moved")).expect("renamed");
        let refused = insert(&writer)
            .await
            .expect_err("no commit into a moved folder");
        assert!(
            matches!(&refused, SqliteError::Moved { path } if path.ends_with("events.db")),
            "{refused}"
        );
        assert!(matches!(
            readers.place().check(),
            Err(SqliteError::Moved { .. })
        ));
        // A new folder at the path: a reader creates nothing in it.
        std::fs::create_dir(&data).expect("folder again");
        let read = readers
            .read(|connection| connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)))
            .await;
        assert!(
            matches!(read, Err(SqliteError::Moved { .. })),
            "a connection that cannot open is the move: {read:?}"
        );
        assert_eq!(
            std::fs::read_dir(&data).expect("listed").count(),
            0,
            "nothing created"
        );
        // Another server's file at the path: no connection is opened on it.
        drop(open_rows(&path, Durability::Durable));
        let read = readers
            .read(|connection| {
                connection.query_row("SELECT count(*) FROM rows", [], |row| row.get::<_, i64>(0))
            })
            .await;
        assert!(matches!(read, Err(SqliteError::Moved { .. })), "{read:?}");

        // The moved file kept every acknowledged row, and only those.
        let moved = Connection::open(root.path().join("moved").join("events.db")).expect("open");
        let rows: i64 = moved
            .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn readers_open_a_file_whose_path_holds_uri_characters() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("a ?b#c%20d é");
        std::fs::create_dir(&folder).expect("folder");
        let path = folder.join("events.db");
        let writer = open_rows(&path, Durability::Durable);
        insert(&writer).await.expect("written");
        let readers = ReadPool::open(&path).expect("pool");
        let rows = readers
            .read(|connection| {
                connection.query_row("SELECT count(*) FROM rows", [], |row| row.get::<_, i64>(0))
            })
            .await
            .expect("read through the URI");
        assert_eq!(rows, 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("listed").count(),
            1,
            "no stray file"
        );
    }

    #[tokio::test]
    async fn every_shared_writer_is_checkpointed_without_its_commits() {
        for durability in [Durability::Replayable, Durability::Durable] {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("rows.db");
            let writer = open_rows(&path, durability);
            writer
                .write(|connection| {
                    let transaction = connection.transaction()?;
                    for _ in 0..ROWS {
                        transaction.execute(
                            "INSERT INTO rows (body) VALUES (zeroblob(?1))",
                            [ROW_BYTES],
                        )?;
                    }
                    transaction.commit()
                })
                .await
                .expect("written");
            // Far below the writer's own checkpoint bound: without the
            // checkpointer the rows would stay in the WAL.
            assert!(ROWS < WAL_AUTOCHECKPOINT_PAGES as usize);

            let expected = (ROWS * ROW_BYTES) as u64;
            let deadline = std::time::Instant::now() + Duration::from_millis(CHECKPOINT_WAIT_MS);
            while file_len(&path) < expected {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{durability:?}: the file holds {} bytes, not yet the {expected} written to its WAL",
                    file_len(&path)
                );
                tokio::time::sleep(Duration::from_millis(CHECKPOINT_INTERVAL_MS)).await;
            }
        }
    }
}
