//! The read model as the Kafka consumer's [`EventSink`]: its transaction
//! stores the group's offsets beside the wallets, so no batch counts as
//! consumed before the read model holds it. The search index has a group of
//! its own (`search_handler`), so a search server away never holds the read
//! model back.

use std::sync::Arc;

use async_trait::async_trait;
use consumer_host::{count, furthest_position};
use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets};
use event_store::RecordedEvent;
use read_model::{ApplyOutcome, ReadModel, ReadModelError};

use crate::metrics::Metrics;

/// The read model handler's name in metrics and in the dead-letter `handler`
/// header. Kept from when one handler fed both views, so the wallets parked
/// then, and their dead letters, are still the read model's.
pub const HANDLER_NAME: &str = "projection";

/// Failures of this handler in `projection_batch_failures_total`.
const TARGET: &str = "read_model";

pub struct ReadModelHandler {
    read_model: Arc<dyn ReadModel>,
    metrics: Metrics,
}

impl ReadModelHandler {
    pub fn new(read_model: Arc<dyn ReadModel>, metrics: Metrics) -> Self {
        Self {
            read_model,
            metrics,
        }
    }
}

#[async_trait]
impl EventSink for ReadModelHandler {
    fn name(&self) -> &'static str {
        HANDLER_NAME
    }

    /// The read model's: it moves in the transaction that applies a batch.
    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        self.read_model
            .checkpoint()
            .await
            .map_err(|error| self.metrics.failed(TARGET, error))
    }

    /// Idempotent: the read model skips the versions it holds, so a batch
    /// handed again changes nothing twice.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let applied = self.read_model.apply(batch, furthest_position(batch)).await;
        self.applied(applied)
    }

    /// The read model's: PostgreSQL keeps the consumer's offsets beside the wallets.
    async fn stored_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        self.read_model
            .consumer_offsets(group, topic)
            .await
            .map_err(|error| self.metrics.failed(TARGET, error))
    }

    /// [`EventSink::deliver`], the offsets moved in the read model's
    /// transaction: PostgreSQL losing it loses them too, and the consumer
    /// reads the batch again.
    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        let applied = self
            .read_model
            .apply_consumed(batch, furthest_position(batch), offsets)
            .await;
        self.applied(applied)
    }
}

impl ReadModelHandler {
    /// Counts the read model's part of a batch and classifies its failure.
    ///
    /// A [`ReadModelError::Gap`] means a wallet's earlier event has not been
    /// applied. With key = wallet id, one wallet's events arrive in order in
    /// one partition, so the missing one is on its way (or was parked): the
    /// gap is transient, and the bus retries until it is filled rather than
    /// park valid events behind it.
    fn applied(&self, applied: Result<ApplyOutcome, ReadModelError>) -> Result<(), DeliveryError> {
        let applied = match applied {
            Ok(applied) => applied,
            Err(ReadModelError::OffsetsMoved(moved)) => {
                return Err(DeliveryError::offsets_moved(TARGET, moved))
            }
            Err(error) => return Err(self.metrics.failed(TARGET, error)),
        };
        self.metrics
            .read_model_applied
            .inc_by(count(applied.applied));
        self.metrics
            .read_model_skipped
            .inc_by(count(applied.skipped));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use read_model::{WalletListQuery, WalletView};
    use wallet_domain::WalletId;

    use super::*;

    struct FakeReadModel {
        gap: bool,
    }

    #[async_trait]
    impl ReadModel for FakeReadModel {
        async fn apply(
            &self,
            _events: &[RecordedEvent],
            _checkpoint: Option<u64>,
        ) -> Result<ApplyOutcome, ReadModelError> {
            if self.gap {
                return Err(ReadModelError::Gap {
                    wallet_id: WalletId::parse("w1").expect("wallet id"),
                    stored: 1,
                    arrived: 3,
                });
            }
            Ok(ApplyOutcome {
                applied: 2,
                skipped: 1,
            })
        }

        async fn checkpoint(&self) -> Result<u64, ReadModelError> {
            Ok(0)
        }

        async fn list_wallets(
            &self,
            _query: WalletListQuery,
        ) -> Result<Vec<WalletView>, ReadModelError> {
            Ok(Vec::new())
        }
    }

    fn handler(gap: bool) -> (ReadModelHandler, Metrics) {
        let metrics = Metrics::new().expect("metrics");
        let handler = ReadModelHandler::new(Arc::new(FakeReadModel { gap }), metrics.clone());
        (handler, metrics)
    }

    #[tokio::test]
    async fn a_batch_applied_is_counted_as_applied_and_skipped() {
        let (handler, metrics) = handler(false);
        handler.deliver(&[]).await.expect("handled");
        assert_eq!(metrics.read_model_applied.get(), 2);
        assert_eq!(metrics.read_model_skipped.get(), 1);
    }

    #[tokio::test]
    async fn a_gap_fails_the_batch_for_a_retry() {
        let (handler, metrics) = handler(true);
        let error = handler.deliver(&[]).await.expect_err("a gap is retried");
        assert!(error.to_string().starts_with("read_model:"), "{error}");
        assert!(
            error.is_transient(),
            "a gap the next batch fills is transient"
        );
        assert_eq!(
            metrics
                .batch_failures
                .with_label_values(&["read_model"])
                .get(),
            1
        );
    }
}
