//! Every database file's shared memory stays locked by the server while it
//! runs. SQLite's lock on a `-shm` file tells another process (an
//! operator's `sqlite3`) that the file is in use; without it, that process
//! rebuilt the `-shm` under the server's memory map and the server died of
//! SIGBUS (h144 F1: a second writer opened at start, whose checks closed a
//! descriptor of the file, which drops every POSIX lock of the process on it).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::json;

use crate::helpers::{spawn_app, spawn_process_app_in};

/// Whether `/proc/locks` lists a POSIX lock of this process on the file at
/// `path` (its lines: `id: POSIX ADVISORY READ|WRITE pid major:minor:inode start end`).
fn locked_by_this_process(path: &Path) -> bool {
    let inode = std::fs::metadata(path).expect("the file").ino();
    let pid = std::process::id().to_string();
    let locks = std::fs::read_to_string("/proc/locks").expect("/proc/locks");
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"POSIX")
            && fields.get(4) == Some(&pid.as_str())
            && fields
                .get(5)
                .and_then(|device_inode| device_inode.rsplit(':').next())
                == Some(inode.to_string().as_str())
    })
}

/// The `-shm` files of `data_dir`, by name.
fn shared_memory_files(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir)
        .expect("the data folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.to_string_lossy().ends_with("-shm"))
        .collect();
    files.sort();
    files
}

fn assert_every_shared_memory_locked(data_dir: &Path, expected: &[&str]) {
    let files = shared_memory_files(data_dir);
    let names: Vec<String> = files
        .iter()
        .map(|path| {
            path.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, expected);
    for file in &files {
        assert!(
            locked_by_this_process(file),
            "{} is not locked",
            file.display()
        );
    }
}

/// The `-shm` files of every run, by name; with the transfer process, its
/// journal's `transfers.db-shm` too.
const SHARED_MEMORY_FILES: [&str; 5] = [
    "dead_letters.db-shm",
    "events.db-shm",
    "ledger.db-shm",
    "read_model.db-shm",
    "search_index.db-shm",
];

#[tokio::test]
async fn every_files_shared_memory_is_locked_while_the_server_runs() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(1)).await.status(), 201);
    assert_every_shared_memory_locked(&app.data_dir, &SHARED_MEMORY_FILES);
    app.stop().await;

    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    assert_eq!(app.create_wallet("w", "o", json!(1)).await.status(), 201);
    let with_the_journal: Vec<&str> = SHARED_MEMORY_FILES
        .into_iter()
        .chain(["transfers.db-shm"])
        .collect();
    assert_every_shared_memory_locked(&app.data_dir, &with_the_journal);
    app.stop().await;
}
