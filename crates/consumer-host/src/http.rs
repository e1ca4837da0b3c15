//! `/health` and `/metrics`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use event_bus::ConsumerMetrics;
use prometheus::Registry;

use crate::health::{check_all, Dependency};

pub(crate) struct AppState {
    pub dependencies: Vec<Arc<dyn Dependency>>,
    pub registry: Registry,
    /// The consumer loop's metrics: whether it retries a transient failure.
    pub consumer: ConsumerMetrics,
}

pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/health/live", web::get().to(live))
        .route("/metrics", web::get().to(metrics));
}

/// The liveness probe's: 200 while the process serves, whatever its stores
/// say. A consumer loop that stops on its own stops the server with it
/// (`Application::run_until_stopped`), and one retrying a store away is
/// waiting, not stuck: restarting the process would bring no store back.
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(std::collections::BTreeMap::from([("status", "alive")]))
}

/// 200 when every dependency answers (`degraded` while the consumer retries a
/// transient failure), 503 otherwise.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let health = check_all(&state.dependencies)
        .await
        .retrying(state.consumer.is_retrying());
    if health.healthy() {
        HttpResponse::Ok().json(health)
    } else {
        HttpResponse::ServiceUnavailable().json(health)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(observability::render_metrics(&state.registry))
}
