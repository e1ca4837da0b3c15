//! The relay: reads the event log in global order from a sink's checkpoint
//! and hands it to the sink in bounded batches.
//!
//! A sink records its checkpoint only once it has durably taken a batch, so a
//! crash at any moment replays at most the last batch, which sinks
//! deduplicate by event id. Nothing is skipped, nothing is applied twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::{EventStore, RecordedEvent, StoreError};
use tokio::sync::watch;

/// The error a sink reports; the relay retries the batch after a pause.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
}

impl SinkError {
    pub fn new(sink: &'static str, error: impl std::fmt::Display) -> Self {
        Self {
            sink,
            message: error.to_string(),
        }
    }
}

/// Where the relay delivers events.
#[async_trait]
pub trait EventSink: Send + Sync {
    fn name(&self) -> &'static str;

    /// Position of the last event this sink has durably taken (0: none).
    async fn checkpoint(&self) -> Result<u64, SinkError>;

    /// Takes a batch in global order. On success the checkpoint must have
    /// moved to the batch's last position; an event seen before is skipped.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), SinkError>;
}

/// Limits of one relay loop.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    pub batch_size_max: usize,
    /// How often the log is polled when no append wakes the relay (another
    /// process may be appending).
    pub poll_interval_ms: u64,
    /// Pause after a failed read or delivery before the same batch is retried.
    pub retry_backoff_ms: u64,
    /// Wait after a wake-up before reading, so one batch carries the appends
    /// of many requests instead of one transaction each.
    pub linger_ms: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            batch_size_max: 500,
            poll_interval_ms: 200,
            retry_backoff_ms: 500,
            linger_ms: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Relays until `shutdown` turns true, publishing each delivered position on
/// `progress` (readers use it to wait for a sink to catch up).
pub async fn run_relay(
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    limits: RelayLimits,
    progress: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut appended = store.appended();
    if let Ok(checkpoint) = sink.checkpoint().await {
        progress.send_replace(checkpoint);
    }
    loop {
        if *shutdown.borrow() {
            return;
        }
        match relay_once(store.as_ref(), sink.as_ref(), limits.batch_size_max).await {
            Ok(Some(position)) => {
                progress.send_replace(position);
                continue;
            }
            Ok(None) => {
                tokio::select! {
                    _ = appended.changed() => {
                        tokio::time::sleep(Duration::from_millis(limits.linger_ms)).await;
                    }
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(limits.poll_interval_ms)) => {}
                }
            }
            Err(error) => {
                tracing::warn!(sink = sink.name(), %error, "relay batch failed; retrying");
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(limits.retry_backoff_ms)) => {}
                }
            }
        }
    }
}

/// Delivers the next batch after the sink's checkpoint, if any; returns its
/// last position. Tests and tools call it to drain a sink without sleeping.
pub async fn relay_once(
    store: &dyn EventStore,
    sink: &dyn EventSink,
    batch_size_max: usize,
) -> Result<Option<u64>, RelayError> {
    let checkpoint = sink.checkpoint().await?;
    let batch = store.read_all(checkpoint, batch_size_max).await?;
    let Some(last) = batch.last().map(|event| event.position) else {
        return Ok(None);
    };
    sink.deliver(&batch).await?;
    Ok(Some(last))
}

/// Delivers batches until the sink has caught up with the log.
pub async fn drain(
    store: &dyn EventStore,
    sink: &dyn EventSink,
    batch_size_max: usize,
    batches_max: usize,
) -> Result<u64, RelayError> {
    let mut last = sink.checkpoint().await?;
    for _ in 0..batches_max {
        match relay_once(store, sink, batch_size_max).await? {
            Some(position) => last = position,
            None => return Ok(last),
        }
    }
    Ok(last)
}
