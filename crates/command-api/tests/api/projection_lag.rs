//! The embedded default's in-process projections report how far behind the
//! log they run, per sink, at `/metrics` (`wallex_relay_event_lag_seconds`).

use std::time::Duration;

use serde_json::json;

use crate::helpers::spawn_app;

/// The projections get this long to take two events.
const CATCH_UP_TIMEOUT_MS: u64 = 10_000;
const POLL_INTERVAL_MS: u64 = 50;
const SINKS: [&str; 3] = ["ledger", "read-model", "search-index"];

fn count_line(sink: &str, events: u64) -> String {
    format!("wallex_relay_event_lag_seconds_count{{sink=\"{sink}\"}} {events}")
}

#[tokio::test]
async fn every_projection_observes_the_lag_of_each_event_it_took() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("lag", "o", json!(10)).await.status(), 201);
    assert_eq!(app.credit("lag", json!(5)).await.status(), 201);

    let deadline = tokio::time::Instant::now() + Duration::from_millis(CATCH_UP_TIMEOUT_MS);
    let mut exposition = app.metrics().await;
    while !SINKS
        .iter()
        .all(|sink| exposition.contains(&count_line(sink, 2)))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "two events observed by every projection in:\n{exposition}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        exposition = app.metrics().await;
    }
    for sink in SINKS {
        // Both events were taken well within the 30 s bucket, none beyond.
        let within_30_s =
            format!("wallex_relay_event_lag_seconds_bucket{{sink=\"{sink}\",le=\"30\"}} 2");
        assert!(
            exposition.contains(&within_30_s),
            "{within_30_s} in:\n{exposition}"
        );
    }
    app.stop().await;
}
