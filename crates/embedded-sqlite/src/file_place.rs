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
//! It also remembers whether a read found the file damaged (SQLite's
//! `SQLITE_CORRUPT` or `SQLITE_NOTADB`): from then on the file is not
//! trusted, every check fails naming the damage, and the health report that
//! checks it says the store is down, until the server is restarted on a
//! repaired or restored file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::SqliteError;

/// A file's device and inode numbers.
type Identity = (u64, u64);

/// Where a database file was when it was opened. Cheap to check: two
/// `stat` calls.
#[derive(Debug, Clone)]
pub struct FilePlace {
    path: PathBuf,
    folder: Identity,
    file: Identity,
    /// What SQLite said when a read first found the file damaged; shared by
    /// the clones of this place.
    damage: Arc<OnceLock<String>>,
}

impl FilePlace {
    /// Records where `path` (which must exist) and its folder are now.
    ///
    /// # Errors
    /// [`SqliteError::File`] naming the path that cannot be read.
    pub fn of(path: &Path) -> Result<Self, SqliteError> {
        let folder = folder_of(path);
        let read = |at: &Path| {
            identity(at).map_err(|source| SqliteError::File {
                path: at.to_path_buf(),
                source,
            })
        };
        Ok(Self {
            path: path.to_path_buf(),
            folder: read(folder)?,
            file: read(path)?,
            damage: Arc::default(),
        })
    }

    /// [`SqliteError::Damaged`] once a read found the file damaged.
    pub fn damage(&self) -> Option<SqliteError> {
        self.damage.get().map(|detail| SqliteError::Damaged {
            path: self.path.clone(),
            detail: detail.clone(),
        })
    }

    /// Records that a read found the file damaged (`detail`: SQLite's
    /// error; the first record is kept) and returns [`Self::damage`].
    pub fn mark_damaged(&self, detail: String) -> SqliteError {
        let mut first = false;
        let recorded = self.damage.get_or_init(|| {
            first = true;
            detail
        });
        if first {
            tracing::error!(
                path = %self.path.display(),
                damage = recorded.as_str(),
                "database file damaged: it is not read from again until the server restarts"
            );
        }
        SqliteError::Damaged {
            path: self.path.clone(),
            detail: recorded.clone(),
        }
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
    /// [`SqliteError::Damaged`] once a read found the file damaged;
    /// [`SqliteError::Moved`] when the file or its folder was moved,
    /// deleted or replaced since it was opened.
    pub fn check(&self) -> Result<(), SqliteError> {
        if let Some(damage) = self.damage() {
            return Err(damage);
        }
        if self.is_current() {
            Ok(())
        } else {
            Err(SqliteError::Moved {
                path: self.path.clone(),
            })
        }
    }
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    Ok(identity_of(&std::fs::metadata(path)?))
}

/// Whether the open `file` is the one `path` leads to now.
pub(crate) fn is_at(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(at_path)) => identity_of(&open) == identity_of(&at_path),
        _ => false,
    }
}

#[cfg(unix)]
fn identity_of(metadata: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// Without inode numbers, only whether the path still exists.
#[cfg(not(unix))]
fn identity_of(_: &std::fs::Metadata) -> Identity {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_in(folder: &Path) -> FilePlace {
        let path = folder.join("events.db");
        std::fs::write(&path, b"").expect("file");
        FilePlace::of(&path).expect("recorded")
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
