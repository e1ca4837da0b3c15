//! The embedded store's stream index, written a stream at a time: streams
//! read whole from the table and the writer's memory, nothing of it is lost
//! by a stop, and a log of the layout before it is rebuilt on opening.

use std::path::Path;

use chrono::Utc;
use event_store::{
    AppendError, AppendRequest, EmbeddedEventStore, EventStore, StreamAppend,
    STREAM_INDEX_FLUSH_EVENTS,
};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, evolve, Amount, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletEvent,
    WalletId, WalletState,
};

/// Events of the long stream: two flushes and some held in memory.
const LONG_STREAM_EVENTS: u64 = 2 * STREAM_INDEX_FLUSH_EVENTS as u64 + 7;
/// Events of the short stream, appended between the long one's.
const SHORT_STREAM_EVENTS: u64 = 3;

/// One wallet's stream as its writer sees it.
struct Stream {
    id: WalletId,
    state: WalletState,
    events: Vec<WalletEvent>,
}

impl Stream {
    fn new(raw: &str) -> Self {
        Self {
            id: WalletId::parse(raw).expect("wallet id"),
            state: WalletState::default(),
            events: Vec::new(),
        }
    }

    /// The next event (a creation, then one-cent credits) as an append on
    /// the version the writer saw; folded in.
    fn next(&mut self) -> AppendRequest {
        let kind = if self.events.is_empty() {
            CommandKind::Create {
                owner_id: OwnerId::parse("owner").expect("owner"),
                initial_balance: Balance::opening("initialBalance", Decimal::ZERO)
                    .expect("balance"),
                overdraft_limit: Balance::ZERO,
            }
        } else {
            CommandKind::Credit {
                amount: Amount::parse("amount", Decimal::new(1, 2)).expect("amount"),
                description: None,
            }
        };
        let command = Command {
            wallet_id: self.id.clone(),
            kind,
            event_id: Uuid::now_v7(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        let event = decide(&self.state, &command).expect("decided").remove(0);
        let request = AppendRequest {
            streams: vec![StreamAppend {
                wallet_id: self.id.clone(),
                expected_version: self.state.version(),
                expected_last_event_id: None,
                events: vec![event.clone()],
            }],
            idempotent_response: None,
        };
        self.state = evolve(std::mem::take(&mut self.state), &event);
        self.events.push(event);
        request
    }

    /// Takes back the last event [`Stream::next`] made (its append was refused).
    fn forget_last(&mut self) {
        self.events.pop();
        self.state = self.events.iter().fold(WalletState::default(), evolve);
    }
}

/// Appends the long and the short stream, interleaved.
async fn append_both(store: &EmbeddedEventStore, long: &mut Stream, short: &mut Stream) {
    for appended in 0..LONG_STREAM_EVENTS {
        store.append(long.next()).await.expect("long stream");
        if appended % 10 == 0 && (short.events.len() as u64) < SHORT_STREAM_EVENTS {
            store.append(short.next()).await.expect("short stream");
        }
    }
}

/// Every range of versions of `stream` reads back exactly its events.
async fn assert_reads_whole(store: &EmbeddedEventStore, stream: &Stream) {
    let count = stream.events.len() as u64;
    let flush = STREAM_INDEX_FLUSH_EVENTS as u64;
    let ranges = [
        (0, u64::MAX),
        (0, count),
        (flush - 3, flush + 3),
        (flush, 2 * flush),
        (2 * flush - 1, count),
        (count - 1, u64::MAX),
        (count, u64::MAX),
        (3, 4),
    ];
    for (after, up_to) in ranges {
        let read = store
            .read_stream_until(&stream.id, after, up_to)
            .await
            .expect("read");
        let versions: Vec<u64> = read
            .iter()
            .map(|recorded| recorded.stream_version)
            .collect();
        let expected: Vec<u64> = (after + 1..=up_to.min(count)).collect();
        assert_eq!(
            versions, expected,
            "{} versions ({after}, {up_to}]",
            stream.id
        );
        let events: Vec<&WalletEvent> = read.iter().map(|recorded| &recorded.event).collect();
        let stored: Vec<&WalletEvent> = stream
            .events
            .iter()
            .skip(usize::try_from(after).expect("small"))
            .take(expected.len())
            .collect();
        assert_eq!(events, stored, "{} events ({after}, {up_to}]", stream.id);
    }
}

fn rows(directory: &Path, sql: &str) -> i64 {
    let connection =
        rusqlite::Connection::open(directory.join("events.db")).expect("open events.db");
    connection
        .query_row(sql, [], |row| row.get(0))
        .expect("a count")
}

#[tokio::test]
async fn a_stream_reads_whole_from_the_table_and_the_writers_memory() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let (mut long, mut short) = (Stream::new("long"), Stream::new("short"));
    append_both(&store, &mut long, &mut short).await;
    assert_reads_whole(&store, &long).await;
    assert_reads_whole(&store, &short).await;
}

#[tokio::test]
async fn a_stream_is_written_to_the_table_once_it_holds_the_flush_count() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let mut stream = Stream::new("flushed");
    let indexed = "SELECT count(*) FROM stream_index WHERE stream_id = 'flushed'";
    for _ in 1..STREAM_INDEX_FLUSH_EVENTS {
        store.append(stream.next()).await.expect("append");
    }
    assert_eq!(rows(directory.path(), indexed), 0, "no entry written alone");
    store.append(stream.next()).await.expect("append");
    assert_eq!(
        rows(directory.path(), indexed),
        i64::try_from(STREAM_INDEX_FLUSH_EVENTS).expect("small")
    );
}

#[tokio::test]
async fn a_stop_loses_no_entry_and_the_heads_stay_checked() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (mut long, mut short) = (Stream::new("long"), Stream::new("short"));
    {
        let store = EmbeddedEventStore::open(directory.path()).expect("open");
        append_both(&store, &mut long, &mut short).await;
        // Dropped with entries in memory only: as a crash leaves the file.
    }
    let flush = STREAM_INDEX_FLUSH_EVENTS as u64;
    let indexed = "SELECT count(*) FROM stream_index WHERE stream_id = 'long'";
    let written = LONG_STREAM_EVENTS - LONG_STREAM_EVENTS % flush;
    assert_eq!(
        rows(directory.path(), indexed),
        i64::try_from(written).expect("small")
    );
    let store = EmbeddedEventStore::open(directory.path()).expect("reopen");
    assert_reads_whole(&store, &long).await;
    assert_reads_whole(&store, &short).await;
    let mut stale = long.next();
    stale.streams[0].expected_version -= 1;
    assert!(matches!(
        store.append(stale).await,
        Err(AppendError::VersionConflict { actual, .. }) if actual == LONG_STREAM_EVENTS
    ));
    long.forget_last();
    // The entries read back from the file go to the table with the next ones.
    while (long.events.len() as u64) < written + flush {
        store.append(long.next()).await.expect("the head's append");
    }
    assert_eq!(
        rows(directory.path(), indexed),
        i64::try_from(written + flush).expect("small")
    );
    assert_reads_whole(&store, &long).await;
}

/// The schema of `events.db` before the stream index left the events table.
const MIGRATIONS_BEFORE: &[&str] = &[
    include_str!("../../../migrations/embedded/events_0001.sql"),
    include_str!("../../../migrations/embedded/events_0002.sql"),
    include_str!("../../../migrations/embedded/events_0003.sql"),
    include_str!("../../../migrations/embedded/events_0004.sql"),
    include_str!("../../../migrations/embedded/events_0005.sql"),
];

#[tokio::test]
async fn a_log_of_the_layout_before_is_rebuilt_with_its_positions() {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut stream = Stream::new("before");
    {
        let mut connection =
            rusqlite::Connection::open(directory.path().join("events.db")).expect("create");
        embedded_sqlite::migrate(&mut connection, MIGRATIONS_BEFORE).expect("old layout");
        for (position, version) in [(5_i64, 1_u64), (9, 2), (12, 3)] {
            let event = stream.next().streams.remove(0).events.remove(0);
            connection
                .execute(
                    "INSERT INTO events \
                     (position, event_id, stream_id, version, event_type, payload, recorded_at) \
                     VALUES (?1, ?2, 'before', ?3, ?4, ?5, '2026-12-06T00:00:00Z')",
                    rusqlite::params![
                        position,
                        event.event_id.to_string(),
                        i64::try_from(version).expect("small"),
                        event.type_name(),
                        event.to_json().expect("json"),
                    ],
                )
                .expect("an old row");
        }
    }
    let store = EmbeddedEventStore::open(directory.path()).expect("open and migrate");
    let read = store.read_stream(&stream.id, 0).await.expect("read");
    let positions: Vec<u64> = read.iter().map(|recorded| recorded.position).collect();
    assert_eq!(positions, vec![5, 9, 12]);
    assert_reads_whole(&store, &stream).await;
    assert_eq!(
        rows(
            directory.path(),
            "SELECT count(*) FROM pragma_index_list('events') \
             WHERE \"unique\" = 1 AND partial = 1 AND name = 'events_derived_event_id'"
        ),
        1,
        "derived event ids stay unique, in an index that leaves time-ordered ones out"
    );
    assert_eq!(
        rows(
            directory.path(),
            "SELECT count(*) FROM pragma_index_list('events')"
        ),
        1,
        "no other index on the events table"
    );
    assert_eq!(
        store
            .append(stream.next())
            .await
            .expect("append")
            .last_position,
        13
    );
    assert_eq!(
        rows(
            directory.path(),
            "SELECT count(*) FROM events WHERE typeof(payload) = 'text'"
        ),
        3,
        "rows written before keep their JSON as it was"
    );
    assert_eq!(
        rows(
            directory.path(),
            "SELECT count(*) FROM events WHERE typeof(payload) = 'blob'"
        ),
        1,
        "a new row's JSON is compressed"
    );
    assert_reads_whole(&store, &stream).await;
}

/// Two stores opened on one file (as the tests of replicas open them): each
/// reads the other's entries, still in the other's memory, and appends on the
/// other's heads.
#[tokio::test]
async fn a_second_store_on_the_file_reads_and_checks_the_first_ones_entries() {
    let directory = tempfile::tempdir().expect("tempdir");
    let first = EmbeddedEventStore::open(directory.path()).expect("open");
    let second = EmbeddedEventStore::open(directory.path()).expect("open again");
    let mut shared = Stream::new("shared");
    for _ in 0..3 {
        first.append(shared.next()).await.expect("first store");
    }
    assert_reads_whole(&second, &shared).await;
    second.append(shared.next()).await.expect("second store");
    assert_reads_whole(&first, &shared).await;
    let mut stale = shared.next();
    stale.streams[0].expected_version -= 1;
    assert!(matches!(
        first.append(stale).await,
        Err(AppendError::VersionConflict { actual: 4, .. })
    ));
    shared.forget_last();
    first
        .append(shared.next())
        .await
        .expect("first store again");
    assert_reads_whole(&second, &shared).await;
}
