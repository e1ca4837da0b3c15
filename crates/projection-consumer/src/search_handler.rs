//! The search index as the Kafka consumer's [`EventSink`], in a consumer
//! group of its own (`search_index::consumer_group`): Elasticsearch away
//! holds back only this group, and the read model goes on.
//!
//! The search index cannot join a PostgreSQL transaction, so the group's
//! offsets are stored in PostgreSQL (`consumer_offsets`, where command-api's
//! read-your-writes wait reads them) right after each bulk request
//! succeeded, on the condition that they still hold what this member
//! expected. A crash between the two leaves the offsets where they were and
//! the batch comes again: indexing it again is harmless, as documents are
//! keyed by event and wallet id and a wallet's document carries its stream
//! version as an external version (an older write cannot move it back).

use std::sync::Arc;

use async_trait::async_trait;
use consumer_host::count;
use event_sink::{
    AwaitingRecord, BatchKey, ConsumerOffsets, DeliveryError, EventSink, StoredOffsets,
};
use event_store::RecordedEvent;
use postgres_support::consumer_offsets;
use search_index::SearchIndex;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::metrics::Metrics;

/// The search index handler's name in metrics and in the dead-letter
/// `handler` header.
pub const SEARCH_HANDLER_NAME: &str = "search_index";

/// Failures of this handler in `projection_batch_failures_total`.
const TARGET: &str = "search_index";

/// Why the group's offsets were not read or stored.
#[derive(Debug, thiserror::Error)]
enum OffsetsError {
    #[error("reading the search index's consumer offsets in PostgreSQL: {0}")]
    NotRead(#[source] sqlx::Error),
    #[error("storing the search index's consumer offsets in PostgreSQL: {0}")]
    NotStored(#[source] sqlx::Error),
}

/// Why the search index's indices could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error("the search index's indices are not ready: {0}")]
struct NotReady(#[source] search_index::SearchIndexError);

pub struct SearchIndexHandler {
    search_index: Arc<dyn SearchIndex>,
    /// The PostgreSQL of the read model, which keeps this group's offsets.
    offsets: PgPool,
    /// Set once the indices exist: at start-up when the server answered
    /// then, else before the first batch.
    indices_ready: OnceCell<()>,
    /// The batch indexed whose offsets are not stored yet: handed again
    /// after PostgreSQL failed to store them, it is not sent to the search
    /// server a second time.
    indexed_unstored: AwaitingRecord<()>,
    metrics: Metrics,
}

impl SearchIndexHandler {
    /// A handler writing to `search_index` and storing its offsets in
    /// `offsets`; `indices_ready` when start-up made sure the indices exist.
    pub fn new(
        search_index: Arc<dyn SearchIndex>,
        offsets: PgPool,
        indices_ready: bool,
        metrics: Metrics,
    ) -> Self {
        let ready = if indices_ready {
            OnceCell::new_with(Some(()))
        } else {
            OnceCell::new()
        };
        Self {
            search_index,
            offsets,
            indices_ready: ready,
            indexed_unstored: AwaitingRecord::default(),
            metrics,
        }
    }

    /// Creates the indices unless done already. Any failure is transient
    /// here: the events are not at fault, so they are retried, never
    /// dead-lettered (a mapping the server refuses is logged at every
    /// attempt, and `/health` shows the search server).
    async fn ensure_indices(&self) -> Result<(), DeliveryError> {
        self.indices_ready
            .get_or_try_init(|| self.search_index.ensure_indices())
            .await
            .map(drop)
            .map_err(|error| {
                self.metrics
                    .batch_failures
                    .with_label_values(&[TARGET])
                    .inc();
                DeliveryError::transient(TARGET, NotReady(error))
            })
    }
}

#[async_trait]
impl EventSink for SearchIndexHandler {
    fn name(&self) -> &'static str {
        SEARCH_HANDLER_NAME
    }

    /// Keeps no log position of its own (its progress is its group's
    /// offsets): 0, which makes a relay hand it everything, taken again
    /// harmlessly.
    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(0)
    }

    /// Indexes the batch. The search index's UnknownWallet is transient: one
    /// wallet's events come in order in one partition (key = wallet id), and
    /// a wallet with a parked event has its later events parked behind it,
    /// so the creation it waits for is on its way.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        self.ensure_indices().await?;
        let indexed = self
            .search_index
            .index_batch(batch)
            .await
            .map_err(|error| self.metrics.failed(TARGET, error))?;
        self.metrics
            .search_transactions_indexed
            .inc_by(count(indexed.transactions));
        Ok(())
    }

    /// The group's offsets as PostgreSQL keeps them.
    async fn stored_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        consumer_offsets::stored(&self.offsets, group, topic)
            .await
            .map(Some)
            .map_err(|error| self.offsets_failed(OffsetsError::NotRead(error)))
    }

    /// [`EventSink::deliver`], then the offsets moved in PostgreSQL;
    /// refused ([`DeliveryError::offsets_moved`]) when they no longer hold
    /// what this member expected (another member took the partition over),
    /// and the consumer reads them again. A batch handed again because its
    /// offsets were not stored is not indexed again.
    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        let key = BatchKey::of_recorded(batch);
        if self.indexed_unstored.take(key).is_none() {
            self.deliver(batch).await?;
        }
        let stored = self.store_offsets(offsets).await;
        if matches!(&stored, Err(error) if error.is_transient()) {
            self.indexed_unstored.hold(key, ());
        }
        stored
    }
}

impl SearchIndexHandler {
    /// Moves `offsets` in PostgreSQL, on the condition that they still hold
    /// what this member expected.
    async fn store_offsets(&self, offsets: &ConsumerOffsets) -> Result<(), DeliveryError> {
        let not_stored = |error| self.offsets_failed(OffsetsError::NotStored(error));
        let mut transaction = self.offsets.begin().await.map_err(not_stored)?;
        let moved = consumer_offsets::advance(
            &mut transaction,
            &offsets.group,
            &offsets.topic,
            offsets.moves(),
        )
        .await
        .map_err(not_stored)?;
        if !moved {
            return Err(DeliveryError::offsets_moved(
                TARGET,
                event_sink::OffsetsMoved::of(offsets),
            ));
        }
        transaction.commit().await.map_err(not_stored)
    }

    /// PostgreSQL did not read or store the offsets: transient whatever the
    /// cause, as the events are not at fault and must not be dead-lettered.
    fn offsets_failed(&self, error: OffsetsError) -> DeliveryError {
        self.metrics
            .batch_failures
            .with_label_values(&["search_offsets"])
            .inc();
        DeliveryError::transient(TARGET, error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use search_index::{
        IndexOutcome, IndexedWallet, SearchIndexError, TransactionPage, TransactionSearch,
    };
    use wallet_domain::WalletId;

    use super::*;

    /// Counts calls; fails index_batch with `down`, ensure_indices with `unready`.
    #[derive(Default)]
    struct FakeSearchIndex {
        down: bool,
        unready: bool,
        ensured: AtomicUsize,
        indexed: AtomicUsize,
    }

    #[async_trait]
    impl SearchIndex for FakeSearchIndex {
        async fn make_searchable(&self) -> Result<(), SearchIndexError> {
            Ok(())
        }

        async fn ensure_indices(&self) -> Result<(), SearchIndexError> {
            self.ensured.fetch_add(1, Ordering::SeqCst);
            if self.unready {
                return Err(SearchIndexError::Refused {
                    status: 400,
                    reason: "mapping refused".into(),
                });
            }
            Ok(())
        }

        async fn index_batch(
            &self,
            _events: &[RecordedEvent],
        ) -> Result<IndexOutcome, SearchIndexError> {
            self.indexed.fetch_add(1, Ordering::SeqCst);
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

    fn handler(
        index: FakeSearchIndex,
        ready: bool,
    ) -> (SearchIndexHandler, Arc<FakeSearchIndex>, Metrics) {
        let index = Arc::new(index);
        let metrics = Metrics::new().expect("metrics");
        // Never connected: these cases store no offsets.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(PG_AWAY_WAIT_MS))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        let search: Arc<dyn SearchIndex> = index.clone();
        let handler = SearchIndexHandler::new(search, pool, ready, metrics.clone());
        (handler, index, metrics)
    }

    /// How long the tests' pool waits for its PostgreSQL, which never answers.
    const PG_AWAY_WAIT_MS: u64 = 200;

    #[tokio::test]
    async fn a_batch_whose_offsets_were_not_stored_is_not_indexed_again() {
        let (handler, index, metrics) = handler(FakeSearchIndex::default(), true);
        let offsets = ConsumerOffsets {
            group: "g-search-index".into(),
            topic: "t".into(),
            partitions: Vec::new(),
        };
        for _ in 0..2 {
            let error = handler
                .deliver_consumed(&[], &offsets)
                .await
                .expect_err("PostgreSQL is away");
            assert!(error.is_transient(), "{error}");
            assert!(error.to_string().contains("storing"), "{error}");
        }
        assert_eq!(index.indexed.load(Ordering::SeqCst), 1, "one bulk request");
        let failures = metrics
            .batch_failures
            .with_label_values(&["search_offsets"]);
        assert_eq!(failures.get(), 2);
    }

    #[tokio::test]
    async fn a_batch_is_indexed_and_counted() {
        let (handler, index, metrics) = handler(FakeSearchIndex::default(), true);
        handler.deliver(&[]).await.expect("indexed");
        assert_eq!(metrics.search_transactions_indexed.get(), 3);
        assert_eq!(index.ensured.load(Ordering::SeqCst), 0, "ready at start-up");
    }

    #[tokio::test]
    async fn a_search_server_away_is_a_transient_failure() {
        let down = FakeSearchIndex {
            down: true,
            ..FakeSearchIndex::default()
        };
        let (handler, _index, metrics) = handler(down, true);
        let error = handler.deliver(&[]).await.expect_err("retried");
        assert!(error.to_string().starts_with("search_index:"), "{error}");
        assert!(error.is_transient(), "a search server away is transient");
        let failures = metrics.batch_failures.with_label_values(&["search_index"]);
        assert_eq!(failures.get(), 1);
    }

    #[tokio::test]
    async fn indices_not_ready_at_start_up_are_made_before_the_first_batch_once() {
        let (handler, index, _metrics) = handler(FakeSearchIndex::default(), false);
        handler.deliver(&[]).await.expect("indexed");
        handler.deliver(&[]).await.expect("indexed");
        assert_eq!(index.ensured.load(Ordering::SeqCst), 1);
        assert_eq!(index.indexed.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn indices_refused_keep_the_batch_for_a_retry_and_index_nothing() {
        let unready = FakeSearchIndex {
            unready: true,
            ..FakeSearchIndex::default()
        };
        let (handler, index, _metrics) = handler(unready, false);
        let error = handler.deliver(&[]).await.expect_err("not ready");
        assert!(
            error.is_transient(),
            "the events are not at fault: never dead-lettered for it"
        );
        assert!(error.to_string().contains("not ready"), "{error}");
        assert_eq!(index.indexed.load(Ordering::SeqCst), 0);
    }
}
