//! Lag from acknowledgement to the downstream systems, read from the
//! consumers' Prometheus histogram `consumer_event_lag_seconds` (the time
//! from an event's occurrence to its handler's committed write).
//!
//! A snapshot before the run is subtracted from one taken once the consumer
//! has gone quiet after it, so earlier traffic does not count. Each handler
//! (the histogram's `handler` label) is summarized on its own: one binary may
//! run several (projection-consumer: the read model and the search index),
//! and the lag targets name them apart.

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

/// The lag histogram of each handler of one consumer, by `handler` label
/// (a line without one counts under the empty name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histograms(BTreeMap<String, Buckets>);

impl Histograms {
    /// Reads the lag histograms out of a Prometheus text exposition.
    pub fn parse(exposition: &str) -> Self {
        let mut histograms: BTreeMap<String, Buckets> = BTreeMap::new();
        for line in exposition
            .lines()
            .filter(|line| line.starts_with(BUCKET_PREFIX))
        {
            let bound = label(line, "le").map(bound_key);
            let count = line
                .rsplit(' ')
                .next()
                .and_then(|value| value.parse::<f64>().ok());
            if let (Some(bound), Some(count)) = (bound, count) {
                let handler = label(line, "handler").unwrap_or_default().to_owned();
                *histograms
                    .entry(handler)
                    .or_default()
                    .0
                    .entry(bound)
                    .or_insert(0) += count as u64;
            }
        }
        Self(histograms)
    }

    /// Events counted over every handler.
    fn total(&self) -> u64 {
        self.0.values().map(Buckets::total).sum()
    }

    /// Each handler's histogram less its histogram in `earlier`.
    fn minus(&self, earlier: &Self) -> BTreeMap<String, Buckets> {
        let none = Buckets::default();
        self.0
            .iter()
            .map(|(handler, buckets)| {
                let before = earlier.0.get(handler).unwrap_or(&none);
                (handler.clone(), buckets.minus(before))
            })
            .collect()
    }
}

/// The value of `name="…"` in a sample line's label set.
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let labels = line.split_once('{')?.1.split_once('}')?.0;
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// Cumulative counts per bucket upper bound (microseconds) of one handler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(BTreeMap<u64, u64>);

impl Buckets {
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

    fn summary(&self) -> LagSummary {
        LagSummary {
            events: self.total(),
            p50_ms_at_most: self.quantile_upper_bound_ms(0.50),
            p99_ms_at_most: self.quantile_upper_bound_ms(0.99),
        }
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

async fn fetch(client: &reqwest::Client, source: &LagSource) -> Result<Histograms, LoadError> {
    let text = client
        .get(&source.metrics_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| LoadError::Metrics(format!("{}: {error}", source.metrics_url)))?
        .text()
        .await
        .map_err(|error| LoadError::Metrics(format!("{}: {error}", source.metrics_url)))?;
    Ok(Histograms::parse(&text))
}

/// Each source's histograms now, to subtract later.
pub async fn snapshot(sources: &[LagSource]) -> Result<Vec<Histograms>, LoadError> {
    let client = reqwest::Client::new();
    let mut snapshots = Vec::with_capacity(sources.len());
    for source in sources {
        snapshots.push(fetch(&client, source).await?);
    }
    Ok(snapshots)
}

/// Waits until each consumer is quiet, then summarizes what each of its
/// handlers did since `before`: under the source's name when it has one
/// handler, as `source/handler` when it has more.
pub async fn summarize(
    sources: &[LagSource],
    before: &[Histograms],
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
        let handlers = last.minus(before);
        let several = handlers.len() > 1;
        for (handler, run) in handlers {
            let name = if several {
                format!("{}/{handler}", source.name)
            } else {
                source.name.clone()
            };
            summaries.insert(name, run.summary());
        }
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
        let run = Histograms::parse(EXPOSITION).minus(&Histograms::default());
        let buckets = &run["ledger"];
        assert_eq!(buckets.total(), 100);
        assert_eq!(buckets.quantile_upper_bound_ms(0.5), Some(10.0));
        assert_eq!(buckets.quantile_upper_bound_ms(0.99), Some(1_000.0));
    }

    #[test]
    fn a_snapshot_taken_before_is_subtracted() {
        let before = Histograms::parse(
            &EXPOSITION
                .replace("} 50", "} 40")
                .replace("} 98", "} 40")
                .replace("} 100", "} 40"),
        );
        let run = Histograms::parse(EXPOSITION).minus(&before);
        assert_eq!(run["ledger"].total(), 60);
        assert_eq!(run["ledger"].quantile_upper_bound_ms(0.5), Some(100.0));
    }

    #[test]
    fn each_handler_of_a_consumer_keeps_its_own_histogram() {
        let slow_search = "\
consumer_event_lag_seconds_bucket{handler=\"search-index\",le=\"0.01\"} 0
consumer_event_lag_seconds_bucket{handler=\"search-index\",le=\"0.1\"} 0
consumer_event_lag_seconds_bucket{handler=\"search-index\",le=\"1\"} 0
consumer_event_lag_seconds_bucket{handler=\"search-index\",le=\"+Inf\"} 100
";
        let both = Histograms::parse(&format!("{EXPOSITION}{slow_search}"));
        assert_eq!(both.total(), 200);
        let run = both.minus(&Histograms::default());
        assert_eq!(run.len(), 2);
        assert_eq!(run["ledger"].quantile_upper_bound_ms(0.99), Some(1_000.0));
        assert_eq!(
            run["search-index"].quantile_upper_bound_ms(0.5),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn a_source_is_a_name_and_a_url() {
        let source = parse_lag_source("ledger=http://127.0.0.1:3002/metrics").expect("valid");
        assert_eq!(source.name, "ledger");
        assert!(parse_lag_source("ledger").is_err());
        assert!(parse_lag_source("=http://x").is_err());
    }
}
