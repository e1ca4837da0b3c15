//! `run_relay` on a store with a live feed, without a server: the store is an
//! in-memory log whose `subscribe_all` is a real stream, fed through a bounded
//! channel by a task that follows the log (so the relay's own batching,
//! back-pressure, resubscription and shutdown run as in production), and the
//! sink keeps its checkpoint in memory and moves it only after a delivery.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use event_relay::{run_relay, RelayLimits};
use event_sink::{DeliveryError, EventSink};
use event_store::{
    AppendError, AppendOutcome, AppendRequest, EventFeed, EventStore, IdempotentResponse,
    RecordedEvent, StoreError, StoredEvent,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use wallet_domain::testing::continue_history;
use wallet_domain::{WalletEvent, WalletId};

/// Bound on any wait for the relay.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(5);
/// Events a feed's channel holds ahead of the relay (the back-pressure bound).
const FEED_CHANNEL_CAPACITY: usize = 8;
/// Positions are spaced, as KurrentDB's log positions are.
const POSITION_STEP: u64 = 10;
const BATCH_SIZE_MAX: usize = 4;

fn limits() -> RelayLimits {
    RelayLimits {
        batch_size_max: BATCH_SIZE_MAX,
        poll_interval_ms: 20,
        retry_backoff_ms: 10,
        linger_ms: 2,
        give_up_after_failing_ms: None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("a test lock is never poisoned")
}

/// `count` events of one wallet: a creation, then credits.
fn history(count: usize) -> Vec<WalletEvent> {
    let wallet = WalletId::parse("w-1").expect("wallet id");
    continue_history(&wallet, &[], count)
}

/// How a feed misbehaves once, for the resubscription tests.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Yields an error after this many events.
    ErrorAfter(usize),
    /// Ends after this many events.
    EndAfter(usize),
    /// Yields the event at the subscription's start first, against the port.
    RepeatsItsStart,
}

/// An in-memory log with a live feed (or without one, as the embedded and
/// PostgreSQL stores are).
struct FeedStore {
    log: Arc<Mutex<Vec<RecordedEvent>>>,
    head: watch::Sender<u64>,
    offers_feed: bool,
    /// The next feed's fault, taken by it.
    fault: Mutex<Option<Fault>>,
    /// The position each feed was opened after, in order.
    subscriptions: Mutex<Vec<u64>>,
    read_all_calls: Mutex<usize>,
    /// Events every feed has handed over to its channel.
    sent: Arc<AtomicUsize>,
}

impl FeedStore {
    fn new(offers_feed: bool) -> Arc<Self> {
        Arc::new(Self {
            log: Arc::new(Mutex::new(Vec::new())),
            head: watch::Sender::new(0),
            offers_feed,
            fault: Mutex::new(None),
            subscriptions: Mutex::new(Vec::new()),
            read_all_calls: Mutex::new(0),
            sent: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Appends `events`; returns their positions.
    fn push(&self, events: Vec<WalletEvent>) -> Vec<u64> {
        let mut log = lock(&self.log);
        let mut positions = Vec::with_capacity(events.len());
        for event in events {
            let position = (log.len() as u64 + 1) * POSITION_STEP;
            let stream_version = log.len() as u64 + 1;
            log.push(RecordedEvent {
                position,
                stream_version,
                event,
            });
            positions.push(position);
        }
        if let Some(&last) = positions.last() {
            self.head.send_replace(last);
        }
        positions
    }

    fn fail_next_feed(&self, fault: Fault) {
        *lock(&self.fault) = Some(fault);
    }

    fn subscriptions(&self) -> Vec<u64> {
        lock(&self.subscriptions).clone()
    }

    fn after(&self, position: u64, limit: usize) -> Vec<RecordedEvent> {
        lock(&self.log)
            .iter()
            .filter(|event| event.position > position)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Follows the log from `after` into `sender`, waiting for appends, until the
/// reader drops the feed or the fault strikes; counts what it sent in `total`.
/// The feed's form of a logged event: as stored.
fn stored(event: &RecordedEvent) -> StoredEvent {
    StoredEvent::from_recorded(event).expect("a logged event encodes")
}

async fn follow(
    log: Arc<Mutex<Vec<RecordedEvent>>>,
    mut head: watch::Receiver<u64>,
    mut after: u64,
    fault: Option<Fault>,
    sender: mpsc::Sender<Result<StoredEvent, StoreError>>,
    total: Arc<AtomicUsize>,
) {
    let mut sent = 0;
    if let Some(Fault::RepeatsItsStart) = fault {
        let start = lock(&log)
            .iter()
            .find(|event| event.position == after)
            .cloned();
        if let Some(start) = start {
            let _ = sender.send(Ok(stored(&start))).await;
        }
    }
    loop {
        let next = lock(&log)
            .iter()
            .find(|event| event.position > after)
            .cloned();
        let Some(event) = next else {
            if head.changed().await.is_err() {
                return;
            }
            continue;
        };
        match fault {
            Some(Fault::ErrorAfter(count)) if sent == count => {
                let error = StoreError::Unavailable("the feed broke".to_owned());
                let _ = sender.send(Err(error)).await;
                return;
            }
            Some(Fault::EndAfter(count)) if sent == count => return,
            _ => {}
        }
        after = event.position;
        // Waits while the channel is full: the relay's pace is the feed's.
        if sender.send(Ok(stored(&event))).await.is_err() {
            return;
        }
        sent += 1;
        total.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventStore for FeedStore {
    async fn append(&self, _request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        Err(StoreError::Unavailable("the relay never appends".to_owned()).into())
    }

    async fn read_stream(
        &self,
        _wallet_id: &WalletId,
        _after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(StoreError::Unavailable(
            "the relay never reads a stream".to_owned(),
        ))
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        *lock(&self.read_all_calls) += 1;
        Ok(self.after(after_position, limit))
    }

    async fn subscribe_all(&self, after_position: u64) -> Option<EventFeed> {
        if !self.offers_feed {
            return None;
        }
        lock(&self.subscriptions).push(after_position);
        let fault = lock(&self.fault).take();
        let (sender, mut receiver) = mpsc::channel(FEED_CHANNEL_CAPACITY);
        tokio::spawn(follow(
            Arc::clone(&self.log),
            self.head.subscribe(),
            after_position,
            fault,
            sender,
            Arc::clone(&self.sent),
        ));
        let events = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
        Some(Box::pin(events))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(*self.head.borrow())
    }

    async fn find_idempotent_response(
        &self,
        _key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        Ok(None)
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn kind(&self) -> &'static str {
        "in-memory feed"
    }
}

/// A sink that keeps what it took and its checkpoint in memory, and can be
/// told to refuse one delivery or to hold deliveries back.
#[derive(Default)]
struct RecordingSink {
    /// While true, a delivery waits (a slow sink).
    paused: watch::Sender<bool>,
    checkpoint: Mutex<u64>,
    /// Every batch taken, as positions.
    batches: Mutex<Vec<Vec<u64>>>,
    /// Events offered at or before the checkpoint (a replay).
    replayed: Mutex<usize>,
    /// The delivery (counted from 1) to refuse.
    refuse_delivery: Mutex<Option<usize>>,
    /// Every delivery is refused (a sink whose server is out of reach).
    refuse_every_delivery: AtomicBool,
    deliveries: Mutex<usize>,
    /// How long each delivery takes (a sink's transaction).
    delivery_time: Mutex<Duration>,
}

impl RecordingSink {
    fn at_checkpoint(position: u64) -> Arc<Self> {
        let sink = Self::default();
        *lock(&sink.checkpoint) = position;
        Arc::new(sink)
    }

    fn delivered(&self) -> Vec<u64> {
        lock(&self.batches).iter().flatten().copied().collect()
    }
}

#[async_trait]
impl EventSink for RecordingSink {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(*lock(&self.checkpoint))
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let mut paused = self.paused.subscribe();
        if paused.wait_for(|paused| !paused).await.is_err() {
            return Err(DeliveryError::transient(
                "recording",
                "the pause switch is gone",
            ));
        }
        let delivery_time = *lock(&self.delivery_time);
        tokio::time::sleep(delivery_time).await;
        let delivery = {
            let mut deliveries = lock(&self.deliveries);
            *deliveries += 1;
            *deliveries
        };
        if self.refuse_every_delivery.load(Ordering::Relaxed) {
            return Err(DeliveryError::transient("recording", "out of reach"));
        }
        if *lock(&self.refuse_delivery) == Some(delivery) {
            return Err(DeliveryError::transient("recording", "refused once"));
        }
        let mut checkpoint = lock(&self.checkpoint);
        let fresh: Vec<u64> = batch
            .iter()
            .map(|event| event.position)
            .filter(|position| *position > *checkpoint)
            .collect();
        *lock(&self.replayed) += batch.len() - fresh.len();
        if let Some(&last) = fresh.last() {
            *checkpoint = last;
        }
        lock(&self.batches).push(batch.iter().map(|event| event.position).collect());
        Ok(())
    }
}

/// A running relay and the handles to watch and stop it.
struct Relay {
    task: JoinHandle<()>,
    progress: watch::Receiver<u64>,
    shutdown: watch::Sender<bool>,
}

fn start(store: &Arc<FeedStore>, sink: &Arc<RecordingSink>) -> Relay {
    start_with(store, sink, limits())
}

fn start_with(store: &Arc<FeedStore>, sink: &Arc<RecordingSink>, limits: RelayLimits) -> Relay {
    let (progress_sender, progress) = watch::channel(0);
    let (shutdown, stopping) = watch::channel(false);
    let task = tokio::spawn(run_relay(
        Arc::clone(store) as Arc<dyn EventStore>,
        Arc::clone(sink) as Arc<dyn EventSink>,
        None,
        limits,
        progress_sender,
        stopping,
    ));
    Relay {
        task,
        progress,
        shutdown,
    }
}

impl Relay {
    async fn reaches(&mut self, position: u64) {
        let reached = tokio::time::timeout(WAIT_TIMEOUT, async {
            while *self.progress.borrow() < position {
                tokio::time::sleep(WAIT_POLL).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "the relay reached {} of {position}",
            *self.progress.borrow()
        );
    }

    async fn stop(self) {
        self.shutdown.send_replace(true);
        tokio::time::timeout(WAIT_TIMEOUT, self.task)
            .await
            .expect("the relay stops when asked")
            .expect("the relay task does not panic");
    }
}

#[track_caller]
fn assert_exactly_once_in_order(sink: &RecordingSink, expected: &[u64]) {
    assert_eq!(sink.delivered(), expected, "every event once, in order");
    assert_eq!(*lock(&sink.replayed), 0, "nothing before the checkpoint");
    for batch in lock(&sink.batches).iter() {
        assert!(
            !batch.is_empty() && batch.len() <= BATCH_SIZE_MAX,
            "a batch of {} events",
            batch.len()
        );
    }
}

#[tokio::test]
async fn a_live_feed_delivers_the_backlog_and_new_events_in_order_in_bounded_batches() {
    let store = FeedStore::new(true);
    let mut positions = store.push(history(25));
    let sink = RecordingSink::at_checkpoint(0);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[24]).await;
    let more = history(10);
    positions.extend(store.push(more));
    relay.reaches(positions[34]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions);
    assert_eq!(store.subscriptions(), vec![0], "one feed, never reopened");
    assert_eq!(*lock(&store.read_all_calls), 0, "a live feed is not polled");
    assert!(
        lock(&sink.batches).len() < positions.len(),
        "a backlog goes in batches, not one event at a time"
    );
}

#[tokio::test]
async fn a_feed_opens_after_the_sink_checkpoint() {
    let store = FeedStore::new(true);
    let positions = store.push(history(12));
    let sink = RecordingSink::at_checkpoint(positions[4]);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[11]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions[5..]);
    assert_eq!(store.subscriptions(), vec![positions[4]]);
}

/// A feed that fails or ends after `fault`: the relay opens another from the
/// sink's checkpoint and goes on with no gap and nothing twice.
async fn a_broken_feed_is_reopened_from_the_checkpoint(fault: Fault) {
    let store = FeedStore::new(true);
    let positions = store.push(history(20));
    store.fail_next_feed(fault);
    let sink = RecordingSink::at_checkpoint(0);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[19]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions);
    let subscriptions = store.subscriptions();
    assert_eq!(subscriptions.len(), 2, "reopened once: {subscriptions:?}");
    assert_eq!(subscriptions[0], 0);
    assert!(
        positions.contains(&subscriptions[1]),
        "reopened at a delivered position: {subscriptions:?}"
    );
}

#[tokio::test]
async fn a_feed_that_fails_mid_batch_is_reopened_from_the_checkpoint() {
    a_broken_feed_is_reopened_from_the_checkpoint(Fault::ErrorAfter(6)).await;
}

#[tokio::test]
async fn a_feed_that_ends_is_reopened_from_the_checkpoint() {
    a_broken_feed_is_reopened_from_the_checkpoint(Fault::EndAfter(9)).await;
}

#[tokio::test]
async fn a_feed_that_repeats_its_start_is_reopened_rather_than_delivered_twice() {
    let store = FeedStore::new(true);
    let positions = store.push(history(10));
    let sink = RecordingSink::at_checkpoint(positions[2]);
    store.fail_next_feed(Fault::RepeatsItsStart);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[9]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions[3..]);
    assert_eq!(store.subscriptions(), vec![positions[2], positions[2]]);
}

#[tokio::test]
async fn a_refused_delivery_reopens_the_feed_at_the_checkpoint() {
    let store = FeedStore::new(true);
    let positions = store.push(history(16));
    let sink = RecordingSink::at_checkpoint(0);
    *lock(&sink.refuse_delivery) = Some(2);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[15]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions);
    let subscriptions = store.subscriptions();
    let first_batch = lock(&sink.batches)[0].clone();
    assert_eq!(
        subscriptions,
        vec![0, *first_batch.last().expect("a batch has events")],
        "reopened right after the one batch taken"
    );
}

/// With a bound on failing, a relay whose every batch fails ends by itself
/// (an elected relay then steps down); without one it keeps trying.
#[tokio::test]
async fn a_relay_failing_past_its_bound_ends_by_itself() {
    const GIVE_UP_AFTER_MS: u64 = 100;
    let store = FeedStore::new(false);
    store.push(history(3));
    let sink = RecordingSink::at_checkpoint(0);
    sink.refuse_every_delivery.store(true, Ordering::Relaxed);
    let patient = start(&store, &sink);
    let giving_up = start_with(
        &store,
        &sink,
        RelayLimits {
            give_up_after_failing_ms: Some(GIVE_UP_AFTER_MS),
            ..limits()
        },
    );
    tokio::time::timeout(WAIT_TIMEOUT, giving_up.task)
        .await
        .expect("the relay ends once its batches failed for the bound")
        .expect("the relay task does not panic");
    assert!(
        !patient.task.is_finished(),
        "a relay without a bound keeps trying"
    );
    patient.stop().await;
    assert!(sink.delivered().is_empty());
}

#[tokio::test]
async fn shutdown_stops_a_relay_waiting_on_its_feed() {
    let store = FeedStore::new(true);
    let positions = store.push(history(3));
    let sink = RecordingSink::at_checkpoint(0);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[2]).await;
    // Nothing more comes: the relay waits on the feed until told to stop.
    relay.stop().await;
    store.push(history(2));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(sink.delivered(), positions, "nothing after the stop");
}

#[tokio::test]
async fn a_store_without_a_feed_is_polled() {
    let store = FeedStore::new(false);
    let mut positions = store.push(history(9));
    let sink = RecordingSink::at_checkpoint(0);
    let mut relay = start(&store, &sink);
    relay.reaches(positions[8]).await;
    positions.extend(store.push(history(3)));
    relay.reaches(positions[11]).await;
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions);
    assert!(store.subscriptions().is_empty());
    assert!(*lock(&store.read_all_calls) > 0);
}

/// A polled relay under a steady load: appends every `APPEND_EVERY`, each
/// delivery taking `DELIVERY_TIME`, so every read after a delivery finds
/// events. A batch must carry the linger's appends, not one delivery's.
#[tokio::test]
async fn a_polled_relay_under_a_steady_load_batches_what_the_linger_gathers() {
    const LINGER_MS: u64 = 100;
    const APPEND_EVERY: Duration = Duration::from_millis(1);
    const DELIVERY_TIME: Duration = Duration::from_millis(10);
    const LOAD: Duration = Duration::from_millis(600);
    let store = FeedStore::new(false);
    let sink = RecordingSink::at_checkpoint(0);
    *lock(&sink.delivery_time) = DELIVERY_TIME;
    let mut relay = start_with(
        &store,
        &sink,
        RelayLimits {
            batch_size_max: 1_000,
            linger_ms: LINGER_MS,
            ..limits()
        },
    );
    let began = std::time::Instant::now();
    let mut events = history(2_000).into_iter();
    let mut positions = Vec::new();
    while began.elapsed() < LOAD {
        positions.extend(store.push(events.next().into_iter().collect()));
        tokio::time::sleep(APPEND_EVERY).await;
    }
    let last = *positions.last().expect("events were appended");
    relay.reaches(last).await;
    let lasted = began.elapsed();
    relay.stop().await;

    assert_eq!(sink.delivered(), positions, "every event once, in order");
    let batches = lock(&sink.batches).len();
    // One batch a linger, and the one that met the load's end (without the
    // spacing, one a delivery: about 60).
    let bound = lasted.as_millis() / u128::from(LINGER_MS) + 2;
    assert!(
        batches as u128 <= bound,
        "{batches} batches in {lasted:?}, at most {bound} with a {LINGER_MS} ms linger"
    );
}

/// A full batch means the relay is behind: the next read follows at once,
/// not after the linger.
#[tokio::test]
async fn a_polled_relay_behind_the_log_reads_on_without_lingering() {
    const LINGER_MS: u64 = 2_000;
    let store = FeedStore::new(false);
    let positions = store.push(history(10 * BATCH_SIZE_MAX));
    let sink = RecordingSink::at_checkpoint(0);
    let began = std::time::Instant::now();
    let mut relay = start_with(
        &store,
        &sink,
        RelayLimits {
            linger_ms: LINGER_MS,
            ..limits()
        },
    );
    relay.reaches(*positions.last().expect("a backlog")).await;
    let lasted = began.elapsed();
    relay.stop().await;

    assert_exactly_once_in_order(&sink, &positions);
    assert!(
        lasted < Duration::from_millis(LINGER_MS),
        "ten full batches took {lasted:?}"
    );
}

#[tokio::test]
async fn a_slow_sink_holds_the_feed_back_instead_of_buffering() {
    let store = FeedStore::new(true);
    let positions = store.push(history(100));
    let sink = RecordingSink::at_checkpoint(0);
    sink.paused.send_replace(true);
    let mut relay = start(&store, &sink);
    // The relay holds one batch (its delivery waits) and the feed's channel
    // fills; then nothing more leaves the log.
    let filled = tokio::time::timeout(WAIT_TIMEOUT, async {
        while store.sent.load(Ordering::SeqCst) <= FEED_CHANNEL_CAPACITY {
            tokio::time::sleep(WAIT_POLL).await;
        }
    })
    .await;
    assert!(
        filled.is_ok(),
        "the relay took a batch and the channel filled"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = store.sent.load(Ordering::SeqCst);
    assert!(
        sent <= BATCH_SIZE_MAX + FEED_CHANNEL_CAPACITY,
        "{sent} events left the log: at most one batch in the relay and a full channel"
    );
    assert!(sink.delivered().is_empty(), "the delivery is still waiting");

    sink.paused.send_replace(false);
    relay.reaches(positions[99]).await;
    relay.stop().await;
    assert_exactly_once_in_order(&sink, &positions);
}
