//! The KurrentDB live feed (`EventStore::subscribe_all`, a catch-up
//! subscription to `$all`) against a real server, and the relay on it: from a
//! checkpoint, appends arrive in order; a feed opened at a mid checkpoint
//! starts right after it; a relay stopped and started again resumes after its
//! sink's checkpoint with nothing lost and nothing twice.
//!
//! Runs only when `KURRENTDB_URL` is set (each test in a stream namespace of
//! its own); otherwise one line says it was skipped, also under
//! `WALLEX_REQUIRE_INFRA=1`, as for the KurrentDB contract cases: no package
//! registry ships a KurrentDB server, so CI machines cannot start one.

use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_trait::async_trait;
use event_relay::{run_relay, RelayLimits};
use event_sink::{DeliveryError, EventSink};
use event_store::{AppendRequest, EventFeed, EventStore, RecordedEvent, StreamAppend};
use event_store_kurrentdb::{KurrentDbEventStore, StreamNames};
use futures::StreamExt;
use integration_tests::{continue_history, unique_name};
use tokio::sync::watch;
use wallet_domain::{WalletEvent, WalletId};

/// Bound on any wait for the server or the relay.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(20);
/// How long a feed is watched for an event that must not come.
const QUIET_PERIOD: Duration = Duration::from_millis(500);
/// Time given a feed being pulled to subscribe before the test appends.
const SUBSCRIBE_GRACE: Duration = Duration::from_millis(500);

/// Says once per test run why these tests did not run.
static SKIP_NOTICE: Once = Once::new();

/// A store on the server of `KURRENTDB_URL` in a namespace no earlier run used.
async fn store() -> Option<Arc<KurrentDbEventStore>> {
    let Some(url) = std::env::var("KURRENTDB_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        SKIP_NOTICE.call_once(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "skipped: the KurrentDB subscription tests need KURRENTDB_URL \
                 (e.g. KURRENTDB_URL=kurrentdb://127.0.0.1:2113?tls=false)"
            );
        });
        return None;
    };
    let names = StreamNames::namespaced(&unique_name("subscription"));
    let store = KurrentDbEventStore::connect_with_names(&url, names)
        .await
        .expect("connect to the KurrentDB of KURRENTDB_URL");
    Some(Arc::new(store))
}

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("wallet id")
}

/// Appends each event of `events` on its own (so each position is known)
/// after `before` events of the wallet; returns the positions.
async fn append_each(
    store: &dyn EventStore,
    wallet_id: &WalletId,
    before: usize,
    events: &[WalletEvent],
) -> Vec<u64> {
    let mut positions = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let request = AppendRequest {
            streams: vec![StreamAppend {
                wallet_id: wallet_id.clone(),
                expected_version: (before + index) as u64,
                expected_last_event_id: None,
                events: vec![event.clone()],
            }],
            idempotent_response: None,
        };
        let outcome = store.append(request).await.expect("append");
        positions.push(outcome.last_position);
    }
    positions
}

/// The next `count` events of `feed`, within the wait bound.
async fn take(feed: &mut EventFeed, count: usize) -> Vec<RecordedEvent> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let next = tokio::time::timeout(WAIT_TIMEOUT, feed.next())
            .await
            .expect("the feed delivers within the wait bound")
            .expect("the feed does not end")
            .expect("the feed does not fail");
        events.push(next.decode().expect("a wallet event this build reads"));
    }
    events
}

async fn assert_quiet(feed: &mut EventFeed) {
    let next = tokio::time::timeout(QUIET_PERIOD, feed.next()).await;
    assert!(next.is_err(), "nothing more was appended: {next:?}");
}

#[tokio::test]
async fn a_feed_from_a_checkpoint_sees_later_appends_in_order() {
    let Some(store) = store().await else {
        return;
    };
    let (first, second) = (wallet("w-1"), wallet("w-2"));
    let before = continue_history(&first, &[], 3);
    let checkpoint = *append_each(store.as_ref(), &first, 0, &before)
        .await
        .last()
        .expect("three positions");

    let mut feed = store
        .subscribe_all(checkpoint)
        .await
        .expect("KurrentDB offers a live feed");
    let later = continue_history(&first, &before, 4);
    let other = continue_history(&second, &[], 2);
    // Pulled before the appends, so the subscription is live when they come.
    let expected = later.len() + other.len();
    let reader = tokio::spawn(async move {
        let seen = take(&mut feed, expected).await;
        (feed, seen)
    });
    tokio::time::sleep(SUBSCRIBE_GRACE).await;
    let mut positions = append_each(store.as_ref(), &first, before.len(), &later).await;
    positions.extend(append_each(store.as_ref(), &second, 0, &other).await);

    let (mut feed, seen) = reader.await.expect("the reader does not panic");
    let seen_positions: Vec<u64> = seen.iter().map(|event| event.position).collect();
    assert_eq!(seen_positions, positions, "every later append, in order");
    let expected_ids: Vec<_> = later
        .iter()
        .chain(&other)
        .map(|event| event.event_id)
        .collect();
    let seen_ids: Vec<_> = seen.iter().map(|event| event.event.event_id).collect();
    assert_eq!(seen_ids, expected_ids);
    assert_quiet(&mut feed).await;
}

#[tokio::test]
async fn a_feed_from_a_mid_checkpoint_starts_right_after_it() {
    let Some(store) = store().await else {
        return;
    };
    let wallet_id = wallet("w-1");
    let events = continue_history(&wallet_id, &[], 6);
    let positions = append_each(store.as_ref(), &wallet_id, 0, &events).await;

    let mut feed = store
        .subscribe_all(positions[2])
        .await
        .expect("KurrentDB offers a live feed");
    let seen = take(&mut feed, 3).await;
    let seen_positions: Vec<u64> = seen.iter().map(|event| event.position).collect();
    assert_eq!(
        seen_positions,
        positions[3..],
        "after the checkpoint, not at it"
    );
    let read = store.read_all(positions[2], 100).await.expect("read_all");
    assert_eq!(seen, read, "the feed's catch-up is what read_all reads");
    assert_quiet(&mut feed).await;
}

/// Positions taken, with the checkpoint moved after each batch.
#[derive(Default)]
struct MemorySink {
    taken: Mutex<Vec<u64>>,
}

impl MemorySink {
    fn taken(&self) -> Vec<u64> {
        self.taken.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl EventSink for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(self.taken().last().copied().unwrap_or(0))
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let mut taken = self.taken.lock().expect("not poisoned");
        let checkpoint = taken.last().copied().unwrap_or(0);
        taken.extend(
            batch
                .iter()
                .map(|event| event.position)
                .filter(|position| *position > checkpoint),
        );
        Ok(())
    }
}

/// Runs a relay from `store` to `sink` until it has delivered `position`.
async fn relay_until(store: &Arc<KurrentDbEventStore>, sink: &Arc<MemorySink>, position: u64) {
    let (progress_sender, mut progress) = watch::channel(0);
    let (shutdown, stopping) = watch::channel(false);
    let limits = RelayLimits {
        batch_size_max: 3,
        ..RelayLimits::default()
    };
    let relay = tokio::spawn(run_relay(
        Arc::clone(store) as Arc<dyn EventStore>,
        Arc::clone(sink) as Arc<dyn EventSink>,
        None,
        limits,
        progress_sender,
        stopping,
    ));
    let reached = tokio::time::timeout(WAIT_TIMEOUT, async {
        while *progress.borrow_and_update() < position {
            tokio::time::sleep(WAIT_POLL).await;
        }
    })
    .await;
    shutdown.send_replace(true);
    tokio::time::timeout(WAIT_TIMEOUT, relay)
        .await
        .expect("the relay stops when asked")
        .expect("the relay does not panic");
    assert!(reached.is_ok(), "the relay delivered up to {position}");
}

#[tokio::test]
async fn a_relay_on_the_feed_resumes_after_its_checkpoint() {
    let Some(store) = store().await else {
        return;
    };
    let wallet_id = wallet("w-1");
    let events = continue_history(&wallet_id, &[], 7);
    let mut positions = append_each(store.as_ref(), &wallet_id, 0, &events).await;
    let sink = Arc::new(MemorySink::default());
    relay_until(&store, &sink, positions[6]).await;
    assert_eq!(sink.taken(), positions);

    // Appended while no relay runs; the next one starts from the checkpoint.
    let more = continue_history(&wallet_id, &events, 5);
    positions.extend(append_each(store.as_ref(), &wallet_id, events.len(), &more).await);
    relay_until(&store, &sink, positions[11]).await;
    assert_eq!(sink.taken(), positions, "nothing lost, nothing twice");
}
