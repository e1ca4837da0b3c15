//! The context every Kafka client of Wallex is made with: librdkafka's log
//! lines and errors go to `tracing` as the default context sends them to
//! `log`, but a kind already logged is held back for
//! [`KAFKA_LOG_REPEAT_INTERVAL_MS`] and then logged once with how many were
//! held back. With the brokers away, each client reports every failed
//! reconnection (several a second over the clients of one process); the
//! first line says what happened, the later ones only that it goes on.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use observability::LogThrottle;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;

/// How long a kind of librdkafka log line or error, once logged, is held
/// back before it is logged again, in ms.
pub const KAFKA_LOG_REPEAT_INTERVAL_MS: u64 = 60_000;
/// Kinds one client remembers at most; past it, every line is logged (a
/// bound on the map, not a case that happens: kinds are librdkafka's
/// facilities and error codes).
const KAFKA_LOG_KINDS_MAX: usize = 256;

/// A consumer of Wallex's, with [`KafkaLog`].
pub type KafkaConsumer = StreamConsumer<KafkaLog>;
/// A client that only asks for metadata, with [`KafkaLog`].
pub type MetadataClient = BaseConsumer<KafkaLog>;

/// How long a join state reported by a member's statistics is taken as
/// its state, in ms: three reports ([`crate::config::MEMBER_STATISTICS_INTERVAL_MS`]).
/// Reports stop when the loop does not poll (it is handling a batch) or when
/// the client's main thread does not run; an older state is not trusted.
const JOIN_STATE_FRESH_MS: u64 = 3 * crate::config::MEMBER_STATISTICS_INTERVAL_MS;

/// The client context: librdkafka's lines through `tracing`, each kind at
/// most once per [`KAFKA_LOG_REPEAT_INTERVAL_MS`]; and, for a group member,
/// its join state from the statistics its client emits
/// (`statistics.interval.ms`) and the partitions its rebalances assigned it.
#[derive(Default)]
pub struct KafkaLog {
    kinds: Mutex<HashMap<String, LogThrottle>>,
    group: Mutex<GroupSeen>,
}

/// A member's group state: what its statistics last reported, and what its
/// rebalances assigned it.
#[derive(Debug, Default)]
struct GroupSeen {
    join_state: Option<String>,
    /// When the last report came.
    reported_at: Option<Instant>,
    /// The partitions assigned, of the one topic a member subscribes to.
    assigned: BTreeSet<i32>,
}

/// The part of librdkafka's statistics JSON read: the consumer group's.
#[derive(serde::Deserialize)]
struct Statistics {
    cgrp: Option<GroupStatistics>,
}

#[derive(serde::Deserialize)]
struct GroupStatistics {
    join_state: String,
}

impl KafkaLog {
    /// `None` to hold a line of `kind` back; else how many of it were held
    /// back since it was last logged.
    fn admit(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let line = match kinds.get_mut(kind) {
            Some(throttle) => throttle.occurred(now),
            None => {
                let mut throttle =
                    LogThrottle::every(Duration::from_millis(KAFKA_LOG_REPEAT_INTERVAL_MS));
                let line = throttle.occurred(now);
                if kinds.len() < KAFKA_LOG_KINDS_MAX {
                    kinds.insert(kind.to_owned(), throttle);
                }
                line
            }
        };
        line.map(|line| line.held_back)
    }

    /// The member's join state by its last statistics report, when that
    /// came within [`JOIN_STATE_FRESH_MS`] before `now`; `None` otherwise.
    pub fn join_state(&self, now: Instant) -> Option<String> {
        let group = self.lock_group();
        let fresh = group.reported_at.is_some_and(|at| {
            now.saturating_duration_since(at) < Duration::from_millis(JOIN_STATE_FRESH_MS)
        });
        fresh.then(|| group.join_state.clone()).flatten()
    }

    /// The partitions librdkafka's rebalances assigned this member and did
    /// not revoke since.
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.lock_group().assigned.clone()
    }

    /// Whether the last statistics report said the member is in its group
    /// (join state `steady`); false before the first, or for a client that
    /// is no group member.
    pub fn in_group(&self) -> bool {
        self.lock_group().join_state.as_deref() == Some("steady")
    }

    /// Notes one statistics report, received at `now`.
    fn observed(&self, statistics: &Statistics, now: Instant) {
        let join_state = statistics
            .cgrp
            .as_ref()
            .map(|group| group.join_state.clone());
        let mut group = self.lock_group();
        group.join_state = join_state;
        group.reported_at = Some(now);
    }

    /// Notes a rebalance: an assignment adds its partitions, a revocation
    /// takes its away (eager rebalances revoke all before assigning all;
    /// cooperative ones move some).
    fn rebalanced(&self, rebalance: &Rebalance<'_>) {
        let mut group = self.lock_group();
        match rebalance {
            Rebalance::Assign(partitions) => group.assigned.extend(
                partitions
                    .elements()
                    .iter()
                    .map(|element| element.partition()),
            ),
            Rebalance::Revoke(partitions) => {
                for element in partitions.elements() {
                    group.assigned.remove(&element.partition());
                }
            }
            Rebalance::Error(_) => {}
        }
    }

    fn lock_group(&self) -> std::sync::MutexGuard<'_, GroupSeen> {
        self.group.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for KafkaLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if matches!(level, RDKafkaLogLevel::Debug) {
            // Only a client asked for `debug` contexts writes these, and
            // each line is one step of what was asked for: none held back.
            tracing::debug!(target: "librdkafka", "{facility} {message}");
            return;
        }
        let Some(held_back) = self.admit(facility, Instant::now()) else {
            return;
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", held_back, "{facility} {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", held_back, "{facility} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", held_back, "{facility} {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", held_back, "{facility} {message}")
            }
        }
    }

    fn stats_raw(&self, statistics: &[u8]) {
        match serde_json::from_slice::<Statistics>(statistics) {
            Ok(statistics) => self.observed(&statistics, Instant::now()),
            Err(error) => tracing::debug!(%error, "unreadable librdkafka statistics"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = error
            .rdkafka_error_code()
            .map_or_else(|| format!("{error:?}"), |code| format!("{code:?}"));
        if let Some(held_back) = self.admit(&kind, Instant::now()) {
            tracing::error!(target: "librdkafka", held_back, "{error}: {reason}");
        }
    }
}

impl ConsumerContext for KafkaLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalanced(rebalance);
    }
}

/// Creates a client of type `T` from `config` with a fresh [`KafkaLog`].
pub(crate) fn create<T: FromClientConfigAndContext<KafkaLog>>(
    config: &ClientConfig,
) -> Result<T, KafkaError> {
    config.create_with_context(KafkaLog::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(join_state: &str) -> Statistics {
        serde_json::from_str(&format!(
            r#"{{"name": "c", "cgrp": {{"state": "up", "join_state": "{join_state}"}}, "topics": {{}}}}"#
        ))
        .expect("statistics")
    }

    #[test]
    fn the_join_state_is_the_last_reported_while_reports_come() {
        let log = KafkaLog::default();
        let start = Instant::now();
        assert!(!log.in_group(), "no report yet");
        assert_eq!(log.join_state(start), None);
        log.observed(&report("steady"), start);
        assert!(log.in_group());
        log.observed(&report("wait-join"), start);
        assert!(!log.in_group(), "rejoining");
        let fresh = Duration::from_millis(JOIN_STATE_FRESH_MS);
        assert_eq!(
            log.join_state(start + fresh / 2).as_deref(),
            Some("wait-join")
        );
        assert_eq!(log.join_state(start + fresh), None, "reports stopped");
        let producer: Statistics = serde_json::from_str(r#"{"name": "p"}"#).expect("no group");
        log.observed(&producer, start);
        assert_eq!(log.join_state(start), None, "no group in the report");
    }

    #[test]
    fn rebalances_assign_and_revoke_partitions() {
        let log = KafkaLog::default();
        let mut first = rdkafka::TopicPartitionList::new();
        first.add_partition("t", 0);
        first.add_partition("t", 1);
        log.rebalanced(&Rebalance::Assign(&first));
        assert_eq!(log.assigned(), BTreeSet::from([0, 1]));
        let mut moved = rdkafka::TopicPartitionList::new();
        moved.add_partition("t", 1);
        log.rebalanced(&Rebalance::Revoke(&moved));
        assert_eq!(log.assigned(), BTreeSet::from([0]), "a cooperative move");
        log.rebalanced(&Rebalance::Revoke(&first));
        assert!(log.assigned().is_empty(), "an eager revocation of all");
    }

    #[test]
    fn a_kind_is_logged_once_an_interval_with_the_count_held_back() {
        let log = KafkaLog::default();
        let start = Instant::now();
        let interval = Duration::from_millis(KAFKA_LOG_REPEAT_INTERVAL_MS);
        assert_eq!(log.admit("FAIL", start), Some(0));
        assert_eq!(log.admit("FAIL", start + interval / 2), None);
        assert_eq!(log.admit("FAIL", start + interval / 2), None);
        assert_eq!(log.admit("REQTMOUT", start), Some(0), "another kind");
        assert_eq!(log.admit("FAIL", start + interval), Some(2));
        assert_eq!(log.admit("FAIL", start + interval), None);
    }
}
