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
//! a warning names the projection (and the group). When what the wait asks
//! does not answer (the event store's head, the group's progress, the
//! search index's refresh), the read is answered 503 instead
//! ([`CatchUp::Unavailable`]): it could not promise the client's own
//! writes, and the projection's own server is likely the one away.

use std::sync::Arc;
use std::time::Duration;

use event_bus::{group_progress, offsets_reach, GroupProgress, PublishedOffsets};
use event_store::EventStore;
use observability::LogThrottle;
use search_index::SearchIndex;
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

/// How often a read waiting on a consumer group asks PostgreSQL again, in ms.
pub const CONSUMER_GROUP_POLL_MS: u64 = 20;

/// How a read's wait for its projection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// The projection shows every write acknowledged before the read: it
    /// was delivered every event of the log up to position `through` (the
    /// head the wait took), or `None` for a projection not waited for.
    Reached { through: Option<u64> },
    /// It did not within the wait: the read answers what it has.
    Behind,
    /// What the wait asks did not answer (the event store's head, the
    /// consumer group's progress in PostgreSQL, the search index's
    /// refresh); the text says which, for the log.
    Unavailable(String),
}

/// What tells how far one projection has read the log.
#[derive(Clone)]
pub enum Watermark {
    /// An in-process relay: the log position it has delivered.
    InProcess(watch::Receiver<u64>),
    /// A consumer group of another process, through PostgreSQL.
    ConsumerGroup(Arc<ConsumerGroup>),
}

/// How often, at most, a projection's "behind the event store" warning is
/// logged, in ms; the reads that gave up meanwhile are counted in the next.
pub const GIVE_UP_WARNING_INTERVAL_MS: u64 = 1_000;

/// How far each projection has read the log; `None`: not waited for.
#[derive(Clone)]
pub struct Progress {
    read_model: Option<Watermark>,
    ledger: Option<Watermark>,
    search_index: Option<Watermark>,
    /// By projection (ledger, read model, search index): the reads that
    /// gave up, warned of at most once a [`GIVE_UP_WARNING_INTERVAL_MS`].
    gave_up: Arc<[std::sync::Mutex<LogThrottle>; 3]>,
}

impl Default for Progress {
    /// No projection waited for.
    fn default() -> Self {
        Self::new(None, None, None)
    }
}

/// A Kafka consumer group feeding a projection, and what it needs to know
/// whether the group has caught up.
pub struct ConsumerGroup {
    pool: PgPool,
    /// The relay's row of `relay_checkpoints` and `relay_published_offsets`.
    relay: String,
    topic: String,
    group: String,
    /// The last answer of PostgreSQL, shared by the waiting reads: each
    /// asks again only once it is [`CONSUMER_GROUP_POLL_MS`] old.
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
            observed: Mutex::default(),
            searchable: None,
        }
    }

    /// This group as the one feeding `index`, which a read may search only
    /// after a refresh.
    pub fn searching(self, index: Arc<dyn SearchIndex>) -> Self {
        Self {
            searchable: Some(Searchable {
                index,
                refreshed: Mutex::new(PublishedOffsets::new()),
            }),
            ..self
        }
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
    /// until `deadline`; says whether it did, or that PostgreSQL or the
    /// search index did not answer.
    async fn reach(&self, head: u64, deadline: Instant) -> CatchUp {
        let mut target: Option<PublishedOffsets> = None;
        loop {
            let (at, progress) = match self.observe().await {
                Ok(observed) => observed,
                Err(error) => {
                    tracing::warn!(group = %self.group, %error, "could not read the consumer group's progress");
                    return CatchUp::Unavailable(format!(
                        "the progress of consumer group {}: {error}",
                        self.group
                    ));
                }
            };
            if target.is_none() && progress.checkpoint >= head {
                target = Some(progress.published.clone());
            }
            if let Some(target) = &target {
                if progress.applied_all_of(target) {
                    return self.make_searchable(head, target, progress.applied).await;
                }
            }
            let next = at + Duration::from_millis(CONSUMER_GROUP_POLL_MS);
            if next >= deadline {
                return CatchUp::Behind;
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// For the search index: makes `target` searchable with a refresh,
    /// unless a refresh that began after the group had applied it already
    /// completed. `applied` is the group's progress read before this call:
    /// after a refresh, all of it is searchable. Reads arriving together
    /// wait for one refresh instead of sending one each. `head` is the log
    /// position `target` covers.
    async fn make_searchable(
        &self,
        head: u64,
        target: &PublishedOffsets,
        applied: PublishedOffsets,
    ) -> CatchUp {
        let reached = CatchUp::Reached {
            through: Some(head),
        };
        let Some(searchable) = &self.searchable else {
            return reached;
        };
        let mut refreshed = searchable.refreshed.lock().await;
        if offsets_reach(&refreshed, target) {
            return reached;
        }
        match searchable.index.make_searchable().await {
            Ok(()) => {
                *refreshed = applied;
                reached
            }
            // The search that would follow asks the same server, which has
            // just spent its request timeout not answering.
            Err(error) => {
                tracing::warn!(%error, "could not refresh the search index");
                CatchUp::Unavailable(format!("the search index's refresh: {error}"))
            }
        }
    }

    /// The group's name, for warnings.
    fn name(&self) -> &str {
        &self.group
    }

    /// Messages the relay published that the group has not applied yet,
    /// summed over the partitions (a partition it stored nothing of counts
    /// whole), and whether it stored any offset at all.
    async fn lag(&self) -> Result<GroupLag, sqlx::Error> {
        let (_, progress) = self.observe().await?;
        let messages_behind = progress
            .published
            .iter()
            .map(|(partition, published)| {
                let applied = progress.applied.get(partition).copied().unwrap_or(0);
                u64::try_from(published.saturating_sub(applied)).unwrap_or(0)
            })
            .sum();
        Ok(GroupLag {
            group: self.group.clone(),
            messages_behind,
            stored_offsets: !progress.applied.is_empty(),
        })
    }
}

/// What `/health` tells of a projection fed by a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupLag {
    /// The consumer group command-api waits for (`LEDGER_CONSUMER_GROUP`,
    /// `PROJECTION_CONSUMER_GROUP`, and for the search index
    /// `<PROJECTION_CONSUMER_GROUP>-search-index`).
    pub group: String,
    /// Messages published to the topic that the group has not applied yet.
    pub messages_behind: u64,
    /// Whether the group stored any offset: `false` with messages behind is
    /// a group no consumer runs in (not started yet, or a
    /// `LEDGER_CONSUMER_GROUP` / `PROJECTION_CONSUMER_GROUP` that is not the
    /// consumers' `KAFKA_GROUP_ID`), whose reads each wait their whole bound.
    pub stored_offsets: bool,
}

/// The projections a read may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    Ledger,
    ReadModel,
    SearchIndex,
}

impl Projection {
    fn index(self) -> usize {
        match self {
            Projection::Ledger => 0,
            Projection::ReadModel => 1,
            Projection::SearchIndex => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Projection::Ledger => "ledger",
            Projection::ReadModel => "read model",
            Projection::SearchIndex => "search index",
        }
    }

    /// The projection's name in a header value: `ledger`, `read-model`,
    /// `search-index`.
    pub fn token(self) -> &'static str {
        match self {
            Projection::Ledger => "ledger",
            Projection::ReadModel => "read-model",
            Projection::SearchIndex => "search-index",
        }
    }

    /// What a client is told when a read of this projection is answered
    /// 503, whether its store did not answer or the wait before it
    /// (`http::error` uses it for both).
    pub fn unavailable_message(self) -> &'static str {
        match self {
            Projection::Ledger => "Ledger unavailable",
            Projection::ReadModel => "Read model unavailable",
            Projection::SearchIndex => "Search index unavailable",
        }
    }

    /// What a client is told when this projection's file was found damaged
    /// (embedded default): no retry mends it, and moving the file out does,
    /// as it is built again from the event log at the next start.
    pub fn damaged_message(self) -> &'static str {
        match self {
            Projection::Ledger => {
                "The ledger's file (ledger.db) is damaged: the ledger routes are not served until \
                 an operator moves it out of the data folder and restarts the server, which \
                 builds it again from the event log. Wallet commands are still taken"
            }
            Projection::ReadModel => {
                "The read model's file (read_model.db) is damaged: the wallet list is not served \
                 until an operator moves it out of the data folder and restarts the server, \
                 which builds it again from the event log. Wallet commands are still taken"
            }
            Projection::SearchIndex => {
                "The search index's file (search_index.db) is damaged: transaction history and \
                 search are not served until an operator moves it out of the data folder and \
                 restarts the server, which builds it again from the event log. Wallet commands \
                 are still taken"
            }
        }
    }
}

impl Progress {
    /// The watermarks of the three projections (`None`: not waited for).
    pub fn new(
        ledger: Option<Watermark>,
        read_model: Option<Watermark>,
        search_index: Option<Watermark>,
    ) -> Self {
        Self {
            read_model,
            ledger,
            search_index,
            gave_up: Arc::new(std::array::from_fn(|_| {
                std::sync::Mutex::new(LogThrottle::every(Duration::from_millis(
                    GIVE_UP_WARNING_INTERVAL_MS,
                )))
            })),
        }
    }

    /// The in-process relays' delivered positions (embedded only).
    pub fn in_process(&self) -> Vec<watch::Receiver<u64>> {
        [&self.ledger, &self.read_model, &self.search_index]
            .into_iter()
            .filter_map(|watermark| match watermark {
                Some(Watermark::InProcess(delivered)) => Some(delivered.clone()),
                _ => None,
            })
            .collect()
    }

    /// Counts a read of `projection` that gave up and logs a warning, at
    /// most one per [`GIVE_UP_WARNING_INTERVAL_MS`] per projection.
    fn gave_up(&self, projection: Projection, group: Option<&str>, wait_ms: u64) {
        let mut gave_up = self.gave_up[projection.index()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // tokio's clock, as the waits are timed by it.
        let Some(line) = gave_up.occurred(Instant::now().into_std()) else {
            return;
        };
        tracing::warn!(
            projection = projection.name(),
            group,
            wait_ms,
            // This read and those held back since the last warning.
            reads = line.held_back.saturating_add(1),
            "the projection is behind the event store; answering with what it has"
        );
    }

    /// For a projection fed by a consumer group (distributed): the group
    /// and how far behind the relay it is, to be awaited; `None` otherwise.
    pub fn group_lag(
        &self,
        projection: Projection,
    ) -> Option<impl std::future::Future<Output = Result<GroupLag, sqlx::Error>> + '_> {
        let Some(Watermark::ConsumerGroup(group)) = self.watermark(projection) else {
            return None;
        };
        Some(group.lag())
    }

    fn watermark(&self, projection: Projection) -> &Option<Watermark> {
        match projection {
            Projection::Ledger => &self.ledger,
            Projection::ReadModel => &self.read_model,
            Projection::SearchIndex => &self.search_index,
        }
    }

    /// Waits, at most `wait_ms` milliseconds, until `projection` shows every
    /// write `store` acknowledged before the call; says whether it does
    /// (and logs a warning naming it when it does not), or that what the
    /// wait asks did not answer. A projection not waited for (no watermark)
    /// is [`CatchUp::Reached`].
    pub async fn catch_up(
        &self,
        store: &dyn EventStore,
        projection: Projection,
        wait_ms: u64,
    ) -> CatchUp {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let (caught, group) = match self.watermark(projection) {
            None => (CatchUp::Reached { through: None }, None),
            Some(Watermark::InProcess(delivered)) => {
                let head = *store.appended().borrow();
                let mut delivered = delivered.clone();
                let reached = tokio::time::timeout_at(
                    deadline,
                    delivered.wait_for(|position| *position >= head),
                )
                .await;
                let caught = if matches!(reached, Ok(Ok(_))) {
                    CatchUp::Reached {
                        through: Some(head),
                    }
                } else {
                    CatchUp::Behind
                };
                (caught, None)
            }
            Some(Watermark::ConsumerGroup(group)) => {
                // The store's head, not this replica's own appends: a
                // client's write may have gone through another replica.
                let caught = match store.head_position().await {
                    Ok(head) => group.reach(head, deadline).await,
                    Err(error) => {
                        tracing::warn!(%error, "could not read the event store's head");
                        CatchUp::Unavailable(format!("the event store's head: {error}"))
                    }
                };
                (caught, Some(group.name()))
            }
        };
        if caught == CatchUp::Behind {
            self.gave_up(projection, group, wait_ms);
        }
        caught
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_that_give_up_are_warned_of_once_an_interval_and_counted() {
        let progress = Progress::default();
        for _ in 0..3 {
            progress.gave_up(Projection::Ledger, Some("wallex-ledger"), 2_000);
        }
        progress.gave_up(Projection::SearchIndex, None, 2_000);
        // Whether a warning was logged, and the reads kept for the next
        // one: those a read after the interval would report.
        let after_the_interval =
            Instant::now().into_std() + Duration::from_millis(GIVE_UP_WARNING_INTERVAL_MS);
        let state = |projection: Projection| {
            let mut gave_up = progress.gave_up[projection.index()]
                .lock()
                .expect("not poisoned")
                .clone();
            let warned = gave_up.in_a_row() > 0;
            let held_back = gave_up
                .occurred(after_the_interval)
                .map_or(0, |line| line.held_back);
            (warned, held_back)
        };
        assert_eq!(
            state(Projection::Ledger),
            (true, 2),
            "one warning, two reads kept for the next"
        );
        assert_eq!(
            state(Projection::SearchIndex),
            (true, 0),
            "its own interval"
        );
        assert_eq!(state(Projection::ReadModel), (false, 0));
    }

    /// An event store whose head cannot be read: its data folder was moved
    /// away after it opened.
    fn store_without_a_head() -> (tempfile::TempDir, event_store::EmbeddedEventStore) {
        let root = tempfile::tempdir().expect("temp dir");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("data folder");
        let store = event_store::EmbeddedEventStore::open(&data).expect("open");
        std::fs::rename(&data, root.path().join("moved")).expect("moved");
        (root, store)
    }

    #[tokio::test]
    async fn a_read_whose_wait_gets_no_head_is_unavailable_not_behind() {
        let (_root, store) = store_without_a_head();
        assert!(store.head_position().await.is_err());
        // Never asked: the head fails first.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool");
        let group = ConsumerGroup::new(pool, "relay", "wallet-events", "wallex-ledger");
        let progress = Progress::new(Some(Watermark::ConsumerGroup(Arc::new(group))), None, None);
        let caught = progress.catch_up(&store, Projection::Ledger, 1_000).await;
        assert!(matches!(caught, CatchUp::Unavailable(_)), "{caught:?}");
        assert_eq!(
            progress
                .catch_up(&store, Projection::ReadModel, 1_000)
                .await,
            CatchUp::Reached { through: None },
            "a projection not waited for"
        );
    }
}
