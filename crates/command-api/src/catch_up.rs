//! Reading your own writes: a read of a projection (the ledger, the read
//! model, the search index) first waits, for a bounded time, until that
//! projection shows every write acknowledged before the read began.
//!
//! - Embedded, the projections are fed in this process and each one's relay
//!   reports the log position it has delivered ([`Watermark::InProcess`]).
//! - Distributed, they are fed through Kafka by other processes
//!   ([`Watermark::ConsumerGroup`]): the projection has caught up with the
//!   event store's head once `outbox-relay`'s checkpoint is at or past it and
//!   the consumer group's stored offsets reach the offsets the relay
//!   published up to its checkpoint (`event_bus::group_reached`). The
//!   search index then asks Elasticsearch for a refresh, once for all the
//!   reads that wait on the same offsets, as a write is searchable there
//!   only after one.
//!
//! A projection that does not catch up in time (its consumer down, a
//! backlog) is read as it is: the read answers what the projection has, and
//! a warning is logged.

use std::sync::Arc;
use std::time::Duration;

use event_sink::StoredOffsets;
use event_store::EventStore;
use search_index::SearchIndex;
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

/// How often a read waiting on a consumer group asks PostgreSQL again, in ms.
pub const CONSUMER_GROUP_POLL_MS: u64 = 20;

/// What tells how far one projection has read the log.
#[derive(Clone)]
pub enum Watermark {
    /// An in-process relay: the log position it has delivered.
    InProcess(watch::Receiver<u64>),
    /// A consumer group of another process, through PostgreSQL.
    ConsumerGroup(Arc<ConsumerGroup>),
}

/// How far each projection has read the log; `None`: not waited for.
#[derive(Clone, Default)]
pub struct Progress {
    pub read_model: Option<Watermark>,
    pub ledger: Option<Watermark>,
    pub search_index: Option<Watermark>,
}

/// A Kafka consumer group feeding a projection, and what it needs to know
/// whether the group has caught up.
pub struct ConsumerGroup {
    pool: PgPool,
    /// The relay's row of `relay_checkpoints` and `relay_published_offsets`.
    relay: String,
    topic: String,
    group: String,
    /// `Some` for the search index: refreshed after the group caught up.
    searchable: Option<Searchable>,
}

/// The search index, and the group's offsets as they stood before the last
/// refresh that completed: everything they cover is searchable.
struct Searchable {
    index: Arc<dyn SearchIndex>,
    refreshed: Mutex<StoredOffsets>,
}

impl ConsumerGroup {
    /// Consumer `group` of `topic`, fed by the relay whose checkpoint row is
    /// `relay`, as `pool` shows them.
    pub fn new(pool: PgPool, relay: &str, topic: &str, group: &str) -> Self {
        Self {
            pool,
            relay: relay.to_owned(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            searchable: None,
        }
    }

    /// The group feeds `index`, which a read may search only after a refresh.
    pub fn searching(mut self, index: Arc<dyn SearchIndex>) -> Self {
        self.searchable = Some(Searchable {
            index,
            refreshed: Mutex::new(StoredOffsets::new()),
        });
        self
    }

    /// Waits until the group has applied everything up to log position
    /// `head`, polling every [`CONSUMER_GROUP_POLL_MS`] until `deadline`;
    /// says whether it did. An error of PostgreSQL or of the search index
    /// counts as not caught up.
    async fn reach(&self, head: u64, deadline: Instant) -> bool {
        loop {
            match event_bus::group_reached(&self.pool, &self.relay, &self.topic, &self.group, head)
                .await
            {
                Ok(true) => return self.make_searchable().await,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(group = %self.group, %error, "could not read the consumer group's progress");
                    return false;
                }
            }
            let next = Instant::now() + Duration::from_millis(CONSUMER_GROUP_POLL_MS);
            if next >= deadline {
                return false;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// For the search index: a refresh, unless one that began after the
    /// group stored its present offsets already completed. Reads arriving
    /// together wait for one refresh instead of sending one each.
    async fn make_searchable(&self) -> bool {
        let Some(searchable) = &self.searchable else {
            return true;
        };
        let mut refreshed = searchable.refreshed.lock().await;
        let applied = match postgres_support::consumer_offsets::stored(
            &self.pool,
            &self.group,
            &self.topic,
        )
        .await
        {
            Ok(applied) => applied,
            Err(error) => {
                tracing::warn!(group = %self.group, %error, "could not read the consumer group's offsets");
                return false;
            }
        };
        if covers(&refreshed, &applied) {
            return true;
        }
        match searchable.index.make_searchable().await {
            Ok(()) => {
                *refreshed = applied;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "could not refresh the search index");
                false
            }
        }
    }
}

/// Whether offsets `seen` are at or past `wanted` on every partition of `wanted`.
fn covers(seen: &StoredOffsets, wanted: &StoredOffsets) -> bool {
    wanted.iter().all(|(partition, offset)| {
        seen.get(partition)
            .is_some_and(|seen_offset| seen_offset >= offset)
    })
}

/// Waits, at most `wait_ms` milliseconds, until the projection behind
/// `watermark` shows every write `store` acknowledged before the call; says
/// whether it does. `None` (a projection not waited for) answers `true`.
pub async fn catch_up(store: &dyn EventStore, watermark: &Option<Watermark>, wait_ms: u64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    match watermark {
        None => true,
        Some(Watermark::InProcess(delivered)) => {
            let head = *store.appended().borrow();
            let mut delivered = delivered.clone();
            let reached =
                tokio::time::timeout_at(deadline, delivered.wait_for(|position| *position >= head))
                    .await;
            matches!(reached, Ok(Ok(_)))
        }
        Some(Watermark::ConsumerGroup(group)) => {
            // The store's head, not this replica's own appends: a client's
            // write may have gone through another replica.
            match store.head_position().await {
                Ok(head) => group.reach(head, deadline).await,
                Err(error) => {
                    tracing::warn!(%error, "could not read the event store's head");
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> StoredOffsets {
        pairs.iter().copied().collect()
    }

    #[test]
    fn offsets_cover_only_when_every_wanted_partition_is_reached() {
        let seen = offsets(&[(0, 5), (1, 7)]);
        assert!(covers(&seen, &offsets(&[(0, 5), (1, 6)])));
        assert!(covers(&seen, &offsets(&[])));
        assert!(!covers(&seen, &offsets(&[(0, 6)])), "a partition behind");
        assert!(
            !covers(&seen, &offsets(&[(2, 1)])),
            "a partition never seen"
        );
    }
}
