//! One server per data folder.
//!
//! SQLite lets two processes share a file safely, but two Wallex servers on
//! one data folder would each run the in-process relays and each hold a
//! wallet cache the other's writes make stale: their appends would keep
//! failing on each other's versions, and each would report healthy. A server
//! takes an exclusive advisory lock on the folder itself at start
//! (`flock(2)` through [`std::fs::File::try_lock`] on the opened directory)
//! and holds it until it stops. Locking the folder rather than a file in it
//! means no file can be deleted to get past it, and the kernel drops the
//! lock with the process, so a crash (kill -9) never leaves the folder
//! locked.
//!
//! The holder records its process id in [`PID_FILE_NAME`], for the message a
//! refused server prints, and removes it when it stops. The file is written
//! to a fresh draft and renamed over, never opened through a symbolic link
//! someone left in its place; a refused server reads it only when it is a
//! regular file, and only its first bytes.
//!
//! Tools that run beside a live server on purpose (replaying dead letters)
//! do not take the lock.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, PoisonError};

/// The file in the data folder that names the process holding the lock (its
/// decimal process id and a newline). Informational: the lock is on the
/// folder, not on this file.
pub const PID_FILE_NAME: &str = "wallex.pid";

/// Longest wait of [`DataDirLock::release_once_closed`] for this process's
/// files in the folder to close, in milliseconds.
pub const FILES_CLOSE_WAIT_MS: u64 = 2_000;
/// How often [`DataDirLock::release_once_closed`] looks, in milliseconds.
const FILES_CLOSE_POLL_MS: u64 = 5;
/// Where the process id is written before it is renamed to [`PID_FILE_NAME`].
const PID_FILE_DRAFT_NAME: &str = "wallex.pid.draft";
/// Permission bits of the pid file: anyone may read it, only its owner
/// write it (whatever the umask allows beyond), so no one else can plant a
/// false holder in it.
pub const PID_FILE_MODE: u32 = 0o644;
/// At most this many bytes of [`PID_FILE_NAME`] are read: a process id is
/// ten digits at most.
const PID_FILE_READ_MAX_BYTES: u64 = 32;

/// Why the data folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    /// Another holder has the folder: a server is running (or still
    /// stopping) on it.
    #[error(
        "the data folder {} is in use by another Wallex server ({holder}); stop it and wait for \
         it to exit, or set WALLEX_DATA_DIR to another folder",
        folder.display()
    )]
    InUse {
        folder: PathBuf,
        /// `process <id> on this host` from [`PID_FILE_NAME`], or `process
        /// unknown` when it names no live process.
        holder: String,
    },
    /// The folder could not be opened or locked.
    #[error("cannot lock the data folder {}: {source}", folder.display())]
    Io {
        folder: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder is locked, but this process's id could not be written in
    /// it (the folder not writable, or a directory in the file's place).
    #[error("cannot record this server's process id in {}: {source}", path.display())]
    RecordHolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock on a data folder; dropping it removes [`PID_FILE_NAME`] and
/// then releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    /// The locked folder's path as given, and its pid file's.
    path: PathBuf,
    pid_file: PathBuf,
    /// Closed (and so unlocked) after `drop` ran: the pid file goes while
    /// the folder is still held.
    folder: File,
}

impl Drop for DataDirLock {
    /// Removes the pid file only while the path still leads to the locked
    /// folder: after the folder was moved, the path may hold another
    /// server's folder, whose pid file is that server's.
    fn drop(&mut self) {
        if !crate::file_place::is_at(&self.folder, &self.path) {
            tracing::warn!(
                path = %self.path.display(),
                "the data folder was moved while the server ran; its pid file is left where it is"
            );
            return;
        }
        if let Err(error) = std::fs::remove_file(&self.pid_file) {
            tracing::warn!(%error, path = %self.pid_file.display(), "pid file left behind");
        }
    }
}

/// The database files this process opened a writer on ([`crate::open_writer`]),
/// by canonical path: a server's own files, whose `-wal` a release of their
/// folder tidies, and names when it cannot. Process-wide, as a process may
/// run servers on several folders (the tests do); each release looks at its
/// own folder's.
static WRITTEN_FILES: LazyLock<Mutex<BTreeSet<PathBuf>>> = LazyLock::new(Mutex::default);

/// Records `path` (an existing database file) as one this process writes.
pub(crate) fn note_written_file(path: &Path) {
    if let Ok(path) = path.canonicalize() {
        WRITTEN_FILES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path);
    }
}

/// What [`DataDirLock::release_once_closed`] found as it released the folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Files of the folder this process still had open after
    /// [`FILES_CLOSE_WAIT_MS`] (none when every one closed in time).
    pub still_open: Vec<PathBuf>,
    /// The `-wal` of a file this process wrote, left in the folder once the
    /// release had tidied it (see [`DataDirLock::release_once_closed`]), by
    /// canonical path, sorted.
    pub wal_left: Vec<PathBuf>,
}

impl DataDirLock {
    /// Releases the folder once this process holds none of the files in it
    /// open, waiting at most [`FILES_CLOSE_WAIT_MS`] (then it warns, naming
    /// them, and releases it all the same). Connections close on other threads as their last
    /// owners drop them (a pooled reader on a blocking thread, an HTTP
    /// worker's copy of the application's state), which may be after the
    /// server has stopped; and SQLite's last connection of a file deletes
    /// its `-wal` as it closes. A folder handed over before then (to the
    /// next server in this process, or to a tool) could have the `-wal` its
    /// new writer opened deleted under it, and every commit refused as if
    /// the file had moved. Looks at this process's descriptors in
    /// `/proc/self/fd` (Linux); where there is none, it waits for nothing.
    ///
    /// Then it tidies the `-wal` of every file this process wrote that
    /// still has one: SQLite deletes it only as the last connection of any
    /// process closes, and two of this process's connections closing at
    /// once (a file's writer and its checkpointer) can each see the other
    /// and leave it (h153 F1, about one stop in twelve). One more connection
    /// opened and closed alone checkpoints it and deletes it. A `-wal` left
    /// after that is another process's doing (a `sqlite3` shell, a backup
    /// tool, h146 F2), and is named in a warning: it holds committed
    /// transactions, which the next start reads, and belongs with its file
    /// in any copy of the folder. Files this process never wrote are left
    /// alone (h153 F3).
    pub async fn release_once_closed(self) -> Released {
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_millis(FILES_CLOSE_WAIT_MS);
        let still_open = loop {
            let open = self.files_open();
            if open.is_empty() {
                break open;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    folder = %self.path.display(),
                    ?open,
                    "files of the data folder still open as it is released"
                );
                break open;
            }
            tokio::time::sleep(std::time::Duration::from_millis(FILES_CLOSE_POLL_MS)).await;
        };
        // A folder moved away is not this server's to tidy, whatever is at
        // its path now; nor is a file this process still has open.
        let tidy = still_open.is_empty() && crate::file_place::is_at(&self.folder, &self.path);
        let folder = self.path.clone();
        let wal_left = tokio::task::spawn_blocking(move || {
            let left = written_files_with_wal(&folder);
            if !tidy || left.is_empty() {
                return left;
            }
            for (file, _) in &left {
                checkpoint_alone(file);
            }
            written_files_with_wal(&folder)
        })
        .await
        .unwrap_or_default();
        let wal_left: Vec<PathBuf> = wal_left.into_iter().map(|(_, wal)| wal).collect();
        if tidy && !wal_left.is_empty() {
            tracing::warn!(
                folder = %self.path.display(),
                ?wal_left,
                "a -wal file stayed in the data folder: another process had its database open as \
                 this server closed it; it holds committed writes, which the next start reads \
                 (copy it with its file)"
            );
        }
        Released {
            still_open,
            wal_left,
        }
    }

    /// The files in the folder (not the folder itself) this process has
    /// open, by their paths; none when `/proc/self/fd` cannot be read.
    fn files_open(&self) -> Vec<PathBuf> {
        let Ok(folder) = self.path.canonicalize() else {
            return Vec::new();
        };
        let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
            return Vec::new();
        };
        descriptors
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target != &folder && target.starts_with(&folder))
            .collect()
    }

    /// Locks `folder` (an existing directory) for this process, without
    /// waiting, and records this process's id in it.
    ///
    /// # Errors
    /// [`DataDirLockError::InUse`] when another holder has it (another
    /// process, or another open of it in this one), [`DataDirLockError::Io`]
    /// when the folder cannot be opened or locked,
    /// [`DataDirLockError::RecordHolder`] when the id cannot be written.
    pub fn acquire(folder: &Path) -> Result<Self, DataDirLockError> {
        let io = |source| DataDirLockError::Io {
            folder: folder.to_path_buf(),
            source,
        };
        let handle = File::open(folder).map_err(io)?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DataDirLockError::InUse {
                    folder: folder.to_path_buf(),
                    holder: recorded_holder(folder),
                })
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let pid_file = record_holder(folder)
            .map_err(|(path, source)| DataDirLockError::RecordHolder { path, source })?;
        Ok(Self {
            path: folder.to_path_buf(),
            pid_file,
            folder: handle,
        })
    }
}

/// The files in `folder` this process wrote ([`note_written_file`]) that
/// have a `-wal` beside them, with it, sorted; none when `folder` cannot be
/// resolved.
fn written_files_with_wal(folder: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(folder) = folder.canonicalize() else {
        return Vec::new();
    };
    let written = WRITTEN_FILES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    written
        .into_iter()
        .filter(|file| file.parent() == Some(folder.as_path()))
        .filter_map(|file| {
            let mut wal = file.clone().into_os_string();
            wal.push("-wal");
            let wal = PathBuf::from(wal);
            wal.exists().then_some((file, wal))
        })
        .collect()
}

/// Opens `file` (never creating it), reads its schema so that SQLite opens
/// its WAL, and closes it: as the last connection of every process, the
/// close checkpoints the WAL into the file and deletes it. What fails is
/// left to the warning that names the `-wal`.
fn checkpoint_alone(file: &Path) {
    use rusqlite::OpenFlags;
    let opened = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|connection| {
        connection.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        connection.close().map_err(|(_, error)| error)
    });
    if let Err(error) = opened {
        tracing::debug!(file = %file.display(), %error, "the -wal could not be tidied");
    }
}

/// Writes this process's id to a fresh draft (`create_new` refuses an
/// existing path, a symbolic link included), then renames it over
/// [`PID_FILE_NAME`] (which replaces a link rather than following it); the
/// pid file's path, or the path that failed with its error.
fn record_holder(folder: &Path) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let draft = folder.join(PID_FILE_DRAFT_NAME);
    let pid_file = folder.join(PID_FILE_NAME);
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |error| (path, error)
    };
    match std::fs::remove_file(&draft) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err((draft, error)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PID_FILE_MODE);
    let mut file = options.open(&draft).map_err(at(&draft))?;
    writeln!(file, "{}", std::process::id()).map_err(at(&draft))?;
    drop(file);
    match std::fs::rename(&draft, &pid_file) {
        Ok(()) => Ok(pid_file),
        Err(error) => {
            // Best effort: the draft must not stay behind a failed rename.
            let _ = std::fs::remove_file(&draft);
            Err((pid_file, error))
        }
    }
}

/// `process <id> on this host` when [`PID_FILE_NAME`] is a regular file
/// whose first [`PID_FILE_READ_MAX_BYTES`] hold the id of a live process (on
/// Linux, one under `/proc`), `process unknown` otherwise. Never opens
/// anything but a regular file: a FIFO would block, a device never end.
fn recorded_holder(folder: &Path) -> String {
    let path = folder.join(PID_FILE_NAME);
    let regular = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_file());
    let mut text = String::new();
    let read = regular
        && File::open(&path)
            .and_then(|file| file.take(PID_FILE_READ_MAX_BYTES).read_to_string(&mut text))
            .is_ok();
    let proc_fs = Path::new("/proc/self").exists();
    let alive = |id: &u32| !proc_fs || Path::new("/proc").join(id.to_string()).exists();
    read.then(|| text.trim().parse::<u32>().ok())
        .flatten()
        .filter(|id| *id > 0 && alive(id))
        .map_or_else(
            || "process unknown".into(),
            |id| format!("process {id} on this host"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_releases_the_folder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let first = DataDirLock::acquire(folder.path()).expect("first lock");

        let refused = DataDirLock::acquire(folder.path()).expect_err("folder in use");
        let DataDirLockError::InUse { holder, .. } = &refused else {
            panic!("expected InUse, got {refused:?}");
        };
        assert_eq!(
            holder,
            &format!("process {} on this host", std::process::id())
        );
        assert!(refused.to_string().contains("WALLEX_DATA_DIR"), "{refused}");

        drop(first);
        DataDirLock::acquire(folder.path()).expect("free again after the first is dropped");
    }

    #[test]
    fn deleting_the_pid_file_does_not_free_the_folder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let _first = DataDirLock::acquire(folder.path()).expect("first lock");
        std::fs::remove_file(folder.path().join(PID_FILE_NAME)).expect("pid file removed");

        let refused = DataDirLock::acquire(folder.path()).expect_err("folder still in use");
        let DataDirLockError::InUse { holder, .. } = &refused else {
            panic!("expected InUse, got {refused:?}");
        };
        assert_eq!(holder, "process unknown");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_in_place_of_the_pid_file_is_replaced_not_written_through() {
        let folder = tempfile::tempdir().expect("temp dir");
        let victim = folder.path().join("victim.txt");
        std::fs::write(&victim, "important\n").expect("victim written");
        std::os::unix::fs::symlink(&victim, folder.path().join(PID_FILE_NAME)).expect("link");
        std::os::unix::fs::symlink(&victim, folder.path().join(PID_FILE_DRAFT_NAME))
            .expect("draft link");

        let _lock = DataDirLock::acquire(folder.path()).expect("lock");

        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "important\n"
        );
        let recorded = std::fs::read_to_string(folder.path().join(PID_FILE_NAME)).expect("pid");
        assert_eq!(recorded, format!("{}\n", std::process::id()));
    }

    /// The refusal of a second holder once the first's pid file holds `recorded`.
    fn refusal_with_pid_file(recorded: &str) -> String {
        let folder = tempfile::tempdir().expect("temp dir");
        let _first = DataDirLock::acquire(folder.path()).expect("first lock");
        std::fs::write(folder.path().join(PID_FILE_NAME), recorded).expect("pid file written");
        DataDirLock::acquire(folder.path())
            .expect_err("in use")
            .to_string()
    }

    #[test]
    fn a_holder_recorded_as_anything_but_a_process_id_is_unknown() {
        let refused = refusal_with_pid_file(&"x\ny\nz".repeat(100));
        assert!(refused.contains("(process unknown)"), "{refused}");
    }

    #[test]
    fn the_pid_file_goes_with_the_lock() {
        let folder = tempfile::tempdir().expect("temp dir");
        let lock = DataDirLock::acquire(folder.path()).expect("lock");
        assert!(folder.path().join(PID_FILE_NAME).is_file());
        drop(lock);
        assert!(
            !folder.path().join(PID_FILE_NAME).exists(),
            "no stale id after a stop"
        );
    }

    #[test]
    fn a_server_whose_folder_moved_leaves_the_pid_file_at_the_path_alone() {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("folder");
        let first = DataDirLock::acquire(&data).expect("first lock");
        std::fs::rename(&data, root.path().join("data.old")).expect("moved");
        std::fs::create_dir(&data).expect("a new folder at the path");
        let second = DataDirLock::acquire(&data).expect("second lock, on the new folder");
        drop(first);
        assert!(
            data.join(PID_FILE_NAME).is_file(),
            "the second server's pid file is still there"
        );
        drop(second);
        assert!(!data.join(PID_FILE_NAME).exists());
    }

    #[cfg(unix)]
    #[test]
    fn only_its_owner_may_write_the_pid_file() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o777))
            .expect("folder opened to everyone");
        let _lock = DataDirLock::acquire(folder.path()).expect("lock");
        let mode = std::fs::metadata(folder.path().join(PID_FILE_NAME))
            .expect("pid file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o022, 0, "{mode:o}: no one else may write it");
    }

    #[test]
    fn a_recorded_process_that_is_not_alive_is_unknown() {
        // Above Linux's largest pid (2^22).
        let refused = refusal_with_pid_file("4194305\n");
        assert!(refused.contains("(process unknown)"), "{refused}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_place_of_the_pid_file_is_not_read() {
        let folder = tempfile::tempdir().expect("temp dir");
        let _first = DataDirLock::acquire(folder.path()).expect("first lock");
        let pid_file = folder.path().join(PID_FILE_NAME);
        std::fs::remove_file(&pid_file).expect("pid file removed");
        let made = std::process::Command::new("mkfifo")
            .arg(&pid_file)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());

        // Would block for ever if the FIFO were opened.
        let refused = DataDirLock::acquire(folder.path()).expect_err("in use");
        assert!(
            refused.to_string().contains("(process unknown)"),
            "{refused}"
        );
    }

    #[test]
    fn a_directory_in_place_of_the_pid_file_is_named_as_what_failed() {
        let folder = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(folder.path().join(PID_FILE_NAME)).expect("directory");

        let error = DataDirLock::acquire(folder.path()).expect_err("cannot record");
        assert!(
            matches!(error, DataDirLockError::RecordHolder { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("process id"), "{error}");
        assert!(
            !folder.path().join(PID_FILE_DRAFT_NAME).exists(),
            "no draft left"
        );
        DataDirLock::acquire(folder.path()).expect_err("the folder was released: same refusal");
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_it() {
        let folder = tempfile::tempdir().expect("temp dir");
        let missing = folder.path().join("absent");
        let error = DataDirLock::acquire(&missing).expect_err("no folder");
        assert!(matches!(error, DataDirLockError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("absent"), "{error}");
    }

    /// A file of `folder` opened as a server opens its own, written, with
    /// its writer still open.
    fn written(folder: &Path) -> rusqlite::Connection {
        let connection =
            crate::open_writer(&folder.join("w.db"), crate::Durability::Durable).expect("open");
        connection
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .expect("write");
        connection
    }

    #[tokio::test]
    async fn a_folder_whose_files_all_closed_is_released_with_no_wal_left() {
        let folder = tempfile::tempdir().expect("temp dir");
        let lock = DataDirLock::acquire(folder.path()).expect("lock");
        drop(written(folder.path()));
        assert_eq!(lock.release_once_closed().await, Released::default());
    }

    #[tokio::test]
    async fn a_wal_its_own_connections_left_is_checkpointed_and_deleted_as_it_is_released() {
        let folder = tempfile::tempdir().expect("temp dir");
        let lock = DataDirLock::acquire(folder.path()).expect("lock");
        let wal = folder.path().join("w.db-wal");
        let frames = {
            let writer = written(folder.path());
            writer
                .execute_batch("INSERT INTO t VALUES (2);")
                .expect("write");
            std::fs::read(&wal).expect("the writes are in the WAL")
        };
        // What two connections closing at once leave (h153 F1): the WAL
        // with the committed frames, beside its file.
        std::fs::write(&wal, frames).expect("the WAL put back");
        assert_eq!(lock.release_once_closed().await, Released::default());
        assert!(!wal.exists(), "tidied");
        let reader = rusqlite::Connection::open(folder.path().join("w.db")).expect("open");
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 2, "every commit in the file");
    }

    #[tokio::test]
    async fn a_wal_of_a_file_it_never_wrote_is_neither_tidied_nor_named() {
        let folder = tempfile::tempdir().expect("temp dir");
        let lock = DataDirLock::acquire(folder.path()).expect("lock");
        drop(written(folder.path()));
        let foreign = folder.path().join("notes.db-wal");
        std::fs::write(&foreign, b"frames").expect("wal");
        assert_eq!(lock.release_once_closed().await, Released::default());
        assert_eq!(std::fs::read(&foreign).expect("left alone"), b"frames");
    }
}
