//! `/health` and `/metrics`.

use actix_web::{web, HttpResponse};
use event_sink::EventSink;
use observability::health_check;
use serde::Serialize;
use serde_json::json;

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
    let (checkpoint, head, kafka) = tokio::join!(
        health_check(state.publisher.checkpoint()),
        health_check(state.store.head_position()),
        health_check(state.publisher.probe()),
    );
    if let Err(error) = &checkpoint {
        tracing::warn!(%error, "health: checkpoint unreadable");
    }
    if let Err(error) = &head {
        tracing::warn!(%error, "health: event log unreadable");
    }
    if let Err(error) = &kafka {
        tracing::warn!(%error, "health: kafka unreachable");
    }
    let checkpoint = checkpoint.ok();
    let head_position = head.ok();
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
        lag: head_position
            .zip(checkpoint)
            .map(|(head, checkpoint)| head.saturating_sub(checkpoint)),
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

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    metrics
        .leader
        .set(i64::from(state.leadership.borrow().leader));
    let checkpoint = *state.progress.borrow();
    metrics.checkpoint_position.set(gauge(checkpoint));
    if let Ok(head) = state.store.head_position().await {
        metrics.head_position.set(gauge(head));
        metrics
            .lag_events
            .set(gauge(head.saturating_sub(checkpoint)));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(observability::render_metrics(&metrics.registry))
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
