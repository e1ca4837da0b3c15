//! Prometheus metrics of the relay, served at `/metrics`.

use event_bus::PublisherMetrics;
use prometheus::{IntGauge, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub publisher: PublisherMetrics,
    /// 1 while this replica leads.
    pub leader: IntGauge,
    /// The checkpoint the leader stored in PostgreSQL, on every replica.
    pub checkpoint_position: IntGauge,
    /// The event log's last position.
    pub head_position: IntGauge,
    /// Events stored but not yet published (head − checkpoint), the same
    /// on every replica, as `/health` tells it.
    pub lag_events: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("wallex".into()), None)?;
        let publisher = PublisherMetrics::register(&registry)?;
        let leader = IntGauge::new("relay_leader", "1 while this replica is the relay's leader")?;
        let checkpoint_position = IntGauge::new(
            "relay_checkpoint_position",
            "Last position published to Kafka and checkpointed (by whichever replica leads)",
        )?;
        let head_position = IntGauge::new("relay_head_position", "Last position in the event log")?;
        let lag_events = IntGauge::new(
            "relay_lag_events",
            "Events in the log not yet published (head - checkpoint)",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(checkpoint_position.clone()))?;
        registry.register(Box::new(head_position.clone()))?;
        registry.register(Box::new(lag_events.clone()))?;
        Ok(Self {
            registry,
            publisher,
            leader,
            checkpoint_position,
            head_position,
            lag_events,
        })
    }
}
