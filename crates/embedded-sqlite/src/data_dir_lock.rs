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
//! refused server prints. The file is written beside and renamed over, never
//! opened through a symbolic link someone left in its place.
//!
//! Tools that run beside a live server on purpose (replaying dead letters)
//! do not take the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file in the data folder that names the process holding the lock (its
/// decimal process id and a newline). Informational: the lock is on the
/// folder, not on this file.
pub const PID_FILE_NAME: &str = "wallex.pid";
/// Where the process id is written before it is renamed to [`PID_FILE_NAME`].
const PID_FILE_DRAFT_NAME: &str = "wallex.pid.draft";

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
        /// unknown` when the file holds no process id.
        holder: String,
    },
    /// The folder could not be opened or locked, or the process id not
    /// recorded.
    #[error("cannot lock the data folder {}: {source}", path.display())]
    Io {
        /// The folder, or the file in it that failed.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock on a data folder; dropping it releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    _folder: File,
}

impl DataDirLock {
    /// Locks `folder` (an existing directory) for this process, without
    /// waiting, and records this process's id in it.
    ///
    /// # Errors
    /// [`DataDirLockError::InUse`] when another holder has it (another
    /// process, or another open of it in this one), [`DataDirLockError::Io`]
    /// when the folder cannot be opened or locked or the id not written.
    pub fn acquire(folder: &Path) -> Result<Self, DataDirLockError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataDirLockError::Io { path, source }
        };
        let handle = File::open(folder).map_err(io(folder))?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DataDirLockError::InUse {
                    folder: folder.to_path_buf(),
                    holder: recorded_holder(folder),
                })
            }
            Err(TryLockError::Error(source)) => return Err(io(folder)(source)),
        }
        record_holder(folder).map_err(io(&folder.join(PID_FILE_NAME)))?;
        Ok(Self { _folder: handle })
    }
}

/// Writes this process's id to a fresh draft (`create_new` refuses an
/// existing path, a symbolic link included), then renames it over
/// [`PID_FILE_NAME`] (which replaces a link rather than following it).
fn record_holder(folder: &Path) -> std::io::Result<()> {
    let draft = folder.join(PID_FILE_DRAFT_NAME);
    match std::fs::remove_file(&draft) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&draft)?;
    writeln!(file, "{}", std::process::id())?;
    drop(file);
    std::fs::rename(&draft, folder.join(PID_FILE_NAME))
}

fn recorded_holder(folder: &Path) -> String {
    std::fs::read_to_string(folder.join(PID_FILE_NAME))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
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

    #[test]
    fn a_holder_recorded_as_anything_but_a_process_id_is_unknown() {
        let folder = tempfile::tempdir().expect("temp dir");
        let _first = DataDirLock::acquire(folder.path()).expect("first lock");
        std::fs::write(folder.path().join(PID_FILE_NAME), "x\ny\nz".repeat(100)).expect("noise");

        let refused = DataDirLock::acquire(folder.path()).expect_err("in use");
        assert!(
            refused.to_string().contains("(process unknown)"),
            "{refused}"
        );
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_it() {
        let folder = tempfile::tempdir().expect("temp dir");
        let missing = folder.path().join("absent");
        let error = DataDirLock::acquire(&missing).expect_err("no folder");
        assert!(matches!(error, DataDirLockError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("absent"), "{error}");
    }
}
