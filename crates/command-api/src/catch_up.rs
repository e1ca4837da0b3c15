//! Reading your own writes: a read of a projection (the ledger, the read
//! model, the search index) first waits, for a bounded time, until that
//! projection shows every write acknowledged before the read began.
//!
//! - Embedded, the projections are fed in this process and each one's relay
//!   reports the log position it has delivered ([`Watermark::InProcess`]).
//! - Distributed, they are fed through Kafka by other processes
//!   ([`Watermark::ConsumerGroup`]). A read takes the event store's head,
//!   then the offsets `outbox-relay` had published by the first checkpoint
//!   at or past it (`relay_published_offsets`), and waits until the
//!   consumer group's stored offsets (`consumer_offsets`) reach those: writes
//!   made after the read began are not waited for. The readers of one group
//!   share one query per [`CONSUMER_GROUP_POLL_MS`], however many wait. The
//!   search index then asks Elasticsearch for a refresh, once for all the
//!   reads that wait on the same offsets, as a write is searchable there
//!   only after one.
//!
//! A projection that does not catch up in time (its consumer down, a
//! backlog) is read as it is: the read answers what the projection has, and
//! a warning names the projection (and the group).

use std::sync::Arc;
use std::time::Duration;

use event_bus::{group_progress, offsets_reach, GroupProgress, PublishedOffsets};
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
    /// The last answer of PostgreSQL, shared by the waiting reads: each asks
    /// again only once it is [`CONSUMER_GROUP_POLL_MS`] old.
    observed: Mutex<Option<(Instant, GroupProgress)>>,
    /// `Some` for the search index: refreshed after the group caught up.
    searchable: Option<Searchable>,
}

/// The search index, and the group's offsets as they stood before the last
/// refresh that completed: everything they cover is searchable.
struct Searchable {
    index: Arc<dyn SearchIndex>,
    refreshed: Mutex<PublishedOffsets>,
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
            observed: Mutex::new(None),
            searchable: None,
        }
    }

    /// The group feeds `index`, which a read may search only after a refresh.
    pub fn searching(mut self, index: Arc<dyn SearchIndex>) -> Self {
        self.searchable = Some(Searchable {
            index,
            refreshed: Mutex::new(PublishedOffsets::new()),
        });
        self
    }

    /// The group's progress as of at most [`CONSUMER_GROUP_POLL_MS`] ago,
    /// and when it was read: one query for all the reads waiting meanwhile.
    async fn observe(&self) -> Result<(Instant, GroupProgress), sqlx::Error> {
        let mut observed = self.observed.lock().await;
        let poll = Duration::from_millis(CONSUMER_GROUP_POLL_MS);
        if let Some((at, progress)) = observed.as_ref() {
            if at.elapsed() < poll {
                return Ok((*at, progress.clone()));
            }
        }
        let at = Instant::now();
        let progress = group_progress(&self.pool, &self.relay, &self.topic, &self.group).await?;
        *observed = Some((at, progress.clone()));
        Ok((at, progress))
    }

    /// Waits until the group has applied everything up to log position
    /// `head` (what the relay had published by a checkpoint at or past it),
    /// until `deadline`; says whether it did. An error of PostgreSQL or of
    /// the search index counts as not caught up.
    async fn reach(&self, head: u64, deadline: Instant) -> bool {
        let mut target: Option<PublishedOffsets> = None;
        loop {
            let (at, progress) = match self.observe().await {
                Ok(observed) => observed,
                Err(error) => {
                    tracing::warn!(group = %self.group, %error, "could not read the consumer group's progress");
                    return false;
                }
            };
            if target.is_none() && progress.checkpoint >= head {
                target = Some(progress.published.clone());
            }
            if let Some(target) = &target {
                if progress.applied_all_of(target) {
                    return self.make_searchable(target, progress.applied).await;
                }
            }
            let next = at + Duration::from_millis(CONSUMER_GROUP_POLL_MS);
            if next >= deadline {
                return false;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// For the search index: makes `target` searchable with a refresh,
    /// unless a refresh that began after the group had applied it already
    /// completed. `applied` is the group's progress read before this call:
    /// after a refresh, all of it is searchable. Reads arriving together
    /// wait for one refresh instead of sending one each.
    async fn make_searchable(&self, target: &PublishedOffsets, applied: PublishedOffsets) -> bool {
        let Some(searchable) = &self.searchable else {
            return true;
        };
        let mut refreshed = searchable.refreshed.lock().await;
        if offsets_reach(&refreshed, target) {
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

    /// The group's name, for warnings.
    fn name(&self) -> &str {
        &self.group
    }
}

/// The projections a read may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Ledger,
    ReadModel,
    SearchIndex,
}

impl Projection {
    fn name(self) -> &'static str {
        match self {
            Projection::Ledger => "ledger",
            Projection::ReadModel => "read model",
            Projection::SearchIndex => "search index",
        }
    }
}

impl Progress {
    fn watermark(&self, projection: Projection) -> &Option<Watermark> {
        match projection {
            Projection::Ledger => &self.ledger,
            Projection::ReadModel => &self.read_model,
            Projection::SearchIndex => &self.search_index,
        }
    }

    /// Waits, at most `wait_ms` milliseconds, until `projection` shows every
    /// write `store` acknowledged before the call; says whether it does, and
    /// logs a warning naming it when it does not. A projection not waited
    /// for (no watermark) answers `true`.
    pub async fn catch_up(
        &self,
        store: &dyn EventStore,
        projection: Projection,
        wait_ms: u64,
    ) -> bool {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let (reached, group) = match self.watermark(projection) {
            None => (true, None),
            Some(Watermark::InProcess(delivered)) => {
                let head = *store.appended().borrow();
                let mut delivered = delivered.clone();
                let reached = tokio::time::timeout_at(
                    deadline,
                    delivered.wait_for(|position| *position >= head),
                )
                .await;
                (matches!(reached, Ok(Ok(_))), None)
            }
            Some(Watermark::ConsumerGroup(group)) => {
                // The store's head, not this replica's own appends: a
                // client's write may have gone through another replica.
                let reached = match store.head_position().await {
                    Ok(head) => group.reach(head, deadline).await,
                    Err(error) => {
                        tracing::warn!(%error, "could not read the event store's head");
                        false
                    }
                };
                (reached, Some(group.name()))
            }
        };
        if !reached {
            tracing::warn!(
                projection = projection.name(),
                group,
                wait_ms,
                "the projection is behind the event store; answering with what it has"
            );
        }
        reached
    }
}
