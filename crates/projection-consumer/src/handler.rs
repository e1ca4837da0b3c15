//! The read model and the search index as the Kafka consumer's
//! [`EventSink`]: search index first, then the read model, whose transaction
//! stores the consumer's offsets, so that no batch counts as consumed before
//! both hold it.

use std::sync::Arc;

use async_trait::async_trait;
use consumer_host::furthest_position;
use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets, Transience};
use event_store::RecordedEvent;
use read_model::{ApplyOutcome, ReadModel, ReadModelError};
use search_index::SearchIndex;

use crate::metrics::Metrics;

/// The handler's name in metrics and in the dead-letter `handler` header.
pub const HANDLER_NAME: &str = "projection";

pub struct ProjectionHandler {
    read_model: Arc<dyn ReadModel>,
    search_index: Arc<dyn SearchIndex>,
    metrics: Metrics,
}

impl ProjectionHandler {
    pub fn new(
        read_model: Arc<dyn ReadModel>,
        search_index: Arc<dyn SearchIndex>,
        metrics: Metrics,
    ) -> Self {
        Self {
            read_model,
            search_index,
            metrics,
        }
    }

    /// Counts a failure of `target` (`read_model`, `search_index`) and
    /// classifies it: transient (retried until it passes) or permanent
    /// (dead-lettered in the end).
    fn failed(
        &self,
        target: &'static str,
        error: impl Transience + std::error::Error + Send + Sync + 'static,
    ) -> DeliveryError {
        self.metrics
            .batch_failures
            .with_label_values(&[target])
            .inc();
        DeliveryError::of(target, error)
    }
}

#[async_trait]
impl EventSink for ProjectionHandler {
    fn name(&self) -> &'static str {
        HANDLER_NAME
    }

    /// The read model's: it moves in the transaction that applies a batch,
    /// before the search index is written.
    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        self.read_model
            .checkpoint()
            .await
            .map_err(|error| self.failed("read_model", error))
    }

    /// Both writes are idempotent, so when the second fails the bus may hand
    /// the whole batch again: the search index overwrites what it wrote, the
    /// read model skips what it applied. The search index goes first, as in
    /// [`EventSink::deliver_consumed`].
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        self.index(batch).await?;
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
            .map_err(|error| self.failed("read_model", error))
    }

    /// [`EventSink::deliver`], the offsets moved in the read model's
    /// transaction: PostgreSQL losing it loses them too, and the consumer
    /// reads the batch again.
    ///
    /// The search index cannot join that transaction, so it is written
    /// before it: the offsets are stored only once both views hold the
    /// batch. A crash (or a failure) between the two leaves the offsets where
    /// they were, and the batch comes again; indexing it again is harmless,
    /// as documents are keyed by event and wallet id and a wallet's document
    /// carries its stream version as an external version (an older write
    /// cannot move it back). Written the other way round, a kill -9 after the
    /// read model's commit left the batch out of the search index for good
    /// (found by the end-to-end kill -9 test).
    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        self.index(batch).await?;
        let applied = self
            .read_model
            .apply_consumed(batch, furthest_position(batch), offsets)
            .await;
        self.applied(applied)
    }
}

impl ProjectionHandler {
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
                return Err(DeliveryError::offsets_moved("read_model", moved))
            }
            Err(error) => return Err(self.failed("read_model", error)),
        };
        self.metrics
            .read_model_applied
            .inc_by(u64::try_from(applied.applied).unwrap_or(u64::MAX));
        self.metrics
            .read_model_skipped
            .inc_by(u64::try_from(applied.skipped).unwrap_or(u64::MAX));
        Ok(())
    }

    /// Indexes the batch for search. The search index's UnknownWallet is
    /// transient as a gap is: one wallet's events come in order in one
    /// partition (key = wallet id), and a wallet with a parked event has its
    /// later events parked behind it, so the creation it waits for is on its
    /// way.
    async fn index(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let indexed = self
            .search_index
            .index_batch(batch)
            .await
            .map_err(|error| self.failed("search_index", error))?;
        self.metrics
            .search_transactions_indexed
            .inc_by(u64::try_from(indexed.transactions).unwrap_or(u64::MAX));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use read_model::{WalletListQuery, WalletView};
    use search_index::{
        IndexOutcome, IndexedWallet, SearchIndexError, TransactionPage, TransactionSearch,
    };
    use wallet_domain::WalletId;

    use super::*;

    /// Records which target was written, in order.
    type Calls = Arc<Mutex<Vec<&'static str>>>;

    struct FakeReadModel {
        calls: Calls,
        gap: bool,
    }

    #[async_trait]
    impl ReadModel for FakeReadModel {
        async fn apply(
            &self,
            _events: &[RecordedEvent],
            _checkpoint: Option<u64>,
        ) -> Result<ApplyOutcome, ReadModelError> {
            self.calls.lock().expect("calls").push("read_model");
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

    struct FakeSearchIndex {
        calls: Calls,
        down: bool,
    }

    #[async_trait]
    impl SearchIndex for FakeSearchIndex {
        async fn make_searchable(&self) -> Result<(), SearchIndexError> {
            Ok(())
        }

        async fn ensure_indices(&self) -> Result<(), SearchIndexError> {
            Ok(())
        }

        async fn index_batch(
            &self,
            _events: &[RecordedEvent],
        ) -> Result<IndexOutcome, SearchIndexError> {
            self.calls.lock().expect("calls").push("search_index");
            if self.down {
                return Err(SearchIndexError::Unavailable("connection refused".into()));
            }
            Ok(IndexOutcome {
                transactions: 3,
                ..IndexOutcome::default()
            })
        }

        async fn wallet_transactions(
            &self,
            _wallet_id: &WalletId,
            _before_position: Option<u64>,
            _limit: Option<usize>,
            _offset: usize,
        ) -> Result<TransactionPage, SearchIndexError> {
            Ok(TransactionPage {
                items: Vec::new(),
                total: 0,
            })
        }

        async fn search_transactions(
            &self,
            _search: &TransactionSearch,
        ) -> Result<TransactionPage, SearchIndexError> {
            Ok(TransactionPage {
                items: Vec::new(),
                total: 0,
            })
        }

        async fn wallet(
            &self,
            _wallet_id: &WalletId,
        ) -> Result<Option<IndexedWallet>, SearchIndexError> {
            Ok(None)
        }

        async fn ping(&self) -> Result<(), SearchIndexError> {
            Ok(())
        }
    }

    fn handler(gap: bool, search_down: bool) -> (ProjectionHandler, Calls, Metrics) {
        let calls = Calls::default();
        let metrics = Metrics::new().expect("metrics");
        let handler = ProjectionHandler::new(
            Arc::new(FakeReadModel {
                calls: calls.clone(),
                gap,
            }),
            Arc::new(FakeSearchIndex {
                calls: calls.clone(),
                down: search_down,
            }),
            metrics.clone(),
        );
        (handler, calls, metrics)
    }

    fn calls(calls: &Calls) -> Vec<&'static str> {
        calls.lock().expect("calls").clone()
    }

    #[tokio::test]
    async fn a_batch_goes_to_the_search_index_then_the_read_model() {
        let (handler, recorded, metrics) = handler(false, false);
        handler.deliver(&[]).await.expect("handled");
        assert_eq!(calls(&recorded), ["search_index", "read_model"]);
        assert_eq!(metrics.read_model_applied.get(), 2);
        assert_eq!(metrics.read_model_skipped.get(), 1);
        assert_eq!(metrics.search_transactions_indexed.get(), 3);
    }

    #[tokio::test]
    async fn a_gap_fails_the_batch_for_a_retry() {
        let (handler, recorded, metrics) = handler(true, false);
        let error = handler.deliver(&[]).await.expect_err("a gap is retried");
        assert!(error.to_string().starts_with("read_model:"), "{error}");
        assert!(
            error.is_transient(),
            "a gap the next batch fills is transient"
        );
        assert_eq!(calls(&recorded), ["search_index", "read_model"]);
        assert_eq!(
            metrics
                .batch_failures
                .with_label_values(&["read_model"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn a_search_index_failure_fails_the_batch_before_the_read_model_stores_it() {
        let (handler, recorded, _metrics) = handler(false, true);
        let error = handler.deliver(&[]).await.expect_err("retried");
        assert!(error.to_string().starts_with("search_index:"), "{error}");
        assert!(error.is_transient(), "a search server away is transient");
        assert_eq!(calls(&recorded), ["search_index"]);
    }
}
