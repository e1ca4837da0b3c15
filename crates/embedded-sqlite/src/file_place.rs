//! Whether a database file is still where the server opened it.
//!
//! SQLite opens a file by its path: a connection opened after the data
//! folder was renamed, deleted or replaced opens whatever the path leads to
//! then (nothing, or another server's files), while the connections opened
//! before keep the old files. A [`FilePlace`] records the device and inode
//! of a file and of its folder when the file is opened, and says whether the
//! path still leads to both: a durable writer refuses to commit when it does
//! not (so no write is acknowledged into a folder that is gone), and a read
//! pool refuses to open a connection.
//!
//! It also remembers whether a read or a write found the file damaged
//! (SQLite's `SQLITE_CORRUPT` or `SQLITE_NOTADB`): from then on the file is
//! not trusted, every check fails naming the damage, reads and writes are
//! refused, and the health report that checks it says the store is down,
//! until the server is restarted on a repaired or restored file.
//!
//! Damage is a fact about the file, not about one handle on it: the writer
//! (its commit hook and [`crate::SharedWriter`]) and the read pool each
//! record a place of their own, and all of them must see a damage any of
//! them found. So every place of one file shares one damage record, found
//! in a process-wide registry by the file's identity (device, inode and,
//! where the file system keeps it, birth time) when the place is recorded.
//! The registry holds its records weakly: a record lives while a place of
//! its file does, so it holds at most one record per file open in the
//! process (a server keeps its places until it stops; a file opened again
//! after all of them are gone is trusted again, as after a restart). A file
//! replaced at the same path (a new inode: [`SqliteError::Moved`] for the
//! places recorded before) gets a record of its own and is not taken
//! for damaged; the birth time keeps a new file that reuses a deleted file's
//! inode from taking over its record. Passing one place from the writer to
//! the read pool instead would need every caller that opens both (the
//! event store and each projection) to do it right, and a second writer
//! connection of a file would still miss it; the registry makes it hold for
//! any of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use crate::SqliteError;

/// A file's device and inode numbers.
type Identity = (u64, u64);

/// What the places of one file share: what SQLite said when a read or a
/// write first found the file damaged, and the `-wal` file its writer first
/// committed into.
#[derive(Debug, Default)]
struct DamageRecord {
    damage: OnceLock<String>,
    /// SQLite keeps a connection's WAL open by its descriptor: one deleted
    /// or replaced while the server runs still takes commits, which no
    /// restart reads back (the path leads to nothing, or to another WAL).
    wal: OnceLock<Identity>,
}

/// Which file a damage record is of: its [`Identity`] and its birth time
/// where the file system keeps one (an inode number is reused once the file
/// that had it is deleted and closed; the pair is not). Without inode
/// numbers, the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RecordKey {
    file: Identity,
    born: Option<SystemTime>,
    #[cfg(not(unix))]
    path: PathBuf,
}

/// The damage record of every file with a place in this process.
static DAMAGE_RECORDS: LazyLock<Mutex<HashMap<RecordKey, Weak<DamageRecord>>>> =
    LazyLock::new(Mutex::default);

/// The damage record shared by the places of the file `key` names: the one
/// a living place of it holds, or a new one. Forgets the records no place
/// holds any more, so the registry holds one per file open.
fn damage_record(key: RecordKey) -> Arc<DamageRecord> {
    let mut records = DAMAGE_RECORDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(record) = records.get(&key).and_then(Weak::upgrade) {
        return record;
    }
    records.retain(|_, record| record.strong_count() > 0);
    let record = Arc::new(DamageRecord::default());
    records.insert(key, Arc::downgrade(&record));
    record
}

/// Where a database file was when it was opened. Cheap to check: two
/// `stat` calls ([`identity`]).
#[derive(Debug, Clone)]
pub struct FilePlace {
    path: PathBuf,
    folder: Identity,
    file: Identity,
    /// What SQLite said when a read or a write first found the file
    /// damaged; shared by every place of the file ([`damage_record`]).
    damage: Arc<DamageRecord>,
}

impl FilePlace {
    /// Records where `path` (which must exist) and its folder are now, and
    /// takes the file's damage record, shared with every other place of it.
    ///
    /// # Errors
    /// [`SqliteError::File`] naming the path that cannot be read.
    pub fn of(path: &Path) -> Result<Self, SqliteError> {
        let unreadable = |at: &Path| {
            let at = at.to_path_buf();
            move |source| SqliteError::File { path: at, source }
        };
        let file = identity(path).map_err(unreadable(path))?;
        let folder = identity(folder_of(path)).map_err(unreadable(folder_of(path)))?;
        let key = RecordKey {
            file,
            born: std::fs::metadata(path)
                .and_then(|metadata| metadata.created())
                .ok(),
            #[cfg(not(unix))]
            path: path.to_path_buf(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            folder,
            file: key.file,
            damage: damage_record(key),
        })
    }

    /// [`SqliteError::Damaged`] once a read or a write found the file
    /// damaged, through this place or another of the same file.
    pub fn damage(&self) -> Option<SqliteError> {
        self.damage.damage.get().map(|detail| SqliteError::Damaged {
            path: self.path.clone(),
            detail: detail.clone(),
        })
    }

    /// Records that a read or a write found the file damaged (`detail`:
    /// SQLite's error; the first record of the file is kept, and logged
    /// once) and returns [`Self::damage`].
    pub fn mark_damaged(&self, detail: String) -> SqliteError {
        let mut first = false;
        let recorded = self.damage.damage.get_or_init(|| {
            first = true;
            detail
        });
        if first {
            tracing::error!(
                path = %self.path.display(),
                damage = recorded.as_str(),
                "database file damaged: it is not read from or written to again until the server restarts"
            );
        }
        SqliteError::Damaged {
            path: self.path.clone(),
            detail: recorded.clone(),
        }
    }

    /// SQLite's `error` from a read or a write of this file, as this crate's
    /// error: damage found (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) is marked
    /// ([`Self::mark_damaged`]) and returned as [`SqliteError::Damaged`], as
    /// is a commit the writer's guard refused because the file is damaged;
    /// a commit it refused because the file, its folder or its `-wal` moved
    /// is [`SqliteError::Moved`]; the rest is [`SqliteError::Sqlite`].
    pub fn sqlite_error(&self, error: rusqlite::Error) -> SqliteError {
        if is_damage(&error) {
            return self.mark_damaged(error.to_string());
        }
        if is_guard_refusal(&error) {
            if let Err(found) = self.check() {
                return found;
            }
        }
        SqliteError::Sqlite(error)
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still leads to the same file in the same folder; a
    /// path that cannot be read (deleted) does not.
    pub fn is_current(&self) -> bool {
        identity(folder_of(&self.path)).is_ok_and(|folder| folder == self.folder)
            && identity(&self.path).is_ok_and(|file| file == self.file)
    }

    /// [`Self::is_current`] as a result.
    ///
    /// # Errors
    /// [`SqliteError::Damaged`] once a read or a write found the file
    /// damaged; [`SqliteError::Moved`] when the file or its folder was moved,
    /// deleted or replaced since it was opened.
    pub fn check(&self) -> Result<(), SqliteError> {
        if let Some(damage) = self.damage() {
            return Err(damage);
        }
        if !self.is_current() {
            return Err(SqliteError::Moved {
                path: self.path.clone(),
            });
        }
        if self.wal_replaced() {
            return Err(SqliteError::Moved {
                path: self.wal_path(),
            });
        }
        Ok(())
    }

    /// Records the `-wal` file the writer commits into, the first time one
    /// is there (before the first commit of a new file there is none yet):
    /// from then on [`Self::check`] of every place of the file fails once
    /// it is gone or another file.
    ///
    /// # Errors
    /// [`SqliteError::Moved`] naming the `-wal` file, as [`Self::check`].
    pub fn note_wal(&self) -> Result<(), SqliteError> {
        if let Ok(now) = identity(&self.wal_path()) {
            self.damage.wal.get_or_init(|| now);
        }
        self.check()
    }

    /// Whether the file and its folder are in place but the `-wal` file
    /// its writer commits into ([`Self::note_wal`]) is gone or another file:
    /// deleted or replaced under the running writer.
    pub fn wal_lost(&self) -> bool {
        self.wal_replaced() && self.is_current()
    }

    /// Whether the `-wal` file noted ([`Self::note_wal`]) is no longer the
    /// one its path leads to.
    fn wal_replaced(&self) -> bool {
        self.damage
            .wal
            .get()
            .is_some_and(|seen| identity(&self.wal_path()).ok().as_ref() != Some(seen))
    }

    fn wal_path(&self) -> PathBuf {
        let mut path = self.path.clone().into_os_string();
        path.push("-wal");
        PathBuf::from(path)
    }
}

/// Whether a read or a write found the file damaged:
/// - SQLite says so: `SQLITE_CORRUPT` (a page or an index that does not hold
///   together) or `SQLITE_NOTADB` (no database header);
/// - or a stored value does not read back as what this build writes in its
///   column (`InvalidColumnType`, `FromSqlConversionFailure`, which a
///   reader's own parse of a column also returns, `IntegralValueOutOfRange`,
///   `Utf8Error`). SQLite keeps any value in any column, so only an edit or
///   a damaged page puts one there; taken as a passing fault instead, it
///   answered 500 on every read of its row and stopped or dead-lettered the
///   projections that met it (testers h131, h132). A reader that expects
///   other values reads the column as stored ([`crate::integer_as_stored`]).
pub fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..)
    ) || matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Whether a commit was rolled back by the writer's commit hook
/// ([`crate::open_writer`]'s guard).
fn is_guard_refusal(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_COMMITHOOK)
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

/// The device and inode `path` leads to now.
///
/// On Linux a `statx` that asks for the inode only. A `stat` also reads the
/// file's change time, and since Linux 6.13 (multigrain timestamps) a read
/// change time makes the file's next write stamp a fine-grained time, which
/// the next `fdatasync` writes out with the inode. A writer's commit hook
/// checks its `-wal` file at every commit: with `stat`, every sync of the
/// event log wrote its inode too, one more round trip to the device before
/// the cache flush (bench/README.md, "The inode write in every sync").
#[cfg(target_os = "linux")]
fn identity(path: &Path) -> std::io::Result<Identity> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let found = statx(CWD, path, AtFlags::empty(), StatxFlags::INO)?;
    Ok((
        rustix::fs::makedev(found.stx_dev_major, found.stx_dev_minor),
        found.stx_ino,
    ))
}

#[cfg(all(unix, not(target_os = "linux")))]
fn identity(path: &Path) -> std::io::Result<Identity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

/// Without inode numbers, only whether the path still exists.
#[cfg(not(unix))]
fn identity(path: &Path) -> std::io::Result<Identity> {
    std::fs::metadata(path).map(|_| (0, 0))
}

/// Whether the open `file` is the one `path` leads to now.
pub(crate) fn is_at(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    let open = {
        use std::os::unix::fs::MetadataExt;
        file.metadata()
            .map(|metadata| (metadata.dev(), metadata.ino()))
    };
    #[cfg(not(unix))]
    let open = file.metadata().map(|_| (0, 0));
    match (open, identity(path)) {
        (Ok(open), Ok(at_path)) => open == at_path,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_in(folder: &Path) -> FilePlace {
        let path = folder.join("events.db");
        std::fs::write(&path, b"").expect("file");
        FilePlace::of(&path).expect("recorded")
    }

    /// [`is_at`] compares an open handle's identity (the standard library's
    /// `stat`) with a path's ([`identity`]): both must encode the device alike.
    #[test]
    fn a_path_s_identity_is_its_open_handle_s() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = place_in(dir.path());
        let file = std::fs::File::open(place.path()).expect("opened");
        assert!(is_at(&file, place.path()));
        let folder = std::fs::File::open(dir.path()).expect("folder opened");
        assert!(is_at(&folder, dir.path()));
        assert!(!is_at(&folder, place.path()), "another inode");
    }

    #[test]
    fn a_file_left_in_place_is_current() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = place_in(dir.path());
        assert!(place.check().is_ok());
        std::fs::write(place.path(), b"written in place").expect("written");
        assert!(place.is_current());
    }

    #[test]
    fn a_folder_renamed_and_made_again_is_not() {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("folder");
        let place = place_in(&data);
        std::fs::rename(&data, root.path().join("moved")).expect("renamed");
        assert!(!place.is_current(), "the folder is gone from the path");
        // Another server's folder and file at the same path.
        std::fs::create_dir(&data).expect("folder again");
        std::fs::write(data.join("events.db"), b"").expect("another file");
        assert!(matches!(place.check(), Err(SqliteError::Moved { .. })));
    }

    #[test]
    fn every_place_of_a_file_shares_its_damage_and_only_that_file_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let read = place_in(dir.path());
        let written = FilePlace::of(read.path()).expect("another place of the file");
        let other = dir.path().join("ledger.db");
        std::fs::write(&other, b"").expect("another file");
        let other = FilePlace::of(&other).expect("recorded");
        // Held open, the file keeps its inode while a new one takes its path.
        let _old = std::fs::File::open(read.path()).expect("opened");

        written.mark_damaged("database disk image is malformed".into());
        written.mark_damaged("a later finding".into());
        for place in [&read, &written] {
            let Some(SqliteError::Damaged { detail, .. }) = place.damage() else {
                panic!("damage shared: {:?}", place.damage());
            };
            assert_eq!(detail, "database disk image is malformed", "the first kept");
        }
        assert!(other.check().is_ok(), "another file is not damaged");

        let replaced = dir.path().join("replacement.db");
        std::fs::write(&replaced, b"").expect("replacement");
        std::fs::rename(&replaced, read.path()).expect("replaced");
        let new_file = FilePlace::of(read.path()).expect("recorded");
        assert!(
            new_file.check().is_ok(),
            "a new file at the path is not damaged"
        );
        assert!(matches!(read.check(), Err(SqliteError::Damaged { .. })));
    }

    #[test]
    fn a_file_deleted_or_replaced_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let place = place_in(dir.path());
        // Held open, the old file keeps its inode, which the new one cannot reuse.
        let _old = std::fs::File::open(place.path()).expect("opened");
        std::fs::remove_file(place.path()).expect("deleted");
        assert!(!place.is_current());
        std::fs::write(place.path(), b"").expect("replaced");
        assert!(!place.is_current());
    }
}
