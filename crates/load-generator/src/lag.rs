//! Lag from acknowledgement to the downstream systems, read from the
//! consumers' Prometheus histogram `consumer_event_lag_seconds` (the time
//! from an event's occurrence to its handler's committed write).
//!
//! A snapshot before the run is subtracted from one taken once the consumer
//! has gone quiet after it, so earlier traffic does not count.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::runner::LoadError;

const BUCKET_PREFIX: &str = "consumer_event_lag_seconds_bucket{";
/// The consumer is quiet once its event count holds still this long.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// Bound on waiting for a consumer to catch up after the run.
const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A consumer whose lag is reported: `name=http://host:port/metrics`.
#[derive(Debug, Clone)]
pub struct LagSource {
    pub name: String,
    pub metrics_url: String,
}

pub fn parse_lag_source(raw: &str) -> Result<LagSource, String> {
    match raw.split_once('=') {
        Some((name, url)) if !name.is_empty() && url.starts_with("http") => Ok(LagSource {
            name: name.to_owned(),
            metrics_url: url.to_owned(),
        }),
        _ => Err(format!(
            "expected NAME=URL of a consumer's /metrics, e.g. ledger=http://127.0.0.1:3002/metrics, got {raw}"
        )),
    }
}

/// Cumulative counts per bucket upper bound (seconds), summed over label sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(BTreeMap<u64, u64>);

impl Buckets {
    /// Reads the lag histogram out of a Prometheus text exposition.
    pub fn parse(exposition: &str) -> Self {
        let mut buckets = BTreeMap::new();
        for line in exposition
            .lines()
            .filter(|line| line.starts_with(BUCKET_PREFIX))
        {
            let bound = line
                .split("le=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(bound_key);
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|value| value.parse::<f64>().ok());
            if let (Some(bound), Some(count)) = (bound, count) {
                *buckets.entry(bound).or_insert(0) += count as u64;
            }
        }
        Self(buckets)
    }

    fn total(&self) -> u64 {
        self.0.values().copied().max().unwrap_or(0)
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(bound, count)| {
                    let before = earlier.0.get(bound).copied().unwrap_or(0);
                    (*bound, count.saturating_sub(before))
                })
                .collect(),
        )
    }

    /// The smallest bucket bound under which at least `quantile` of the events fall.
    fn quantile_upper_bound_ms(&self, quantile: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let wanted = (quantile * total as f64).ceil() as u64;
        self.0
            .iter()
            .find(|(_, count)| **count >= wanted)
            .map(|(bound, _)| bound_ms(*bound))
    }
}

/// Bucket bounds as integer microseconds, so they sort and compare exactly;
/// `+Inf` sorts last.
fn bound_key(raw: &str) -> u64 {
    raw.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite())
        .map_or(u64::MAX, |seconds| (seconds * 1_000_000.0).round() as u64)
}

fn bound_ms(key: u64) -> f64 {
    if key == u64::MAX {
        f64::INFINITY
    } else {
        key as f64 / 1_000.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagSummary {
    pub events: u64,
    /// Upper bounds of the histogram buckets holding the quantile.
    pub p50_ms_at_most: Option<f64>,
    pub p99_ms_at_most: Option<f64>,
}

async fn fetch(client: &reqwest::Client, source: &LagSource) -> Result<Buckets, LoadError> {
    let text = client
        .get(&source.metrics_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| LoadError::Metrics(format!("{}: {error}", source.metrics_url)))?
        .text()
        .await
        .map_err(|error| LoadError::Metrics(format!("{}: {error}", source.metrics_url)))?;
    Ok(Buckets::parse(&text))
}

/// Each source's histogram now, to subtract later.
pub async fn snapshot(sources: &[LagSource]) -> Result<Vec<Buckets>, LoadError> {
    let client = reqwest::Client::new();
    let mut snapshots = Vec::with_capacity(sources.len());
    for source in sources {
        snapshots.push(fetch(&client, source).await?);
    }
    Ok(snapshots)
}

/// Waits until each consumer is quiet, then summarizes what it handled since `before`.
pub async fn summarize(
    sources: &[LagSource],
    before: &[Buckets],
) -> Result<BTreeMap<String, LagSummary>, LoadError> {
    let client = reqwest::Client::new();
    let mut summaries = BTreeMap::new();
    for (source, before) in sources.iter().zip(before) {
        let started = Instant::now();
        let mut last = fetch(&client, source).await?;
        let mut still_since = Instant::now();
        while still_since.elapsed() < QUIET_FOR && started.elapsed() < CATCH_UP_WAIT_MAX {
            tokio::time::sleep(POLL_INTERVAL).await;
            let now = fetch(&client, source).await?;
            if now.total() != last.total() {
                still_since = Instant::now();
            }
            last = now;
        }
        let run = last.minus(before);
        summaries.insert(
            source.name.clone(),
            LagSummary {
                events: run.total(),
                p50_ms_at_most: run.quantile_upper_bound_ms(0.50),
                p99_ms_at_most: run.quantile_upper_bound_ms(0.99),
            },
        );
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# TYPE consumer_event_lag_seconds histogram
consumer_event_lag_seconds_bucket{handler=\"ledger\",le=\"0.01\"} 50
consumer_event_lag_seconds_bucket{handler=\"ledger\",le=\"0.1\"} 98
consumer_event_lag_seconds_bucket{handler=\"ledger\",le=\"1\"} 100
consumer_event_lag_seconds_bucket{handler=\"ledger\",le=\"+Inf\"} 100
consumer_event_lag_seconds_count{handler=\"ledger\"} 100
";

    #[test]
    fn quantiles_are_the_bounds_of_the_buckets_that_hold_them() {
        let buckets = Buckets::parse(EXPOSITION);
        assert_eq!(buckets.total(), 100);
        assert_eq!(buckets.quantile_upper_bound_ms(0.5), Some(10.0));
        assert_eq!(buckets.quantile_upper_bound_ms(0.99), Some(1_000.0));
    }

    #[test]
    fn a_snapshot_taken_before_is_subtracted() {
        let before = Buckets::parse(
            &EXPOSITION
                .replace("} 50", "} 40")
                .replace("} 98", "} 40")
                .replace("} 100", "} 40"),
        );
        let run = Buckets::parse(EXPOSITION).minus(&before);
        assert_eq!(run.total(), 60);
        assert_eq!(run.quantile_upper_bound_ms(0.5), Some(100.0));
    }

    #[test]
    fn a_source_is_a_name_and_a_url() {
        let source = parse_lag_source("ledger=http://127.0.0.1:3002/metrics").expect("valid");
        assert_eq!(source.name, "ledger");
        assert!(parse_lag_source("ledger").is_err());
        assert!(parse_lag_source("=http://x").is_err());
    }
}
