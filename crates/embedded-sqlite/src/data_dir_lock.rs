//! One server per data folder.
//!
//! SQLite lets two processes share a file safely, but two Wallex servers on
//! one data folder would each run the in-process relays and each hold a
//! wallet cache the other's writes make stale: their appends would keep
//! failing on each other's versions, and each would report healthy. A server
//! takes an exclusive advisory lock (`flock(2)` on Unix, `LockFileEx` on
//! Windows, through [`std::fs::File::try_lock`]) on [`LOCK_FILE_NAME`] in the
//! folder at start and holds it until it stops. The kernel drops the lock
//! with the process, so a crash (kill -9) never leaves the folder locked.
//!
//! Tools that run beside a live server on purpose (replaying dead letters)
//! do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data folder. It holds the locking
/// process's id, for whoever finds the folder in use.
pub const LOCK_FILE_NAME: &str = "wallex.lock";

/// Why the data folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum DataDirLockError {
    /// Another process holds the lock: a server is running on this folder.
    #[error(
        "the data folder {} is in use by another Wallex server (process {holder}, its lock \
         file {}); stop that server, or set WALLEX_DATA_DIR to another folder",
        folder.display(), lock_file.display()
    )]
    InUse {
        folder: PathBuf,
        lock_file: PathBuf,
        /// The process id written by the holder, or `unknown`.
        holder: String,
    },
    /// The lock file could not be created, read or locked.
    #[error("cannot lock the data folder through {}: {source}", lock_file.display())]
    Io {
        lock_file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock on a data folder; dropping it releases the folder.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Locks `folder` (which must exist) for this process, without waiting.
    ///
    /// # Errors
    /// [`DataDirLockError::InUse`] when another holder has it (another
    /// process, or another open of it in this one), [`DataDirLockError::Io`]
    /// when the lock file cannot be opened or written.
    pub fn acquire(folder: &Path) -> Result<Self, DataDirLockError> {
        let lock_file = folder.join(LOCK_FILE_NAME);
        let io = |source| DataDirLockError::Io {
            lock_file: lock_file.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_file)
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| "unknown".into());
                return Err(DataDirLockError::InUse {
                    folder: folder.to_path_buf(),
                    lock_file,
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
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
        assert_eq!(holder, &std::process::id().to_string());
        assert!(refused.to_string().contains("WALLEX_DATA_DIR"), "{refused}");

        drop(first);
        DataDirLock::acquire(folder.path()).expect("free again after the first is dropped");
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_the_lock_file() {
        let folder = tempfile::tempdir().expect("temp dir");
        let missing = folder.path().join("absent");
        let error = DataDirLock::acquire(&missing).expect_err("no folder");
        assert!(matches!(error, DataDirLockError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains(LOCK_FILE_NAME), "{error}");
    }
}
