//! [`GroupedWriter`]: the writes of a file committed in groups by a thread
//! of its own.
//!
//! A [`crate::SharedWriter`] commits each write by itself, holding the
//! connection: on a [`crate::Durability::Durable`] file every write is an
//! fsync, and concurrent writers queue behind each other's. The transfer
//! journal (four records a transfer) was bounded by that at about 1,000
//! commits a second on the benchmark's machine (bench/README.md). A
//! `GroupedWriter`'s thread takes every write waiting, up to
//! [`GROUP_WRITES_MAX`], runs each in a savepoint of one `BEGIN IMMEDIATE`
//! transaction, and commits them together: one fsync serves the group. A
//! write that fails rolls back its own savepoint only. Every caller is
//! answered after the commit, so no result is given for a write that may
//! still be lost, and a read in a group answers only once what it saw is
//! committed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::checkpointer::Checkpointer;
use crate::writer_thread::lock_writer;
use crate::{
    open_beside_checkpointer, spawn_writer_thread, BesideCheckpointer, Durability, FilePlace,
    SqliteError,
};

/// Writes committed together in one transaction at most.
pub const GROUP_WRITES_MAX: usize = 256;
/// Writes waiting for the writer's thread at most; callers wait for room
/// beyond it.
pub const GROUP_QUEUE_CAPACITY: usize = 4_096;

/// A write's answer to its caller, held until its group's transaction has
/// ended: given the error of that transaction's commit, if any.
type Answer = Box<dyn FnOnce(Option<&SqliteError>) + Send>;

/// What running a write left: whether its savepoint is kept, and its answer.
struct Ran {
    kept: bool,
    answer: Answer,
}

/// A write queued for the thread: run on the group's transaction, or given
/// the error that kept the group from running it.
type Write = Box<dyn FnOnce(Result<&Connection, &SqliteError>) -> Ran + Send>;

/// A read queued for the thread: run on the connection before the group's
/// transaction begins, so it sees only what is committed, and answered at
/// once; or given the error that kept it from running.
type Read = Box<dyn FnOnce(Result<&Connection, &SqliteError>) + Send>;

enum Job {
    Read(Read),
    Write(Write),
}

/// A file's single writer connection, driven by a thread that commits the
/// writes queued meanwhile together (module documentation). Dropping it ends
/// the thread after the group it is in, and waits for it.
pub struct GroupedWriter {
    jobs: mpsc::Sender<Job>,
    place: FilePlace,
    thread: Option<thread::JoinHandle<()>>,
    /// The file's background checkpointer; it finishes its rounds on the
    /// writer's connection between two groups.
    _checkpointer: Arc<Checkpointer>,
}

impl Drop for GroupedWriter {
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(thread) = self.thread.take() {
            // A panic of the thread stopped the process (`spawn_writer_thread`).
            let _ = thread.join();
        }
    }
}

impl GroupedWriter {
    /// Opens the writer, brings the schema up to date with `migrations` and
    /// starts the thread.
    ///
    /// # Errors
    /// [`crate::open_writer`]'s and [`crate::migrate`]'s;
    /// [`SqliteError::Worker`] when the thread cannot be started.
    pub fn open(
        path: &Path,
        migrations: &[&str],
        durability: Durability,
    ) -> Result<Self, SqliteError> {
        let BesideCheckpointer {
            connection,
            place,
            checkpointer,
        } = open_beside_checkpointer(path, migrations, durability)?;
        let (jobs, queue) = mpsc::channel(GROUP_QUEUE_CAPACITY);
        let thread_place = place.clone();
        let thread = spawn_writer_thread("sqlite-group-writer", move || {
            run_groups(&connection, &thread_place, queue);
        })?;
        Ok(Self {
            jobs,
            place,
            thread: Some(thread),
            _checkpointer: checkpointer,
        })
    }

    /// Where the file is, and whether it was found damaged.
    pub fn place(&self) -> &FilePlace {
        &self.place
    }

    /// Runs `write` in a savepoint of the next group's transaction and
    /// answers once that transaction has committed. `write` must not begin
    /// or end a transaction itself; an error it returns rolls back its own
    /// statements only.
    ///
    /// # Errors
    /// `write`'s own error (SQLite's `SQLITE_CORRUPT`, `SQLITE_NOTADB` mark
    /// the file damaged, as with [`crate::SharedWriter::write`]);
    /// [`SqliteError::Damaged`] without running `write` once the file was
    /// found damaged; the group's `BEGIN` or `COMMIT` error, in which case
    /// what `write` did is not stored (or, for an error of the commit's own
    /// I/O, not known to be); [`SqliteError::Worker`] when the thread is gone.
    pub async fn write<T, F>(&self, write: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let place = self.place.clone();
        let job = Job::Write(Box::new(move |started| {
            run_write(started, &place, write, reply)
        }));
        self.queue(job, answer).await
    }

    /// Runs `read` on the writer's connection, outside any transaction,
    /// before the next group's writes: it sees what is committed (each of
    /// its statements on its own), and is answered at once. For the file's
    /// small reads that a pool of readers would cost more than they take.
    ///
    /// # Errors
    /// `read`'s own error (damage marked, as with
    /// [`crate::SharedWriter::write`]); [`SqliteError::Damaged`] without
    /// running `read` once the file was found damaged;
    /// [`SqliteError::Worker`] when the thread is gone.
    pub async fn read<T, F>(&self, read: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (job, answer) = self.read_job(read);
        self.queue(job, answer).await
    }

    /// The job of [`Self::read`] and where its answer comes.
    fn read_job<T, F>(&self, read: F) -> (Job, oneshot::Receiver<Result<T, SqliteError>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let place = self.place.clone();
        let job = Job::Read(Box::new(move |started| {
            // A caller that gave up waiting needs no answer.
            let _ = reply.send(run_statements(started, &place, read));
        }));
        (job, answer)
    }

    async fn queue<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, SqliteError>>,
    ) -> Result<T, SqliteError> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| SqliteError::Worker("the grouped writer's thread has stopped".into()))?;
        answer.await.map_err(|_| {
            SqliteError::Worker("the grouped writer's thread dropped a job unanswered".into())
        })?
    }
}

/// Runs `statements` on the connection (`started`), unless the file was
/// found damaged; SQLite's errors are passed through the file's place.
fn run_statements<T, F>(
    started: Result<&Connection, &SqliteError>,
    place: &FilePlace,
    statements: F,
) -> Result<T, SqliteError>
where
    F: FnOnce(&Connection) -> rusqlite::Result<T>,
{
    match (started, place.damage()) {
        (Err(error), _) => Err(copy_of(error)),
        // Checked on the thread: a job queued while another found the
        // damage does not run.
        (Ok(_), Some(damage)) => Err(damage),
        (Ok(connection), None) => statements(connection).map_err(|error| place.sqlite_error(error)),
    }
}

/// Runs one write on the group's transaction (`started`), or refuses it.
fn run_write<T, F>(
    started: Result<&Connection, &SqliteError>,
    place: &FilePlace,
    write: F,
    reply: oneshot::Sender<Result<T, SqliteError>>,
) -> Ran
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T>,
{
    let written = run_statements(started, place, write);
    Ran {
        kept: written.is_ok(),
        answer: Box::new(move |committed| {
            // A caller that gave up waiting needs no answer.
            let _ = reply.send(match (written, committed) {
                (Ok(_), Some(error)) => Err(copy_of(error)),
                (written, _) => written,
            });
        }),
    }
}

/// The thread: for every wake-up, the jobs waiting (up to
/// [`GROUP_WRITES_MAX`]), their reads first, then their writes as a group,
/// until the writer is dropped.
fn run_groups(connection: &Mutex<Connection>, place: &FilePlace, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_WRITES_MAX {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut writes = Vec::with_capacity(jobs.len());
        let mut connection = match lock_writer(connection) {
            Ok(connection) => connection,
            Err(error) => {
                for job in jobs {
                    match job {
                        Job::Read(read) => read(Err(&error)),
                        Job::Write(write) => (write(Err(&error)).answer)(None),
                    }
                }
                continue;
            }
        };
        for job in jobs {
            match job {
                Job::Read(read) => read(Ok(&connection)),
                Job::Write(write) => writes.push(write),
            }
        }
        if !writes.is_empty() {
            commit_group(&mut connection, place, writes);
        }
    }
}

/// Runs `group` in one transaction and answers each of its writes.
fn commit_group(connection: &mut Connection, place: &FilePlace, group: Vec<Write>) {
    let mut transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate)
    {
        Ok(transaction) => transaction,
        Err(error) => {
            let error = place.sqlite_error(error);
            for job in group {
                (job(Err(&error)).answer)(None);
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    let mut broken = None;
    for job in jobs.by_ref() {
        let mut savepoint = match transaction.savepoint() {
            Ok(savepoint) => savepoint,
            Err(error) => {
                broken = Some((place.sqlite_error(error), Some(job)));
                break;
            }
        };
        let ran = job(Ok(&savepoint));
        answers.push(ran.answer);
        // A refused write's statements are rolled back; either way its
        // savepoint is then released. A failure of either breaks the group
        // rather than committing it.
        let ended = if ran.kept {
            Ok(())
        } else {
            savepoint.rollback()
        }
        .and_then(|()| savepoint.commit());
        if let Err(error) = ended {
            broken = Some((place.sqlite_error(error), None));
            break;
        }
    }
    let committed = match broken {
        // The transaction rolls back when dropped: nothing of the group is
        // stored, and the writes not run yet are refused with the same error.
        Some((error, unrun)) => {
            drop(transaction);
            for job in unrun.into_iter().chain(jobs) {
                (job(Err(&error)).answer)(None);
            }
            Err(error)
        }
        None => transaction
            .commit()
            .map_err(|error| place.sqlite_error(error)),
    };
    if let Err(error) = &committed {
        tracing::error!(file = %place.path().display(), %error, writes = answers.len(), "a grouped commit failed");
        crate::save_unlinked_wal(connection, place);
    }
    for answer in answers {
        answer(committed.as_ref().err());
    }
}

/// `error` for one more caller: the same code and text.
fn copy_of(error: &SqliteError) -> SqliteError {
    match error {
        SqliteError::Sqlite(rusqlite::Error::SqliteFailure(code, message)) => {
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(*code, message.clone()))
        }
        SqliteError::Damaged { path, detail } => SqliteError::Damaged {
            path: path.clone(),
            detail: detail.clone(),
        },
        SqliteError::Moved { path } => SqliteError::Moved { path: path.clone() },
        other => SqliteError::Worker(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
