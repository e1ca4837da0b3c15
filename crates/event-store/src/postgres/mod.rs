//! The PostgreSQL event store: the log of the distributed mode, shared by every
//! replica of the service.
//!
//! Writes go through one writer task per process. It takes appends from a
//! bounded queue and commits as many as are waiting (up to
//! [`GROUP_COMMIT_BATCH_MAX`]) in one transaction, so one commit serves the
//! whole group, and one append's refusal refuses only that append: the group
//! is decided on its streams' heads and written with a statement per table
//! ([`batched`]), or, when a unique constraint refuses a row, written again
//! with a savepoint per append. A caller is answered only after COMMIT has
//! returned, so a 2xx is never lost; when the transaction as a whole fails,
//! every append in it is answered [`StoreError::Unavailable`].
//!
//! The writer has connections of its own ([`WRITER_CONNECTIONS_MAX`]); reads
//! (`read_stream`, `read_all`, `head_position`, idempotent responses) go to
//! the pool the store was given, which bounds each statement when built
//! with `postgres_support::connect_reads`.
//!
//! # Why positions never appear out of order
//! A sequence alone hands out positions in `nextval` order, but transactions
//! commit in their own order: a reader could see position 8 committed while 7
//! is still in flight, move its checkpoint past 7, and never publish it. So
//! every append transaction first takes one transaction-scoped advisory lock,
//! [`POSITION_ALLOCATOR_LOCK_KEY`], and only then calls `nextval`. The lock is
//! released after the commit is visible, so the next holder's positions are
//! both higher and committed later: every snapshot sees a prefix of the log,
//! give or take holes left by rolled-back savepoints and batches, which
//! nothing will ever fill and readers simply step over. The lock serializes writers across all
//! processes; group commit is what keeps that fast (one lock and one commit
//! per group, not per append).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use postgres_support::{PostgresError, Within, READ_WAIT_MS_MAX};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Connection, Row};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;
use wallet_domain::{AsOf, HoldId, WalletId};

mod batched;

use crate::hold_listing::{listed_hold, status_condition, status_parameter};
use crate::snapshot::{from_time_ns, thinned_out, time_ns, SnapshotRow};
use crate::stream_head::GroupHeads;
use crate::{
    directory_wallet, due_hold, hold_versions, placed_holds, AppendError, AppendOutcome,
    AppendRequest, CommitUnanswered, DueHold, EventStore, HoldPage, HoldPageQuery, HoldVersions,
    IdempotentResponse, RecordedEvent, SnapshotReplace, StoreError, StoredEvent, StreamSnapshot,
    READ_ALL_BATCH_MAX,
};

/// Appends committed together in one transaction at most.
pub const GROUP_COMMIT_BATCH_MAX: usize = 256;
/// Appends waiting for the writer task at most; callers wait for room beyond it.
pub const APPEND_QUEUE_CAPACITY: usize = 4_096;
/// The key of the advisory lock that makes the position sequence a single
/// allocator across processes ("WALLEXPS" in ASCII, so it collides with no
/// other lock of ours by chance).
pub const POSITION_ALLOCATOR_LOCK_KEY: i64 = 0x5741_4c4c_4558_5053;
/// How long a group commit waits for the allocator lock before it gives up
/// (and answers its appends `Unavailable`): a stuck peer must not stall us forever.
pub const ALLOCATOR_LOCK_TIMEOUT_MS: u64 = 5_000;
/// Bound on any one statement of a group commit, COMMIT included.
pub const GROUP_COMMIT_STATEMENT_TIMEOUT_MS: u64 = 10_000;
/// Connections of the writer's own pool: it commits one group at a time, and
/// a second connection is ready while a broken one is replaced.
pub const WRITER_CONNECTIONS_MAX: u32 = 2;
/// How long an append waits for the writer at most, in ms, queueing
/// included: a server that stops answering without closing its connections
/// (paused, or a network partition) holds the writer in its COMMIT, and the
/// appends queued behind it are then answered `OutcomeUnknown` (when
/// queued: the writer may still commit them) or `Unavailable` (when the
/// queue stayed full: nothing queued) instead of waiting for the server.
/// Above a group's statements' own bounds (two of
/// [`GROUP_COMMIT_STATEMENT_TIMEOUT_MS`]), so a server that answers answers.
pub const APPEND_WAIT_MS_MAX: u64 = 20_000;
/// How long the writer waits for one group commit at most, in ms: the
/// statements' own bounds ([`GROUP_COMMIT_STATEMENT_TIMEOUT_MS`]) are the
/// server's, and a server that stops answering without closing the
/// connection never applies them. Past it, the writer closes that
/// connection, answers the group's appends "outcome unknown" and goes on
/// with another; without it one dead connection held the writer, and every
/// append after, for good.
pub const GROUP_COMMIT_WAIT_MS_MAX: u64 = APPEND_WAIT_MS_MAX;

const UNIQUE_VIOLATION: &str = "23505";
const EVENTS_STREAM_VERSION_CONSTRAINT: &str = "events_stream_version_key";
const IDEMPOTENCY_KEY_CONSTRAINT: &str = "idempotency_keys_pkey";
const EVENT_ID_CONSTRAINT: &str = "events_event_id_key";
const HOLD_DIRECTORY_CONSTRAINT: &str = "hold_directory_pkey";

struct AppendJob {
    request: AppendRequest,
    /// Each stream's events as JSON, encoded by the caller: off the single
    /// writer task, and a failure refuses only that append.
    payloads: Vec<Vec<String>>,
    reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

pub struct PostgresEventStore {
    pool: PgPool,
    appends: mpsc::Sender<AppendJob>,
    head: watch::Receiver<u64>,
    /// How long an append or a read waits for the server, in ms:
    /// [`APPEND_WAIT_MS_MAX`] (equal to [`READ_WAIT_MS_MAX`]) unless
    /// [`PostgresEventStore::with_wait_ms`] set it.
    wait_ms: u64,
}

/// Why an append was answered `OutcomeUnknown` without the writer's reply.
#[derive(Debug, thiserror::Error)]
#[error("the event store's writer gave no answer within {waited_ms} ms (the server may be paused or unreachable); the append may still be committed")]
pub struct AppendUnanswered {
    /// How long the append waited, in ms.
    pub waited_ms: u64,
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl PostgresEventStore {
    /// Reads from `pool`, whose schema is migrated (build it with
    /// `postgres_support::connect` or `connect_reads`), and starts the writer
    /// task on [`WRITER_CONNECTIONS_MAX`] connections of its own to the same
    /// database, so that no number of reads can make an append wait for a
    /// connection. Must be called inside a Tokio runtime.
    pub async fn connect(pool: PgPool) -> Result<Self, StoreError> {
        let head_position = current_head(&pool, READ_WAIT_MS_MAX).await?;
        let writer = postgres_support::writer_pool(
            &pool,
            WRITER_CONNECTIONS_MAX,
            GROUP_COMMIT_STATEMENT_TIMEOUT_MS,
        )
        .await?;
        let (appends, queue) = mpsc::channel(APPEND_QUEUE_CAPACITY);
        let (head_sender, head) = watch::channel(head_position);
        tokio::spawn(run_writer(writer, queue, head_sender));
        Ok(Self {
            pool,
            appends,
            head,
            wait_ms: APPEND_WAIT_MS_MAX,
        })
    }

    /// The same store with appends and reads waiting at most `wait_ms` ms
    /// for the server (see [`APPEND_WAIT_MS_MAX`], [`READ_WAIT_MS_MAX`]), for
    /// tests of a paused server.
    pub fn with_wait_ms(mut self, wait_ms: u64) -> Self {
        self.wait_ms = wait_ms;
        self
    }
}

async fn current_head(pool: &PgPool, wait_ms: u64) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(pool)
        .within(wait_ms)
        .await
        .map_err(unavailable)?;
    Ok(to_u64(head))
}

/// Ends when the store is dropped (its queue closes) and the queue is drained.
async fn run_writer(pool: PgPool, mut queue: mpsc::Receiver<AppendJob>, head: watch::Sender<u64>) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_COMMIT_BATCH_MAX {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let outcomes = match commit_bounded(&pool, &jobs).await {
            Ok(outcomes) => outcomes,
            Err(failure) => {
                tracing::error!(error = %failure, appends = jobs.len(), "event store group commit failed");
                jobs.iter()
                    .map(|_| Err(failure.to_append_error()))
                    .collect()
            }
        };
        if let Some(last) = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|outcome| outcome.last_position)
            .max()
        {
            head.send_if_modified(|head| {
                let advanced = last > *head;
                if advanced {
                    *head = last;
                }
                advanced
            });
        }
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            // A caller that gave up waiting still has its events stored.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Why a group commit failed, which tells whether its appends may be stored.
#[derive(Debug, thiserror::Error)]
enum GroupFailure {
    /// Before COMMIT was sent: the transaction is rolled back, nothing stored.
    #[error("group commit failed before COMMIT: {0}")]
    BeforeCommit(#[source] sqlx::Error),
    /// COMMIT was sent and no reply came back (or an error did): the group
    /// may be stored or not.
    #[error("COMMIT of a group got no answer: {0}")]
    AtCommit(#[source] std::sync::Arc<sqlx::Error>),
}

impl From<sqlx::Error> for GroupFailure {
    fn from(error: sqlx::Error) -> Self {
        GroupFailure::BeforeCommit(error)
    }
}

impl GroupFailure {
    /// What each append of the failed group is answered.
    fn to_append_error(&self) -> AppendError {
        AppendError::Store(match self {
            GroupFailure::BeforeCommit(error) => StoreError::Unavailable(error.to_string()),
            GroupFailure::AtCommit(error) => StoreError::OutcomeUnknown {
                source: Box::new(CommitUnanswered(std::sync::Arc::clone(error))),
            },
        })
    }
}

/// Commits the group on a connection of the writer's pool within
/// [`GROUP_COMMIT_WAIT_MS_MAX`]. A connection that has not answered by then
/// is taken out of the pool and closed (the server ends its session, and
/// releases its locks, by `idle_in_transaction_session_timeout`), and the
/// group's outcome is unknown: it may have reached COMMIT.
async fn commit_bounded(
    pool: &PgPool,
    jobs: &[AppendJob],
) -> Result<Vec<Result<AppendOutcome, AppendError>>, GroupFailure> {
    let mut connection = pool.acquire().await?;
    let committed = tokio::time::timeout(
        Duration::from_millis(GROUP_COMMIT_WAIT_MS_MAX),
        commit_group(&mut connection, jobs),
    )
    .await;
    match committed {
        Ok(outcome) => outcome,
        Err(_) => {
            // Detached, not returned: the pool would try to reuse it.
            drop(connection.detach());
            tracing::warn!(
                waited_ms = GROUP_COMMIT_WAIT_MS_MAX,
                "the event store's server did not answer a group commit; its connection is closed"
            );
            Err(GroupFailure::AtCommit(std::sync::Arc::new(
                postgres_support::no_answer(GROUP_COMMIT_WAIT_MS_MAX),
            )))
        }
    }
}

/// Commits the group in one transaction; the outer error fails every append
/// in it. First as one batch ([`batched::commit_batch`], a fixed number of
/// statements); when a unique constraint refuses a row of the batch, again
/// with a savepoint per append ([`commit_in_savepoints`], a few statements
/// per append), which refuses only the append the constraint names.
async fn commit_group(
    connection: &mut PgConnection,
    jobs: &[AppendJob],
) -> Result<Vec<Result<AppendOutcome, AppendError>>, GroupFailure> {
    match batched::commit_batch(connection, jobs).await {
        Err(GroupFailure::BeforeCommit(error)) if unique_violation(&error).is_some() => {
            tracing::debug!(%error, appends = jobs.len(), "batch refused by a unique constraint; committing append by append");
            commit_in_savepoints(connection, jobs).await
        }
        outcome => outcome,
    }
}

/// What a group's transaction runs first, in one round trip (a simple query
/// runs its statements in order): the transaction's timeouts, then the single
/// allocator lock. The lock is taken right before any nextval of the
/// transaction and held until COMMIT, so positions become visible in commit
/// order (see the module documentation); waiting for it, bounded by the
/// `lock_timeout` set before it, is waiting for other processes' group
/// commits, never for a reader.
static GROUP_START_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SET LOCAL lock_timeout = '{ALLOCATOR_LOCK_TIMEOUT_MS}ms'; \
         SET LOCAL statement_timeout = '{GROUP_COMMIT_STATEMENT_TIMEOUT_MS}ms'; \
         SELECT pg_advisory_xact_lock({POSITION_ALLOCATOR_LOCK_KEY})"
    )
});

/// Begins a group's transaction with its timeouts and the allocator lock:
/// two round trips.
async fn begin_group(
    connection: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
    let mut transaction = Connection::begin(connection).await?;
    // A text without arguments goes as a simple query: every statement of it.
    let start: &'static str = LazyLock::force(&GROUP_START_SQL).as_str();
    sqlx::Executor::execute(&mut *transaction, start).await?;
    Ok(transaction)
}

/// Commits a group's transaction: an error or no answer to COMMIT leaves the
/// group's outcome unknown.
async fn commit(transaction: sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), GroupFailure> {
    transaction
        .commit()
        .await
        .map_err(|error| GroupFailure::AtCommit(std::sync::Arc::new(error)))
}

/// The group in one transaction, decided on its streams' heads as a batch is,
/// each admitted append written in a savepoint of its own: a unique
/// constraint refuses only that append, and the heads move on only past the
/// appends stored.
async fn commit_in_savepoints(
    connection: &mut PgConnection,
    jobs: &[AppendJob],
) -> Result<Vec<Result<AppendOutcome, AppendError>>, GroupFailure> {
    let mut transaction = begin_group(connection).await?;
    let mut heads = GroupHeads::new(batched::read_heads(&mut transaction, jobs).await?);
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let outcome = match heads.admit(&job.request) {
            Ok(admitted) => {
                let outcome = append_in_savepoint(&mut transaction, job).await?;
                if outcome.is_ok() {
                    heads.apply(admitted);
                }
                outcome
            }
            Err(refusal) => Err(refusal),
        };
        outcomes.push(outcome);
    }
    commit(transaction).await?;
    Ok(outcomes)
}

/// Writes one admitted append in a savepoint. Outer error: the transaction
/// itself broke. Inner error: a unique constraint refused the append, and its
/// savepoint is rolled back.
async fn append_in_savepoint(
    transaction: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job: &AppendJob,
) -> Result<Result<AppendOutcome, AppendError>, sqlx::Error> {
    let mut savepoint = transaction.begin().await?;
    let written = batched::write(&mut savepoint, std::slice::from_ref(job), vec![Ok(())]).await;
    match written {
        Ok(mut outcomes) => {
            savepoint.commit().await?;
            Ok(outcomes
                .pop()
                .expect("one outcome for the one append written"))
        }
        Err(error) => {
            let Some(constraint) = unique_violation(&error) else {
                return Err(error);
            };
            savepoint.rollback().await?;
            Ok(Err(refusal_for(&job.request, &constraint)))
        }
    }
}

/// The constraint a `23505` unique violation names, if `error` is one.
fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let database_error = error.as_database_error()?;
    if database_error.code().as_deref() != Some(UNIQUE_VIOLATION) {
        return None;
    }
    Some(database_error.constraint().unwrap_or_default().to_owned())
}

/// The refusal the caller of an append sees when `constraint` refused it.
fn refusal_for(request: &AppendRequest, constraint: &str) -> AppendError {
    match constraint {
        IDEMPOTENCY_KEY_CONSTRAINT => AppendError::IdempotencyKeyTaken(
            request
                .idempotent_response
                .as_ref()
                .map(|response| response.key.clone())
                .unwrap_or_default(),
        ),
        HOLD_DIRECTORY_CONSTRAINT => request
            .streams
            .iter()
            .flat_map(placed_holds)
            .next()
            .map(|hold_id| AppendError::HoldIdTaken(hold_id.clone()))
            .unwrap_or_else(|| {
                AppendError::Store(StoreError::Unavailable(
                    "the hold directory refused an append that places no hold".into(),
                ))
            }),
        EVENT_ID_CONSTRAINT => AppendError::Store(StoreError::Unavailable(
            "an event of this append has an event id that is already stored".into(),
        )),
        // Heads are read and decided on under the allocator lock, which every
        // append takes: only a writer that skipped it can have taken the version.
        EVENTS_STREAM_VERSION_CONSTRAINT => AppendError::Store(StoreError::Unavailable(
            "a version of this append was stored by a writer outside the allocator lock".into(),
        )),
        other => AppendError::Store(StoreError::Unavailable(format!(
            "unexpected unique violation on {other:?}"
        ))),
    }
}

fn stored_rows(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<StoredEvent>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let position: i64 = row.try_get("position").map_err(unavailable)?;
            let version: i64 = row.try_get("version").map_err(unavailable)?;
            let payload: String = row.try_get("payload").map_err(unavailable)?;
            Ok(StoredEvent {
                position: to_u64(position),
                stream_version: to_u64(version),
                payload,
            })
        })
        .collect()
}

fn decode_rows(rows: Vec<sqlx::postgres::PgRow>) -> Result<Vec<RecordedEvent>, StoreError> {
    stored_rows(rows)?.iter().map(StoredEvent::decode).collect()
}

impl PostgresEventStore {
    /// The stored snapshot of `wallet_id` that `wanted` names.
    async fn snapshot(
        &self,
        wallet_id: &WalletId,
        wanted: SnapshotRow,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        let (filter, bound) = wanted.filter("$2");
        let sql = format!(
            "SELECT version, last_event_id, state, occurred_at_ns FROM snapshots \
             WHERE stream_id = $1 {filter} LIMIT 1"
        );
        let query = sqlx::query(&sql).bind(wallet_id.as_str());
        let query = match bound {
            Some(bound) => query.bind(bound),
            None => query,
        };
        let row = query
            .fetch_optional(&self.pool)
            .within(self.wait_ms)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version: i64 = row.try_get("version").map_err(unavailable)?;
        let occurred_at_ns: Option<i64> = row.try_get("occurred_at_ns").map_err(unavailable)?;
        Ok(Some(StreamSnapshot {
            wallet_id: wallet_id.clone(),
            version: to_u64(version),
            last_event_id: row.try_get("last_event_id").map_err(unavailable)?,
            occurred_at: occurred_at_ns.map(from_time_ns),
            state: row.try_get("state").map_err(unavailable)?,
        }))
    }

    /// Up to `limit` (at most [`READ_ALL_BATCH_MAX`]) rows of the log after
    /// `after_position`: position, version, payload.
    /// Returns once every commit this session could see is durable where
    /// the server says a commit is: a transaction with `synchronous_commit
    /// = on` flushes the WAL up to its own commit record, and so every
    /// commit before it, and waits for the synchronous standbys if any.
    /// Under asynchronous commit (`synchronous_commit = off`) a commit is
    /// visible before its WAL is flushed, and an immediate shutdown loses
    /// it: a relay that published what it read before this barrier handed
    /// the consumers events the store then lost, and the ledger counted
    /// money the log no longer had (hostile test h113 F1). Called by the
    /// relays' read ([`EventStore::read_all_stored`]) after it found events;
    /// one small commit per batch.
    async fn durable_barrier(&self) -> Result<(), StoreError> {
        let barrier = async {
            let mut transaction = self.pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = on")
                .execute(&mut *transaction)
                .await?;
            // A commit flushes only when its transaction wrote WAL of its
            // own (a transaction id alone is not enough): a message of the
            // transaction, a few bytes, that logical decoding alone reads.
            sqlx::query("SELECT pg_logical_emit_message(true, 'wallex-relay-barrier', '')")
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await
        };
        barrier.within(self.wait_ms).await.map_err(unavailable)
    }

    async fn log_rows(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
        let limit = to_i64(limit.min(READ_ALL_BATCH_MAX) as u64);
        sqlx::query(
            "SELECT position, version, payload FROM events \
             WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(to_i64(after_position))
        .bind(limit)
        .fetch_all(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let payloads = request.encoded_payloads()?;
        let (reply, outcome) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.wait_ms);
        let job = AppendJob {
            request,
            payloads,
            reply,
        };
        match tokio::time::timeout_at(deadline, self.appends.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(StoreError::Unavailable("event store writer has stopped".into()).into())
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "event store writer's queue stayed full for {} ms; nothing was queued",
                    self.wait_ms
                ))
                .into())
            }
        }
        match tokio::time::timeout_at(deadline, outcome).await {
            Ok(Ok(answer)) => answer,
            // The writer took the append and stopped before it answered: it
            // may have committed it.
            Ok(Err(error)) => Err(StoreError::OutcomeUnknown {
                source: Box::new(error),
            }
            .into()),
            Err(_) => Err(StoreError::OutcomeUnknown {
                source: Box::new(AppendUnanswered {
                    waited_ms: self.wait_ms,
                }),
            }
            .into()),
        }
    }

    async fn read_stream(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_until(wallet_id, after_version, u64::MAX)
            .await
    }

    async fn read_stream_until(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
        up_to_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, version, payload FROM events \
             WHERE stream_id = $1 AND version > $2 AND version <= $3 ORDER BY version",
        )
        .bind(wallet_id.as_str())
        .bind(to_i64(after_version))
        .bind(to_i64(up_to_version))
        .fetch_all(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        decode_rows(rows)
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        decode_rows(self.log_rows(after_position, limit).await?)
    }

    async fn read_all_stored(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self.log_rows(after_position, limit).await?;
        if !rows.is_empty() {
            self.durable_barrier().await?;
        }
        stored_rows(rows)
    }

    async fn read_snapshot(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        self.snapshot(wallet_id, SnapshotRow::Newest).await
    }

    async fn read_snapshot_as_of(
        &self,
        wallet_id: &WalletId,
        as_of: AsOf,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        self.snapshot(wallet_id, SnapshotRow::as_of(as_of)).await
    }

    /// In one transaction on the pool, outside the group commit: snapshots
    /// are rare (one per [`crate::SNAPSHOT_INTERVAL_EVENTS`] events of a
    /// stream).
    async fn save_snapshot(
        &self,
        snapshot: StreamSnapshot,
        replace: SnapshotReplace,
    ) -> Result<(), StoreError> {
        async {
            let mut transaction = self.pool.begin().await?;
            if let Some(from) = replace.drops_from(snapshot.version) {
                sqlx::query("DELETE FROM snapshots WHERE stream_id = $1 AND version >= $2")
                    .bind(snapshot.wallet_id.as_str())
                    .bind(to_i64(from))
                    .execute(&mut *transaction)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO snapshots (stream_id, version, last_event_id, state, occurred_at_ns) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream_id, version) DO UPDATE SET \
                 last_event_id = excluded.last_event_id, state = excluded.state, \
                 occurred_at_ns = excluded.occurred_at_ns",
            )
            .bind(snapshot.wallet_id.as_str())
            .bind(to_i64(snapshot.version))
            .bind(snapshot.last_event_id)
            .bind(&snapshot.state)
            .bind(snapshot.occurred_at.map(time_ns))
            .execute(&mut *transaction)
            .await?;
            // The one just below, when the history cannot afford it.
            let below: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT version, octet_length(state)::BIGINT FROM snapshots \
                 WHERE stream_id = $1 AND version < $2 ORDER BY version DESC LIMIT 2",
            )
            .bind(snapshot.wallet_id.as_str())
            .bind(to_i64(snapshot.version))
            .fetch_all(&mut *transaction)
            .await?;
            if let [(kept, bytes), (previous, _)] = below[..] {
                if thinned_out(to_u64(kept), to_u64(bytes), to_u64(previous)) {
                    sqlx::query("DELETE FROM snapshots WHERE stream_id = $1 AND version = $2")
                        .bind(snapshot.wallet_id.as_str())
                        .bind(kept)
                        .execute(&mut *transaction)
                        .await?;
                }
            }
            transaction.commit().await
        }
        .within(self.wait_ms)
        .await
        .map_err(unavailable)
    }

    async fn version_of_event(
        &self,
        wallet_id: &WalletId,
        event_id: Uuid,
    ) -> Result<Option<u64>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM events WHERE event_id = $1 AND stream_id = $2")
                .bind(event_id)
                .bind(wallet_id.as_str())
                .fetch_optional(&self.pool)
                .within(self.wait_ms)
                .await
                .map_err(unavailable)?;
        Ok(version.map(to_u64))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        current_head(&self.pool, self.wait_ms).await
    }

    async fn find_hold_wallet(&self, hold_id: &HoldId) -> Result<Option<WalletId>, StoreError> {
        let wallet_id: Option<String> =
            sqlx::query_scalar("SELECT wallet_id FROM hold_directory WHERE hold_id = $1")
                .bind(hold_id.as_str())
                .fetch_optional(&self.pool)
                .within(self.wait_ms)
                .await
                .map_err(unavailable)?;
        wallet_id.map(|raw| directory_wallet(&raw)).transpose()
    }

    async fn hold_versions(&self, hold_id: &HoldId) -> Result<Option<HoldVersions>, StoreError> {
        let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT placed_version, settled_version FROM hold_directory WHERE hold_id = $1",
        )
        .bind(hold_id.as_str())
        .fetch_optional(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        Ok(hold_versions(row))
    }

    async fn hold_page(
        &self,
        wallet_id: &WalletId,
        query: &HoldPageQuery,
    ) -> Result<Option<HoldPage>, StoreError> {
        let matching = status_condition("$2::text", "$3::timestamptz");
        let listed = async {
            // One snapshot for the count and the page (tester h167 F1: a
            // hold placed between the two made them disagree by one).
            let mut transaction = self.pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *transaction)
                .await?;
            let unlisted: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM hold_directory \
                 WHERE wallet_id = $1 AND (placed_at IS NULL OR placed_version IS NULL))",
            )
            .bind(wallet_id.as_str())
            .fetch_one(&mut *transaction)
            .await?;
            if unlisted {
                return Ok(None);
            }
            let count: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM hold_directory WHERE wallet_id = $1 AND {matching}"
            ))
            .bind(wallet_id.as_str())
            .bind(status_parameter(query))
            .bind(query.clock)
            .fetch_one(&mut *transaction)
            .await?;
            let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(&format!(
                "SELECT hold_id, placed_version, settled_version FROM hold_directory \
                 WHERE wallet_id = $1 AND {matching} \
                 ORDER BY placed_at, hold_id COLLATE \"C\" LIMIT $4 OFFSET $5"
            ))
            .bind(wallet_id.as_str())
            .bind(status_parameter(query))
            .bind(query.clock)
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
            .fetch_all(&mut *transaction)
            .await?;
            transaction.commit().await?;
            Ok::<_, sqlx::Error>(Some((count, rows)))
        }
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        let Some((count, rows)) = listed else {
            return Ok(None);
        };
        Ok(Some(HoldPage {
            count: u64::try_from(count).unwrap_or_default(),
            holds: rows
                .iter()
                .map(|(hold_id, placed, settled)| listed_hold(hold_id, *placed, *settled))
                .collect::<Result<_, _>>()?,
        }))
    }

    async fn due_holds(
        &self,
        clock: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueHold>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT hold_id, wallet_id FROM hold_directory \
             WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(clock)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|(hold_id, wallet_id)| due_hold(hold_id, wallet_id))
            .collect()
    }

    async fn find_idempotent_response(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT idempotency_key, request_fingerprint, response_status, response_body \
             FROM idempotency_keys WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: i32 = row.try_get("response_status").map_err(unavailable)?;
        Ok(Some(IdempotentResponse {
            key: row.try_get("idempotency_key").map_err(unavailable)?,
            request_fingerprint: row.try_get("request_fingerprint").map_err(unavailable)?,
            status: u16::try_from(status).map_err(|_| {
                StoreError::Unavailable(format!("stored response status {status} is not a u16"))
            })?,
            body: row.try_get("response_body").map_err(unavailable)?,
        }))
    }

    fn idempotent_responses_expire(&self) -> bool {
        true
    }

    async fn purge_idempotent_responses(
        &self,
        recorded_before: DateTime<Utc>,
        batch_max: usize,
    ) -> Result<usize, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM idempotency_keys WHERE idempotency_key IN \
             (SELECT idempotency_key FROM idempotency_keys WHERE recorded_at < $1 \
              ORDER BY recorded_at LIMIT $2)",
        )
        .bind(recorded_before)
        .bind(i64::try_from(batch_max).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .within(self.wait_ms)
        .await
        .map_err(unavailable)?;
        Ok(usize::try_from(deleted.rows_affected()).unwrap_or(usize::MAX))
    }

    /// Advanced after each commit of this process; other processes' appends
    /// are found by polling `read_all`.
    fn appended(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
