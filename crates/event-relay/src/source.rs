//! Where the relay's batches come from.
//!
//! Every batch starts right after the sink's checkpoint, whichever the source:
//! - a **live feed** ([`EventStore::subscribe_all`]), opened from the sink's
//!   checkpoint and read on while batches are delivered. A batch is what the
//!   feed has ready once its first event arrives: up to the batch size,
//!   waiting at most the linger for more. The feed is pulled only while a
//!   batch is gathered, so at most one batch is held and a slow sink holds the
//!   store back. After any failure (the feed's, or a delivery's) the feed is
//!   dropped and the next batch opens a new one from the sink's checkpoint,
//!   which the sink moves only after it took a batch: no gap, and nothing
//!   past the checkpoint is delivered twice.
//! - **polling** `read_all` from the sink's checkpoint, for stores with no
//!   feed, woken by this process's appends or by the poll interval. Under a
//!   steady load a read finds what was appended while the last batch was
//!   delivered; the next read after a batch that was not full waits until
//!   the linger has passed since the last one began, so that a batch carries
//!   the appends of at least the linger, as a feed's does, rather than of
//!   one delivery (bench/README.md: a projection's transactions, each one
//!   a commit that rewrites its B-trees' newest pages, were six times as
//!   many as the linger meant).

use std::time::Duration;

use event_store::{EventFeed, EventStore, StoreError, StoredEvent};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{read_after_checkpoint, Outlet, RelayError, RelayLimits};

pub(crate) enum BatchSource {
    /// The store's live feed; `None` until it is opened (again) from the
    /// sink's checkpoint.
    Feed(Option<OpenFeed>),
    /// The store has no feed: `read_all`, woken by this process's appends.
    Poll {
        appended: watch::Receiver<u64>,
        /// When the next read may begin: the linger after the last read
        /// began, when that read found a batch that was not full.
        next_read_at: Option<Instant>,
    },
}

pub(crate) struct OpenFeed {
    events: EventFeed,
    /// Position of the last event taken from the feed (at first the
    /// checkpoint it was opened from).
    after: u64,
}

impl BatchSource {
    /// Tries the live feed first; a store without one turns it into polling.
    pub(crate) fn new() -> Self {
        Self::Feed(None)
    }

    /// Forgets the live feed after a failure, so that the next batch opens a
    /// new one from the sink's checkpoint (polling always starts there).
    pub(crate) fn restart(&mut self) {
        if let Self::Feed(open) = self {
            *open = None;
        }
    }

    /// The next batch after the sink's checkpoint; empty when nothing came
    /// before a poll ended or `shutdown` changed.
    pub(crate) async fn next_batch(
        &mut self,
        store: &dyn EventStore,
        outlet: Outlet<'_>,
        limits: &RelayLimits,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<StoredEvent>, RelayError> {
        match self {
            Self::Feed(Some(feed)) => feed.next_batch(limits, shutdown).await,
            Self::Feed(closed @ None) => {
                let checkpoint = outlet.checkpoint().await?;
                match store.subscribe_all(checkpoint).await {
                    Some(events) => {
                        tracing::info!(sink = outlet.sink().name(), checkpoint, "live feed opened");
                        let feed = closed.insert(OpenFeed {
                            events,
                            after: checkpoint,
                        });
                        feed.next_batch(limits, shutdown).await
                    }
                    None => {
                        *self = Self::Poll {
                            appended: store.appended(),
                            next_read_at: None,
                        };
                        // The next call polls from the checkpoint.
                        Ok(Vec::new())
                    }
                }
            }
            Self::Poll {
                appended,
                next_read_at,
            } => {
                if let Some(at) = next_read_at.take() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = shutdown.changed() => return Ok(Vec::new()),
                    }
                }
                let began = Instant::now();
                let batch_size = limits.batch_size();
                let batch = read_after_checkpoint(store, outlet, batch_size).await?;
                if batch.is_empty() {
                    wait_for_appends(appended, limits, shutdown).await;
                } else if batch.len() < batch_size {
                    *next_read_at = Some(began + Duration::from_millis(limits.linger_ms));
                }
                Ok(batch)
            }
        }
    }
}

impl OpenFeed {
    /// Waits for the feed's next event (or `shutdown`), then takes what else
    /// is ready within the linger, up to the batch size.
    async fn next_batch(
        &mut self,
        limits: &RelayLimits,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<StoredEvent>, RelayError> {
        let first = tokio::select! {
            next = self.events.next() => next,
            _ = shutdown.changed() => return Ok(Vec::new()),
        };
        let batch_size = limits.batch_size();
        let mut batch = Vec::with_capacity(batch_size);
        self.take(first, &mut batch)?;
        let linger_end = Instant::now() + Duration::from_millis(limits.linger_ms);
        while batch.len() < batch_size {
            // A stream's `next` may be cancelled: an event it was receiving
            // stays in the stream for the next batch.
            let Ok(next) = tokio::time::timeout_at(linger_end, self.events.next()).await else {
                break;
            };
            self.take(next, &mut batch)?;
        }
        Ok(batch)
    }

    fn take(
        &mut self,
        next: Option<Result<StoredEvent, StoreError>>,
        batch: &mut Vec<StoredEvent>,
    ) -> Result<(), RelayError> {
        let event = next.ok_or(RelayError::FeedEnded)??;
        if event.position <= self.after {
            return Err(RelayError::FeedOutOfOrder {
                position: event.position,
                after: self.after,
            });
        }
        self.after = event.position;
        batch.push(event);
        Ok(())
    }
}

/// Returns after this process appends (and the linger), the poll interval, or
/// a change of `shutdown`, whichever comes first.
async fn wait_for_appends(
    appended: &mut watch::Receiver<u64>,
    limits: &RelayLimits,
    shutdown: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = appended.changed() => {
            tokio::time::sleep(Duration::from_millis(limits.linger_ms)).await;
        }
        _ = shutdown.changed() => {}
        _ = tokio::time::sleep(Duration::from_millis(limits.poll_interval_ms)) => {}
    }
}
