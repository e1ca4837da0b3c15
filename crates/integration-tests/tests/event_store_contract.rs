//! The `EventStore` contract, written once and run against every implementation:
//! the embedded store (always, in a temporary directory), PostgreSQL (when
//! `DATABASE_URL` is set, each test in a database of its own, dropped at the end)
//! and KurrentDB (when `KURRENTDB_URL` is set, each test in a stream namespace
//! of its own; otherwise one line says they were skipped).
//!
//! Each case is an async fn taking `&dyn EventStore` on an empty store; each
//! implementation is a [`Backend`]; the `contract!` macro at the bottom makes one
//! test per case and implementation.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use chrono::{DateTime, Utc};
use event_store::{
    AppendError, AppendRequest, EmbeddedEventStore, EventStore, HoldPageQuery, HoldVersions,
    IdempotentResponse, PostgresEventStore, RecordedEvent, SnapshotReplace, StreamAppend,
    StreamSnapshot, READ_ALL_BATCH_MAX,
};
use event_store_kurrentdb::{KurrentDbEventStore, StreamNames};
use integration_tests::{kurrentdb_url, require_env, unique_name};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::Connection;
use uuid::Uuid;
use wallet_domain::{
    decide, evolve, Amount, AsOf, Balance, Command, CommandKind, EventMetadata, HoldId, HoldStatus,
    OwnerId, WalletEvent, WalletId, WalletState,
};

/// Connections of the pool behind one PostgreSQL store under test.
const POOL_CONNECTIONS_MAX: u32 = 8;
/// Appenders racing for one stream version.
const CONCURRENT_APPENDERS: usize = 16;
/// Batch size of the paged reads, small so that a read spans many batches.
const PAGE_SIZE: usize = 7;
/// Bound on the pages of one full read of a test's log.
const PAGES_MAX: usize = 10_000;

// --- events, decided by the domain so the stores see real ones -------------

/// One wallet's stream as a writer sees it: its id and the state folded so far.
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

    fn version(&self) -> u64 {
        self.state.version()
    }

    /// The next event (a creation, then one-cent credits), not yet folded in.
    fn propose(&self) -> WalletEvent {
        self.propose_as(Uuid::new_v4())
    }

    /// [`Self::propose`] with `event_id` as the event's id.
    fn propose_as(&self, event_id: Uuid) -> WalletEvent {
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
            event_id,
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        decide(&self.state, &command).expect("decide").remove(0)
    }

    /// The append of the next event at the current version; the state moves on.
    fn next(&mut self) -> StreamAppend {
        self.next_as(Uuid::new_v4())
    }

    /// [`Self::next`] with `event_id` as the event's id.
    fn next_as(&mut self, event_id: Uuid) -> StreamAppend {
        let event = self.propose_as(event_id);
        let append = StreamAppend {
            wallet_id: self.id.clone(),
            expected_version: self.version(),
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

fn events_of(recorded: &[RecordedEvent]) -> Vec<WalletEvent> {
    recorded.iter().map(|event| event.event.clone()).collect()
}

/// The whole log, read in pages of `page_size` from `after_position`.
async fn read_pages(
    store: &dyn EventStore,
    after_position: u64,
    page_size: usize,
) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut checkpoint = after_position;
    for _ in 0..PAGES_MAX {
        let page = store
            .read_all(checkpoint, page_size)
            .await
            .expect("read_all");
        assert!(page.len() <= page_size, "a page holds at most its limit");
        let Some(last) = page.last() else {
            return all;
        };
        checkpoint = last.position;
        all.extend(page);
    }
    panic!("the log did not end within {PAGES_MAX} pages");
}

#[track_caller]
fn assert_strictly_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions increase: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

// --- the contract ------------------------------------------------------------

async fn appended_events_read_back_in_order(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    let create = w1.next();
    let credit = w1.next();
    let expected = vec![create.events[0].clone(), credit.events[0].clone()];
    let first = store
        .append(request(vec![create]))
        .await
        .expect("append create");
    let second = store
        .append(request(vec![credit]))
        .await
        .expect("append credit");
    assert!(first.last_position < second.last_position);

    let stream = store.read_stream(&w1.id, 0).await.expect("read_stream");
    assert_eq!(events_of(&stream), expected);
    let versions: Vec<u64> = stream.iter().map(|event| event.stream_version).collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(stream[1].position, second.last_position);
    assert_eq!(store.read_stream(&w1.id, 1).await.expect("tail").len(), 1);
    assert!(store
        .read_stream(&w1.id, 2)
        .await
        .expect("after the end")
        .is_empty());
    let other = WalletId::parse("unknown").expect("wallet id");
    assert!(store
        .read_stream(&other, 0)
        .await
        .expect("no stream")
        .is_empty());
    assert_eq!(
        store.head_position().await.expect("head"),
        second.last_position
    );
    assert_eq!(*store.appended().borrow(), second.last_position);
}

/// Whatever its kind of id: random (v4), derived from another (v5, the
/// transfer process's halves) or time-ordered (v7, every command's own).
async fn an_event_s_version_is_found_by_its_id(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    let mut w2 = Stream::new("w2");
    let derived = |name: &[u8]| Uuid::new_v5(&Uuid::NAMESPACE_OID, name);
    let ids = [
        Uuid::new_v4(),
        Uuid::now_v7(),
        derived(b"sent"),
        Uuid::now_v7(),
    ];
    for id in ids {
        store
            .append(request(vec![w1.next_as(id)]))
            .await
            .expect("append");
    }
    store
        .append(request(vec![w2.next_as(derived(b"received"))]))
        .await
        .expect("append");
    for (version, id) in (1u64..).zip(ids) {
        let found = store.version_of_event(&w1.id, id).await.expect("lookup");
        assert_eq!(found, Some(version), "event {id} of w1");
        let elsewhere = store.version_of_event(&w2.id, id).await.expect("lookup");
        assert_eq!(elsewhere, None, "event {id} is not w2's");
    }
    let received = store
        .version_of_event(&w2.id, derived(b"received"))
        .await
        .expect("lookup");
    assert_eq!(received, Some(1));
    for unknown in [Uuid::now_v7(), derived(b"reversed"), Uuid::new_v4()] {
        let found = store
            .version_of_event(&w1.id, unknown)
            .await
            .expect("lookup");
        assert_eq!(found, None, "event {unknown} was never stored");
    }
}

async fn a_bounded_stream_read_returns_only_its_versions(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    for _ in 0..10 {
        let append = w1.next();
        store.append(request(vec![append])).await.expect("append");
    }
    let versions = |events: Vec<RecordedEvent>| -> Vec<u64> {
        events.iter().map(|event| event.stream_version).collect()
    };
    let read = |after, up_to| store.read_stream_until(&w1.id, after, up_to);
    assert_eq!(
        versions(read(3, 7).await.expect("middle")),
        vec![4, 5, 6, 7]
    );
    assert_eq!(versions(read(0, 2).await.expect("head")), vec![1, 2]);
    assert_eq!(
        versions(read(8, 100).await.expect("past the end")),
        vec![9, 10]
    );
    assert_eq!(
        versions(read(0, u64::MAX).await.expect("whole")),
        (1..=10).collect::<Vec<_>>()
    );
    assert!(read(0, 0).await.expect("nothing").is_empty());
    assert!(read(5, 5).await.expect("empty range").is_empty());
    assert!(read(7, 3).await.expect("reversed range").is_empty());
    assert_eq!(
        events_of(&read(0, 10).await.expect("whole")),
        events_of(&store.read_stream(&w1.id, 0).await.expect("read_stream"))
    );
}

async fn a_stale_expected_version_is_a_conflict_and_stores_nothing(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    let stale = Stream::new("w1").next();
    store
        .append(request(vec![w1.next()]))
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");

    let error = store
        .append(request(vec![stale]))
        .await
        .expect_err("a second create must conflict");
    assert!(
        matches!(
            &error,
            AppendError::VersionConflict { wallet_id, expected: 0, actual: 1 } if *wallet_id == w1.id
        ),
        "{error:?}"
    );
    let mut ahead = w1.next();
    ahead.expected_version = 5;
    let error = store
        .append(request(vec![ahead]))
        .await
        .expect_err("an expectation ahead of the stream must conflict");
    assert!(
        matches!(
            error,
            AppendError::VersionConflict {
                expected: 5,
                actual: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.read_stream(&w1.id, 0).await.expect("read").len(), 1);
    assert_eq!(store.head_position().await.expect("head"), head);
}

async fn a_multi_stream_append_is_all_or_nothing(store: &dyn EventStore) {
    let (mut w1, mut w2) = (Stream::new("w1"), Stream::new("w2"));
    store
        .append(request(vec![w1.next()]))
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");

    let stale = w2.propose();
    let refused = request(vec![
        Stream::new("w1").next(), // w1 is at 1, not 0
        StreamAppend {
            wallet_id: w2.id.clone(),
            expected_version: 0,
            expected_last_event_id: None,
            events: vec![stale],
        },
    ]);
    let error = store
        .append(refused)
        .await
        .expect_err("first stream is stale");
    assert!(
        matches!(error, AppendError::VersionConflict { .. }),
        "{error:?}"
    );
    let mut refused_second = request(vec![w1.next(), w2.next()]);
    refused_second.streams[1].expected_version = 3;
    let error = store
        .append(refused_second)
        .await
        .expect_err("second stream is stale");
    assert!(
        matches!(error, AppendError::VersionConflict { .. }),
        "{error:?}"
    );
    assert_eq!(store.read_stream(&w1.id, 0).await.expect("read").len(), 1);
    assert!(store.read_stream(&w2.id, 0).await.expect("read").is_empty());
    assert_eq!(store.head_position().await.expect("head"), head);

    // The same two streams at their right versions are stored together.
    let (mut w1, mut w2) = (Stream::new("w1"), Stream::new("w2"));
    w1.next();
    let both = request(vec![w1.next(), w2.next()]);
    let outcome = store.append(both).await.expect("append both");
    let w1_events = store.read_stream(&w1.id, 0).await.expect("read");
    let w2_events = store.read_stream(&w2.id, 0).await.expect("read");
    assert_eq!((w1_events.len(), w2_events.len()), (2, 1));
    assert_eq!(outcome.last_position, w2_events[0].position);
    assert!(w1_events[1].position < w2_events[0].position);
}

async fn an_idempotency_key_is_stored_with_the_events_and_taken_once(store: &dyn EventStore) {
    let (mut w1, mut w2) = (Stream::new("w1"), Stream::new("w2"));
    let response = IdempotentResponse {
        key: "key-1".into(),
        request_fingerprint: "POST /wallets sha256:abc".into(),
        status: 201,
        body: r#"{"id":"w1","balance":"100.00"}"#.into(),
    };
    assert_eq!(
        store.find_idempotent_response("key-1").await.expect("find"),
        None
    );
    let mut first = request(vec![w1.next()]);
    first.idempotent_response = Some(response.clone());
    store.append(first).await.expect("append");
    assert_eq!(
        store.find_idempotent_response("key-1").await.expect("find"),
        Some(response.clone())
    );
    let head = store.head_position().await.expect("head");

    let mut reuse = request(vec![w2.next()]);
    reuse.idempotent_response = Some(IdempotentResponse {
        request_fingerprint: "another request".into(),
        ..response.clone()
    });
    let error = store.append(reuse).await.expect_err("key reused");
    assert!(
        matches!(&error, AppendError::IdempotencyKeyTaken(key) if key == "key-1"),
        "{error:?}"
    );
    assert!(
        store.read_stream(&w2.id, 0).await.expect("read").is_empty(),
        "a refused append stores nothing"
    );
    assert_eq!(store.head_position().await.expect("head"), head);
    assert_eq!(
        store.find_idempotent_response("key-1").await.expect("find"),
        Some(response),
        "the first response is kept"
    );

    // A refused append does not keep its key either.
    let mut stale = request(vec![Stream::new("w1").next()]);
    stale.idempotent_response = Some(IdempotentResponse {
        key: "key-2".into(),
        request_fingerprint: "f".into(),
        status: 200,
        body: "{}".into(),
    });
    store.append(stale).await.expect_err("stale");
    assert_eq!(
        store.find_idempotent_response("key-2").await.expect("find"),
        None
    );
}

async fn expired_idempotent_responses_are_purged_in_bounded_batches(store: &dyn EventStore) {
    const KEYS: usize = 5;
    const BATCH_MAX: usize = 2;
    for index in 0..KEYS {
        let mut append = request(vec![Stream::new(&format!("w{index}")).next()]);
        append.idempotent_response = Some(IdempotentResponse {
            key: format!("key-{index}"),
            request_fingerprint: "f".into(),
            status: 201,
            body: "{}".into(),
        });
        store.append(append).await.expect("append");
    }
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        store
            .purge_idempotent_responses(an_hour_ago, BATCH_MAX)
            .await
            .expect("purge"),
        0,
        "nothing is an hour old"
    );
    let later = Utc::now() + chrono::Duration::seconds(5);
    let mut batches = Vec::new();
    for _ in 0..KEYS {
        let deleted = store
            .purge_idempotent_responses(later, BATCH_MAX)
            .await
            .expect("purge");
        if deleted == 0 {
            break;
        }
        batches.push(deleted);
    }
    assert_eq!(batches, [2, 2, 1], "bounded batches, then nothing");
    assert_eq!(
        store.find_idempotent_response("key-3").await.expect("find"),
        None
    );
    let mut again = request(vec![Stream::new("again").next()]);
    again.idempotent_response = Some(IdempotentResponse {
        key: "key-3".into(),
        request_fingerprint: "another".into(),
        status: 201,
        body: "{}".into(),
    });
    store
        .append(again)
        .await
        .expect("a purged key serves again");
    assert_eq!(
        store
            .read_stream(&WalletId::parse("w3").expect("id"), 0)
            .await
            .expect("read")
            .len(),
        1,
        "the events stay"
    );
}

async fn concurrent_appenders_to_one_stream_exactly_one_wins(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    store
        .append(request(vec![w1.next()]))
        .await
        .expect("append");
    let contenders =
        (0..CONCURRENT_APPENDERS).map(|_| store.append(request(vec![w1.next_alternative()])));
    let outcomes = futures::future::join_all(contenders).await;
    let winners = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|outcome| matches!(
            outcome,
            Ok(_)
                | Err(AppendError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                })
        )),
        "every loser is told the stream moved on: {outcomes:?}"
    );
    assert_eq!(store.read_stream(&w1.id, 0).await.expect("read").len(), 2);
}

/// Appends racing with one idempotency key, beside appends with none (a
/// store that commits them in one group must refuse only the key's losers).
async fn concurrent_appends_sharing_a_key_store_exactly_one_of_them(store: &dyn EventStore) {
    let keyed = (0..CONCURRENT_APPENDERS).map(|index| {
        let mut append = request(vec![Stream::new(&format!("keyed-{index}")).next()]);
        append.idempotent_response = Some(IdempotentResponse {
            key: "shared".into(),
            request_fingerprint: format!("request {index}"),
            status: 201,
            body: "{}".into(),
        });
        store.append(append)
    });
    let free = (0..CONCURRENT_APPENDERS)
        .map(|index| store.append(request(vec![Stream::new(&format!("free-{index}")).next()])));
    let (keyed, free) = futures::future::join(
        futures::future::join_all(keyed),
        futures::future::join_all(free),
    )
    .await;
    assert_eq!(
        keyed.iter().filter(|outcome| outcome.is_ok()).count(),
        1,
        "{keyed:?}"
    );
    assert!(
        keyed.iter().all(|outcome| matches!(
            outcome,
            Ok(_) | Err(AppendError::IdempotencyKeyTaken(_))
        ) && !matches!(outcome, Err(AppendError::IdempotencyKeyTaken(key)) if key != "shared")),
        "every other append with the key is refused for it: {keyed:?}"
    );
    assert!(free.iter().all(Result::is_ok), "{free:?}");
    let log = read_pages(store, 0, PAGE_SIZE).await;
    assert_eq!(
        log.len(),
        1 + CONCURRENT_APPENDERS,
        "only the winner and the free appends are stored"
    );
    assert_strictly_increasing(&log);
    let winner = keyed.iter().position(Result::is_ok).expect("one winner");
    let stored = store
        .find_idempotent_response("shared")
        .await
        .expect("find")
        .expect("the winner's response is stored");
    assert_eq!(stored.request_fingerprint, format!("request {winner}"));
}

/// Appenders racing for one stream version among appends whose key is
/// already taken (a store that commits them in one group and then appends one
/// by one must still move the stream on past its winner only).
async fn racing_appenders_beside_a_taken_key_keep_one_winner(store: &dyn EventStore) {
    let with_taken_key = |wallet: &str| {
        let mut append = request(vec![Stream::new(wallet).next()]);
        append.idempotent_response = Some(IdempotentResponse {
            key: "taken".into(),
            request_fingerprint: wallet.into(),
            status: 201,
            body: "{}".into(),
        });
        append
    };
    store
        .append(with_taken_key("first"))
        .await
        .expect("the key is free");
    let mut w1 = Stream::new("w1");
    store
        .append(request(vec![w1.next()]))
        .await
        .expect("append");
    let contenders = (0..CONCURRENT_APPENDERS).flat_map(|index| {
        [
            store.append(request(vec![w1.next_alternative()])),
            store.append(with_taken_key(&format!("late-{index}"))),
        ]
    });
    let outcomes = futures::future::join_all(contenders).await;
    let (racing, keyed): (Vec<_>, Vec<_>) = outcomes
        .iter()
        .enumerate()
        .partition(|(index, _)| index % 2 == 0);
    assert_eq!(
        racing.iter().filter(|(_, outcome)| outcome.is_ok()).count(),
        1,
        "{racing:?}"
    );
    assert!(
        racing.iter().all(|(_, outcome)| matches!(
            outcome,
            Ok(_)
                | Err(AppendError::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                })
        )),
        "every loser is told the stream moved on: {racing:?}"
    );
    assert!(
        keyed.iter().all(|(_, outcome)| matches!(
            outcome,
            Err(AppendError::IdempotencyKeyTaken(key)) if key == "taken"
        )),
        "{keyed:?}"
    );
    assert_eq!(store.read_stream(&w1.id, 0).await.expect("read").len(), 2);
}

impl Stream {
    /// Another candidate for the next version, leaving the state where it is.
    fn next_alternative(&self) -> StreamAppend {
        StreamAppend {
            wallet_id: self.id.clone(),
            expected_version: self.version(),
            expected_last_event_id: None,
            events: vec![self.propose()],
        }
    }
}

async fn read_all_returns_global_order_without_gaps_in_bounded_batches(store: &dyn EventStore) {
    const WALLETS: usize = 5;
    const ROUNDS: usize = 5;
    let mut streams: Vec<Stream> = (0..WALLETS)
        .map(|index| Stream::new(&format!("w{index}")))
        .collect();
    let mut appended = Vec::new();
    for _ in 0..ROUNDS {
        for stream in &mut streams {
            let append = stream.next();
            appended.push(append.events[0].event_id);
            store.append(request(vec![append])).await.expect("append");
        }
    }

    let log = read_pages(store, 0, PAGE_SIZE).await;
    assert_strictly_increasing(&log);
    let read: Vec<Uuid> = log.iter().map(|event| event.event.event_id).collect();
    assert_eq!(read, appended, "every event once, in append order");
    assert_eq!(
        log.last().map(|event| event.position),
        Some(store.head_position().await.expect("head"))
    );
    let whole = store
        .read_all(0, READ_ALL_BATCH_MAX)
        .await
        .expect("one batch");
    assert_eq!(whole, log, "paging changes nothing");
    assert!(store.read_all(0, 0).await.expect("empty batch").is_empty());
}

/// What the relay reads: the log as stored, the same events as `read_all`
/// (each stored form decodes to the event read), with its envelope fields.
async fn read_all_stored_is_the_log_as_stored(store: &dyn EventStore) {
    const ROUNDS: usize = 3;
    let mut streams = [Stream::new("w0"), Stream::new("w1")];
    for _ in 0..ROUNDS {
        for stream in &mut streams {
            store
                .append(request(vec![stream.next()]))
                .await
                .expect("append");
        }
    }

    let decoded = store
        .read_all(0, READ_ALL_BATCH_MAX)
        .await
        .expect("read_all");
    let stored = store
        .read_all_stored(0, READ_ALL_BATCH_MAX)
        .await
        .expect("read_all_stored");
    assert_eq!(stored.len(), decoded.len());
    for (stored, recorded) in stored.iter().zip(&decoded) {
        assert_eq!(&stored.decode().expect("decodes"), recorded);
        let header = stored.header().expect("envelope fields");
        assert_eq!(header.event_id, recorded.event.event_id);
        assert_eq!(header.wallet_id, recorded.event.wallet_id.as_str());
        assert_eq!(header.event_type, recorded.event.type_name());
    }
    let after = decoded[1].position;
    let rest = store
        .read_all_stored(after, 2)
        .await
        .expect("a bounded page");
    assert_eq!(
        rest.iter().map(|event| event.position).collect::<Vec<_>>(),
        decoded[2..4]
            .iter()
            .map(|event| event.position)
            .collect::<Vec<_>>(),
        "from a checkpoint, bounded"
    );
}

async fn a_multi_stream_append_lands_in_the_log_as_one_block(store: &dyn EventStore) {
    let (mut w1, mut w2, mut w3) = (Stream::new("w1"), Stream::new("w2"), Stream::new("w3"));
    let mut appended = Vec::new();
    for stream in [&mut w1, &mut w2, &mut w3] {
        let append = stream.next();
        appended.push(append.events[0].event_id);
        store.append(request(vec![append])).await.expect("append");
    }
    let pair = request(vec![w3.next(), w1.next()]);
    appended.extend(pair.streams.iter().map(|stream| stream.events[0].event_id));
    let outcome = store.append(pair).await.expect("append pair");
    let after = w2.next();
    appended.push(after.events[0].event_id);
    store.append(request(vec![after])).await.expect("append");

    let log = read_pages(store, 0, 2).await;
    assert_strictly_increasing(&log);
    let read: Vec<Uuid> = log.iter().map(|event| event.event.event_id).collect();
    assert_eq!(
        read, appended,
        "the pair is one block, in the order of its streams"
    );
    assert_eq!(log[4].position, outcome.last_position);
}

/// For a store that cannot write several streams atomically: such an append
/// is refused whole (never half written), and one-stream appends go on.
async fn a_multi_stream_append_is_refused_whole(store: &dyn EventStore) {
    let (mut w1, mut w2) = (Stream::new("w1"), Stream::new("w2"));
    store
        .append(request(vec![w1.next()]))
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");
    let mut transfer = request(vec![w1.next(), w2.next()]);
    transfer.idempotent_response = Some(IdempotentResponse {
        key: "transfer-key".into(),
        request_fingerprint: "f".into(),
        status: 201,
        body: "{}".into(),
    });
    let error = store
        .append(transfer)
        .await
        .expect_err("a two-stream append is refused");
    assert!(matches!(error, AppendError::Store(_)), "{error:?}");
    assert_eq!(store.read_stream(&w1.id, 0).await.expect("read").len(), 1);
    assert!(store.read_stream(&w2.id, 0).await.expect("read").is_empty());
    assert_eq!(store.head_position().await.expect("head"), head);
    assert_eq!(
        store
            .find_idempotent_response("transfer-key")
            .await
            .expect("find"),
        None
    );
}

async fn read_all_never_returns_more_than_its_batch_max(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    let events: Vec<WalletEvent> = (0..=READ_ALL_BATCH_MAX)
        .flat_map(|_| w1.next().events)
        .collect();
    let one_append = request(vec![StreamAppend {
        wallet_id: w1.id.clone(),
        expected_version: 0,
        expected_last_event_id: None,
        events: events.clone(),
    }]);
    store.append(one_append).await.expect("append many");
    let batch = store.read_all(0, usize::MAX).await.expect("read_all");
    assert_eq!(batch.len(), READ_ALL_BATCH_MAX);
    let log = read_pages(store, 0, READ_ALL_BATCH_MAX).await;
    assert_eq!(events_of(&log), events);
    assert_eq!(
        log.iter()
            .map(|event| event.stream_version)
            .collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
}

async fn a_reader_resumes_from_its_checkpoint(store: &dyn EventStore) {
    let mut w1 = Stream::new("w1");
    for _ in 0..3 {
        store
            .append(request(vec![w1.next()]))
            .await
            .expect("append");
    }
    let seen = read_pages(store, 0, PAGE_SIZE).await;
    let checkpoint = seen.last().expect("three events").position;
    assert!(store
        .read_all(checkpoint, PAGE_SIZE)
        .await
        .expect("read")
        .is_empty());

    let mut w2 = Stream::new("w2");
    let later = [w2.next(), w1.next()];
    let later_ids: Vec<Uuid> = later
        .iter()
        .map(|append| append.events[0].event_id)
        .collect();
    for append in later {
        store.append(request(vec![append])).await.expect("append");
    }
    let resumed = read_pages(store, checkpoint, PAGE_SIZE).await;
    assert_eq!(
        resumed
            .iter()
            .map(|event| event.event.event_id)
            .collect::<Vec<_>>(),
        later_ids,
        "exactly the events after the checkpoint"
    );
    assert!(resumed.iter().all(|event| event.position > checkpoint));
    let seen_ids: HashSet<Uuid> = seen.iter().map(|event| event.event.event_id).collect();
    assert!(resumed
        .iter()
        .all(|event| !seen_ids.contains(&event.event.event_id)));
}

// --- the implementations ------------------------------------------------------

/// One implementation under test: an empty store for one case, and its cleanup.
trait Backend: Sized {
    /// `None` (after saying why) when the implementation's server is not configured.
    async fn start() -> Option<Self>;
    fn store(&self) -> &dyn EventStore;
    /// Cleans up whatever the case's outcome, then passes a failure on.
    async fn finish(self, outcome: std::thread::Result<()>) {
        drop(self);
        pass_on(outcome);
    }
}

/// Fails the test with the case's own panic, if it had one.
fn pass_on(outcome: std::thread::Result<()>) {
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// An empty embedded store in a temporary directory (kept alive with the store).
struct EmbeddedBackend {
    _directory: tempfile::TempDir,
    store: EmbeddedEventStore,
}

impl Backend for EmbeddedBackend {
    async fn start() -> Option<Self> {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedEventStore::open(directory.path()).expect("open the embedded store");
        assert_eq!(store.kind(), "embedded");
        Some(Self {
            _directory: directory,
            store,
        })
    }

    fn store(&self) -> &dyn EventStore {
        &self.store
    }
}

/// A database of its own for one test, created through the admin connection of
/// `DATABASE_URL` and migrated by `postgres_support::connect`.
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

    fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    async fn pool(&self) -> PgPool {
        postgres_support::connect(&self.url(), POOL_CONNECTIONS_MAX)
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

/// An empty PostgreSQL store on a database of its own, or `None` (after the
/// skip line) when `DATABASE_URL` is unset.
struct PostgresBackend {
    database: TestDatabase,
    pool: PgPool,
    store: PostgresEventStore,
}

impl Backend for PostgresBackend {
    async fn start() -> Option<Self> {
        let url = require_env("DATABASE_URL")?;
        let database = TestDatabase::create(&url).await;
        let pool = database.pool().await;
        let store = PostgresEventStore::connect(pool.clone())
            .await
            .expect("connect the PostgreSQL store");
        assert_eq!(store.kind(), "postgres");
        Some(Self {
            database,
            pool,
            store,
        })
    }

    fn store(&self) -> &dyn EventStore {
        &self.store
    }

    /// Drops the database whatever the case's outcome, then passes a failure on.
    async fn finish(self, outcome: std::thread::Result<()>) {
        drop(self.store);
        self.pool.close().await;
        self.database.drop_database().await;
        pass_on(outcome);
    }
}

/// Says once per test run why the KurrentDB cases did not run.
static KURRENTDB_SKIP_NOTICE: Once = Once::new();

/// An empty KurrentDB store: a namespace of streams no earlier run used, on
/// the server of `KURRENTDB_URL` (KurrentDB cannot be emptied, and its streams
/// are left behind); see [`kurrentdb_url`] for when it is skipped.
struct KurrentDbBackend {
    store: KurrentDbEventStore,
}

impl Backend for KurrentDbBackend {
    async fn start() -> Option<Self> {
        let url = kurrentdb_url(
            &KURRENTDB_SKIP_NOTICE,
            "the KurrentDB event store contract cases",
        )?;
        let names = StreamNames::namespaced(&unique_name("contract"));
        let store = KurrentDbEventStore::connect_with_names(&url, names)
            .await
            .expect("connect to the KurrentDB of KURRENTDB_URL");
        assert_eq!(store.kind(), "kurrentdb");
        Some(Self { store })
    }

    fn store(&self) -> &dyn EventStore {
        &self.store
    }
}

/// The events of `kind` decided on `stream`'s state at `issued_at`, folded in.
fn decided(
    stream: &mut Stream,
    kind: CommandKind,
    issued_at: chrono::DateTime<Utc>,
) -> StreamAppend {
    let command = Command {
        wallet_id: stream.id.clone(),
        kind,
        event_id: Uuid::new_v4(),
        issued_at,
        metadata: EventMetadata::default(),
    };
    let events = decide(&stream.state, &command).expect("decide");
    let append = StreamAppend {
        wallet_id: stream.id.clone(),
        expected_version: stream.version(),
        expected_last_event_id: None,
        events: events.clone(),
    };
    stream.state = events
        .iter()
        .fold(std::mem::take(&mut stream.state), evolve);
    append
}

async fn a_hold_id_is_entered_once_across_wallets_and_listed_while_due(store: &dyn EventStore) {
    let hold_id = HoldId::parse("hold-1").expect("hold id");
    let place = |expires_at| CommandKind::PlaceHold {
        hold_id: hold_id.clone(),
        amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
        expires_at,
        description: None,
    };
    let now = Utc::now();
    let soon = now + chrono::Duration::minutes(1);
    // Due from the millisecond its expiry is kept at (rounded up).
    let due_at = soon + chrono::Duration::milliseconds(1);
    let (mut first, mut second) = (Stream::new("hold-w1"), Stream::new("hold-w2"));
    for stream in [&mut first, &mut second] {
        let created = stream.next();
        store.append(request(vec![created])).await.expect("create");
    }
    let placed = decided(&mut first, place(Some(soon)), now);
    store.append(request(vec![placed])).await.expect("place");
    let again = decided(&mut second, place(None), now);
    let refused = store.append(request(vec![again])).await;
    assert!(
        matches!(&refused, Err(AppendError::HoldIdTaken(id)) if *id == hold_id),
        "{refused:?}"
    );
    assert_eq!(
        store.read_stream(&second.id, 0).await.expect("read").len(),
        1,
        "the refused append stored nothing"
    );
    assert_eq!(
        store.find_hold_wallet(&hold_id).await.expect("find"),
        Some(first.id.clone())
    );
    let other = HoldId::parse("hold-2").expect("hold id");
    assert_eq!(store.find_hold_wallet(&other).await.expect("find"), None);
    assert_eq!(store.hold_versions(&other).await.expect("versions"), None);
    let placed_at = first.version();
    assert_hold_versions(store, &hold_id, placed_at, None).await;
    assert!(store.due_holds(now, 10).await.expect("due").is_empty());
    let due = store.due_holds(due_at, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((&due[0].hold_id, &due[0].wallet_id), (&hold_id, &first.id));
    let voided = decided(
        &mut first,
        CommandKind::VoidHold {
            hold_id: hold_id.clone(),
        },
        now,
    );
    store.append(request(vec![voided])).await.expect("void");
    assert!(store.due_holds(due_at, 10).await.expect("due").is_empty());
    assert_hold_versions(store, &hold_id, placed_at, Some(first.version())).await;
}

/// A wallet's holds are listed from the hold directory oldest first, by
/// when they were placed and then by hold id in byte order (three placed in
/// one millisecond), each filter counting all it matches: settled ones by
/// what they became, pending ones by their expiry as of the query's clock.
/// KurrentDB keeps no such directory: `None`, its readers fold the stream.
async fn a_wallets_holds_are_listed_by_placement_then_id(store: &dyn EventStore) {
    let hold = |raw: &str| HoldId::parse(raw).expect("hold id");
    let place = |raw: &str, expires_at| CommandKind::PlaceHold {
        hold_id: hold(raw),
        amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
        expires_at,
        description: None,
    };
    let now = wallet_domain::issued_at(Utc::now());
    let later = |milliseconds| now + chrono::Duration::milliseconds(milliseconds);
    let mut wallet = Stream::new("listed-w");
    let created = wallet.next();
    store.append(request(vec![created])).await.expect("create");
    for (kind, at) in [
        (place("b", None), now),
        (place("a", None), now),
        (place("B", None), now),
        (place("c", None), later(1)),
        (place("d", Some(later(60_000))), later(2)),
        (CommandKind::VoidHold { hold_id: hold("b") }, later(3)),
        (
            CommandKind::CaptureHold {
                hold_id: hold("a"),
                amount: None,
                to_wallet_id: None,
                description: None,
            },
            later(4),
        ),
    ] {
        let append = decided(&mut wallet, kind, at);
        store.append(request(vec![append])).await.expect("hold");
    }
    let after_expiry = later(120_000);
    for (status, clock, offset, limit, count, expected) in [
        (None, now, 0, 50, 5, vec!["B", "a", "b", "c", "d"]),
        (None, now, 1, 2, 5, vec!["a", "b"]),
        (None, now, 5, 50, 5, vec![]),
        (Some(HoldStatus::Voided), now, 0, 50, 1, vec!["b"]),
        (Some(HoldStatus::Captured), now, 0, 50, 1, vec!["a"]),
        (
            Some(HoldStatus::Pending),
            now,
            0,
            50,
            3,
            vec!["B", "c", "d"],
        ),
        (Some(HoldStatus::Expired), now, 0, 50, 0, vec![]),
        (
            Some(HoldStatus::Pending),
            after_expiry,
            0,
            50,
            2,
            vec!["B", "c"],
        ),
        (Some(HoldStatus::Expired), after_expiry, 0, 50, 1, vec!["d"]),
    ] {
        let query = HoldPageQuery {
            status,
            clock,
            offset,
            limit,
        };
        let page = store.hold_page(&wallet.id, &query).await.expect("listed");
        if store.kind() == "kurrentdb" {
            assert_eq!(page, None, "{query:?}");
            continue;
        }
        let page = page.expect("a directory page");
        let ids: Vec<_> = page
            .holds
            .iter()
            .map(|listed| listed.hold_id.as_str())
            .collect();
        assert_eq!((page.count, ids), (count, expected), "{query:?}");
    }
    if store.kind() != "kurrentdb" {
        let every = HoldPageQuery {
            status: None,
            clock: now,
            offset: 0,
            limit: 50,
        };
        let page = store.hold_page(&wallet.id, &every).await.expect("listed");
        let versions: Vec<_> = page
            .expect("a directory page")
            .holds
            .iter()
            .map(|listed| listed.versions)
            .collect();
        let placed = |placed, settled| HoldVersions { placed, settled };
        assert_eq!(
            versions,
            [
                placed(4, None),
                placed(3, Some(8)),
                placed(2, Some(7)),
                placed(5, None),
                placed(6, None),
            ]
        );
        let unknown = WalletId::parse("listed-never").expect("wallet id");
        let none = store.hold_page(&unknown, &every).await.expect("listed");
        assert_eq!(none, Some(event_store::HoldPage::default()));
    }
}

/// The hold directory gives `hold_id`'s placement at `placed` and its
/// settlement at `settled`; KurrentDB's keeps no versions (`None`, the
/// trait's default: its readers search the stream).
async fn assert_hold_versions(
    store: &dyn EventStore,
    hold_id: &HoldId,
    placed: u64,
    settled: Option<u64>,
) {
    let versions = store.hold_versions(hold_id).await.expect("versions");
    let expected = (store.kind() != "kurrentdb").then_some(HoldVersions { placed, settled });
    assert_eq!(versions, expected, "{} store", store.kind());
}

async fn a_snapshot_replaces_an_older_one_or_an_unusable_one(store: &dyn EventStore) {
    let id = WalletId::parse("snapshotted").expect("wallet id");
    let snapshot = |version, state: &str| StreamSnapshot {
        wallet_id: id.clone(),
        version,
        last_event_id: Uuid::new_v4(),
        occurred_at: Some(Utc::now()),
        state: state.to_owned(),
    };
    let save = |snapshot: StreamSnapshot, replace| async move {
        store.save_snapshot(snapshot, replace).await.expect("save");
    };
    let stored = || async { store.read_snapshot(&id).await.expect("read") };
    assert_eq!(stored().await, None);
    let first = snapshot(100, "at 100");
    save(first.clone(), SnapshotReplace::OlderOrSame).await;
    assert_eq!(stored().await, Some(first));
    let again = snapshot(100, "again at 100");
    save(again.clone(), SnapshotReplace::OlderOrSame).await;
    assert_eq!(
        stored().await,
        Some(again),
        "one at the same version replaces it"
    );
    let newer = snapshot(200, "at 200");
    save(newer.clone(), SnapshotReplace::OlderOrSame).await;
    save(snapshot(150, "at 150"), SnapshotReplace::OlderOrSame).await;
    assert_eq!(
        stored().await,
        Some(newer),
        "an older one written late does not replace it"
    );
    // Its reader found the one at 200 unusable (one past the stream's head,
    // say: h132 F1): the one it folded replaces it.
    let over_unusable = snapshot(120, "at 120, over an unusable one");
    save(
        over_unusable.clone(),
        SnapshotReplace::Unusable { version: 200 },
    )
    .await;
    assert_eq!(
        stored().await,
        Some(over_unusable),
        "one over an unusable one replaces it whatever its version"
    );
    let other = WalletId::parse("not-snapshotted").expect("wallet id");
    assert_eq!(store.read_snapshot(&other).await.expect("read"), None);
}

/// The SQL stores keep every snapshot a stream had and find the nearest
/// before a version or a time (issue 13: reads as of a moment flat in a
/// stream's length); KurrentDB keeps its newest two and finds none.
async fn every_snapshot_is_found_by_version_and_by_time(store: &dyn EventStore) {
    let id = WalletId::parse("snapshot-history").expect("wallet id");
    let start = Utc::now();
    let second = |seconds| start + chrono::Duration::seconds(seconds);
    let snapshot = |version, occurred_at| StreamSnapshot {
        wallet_id: id.clone(),
        version,
        last_event_id: Uuid::new_v4(),
        occurred_at,
        state: format!("at {version}"),
    };
    let saved = [
        snapshot(100, Some(second(1))),
        snapshot(300, Some(second(3))),
        snapshot(200, Some(second(2))),
        // Kept from before times were: found by version only.
        snapshot(250, None),
        // Two at one time: the later version is the nearest.
        snapshot(400, Some(second(4))),
        snapshot(401, Some(second(4))),
    ];
    for each in &saved {
        store
            .save_snapshot(each.clone(), SnapshotReplace::OlderOrSame)
            .await
            .expect("save");
    }
    let id = &id;
    let found = |as_of| async move {
        store
            .read_snapshot_as_of(id, as_of)
            .await
            .expect("read")
            .map(|found| found.version)
    };
    let newest = || async move {
        store
            .read_snapshot(id)
            .await
            .expect("read")
            .map(|newest| newest.version)
    };
    let keeps_history = store.kind() != "kurrentdb";
    let expected = |version: u64| keeps_history.then_some(version);
    for (as_of, nearest) in [
        (AsOf::Version(99), None),
        (AsOf::Version(100), expected(100)),
        (AsOf::Version(199), expected(100)),
        (AsOf::Version(260), expected(250)),
        (AsOf::Version(u64::MAX), expected(401)),
        (AsOf::Time(second(0)), None),
        (AsOf::Time(second(1)), expected(100)),
        (
            AsOf::Time(second(3) - chrono::Duration::nanoseconds(1)),
            expected(200),
        ),
        (AsOf::Time(second(4)), expected(401)),
        (AsOf::Time(DateTime::<Utc>::MAX_UTC), expected(401)),
        (AsOf::Time(DateTime::<Utc>::MIN_UTC), None),
    ] {
        assert_eq!(found(as_of).await, nearest, "{as_of:?} on {}", store.kind());
    }
    if keeps_history {
        let read = store
            .read_snapshot_as_of(id, AsOf::Version(300))
            .await
            .expect("read");
        assert_eq!(read.as_ref(), Some(&saved[1]), "read back as saved");
    }
    assert_eq!(newest().await, Some(401));
    // Over an unusable newest one, it and every one above the one saved
    // go; the history below stays (tester h164 F1).
    store
        .save_snapshot(
            snapshot(150, Some(second(5))),
            SnapshotReplace::Unusable { version: 401 },
        )
        .await
        .expect("save");
    assert_eq!(found(AsOf::Version(u64::MAX)).await, expected(150));
    assert_eq!(found(AsOf::Version(149)).await, expected(100));
    assert_eq!(found(AsOf::Time(second(4))).await, expected(100));
    assert_eq!(newest().await, Some(150));
}

/// A large snapshot stays in the SQL stores' history only as often as its
/// size allows (`SNAPSHOT_HISTORY_BYTES_PER_EVENT`, tester h164 F2): one of
/// 10,000 bytes saved every 100 events is kept about every 200, and a read
/// as of any version still finds one not far below it.
async fn a_large_snapshot_is_kept_in_the_history_only_as_often_as_it_pays_for(
    store: &dyn EventStore,
) {
    const STATE_BYTES: u64 = 10_000;
    let id = WalletId::parse("snapshot-large").expect("wallet id");
    let versions: Vec<u64> = (1..=20).map(|n| n * 100).collect();
    for &version in &versions {
        let snapshot = StreamSnapshot {
            wallet_id: id.clone(),
            version,
            last_event_id: Uuid::new_v4(),
            occurred_at: Some(Utc::now()),
            state: "x".repeat(usize::try_from(STATE_BYTES).expect("size")),
        };
        store
            .save_snapshot(snapshot, SnapshotReplace::OlderOrSame)
            .await
            .expect("save");
    }
    let newest = store.read_snapshot(&id).await.expect("read");
    assert_eq!(newest.map(|newest| newest.version), Some(2_000));
    if store.kind() == "kurrentdb" {
        return;
    }
    let gap_max = 2 * STATE_BYTES.div_ceil(event_store::SNAPSHOT_HISTORY_BYTES_PER_EVENT);
    let mut kept = HashSet::new();
    for &version in &versions {
        let found = store
            .read_snapshot_as_of(&id, AsOf::Version(version))
            .await
            .expect("read")
            .map(|found| found.version)
            .expect("one at or below");
        assert!(
            found <= version && version - found < gap_max,
            "{version}: found {found}"
        );
        kept.insert(found);
    }
    assert!(kept.len() <= versions.len() / 2 + 1, "kept {kept:?}");
}

/// One test per case on one implementation, in module `$module`.
macro_rules! cases_on {
    ($backend:ident, $module:ident: $($case:ident),* $(,)?) => {
        mod $module {
            use futures::FutureExt;

            use super::Backend;

            $(
                #[tokio::test]
                async fn $case() {
                    let Some(backend) = super::$backend::start().await else {
                        return;
                    };
                    let outcome = super::AssertUnwindSafe(super::$case(backend.store()))
                        .catch_unwind()
                        .await;
                    backend.finish(outcome).await;
                }
            )*
        }
    };
}

/// The same case functions on every implementation: `every_store` everywhere,
/// `atomic_multi_stream` where several streams are written in one atomic
/// append, `one_stream_at_a_time` where such an append is refused instead,
/// `expiring_keys` where idempotent responses are purged (not KurrentDB).
macro_rules! contract {
    (
        every_store: [$($case:ident),* $(,)?],
        atomic_multi_stream: [$($atomic:ident),* $(,)?],
        one_stream_at_a_time: [$($single:ident),* $(,)?],
        expiring_keys: [$($expiring:ident),* $(,)?] $(,)?
    ) => {
        cases_on!(EmbeddedBackend, embedded: $($case,)* $($atomic,)* $($expiring,)*);
        cases_on!(PostgresBackend, postgres: $($case,)* $($atomic,)* $($expiring,)*);
        cases_on!(KurrentDbBackend, kurrentdb: $($case,)* $($single,)*);
    };
}

contract!(
    every_store: [
        appended_events_read_back_in_order,
        an_event_s_version_is_found_by_its_id,
        a_bounded_stream_read_returns_only_its_versions,
        a_stale_expected_version_is_a_conflict_and_stores_nothing,
        an_idempotency_key_is_stored_with_the_events_and_taken_once,
        concurrent_appenders_to_one_stream_exactly_one_wins,
        concurrent_appends_sharing_a_key_store_exactly_one_of_them,
        racing_appenders_beside_a_taken_key_keep_one_winner,
        read_all_returns_global_order_without_gaps_in_bounded_batches,
        read_all_never_returns_more_than_its_batch_max,
        read_all_stored_is_the_log_as_stored,
        a_reader_resumes_from_its_checkpoint,
        a_snapshot_replaces_an_older_one_or_an_unusable_one,
        every_snapshot_is_found_by_version_and_by_time,
        a_large_snapshot_is_kept_in_the_history_only_as_often_as_it_pays_for,
        a_hold_id_is_entered_once_across_wallets_and_listed_while_due,
        a_wallets_holds_are_listed_by_placement_then_id,
    ],
    atomic_multi_stream: [
        a_multi_stream_append_is_all_or_nothing,
        a_multi_stream_append_lands_in_the_log_as_one_block,
    ],
    one_stream_at_a_time: [a_multi_stream_append_is_refused_whole],
    expiring_keys: [expired_idempotent_responses_are_purged_in_bounded_batches],
);

#[test]
fn the_database_name_is_replaced_and_the_query_kept() {
    assert_eq!(
        with_database("postgres://u:p@127.0.0.1:5432/wallex", "t1"),
        "postgres://u:p@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@host/wallex?sslmode=disable", "t1"),
        "postgres://u:p@host/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://host", "t1"), "postgres://host/t1");
}
