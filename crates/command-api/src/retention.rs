//! Stored idempotent responses expire after `IDEMPOTENCY_RETENTION_HOURS`
//! (default [`IDEMPOTENCY_RETENTION_HOURS_DEFAULT`]): a purge runs before the
//! application serves and then every [`IDEMPOTENCY_PURGE_INTERVAL_MS`], in
//! batches of [`IDEMPOTENCY_PURGE_BATCH_MAX`] so that it never holds the
//! store's writer for long. A key whose response was purged may be used
//! again; the events it made stay. On KurrentDB, and for transfers recorded
//! in a transfer journal, keys do not expire (see [`EventStore::purge_idempotent_responses`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use event_store::{EventStore, StoreError};
use tokio::sync::watch;

/// How long a stored response answers retries when nothing is configured: 7 days.
pub const IDEMPOTENCY_RETENTION_HOURS_DEFAULT: u32 = 168;
/// The longest retention accepted: ten years, in hours.
pub const IDEMPOTENCY_RETENTION_HOURS_MAX: u32 = 87_600;
/// How often expired responses are purged while serving.
pub const IDEMPOTENCY_PURGE_INTERVAL_MS: u64 = 600_000;
/// Responses deleted by one statement at most.
pub const IDEMPOTENCY_PURGE_BATCH_MAX: usize = 1_000;
/// Batches one purge round runs at most; the rest waits for the next round.
pub const IDEMPOTENCY_PURGE_BATCHES_MAX: usize = 100;

/// Deletes the responses older than `retention_hours`, batch by batch;
/// returns how many it deleted.
pub async fn purge_expired(
    store: &dyn EventStore,
    retention_hours: u32,
) -> Result<usize, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::hours(i64::from(retention_hours));
    let mut purged = 0;
    for _ in 0..IDEMPOTENCY_PURGE_BATCHES_MAX {
        let deleted = store
            .purge_idempotent_responses(cutoff, IDEMPOTENCY_PURGE_BATCH_MAX)
            .await?;
        purged += deleted;
        if deleted < IDEMPOTENCY_PURGE_BATCH_MAX {
            break;
        }
    }
    Ok(purged)
}

/// Purges once, logging what happened (a failure is retried next round).
pub async fn purge_and_log(store: &dyn EventStore, retention_hours: u32) {
    match purge_expired(store, retention_hours).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(
            purged,
            retention_hours,
            "expired idempotent responses purged"
        ),
        Err(error) => tracing::warn!(%error, "expired idempotent responses could not be purged"),
    }
}

/// How long a key's claim in the transfer journal stands (with the transfer
/// process): the stored answers' retention, plus one purge interval, so the
/// claim outlives the answer its purge deletes and the key is free in both
/// at once for any request (h141 F1).
pub fn claims_expire_after(retention_hours: u32) -> chrono::Duration {
    chrono::Duration::hours(i64::from(retention_hours))
        + chrono::Duration::milliseconds(
            i64::try_from(IDEMPOTENCY_PURGE_INTERVAL_MS).unwrap_or(i64::MAX),
        )
}

/// Purges every [`IDEMPOTENCY_PURGE_INTERVAL_MS`] until the application stops.
pub async fn purge_periodically(
    store: Arc<dyn EventStore>,
    retention_hours: u32,
    mut stopping: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(IDEMPOTENCY_PURGE_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => return,
        }
        purge_and_log(&*store, retention_hours).await;
    }
}
