//! The embedded event store against a real SQLite file.

use std::sync::Arc;

use chrono::Utc;
use event_store::{
    read_tail, save_snapshot_of, AppendError, AppendRequest, EmbeddedEventStore, EventStore,
    IdempotentResponse, SnapshotReplace, StreamAppend, StreamSnapshot,
};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, encode_snapshot, replay, Amount, Balance, Command, CommandKind, EventMetadata, HoldId,
    OwnerId, Wallet, WalletEvent, WalletId,
};

fn wallet(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("wallet id")
}

fn stamp(wallet_id: &WalletId, kind: CommandKind) -> Command {
    Command {
        wallet_id: wallet_id.clone(),
        kind,
        event_id: Uuid::new_v4(),
        issued_at: Utc::now(),
        metadata: EventMetadata::default(),
    }
}

fn created(wallet_id: &WalletId) -> WalletEvent {
    let command = stamp(
        wallet_id,
        CommandKind::Create {
            owner_id: OwnerId::parse("owner").expect("owner"),
            initial_balance: Balance::opening("initialBalance", Decimal::from(100))
                .expect("balance"),
            overdraft_limit: Balance::ZERO,
        },
    );
    decide(&Default::default(), &command)
        .expect("create")
        .remove(0)
}

fn credited(history: &[WalletEvent], cents: i64) -> WalletEvent {
    let state = replay(history);
    let wallet_id = state.wallet().expect("open").id.clone();
    let amount = Amount::parse("amount", Decimal::new(cents, 2)).expect("amount");
    let command = stamp(
        &wallet_id,
        CommandKind::Credit {
            amount,
            description: None,
        },
    );
    decide(&state, &command).expect("credit").remove(0)
}

fn single(wallet_id: &WalletId, expected_version: u64, event: WalletEvent) -> AppendRequest {
    AppendRequest {
        streams: vec![StreamAppend {
            wallet_id: wallet_id.clone(),
            expected_version,
            expected_last_event_id: None,
            events: vec![event],
        }],
        idempotent_response: None,
    }
}

#[tokio::test]
async fn appended_events_read_back_in_order_and_survive_a_reopen() {
    let directory = tempfile::tempdir().expect("tempdir");
    let w1 = wallet("w1");
    let first = created(&w1);
    let second = credited(std::slice::from_ref(&first), 150);
    {
        let store = EmbeddedEventStore::open(directory.path()).expect("open");
        store
            .append(single(&w1, 0, first.clone()))
            .await
            .expect("append create");
        let outcome = store
            .append(single(&w1, 1, second.clone()))
            .await
            .expect("append credit");
        assert_eq!(outcome.last_position, 2);
    }
    let store = EmbeddedEventStore::open(directory.path()).expect("reopen");
    let stream = store.read_stream(&w1, 0).await.expect("read");
    let events: Vec<_> = stream
        .iter()
        .map(|recorded| recorded.event.clone())
        .collect();
    assert_eq!(events, vec![first, second]);
    assert_eq!(stream[1].stream_version, 2);
    assert_eq!(store.head_position().await.expect("head"), 2);
    assert_eq!(store.read_stream(&w1, 1).await.expect("tail").len(), 1);
}

/// A store in a folder of its own holding wallet `w1`'s creation, and that event.
async fn store_with_w1() -> (tempfile::TempDir, EmbeddedEventStore, WalletId, WalletEvent) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let w1 = wallet("w1");
    let first = created(&w1);
    store
        .append(single(&w1, 0, first.clone()))
        .await
        .expect("w1's creation");
    (directory, store, w1, first)
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_stores_nothing() {
    let (_directory, store, w1, _) = store_with_w1().await;
    let error = store
        .append(single(&w1, 0, created(&w1)))
        .await
        .expect_err("second create must conflict");
    assert!(matches!(
        error,
        AppendError::VersionConflict {
            expected: 0,
            actual: 1,
            ..
        }
    ));
    assert_eq!(store.read_stream(&w1, 0).await.expect("read").len(), 1);
}

/// The index `events_0007` keeps: an id derived from another (the transfer
/// process's halves, v5) is stored once, in whichever stream.
#[tokio::test]
async fn a_derived_event_id_is_stored_once() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let (w1, w2) = (wallet("w1"), wallet("w2"));
    let derived = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"sent");
    let mut first = created(&w1);
    first.event_id = derived;
    store.append(single(&w1, 0, first)).await.expect("append");
    let head = store.head_position().await.expect("head");
    let mut again = created(&w2);
    again.event_id = derived;
    store
        .append(single(&w2, 0, again))
        .await
        .expect_err("a derived id taken");
    assert_eq!(store.head_position().await.expect("head"), head);
    assert!(store.read_stream(&w2, 0).await.expect("read").is_empty());
    let fresh = created(&w2);
    store
        .append(single(&w2, 0, fresh))
        .await
        .expect("the writer goes on");
}

#[tokio::test]
async fn a_multi_stream_append_is_all_or_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let (w1, w2) = (wallet("w1"), wallet("w2"));
    let w1_created = created(&w1);
    store
        .append(single(&w1, 0, w1_created.clone()))
        .await
        .expect("append");
    let request = AppendRequest {
        streams: vec![
            StreamAppend {
                wallet_id: w1.clone(),
                expected_version: 1,
                expected_last_event_id: None,
                events: vec![credited(&[w1_created], 1)],
            },
            StreamAppend {
                wallet_id: w2.clone(),
                expected_version: 5,
                expected_last_event_id: None,
                events: vec![created(&w2)],
            },
        ],
        idempotent_response: None,
    };
    store
        .append(request)
        .await
        .expect_err("second stream is stale");
    assert_eq!(store.read_stream(&w1, 0).await.expect("read").len(), 1);
    assert!(store.read_stream(&w2, 0).await.expect("read").is_empty());
}

#[tokio::test]
async fn an_idempotency_key_is_stored_with_the_events_and_taken_once() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let (w1, w2) = (wallet("w1"), wallet("w2"));
    let response = IdempotentResponse {
        key: "key-1".into(),
        request_fingerprint: "fingerprint".into(),
        status: 201,
        body: "{}".into(),
    };
    let mut request = single(&w1, 0, created(&w1));
    request.idempotent_response = Some(response.clone());
    store.append(request).await.expect("append");
    assert_eq!(
        store.find_idempotent_response("key-1").await.expect("find"),
        Some(response.clone())
    );

    let mut reuse = single(&w2, 0, created(&w2));
    reuse.idempotent_response = Some(response);
    let error = store.append(reuse).await.expect_err("key reused");
    assert!(matches!(error, AppendError::IdempotencyKeyTaken(_)));
    assert!(
        store.read_stream(&w2, 0).await.expect("read").is_empty(),
        "refused append stored nothing"
    );
}

#[tokio::test]
async fn expired_idempotent_responses_are_purged_in_bounded_batches() {
    const KEYS: usize = 5;
    const BATCH_MAX: usize = 2;
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    for index in 0..KEYS {
        let wallet_id = wallet(&format!("w{index}"));
        let mut request = single(&wallet_id, 0, created(&wallet_id));
        request.idempotent_response = Some(IdempotentResponse {
            key: format!("key-{index}"),
            request_fingerprint: "fingerprint".into(),
            status: 201,
            body: "{}".into(),
        });
        store.append(request).await.expect("append");
    }
    let before_any = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        store
            .purge_idempotent_responses(before_any, BATCH_MAX)
            .await
            .expect("purge"),
        0,
        "nothing is older than an hour"
    );
    let after_all = Utc::now() + chrono::Duration::seconds(1);
    let mut purged = Vec::new();
    loop {
        let deleted = store
            .purge_idempotent_responses(after_all, BATCH_MAX)
            .await
            .expect("purge");
        assert!(deleted <= BATCH_MAX, "a batch is bounded");
        if deleted == 0 {
            break;
        }
        purged.push(deleted);
    }
    assert_eq!(purged, vec![2, 2, 1]);
    assert_eq!(
        store.find_idempotent_response("key-0").await.expect("find"),
        None
    );
    // The key may serve again; the events stay.
    let again = wallet("again");
    let mut request = single(&again, 0, created(&again));
    request.idempotent_response = Some(IdempotentResponse {
        key: "key-0".into(),
        request_fingerprint: "another".into(),
        status: 201,
        body: "{}".into(),
    });
    store.append(request).await.expect("a purged key is free");
    assert_eq!(
        store
            .read_stream(&wallet("w0"), 0)
            .await
            .expect("read")
            .len(),
        1
    );
}

/// `w1` created in `store`, and `count` appends of a credit competing for its
/// version 2 (each with an event id of its own).
async fn contenders_for_one_version(
    store: &EmbeddedEventStore,
    w1: &WalletId,
    count: usize,
) -> Vec<AppendRequest> {
    let first = created(w1);
    store
        .append(single(w1, 0, first.clone()))
        .await
        .expect("append");
    let next = credited(&[first], 1);
    (0..count)
        .map(|_| {
            let mut event = next.clone();
            event.event_id = Uuid::new_v4();
            single(w1, 1, event)
        })
        .collect()
}

#[tokio::test]
async fn concurrent_appenders_to_one_stream_never_share_a_version() {
    const WRITERS: usize = 16;
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedEventStore::open(directory.path()).expect("open"));
    let w1 = wallet("w1");
    let tasks: Vec<_> = contenders_for_one_version(&store, &w1, WRITERS)
        .await
        .into_iter()
        .map(|request| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(request).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("join").is_ok() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.read_stream(&w1, 0).await.expect("read").len(), 2);
}

#[tokio::test]
async fn read_all_returns_global_order_in_bounded_batches() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    for index in 0..5 {
        let id = wallet(&format!("w{index}"));
        store
            .append(single(&id, 0, created(&id)))
            .await
            .expect("append");
    }
    let first = store.read_all(0, 3).await.expect("read");
    let rest = store.read_all(first[2].position, 3).await.expect("read");
    let positions: Vec<u64> = first
        .iter()
        .chain(&rest)
        .map(|event| event.position)
        .collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5]);
    assert_eq!(*store.appended().borrow(), 5);
}

/// The whole log in pages of `page`, as `store` reads it.
async fn whole_log(store: &EmbeddedEventStore, page: usize) -> Vec<event_store::StoredEvent> {
    let mut log = Vec::new();
    loop {
        let after = log
            .last()
            .map_or(0, |event: &event_store::StoredEvent| event.position);
        let batch = store.read_all_stored(after, page).await.expect("read");
        if batch.is_empty() {
            return log;
        }
        log.extend(batch);
    }
}

/// The writer keeps the newest events in memory for the log's readers: what
/// they read there is what the file holds, refused appends of a group
/// included (they leave nothing in either).
#[tokio::test]
async fn the_log_read_from_memory_is_the_log_the_file_holds() {
    const CONTENDERS: usize = 16;
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedEventStore::open(directory.path()).expect("open"));
    let w1 = wallet("w1");
    let tasks: Vec<_> = contenders_for_one_version(&store, &w1, CONTENDERS)
        .await
        .into_iter()
        .enumerate()
        .map(|(index, contender)| {
            let store = Arc::clone(&store);
            let other = wallet(&format!("other-{index}"));
            let creation = single(&other, 0, created(&other));
            tokio::spawn(async move {
                let (contended, created) =
                    tokio::join!(store.append(contender), store.append(creation));
                (contended.is_ok(), created.is_ok())
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let (won, created) = task.await.expect("join");
        winners += usize::from(won);
        assert!(created);
    }
    assert_eq!(winners, 1);
    let from_memory = whole_log(&store, 5).await;
    assert_eq!(from_memory.len(), 2 + CONTENDERS);
    drop(store);
    let reopened = EmbeddedEventStore::open(directory.path()).expect("reopen");
    assert_eq!(whole_log(&reopened, 5).await, from_memory);
    assert_eq!(
        reopened.read_all(0, 100).await.expect("read").len(),
        from_memory.len()
    );
}

/// The events of `kind` decided on `history`, at `issued_at`.
fn decided_at(
    history: &[WalletEvent],
    kind: CommandKind,
    issued_at: chrono::DateTime<Utc>,
) -> Vec<WalletEvent> {
    let state = replay(history);
    let wallet_id = state.wallet().expect("open").id.clone();
    let command = Command {
        issued_at,
        ..stamp(&wallet_id, kind)
    };
    decide(&state, &command).expect("decided")
}

fn hold(raw: &str) -> HoldId {
    HoldId::parse(raw).expect("hold id")
}

fn place(raw: &str, expires_at: Option<chrono::DateTime<Utc>>) -> CommandKind {
    CommandKind::PlaceHold {
        hold_id: hold(raw),
        amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
        expires_at,
        description: None,
    }
}

#[tokio::test]
async fn the_hold_directory_keeps_a_hold_id_to_one_wallet_and_lists_due_holds() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let now = Utc::now();
    let soon = now + chrono::Duration::minutes(1);
    // Due from the millisecond its expiry is kept at (rounded up).
    let due_at = soon + chrono::Duration::milliseconds(1);
    let (w1, w2) = (wallet("w1"), wallet("w2"));
    let mut first = vec![created(&w1)];
    let second = vec![created(&w2)];
    for (wallet_id, history) in [(&w1, &first), (&w2, &second)] {
        store
            .append(single(wallet_id, 0, history[0].clone()))
            .await
            .expect("create");
    }
    let placed = decided_at(&first, place("h-1", Some(soon)), now).remove(0);
    store
        .append(single(&w1, 1, placed.clone()))
        .await
        .expect("place");
    first.push(placed);
    let again = decided_at(&second, place("h-1", None), now).remove(0);
    let error = store
        .append(single(&w2, 1, again))
        .await
        .expect_err("a hold id is used once across wallets");
    assert!(matches!(&error, AppendError::HoldIdTaken(id) if *id == hold("h-1")));
    assert_eq!(
        store.read_stream(&w2, 0).await.expect("read").len(),
        1,
        "the refused append stored nothing"
    );
    assert_eq!(
        store.find_hold_wallet(&hold("h-1")).await.expect("find"),
        Some(w1.clone())
    );
    assert_eq!(
        store.find_hold_wallet(&hold("h-2")).await.expect("find"),
        None
    );

    assert!(store.due_holds(now, 10).await.expect("due").is_empty());
    let due = store.due_holds(due_at, 10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((&due[0].hold_id, &due[0].wallet_id), (&hold("h-1"), &w1));
    let void = decided_at(
        &first,
        CommandKind::VoidHold {
            hold_id: hold("h-1"),
        },
        now,
    )
    .remove(0);
    store.append(single(&w1, 2, void)).await.expect("void");
    assert!(
        store.due_holds(due_at, 10).await.expect("due").is_empty(),
        "a settled hold is no longer due"
    );
}

/// A hold asked to expire between two milliseconds is due, in the
/// directory as in the domain, at the next whole millisecond, not before.
#[tokio::test]
async fn the_hold_directory_lists_a_hold_due_when_the_domain_finds_it_due() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let w1 = wallet("w1");
    let history = vec![created(&w1)];
    store
        .append(single(&w1, 0, history[0].clone()))
        .await
        .expect("create");
    let now = Utc::now();
    let whole = now + chrono::Duration::minutes(1);
    let whole = whole - chrono::Duration::nanoseconds(i64::from(whole.timestamp_subsec_nanos()));
    let asked = whole + chrono::Duration::microseconds(100);
    let placed = decided_at(&history, place("h-1", Some(asked)), now).remove(0);
    store.append(single(&w1, 1, placed)).await.expect("place");
    let millisecond = chrono::Duration::milliseconds(1);
    assert!(
        store
            .due_holds(whole + chrono::Duration::microseconds(500), 10)
            .await
            .expect("due")
            .is_empty(),
        "past the instant asked, before the millisecond it is kept at"
    );
    assert_eq!(
        store
            .due_holds(whole + millisecond, 10)
            .await
            .expect("due")
            .len(),
        1
    );
}

/// Appends one credit of 1.00 to the wallet whose stream is `history`.
async fn credit_once(store: &EmbeddedEventStore, history: &mut Vec<WalletEvent>) {
    let next = credited(history, 100);
    let version = u64::try_from(history.len()).expect("a version");
    store
        .append(single(&next.wallet_id, version, next.clone()))
        .await
        .expect("append");
    history.push(next);
}

/// A snapshot of the last event of `history`, its state `wallet`.
fn snapshot_at(history: &[WalletEvent], wallet: &Wallet) -> StreamSnapshot {
    let last = history.last().expect("an event");
    StreamSnapshot {
        wallet_id: last.wallet_id.clone(),
        version: wallet.version,
        last_event_id: last.event_id,
        occurred_at: Some(last.occurred_at),
        state: encode_snapshot(wallet).expect("encoded"),
    }
}

/// The stream's state after `history`.
fn folded(history: &[WalletEvent]) -> Wallet {
    replay(history).wallet().expect("open").clone()
}

/// The tail read of the stream `history` is the whole stream, no snapshot used.
async fn assert_read_whole(store: &EmbeddedEventStore, history: &[WalletEvent]) {
    let wallet_id = &history[0].wallet_id;
    let tail = read_tail(store, wallet_id)
        .await
        .expect("the stream, not an error");
    assert_eq!(tail.base_last_event_id, None, "the snapshot is not used");
    assert_eq!(tail.events.len(), history.len(), "the whole stream");
    let version = tail.unusable_snapshot_version.expect("one read past");
    assert_eq!(
        tail.snapshot_to_save(),
        Some(SnapshotReplace::Unusable { version }),
        "its reader replaces it, however short the stream"
    );
}

#[tokio::test]
async fn a_snapshot_that_disagrees_with_its_stream_is_passed_over_for_the_whole_stream() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let w = wallet("w-snap");
    let mut history = vec![created(&w)];
    store
        .append(single(&w, 0, history[0].clone()))
        .await
        .expect("append");
    for _ in 0..4 {
        credit_once(&store, &mut history).await;
    }

    // A balance the stream does not have, at the stream's head.
    let mut wrong = folded(&history);
    wrong.balance = wrong
        .balance
        .checked_add(Amount::parse("amount", Decimal::ONE).expect("amount"))
        .expect("a balance");
    store
        .save_snapshot(snapshot_at(&history, &wrong), SnapshotReplace::OlderOrSame)
        .await
        .expect("saved");
    assert_read_whole(&store, &history).await;

    // A state that cannot be decoded, at a newer version.
    credit_once(&store, &mut history).await;
    let mut garbled = snapshot_at(&history, &folded(&history));
    garbled.state = "{\"not a wallet\"".to_owned();
    store
        .save_snapshot(garbled, SnapshotReplace::OlderOrSame)
        .await
        .expect("saved");
    assert_read_whole(&store, &history).await;

    // A snapshot that agrees is used: the tail is what follows it.
    credit_once(&store, &mut history).await;
    let agreeing = snapshot_at(&history, &folded(&history));
    store
        .save_snapshot(agreeing.clone(), SnapshotReplace::OlderOrSame)
        .await
        .expect("saved");
    let tail = read_tail(&store, &w).await.expect("read");
    assert_eq!(tail.base_last_event_id, Some(agreeing.last_event_id));
    assert!(tail.events.is_empty(), "nothing after the snapshot");
}

/// h131 F4: a snapshot row whose columns are of other types than the store
/// writes (state as a BLOB or as TEXT that is not UTF-8, a version that is
/// text, a last event id that is a BLOB) locked its wallet: every read and
/// command answered 503. Such a row is unusable, and the stream is read whole.
#[tokio::test]
async fn a_snapshot_row_of_other_column_types_is_passed_over_for_the_whole_stream() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let w = wallet("w-typed");
    let mut history = vec![created(&w)];
    store
        .append(single(&w, 0, history[0].clone()))
        .await
        .expect("append");
    credit_once(&store, &mut history).await;
    store
        .save_snapshot(
            snapshot_at(&history, &folded(&history)),
            SnapshotReplace::OlderOrSame,
        )
        .await
        .expect("saved");
    let tail = read_tail(&store, &w).await.expect("read");
    assert!(tail.base_last_event_id.is_some(), "the snapshot is used");
    assert_eq!(tail.snapshot_to_save(), None, "a short tail saves none");

    let editor =
        rusqlite::Connection::open(directory.path().join("events.db")).expect("a connection");
    for edit in [
        "UPDATE snapshots SET state = CAST(state AS BLOB) WHERE stream_id = 'w-typed'",
        "UPDATE snapshots SET state = CAST(x'7b22ff80' AS TEXT) WHERE stream_id = 'w-typed'",
        "UPDATE snapshots SET version = 'abc' WHERE stream_id = 'w-typed'",
        "UPDATE snapshots SET version = 1.5 WHERE stream_id = 'w-typed'",
        "UPDATE snapshots SET last_event_id = x'00ff' WHERE stream_id = 'w-typed'",
    ] {
        let saved: (i64, String, String) = editor
            .query_row(
                "SELECT version, last_event_id, state FROM snapshots WHERE stream_id = 'w-typed'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .expect("the saved row");
        editor.execute(edit, []).expect(edit);
        assert_read_whole(&store, &history).await;
        editor
            .execute(
                "UPDATE snapshots SET version = ?1, last_event_id = ?2, state = ?3 \
                 WHERE stream_id = 'w-typed'",
                rusqlite::params![saved.0, saved.1, saved.2],
            )
            .expect("restored");
    }
}

/// h132 F1: a snapshot row whose version sorts above the stream's head (text,
/// which SQLite sorts above every number, or a forged `i64::MAX`) was never
/// replaced, since a store kept a snapshot unless the stored one was newer:
/// every load read the whole stream and logged an error. The reader that
/// finds it unusable now saves what it folded over it, whatever its version.
#[tokio::test]
async fn a_snapshot_found_unusable_is_replaced_whatever_version_it_claims() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("open");
    let w = wallet("w-forged");
    let mut history = vec![created(&w)];
    store
        .append(single(&w, 0, history[0].clone()))
        .await
        .expect("append");
    let editor =
        rusqlite::Connection::open(directory.path().join("events.db")).expect("a connection");
    for forged_version in ["'abc'", "9223372036854775807", "1e300"] {
        credit_once(&store, &mut history).await;
        let head = snapshot_at(&history, &folded(&history));
        store
            .save_snapshot(head.clone(), SnapshotReplace::OlderOrSame)
            .await
            .expect("saved");
        // The newest row: the older ones are the stream's history.
        let edit = format!(
            "UPDATE snapshots SET version = {forged_version} \
             WHERE stream_id = 'w-forged' AND version = {}",
            head.version
        );
        editor.execute(&edit, []).expect("edited");
        assert_read_whole(&store, &history).await;

        let tail = read_tail(&store, &w).await.expect("read");
        let replace = tail.snapshot_to_save().expect("a snapshot to save");
        save_snapshot_of(&store, &folded(&history), head.last_event_id, replace).await;
        assert_eq!(
            store.read_snapshot(&w).await.expect("read"),
            Some(head.clone()),
            "{forged_version}: the forged row is replaced"
        );
        let tail = read_tail(&store, &w).await.expect("read");
        assert_eq!(tail.base_last_event_id, Some(head.last_event_id));
        assert!(tail.events.is_empty() && tail.unusable_snapshot_version.is_none());
    }
}

/// h97 F2: the writer went on committing into an events.db its readers had
/// found damaged. A damage any reader or writer of the file marks (here a
/// pool of the test's own, as a read that met `SQLITE_CORRUPT` does) refuses
/// every later append, snapshot and purge, and the head the health report reads.
#[tokio::test]
async fn an_event_log_found_damaged_takes_no_more_writes() {
    let (directory, store, w1, first) = store_with_w1().await;

    let other_reader =
        embedded_sqlite::ReadPool::open(&directory.path().join("events.db")).expect("pool");
    other_reader
        .place()
        .mark_damaged("database disk image is malformed".into());

    let damaged = |error: &event_store::StoreError| {
        matches!(error, event_store::StoreError::Damaged(_))
            && error.to_string().contains("events.db is damaged")
    };
    let refused = store
        .append(single(&w1, 1, credited(std::slice::from_ref(&first), 150)))
        .await
        .expect_err("no append into a damaged file");
    assert!(
        matches!(&refused, AppendError::Store(error) if damaged(error)),
        "{refused}"
    );
    let purge = store
        .purge_idempotent_responses(Utc::now(), 10)
        .await
        .expect_err("no purge of a damaged file");
    assert!(damaged(&purge), "{purge}");
    let head = store
        .head_position()
        .await
        .expect_err("the head is not served");
    assert!(damaged(&head), "{head}");
    // Nothing of the refused append is in the file.
    let events: i64 = rusqlite::Connection::open(directory.path().join("events.db"))
        .expect("opened")
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("counted");
    assert_eq!(events, 1);
}

/// A payload the store did not write (a BLOB of an unknown format, or one
/// that does not decompress) is damage, like SQLite's own `SQLITE_CORRUPT`:
/// the read that meets it fails as [`event_store::StoreError::Damaged`], and
/// the file takes no more appends.
/// h133 F1, F2: a payload that is text but not an event this build writes
/// (`{}`, `42`, an event of its schema version missing a field) was
/// `Corrupt`: its wallet answered 500 with `/health` ok, and a rebuild of
/// the projections dead-lettered it under no wallet and built the wallet's
/// rows without it. It is damage now, on the reads of a stream and of the
/// log alike; an event of a newer schema version (a newer build wrote it)
/// is still passed to the sinks, which park it. An event whose id is not
/// its row's `event_id` is damage too (h134: the lookups by event id search
/// that column, so a transfer's step would not be found and be repeated).
#[tokio::test]
async fn a_stored_payload_that_is_not_an_event_is_damage_unless_a_newer_build_wrote_it() {
    let damaged = |error: &event_store::StoreError| {
        matches!(error, event_store::StoreError::Damaged(_))
            && error.to_string().contains("events.payload at position 1")
    };
    let (_, _, _, first) = store_with_w1().await;
    let json = first.to_json().expect("json");
    let without_amount = json.replace("\"amount\":", "\"amountWas\":");
    let of_another_wallet = json.replace("\"walletId\":\"w1\"", "\"walletId\":\"w2\"");
    assert_ne!(of_another_wallet, json);
    // An id other than the row's `event_id` column (h134).
    let another_id = json.replace(
        &first.event_id.to_string(),
        "00000000-0000-4000-8000-000000000001",
    );
    assert_ne!(another_id, json);
    for payload in [
        "{}",
        "42",
        without_amount.as_str(),
        of_another_wallet.as_str(),
        another_id.as_str(),
    ] {
        let (directory, store, w1, _) = store_with_w1().await;
        drop(store);
        rusqlite::Connection::open(directory.path().join("events.db"))
            .expect("opened")
            .execute("UPDATE events SET payload = ?1", [payload])
            .expect("payload overwritten");
        // Opened again: the log's newest events are not in memory.
        let store = EmbeddedEventStore::open(directory.path()).expect("open");
        let log = store.read_all_stored(0, 10).await.expect_err("not read");
        assert!(damaged(&log), "{payload}: {log}");
        let stream = store.read_stream(&w1, 0).await.expect_err("not read");
        assert!(damaged(&stream), "{payload}: {stream}");
    }

    let newer_schema = json.replace("\"schemaVersion\":1", "\"schemaVersion\":2");
    let newer_type = json.replace("\"type\":\"WalletCreated\"", "\"type\":\"WalletRenamed\"");
    for newer in [newer_schema, newer_type] {
        assert_ne!(newer, json);
        let (directory, store, w1, _) = store_with_w1().await;
        drop(store);
        rusqlite::Connection::open(directory.path().join("events.db"))
            .expect("opened")
            .execute("UPDATE events SET payload = ?1", [&newer])
            .expect("payload overwritten");
        let store = EmbeddedEventStore::open(directory.path()).expect("open");
        let log = store.read_all_stored(0, 10).await.expect("passed on");
        assert_eq!(log.len(), 1, "{newer}");
        let stream = store.read_stream(&w1, 0).await.expect_err("not decoded");
        assert!(
            matches!(stream, event_store::StoreError::Corrupt { .. }),
            "{newer}: {stream}"
        );
    }
}

/// h133 F3: a log row of another type than the store writes (a version as
/// text or a real, an event id that is not one), met by the reads of the
/// start, stopped it as "unavailable", with nothing said of the damage or
/// the way back; it is damage, named as such.
#[tokio::test]
async fn a_log_row_of_other_types_met_at_the_start_is_damage() {
    for edit in [
        "UPDATE events SET version = '2x'",
        "UPDATE events SET version = 2.5",
        "UPDATE events SET event_id = 'nope'",
    ] {
        let (directory, store, _, _) = store_with_w1().await;
        drop(store);
        rusqlite::Connection::open(directory.path().join("events.db"))
            .expect("opened")
            .execute(edit, [])
            .expect(edit);
        let Err(refused) = EmbeddedEventStore::open(directory.path()) else {
            panic!("{edit}: opened");
        };
        assert!(
            matches!(refused, event_store::StoreError::Damaged(_))
                && refused.to_string().contains("events.db is damaged"),
            "{edit}: {refused}"
        );
    }
}

#[tokio::test]
async fn a_stored_payload_that_does_not_decompress_is_damage() {
    let (directory, store, w1, first) = store_with_w1().await;
    rusqlite::Connection::open(directory.path().join("events.db"))
        .expect("opened")
        .execute("UPDATE events SET payload = x'01deadbeef'", [])
        .expect("payload overwritten");

    let read = store.read_stream(&w1, 0).await.expect_err("not read");
    assert!(
        matches!(read, event_store::StoreError::Damaged(_))
            && read.to_string().contains("events.payload at position 1"),
        "{read}"
    );
    let refused = store
        .append(single(&w1, 1, credited(std::slice::from_ref(&first), 150)))
        .await
        .expect_err("no append into a damaged file");
    assert!(
        matches!(
            refused,
            AppendError::Store(event_store::StoreError::Damaged(_))
        ),
        "{refused}"
    );
}
