//! What a panic near a writer connection does: never leave the service
//! frozen with the connection unusable.
//!
//! A thread that serves a writer ([`spawn_writer_thread`]: the event store's
//! group commit and a [`crate::GroupedWriter`], which hold state besides the
//! file that a panic leaves half-changed, a queue of callers and the log's
//! tail in memory; a checkpointer) is not replaced when it ends: every later
//! write would wait or fail, or the WAL grow without bound, until a restart
//! while `/health` still answered. So the process
//! stops instead, as on a broken invariant: what was acknowledged is in the
//! file, and the next start recovers from it (a crash of any binary at any
//! moment loses nothing, README "Storage").
//!
//! A writer connection shared behind a lock ([`lock_writer`]: a
//! [`crate::SharedWriter`], a checkpointer's finish) holds nothing besides
//! the file, so a panic of one of its callers does not stop the others: the
//! lock is taken over and a transaction the panic left open is rolled back.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::SqliteError;

/// Starts a thread named `name` that runs `body`; should `body` panic, the
/// panic is logged and the process aborts (module documentation).
///
/// # Errors
/// [`SqliteError::Worker`] when the thread cannot be started.
pub fn spawn_writer_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, SqliteError> {
    let thread_name = name.to_owned();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if panic::catch_unwind(AssertUnwindSafe(body)).is_err() {
                tracing::error!(
                    thread = %thread_name,
                    "a storage writer's thread panicked: the process stops, and its next start \
                     recovers from the files"
                );
                std::process::abort();
            }
        })
        .map_err(|error| SqliteError::Worker(error.to_string()))
}

/// The writer connection behind `writer`, also after a panic of another of
/// its callers: the lock is taken over, and a transaction the panic left
/// open (one begun without a guard that rolls back) is rolled back.
///
/// # Errors
/// SQLite's, when that rollback fails.
pub(crate) fn lock_writer(
    writer: &Mutex<Connection>,
) -> Result<MutexGuard<'_, Connection>, SqliteError> {
    match writer.lock() {
        Ok(guard) => Ok(guard),
        Err(poisoned) => {
            let guard = poisoned.into_inner();
            if !guard.is_autocommit() {
                guard.execute_batch("ROLLBACK")?;
            }
            writer.clear_poison();
            tracing::warn!("a writer connection's caller panicked; the connection serves on");
            Ok(guard)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Set in the child process of the abort test, which runs that test alone.
    const PANIC_IN_CHILD: &str = "WALLEX_WRITER_THREAD_PANIC_CHILD";

    #[test]
    fn a_writer_thread_that_panics_stops_the_process() {
        if std::env::var_os(PANIC_IN_CHILD).is_some() {
            let thread = spawn_writer_thread("doomed-writer", || panic!("a broken invariant"))
                .expect("spawned");
            let _ = thread.join();
            // Reached only if the panic did not stop the process.
            std::process::exit(0);
        }
        let test = "writer_thread::tests::a_writer_thread_that_panics_stops_the_process";
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", test, "--test-threads=1"])
            .env(PANIC_IN_CHILD, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the child runs");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "ended with {status}, not SIGABRT");
    }

    #[test]
    fn a_panic_holding_the_writer_leaves_it_usable_with_its_transaction_rolled_back() {
        let folder = tempfile::tempdir().expect("tempdir");
        let connection = Connection::open(folder.path().join("w.db")).expect("open");
        connection
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("schema");
        let writer = Arc::new(Mutex::new(connection));
        let panicking = Arc::clone(&writer);
        let ended = thread::spawn(move || {
            let guard = panicking.lock().expect("lock");
            guard
                .execute_batch("BEGIN; INSERT INTO t VALUES (1)")
                .expect("begun");
            panic!("a caller's bug");
        })
        .join();
        assert!(ended.is_err());
        assert!(writer.is_poisoned());
        let guard = lock_writer(&writer).expect("taken over");
        assert!(guard.is_autocommit(), "the open transaction is rolled back");
        let rows: i64 = guard
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 0);
        drop(guard);
        assert!(!writer.is_poisoned());
    }
}
