//! The context every Kafka client of Wallex is made with: librdkafka's log
//! lines and errors go to `tracing` as the default context sends them to
//! `log`, but a kind already logged is held back for
//! [`KAFKA_LOG_REPEAT_INTERVAL_MS`] and then logged once with how many were
//! held back. With the brokers away, each client reports every failed
//! reconnection (several a second over the clients of one process); the
//! first line says what happened, the later ones only that it goes on.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use observability::LogThrottle;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

/// How long a kind of librdkafka log line or error, once logged, is held
/// back before it is logged again, in ms.
pub const KAFKA_LOG_REPEAT_INTERVAL_MS: u64 = 60_000;
/// Kinds one client remembers at most; past it, every line is logged (a
/// bound on the map, not a case that happens: kinds are librdkafka's
/// facilities and error codes).
const KAFKA_LOG_KINDS_MAX: usize = 256;

/// A consumer of Wallex's, with [`KafkaLog`].
pub type KafkaConsumer = StreamConsumer<KafkaLog>;
/// A producer of Wallex's, with [`KafkaLog`].
pub type KafkaProducer = FutureProducer<KafkaLog>;
/// A client that only asks for metadata, with [`KafkaLog`].
pub type MetadataClient = BaseConsumer<KafkaLog>;

/// Join states of a group member waiting for its own unassignment to
/// complete (librdkafka's `cgrp.join_state` in its statistics): local
/// waits, which a healthy client ends within a request timeout.
const UNASSIGN_WAIT_JOIN_STATES: [&str; 3] = [
    "wait-unassign-call",
    "wait-unassign-to-complete",
    "wait-incr-unassign-to-complete",
];

/// The client context: librdkafka's lines through `tracing`, each kind at
/// most once per [`KAFKA_LOG_REPEAT_INTERVAL_MS`]; and, from the statistics
/// a group member's client emits (`statistics.interval.ms`), since when it
/// waits for its unassignment ([`KafkaLog::unassign_waiting_for`]).
#[derive(Default)]
pub struct KafkaLog {
    kinds: Mutex<HashMap<String, LogThrottle>>,
    group: Mutex<GroupSeen>,
}

/// The group state a member's statistics last reported.
#[derive(Debug, Default)]
struct GroupSeen {
    join_state: Option<String>,
    /// Since when the reports say it waits for its unassignment.
    unassign_waiting_since: Option<Instant>,
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

    /// How long, by the statistics up to `now`, this member has been waiting
    /// for its unassignment to complete; `None` when it is not. After a
    /// broker paused for a minute, a member was seen to wait there for good,
    /// out of the group and fetching nothing, its group's partitions
    /// unconsumed, until it was replaced.
    pub fn unassign_waiting_for(&self, now: Instant) -> Option<Duration> {
        self.lock_group()
            .unassign_waiting_since
            .map(|since| now.saturating_duration_since(since))
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
        let waiting = join_state
            .as_deref()
            .is_some_and(|state| UNASSIGN_WAIT_JOIN_STATES.contains(&state));
        let mut group = self.lock_group();
        group.unassign_waiting_since = waiting.then(|| group.unassign_waiting_since.unwrap_or(now));
        group.join_state = join_state;
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

impl ConsumerContext for KafkaLog {}

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
    fn a_wait_for_unassignment_is_timed_from_its_first_report_until_it_ends() {
        let log = KafkaLog::default();
        let start = Instant::now();
        assert!(!log.in_group(), "no report yet");
        log.observed(&report("steady"), start);
        assert!(log.in_group());
        assert_eq!(log.unassign_waiting_for(start), None);
        log.observed(&report("wait-unassign-to-complete"), start);
        let later = start + Duration::from_secs(30);
        log.observed(&report("wait-unassign-to-complete"), later);
        assert_eq!(
            log.unassign_waiting_for(later + Duration::from_secs(5)),
            Some(Duration::from_secs(35)),
            "timed from the first report of the wait"
        );
        log.observed(&report("wait-join"), later);
        assert_eq!(log.unassign_waiting_for(later), None);
        assert!(!log.in_group(), "rejoining");
        let producer: Statistics = serde_json::from_str(r#"{"name": "p"}"#).expect("no group");
        log.observed(&producer, later);
        assert_eq!(log.unassign_waiting_for(later), None);
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
