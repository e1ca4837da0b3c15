//! `/health` and `/metrics`.

use actix_web::{web, HttpResponse};
use event_sink::EventSink;
use observability::health_check;
use serde::Serialize;
use serde_json::json;

use crate::metrics::Metrics;
use crate::startup::AppState;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/health/live", web::get().to(live))
        .route("/metrics", web::get().to(metrics));
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    leader: bool,
    checkpoint: Option<u64>,
    head_position: Option<u64>,
    lag: Option<u64>,
    postgres: &'static str,
    kafka: &'static str,
    /// `"ok"`, or `{status: "failing", failures: {since, failures, error}}`
    /// for the batches that failed since the last one published.
    publishing: serde_json::Value,
}

fn up(reachable: bool) -> &'static str {
    if reachable {
        "up"
    } else {
        "down"
    }
}

/// The liveness probe's: 200 while the process serves, whatever PostgreSQL
/// and Kafka say. A relay whose servers are away waits and retries (a
/// standby waits for the leader lock); restarting it brings no server back.
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

/// 200 when PostgreSQL and Kafka answer, each within
/// [`observability::HEALTH_CHECK_TIMEOUT_MS`] ([`health_check`]), 503
/// otherwise; a standby is healthy. Status `"degraded"` (still 200: the
/// servers answer, and a replica restarted would fail the same way) while
/// this replica's batches fail.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (positions, kafka) = tokio::join!(
        Positions::read(&state),
        health_check(state.publisher.probe()),
    );
    if let Err(error) = &positions.checkpoint {
        tracing::warn!(%error, "health: checkpoint unreadable");
    }
    if let Err(error) = &positions.head {
        tracing::warn!(%error, "health: event log unreadable");
    }
    if let Err(error) = &kafka {
        tracing::warn!(%error, "health: kafka unreachable");
    }
    let lag = positions.lag();
    let checkpoint = positions.checkpoint.ok();
    let head_position = positions.head.ok();
    let postgres_up = checkpoint.is_some() && head_position.is_some();
    let healthy = postgres_up && kafka.is_ok();
    let failures = state.publisher.failures();
    let status = match (healthy, &failures) {
        (false, _) => "unavailable",
        (true, Some(_)) => "degraded",
        (true, None) => "ok",
    };
    let body = Health {
        status,
        leader: state.leadership.borrow().leader,
        checkpoint,
        head_position,
        lag,
        postgres: up(postgres_up),
        kafka: up(kafka.is_ok()),
        publishing: failures.map_or_else(
            || json!("ok"),
            |failures| json!({ "status": "failing", "failures": failures }),
        ),
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The relay's positions, read alike for `/health` and `/metrics` (h158
/// O1: the gauges took this replica's own progress, 0 or frozen on a
/// standby, so a standby's lag grew with the log while `/health` said 1).
/// The checkpoint is the shared one in PostgreSQL, what the leader
/// (whichever replica leads) has published; the head is the event log's.
struct Positions {
    checkpoint: Result<u64, String>,
    head: Result<u64, String>,
}

impl Positions {
    /// Both positions, each within [`observability::HEALTH_CHECK_TIMEOUT_MS`].
    async fn read(state: &AppState) -> Self {
        let (checkpoint, head) = tokio::join!(
            health_check(state.publisher.checkpoint()),
            health_check(state.store.head_position()),
        );
        Self { checkpoint, head }
    }

    /// Events stored but not yet published, when both positions were read.
    fn lag(&self) -> Option<u64> {
        let (Ok(head), Ok(checkpoint)) = (&self.head, &self.checkpoint) else {
            return None;
        };
        Some(head.saturating_sub(*checkpoint))
    }

    /// Sets the gauges to these positions; a position that could not be
    /// read leaves its gauges as they were.
    fn record(&self, metrics: &Metrics, leader: bool) {
        metrics.leader.set(i64::from(leader));
        if let Ok(checkpoint) = self.checkpoint {
            metrics.checkpoint_position.set(gauge(checkpoint));
        }
        if let Ok(head) = self.head {
            metrics.head_position.set(gauge(head));
        }
        if let Some(lag) = self.lag() {
            metrics.lag_events.set(gauge(lag));
        }
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    let leader = state.leadership.borrow().leader;
    Positions::read(&state).await.record(metrics, leader);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(observability::render_metrics(&metrics.registry))
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_s_gauges_tell_the_shared_checkpoint_as_health_does() {
        let metrics = Metrics::new().expect("metrics");
        // h158's standby: the leader has published up to 149611 of 149615.
        let standby = Positions {
            checkpoint: Ok(149_611),
            head: Ok(149_615),
        };
        standby.record(&metrics, false);
        assert_eq!(metrics.leader.get(), 0);
        assert_eq!(metrics.checkpoint_position.get(), 149_611);
        assert_eq!(metrics.head_position.get(), 149_615);
        assert_eq!(metrics.lag_events.get(), 4);
        assert_eq!(standby.lag(), Some(4));
        let unread = Positions {
            checkpoint: Err("no answer".into()),
            head: Ok(149_700),
        };
        unread.record(&metrics, false);
        assert_eq!(unread.lag(), None);
        assert_eq!(
            metrics.lag_events.get(),
            4,
            "an unread checkpoint changes no lag"
        );
        assert_eq!(metrics.head_position.get(), 149_700);
    }
}
