//! The ledger as the Kafka consumer's [`EventSink`]: one batch, one ledger
//! transaction, counted in the consumer's metrics.

use std::sync::Arc;

use async_trait::async_trait;
use consumer_host::{count, furthest_position};
use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets};
use event_store::RecordedEvent;
use ledger::{Ledger, LedgerError, PostOutcome};

use crate::metrics::Metrics;

/// The handler's name in metrics and in the dead-letter `handler` header.
pub const HANDLER_NAME: &str = "ledger";

pub struct LedgerHandler {
    ledger: Arc<dyn Ledger>,
    metrics: Metrics,
}

impl LedgerHandler {
    pub fn new(ledger: Arc<dyn Ledger>, metrics: Metrics) -> Self {
        Self { ledger, metrics }
    }

    fn count(&self, outcome: PostOutcome) {
        self.metrics.events_posted.inc_by(count(outcome.posted));
        self.metrics
            .duplicates_skipped
            .inc_by(count(outcome.skipped));
        self.metrics.batches_posted.inc();
    }
}

#[async_trait]
impl EventSink for LedgerHandler {
    fn name(&self) -> &'static str {
        HANDLER_NAME
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        self.ledger
            .checkpoint()
            .await
            .map_err(|error| DeliveryError::of(HANDLER_NAME, error))
    }

    /// Posts the batch in one transaction with the ids of the events posted,
    /// so a failure posts nothing and the bus's retry (or a redelivery after
    /// a crash) starts from a clean slate and skips what was committed.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let posted = self.ledger.post(batch, furthest_position(batch)).await;
        self.posted(posted)
    }

    /// The ledger's: PostgreSQL keeps the consumer's offsets beside the entries.
    async fn stored_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        self.ledger
            .consumer_offsets(group, topic)
            .await
            .map_err(|error| DeliveryError::of(HANDLER_NAME, error))
    }

    /// [`EventSink::deliver`], the offsets moved in the same transaction:
    /// PostgreSQL losing it loses them too, and the consumer reads the batch again.
    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        let posted = self
            .ledger
            .post_consumed(batch, furthest_position(batch), offsets)
            .await;
        self.posted(posted)
    }
}

impl LedgerHandler {
    /// Counts a post and classifies its failure.
    fn posted(&self, posted: Result<PostOutcome, LedgerError>) -> Result<(), DeliveryError> {
        match posted {
            Ok(outcome) => {
                self.count(outcome);
                Ok(())
            }
            Err(LedgerError::OffsetsMoved(moved)) => {
                Err(DeliveryError::offsets_moved(HANDLER_NAME, moved))
            }
            Err(error) => {
                // The ledger's storage away or busy is retried by the bus
                // until it passes. Unbalanced or corrupt data fails on every
                // attempt: the bus retries the batch, then each event, and
                // parks the one that still fails on the dead-letter topic.
                self.metrics.batch_failures.inc();
                Err(DeliveryError::of(HANDLER_NAME, error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger::conformance::standard_log;
    use ledger::EmbeddedLedger;

    use super::*;

    fn handler() -> (LedgerHandler, Arc<EmbeddedLedger>, tempfile::TempDir) {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let ledger = Arc::new(EmbeddedLedger::open(folder.path()).expect("an embedded ledger"));
        let metrics = Metrics::new().expect("metrics");
        let handler = LedgerHandler::new(ledger.clone(), metrics);
        (handler, ledger, folder)
    }

    #[tokio::test]
    async fn a_batch_is_posted_and_counted() {
        let (handler, ledger, _folder) = handler();
        let log = standard_log();
        handler.deliver(&log.recorded).await.expect("posted");
        let metrics = &handler.metrics;
        assert_eq!(metrics.events_posted.get(), count(log.recorded.len()));
        assert_eq!(metrics.duplicates_skipped.get(), 0);
        assert_eq!(metrics.batches_posted.get(), 1);
        let verification = ledger.verify().await.expect("verify");
        assert!(verification.ok, "{verification:?}");
        let last = log.recorded.last().map(|recorded| recorded.position);
        assert_eq!(
            Some(
                Ledger::checkpoint(ledger.as_ref())
                    .await
                    .expect("checkpoint")
            ),
            last
        );
    }

    #[tokio::test]
    async fn a_redelivered_batch_posts_nothing_twice() {
        let (handler, ledger, _folder) = handler();
        let log = standard_log();
        handler.deliver(&log.recorded).await.expect("posted");
        let before = ledger.verify().await.expect("verify");
        handler
            .deliver(&log.recorded)
            .await
            .expect("redelivery handled");
        assert_eq!(ledger.verify().await.expect("verify"), before);
        let metrics = &handler.metrics;
        assert_eq!(metrics.events_posted.get(), count(log.recorded.len()));
        assert_eq!(metrics.duplicates_skipped.get(), count(log.recorded.len()));
        assert_eq!(metrics.batches_posted.get(), 2);
    }

    #[tokio::test]
    async fn a_refused_batch_fails_for_a_retry_and_is_counted() {
        let (handler, ledger, _folder) = handler();
        let mut batch = standard_log().recorded;
        // Beyond what the ledger stores: refused before anything is written.
        batch[1].position = u64::MAX;
        let error = handler
            .deliver(&batch)
            .await
            .expect_err("the bus retries it");
        assert!(error.to_string().contains("position"), "{error}");
        assert_eq!(ledger.verify().await.expect("verify").events_posted, 0);
        assert_eq!(handler.metrics.batch_failures.get(), 1);
        assert_eq!(handler.metrics.batches_posted.get(), 0);
    }
}
