//! How far behind the log the embedded default's in-process projections run:
//! a sink that, once its inner sink has taken a batch, observes for each
//! event the time from its occurrence to that commit.
//!
//! The measure is the one the Kafka consumers give
//! (`consumer_event_lag_seconds`), so the embedded default and the full
//! stack compare: acknowledgement (an event occurs when its command is
//! appended) to the projection's committed write, in seconds. A clock that
//! went back shows as zero, not as a negative lag.

use std::sync::Arc;

use async_trait::async_trait;
use event_sink::{DeliveryError, EventSink};
use event_store::RecordedEvent;
use prometheus::Histogram;

/// `inner`, observing into `lag` every event it took. Stored events reach
/// `inner` through [`EventSink::deliver_stored`]'s default (decoded once,
/// then [`EventSink::deliver`]), which every in-process projection uses.
pub struct LagMeasuredSink {
    inner: Arc<dyn EventSink>,
    lag: Histogram,
}

impl LagMeasuredSink {
    pub fn new(inner: Arc<dyn EventSink>, lag: Histogram) -> Self {
        Self { inner, lag }
    }
}

#[async_trait]
impl EventSink for LagMeasuredSink {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        self.inner.checkpoint().await
    }

    /// The inner sink's delivery; the lag is observed only when it took the
    /// batch (a failed batch comes again and is observed then).
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        self.inner.deliver(batch).await?;
        observability::observe_event_lag(
            &self.lag,
            chrono::Utc::now(),
            batch.iter().map(|recorded| recorded.event.occurred_at),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use prometheus::HistogramOpts;
    use std::sync::Mutex;
    use uuid::Uuid;
    use wallet_domain::{Balance, EventKind, EventMetadata, WalletEvent, WalletId};

    /// A wallet's freeze at `position`, occurred at `occurred_at`.
    fn recorded(position: u64, occurred_at: DateTime<Utc>) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_version: position,
            event: WalletEvent {
                event_id: Uuid::now_v7(),
                wallet_id: WalletId::parse("wallet-1").expect("wallet id"),
                occurred_at,
                balance_after: Balance::ZERO,
                metadata: EventMetadata::default(),
                kind: EventKind::WalletFrozen,
            },
        }
    }

    /// Takes every batch, or refuses every batch when `refuse` is set.
    struct Taking {
        refuse: bool,
        taken: Mutex<usize>,
    }

    #[async_trait]
    impl EventSink for Taking {
        fn name(&self) -> &'static str {
            "taking"
        }
        async fn checkpoint(&self) -> Result<u64, DeliveryError> {
            Ok(0)
        }
        async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
            if self.refuse {
                return Err(DeliveryError::transient("taking", "down"));
            }
            *self.taken.lock().expect("taken") += batch.len();
            Ok(())
        }
    }

    fn histogram() -> Histogram {
        Histogram::with_opts(HistogramOpts::new("lag", "lag").buckets(vec![0.1, 1.0, 10.0, 100.0]))
            .expect("histogram")
    }

    #[tokio::test]
    async fn each_event_taken_is_observed_with_its_age() {
        let lag = histogram();
        let inner = Arc::new(Taking {
            refuse: false,
            taken: Mutex::new(0),
        });
        let sink = LagMeasuredSink::new(inner.clone(), lag.clone());
        let five_seconds_ago = recorded(1, Utc::now() - Duration::seconds(5));
        let in_the_future = recorded(2, Utc::now() + Duration::seconds(60));

        sink.deliver(&[five_seconds_ago, in_the_future])
            .await
            .expect("delivered");

        assert_eq!(*inner.taken.lock().expect("taken"), 2);
        assert_eq!(lag.get_sample_count(), 2);
        // 5 s, and 0 s for the event from a clock ahead of this one.
        assert!(lag.get_sample_sum() >= 5.0 && lag.get_sample_sum() < 6.0);
        assert_eq!(sink.name(), "taking");
    }

    #[tokio::test]
    async fn a_batch_the_inner_sink_refused_is_not_observed() {
        let lag = histogram();
        let sink = LagMeasuredSink::new(
            Arc::new(Taking {
                refuse: true,
                taken: Mutex::new(0),
            }),
            lag.clone(),
        );

        let refused = sink.deliver(&[recorded(1, Utc::now())]).await;

        assert!(refused.is_err());
        assert_eq!(lag.get_sample_count(), 0);
    }
}
