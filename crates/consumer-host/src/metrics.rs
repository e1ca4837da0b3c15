//! One registry per consumer: the bus's consumer metrics and the binary's own.

use event_bus::ConsumerMetrics;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Messages processed and dead-lettered, retries, commit failures, lag.
    pub consumer: ConsumerMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let consumer = ConsumerMetrics::register(&registry)?;
        Ok(Self { registry, consumer })
    }

    /// A counter exported with the others.
    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        let counter = IntCounter::new(name, help)?;
        self.registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    }

    /// A counter with labels exported with the others.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    }
}

/// `count` for a counter: a batch never holds more than `u64::MAX` events.
pub fn count(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exported_beside_the_consumer_metrics() {
        let metrics = Metrics::new().expect("metrics");
        let posted = metrics
            .counter("test_posted_total", "Posted")
            .expect("counter");
        posted.inc_by(count(3));
        metrics
            .consumer
            .processed
            .with_label_values(&["test"])
            .inc();
        let text = observability::render_metrics(&metrics.registry);
        assert!(text.contains("test_posted_total 3"), "{text}");
        assert!(text.contains("consumer_messages_processed_total"), "{text}");
        assert!(metrics.counter("test_posted_total", "Again").is_err());
    }
}
