//! Whether the brokers answer and know a topic, for health checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

use crate::client_log::{self, MetadataClient};
use crate::config::ConsumerConfig;
use crate::BusError;

/// After a failed probe, the next one goes through a new client, at most once
/// per this many ms. A client whose connection timed out in its handshake
/// (`ApiVersionRequest … Timed out`) while Kafka was stopped can stay
/// unconnected for good once Kafka is back: seen in the fault tests after
/// 45–75 s stalls, a consumer's probe answering "Kafka down" for 6 minutes
/// and command-api's for 26, until their processes restarted, while every
/// other client of the same processes worked. A producer renewed after a
/// failed batch is the same remedy ([`crate::KafkaPublisher`]).
pub const PROBE_CLIENT_RENEW_INTERVAL_MS: u64 = 10_000;

/// When a client that failed a probe may be replaced: at once the first
/// time, then no more than once per [`PROBE_CLIENT_RENEW_INTERVAL_MS`], so a
/// Kafka that stays down does not get a new client at every health check.
#[derive(Debug, Default)]
pub(crate) struct ProbeRenewal {
    last: Mutex<Option<Instant>>,
}

impl ProbeRenewal {
    /// True when a renewal is due now (and counts it as done).
    pub(crate) fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let interval = Duration::from_millis(PROBE_CLIENT_RENEW_INTERVAL_MS);
        if last.is_some_and(|at| at.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// A client that only asks for metadata: it joins no group and reads nothing.
pub struct KafkaProbe {
    /// Replaced after a failed probe (see [`PROBE_CLIENT_RENEW_INTERVAL_MS`]).
    client: Mutex<Arc<MetadataClient>>,
    brokers: String,
    topic: String,
    request_timeout_ms: u64,
    renewal: ProbeRenewal,
    renewals: AtomicU64,
}

impl KafkaProbe {
    /// A probe of `config.topic` on `config.brokers`, each answer bounded by
    /// `config.request_timeout_ms`. Connects lazily, so a broker that is down
    /// shows in [`KafkaProbe::probe`], not here.
    pub fn for_consumer(config: &ConsumerConfig) -> Result<Self, BusError> {
        Ok(Self {
            client: Mutex::new(Arc::new(metadata_client(&config.brokers)?)),
            brokers: config.brokers.clone(),
            topic: config.topic.clone(),
            request_timeout_ms: config.request_timeout_ms,
            renewal: ProbeRenewal::default(),
            renewals: AtomicU64::new(0),
        })
    }

    /// Ok when the brokers answer and know the topic. A failure puts a new
    /// client in place for the next probe (at most once per
    /// [`PROBE_CLIENT_RENEW_INTERVAL_MS`]).
    pub async fn probe(&self) -> Result<(), BusError> {
        let client = Arc::clone(&self.client.lock().unwrap_or_else(PoisonError::into_inner));
        let topic = self.topic.clone();
        let timeout = Duration::from_millis(self.request_timeout_ms);
        // Metadata requests block: off the runtime.
        let answer =
            tokio::task::spawn_blocking(move || topic_known(client.client(), &topic, timeout))
                .await?;
        if answer.is_err() && self.renewal.due() {
            self.renew();
        }
        answer
    }

    /// How many times a failed probe replaced the client.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    fn renew(&self) {
        match metadata_client(&self.brokers) {
            Ok(fresh) => {
                let stale = std::mem::replace(
                    &mut *self.client.lock().unwrap_or_else(PoisonError::into_inner),
                    Arc::new(fresh),
                );
                self.renewals.fetch_add(1, Ordering::Relaxed);
                // Destroying a librdkafka client waits for its threads: off the runtime.
                tokio::task::spawn_blocking(move || drop(stale));
            }
            Err(error) => {
                tracing::warn!(%error, "kafka probe client could not be renewed; keeping the old one");
            }
        }
    }
}

fn metadata_client(brokers: &str) -> Result<MetadataClient, BusError> {
    Ok(client_log::create(
        ClientConfig::new().set("bootstrap.servers", brokers),
    )?)
}

/// Asks `client` for the metadata of `topic` (blocking, bounded by `timeout`).
pub(crate) fn topic_known<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<(), BusError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let known = metadata
        .topics()
        .iter()
        .any(|found| found.name() == topic && found.error().is_none());
    if known {
        Ok(())
    } else {
        Err(BusError::Invalid(format!(
            "topic {topic} is unknown to the brokers"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_is_due_at_once_then_not_again_within_the_interval() {
        let renewal = ProbeRenewal::default();
        assert!(renewal.due(), "the first failure renews");
        assert!(!renewal.due(), "the next within the interval does not");
        *renewal.last.lock().expect("lock") =
            Instant::now().checked_sub(Duration::from_millis(PROBE_CLIENT_RENEW_INTERVAL_MS + 1));
        assert!(renewal.due(), "after the interval it does again");
    }

    #[tokio::test]
    async fn a_failed_probe_puts_a_new_client_in_place() {
        // Nothing listens on port 1: every probe fails, with no server needed.
        let mut config = ConsumerConfig::new("127.0.0.1:1", "probe-test");
        config.request_timeout_ms = 200;
        let probe = KafkaProbe::for_consumer(&config).expect("probe");
        let before = Arc::clone(&probe.client.lock().expect("lock"));
        assert!(probe.probe().await.is_err());
        assert_eq!(probe.renewals(), 1);
        let after = Arc::clone(&probe.client.lock().expect("lock"));
        assert!(!Arc::ptr_eq(&before, &after), "another client");
        assert!(probe.probe().await.is_err());
        assert_eq!(probe.renewals(), 1, "not again within the interval");
    }
}
