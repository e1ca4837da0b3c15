//! Scenarios of two command-api replicas (two [`WalletService`]s, each with
//! its own cache and lock; `store` is A's, `other_store` B's, the same store
//! or another process's connection to it) on one event store, run on the
//! embedded store by the unit tests and on PostgreSQL by the integration tests: a replica never
//! decides, and above all never refuses, on a state the store no longer holds;
//! and a fresh replica (as after a restart, its cache empty) loads a wallet
//! with a long history from its snapshot, reading a bounded tail.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use event_store::testing::CountingStore;
use event_store::{
    fold_stream_as_of, EventStore, HoldPageQuery, SnapshotReplace, StreamSnapshot,
    SNAPSHOT_INTERVAL_EVENTS,
};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    continues, replay_as_of, Amount, AsOf, Balance, HoldId, HoldStatus, OwnerId, WalletId,
    WalletState,
};
use wallet_lock::{InProcessWalletLock, WalletLock};

use super::holds::{page_of, HOLD_SEARCH_PAGE_EVENTS};
use super::operation::{OperationOutcome, WalletOperation};
use super::recent::RECENT_EVENTS_PER_WALLET;
use super::service::{ReplyFormat, RequestContext, WalletService};
use crate::metrics::Metrics;

/// A replica of the service on `store`, as another process would hold one.
pub fn replica(store: Arc<dyn EventStore>) -> WalletService {
    WalletService::new(
        store,
        Arc::new(InProcessWalletLock::default()),
        Metrics::new().expect("metrics"),
    )
}

fn money(text: &str) -> Decimal {
    Decimal::from_str(text).expect("test decimal")
}

fn amount(text: &str) -> Amount {
    Amount::parse("amount", money(text)).expect("test amount")
}

const REPLY: ReplyFormat = ReplyFormat {
    status: 201,
    render: |outcome| match outcome {
        OperationOutcome::Wallet(wallet) => Ok(wallet.balance.to_string()),
        OperationOutcome::Transfer { from, .. } | OperationOutcome::Hold { wallet: from, .. } => {
            Ok(from.balance.to_string())
        }
    },
};

fn context() -> RequestContext {
    RequestContext {
        principal: None,
        correlation_id: "replicas".into(),
        request_id: Uuid::now_v7(),
        idempotency: None,
    }
}

async fn create(service: &WalletService, wallet_id: &WalletId) {
    let operation = WalletOperation::Create {
        wallet_id: wallet_id.clone(),
        owner_id: OwnerId::parse("owner").expect("owner"),
        initial_balance: Balance::opening("initialBalance", Decimal::ZERO).expect("opening"),
        overdraft_limit: Balance::ZERO,
    };
    service
        .execute(operation, context(), REPLY)
        .await
        .expect("create");
}

async fn credit(service: &WalletService, wallet_id: &WalletId, text: &str) -> String {
    let operation = WalletOperation::Credit {
        wallet_id: wallet_id.clone(),
        amount: amount(text),
        description: None,
    };
    let reply = service
        .execute(operation, context(), REPLY)
        .await
        .expect("credit");
    assert_eq!(reply.status, 201);
    reply.body
}

async fn debit(service: &WalletService, wallet_id: &WalletId, text: &str) -> String {
    let operation = WalletOperation::Debit {
        wallet_id: wallet_id.clone(),
        amount: amount(text),
        description: None,
    };
    let reply = service
        .execute(operation, context(), REPLY)
        .await
        .unwrap_or_else(|error| panic!("debit {text} refused: {error}"));
    assert_eq!(reply.status, 201);
    reply.body
}

/// Every event of the stream continues the one before it, and the last
/// leaves `balance`.
async fn assert_stream_agrees(store: &dyn EventStore, wallet_id: &WalletId, balance: &str) {
    let events = store.read_stream(wallet_id, 0).await.expect("stream");
    let mut state = WalletState::Absent;
    for recorded in &events {
        assert!(
            continues(&state, &recorded.event),
            "event at version {} does not continue the stream",
            recorded.stream_version
        );
        state = wallet_domain::evolve(state, &recorded.event);
    }
    let wallet = state.wallet().expect("wallet exists");
    assert_eq!(wallet.balance.value(), money(balance));
}

/// Create through A, credit 100 through B, debit 50 through A: A's cache says
/// 0.00, yet the debit is decided on the store's 100.00 and succeeds.
pub async fn a_replica_does_not_refuse_on_what_another_changed(
    store: Arc<dyn EventStore>,
    other_store: Arc<dyn EventStore>,
) {
    let a = replica(Arc::clone(&store));
    let b = replica(other_store);
    let wallet_id = WalletId::parse("replicas-refusal").expect("id");
    create(&a, &wallet_id).await;
    assert_eq!(credit(&b, &wallet_id, "100.00").await, "100.00");
    assert_eq!(debit(&a, &wallet_id, "50.00").await, "50.00");
    let seen = a.current(&wallet_id).await.expect("read").expect("wallet");
    assert_eq!(seen.balance.value(), money("50.00"));
    assert_eq!(seen.version, 3);
    assert_stream_agrees(&*store, &wallet_id, "50.00").await;
}

/// Two replicas sharing a lock that passes versions on (Redis, each replica
/// its own client of it): B writes between A's commands, and A's next
/// command reads B's events before it decides, so it appends at the first
/// attempt instead of failing on the expected version (h147 F1).
pub async fn a_replica_catches_up_on_what_the_lock_says_another_wrote(
    store: Arc<dyn EventStore>,
    other_store: Arc<dyn EventStore>,
    lock: Arc<dyn WalletLock>,
    other_lock: Arc<dyn WalletLock>,
) {
    const ROUNDS: u64 = 10;
    let metrics = Metrics::new().expect("metrics");
    let a = WalletService::new(Arc::clone(&store), lock, metrics.clone());
    let b = WalletService::new(other_store, other_lock, Metrics::new().expect("metrics"));
    // Unique: the lock's Redis outlives the test's database.
    let wallet_id =
        WalletId::parse(&format!("replicas-caught-up-{}", Uuid::now_v7().simple())).expect("id");
    create(&a, &wallet_id).await;
    for _ in 0..ROUNDS {
        credit(&b, &wallet_id, "1.00").await;
        debit(&a, &wallet_id, "0.50").await;
    }
    assert_eq!(metrics.conflict_retries.get(), 0, "no append failed");
    assert_eq!(metrics.caught_up_by_lock.get(), ROUNDS);
    assert_stream_agrees(&*store, &wallet_id, "5.00").await;
}

/// Each replica's newest events of a wallet (kept with its cached wallet,
/// read by the audit trail) are the store's, the last at the wallet's
/// version, whoever wrote them: A writes, B writes past A's cache, A folds
/// B's events on its next read and decides on them, and both keep the
/// newest [`RECENT_EVENTS_PER_WALLET`] once they wrote that many themselves.
pub async fn a_replicas_recent_events_are_the_stores(
    store: Arc<dyn EventStore>,
    other_store: Arc<dyn EventStore>,
) {
    let a = replica(Arc::clone(&store));
    let b = replica(other_store);
    let wallet_id = WalletId::parse("replicas-recent").expect("id");
    create(&a, &wallet_id).await;
    let mut balance = Decimal::ZERO;
    for round in 0..(RECENT_EVENTS_PER_WALLET + 30) {
        let writer = if round % 3 == 2 { &b } else { &a };
        balance = money(&credit(writer, &wallet_id, "1.00").await);
        if round % 40 == 39 {
            balance = money(&debit(writer, &wallet_id, "0.50").await);
        }
        for reader in [&a, &b] {
            assert_recent_is_the_stores(reader, &*store, &wallet_id).await;
        }
    }
    for reader in [&a, &b] {
        for _ in 0..RECENT_EVENTS_PER_WALLET {
            balance = money(&credit(reader, &wallet_id, "1.00").await);
        }
        let recent = assert_recent_is_the_stores(reader, &*store, &wallet_id).await;
        assert_eq!(recent, RECENT_EVENTS_PER_WALLET, "a full audit trail kept");
    }
    assert_stream_agrees(&*store, &wallet_id, &balance.to_string()).await;
}

/// `reader`'s wallet and recent events against the store's stream: the
/// same versions and event ids. Returns how many it keeps.
async fn assert_recent_is_the_stores(
    reader: &WalletService,
    store: &dyn EventStore,
    wallet_id: &WalletId,
) -> usize {
    let (wallet, recent) = reader
        .current_with_recent(wallet_id)
        .await
        .expect("read")
        .expect("the wallet");
    let kept = recent
        .newest(recent.len(), wallet.version)
        .expect("every event it holds");
    let after = wallet.version - recent.len() as u64;
    let stored = store
        .read_stream_until(wallet_id, after, wallet.version)
        .await
        .expect("stream");
    assert_eq!(
        kept.iter()
            .map(|(version, event)| (*version, event.event_id))
            .collect::<Vec<_>>(),
        stored
            .iter()
            .map(|recorded| (recorded.stream_version, recorded.event.event_id))
            .collect::<Vec<_>>(),
        "the newest events kept at version {}",
        wallet.version
    );
    recent.len()
}

/// A credits 10.00 (A caches version 2); the store loses that event (`lose`
/// deletes it, as a failover to an asynchronous replica would) and B writes
/// another version 2 (a credit of 5.00). A sees the store went backwards,
/// its next debit is decided on B's version 2, not on its own lost one, and
/// its reads show the store's wallet.
pub async fn a_replica_never_decides_on_an_event_the_store_lost<F, Fut>(
    store: Arc<dyn EventStore>,
    other_store: Arc<dyn EventStore>,
    lose: F,
) where
    F: FnOnce(WalletId, u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let a = replica(Arc::clone(&store));
    let b = replica(other_store);
    let wallet_id = WalletId::parse("replicas-lost").expect("id");
    create(&a, &wallet_id).await;
    assert_eq!(credit(&a, &wallet_id, "10.00").await, "10.00");
    assert!(!a.check_store_head().await.expect("head"));
    lose(wallet_id.clone(), 2).await;
    assert!(
        a.check_store_head().await.expect("head"),
        "a head below one seen is a store that went backwards"
    );
    assert_eq!(credit(&b, &wallet_id, "5.00").await, "5.00");
    assert_eq!(debit(&a, &wallet_id, "3.00").await, "2.00");
    assert_stream_agrees(&*store, &wallet_id, "2.00").await;
}

/// The same as [`a_replica_never_decides_on_an_event_the_store_lost`], but A
/// has not looked at the store's head since: the append itself refuses a
/// decision on the lost event (its id is checked, not only its version).
pub async fn an_append_on_a_lost_event_is_refused_and_decided_again<F, Fut>(
    store: Arc<dyn EventStore>,
    other_store: Arc<dyn EventStore>,
    lose: F,
) where
    F: FnOnce(WalletId, u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let a = replica(Arc::clone(&store));
    let b = replica(other_store);
    let wallet_id = WalletId::parse("replicas-lost-unseen").expect("id");
    create(&a, &wallet_id).await;
    assert_eq!(credit(&a, &wallet_id, "10.00").await, "10.00");
    lose(wallet_id.clone(), 2).await;
    assert_eq!(credit(&b, &wallet_id, "5.00").await, "5.00");
    // A's cache holds version 2 at 10.00: a debit of 8.00 fits it but not
    // the store's 5.00, so it must be refused, and one of 3.00 must leave 2.00.
    let refused = a
        .execute(
            WalletOperation::Debit {
                wallet_id: wallet_id.clone(),
                amount: amount("8.00"),
                description: None,
            },
            context(),
            REPLY,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(super::ServiceError::Domain(
                wallet_domain::DomainError::InsufficientFunds { .. }
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(debit(&a, &wallet_id, "3.00").await, "2.00");
    assert_stream_agrees(&*store, &wallet_id, "2.00").await;
}

/// Credits a wallet gets before the restart: several snapshot intervals.
pub const LONG_HISTORY_CREDITS: u64 = 3 * SNAPSHOT_INTERVAL_EVENTS + 7;

/// The long wallet's balance after its credits of 0.01 and `debited_cents`
/// taken out, as the service spells it.
fn long_balance_less(debited_cents: i64) -> String {
    let credited = i64::try_from(LONG_HISTORY_CREDITS).expect("a small count");
    rust_decimal::Decimal::new(credited - debited_cents, 2).to_string()
}

/// The most stream events one wallet load may read: a tail shorter than the
/// snapshot interval, and the snapshot's own event, read to check it.
const EVENTS_PER_LOAD_MAX: u64 = SNAPSHOT_INTERVAL_EVENTS + 1;

/// A wallet with [`LONG_HISTORY_CREDITS`] credits of 0.01; then fresh
/// replicas, as after a restart: a debit, and a transfer to a new wallet,
/// each read a bounded tail (counted), and the state they decided on is the
/// whole stream's; so does a read as of a version.
pub async fn a_fresh_replica_reads_a_bounded_tail_of_a_long_stream(store: Arc<dyn EventStore>) {
    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    let writer = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    let long = WalletId::parse("history-long").expect("id");
    let new = WalletId::parse("history-new").expect("id");
    create(&writer, &long).await;
    create(&writer, &new).await;
    for _ in 0..LONG_HISTORY_CREDITS {
        credit(&writer, &long, "0.01").await;
    }

    let restarted = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    counting.reset();
    assert_eq!(
        debit(&restarted, &long, "1.00").await,
        long_balance_less(100)
    );
    let read = counting.stream_events_read();
    assert!(read <= EVENTS_PER_LOAD_MAX, "a debit read {read} events");

    let restarted = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    counting.reset();
    let transfer = WalletOperation::Transfer {
        from_wallet_id: long.clone(),
        to_wallet_id: new.clone(),
        amount: amount("1.00"),
        description: None,
    };
    let reply = restarted
        .execute(transfer, context(), REPLY)
        .await
        .expect("transfer");
    assert_eq!(reply.body, long_balance_less(200));
    let read = counting.stream_events_read();
    assert!(
        read <= 2 * EVENTS_PER_LOAD_MAX,
        "a transfer read {read} events"
    );

    // What the snapshot and its tail gave is what the whole stream gives.
    let restarted = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    let loaded = restarted
        .current(&long)
        .await
        .expect("read")
        .expect("wallet");
    assert_eq!(loaded.version, LONG_HISTORY_CREDITS + 3);
    assert_stream_agrees(&*store, &long, &long_balance_less(200)).await;

    // A state as of a version reads no further than that version, from the
    // nearest snapshot not past it (the stores keep every one), and is the
    // whole stream's fold up to it.
    let whole = store.read_stream(&long, 0).await.expect("stream");
    let interval = SNAPSHOT_INTERVAL_EVENTS;
    for version in [
        0,
        1,
        5,
        interval + interval / 2,
        2 * interval,
        2 * interval + 1,
        LONG_HISTORY_CREDITS,
        LONG_HISTORY_CREDITS + 3,
        u64::MAX,
    ] {
        counting.reset();
        let as_of = restarted
            .as_of(&long, AsOf::Version(version))
            .await
            .expect("as of");
        let read = counting.stream_events_read();
        assert!(
            read <= version.min(EVENTS_PER_LOAD_MAX),
            "version {version} read {read} events"
        );
        let events = whole.iter().map(|recorded| &recorded.event);
        assert_eq!(
            as_of,
            replay_as_of(events, AsOf::Version(version))
                .wallet()
                .cloned(),
            "version {version}"
        );
    }
    // A time reads from the snapshot whose event is the latest at or before
    // it, however far back (issue 13: 1.02 s three minutes back on a wallet
    // of 152,740 events), one interval at most; before the first snapshot,
    // from the first event. Each is the whole stream's fold.
    let index = |version: u64| usize::try_from(version).expect("index");
    let times = [
        whole[4].event.occurred_at,
        whole[index(interval + interval / 2)].event.occurred_at,
        whole[index(2 * interval) - 1].event.occurred_at,
        whole[index(2 * interval)].event.occurred_at,
        whole[whole.len() - 2].event.occurred_at,
        chrono::Utc::now() + chrono::Duration::days(1),
    ];
    for at in times {
        let bound = EVENTS_PER_LOAD_MAX;
        counting.reset();
        let as_of = restarted.as_of(&long, AsOf::Time(at)).await.expect("as of");
        let read = counting.stream_events_read();
        assert!(read <= bound, "{at} read {read} events");
        let events = whole.iter().map(|recorded| &recorded.event);
        assert_eq!(
            as_of,
            replay_as_of(events, AsOf::Time(at)).wallet().cloned(),
            "{at}"
        );
    }
    // A damaged row (tester h164 F1) is passed for the one before it: the
    // answer stays the whole stream's, read from that one.
    let damaged = StreamSnapshot {
        wallet_id: long.clone(),
        version: 2 * interval,
        last_event_id: Uuid::new_v4(),
        occurred_at: Some(whole[index(2 * interval) - 1].event.occurred_at),
        state: "{}".to_owned(),
    };
    store
        .save_snapshot(damaged, SnapshotReplace::OlderOrSame)
        .await
        .expect("saved");
    // By version: that one's event, the one before it and the events from
    // there; by time, also not the whole stream, which a fold from the
    // first event reads to the end.
    let between = 2 * interval + interval / 2;
    let whole_stream = u64::try_from(whole.len()).expect("length");
    for (as_of, bound) in [
        (AsOf::Version(between), 2 * EVENTS_PER_LOAD_MAX),
        (
            AsOf::Time(whole[index(between) - 1].event.occurred_at),
            whole_stream - 1,
        ),
    ] {
        counting.reset();
        let read = restarted.as_of(&long, as_of).await.expect("as of");
        let events = whole.iter().map(|recorded| &recorded.event);
        assert_eq!(
            read,
            replay_as_of(events, as_of).wallet().cloned(),
            "{as_of:?}"
        );
        let read = counting.stream_events_read();
        assert!(
            read <= bound,
            "{as_of:?} read {read} events past a damaged snapshot"
        );
    }
    // Folded from the first event a page at a time (h116 F1: a read as of
    // an old version held the whole stream): the whole stream's state, no
    // read longer than a page, and none past the page the moment is in.
    const PAGE_EVENTS: u64 = 7;
    let moments = [
        AsOf::Version(0),
        AsOf::Version(6),
        AsOf::Version(PAGE_EVENTS),
        AsOf::Version(PAGE_EVENTS + 1),
        AsOf::Version(LONG_HISTORY_CREDITS),
        AsOf::Version(u64::MAX),
        AsOf::Time(whole[4].event.occurred_at),
        AsOf::Time(times[2]),
    ];
    for as_of in moments {
        counting.reset();
        let bound = match as_of {
            AsOf::Version(version) => version,
            AsOf::Time(_) => u64::MAX,
        };
        let base = WalletState::Absent;
        let folded = fold_stream_as_of(&*counting, &long, base, bound, as_of, PAGE_EVENTS)
            .await
            .expect("folded");
        let events = whole.iter().map(|recorded| &recorded.event);
        assert_eq!(folded, replay_as_of(events, as_of), "{as_of:?}");
        assert!(
            counting.largest_stream_read() <= PAGE_EVENTS,
            "{as_of:?}: a read of {} events",
            counting.largest_stream_read()
        );
        let read = counting.stream_events_read();
        assert!(
            read <= folded.version() + PAGE_EVENTS,
            "{as_of:?} read {read} events to reach version {}",
            folded.version()
        );
    }
}

/// Credits after the first hold of [`a_settled_hold_is_read_back_no_further_than_its_placement`]:
/// more than one backward page, so that the page bounds the read.
pub const CREDITS_BEFORE_THE_YOUNG_HOLD: u64 = HOLD_SEARCH_PAGE_EVENTS + SNAPSHOT_INTERVAL_EVENTS;

/// Two holds settled before the wallet's newest snapshot: `old` near the
/// start of a long stream, `young` less than a page before the snapshot.
/// Each reads as its own events say, reading the snapshot's tail and the
/// hold's own events (the hold directory's versions), not the whole stream;
/// the wallet's one pending hold is listed from its state. For a store that
/// keeps hold directory versions (embedded, PostgreSQL).
pub async fn a_settled_hold_is_read_back_no_further_than_its_placement(store: Arc<dyn EventStore>) {
    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    let service = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    let wallet_id = WalletId::parse("holds-long").expect("id");
    create(&service, &wallet_id).await;
    credit(&service, &wallet_id, "100.00").await;
    let settle = |hold: &str, capture: bool| {
        let hold_id = HoldId::parse(hold).expect("hold id");
        let place = WalletOperation::PlaceHold {
            wallet_id: wallet_id.clone(),
            hold_id: hold_id.clone(),
            generated_id: false,
            amount: amount("10.00"),
            expires_at: None,
            description: None,
        };
        let settle = if capture {
            WalletOperation::CaptureHold {
                wallet_id: wallet_id.clone(),
                hold_id,
                amount: Some(amount("4.00")),
                to_wallet_id: None,
                description: None,
            }
        } else {
            WalletOperation::VoidHold {
                wallet_id: wallet_id.clone(),
                hold_id,
            }
        };
        let service = &service;
        async move {
            for operation in [place, settle] {
                service
                    .execute(operation, context(), REPLY)
                    .await
                    .expect("hold operation");
            }
        }
    };
    settle("old", true).await;
    for _ in 0..CREDITS_BEFORE_THE_YOUNG_HOLD {
        credit(&service, &wallet_id, "0.01").await;
    }
    settle("young", false).await;
    let open = WalletOperation::PlaceHold {
        wallet_id: wallet_id.clone(),
        hold_id: HoldId::parse("open").expect("hold id"),
        generated_id: false,
        amount: amount("1.00"),
        expires_at: None,
        description: None,
    };
    service
        .execute(open, context(), REPLY)
        .await
        .expect("open hold");
    for _ in 0..SNAPSHOT_INTERVAL_EVENTS + 7 {
        credit(&service, &wallet_id, "0.01").await;
    }

    let restarted = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    let read_hold = |hold: &str| {
        counting.reset();
        let hold_id = HoldId::parse(hold).expect("hold id");
        let restarted = &restarted;
        let wallet_id = &wallet_id;
        async move {
            restarted
                .hold(wallet_id, &hold_id, chrono::Utc::now())
                .await
                .expect("read hold")
        }
    };
    let young = read_hold("young").await.expect("young hold");
    assert_eq!(young.status, HoldStatus::Voided);
    // The tail and the hold's placement and void (the hold directory's versions).
    let read = counting.stream_events_read();
    let bound = EVENTS_PER_LOAD_MAX + 2;
    assert!(
        read <= bound,
        "the young hold read {read} events, more than {bound}"
    );
    let old = read_hold("old").await.expect("old hold");
    assert_eq!(old.status, HoldStatus::Captured);
    assert_eq!(old.captured_amount.value(), money("4.00"));
    let read = counting.stream_events_read();
    let bound = EVENTS_PER_LOAD_MAX + 2;
    assert!(
        read <= bound,
        "the old hold read {read} events, more than {bound}"
    );
    assert!(read_hold("never").await.is_none());

    // The pending holds come from the state: a bounded read, the same holds
    // as the whole stream's.
    let clock = chrono::Utc::now();
    counting.reset();
    let pending = restarted
        .pending_holds(&wallet_id, clock)
        .await
        .expect("read")
        .expect("wallet");
    let read = counting.stream_events_read();
    assert!(
        read <= EVENTS_PER_LOAD_MAX,
        "the pending holds read {read} events"
    );
    let (_, mut every) = restarted
        .holds_of(&wallet_id, clock)
        .await
        .expect("read")
        .expect("wallet");
    every.retain(|_, hold| hold.status == HoldStatus::Pending);
    assert_eq!(pending, every);
    assert_eq!(
        pending.keys().map(HoldId::as_str).collect::<Vec<_>>(),
        ["open"]
    );

    // Any page of the wallet's holds in any status, now and after a hold
    // fell due, is the whole stream's, read from the hold directory and the
    // listed holds' own events (two each at most), not from the stream.
    let due = WalletOperation::PlaceHold {
        wallet_id: wallet_id.clone(),
        hold_id: HoldId::parse("due").expect("hold id"),
        generated_id: false,
        amount: amount("2.00"),
        expires_at: Some(clock + chrono::TimeDelta::hours(1)),
        description: None,
    };
    service
        .execute(due, context(), REPLY)
        .await
        .expect("due hold");
    let lister = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
    let statuses = std::iter::once(None).chain(HoldStatus::ALL.map(Some));
    for status in statuses {
        for at in [clock, clock + chrono::TimeDelta::hours(2)] {
            for (offset, limit) in [(0, 50), (1, 1), (2, 2), (4, 50)] {
                let query = HoldPageQuery {
                    status,
                    clock: at,
                    offset,
                    limit,
                };
                counting.reset();
                let (count, listed) = lister
                    .holds_listed(&wallet_id, &query)
                    .await
                    .expect("listed")
                    .expect("wallet");
                let read = counting.stream_events_read();
                let bound = EVENTS_PER_LOAD_MAX + 2 * limit;
                assert!(read <= bound, "{query:?} read {read} events");
                let (_, every) = lister
                    .holds_of(&wallet_id, at)
                    .await
                    .expect("read")
                    .expect("wallet");
                assert_eq!((count, listed), page_of(every, &query), "{query:?}");
            }
        }
    }
    let expired = HoldPageQuery {
        status: Some(HoldStatus::Expired),
        clock: clock + chrono::TimeDelta::hours(2),
        offset: 0,
        limit: 50,
    };
    let (count, listed) = lister
        .holds_listed(&wallet_id, &expired)
        .await
        .expect("listed")
        .expect("wallet");
    assert_eq!(count, 1, "the due hold, as it stands after its expiry");
    assert_eq!(listed[0].id.as_str(), "due");
    let unknown = WalletId::parse("holds-never").expect("id");
    assert!(lister
        .holds_listed(&unknown, &expired)
        .await
        .expect("listed")
        .is_none());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use event_store::EmbeddedEventStore;
    use wallet_domain::DomainError;

    use super::super::service::{IdempotencyClaim, ServiceError};
    use super::*;

    fn embedded() -> (tempfile::TempDir, Arc<dyn EventStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedEventStore::open(dir.path()).expect("open event store");
        (dir, Arc::new(store))
    }

    /// The in-process lock as a lock that cannot try without waiting (as
    /// Redis): commands wait for it first, then for their turn.
    struct WaitingOnly(Arc<InProcessWalletLock>);

    #[async_trait::async_trait]
    impl wallet_lock::WalletLock for WaitingOnly {
        async fn acquire(
            &self,
            wallet_ids: &[&WalletId],
        ) -> Result<wallet_lock::LockLease, wallet_lock::LockError> {
            self.0.acquire(wallet_ids).await
        }

        fn kind(&self) -> &'static str {
            "waiting-only"
        }

        async fn probe(&self) -> Result<(), wallet_lock::LockError> {
            Ok(())
        }
    }

    /// Commands queued on one busy wallet wait at its lock and take no turn
    /// ([`super::super::COMMANDS_IN_FLIGHT_MAX`]) from the other wallets'
    /// (h109 F1: with a turn held while waiting for the lock, a burst on
    /// one wallet held every turn and a credit to another waited 10 s), on
    /// a lock that tries without waiting and on one that cannot.
    #[tokio::test]
    async fn a_burst_on_one_wallet_leaves_the_other_wallets_their_turns() {
        use wallet_lock::WalletLock;

        for tries in [true, false] {
            let (_dir, store) = embedded();
            let lock = Arc::new(InProcessWalletLock::default());
            let service_lock: Arc<dyn WalletLock> = if tries {
                lock.clone()
            } else {
                Arc::new(WaitingOnly(lock.clone()))
            };
            let service = Arc::new(WalletService::new(
                store,
                service_lock,
                Metrics::new().expect("metrics"),
            ));
            let hot = WalletId::parse("replicas-hot").expect("id");
            let cold = WalletId::parse("replicas-cold").expect("id");
            create(&service, &hot).await;
            create(&service, &cold).await;
            let held = lock.acquire(&[&hot]).await.expect("hot wallet held");
            let burst: Vec<_> = (0..super::super::COMMANDS_IN_FLIGHT_MAX + 10)
                .map(|_| {
                    let (service, hot) = (Arc::clone(&service), hot.clone());
                    tokio::spawn(async move { credit(&service, &hot, "1.00").await })
                })
                .collect();
            // Every command of the burst is waiting by now.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let answered = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                credit(&service, &cold, "1.00"),
            )
            .await;
            assert_eq!(
                answered.ok().as_deref(),
                Some("1.00"),
                "the cold wallet's credit ran (a lock that tries: {tries})"
            );
            drop(held);
            for task in burst {
                task.await.expect("the hot wallet's credit ran");
            }
        }
    }

    /// Deletes one event from the SQLite file, as a lost commit would.
    fn losing(dir: PathBuf) -> impl FnOnce(WalletId, u64) -> std::future::Ready<()> {
        move |wallet_id, version| {
            let connection =
                rusqlite::Connection::open(dir.join("events.db")).expect("open events.db");
            let deleted = connection
                .execute(
                    "DELETE FROM events WHERE stream_id = ?1 AND version = ?2",
                    rusqlite::params![wallet_id.as_str(), i64::try_from(version).expect("small")],
                )
                .expect("delete");
            assert_eq!(deleted, 1);
            std::future::ready(())
        }
    }

    /// With the transfer process (as on KurrentDB), replica A decides a
    /// keyed debit on its cache, from before B spent the money, claims the
    /// key in the journal, meets B's debit at its append and is refused on
    /// the store's state: the claim stayed, and another request with the
    /// key was 422 for ever. The refusal releases it; a request that runs
    /// keeps it.
    #[tokio::test]
    async fn a_keyed_command_refused_after_its_claim_leaves_its_key_free() {
        let (dir, store) = embedded();
        let journal: Arc<dyn transfer_process::TransferJournal> =
            Arc::new(transfer_process::EmbeddedTransferJournal::open(dir.path()).expect("journal"));
        let process_replica = || {
            replica(Arc::clone(&store)).with_transfer_process(
                Arc::clone(&journal),
                crate::http::TRANSFER_REPLY,
                None,
            )
        };
        let (a, b) = (process_replica(), process_replica());
        let wallet_id = WalletId::parse("replicas-claims").expect("id");
        create(&a, &wallet_id).await;
        credit(&a, &wallet_id, "10.00").await;
        debit(&b, &wallet_id, "8.00").await;
        let keyed = |operation: WalletOperation, fingerprint: &str| {
            let context = RequestContext {
                idempotency: Some(IdempotencyClaim {
                    key: "k-1".into(),
                    fingerprint: fingerprint.into(),
                }),
                ..context()
            };
            (operation, context)
        };
        let debit_of = |text: &str| WalletOperation::Debit {
            wallet_id: wallet_id.clone(),
            amount: amount(text),
            description: None,
        };

        let (operation, context) = keyed(debit_of("5.00"), "debit 5.00");
        let refused = a
            .execute(operation, context, REPLY)
            .await
            .expect_err("2.00 left");
        assert!(
            matches!(
                refused,
                ServiceError::Domain(DomainError::InsufficientFunds { .. })
            ),
            "{refused}"
        );
        let credit_of_one = WalletOperation::Credit {
            wallet_id: wallet_id.clone(),
            amount: amount("1.00"),
            description: None,
        };
        let (operation, context) = keyed(credit_of_one, "credit 1.00");
        let credited = b
            .execute(operation, context, REPLY)
            .await
            .expect("k-1 is free again");
        assert_eq!(credited.body, "3.00");
        let (operation, context) = keyed(debit_of("1.00"), "debit 1.00");
        let reused = a
            .execute(operation, context, REPLY)
            .await
            .expect_err("k-1 is the credit's");
        assert!(
            matches!(reused, ServiceError::IdempotencyKeyReused(_)),
            "{reused}"
        );
        assert_stream_agrees(&*store, &wallet_id, "3.00").await;
    }

    #[tokio::test]
    async fn a_fresh_replica_reads_a_bounded_tail_of_a_long_stream() {
        let (_dir, store) = embedded();
        super::a_fresh_replica_reads_a_bounded_tail_of_a_long_stream(store).await;
    }

    #[tokio::test]
    async fn a_settled_hold_is_read_back_no_further_than_its_placement() {
        let (_dir, store) = embedded();
        super::a_settled_hold_is_read_back_no_further_than_its_placement(store).await;
    }

    /// Holds entered before the hold directory kept versions (its rows'
    /// versions NULL) are found by the backward search, one page for the
    /// young hold, down to the old one's placement for the old.
    #[tokio::test]
    async fn a_settled_hold_without_directory_versions_is_searched_for() {
        let (dir, store) = embedded();
        super::a_settled_hold_is_read_back_no_further_than_its_placement(Arc::clone(&store)).await;
        let connection =
            rusqlite::Connection::open(dir.path().join("events.db")).expect("open events.db");
        let forgotten = connection
            .execute(
                "UPDATE hold_directory SET placed_version = NULL, settled_version = NULL",
                [],
            )
            .expect("forget the versions");
        assert_eq!(forgotten, 4);
        let counting = Arc::new(CountingStore::new(store));
        let restarted = replica(Arc::clone(&counting) as Arc<dyn EventStore>);
        let wallet_id = WalletId::parse("holds-long").expect("id");
        for (hold, status, bound) in [
            (
                "young",
                HoldStatus::Voided,
                HOLD_SEARCH_PAGE_EVENTS + EVENTS_PER_LOAD_MAX,
            ),
            ("old", HoldStatus::Captured, u64::MAX),
        ] {
            counting.reset();
            let hold_id = HoldId::parse(hold).expect("hold id");
            let found = restarted
                .hold(&wallet_id, &hold_id, chrono::Utc::now())
                .await
                .expect("read hold")
                .expect("the hold");
            assert_eq!(found.status, status, "{hold}");
            let read = counting.stream_events_read();
            assert!(read <= bound, "the {hold} hold read {read} events");
        }
        // The directory cannot list them: they are listed from the stream.
        let every = HoldPageQuery {
            status: None,
            clock: chrono::Utc::now(),
            offset: 0,
            limit: 50,
        };
        let (count, listed) = restarted
            .holds_listed(&wallet_id, &every)
            .await
            .expect("listed")
            .expect("wallet");
        assert_eq!(count, 4);
        let names: Vec<_> = listed.iter().map(|hold| hold.id.as_str()).collect();
        assert_eq!(names, ["old", "young", "open", "due"]);
    }

    #[tokio::test]
    async fn a_replicas_recent_events_are_the_stores() {
        let (_dir, store) = embedded();
        super::a_replicas_recent_events_are_the_stores(Arc::clone(&store), store).await;
    }

    #[tokio::test]
    async fn a_replica_does_not_refuse_on_what_another_changed() {
        let (_dir, store) = embedded();
        super::a_replica_does_not_refuse_on_what_another_changed(Arc::clone(&store), store).await;
    }

    #[tokio::test]
    async fn a_replica_never_decides_on_an_event_the_store_lost() {
        let (dir, store) = embedded();
        let lose = losing(dir.path().to_owned());
        super::a_replica_never_decides_on_an_event_the_store_lost(Arc::clone(&store), store, lose)
            .await;
    }

    #[tokio::test]
    async fn an_append_on_a_lost_event_is_refused_and_decided_again() {
        let (dir, store) = embedded();
        let lose = losing(dir.path().to_owned());
        super::an_append_on_a_lost_event_is_refused_and_decided_again(
            Arc::clone(&store),
            store,
            lose,
        )
        .await;
    }
}
