//! Whether events flow from the event store to their consumers: the seed's
//! `/health/kafka` report (`producer.connected`, `publisher.isRunning`,
//! `unprocessedEvents`, `lagMs`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_bus::{
    KafkaPublisher, PublisherConfig, PublisherMetrics, PUBLISHER_CHECKPOINT_NAME_DEFAULT,
};
use event_store::{EventStore, StoreError};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::startup::StartupError;

/// A relay whose checkpoint has not moved for this long while events wait is not running.
pub const RELAY_STALL_MS: i64 = 30_000;
/// How long a health check waits for Kafka's metadata, in ms: within the
/// readiness probe's timeout (2 s in `k8s/`), so a broker that is down is
/// reported (`producerConnected: false`) rather than making `/health` slow;
/// the relay's own requests keep the longer default.
pub const KAFKA_HEALTH_PROBE_TIMEOUT_MS: u64 = 1_000;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherReport {
    /// Where events go: "in-process" or the Kafka topic.
    pub destination: String,
    pub producer_connected: bool,
    pub is_running: bool,
    pub head_position: u64,
    pub published_position: u64,
    pub unprocessed_events: u64,
    pub lag_ms: u64,
    /// Why the report is not healthy: the store, the checkpoint or Kafka
    /// did not answer (the producer's probe included); `None` when healthy.
    pub error: Option<String>,
    /// Whether `error` is one no wait mends (the event store's file damaged
    /// or moved, [`StoreError::needs_operator`]): the probe's 503 then gives
    /// no `Retry-After`. Not part of the report's body.
    #[serde(skip)]
    pub needs_operator: bool,
}

impl PublisherReport {
    pub fn healthy(&self) -> bool {
        self.error.is_none() && self.producer_connected && self.is_running
    }
}

#[async_trait]
pub trait PublisherStatus: Send + Sync {
    async fn report(&self) -> PublisherReport;
}

/// Why a report could not be made: what did not answer, and whether no
/// wait mends it.
struct Failure {
    error: String,
    needs_operator: bool,
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self {
            needs_operator: error.needs_operator(),
            error: error.to_string(),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self {
            error: error.to_string(),
            needs_operator: false,
        }
    }
}

/// Milliseconds since the oldest event after `position` occurred (0 if none).
async fn lag_after(store: &dyn EventStore, position: u64) -> Result<u64, StoreError> {
    let oldest = store.read_all(position, 1).await?;
    Ok(oldest
        .first()
        .map(|recorded| age_ms(recorded.event.occurred_at))
        .unwrap_or(0))
}

fn age_ms(at: DateTime<Utc>) -> u64 {
    u64::try_from((Utc::now() - at).num_milliseconds()).unwrap_or(0)
}

fn failed(destination: String, failure: impl Into<Failure>) -> PublisherReport {
    let Failure {
        error,
        needs_operator,
    } = failure.into();
    PublisherReport {
        destination,
        producer_connected: false,
        is_running: false,
        head_position: 0,
        published_position: 0,
        unprocessed_events: 0,
        lag_ms: 0,
        error: Some(error),
        needs_operator,
    }
}

/// The position the slowest of the in-process projections (read model,
/// ledger, search index) has taken; `None` when none runs here.
fn slowest(delivered: &[watch::Receiver<u64>]) -> Option<u64> {
    delivered.iter().map(|taken| *taken.borrow()).min()
}

/// The embedded default: the relays run in this process. Its
/// `publishedPosition` is the slowest projection's, so `unprocessedEvents`
/// is 0 only once all three have caught up with the log. It is not running
/// while events wait and that position has not moved for [`RELAY_STALL_MS`]
/// (h142 F3: a projection whose batches failed for good, never parked, left
/// `/health` ok), as the distributed relay's checkpoint is judged.
pub struct InProcessRelayStatus {
    store: Arc<dyn EventStore>,
    /// Each in-process relay's delivered log position.
    delivered: Vec<watch::Receiver<u64>>,
    /// Since when the slowest projection has been where it is.
    still: Stillness,
}

impl InProcessRelayStatus {
    pub fn new(store: Arc<dyn EventStore>, delivered: Vec<watch::Receiver<u64>>) -> Self {
        Self {
            store,
            delivered,
            still: Stillness::default(),
        }
    }
}

/// Since when a position has stood still, as seen by the reports that
/// looked at it (the health probes): a position first seen, or seen
/// moved, counts from that report.
#[derive(Debug, Default)]
struct Stillness {
    seen: Mutex<Option<(u64, Instant)>>,
}

impl Stillness {
    /// Whether `position`, seen at `now`, moved within the last `bound`.
    fn moved_within(&self, position: u64, now: Instant, bound: Duration) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match *seen {
            Some((still, since)) if still == position => now.duration_since(since) < bound,
            _ => {
                *seen = Some((position, now));
                true
            }
        }
    }
}

#[async_trait]
impl PublisherStatus for InProcessRelayStatus {
    async fn report(&self) -> PublisherReport {
        let destination = "in-process".to_owned();
        let head = match self.store.head_position().await {
            Ok(head) => head,
            Err(error) => return failed(destination, error),
        };
        let published = slowest(&self.delivered).unwrap_or(head);
        let stall = Duration::from_millis(u64::try_from(RELAY_STALL_MS).unwrap_or(u64::MAX));
        let recently_moved = self.still.moved_within(published, Instant::now(), stall);
        match lag_after(self.store.as_ref(), published).await {
            Ok(lag_ms) => PublisherReport {
                destination,
                producer_connected: true,
                is_running: head <= published || recently_moved,
                head_position: head,
                published_position: published,
                unprocessed_events: head.saturating_sub(published),
                lag_ms,
                error: None,
                needs_operator: false,
            },
            Err(error) => failed(destination, error),
        }
    }
}

/// The distributed mode: `outbox-relay` publishes to Kafka and keeps its
/// checkpoint in `relay_checkpoints`.
pub struct KafkaRelayStatus {
    store: Arc<dyn EventStore>,
    pool: PgPool,
    probe: Option<KafkaPublisher>,
    topic: String,
}

impl KafkaRelayStatus {
    pub fn new(
        store: Arc<dyn EventStore>,
        pool: PgPool,
        brokers: Option<&str>,
        topic: &str,
    ) -> Result<Self, StartupError> {
        let probe = match brokers {
            Some(brokers) => {
                let mut config = PublisherConfig::new(brokers);
                config.topic = topic.to_owned();
                config.request_timeout_ms = KAFKA_HEALTH_PROBE_TIMEOUT_MS;
                let metrics = PublisherMetrics::unregistered()?;
                Some(KafkaPublisher::new(config, pool.clone(), metrics)?)
            }
            None => None,
        };
        Ok(Self {
            store,
            pool,
            probe,
            topic: topic.to_owned(),
        })
    }

    async fn checkpoint(&self) -> Result<(u64, Option<DateTime<Utc>>), sqlx::Error> {
        let row: Option<(i64, DateTime<Utc>)> =
            sqlx::query_as("SELECT position, updated_at FROM relay_checkpoints WHERE name = $1")
                .bind(PUBLISHER_CHECKPOINT_NAME_DEFAULT)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some((position, updated_at)) => {
                (u64::try_from(position).unwrap_or(0), Some(updated_at))
            }
            None => (0, None),
        })
    }
}

#[async_trait]
impl PublisherStatus for KafkaRelayStatus {
    async fn report(&self) -> PublisherReport {
        let destination = format!("kafka:{}", self.topic);
        // Why the producer is not connected, if it is not.
        let unconnected = match &self.probe {
            Some(probe) => probe.probe().await.err().map(|error| {
                format!("Kafka gave no topic metadata within {KAFKA_HEALTH_PROBE_TIMEOUT_MS} ms: {error}")
            }),
            None => Some("no Kafka brokers are configured here (KAFKA_BROKERS)".to_owned()),
        };
        let head = match self.store.head_position().await {
            Ok(head) => head,
            Err(error) => return failed(destination, error),
        };
        let (published, moved_at) = match self.checkpoint().await {
            Ok(checkpoint) => checkpoint,
            Err(error) => return failed(destination, error),
        };
        let unprocessed = head.saturating_sub(published);
        let recently_moved =
            moved_at.is_some_and(|at| (Utc::now() - at).num_milliseconds() < RELAY_STALL_MS);
        match lag_after(self.store.as_ref(), published).await {
            Ok(lag_ms) => PublisherReport {
                destination,
                producer_connected: unconnected.is_none(),
                is_running: unprocessed == 0 || recently_moved,
                head_position: head,
                published_position: published,
                unprocessed_events: unprocessed,
                lag_ms,
                error: unconnected,
                needs_operator: false,
            },
            Err(error) => failed(destination, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_projection_is_the_published_position_the_search_index_included() {
        let (_read_model, read_model) = watch::channel(9);
        let (_ledger, ledger) = watch::channel(9);
        let (_search_index, search_index) = watch::channel(4);

        assert_eq!(slowest(&[read_model, ledger, search_index]), Some(4));
        assert_eq!(slowest(&[]), None);
    }

    #[test]
    fn a_position_is_still_once_no_report_saw_it_move_for_the_bound() {
        let still = Stillness::default();
        let bound = Duration::from_millis(30_000);
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(still.moved_within(4, at(0), bound), "first seen");
        assert!(still.moved_within(4, at(29_999), bound));
        assert!(
            !still.moved_within(4, at(30_000), bound),
            "still for the bound"
        );
        assert!(still.moved_within(5, at(40_000), bound), "moved");
        assert!(still.moved_within(5, at(69_999), bound));
        assert!(!still.moved_within(5, at(70_000), bound));
    }
}
