//! WAL checkpoints beside a file's writer.
//!
//! A commit that passes `wal_autocheckpoint` copies the whole WAL back into
//! the file (and fsyncs it) before it returns, and every write of the file
//! waits behind it: on the event store, the writer of every append, that
//! copy of 10 MiB was the p99 of the benchmark's mix (20 ms against 9 ms
//! without it; bench/README.md).
//!
//! A [`Checkpointer`] is a thread with a connection of its own that copies the
//! WAL at an interval ([`CHECKPOINT_INTERVAL_MS`] for a [`crate::SharedWriter`],
//! the caller's for a [`BesideOwnedWriter`]) without waiting for the writer or
//! the readers (`wal_checkpoint(PASSIVE)`). What the writer committed while it
//! copied is left in the WAL, so the WAL could never start again from its
//! beginning under a steady load and would grow without end. Each round is
//! therefore finished on the writer's own connection, between two of its
//! transactions, where no commit can overtake it: that copies only the
//! frames of the round's own time. How depends on who holds the writer:
//! - [`Finish::Shared`]: the round takes the writer's lock and finishes on it
//!   (the projections' [`crate::SharedWriter`]);
//! - [`Finish::ByOwner`]: the writer's thread finishes when it is asked
//!   ([`BesideOwnedWriter::finish`]; the event store's group commit).
//!
//! How the rounds end is kept for `/health` ([`crate::failing_checkpoints`]):
//! a round, or an owner's [`BesideOwnedWriter::finish`], that fails is
//! counted; one that copied ends the count (the owner finishes only when
//! it writes, so an idle server's recovery shows at the thread's next round).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use observability::{FailureStreak, LogThrottle};
use rusqlite::Connection;

use crate::{checkpoint_failures, FilePlace, SqliteError, BUSY_TIMEOUT_MS};

/// How often a [`crate::SharedWriter`]'s checkpointer copies the WAL back
/// into its file, in milliseconds. For the projections' files, 1,000 rather
/// than 250 ms wrote about 4 % less per operation on the benchmark's mix,
/// but the larger copies raised the mix's p99 from 9-12 ms to 13-15 ms;
/// 100 ms gave nothing over 250 (bench/README.md).
pub const CHECKPOINT_INTERVAL_MS: u64 = 250;

/// How a checkpointer's round is finished on the writer's connection.
pub(crate) enum Finish {
    /// The round locks the writer connection and copies the rest itself.
    Shared(Arc<Mutex<Connection>>),
    /// The round raises this flag; the writer's thread copies the rest at
    /// its next [`BesideOwnedWriter::finish`].
    ByOwner(Arc<AtomicBool>),
}

/// A thread with its own connection that copies a file's WAL back into it
/// every `interval_ms` and has each round finished on the writer's
/// connection ([`Finish`]). It copies nothing into a file found
/// damaged, and marks the damage a round meets ([`FilePlace`]). Its
/// connection runs with `synchronous=FULL`: the file is fsynced after each
/// copy, before the WAL may start again over the frames it copied. Dropping
/// it stops the thread and waits for it (at most the round it is in).
pub(crate) struct Checkpointer {
    stop: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How its rounds end, registered for `/health` under the file's name.
    streak: Arc<FailureStreak>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic of the thread stopped the process (`spawn_writer_thread`).
            let _ = thread.join();
        }
    }
}

impl Checkpointer {
    /// Starts the thread for the file at `path`, whose writer is already open.
    ///
    /// # Errors
    /// SQLite's, opening the thread's connection; [`SqliteError::Worker`]
    /// when the thread cannot be started.
    pub(crate) fn start(
        path: &Path,
        interval_ms: u64,
        finish: Finish,
        place: FilePlace,
    ) -> Result<Self, SqliteError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(0);
        let name = path.display().to_string();
        let streak = checkpoint_failures::register(path.to_path_buf());
        let rounds = Arc::clone(&streak);
        let thread = crate::spawn_writer_thread("sqlite-checkpoint", move || {
            // Rounds failed in a row: logged when the first fails and
            // when one works again, not at every round (a full disk
            // fails four a second per file until space is freed).
            let mut failed_rounds = LogThrottle::first_only();
            loop {
                match stopped.recv_timeout(Duration::from_millis(interval_ms)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                if place.damage().is_some() {
                    continue;
                }
                match round(&connection, &finish, &place) {
                    Err(error) => {
                        rounds.failed(&error);
                        if failed_rounds.occurred(Instant::now()).is_some() {
                            tracing::warn!(file = %name, %error, "WAL checkpoint failed; trying again every {interval_ms} ms");
                        }
                    }
                    // Another connection was copying: no news.
                    Ok(false) => {}
                    Ok(true) => {
                        rounds.passed();
                        if let Some(failed_rounds) = failed_rounds.recovered() {
                            tracing::info!(file = %name, failed_rounds, "WAL checkpoints work again");
                        }
                    }
                }
            }
        })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            streak,
        })
    }
}

/// One round: the copy beside the writer, then its finish ([`Finish`]).
/// Returns whether the copies ran ([`checkpoint`]).
fn round(connection: &Connection, finish: &Finish, place: &FilePlace) -> Result<bool, SqliteError> {
    if !checkpoint(connection, place)? {
        return Ok(false);
    }
    match finish {
        Finish::Shared(writer) => {
            let writer = crate::writer_thread::lock_writer(writer)?;
            checkpoint(&writer, place)
        }
        Finish::ByOwner(wanted) => {
            wanted.store(true, Ordering::Release);
            Ok(true)
        }
    }
}

/// Copies the WAL back into the file on the writer's connection `writer`,
/// and syncs the file, when the `-wal` file was deleted or replaced under
/// the running writer while the file itself is still in place
/// ([`FilePlace::wal_lost`]). SQLite goes on using the WAL it opened, so the
/// frames of the commits acknowledged before the deletion are then only in
/// a file no path leads to, until the next round copies them: a crash
/// before it lost them, and a restart refused to open the file behind its
/// projections (hostile tester h123, F1). The writer's guard refuses every
/// commit from the deletion on; its owner calls this after each refused
/// commit. Returns whether it copied; logs what it did, and why it failed.
pub fn save_unlinked_wal(writer: &Connection, place: &FilePlace) -> bool {
    match copy_unlinked_wal(writer, place) {
        Ok(false) => false,
        Ok(true) => {
            tracing::warn!(
                file = %place.path().display(),
                "the -wal file was deleted or replaced while the server ran: what it held is \
                 copied into the file; restart the server"
            );
            true
        }
        Err(error) => {
            tracing::error!(
                file = %place.path().display(),
                %error,
                "the -wal file was deleted or replaced while the server ran, and copying what \
                 it held into the file failed"
            );
            false
        }
    }
}

/// [`save_unlinked_wal`]'s copy and sync. The sync is the checkpoint's
/// own: with `synchronous` NORMAL or FULL (every writer, [`crate::open_writer`])
/// SQLite fsyncs the file once the frames are copied into it, before the
/// checkpoint returns. The file is never opened here to sync it: closing
/// that descriptor would drop every POSIX lock this process holds on the
/// file, SQLite's own (h144 F1, [`crate::SharedWriter::write_at_start`]).
fn copy_unlinked_wal(writer: &Connection, place: &FilePlace) -> Result<bool, SqliteError> {
    Ok(place.wal_lost() && checkpoint(writer, place)?)
}

/// Copies what it can of the WAL back into the file without waiting for
/// anyone (`wal_checkpoint(PASSIVE)`); damage it meets is marked on `place`.
/// Returns whether it ran: false when another connection was copying (the
/// pragma's `busy` column), which is neither a failure nor a recovery.
fn checkpoint(connection: &Connection, place: &FilePlace) -> Result<bool, SqliteError> {
    let busy: i64 = connection
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(0))
        .map_err(|error| place.sqlite_error(error))?;
    Ok(busy == 0)
}

/// The checkpointer of a file whose writer connection belongs to one thread
/// (the event store's group commit), which calls [`Self::finish`] between
/// its transactions. Should the thread fall behind, the writer still copies
/// the WAL itself at [`crate::WAL_AUTOCHECKPOINT_PAGES`], as without it. Dropping it
/// stops the checkpointer's thread.
pub struct BesideOwnedWriter {
    finish_wanted: Arc<AtomicBool>,
    checkpointer: Checkpointer,
}

impl BesideOwnedWriter {
    /// Starts copying the WAL of the file at `path` back into it every
    /// `interval_ms` beside its writer.
    ///
    /// # Errors
    /// SQLite's, opening the thread's connection; [`SqliteError::Worker`]
    /// when the thread cannot be started.
    pub fn start(path: &Path, interval_ms: u64, place: FilePlace) -> Result<Self, SqliteError> {
        let finish_wanted = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer::start(
            path,
            interval_ms,
            Finish::ByOwner(Arc::clone(&finish_wanted)),
            place,
        )?;
        Ok(Self {
            finish_wanted,
            checkpointer,
        })
    }

    /// Finishes the last round on the writer's connection `writer`, if one
    /// is waiting: copies the frames committed while the round copied (a
    /// few commits' worth), so the writer's next transaction can start the
    /// WAL again from its beginning. Returns whether it copied (false
    /// also when the thread was copying again). Call it
    /// between two transactions, after answering the last one's callers.
    ///
    /// # Errors
    /// SQLite's; damage it meets is marked on `place`. A failed finish is
    /// asked again by the next round.
    pub fn finish(&self, writer: &Connection, place: &FilePlace) -> Result<bool, SqliteError> {
        if !self.finish_wanted.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let finished = checkpoint(writer, place);
        let streak = &self.checkpointer.streak;
        match &finished {
            Err(error) => streak.failed(error),
            Ok(true) => {
                streak.passed();
            }
            Ok(false) => {}
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_writer, Durability};

    /// Transactions the owning thread commits, rows in each, bytes a row.
    const TRANSACTIONS: usize = 300;
    const ROWS_PER_TRANSACTION: usize = 50;
    const ROW_BYTES: usize = 1_000;
    /// Pause between two transactions, so that the run spans many rounds.
    const PAUSE_MS: u64 = 3;
    /// The checkpointer's interval here: a run of about 1.4 s spans several.
    const INTERVAL_MS: u64 = 250;
    /// Parts of the run with a finished round between each two, and how
    /// long one may be waited for, in ms (many intervals).
    const PHASES: usize = 4;
    const ROUND_WAIT_MS: u64 = 10_000;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
    }

    /// h123 F1: rows committed before the `-wal` file was deleted are in
    /// the file alone once the writer saved them (a restart reads no WAL).
    #[test]
    fn a_deleted_wal_s_commits_are_copied_into_the_file() {
        const ROWS: usize = 40;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        let writer = open_writer(&path, Durability::Durable).expect("writer");
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("writer's own checkpoints off");
        writer
            .execute_batch(
                "CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL); \
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .expect("table, in the file");
        let place = FilePlace::of(&path).expect("place");
        place.note_wal().expect("the WAL noted");
        assert!(!save_unlinked_wal(&writer, &place), "the WAL is in place");
        for _ in 0..ROWS {
            writer
                .execute("INSERT INTO rows (body) VALUES (zeroblob(?1))", [ROW_BYTES])
                .expect("row");
        }
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        std::fs::remove_file(&wal).expect("WAL deleted");
        assert!(place.wal_lost());

        let rows_in_file_alone = || {
            let copy = tempfile::tempdir().expect("temp dir");
            std::fs::copy(&path, copy.path().join("events.db")).expect("file copied");
            let reader = Connection::open(copy.path().join("events.db")).expect("copy opened");
            reader
                .query_row("SELECT COUNT(*) FROM rows", [], |row| row.get::<_, i64>(0))
                .expect("counted")
        };
        assert_eq!(rows_in_file_alone(), 0, "the rows were only in the WAL");
        assert!(save_unlinked_wal(&writer, &place));
        assert_eq!(rows_in_file_alone(), i64::try_from(ROWS).expect("small"));
    }

    #[test]
    fn an_owned_writer_s_wal_starts_again_when_its_thread_finishes_the_rounds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        let mut writer = open_writer(&path, Durability::Durable).expect("writer");
        // Only the checkpointer copies here: the writer's own bound would
        // also keep the WAL short.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("writer's own checkpoints off");
        writer
            .execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL);")
            .expect("table");
        let place = FilePlace::of(&path).expect("place");
        let checkpointer =
            BesideOwnedWriter::start(&path, INTERVAL_MS, place.clone()).expect("started");

        let mut finished = 0;
        for phase in 0..PHASES {
            for _ in 0..TRANSACTIONS / PHASES {
                let transaction = writer.transaction().expect("begun");
                for _ in 0..ROWS_PER_TRANSACTION {
                    transaction
                        .execute("INSERT INTO rows (body) VALUES (zeroblob(?1))", [ROW_BYTES])
                        .expect("inserted");
                }
                transaction.commit().expect("committed");
                if checkpointer.finish(&writer, &place).expect("finished") {
                    finished += 1;
                }
                std::thread::sleep(Duration::from_millis(PAUSE_MS));
            }
            // A round finished between two phases, however slowly the
            // machine ran them (one CI run, beside other tests, finished
            // its last round before half the rows were written): no stretch
            // of the WAL holds more than a phase.
            if phase + 1 < PHASES {
                let deadline = std::time::Instant::now() + Duration::from_millis(ROUND_WAIT_MS);
                while !checkpointer.finish(&writer, &place).expect("finished") {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no round to finish within {ROUND_WAIT_MS} ms"
                    );
                    std::thread::sleep(Duration::from_millis(PAUSE_MS));
                }
                finished += 1;
            }
        }

        let written = (TRANSACTIONS * ROWS_PER_TRANSACTION * ROW_BYTES) as u64;
        let wal = file_len(&dir.path().join("events.db-wal"));
        assert!(finished > 0, "no round was finished");
        // Without the finishes the WAL would hold every row: a round alone
        // leaves the frames committed while it copied, so the WAL never
        // starts again from its beginning.
        assert!(
            wal < written / 2,
            "the WAL grew to {wal} bytes of the {written} written ({finished} rounds finished)"
        );
        assert!(
            file_len(&path) >= written - wal,
            "the file holds {} bytes, less than what left the WAL",
            file_len(&path)
        );
    }
}
