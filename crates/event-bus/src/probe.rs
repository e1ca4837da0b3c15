//! Whether the brokers answer and know a topic, for health checks.

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

/// Whether the client behind a probe should be replaced before the next
/// probe: when the last one failed or never finished (a health check's own
/// timeout drops a probe that hangs, the very case a stuck client makes), at
/// once the first time, then no more than once per
/// [`PROBE_CLIENT_RENEW_INTERVAL_MS`], so a Kafka that stays down does not
/// get a new client at every health check.
#[derive(Debug, Default)]
pub(crate) struct ProbeRenewal {
    state: Mutex<RenewalState>,
}

#[derive(Debug, Default)]
struct RenewalState {
    /// The last probe failed, or was dropped before it answered.
    failed: bool,
    renewed_at: Option<Instant>,
}

impl ProbeRenewal {
    /// Before a probe: true when the client should be replaced now (and
    /// counts the renewal as done).
    pub(crate) fn due(&self) -> bool {
        let mut state = self.lock();
        let interval = Duration::from_millis(PROBE_CLIENT_RENEW_INTERVAL_MS);
        let recent = state.renewed_at.is_some_and(|at| at.elapsed() < interval);
        if !state.failed || recent {
            return false;
        }
        state.failed = false;
        state.renewed_at = Some(Instant::now());
        true
    }

    /// One probe: `renew` first when a renewal is due, then the blocking
    /// check `check` makes (it reads the client after the renewal), run off
    /// the runtime. A check that fails, or is dropped before it answers,
    /// makes the next probe renew.
    pub(crate) async fn probe<F>(
        &self,
        renew: impl FnOnce(),
        check: impl FnOnce() -> F,
    ) -> Result<(), BusError>
    where
        F: FnOnce() -> Result<(), BusError> + Send + 'static,
    {
        if self.due() {
            renew();
        }
        let attempt = self.attempt();
        tokio::task::spawn_blocking(check()).await??;
        attempt.passed();
        Ok(())
    }

    /// A probe begins: it counts as failed unless [`ProbeAttempt::passed`]
    /// is called, so a probe dropped by a timeout counts too.
    fn attempt(&self) -> ProbeAttempt<'_> {
        ProbeAttempt {
            renewal: self,
            passed: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RenewalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One probe under way (see [`ProbeRenewal::attempt`]).
pub(crate) struct ProbeAttempt<'a> {
    renewal: &'a ProbeRenewal,
    passed: bool,
}

impl ProbeAttempt<'_> {
    /// The probe answered well: the client stays.
    pub(crate) fn passed(mut self) {
        self.passed = true;
        self.renewal.lock().failed = false;
    }
}

impl Drop for ProbeAttempt<'_> {
    fn drop(&mut self) {
        if !self.passed {
            self.renewal.lock().failed = true;
        }
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
        })
    }

    /// Ok when the brokers answer and know the topic. After a probe that
    /// failed or was dropped unanswered, the next one goes through a new
    /// client (at most once per [`PROBE_CLIENT_RENEW_INTERVAL_MS`]).
    pub async fn probe(&self) -> Result<(), BusError> {
        let check = || {
            let client = Arc::clone(&self.client.lock().unwrap_or_else(PoisonError::into_inner));
            let topic = self.topic.clone();
            let timeout = Duration::from_millis(self.request_timeout_ms);
            move || topic_known(client.client(), &topic, timeout)
        };
        self.renewal.probe(|| self.renew(), check).await
    }

    fn renew(&self) {
        match metadata_client(&self.brokers) {
            Ok(fresh) => {
                let stale = std::mem::replace(
                    &mut *self.client.lock().unwrap_or_else(PoisonError::into_inner),
                    Arc::new(fresh),
                );
                tracing::info!("kafka probe client renewed after a probe that failed");
                crate::closing::close_detached(stale);
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
    fn a_renewal_is_due_after_a_failure_then_not_again_within_the_interval() {
        let renewal = ProbeRenewal::default();
        assert!(!renewal.due(), "nothing failed yet");
        renewal.attempt().passed();
        assert!(!renewal.due(), "a probe that passed keeps its client");
        drop(renewal.attempt());
        assert!(renewal.due(), "the first failure renews");
        drop(renewal.attempt());
        assert!(!renewal.due(), "the next within the interval does not");
        renewal.lock().renewed_at =
            Instant::now().checked_sub(Duration::from_millis(PROBE_CLIENT_RENEW_INTERVAL_MS + 1));
        assert!(renewal.due(), "after the interval it does again");
    }

    fn unreachable_probe() -> KafkaProbe {
        // Nothing listens on port 1: every probe fails, with no server needed.
        let mut config = ConsumerConfig::new("127.0.0.1:1", "probe-test");
        config.request_timeout_ms = 200;
        KafkaProbe::for_consumer(&config).expect("probe")
    }

    fn client_of(probe: &KafkaProbe) -> Arc<MetadataClient> {
        Arc::clone(&probe.client.lock().expect("lock"))
    }

    #[tokio::test]
    async fn the_probe_after_a_failed_one_goes_through_a_new_client() {
        let probe = unreachable_probe();
        let first = client_of(&probe);
        assert!(probe.probe().await.is_err());
        assert!(
            Arc::ptr_eq(&first, &client_of(&probe)),
            "kept until the next"
        );
        assert!(probe.probe().await.is_err());
        let second = client_of(&probe);
        assert!(!Arc::ptr_eq(&first, &second), "another client");
        assert!(probe.probe().await.is_err());
        assert!(
            Arc::ptr_eq(&second, &client_of(&probe)),
            "not again within the interval"
        );
    }

    #[tokio::test]
    async fn a_probe_dropped_by_a_health_check_timeout_counts_as_failed() {
        let probe = unreachable_probe();
        let first = client_of(&probe);
        let dropped = tokio::time::timeout(Duration::from_millis(10), probe.probe()).await;
        assert!(dropped.is_err(), "the health check gave up first");
        assert!(probe.probe().await.is_err());
        assert!(!Arc::ptr_eq(&first, &client_of(&probe)), "another client");
    }
}
