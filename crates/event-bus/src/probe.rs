//! Whether the brokers answer and know a topic, for health checks.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

use crate::client_log::{self, MetadataClient};
use crate::config::ConsumerConfig;
use crate::BusError;

/// A client that only asks for metadata: it joins no group and reads nothing.
pub struct KafkaProbe {
    client: Arc<MetadataClient>,
    topic: String,
    request_timeout_ms: u64,
}

impl KafkaProbe {
    /// A probe of `config.topic` on `config.brokers`, each answer bounded by
    /// `config.request_timeout_ms`. Connects lazily, so a broker that is down
    /// shows in [`KafkaProbe::probe`], not here.
    pub fn for_consumer(config: &ConsumerConfig) -> Result<Self, BusError> {
        let client: MetadataClient =
            client_log::create(ClientConfig::new().set("bootstrap.servers", &config.brokers))?;
        Ok(Self {
            client: Arc::new(client),
            topic: config.topic.clone(),
            request_timeout_ms: config.request_timeout_ms,
        })
    }

    /// Ok when the brokers answer and know the topic.
    pub async fn probe(&self) -> Result<(), BusError> {
        let client = Arc::clone(&self.client);
        let topic = self.topic.clone();
        let timeout = Duration::from_millis(self.request_timeout_ms);
        // Metadata requests block: off the runtime.
        tokio::task::spawn_blocking(move || topic_known(client.client(), &topic, timeout)).await?
    }
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
