//! The PostgreSQL event store under concurrency no single-process test shows:
//! several store instances (several "processes") appending to one database
//! while a reader follows the global log, and a restart.
//!
//! Each test runs in a database of its own, dropped at the end.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use event_store::{
    AppendError, AppendRequest, EventStore, IdempotentResponse, PostgresEventStore, RecordedEvent,
    StreamAppend, READ_ALL_BATCH_MAX,
};
use futures::FutureExt;
use integration_tests::proxy::PausableProxy;
use integration_tests::{require_env, unique_name};
use postgres_support::{Within, READ_WAIT_MS_MAX};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::Connection;
use uuid::Uuid;
use wallet_domain::{
    decide, evolve, Amount, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletEvent,
    WalletId, WalletState,
};

/// Store instances on the same database, each with its own pool and writer task.
const PROCESSES: usize = 4;
/// Concurrent writer tasks, spread over the processes.
const WRITERS: usize = 8;
/// Appends each writer makes to its own stream, one after the other.
const APPENDS_PER_WRITER: usize = 200;
/// Every this many appends, a writer also makes an append that takes a position
/// and then rolls back (a duplicate event id), leaving a hole in the log.
const HOLE_EVERY: usize = 10;
/// Connections of each process's pool.
const POOL_CONNECTIONS_MAX: u32 = 4;
/// Bound on the reader's polls of the log.
const READER_POLLS_MAX: usize = 1_000_000;
/// The reader's pause when it has caught up.
const READER_IDLE_MS: u64 = 1;
/// Skipped positions named in a failure message at most.
const SKIPPED_SHOWN_MAX: usize = 10;
/// Bound on the pages of one full read of the log.
const PAGES_MAX: usize = 10_000;

// --- events -------------------------------------------------------------------

struct Stream {
    id: WalletId,
    state: WalletState,
}

impl Stream {
    fn new(raw: &str) -> Self {
        Self {
            id: WalletId::parse(raw).expect("wallet id"),
            state: WalletState::default(),
        }
    }

    /// The append of the next event (a creation, then one-cent credits); the state moves on.
    fn next(&mut self) -> StreamAppend {
        let kind = match self.state {
            WalletState::Absent => CommandKind::Create {
                owner_id: OwnerId::parse("owner").expect("owner id"),
                initial_balance: Balance::opening("initialBalance", Decimal::from(100))
                    .expect("balance"),
                overdraft_limit: Balance::ZERO,
            },
            WalletState::Open(_) => CommandKind::Credit {
                amount: Amount::parse("amount", Decimal::new(1, 2)).expect("amount"),
                description: None,
            },
        };
        let command = Command {
            wallet_id: self.id.clone(),
            kind,
            event_id: Uuid::new_v4(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        let event = decide(&self.state, &command).expect("decide").remove(0);
        let append = StreamAppend {
            wallet_id: self.id.clone(),
            expected_version: self.state.version(),
            expected_last_event_id: None,
            events: vec![event.clone()],
        };
        self.state = evolve(std::mem::take(&mut self.state), &event);
        append
    }
}

fn request(streams: Vec<StreamAppend>) -> AppendRequest {
    AppendRequest {
        streams,
        idempotent_response: None,
    }
}

async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut checkpoint = 0;
    for _ in 0..PAGES_MAX {
        let page = store
            .read_all(checkpoint, READ_ALL_BATCH_MAX)
            .await
            .expect("read_all");
        let Some(last) = page.last() else {
            return all;
        };
        checkpoint = last.position;
        all.extend(page);
    }
    panic!("the log did not end within {PAGES_MAX} pages");
}

// --- a database per test --------------------------------------------------------

struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = unique_name("wallex_test");
        let mut admin = admin_connection(admin_url).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a database for this test (the user needs CREATEDB)");
        let _ = admin.close().await;
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// A new pool on this database: one per simulated process.
    async fn pool(&self) -> PgPool {
        postgres_support::connect(
            &with_database(&self.admin_url, &self.name),
            POOL_CONNECTIONS_MAX,
        )
        .await
        .expect("connect to and migrate the test database")
    }

    async fn drop_database(self) {
        let mut admin = admin_connection(&self.admin_url).await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
        let _ = admin.close().await;
    }
}

async fn admin_connection(url: &str) -> sqlx::PgConnection {
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL is a PostgreSQL URL");
    sqlx::PgConnection::connect_with(&options)
        .await
        .expect("connect to the PostgreSQL of DATABASE_URL")
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |scheme| scheme + 3);
    let server = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Runs `case` on a fresh database and drops the database whatever the outcome.
async fn with_fresh_database<F, Fut>(case: F)
where
    F: FnOnce(Arc<TestDatabase>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let database = Arc::new(TestDatabase::create(&url).await);
    let outcome = AssertUnwindSafe(case(Arc::clone(&database)))
        .catch_unwind()
        .await;
    match Arc::try_unwrap(database) {
        Ok(database) => database.drop_database().await,
        Err(database) => eprintln!("left database {} behind: still in use", database.name),
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// --- the sequence-gap test --------------------------------------------------------

/// One writer: its own stream, appended `APPENDS_PER_WRITER` times, with a hole
/// (a position taken and rolled back) every `HOLE_EVERY` appends.
async fn write(store: Arc<PostgresEventStore>, writer: usize) -> usize {
    let mut stream = Stream::new(&format!("writer-{writer}"));
    let mut holes = 0;
    for index in 0..APPENDS_PER_WRITER {
        let append = stream.next();
        let stored_event_id = append.events[0].event_id;
        store
            .append(request(vec![append]))
            .await
            .expect("an append to the writer's own stream");
        if index % HOLE_EVERY == 0 {
            // A fresh stream passes the version check and takes a position; the
            // duplicate event id then rolls the append back.
            let mut duplicate = Stream::new(&format!("hole-{writer}-{index}")).next();
            duplicate.events[0].event_id = stored_event_id;
            let refused = store.append(request(vec![duplicate])).await;
            assert!(
                matches!(refused, Err(AppendError::Store(_))),
                "a duplicate event id is refused: {refused:?}"
            );
            holes += 1;
        }
    }
    holes
}

/// Follows the log from its checkpoint until the writers are done and it has
/// caught up; asserts positions only ever increase.
async fn follow(
    store: Arc<PostgresEventStore>,
    writers_done: Arc<AtomicBool>,
) -> Vec<RecordedEvent> {
    let mut seen: Vec<RecordedEvent> = Vec::new();
    let mut checkpoint = 0;
    for _ in 0..READER_POLLS_MAX {
        // Read the flag first: when it is set, every append has committed
        // before this read, so an empty page means the reader is done.
        let done = writers_done.load(Ordering::Acquire);
        let page = store
            .read_all(checkpoint, READ_ALL_BATCH_MAX)
            .await
            .expect("read_all");
        if page.is_empty() {
            if done {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(READER_IDLE_MS)).await;
            continue;
        }
        for event in page {
            assert!(
                event.position > checkpoint,
                "position {} after checkpoint {checkpoint}",
                event.position
            );
            checkpoint = event.position;
            seen.push(event);
        }
    }
    panic!("the reader did not catch up within {READER_POLLS_MAX} polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_reader_following_concurrent_processes_never_skips_an_event() {
    with_fresh_database(|database| async move {
        let mut processes = Vec::with_capacity(PROCESSES);
        for _ in 0..PROCESSES {
            let store = PostgresEventStore::connect(database.pool().await)
                .await
                .expect("connect a store");
            processes.push(Arc::new(store));
        }
        let reader_store = Arc::new(
            PostgresEventStore::connect(database.pool().await)
                .await
                .expect("connect the reader's store"),
        );
        let writers_done = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(follow(reader_store, Arc::clone(&writers_done)));

        let started = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| tokio::spawn(write(Arc::clone(&processes[writer % PROCESSES]), writer)))
            .collect();
        let mut holes = 0;
        for writer in writers {
            holes += writer.await.expect("a writer finished");
        }
        let elapsed = started.elapsed();
        writers_done.store(true, Ordering::Release);
        let seen = reader.await.expect("the reader finished");

        let appends = WRITERS * APPENDS_PER_WRITER;
        eprintln!(
            "gap test: {appends} appends (+{holes} rolled back) from {WRITERS} writers in \
             {PROCESSES} processes in {:.2}s = {:.0} appends/s; reader saw {} events",
            elapsed.as_secs_f64(),
            (appends + holes) as f64 / elapsed.as_secs_f64(),
            seen.len()
        );
        let everything = read_everything(processes[0].as_ref()).await;
        assert_eq!(everything.len(), appends, "every append is stored once");
        let seen_positions: HashSet<u64> = seen.iter().map(|event| event.position).collect();
        let skipped: Vec<u64> = everything
            .iter()
            .map(|event| event.position)
            .filter(|position| !seen_positions.contains(position))
            .collect();
        assert!(
            skipped.is_empty(),
            "the reader skipped {} events that committed late, first at positions {:?}",
            skipped.len(),
            &skipped[..skipped.len().min(SKIPPED_SHOWN_MAX)]
        );
        let seen_ids: Vec<(u64, Uuid)> = seen
            .iter()
            .map(|event| (event.position, event.event.event_id))
            .collect();
        let stored_ids: Vec<(u64, Uuid)> = everything
            .iter()
            .map(|event| (event.position, event.event.event_id))
            .collect();
        assert!(
            seen_ids == stored_ids,
            "the reader saw every event exactly once, in order ({} seen, {} stored)",
            seen_ids.len(),
            stored_ids.len()
        );
        let unique: HashSet<Uuid> = seen.iter().map(|event| event.event.event_id).collect();
        assert_eq!(unique.len(), appends);
        let last = everything.last().map_or(0, |event| event.position);
        assert!(
            last > appends as u64,
            "the rolled-back appends left holes (last position {last}, {appends} events)"
        );
        for writer in 0..WRITERS {
            let id = WalletId::parse(&format!("writer-{writer}")).expect("wallet id");
            let stream = processes[0].read_stream(&id, 0).await.expect("read_stream");
            let versions: Vec<u64> = stream.iter().map(|event| event.stream_version).collect();
            assert_eq!(
                versions,
                (1..=APPENDS_PER_WRITER as u64).collect::<Vec<_>>()
            );
        }
        drop(processes);
    })
    .await;
}

#[tokio::test]
async fn processes_racing_for_one_stream_version_are_answered_one_winner() {
    const CONTENDERS_PER_PROCESS: usize = 8;
    with_fresh_database(|database| async move {
        let first = PostgresEventStore::connect(database.pool().await)
            .await
            .expect("connect");
        let second = PostgresEventStore::connect(database.pool().await)
            .await
            .expect("connect");
        let mut stream = Stream::new("contested");
        first
            .append(request(vec![stream.next()]))
            .await
            .expect("create");
        let contenders = (0..CONTENDERS_PER_PROCESS * 2).map(|index| {
            let mut candidate = Stream::new("contested");
            candidate.state = stream.state.clone();
            let append = request(vec![candidate.next()]);
            let store = if index % 2 == 0 { &first } else { &second };
            store.append(append)
        });
        let outcomes = futures::future::join_all(contenders).await;
        assert_eq!(
            outcomes.iter().filter(|outcome| outcome.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        assert!(outcomes.iter().all(|outcome| matches!(
            outcome,
            Ok(_)
                | Err(AppendError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                })
        )));
        assert_eq!(
            first.read_stream(&stream.id, 0).await.expect("read").len(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn appends_survive_dropping_and_reconnecting_the_store() {
    const APPENDS: usize = 5;
    with_fresh_database(|database| async move {
        let mut stream = Stream::new("durable");
        let mut appended: Vec<WalletEvent> = Vec::new();
        let head = {
            let pool = database.pool().await;
            let store = PostgresEventStore::connect(pool.clone())
                .await
                .expect("connect");
            let mut last = 0;
            for _ in 0..APPENDS {
                let append = stream.next();
                appended.extend(append.events.clone());
                last = store
                    .append(request(vec![append]))
                    .await
                    .expect("append")
                    .last_position;
            }
            drop(store);
            pool.close().await;
            last
        };

        let pool = database.pool().await;
        let store = PostgresEventStore::connect(pool.clone())
            .await
            .expect("reconnect");
        assert_eq!(store.head_position().await.expect("head"), head);
        assert_eq!(
            *store.appended().borrow(),
            head,
            "the watch starts at the stored head"
        );
        let stored = store.read_stream(&stream.id, 0).await.expect("read");
        let events: Vec<WalletEvent> = stored.iter().map(|event| event.event.clone()).collect();
        assert_eq!(events, appended);

        // The stream carries on at its stored version.
        let outcome = store
            .append(request(vec![stream.next()]))
            .await
            .expect("append after restart");
        assert!(outcome.last_position > head);
        assert_eq!(*store.appended().borrow(), outcome.last_position);
        drop(store);
        pool.close().await;
    })
    .await;
}

/// An append refused for its idempotency key takes no position: the key is
/// claimed before positions are taken, alone or beside other appends of its
/// group, so the log has no hole for it.
#[tokio::test]
async fn an_append_refused_for_its_key_takes_no_position() {
    const RACING: usize = 8;
    with_fresh_database(|database| async move {
        let pool = database.pool().await;
        let store = PostgresEventStore::connect(pool.clone())
            .await
            .expect("connect");
        let keyed = |stream: &mut Stream| {
            let mut append = request(vec![stream.next()]);
            append.idempotent_response = Some(IdempotentResponse {
                key: "once".into(),
                request_fingerprint: stream.id.as_str().into(),
                status: 201,
                body: "{}".into(),
            });
            append
        };
        let first = store
            .append(keyed(&mut Stream::new("first")))
            .await
            .expect("the key is free")
            .last_position;
        let mut late: Vec<Stream> = (0..RACING)
            .map(|index| Stream::new(&format!("late-{index}")))
            .collect();
        let mut free: Vec<Stream> = (0..RACING)
            .map(|index| Stream::new(&format!("free-{index}")))
            .collect();
        let refused = late.iter_mut().map(|stream| store.append(keyed(stream)));
        let stored = free
            .iter_mut()
            .map(|stream| store.append(request(vec![stream.next()])));
        let (refused, stored) = futures::future::join(
            futures::future::join_all(refused),
            futures::future::join_all(stored),
        )
        .await;
        assert!(
            refused
                .iter()
                .all(|outcome| matches!(outcome, Err(AppendError::IdempotencyKeyTaken(_)))),
            "{refused:?}"
        );
        assert!(stored.iter().all(Result::is_ok), "{stored:?}");
        let positions: Vec<u64> = read_everything(&store)
            .await
            .iter()
            .map(|event| event.position)
            .collect();
        let expected: Vec<u64> = (first..=first + RACING as u64).collect();
        assert_eq!(positions, expected, "no hole where a refused append was");
        drop(store);
        pool.close().await;
    })
    .await;
}

/// Bound on an append while every read connection is held: far below the
/// pool's acquire timeout, so only a writer with connections of its own passes.
const APPEND_BESIDE_BUSY_READS_MS: u64 = 2_000;
/// The read statement bound of the statement-timeout test.
const SHORT_STATEMENT_TIMEOUT_MS: u64 = 200;

#[tokio::test]
async fn reads_holding_every_pooled_connection_do_not_starve_the_writer() {
    with_fresh_database(|database| async move {
        let pool = database.pool().await;
        let store = PostgresEventStore::connect(pool.clone())
            .await
            .expect("connect");
        // Every connection of the read pool taken, as by slow parallel reads.
        let mut held = Vec::new();
        for _ in 0..pool.options().get_max_connections() {
            held.push(pool.acquire().await.expect("a read connection"));
        }
        assert!(pool.try_acquire().is_none(), "the read pool is exhausted");
        let mut stream = Stream::new("starved");
        let appended = tokio::time::timeout(
            Duration::from_millis(APPEND_BESIDE_BUSY_READS_MS),
            store.append(request(vec![stream.next()])),
        )
        .await
        .expect("the append does not wait for a read connection");
        assert!(appended.is_ok(), "{appended:?}");
        drop(held);
        drop(store);
        pool.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_read_pool_bounds_each_statement() {
    with_fresh_database(|database| async move {
        let url = with_database(&database.admin_url, &database.name);
        let reads = postgres_support::connect_reads(&url, 1, SHORT_STATEMENT_TIMEOUT_MS)
            .await
            .expect("a read pool");
        let slow = sqlx::query("SELECT pg_sleep(5)").execute(&reads).await;
        let error = slow.expect_err("the statement is cancelled");
        assert!(
            postgres_support::is_transient(&error),
            "a cancelled read may pass next time: {error:?}"
        );
        assert_eq!(
            error
                .as_database_error()
                .and_then(|database| database.code())
                .as_deref(),
            Some("57014"),
            "query_canceled by statement_timeout: {error:?}"
        );
        sqlx::query("SELECT 1")
            .execute(&reads)
            .await
            .expect("quick reads pass");
        reads.close().await;
    })
    .await;
}

// --- a server that stops answering ----------------------------------------------

/// How long the test's appends and reads wait for the server, in ms.
const PAUSED_APPEND_WAIT_MS: u64 = 1_000;
/// How long the writer may take to finish its held group once the server answers again, in ms.
const RESUMED_COMMIT_MS_MAX: u64 = 10_000;
/// Pause between reads while waiting for that, in ms.
const RESUMED_POLL_MS: u64 = 50;

/// A store of `database` (migrated) whose connections all go through a
/// [`PausableProxy`], its appends and reads waiting
/// [`PAUSED_APPEND_WAIT_MS`] for the server; the proxy and the store's pool.
async fn store_through_proxy(
    database: &TestDatabase,
) -> (PausableProxy, PgPool, PostgresEventStore) {
    let url = with_database(&database.admin_url, &database.name);
    let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
    let proxy = PausableProxy::start((options.get_host().to_owned(), options.get_port())).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS_MAX)
        .connect_with(options.host("127.0.0.1").port(proxy.port))
        .await
        .expect("connect through the proxy");
    let store = PostgresEventStore::connect(pool.clone())
        .await
        .expect("a store through the proxy")
        .with_wait_ms(PAUSED_APPEND_WAIT_MS);
    (proxy, pool, store)
}

/// A connection that stops passing bytes in the middle of a group commit,
/// while the server and new connections answer (a middlebox that lost its
/// state), held that writer, and every append after, for good, and the
/// allocator lock it had taken held every other replica's writer: the
/// server ends the silent session after `postgres_support::IDLE_IN_TRANSACTION_MS`
/// (the lock with it), and the writer gives the connection up after
/// `GROUP_COMMIT_WAIT_MS_MAX` and writes on a new one.
#[tokio::test]
async fn a_writer_whose_connection_went_silent_mid_transaction_blocks_no_one_for_long() {
    with_fresh_database(|database| async move {
        let direct = database.pool().await; // migrated
        let (proxy, pool, cut_off) = store_through_proxy(&database).await;
        let other = PostgresEventStore::connect(direct.clone())
            .await
            .expect("another replica's store");

        // The writer's connection goes silent once its group holds the lock.
        proxy.freeze_after("pg_advisory_xact_lock");
        let started = Instant::now();
        let mut stuck = Stream::new("cut-off-writer");
        let first = stuck.next();
        let answer = cut_off.append(request(vec![first.clone()])).await;
        assert!(
            matches!(
                answer,
                Err(AppendError::Store(
                    event_store::StoreError::OutcomeUnknown { .. }
                ))
            ),
            "{answer:?}"
        );

        // Another replica waits for the lock until the server ends the session.
        let mut elsewhere = Stream::new("another-replica");
        let behind = elsewhere.next();
        let lock_freed_within =
            Duration::from_millis(postgres_support::IDLE_IN_TRANSACTION_MS + 5_000);
        while other.append(request(vec![behind.clone()])).await.is_err() {
            assert!(
                started.elapsed() < lock_freed_within,
                "the other replica writes within {lock_freed_within:?}"
            );
            tokio::time::sleep(Duration::from_millis(RESUMED_POLL_MS)).await;
        }
        let freed = started.elapsed();
        assert!(
            freed >= Duration::from_millis(event_store::ALLOCATOR_LOCK_TIMEOUT_MS),
            "the lock was held: {freed:?}"
        );

        // The cut-off writer gives its connection up and writes again; its
        // retries queue behind the stuck group, the first of them is stored.
        let written_within = Duration::from_millis(event_store::GROUP_COMMIT_WAIT_MS_MAX + 10_000);
        loop {
            let _ = cut_off.append(request(vec![first.clone()])).await;
            if other
                .read_stream(&stuck.id, 0)
                .await
                .is_ok_and(|stored| stored.len() == 1)
            {
                break;
            }
            assert!(
                started.elapsed() < written_within,
                "the cut-off writer writes on a new connection within {written_within:?}"
            );
            tokio::time::sleep(Duration::from_millis(RESUMED_POLL_MS)).await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(event_store::GROUP_COMMIT_WAIT_MS_MAX),
            "the writer waited for the silent connection first"
        );
        cut_off
            .append(request(vec![stuck.next()]))
            .await
            .expect("the writer takes appends at once again");
        drop(cut_off);
        drop(other);
        pool.close().await;
        direct.close().await;
    })
    .await;
}

/// A server that stops answering without closing its connections holds
/// the writer in its group commit; the append waiting on it is answered
/// `OutcomeUnknown` within its bound instead of for as long as the server
/// is away, a read `Unavailable` within its own, and once the server answers the writer finishes the group
/// (the outcome was unknown, not refused) and takes appends again.
#[tokio::test]
async fn appends_and_reads_on_a_server_that_stopped_answering_are_answered_within_their_bounds() {
    with_fresh_database(|database| async move {
        drop(database.pool().await); // migrated
        let (proxy, pool, store) = store_through_proxy(&database).await;
        let mut stream = Stream::new("paused-server");
        store
            .append(request(vec![stream.next()]))
            .await
            .expect("an append while the server answers");

        proxy.pause(true);
        let started = Instant::now();
        let answer = store.append(request(vec![stream.next()])).await;
        let waited = started.elapsed();
        assert!(
            matches!(
                answer,
                Err(AppendError::Store(event_store::StoreError::OutcomeUnknown { .. }))
            ),
            "an append the writer holds is of unknown outcome: {answer:?}"
        );
        assert!(
            waited >= Duration::from_millis(PAUSED_APPEND_WAIT_MS)
                && waited < Duration::from_millis(3 * PAUSED_APPEND_WAIT_MS),
            "answered after its bound of {PAUSED_APPEND_WAIT_MS} ms, not before nor long after: {waited:?}"
        );

        let started = Instant::now();
        let read = store.read_stream(&stream.id, 0).await;
        let waited = started.elapsed();
        assert!(
            matches!(read, Err(event_store::StoreError::Unavailable(_))),
            "a read the server does not answer is unavailable: {read:?}"
        );
        assert!(
            waited < Duration::from_millis(3 * PAUSED_APPEND_WAIT_MS),
            "answered near its bound of {PAUSED_APPEND_WAIT_MS} ms: {waited:?}"
        );

        proxy.pause(false);
        let deadline = Instant::now() + Duration::from_millis(RESUMED_COMMIT_MS_MAX);
        loop {
            let stored = store.read_stream(&stream.id, 0).await.expect("read");
            if stored.len() == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the held append was committed once the server answered: {} events",
                stored.len()
            );
            tokio::time::sleep(Duration::from_millis(RESUMED_POLL_MS)).await;
        }
        store
            .append(request(vec![stream.next()]))
            .await
            .expect("the writer takes appends again");
        drop(store);
        pool.close().await;
    })
    .await;
}

/// A read given up at its bound on a connection gone silent for good (a
/// middlebox that lost its state, while new connections answer) leaves no
/// pool slot held: sqlx's check of the connection handed back waited for
/// it without end, so a pool of one stayed empty until the kernel gave the
/// socket up, about 15 minutes (tester h86). The pool's bounded check
/// closes it, and the next read gets a new connection.
#[tokio::test]
async fn a_read_given_up_on_a_silent_connection_leaves_no_pool_slot_held() {
    with_fresh_database(|database| async move {
        drop(database.pool().await); // migrated
        let url = with_database(&database.admin_url, &database.name);
        let options: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let proxy = PausableProxy::start((options.get_host().to_owned(), options.get_port())).await;
        assert!(url.contains(&upstream), "{url} names {upstream}");
        let through_proxy = url.replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
        let pool = postgres_support::connect_reads(&through_proxy, 1, 15_000)
            .await
            .expect("a pool of one connection through the proxy");
        sqlx::query("SELECT 1")
            .execute(&pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .expect("a read while the connection passes");

        proxy.freeze_after("pg_sleep");
        let given_up = sqlx::query("SELECT pg_sleep(0)")
            .execute(&pool)
            .within(PAUSED_APPEND_WAIT_MS)
            .await;
        assert!(given_up.is_err(), "{given_up:?}");

        let started = Instant::now();
        sqlx::query("SELECT 1")
            .execute(&pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .expect("the next read, on a new connection");
        assert!(
            started.elapsed()
                < Duration::from_millis(
                    postgres_support::RETURNED_CHECK_MS + PAUSED_APPEND_WAIT_MS
                ),
            "answered once the silent connection's check gave up: {:?}",
            started.elapsed()
        );
        pool.close().await;
    })
    .await;
}

/// What a relay reads is durable before it is handed on: under asynchronous
/// commit (as `scripts/infra.sh` runs PostgreSQL) a commit is visible before
/// its WAL is flushed, and an immediate shutdown loses it; the relay then
/// had published events the store no longer held (h113 F1). The read for the
/// relays flushes the WAL up to what it saw before it returns.
#[tokio::test]
async fn the_relays_read_returns_only_what_the_wal_has_flushed() {
    const ROUNDS: usize = 20;
    with_fresh_database(|database| async move {
        let pool = database.pool().await;
        let store = PostgresEventStore::connect(pool.clone())
            .await
            .expect("connect");
        let mut stream = Stream::new("flushed");
        let mut after = 0;
        for _ in 0..ROUNDS {
            let mut session = pool.acquire().await.expect("a session");
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut *session)
                .await
                .expect("asynchronous commit");
            store
                .append(request(vec![stream.next()]))
                .await
                .expect("append");
            let inserted: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
                .fetch_one(&mut *session)
                .await
                .expect("insert position");
            let read = store
                .read_all_stored(after, READ_ALL_BATCH_MAX)
                .await
                .expect("read");
            after = read.last().expect("the append").position;
            let flushed: bool =
                sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn")
                    .bind(&inserted)
                    .fetch_one(&mut *session)
                    .await
                    .expect("flush position");
            assert!(flushed, "the WAL up to {inserted} is flushed once read");
        }
    })
    .await;
}
