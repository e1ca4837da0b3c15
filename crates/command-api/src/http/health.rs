//! Health and metrics.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;

/// Whether the service can take commands: its event store answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Up"), (status = 503, description = "A dependency is down")))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.wallets.store();
    let projection = *state.projection_progress.borrow();
    match store.head_position().await {
        Ok(head) => HttpResponse::Ok().json(json!({
            "status": "ok",
            "eventStore": { "kind": store.kind(), "status": "up", "headPosition": head },
            "readModel": { "position": projection, "lag": head.saturating_sub(projection) },
        })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "error",
            "eventStore": { "kind": store.kind(), "status": "down", "error": error.to_string() },
        })),
    }
}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body(observability::render_metrics(&state.metrics.registry))
}
