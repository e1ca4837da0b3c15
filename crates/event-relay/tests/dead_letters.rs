//! The relay's dead letters on the embedded store: an event a sink refuses
//! for good is parked and stepped over, the same wallet's later events are
//! parked behind it, other wallets flow, a transient refusal is never
//! parked, and a replay hands the parked events back in order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use event_relay::dead_letters::{
    DeadLetter, DeadLetterError, DeadLetterStore, EmbeddedDeadLetters, SinkDeadLetters,
};
use event_relay::{drain, replay_dead_letters, Outlet, RelayError, ReplayOutcome};
use event_sink::{DeliveryError, EventSink};
use event_store::{
    AppendRequest, EmbeddedEventStore, EventStore, RecordedEvent, StoredEvent, StreamAppend,
};
use wallet_domain::testing::continue_history;
use wallet_domain::{WalletEvent, WalletId};

const BATCH_SIZE_MAX: usize = 10;
const BATCHES_MAX: usize = 10;
const LETTERS_MAX: usize = 100;
const SINK: &str = "picky";

/// A sink that takes stored events, refusing (for good, or for now) every
/// batch holding one of the positions it is told to refuse.
#[derive(Default)]
struct PickySink {
    taken: Mutex<Vec<u64>>,
    refused: Mutex<HashSet<u64>>,
    refusal_is_transient: Mutex<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("a test lock is never poisoned")
}

impl PickySink {
    fn refusing(positions: &[u64], transient: bool) -> Self {
        let sink = Self::default();
        *lock(&sink.refused) = positions.iter().copied().collect();
        *lock(&sink.refusal_is_transient) = transient;
        sink
    }

    fn accept_everything(&self) {
        lock(&self.refused).clear();
    }

    fn taken(&self) -> Vec<u64> {
        lock(&self.taken).clone()
    }
}

#[async_trait]
impl EventSink for PickySink {
    fn name(&self) -> &'static str {
        SINK
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(lock(&self.taken).iter().copied().max().unwrap_or(0))
    }

    async fn deliver(&self, _batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        Err(DeliveryError::transient(
            SINK,
            "the relay hands stored events",
        ))
    }

    async fn deliver_stored(&self, batch: &[StoredEvent]) -> Result<(), DeliveryError> {
        let refused = lock(&self.refused);
        if let Some(event) = batch.iter().find(|event| refused.contains(&event.position)) {
            let why = format!("position {} breaks a constraint", event.position);
            let transient = *lock(&self.refusal_is_transient);
            return Err(DeliveryError::classified(SINK, why, transient));
        }
        lock(&self.taken).extend(batch.iter().map(|event| event.position));
        Ok(())
    }
}

struct Fixture {
    _data_dir: tempfile::TempDir,
    store: EmbeddedEventStore,
    dead_letters: EmbeddedDeadLetters,
    histories: Vec<(WalletId, Vec<WalletEvent>)>,
}

impl Fixture {
    fn new(wallets: &[&str]) -> Self {
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let store = EmbeddedEventStore::open(data_dir.path()).expect("open the store");
        let dead_letters = EmbeddedDeadLetters::open(data_dir.path()).expect("open dead letters");
        let histories = wallets
            .iter()
            .map(|wallet| (WalletId::parse(wallet).expect("wallet id"), Vec::new()))
            .collect();
        Self {
            _data_dir: data_dir,
            store,
            dead_letters,
            histories,
        }
    }

    /// Appends the next event of wallet number `wallet`.
    async fn append(&mut self, wallet: usize) {
        let (wallet_id, history) = &mut self.histories[wallet];
        let events = continue_history(wallet_id, history, 1);
        self.store
            .append(AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: wallet_id.clone(),
                    expected_version: history.len() as u64,
                    expected_last_event_id: None,
                    events: events.clone(),
                }],
                idempotent_response: None,
            })
            .await
            .expect("append");
        history.extend(events);
    }

    async fn drain(&self, sink: &PickySink, batch_size_max: usize) -> Result<u64, RelayError> {
        let outlet = Outlet::new(sink, Some(&self.dead_letters));
        drain(&self.store, outlet, batch_size_max, BATCHES_MAX).await
    }

    async fn parked(&self) -> Vec<(u64, String)> {
        self.dead_letters
            .list(SINK, LETTERS_MAX)
            .await
            .expect("list dead letters")
            .into_iter()
            .map(|letter| (letter.event.position, letter.wallet_id))
            .collect()
    }
}

/// Positions 1..=6: a-1, b-1, a-2, b-2, a-3, b-3.
async fn interleaved() -> Fixture {
    let mut fixture = Fixture::new(&["a", "b"]);
    for _ in 0..3 {
        fixture.append(0).await;
        fixture.append(1).await;
    }
    fixture
}

#[tokio::test]
async fn a_refused_event_is_parked_with_its_wallets_later_ones_and_other_wallets_flow() {
    let fixture = interleaved().await;
    let sink = PickySink::refusing(&[3], false);

    let last = fixture
        .drain(&sink, BATCH_SIZE_MAX)
        .await
        .expect("a refusal for good does not stop the relay");

    assert_eq!(last, 6);
    assert_eq!(sink.taken(), vec![1, 2, 4, 6], "wallet b flows");
    assert_eq!(
        fixture.parked().await,
        vec![(3, "a".to_owned()), (5, "a".to_owned())],
        "a-3 is parked behind a-2 without asking the sink"
    );
    let letters = fixture
        .dead_letters
        .list(SINK, LETTERS_MAX)
        .await
        .expect("list");
    assert!(
        letters[0].error.contains("position 3 breaks a constraint"),
        "the refusal's chain: {}",
        letters[0].error
    );
    assert_eq!(letters[0].event_type, "WalletCredited");
    assert!(
        letters[1].error.contains("earlier event parked"),
        "{}",
        letters[1].error
    );
}

#[tokio::test]
async fn a_replay_hands_the_parked_events_back_in_order_and_the_wallet_flows_again() {
    let mut fixture = interleaved().await;
    let sink = PickySink::refusing(&[3], false);
    fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("drained");
    sink.accept_everything();

    let outcome = replay_dead_letters(&sink, &fixture.dead_letters, LETTERS_MAX)
        .await
        .expect("replayed");

    assert_eq!(
        outcome,
        ReplayOutcome {
            replayed: 2,
            still_parked: 0
        }
    );
    assert_eq!(sink.taken(), vec![1, 2, 4, 6, 3, 5], "a-2 then a-3");
    assert!(fixture.parked().await.is_empty());
    fixture.append(0).await;
    fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("drained");
    assert_eq!(sink.taken().last(), Some(&7), "a-4 goes to the sink itself");
    let counts = fixture.dead_letters.counts().await.expect("counts");
    assert_eq!(
        counts,
        vec![SinkDeadLetters {
            sink: SINK.to_owned(),
            parked: 0,
            parked_total: 2
        }]
    );
}

/// The fixture's dead letters with its relay running beside a replay: after
/// the replay's first removal, the relay drains the log once, as a live
/// relay whose batch read the parked wallets before that removal would.
struct RelayBeside<'fixture> {
    fixture: &'fixture Fixture,
    sink: &'fixture PickySink,
    relayed: AtomicBool,
}

#[async_trait]
impl DeadLetterStore for RelayBeside<'_> {
    async fn park(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.fixture.dead_letters.park(letter).await
    }

    async fn parked_wallets(&self, sink: &str) -> Result<HashSet<String>, DeadLetterError> {
        self.fixture.dead_letters.parked_wallets(sink).await
    }

    async fn parked_through(&self, sink: &str) -> Result<u64, DeadLetterError> {
        self.fixture.dead_letters.parked_through(sink).await
    }

    async fn list(
        &self,
        sink: &str,
        letters_max: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        self.fixture.dead_letters.list(sink, letters_max).await
    }

    async fn remove(&self, sink: &str, position: u64) -> Result<(), DeadLetterError> {
        self.fixture.dead_letters.remove(sink, position).await?;
        if !self.relayed.swap(true, Ordering::SeqCst) {
            self.fixture
                .drain(self.sink, BATCH_SIZE_MAX)
                .await
                .expect("the relay drains");
        }
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<SinkDeadLetters>, DeadLetterError> {
        self.fixture.dead_letters.counts().await
    }
}

#[tokio::test]
async fn a_replay_beside_the_relay_also_hands_back_what_the_relay_parked_meanwhile() {
    // h144 F2: the replay said "0 still parked" while the relay had parked
    // the wallet's newer events behind the letters it was taking.
    let mut fixture = interleaved().await;
    let sink = PickySink::refusing(&[3], false);
    fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("drained");
    sink.accept_everything();
    fixture.append(0).await; // a-4 at 7, parked behind a-3 by the relay

    let beside = RelayBeside {
        fixture: &fixture,
        sink: &sink,
        relayed: AtomicBool::new(false),
    };
    let outcome = replay_dead_letters(&sink, &beside, LETTERS_MAX)
        .await
        .expect("replayed");

    assert_eq!(
        outcome,
        ReplayOutcome {
            replayed: 3,
            still_parked: 0
        }
    );
    assert_eq!(
        sink.taken(),
        vec![1, 2, 4, 6, 3, 5, 7],
        "a-2, a-3, then a-4"
    );
    assert!(fixture.parked().await.is_empty());
}

#[tokio::test]
async fn a_limited_replay_counts_the_letters_it_left_unlisted() {
    // h145 F1: a replay's limit left letters it did not list, and it said
    // none were still parked.
    let fixture = interleaved().await;
    let sink = PickySink::refusing(&[3], false);
    fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("drained");
    sink.accept_everything();

    let limited = replay_dead_letters(&sink, &fixture.dead_letters, 1)
        .await
        .expect("replayed");
    assert_eq!(
        limited,
        ReplayOutcome {
            replayed: 1,
            still_parked: 1
        }
    );
    let rest = replay_dead_letters(&sink, &fixture.dead_letters, LETTERS_MAX)
        .await
        .expect("replayed");
    assert_eq!(
        rest,
        ReplayOutcome {
            replayed: 1,
            still_parked: 0
        }
    );
}

#[tokio::test]
async fn a_letter_refused_again_on_replay_keeps_its_wallets_later_ones_parked() {
    let mut fixture = interleaved().await;
    fixture.append(1).await; // b-4 at 7
    let sink = PickySink::refusing(&[3, 4], false);
    fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("drained");
    assert_eq!(sink.taken(), vec![1, 2]);
    *lock(&sink.refused) = HashSet::from([3]);

    let outcome = replay_dead_letters(&sink, &fixture.dead_letters, LETTERS_MAX)
        .await
        .expect("replayed");

    assert_eq!(
        outcome,
        ReplayOutcome {
            replayed: 3,
            still_parked: 2
        }
    );
    assert_eq!(sink.taken(), vec![1, 2, 4, 6, 7], "wallet b back, in order");
    assert_eq!(
        fixture.parked().await,
        vec![(3, "a".to_owned()), (5, "a".to_owned())]
    );
}

#[tokio::test]
async fn a_parked_last_event_is_read_past_even_in_batches_of_one() {
    let fixture = interleaved().await;
    let sink = PickySink::refusing(&[6], false);

    let last = fixture.drain(&sink, 1).await.expect("drained");
    let again = fixture.drain(&sink, 1).await.expect("drained again");

    assert_eq!((last, again), (6, 6), "the parked event is not read again");
    assert_eq!(sink.taken(), vec![1, 2, 3, 4, 5]);
    let counts = fixture.dead_letters.counts().await.expect("counts");
    assert_eq!((counts[0].parked, counts[0].parked_total), (1, 1));
}

#[tokio::test]
async fn a_transient_refusal_is_retried_and_never_parked() {
    let fixture = interleaved().await;
    let sink = PickySink::refusing(&[3], true);

    let failed = fixture.drain(&sink, BATCH_SIZE_MAX).await;

    assert!(matches!(failed, Err(RelayError::Sink(_))), "{failed:?}");
    assert!(fixture.parked().await.is_empty(), "nothing parked");
    sink.accept_everything();
    let last = fixture.drain(&sink, BATCH_SIZE_MAX).await.expect("passes");
    assert_eq!(last, 6);
    assert_eq!(sink.taken(), vec![1, 2, 3, 4, 5, 6]);
}
