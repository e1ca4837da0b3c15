//! The relay: reads the event log in global order from a sink's checkpoint
//! and hands it to the sink in bounded batches.
//!
//! A sink records its checkpoint only once it has durably taken a batch, so a
//! crash at any moment replays at most the last batch, which sinks
//! deduplicate by event id. Nothing is skipped, nothing is applied twice.
//!
//! The batches come from the store's live feed when it offers one
//! ([`EventStore::subscribe_all`], KurrentDB) and from polling `read_all`
//! otherwise (embedded, PostgreSQL); see the `source` module. One delivery
//! loop serves both, so the guarantees above do not depend on where a batch
//! came from.
//!
//! The relay moves events as stored ([`StoredEvent`]), not decoded: an event
//! this build cannot decode (a newer schema version written during a rolling
//! upgrade) does not stop it. A sink that moves bytes (the Kafka publisher)
//! takes them as they are; a sink that applies events decodes them
//! ([`EventSink::deliver_stored`]'s default) and fails on what it cannot read.
//!
//! The sinks implement the one delivery contract, [`event_sink::EventSink`],
//! which the Kafka consumers' loop uses too. This loop retries a transient
//! failure after [`RelayLimits::retry_backoff_ms`], without end. A permanent
//! one, with a dead-letter store ([`dead_letters`]; the embedded default's
//! projections), parks the event the sink refuses and every later event of
//! its wallet, and the sink goes on; [`replay_dead_letters`] hands them back
//! in order. Without one (the Kafka publisher), it is retried like the rest.

pub mod dead_letters;
mod outlet;
mod replay;
mod source;

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_sink::{DeliveryError, EventSink};
use event_store::{EventStore, StoreError, StoredEvent, READ_ALL_BATCH_MAX};
use observability::LogThrottle;
use tokio::sync::watch;

use crate::dead_letters::{DeadLetterError, DeadLetterStore};
use crate::source::BatchSource;

pub use outlet::Outlet;
pub use replay::{replay_dead_letters, ReplayOutcome};

/// Limits of one relay loop.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Events in one batch, and so the most events the relay holds at once
    /// (at most [`READ_ALL_BATCH_MAX`]): a live feed is not pulled while a
    /// batch is delivered, so a slow sink holds the store back instead of
    /// filling memory.
    pub batch_size_max: usize,
    /// How often the log is polled when no append wakes the relay (another
    /// process may be appending). Unused with a live feed.
    pub poll_interval_ms: u64,
    /// Pause after a failed read or delivery, or a live feed that failed or
    /// ended, before the relay starts again from the sink's checkpoint; it
    /// doubles with each failure in a row (see [`RelayLimits::backoff_ms`]).
    pub retry_backoff_ms: u64,
    /// Wait after a wake-up (polling) or a first event (live feed) before the
    /// batch is closed, so one batch carries the appends of many requests
    /// instead of one transaction each; polling, also the least time between
    /// the starts of two reads after one that found a batch short of
    /// [`Self::batch_size_max`] (a full one is followed at once).
    pub linger_ms: u64,
    /// How long, in ms, batches may fail in a row (counted from the first
    /// failure, judged at each one) before the relay ends: an elected relay
    /// then gives up its leadership, so a replica whose path to the log and
    /// the sink works can lead. `None`: it retries without end (a relay with
    /// no one to hand over to, as the embedded default's projections).
    pub give_up_after_failing_ms: Option<u64>,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            batch_size_max: 500,
            poll_interval_ms: 200,
            retry_backoff_ms: 500,
            linger_ms: 5,
            give_up_after_failing_ms: None,
        }
    }
}

/// The longest pause between two attempts of a failing batch, in ms. The
/// pause doubles from [`RelayLimits::retry_backoff_ms`] with each failure in
/// a row, so a storage away for minutes is asked a few times a minute, not
/// twice a second.
pub const RELAY_RETRY_BACKOFF_MAX_MS: u64 = 5_000;

impl RelayLimits {
    /// The pause after `failures` failed batches in a row (at least one):
    /// [`Self::retry_backoff_ms`] doubled with each further one, at most
    /// [`RELAY_RETRY_BACKOFF_MAX_MS`] (or the base, when that is larger).
    pub fn backoff_ms(&self, failures: u64) -> u64 {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        self.retry_backoff_ms
            .saturating_mul(1_u64 << doublings)
            .min(RELAY_RETRY_BACKOFF_MAX_MS.max(self.retry_backoff_ms))
    }

    /// The batch size in force: [`Self::batch_size_max`] within 1 and
    /// [`READ_ALL_BATCH_MAX`], so a feed's batches obey the bound of a read.
    fn batch_size(&self) -> usize {
        self.batch_size_max.clamp(1, READ_ALL_BATCH_MAX)
    }
}

/// Why a relay's batch (or a replay) did not go through; the relay starts
/// again from the checkpoint after any of them.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] DeliveryError),
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    #[error("the event store's live feed ended")]
    FeedEnded,
    /// A feed broke its promise of strictly increasing positions: the relay
    /// starts again from the sink's checkpoint rather than deliver it.
    #[error("the live feed sent position {position} after position {after}")]
    FeedOutOfOrder { position: u64, after: u64 },
}

/// Relays until `shutdown` turns true (or its sender goes away), publishing
/// each delivered position on `progress` (readers use it to wait for a sink
/// to catch up). The batch in hand is always finished first. After any
/// failure the relay pauses and starts again from the sink's checkpoint,
/// dropping a live feed and opening a new one; once batches have failed in
/// a row for [`RelayLimits::give_up_after_failing_ms`], it ends instead.
/// With `dead_letters`, what the sink refuses for good is parked there (see
/// [`Outlet::new`]).
pub async fn run_relay(
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    dead_letters: Option<Arc<dyn DeadLetterStore>>,
    limits: RelayLimits,
    progress: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let outlet = Outlet::new(sink.as_ref(), dead_letters.as_deref());
    if let Ok(checkpoint) = outlet.checkpoint().await {
        progress.send_replace(checkpoint);
    }
    let mut source = BatchSource::new();
    let mut failing = Failing::default();
    while !stopping(&shutdown) {
        let delivered = match source
            .next_batch(store.as_ref(), outlet, &limits, &mut shutdown)
            .await
        {
            Ok(batch) => outlet.deliver(&batch).await,
            Err(error) => Err(error),
        };
        match delivered {
            Ok(Some(position)) => {
                failing.recovered(sink.name());
                progress.send_replace(position);
            }
            Ok(None) => failing.read_nothing(),
            Err(error) => {
                let now = Instant::now();
                failing.failed(sink.name(), &error, now);
                if let Some(bound_ms) = limits.give_up_after_failing_ms {
                    if failing.for_at_least(bound_ms, now) {
                        tracing::warn!(
                            sink = sink.name(),
                            failing_for_ms = bound_ms,
                            "relay gives up: its batches keep failing"
                        );
                        return;
                    }
                }
                source.restart();
                let pause = limits.backoff_ms(failing.batches.in_a_row());
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
                }
            }
        }
    }
}

/// How often, at most, a relay whose batches keep failing says so again,
/// in ms (the first failure is logged at once, and the recovery).
pub const RELAY_FAILURE_LOG_INTERVAL_MS: u64 = 60_000;

/// A relay's failed batches since it last delivered one: a storage away fails
/// every retry (twice a second), and the log says so once, then once a
/// [`RELAY_FAILURE_LOG_INTERVAL_MS`], then when it delivers again.
struct Failing {
    batches: LogThrottle,
    /// When the failures in a row began; `None` while the relay works (it
    /// delivered, or read the log and found nothing to deliver).
    since: Option<Instant>,
}

impl Default for Failing {
    fn default() -> Self {
        Self {
            batches: LogThrottle::every(Duration::from_millis(RELAY_FAILURE_LOG_INTERVAL_MS)),
            since: None,
        }
    }
}

impl Failing {
    /// Counts a failed batch at `now`; says whether it was logged.
    fn failed(&mut self, sink: &str, error: &RelayError, now: Instant) -> bool {
        self.since.get_or_insert(now);
        let Some(line) = self.batches.occurred(now) else {
            return false;
        };
        tracing::warn!(
            sink,
            %error,
            failed_batches = line.in_a_row,
            "relay batch failed; starting again from the checkpoint"
        );
        true
    }

    /// Whether batches have failed in a row for `bound_ms` or longer at `now`.
    fn for_at_least(&self, bound_ms: u64, now: Instant) -> bool {
        self.since
            .is_some_and(|since| now.duration_since(since) >= Duration::from_millis(bound_ms))
    }

    /// The log was read and had nothing to deliver: the relay works, though
    /// no batch was delivered (the failures stay counted for the log line).
    fn read_nothing(&mut self) {
        self.since = None;
    }

    /// A batch was delivered; says whether that ended failures (and was
    /// logged).
    fn recovered(&mut self, sink: &str) -> bool {
        self.since = None;
        let Some(failed_batches) = self.batches.recovered() else {
            return false;
        };
        tracing::info!(sink, failed_batches, "relay delivers again");
        true
    }
}

/// Whether the relay must stop: asked to, or no one left to ask.
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Up to `batch_size_max` events after the outlet's checkpoint, read from the log.
async fn read_after_checkpoint(
    store: &dyn EventStore,
    outlet: Outlet<'_>,
    batch_size_max: usize,
) -> Result<Vec<StoredEvent>, RelayError> {
    let checkpoint = outlet.checkpoint().await?;
    Ok(store.read_all_stored(checkpoint, batch_size_max).await?)
}

/// Delivers the next batch after the outlet's checkpoint, if any; returns its
/// last position. Tests and tools call it to drain a sink without sleeping.
pub async fn relay_once<'a>(
    store: &dyn EventStore,
    outlet: impl Into<Outlet<'a>>,
    batch_size_max: usize,
) -> Result<Option<u64>, RelayError> {
    let outlet = outlet.into();
    let batch = read_after_checkpoint(store, outlet, batch_size_max).await?;
    outlet.deliver(&batch).await
}

/// Delivers batches until the outlet has caught up with the log.
pub async fn drain<'a>(
    store: &dyn EventStore,
    outlet: impl Into<Outlet<'a>>,
    batch_size_max: usize,
    batches_max: usize,
) -> Result<u64, RelayError> {
    let outlet = outlet.into();
    let mut last = outlet.checkpoint().await?;
    for _ in 0..batches_max {
        match relay_once(store, outlet, batch_size_max).await? {
            Some(position) => last = position,
            None => return Ok(last),
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_with_each_failure_in_a_row_up_to_its_bound() {
        let limits = RelayLimits::default();
        let pauses: Vec<u64> = (1..=6)
            .map(|failures| limits.backoff_ms(failures))
            .collect();
        assert_eq!(pauses, [500, 1_000, 2_000, 4_000, 5_000, 5_000]);
        assert_eq!(limits.backoff_ms(u64::MAX), RELAY_RETRY_BACKOFF_MAX_MS);
        let slow = RelayLimits {
            retry_backoff_ms: 9_000,
            ..RelayLimits::default()
        };
        assert_eq!(slow.backoff_ms(3), 9_000, "a base above the bound is kept");
    }

    #[test]
    fn failed_batches_are_logged_once_an_interval_and_counted_until_one_is_delivered() {
        let mut failing = Failing::default();
        let error = RelayError::FeedEnded;
        let start = Instant::now();
        let interval = Duration::from_millis(RELAY_FAILURE_LOG_INTERVAL_MS);
        assert!(
            failing.failed("ledger", &error, start),
            "the first failure is logged"
        );
        assert!(
            !failing.failed("ledger", &error, start + interval / 2),
            "held back within the interval"
        );
        assert!(!failing.failed("ledger", &error, start + interval / 2));
        assert_eq!(failing.batches.in_a_row(), 3);
        assert!(
            failing.failed("ledger", &error, start + interval),
            "logged again once the interval is over"
        );
        assert!(failing.recovered("ledger"), "the recovery is logged");
        assert_eq!(failing.batches.in_a_row(), 0);
        assert!(!failing.recovered("ledger"), "once");
        assert!(
            failing.failed("ledger", &error, start + interval),
            "a new outage is logged at once"
        );
    }

    #[test]
    fn failures_in_a_row_are_timed_from_the_first_until_the_relay_works_again() {
        let mut failing = Failing::default();
        let error = RelayError::FeedEnded;
        let start = Instant::now();
        let bound_ms = 1_000;
        let bound = Duration::from_millis(bound_ms);
        assert!(!failing.for_at_least(bound_ms, start), "no failure yet");
        failing.failed("kafka", &error, start);
        failing.failed("kafka", &error, start + bound / 2);
        assert!(!failing.for_at_least(bound_ms, start + bound / 2));
        assert!(
            failing.for_at_least(bound_ms, start + bound),
            "timed from the first failure"
        );
        failing.read_nothing();
        assert!(
            !failing.for_at_least(bound_ms, start + bound),
            "a read with nothing to deliver ends the run"
        );
        failing.failed("kafka", &error, start + bound);
        failing.recovered("kafka");
        assert!(
            !failing.for_at_least(bound_ms, start + 3 * bound),
            "so does a delivery"
        );
    }
}
