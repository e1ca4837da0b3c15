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

/// The client context: librdkafka's lines through `tracing`, each kind at
/// most once per [`KAFKA_LOG_REPEAT_INTERVAL_MS`].
#[derive(Default)]
pub struct KafkaLog {
    kinds: Mutex<HashMap<String, LogThrottle>>,
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
}

impl ClientContext for KafkaLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
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
