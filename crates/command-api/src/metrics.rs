//! Prometheus metrics of the API, served at `/metrics`.

use event_relay::dead_letters::SinkDeadLetters;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub conflict_retries: IntCounter,
    /// Wallets read on from the cache before a decision because the lock
    /// said another replica had written them since (see `LockLease`).
    pub caught_up_by_lock: IntCounter,
    pub lock_unavailable: IntCounter,
    /// Times the event store's head was found below a position seen before.
    pub store_regressions: IntCounter,
    /// Unfinished transfers the sweep has set aside (transfer process only).
    pub transfers_quarantined: IntGauge,
    /// Events the in-process relays ever parked, per sink (kept in the
    /// dead-letter store, so it survives a restart).
    pub relay_dead_lettered: IntCounterVec,
    /// Events parked now, per sink, waiting for a replay.
    pub relay_dead_letters: IntGaugeVec,
    /// Seconds from an event's occurrence to an in-process relay's sink
    /// committing it, per sink (embedded default only; the Kafka consumers
    /// report the same as `consumer_event_lag_seconds`).
    pub relay_event_lag_seconds: HistogramVec,
}

/// Latency buckets in seconds, from 0.25 ms to 5 s.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("wallex".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["route"],
        )?;
        let conflict_retries = IntCounter::new(
            "conflict_retries_total",
            "Commands retried after an optimistic-concurrency conflict",
        )?;
        let caught_up_by_lock = IntCounter::new(
            "caught_up_by_lock_total",
            "Cached wallets read on from the store before a decision because the shared lock said another replica had written them",
        )?;
        let lock_unavailable = IntCounter::new(
            "lock_unavailable_total",
            "Commands that ran without the wallet lock because the lock service was down",
        )?;
        let store_regressions = IntCounter::new(
            "store_regressions_total",
            "Times the event store's head went backwards (lost events) and the wallet cache was dropped",
        )?;
        let transfers_quarantined = IntGauge::new(
            "transfers_quarantined",
            "Unfinished transfers set aside after failing to resume too many times in a row",
        )?;
        let relay_dead_lettered = IntCounterVec::new(
            Opts::new(
                "relay_dead_lettered_total",
                "Events an in-process relay parked because its sink refused them for good",
            ),
            &["sink"],
        )?;
        let relay_dead_letters = IntGaugeVec::new(
            Opts::new(
                "relay_dead_letters",
                "Events parked for an in-process relay's sink, waiting for a replay",
            ),
            &["sink"],
        )?;
        let relay_event_lag_seconds = HistogramVec::new(
            HistogramOpts::new(
                "relay_event_lag_seconds",
                "Time from an event's occurrence to an in-process relay's sink committing it",
            )
            .buckets(observability::EVENT_LAG_BUCKETS_SECONDS.to_vec()),
            &["sink"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(relay_event_lag_seconds.clone()))?;
        registry.register(Box::new(relay_dead_lettered.clone()))?;
        registry.register(Box::new(relay_dead_letters.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(conflict_retries.clone()))?;
        registry.register(Box::new(caught_up_by_lock.clone()))?;
        registry.register(Box::new(lock_unavailable.clone()))?;
        registry.register(Box::new(store_regressions.clone()))?;
        registry.register(Box::new(transfers_quarantined.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_seconds,
            conflict_retries,
            caught_up_by_lock,
            lock_unavailable,
            store_regressions,
            transfers_quarantined,
            relay_dead_lettered,
            relay_dead_letters,
            relay_event_lag_seconds,
        })
    }

    /// Sets the dead-letter metrics from the store's counts.
    pub fn observe_dead_letters(&self, counts: &[SinkDeadLetters]) {
        for count in counts {
            let total = self.relay_dead_lettered.with_label_values(&[&count.sink]);
            total.inc_by(count.parked_total.saturating_sub(total.get()));
            self.relay_dead_letters
                .with_label_values(&[&count.sink])
                .set(i64::try_from(count.parked).unwrap_or(i64::MAX));
        }
    }
}
