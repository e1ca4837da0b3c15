//! A store that counts what its readers read, for the tests that bound the
//! cost of a load (events read per command), on any store it wraps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;
use wallet_domain::{AsOf, HoldId, WalletId};

use crate::{
    AppendError, AppendOutcome, AppendRequest, DueHold, EventFeed, EventStore, HoldPage,
    HoldPageQuery, HoldVersions, IdempotentResponse, RecordedEvent, SnapshotReplace, StoreError,
    StoredEvent, StreamSnapshot,
};

/// `inner`, counting the events its stream reads return.
pub struct CountingStore {
    inner: Arc<dyn EventStore>,
    stream_events_read: AtomicU64,
    largest_stream_read: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            stream_events_read: AtomicU64::new(0),
            largest_stream_read: AtomicU64::new(0),
        }
    }

    /// Events returned by `read_stream` and `read_stream_until` so far.
    pub fn stream_events_read(&self) -> u64 {
        self.stream_events_read.load(Ordering::Relaxed)
    }

    /// The most events one `read_stream` or `read_stream_until` returned.
    pub fn largest_stream_read(&self) -> u64 {
        self.largest_stream_read.load(Ordering::Relaxed)
    }

    /// Starts the counts again from 0.
    pub fn reset(&self) {
        self.stream_events_read.store(0, Ordering::Relaxed);
        self.largest_stream_read.store(0, Ordering::Relaxed);
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_until(wallet_id, after_version, u64::MAX)
            .await
    }

    async fn read_stream_until(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
        up_to_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .inner
            .read_stream_until(wallet_id, after_version, up_to_version)
            .await?;
        let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
        self.stream_events_read.fetch_add(count, Ordering::Relaxed);
        self.largest_stream_read.fetch_max(count, Ordering::Relaxed);
        Ok(events)
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after_position, limit).await
    }

    async fn read_all_stored(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_all_stored(after_position, limit).await
    }

    async fn subscribe_all(&self, after_position: u64) -> Option<EventFeed> {
        self.inner.subscribe_all(after_position).await
    }

    async fn read_snapshot(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        self.inner.read_snapshot(wallet_id).await
    }

    async fn read_snapshot_as_of(
        &self,
        wallet_id: &WalletId,
        as_of: AsOf,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        self.inner.read_snapshot_as_of(wallet_id, as_of).await
    }

    async fn save_snapshot(
        &self,
        snapshot: StreamSnapshot,
        replace: SnapshotReplace,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot, replace).await
    }

    async fn version_of_event(
        &self,
        wallet_id: &WalletId,
        event_id: Uuid,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.version_of_event(wallet_id, event_id).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    async fn find_hold_wallet(&self, hold_id: &HoldId) -> Result<Option<WalletId>, StoreError> {
        self.inner.find_hold_wallet(hold_id).await
    }

    async fn hold_versions(&self, hold_id: &HoldId) -> Result<Option<HoldVersions>, StoreError> {
        self.inner.hold_versions(hold_id).await
    }

    async fn hold_page(
        &self,
        wallet_id: &WalletId,
        query: &HoldPageQuery,
    ) -> Result<Option<HoldPage>, StoreError> {
        self.inner.hold_page(wallet_id, query).await
    }

    async fn due_holds(
        &self,
        clock: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueHold>, StoreError> {
        self.inner.due_holds(clock, limit).await
    }

    async fn find_idempotent_response(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        self.inner.find_idempotent_response(key).await
    }

    async fn purge_idempotent_responses(
        &self,
        recorded_before: DateTime<Utc>,
        batch_max: usize,
    ) -> Result<usize, StoreError> {
        self.inner
            .purge_idempotent_responses(recorded_before, batch_max)
            .await
    }

    fn appends_streams_atomically(&self) -> bool {
        self.inner.appends_streams_atomically()
    }

    fn idempotent_responses_expire(&self) -> bool {
        self.inner.idempotent_responses_expire()
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.inner.appended()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
