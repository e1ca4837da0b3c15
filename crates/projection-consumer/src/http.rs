//! `/health` and `/metrics`.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::startup::AppState;

/// Bound on each dependency's answer to a health check.
const HEALTH_CHECK_TIMEOUT_MS: u64 = 3_000;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics));
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    postgres: &'static str,
    elasticsearch: &'static str,
    /// The furthest global position the read model has applied.
    read_model_position: Option<u64>,
}

fn up(reachable: bool) -> &'static str {
    if reachable {
        "up"
    } else {
        "down"
    }
}

/// 200 when PostgreSQL and the search index answer, 503 otherwise.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(HEALTH_CHECK_TIMEOUT_MS);
    let (position, search) = tokio::join!(
        tokio::time::timeout(timeout, state.read_model.checkpoint()),
        tokio::time::timeout(timeout, state.search_index.ping()),
    );
    let position = match position {
        Ok(Ok(position)) => Some(position),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health: read model unreadable");
            None
        }
        Err(_) => {
            tracing::warn!("health: read model did not answer in time");
            None
        }
    };
    let search_up = match search {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "health: search index unreachable");
            false
        }
        Err(_) => {
            tracing::warn!("health: search index did not answer in time");
            false
        }
    };
    let healthy = position.is_some() && search_up;
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        postgres: up(position.is_some()),
        elasticsearch: up(search_up),
        read_model_position: position,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(observability::render_metrics(&state.metrics.registry))
}
