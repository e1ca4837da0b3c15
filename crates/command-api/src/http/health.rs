//! Health, metrics, and the service's index at `/`.

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use identity::KeyFile;
use ledger::LedgerError;

use crate::catch_up::Projection;
use crate::startup::AppState;

/// How long a health check waits for each projection's storage (the search
/// index's ping, the ledger's and the read model's checkpoint) to answer: a
/// slow server must not make the health check itself slow.
pub const PROJECTION_PROBE_TIMEOUT_MS: u64 = 1_000;

/// What `question` answers within [`PROJECTION_PROBE_TIMEOUT_MS`], or why
/// there is no answer.
async fn within_timeout<T, E: std::fmt::Display>(
    question: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    let timeout = Duration::from_millis(PROJECTION_PROBE_TIMEOUT_MS);
    match tokio::time::timeout(timeout, question).await {
        Ok(answer) => answer.map_err(|error| error.to_string()),
        Err(_) => Err(format!("no answer within {PROJECTION_PROBE_TIMEOUT_MS} ms")),
    }
}

/// `{status: "up", …fields}` when `probe` answers within
/// [`PROJECTION_PROBE_TIMEOUT_MS`], `{status: "down", error}` otherwise.
async fn probe<T, E: std::fmt::Display>(
    probe: impl std::future::Future<Output = Result<T, E>>,
    fields: impl FnOnce(T) -> Value,
) -> Value {
    match within_timeout(probe).await {
        Ok(answer) => {
            let mut report = json!({ "status": "up" });
            if let (Some(report), Value::Object(fields)) = (report.as_object_mut(), fields(answer))
            {
                report.extend(fields);
            }
            report
        }
        Err(error) => json!({ "status": "down", "error": error }),
    }
}

/// Whether the search index answers, with, on the full stack, the consumer
/// group feeding it and how far behind it is. It serves reads only, so its
/// state is reported but does not make the service unhealthy.
async fn search_index_report(state: &AppState) -> Value {
    let Some(index) = &state.search_index else {
        return json!({ "status": "not configured" });
    };
    let (mut report, group) = tokio::join!(
        probe(index.ping(), |()| json!({})),
        group_report(state, Projection::SearchIndex)
    );
    with_group(&mut report, group);
    report
}

/// `report` with `consumerGroup: group` when a group feeds the projection.
fn with_group(report: &mut Value, group: Option<Value>) {
    if let (Some(report), Some(group)) = (report.as_object_mut(), group) {
        report.insert("consumerGroup".to_owned(), group);
    }
}

/// Whether the ledger's and the read model's storage answer, with the log
/// position each has applied and, on the full stack, the consumer group
/// command-api waits for and how many published messages it has yet to
/// apply (a group that is not the consumer's never catches up). Like the
/// search index, they serve reads only: reported, not made a reason to be
/// unhealthy.
async fn projections_report(state: &AppState) -> (Value, Value) {
    let position = |position: u64| json!({ "position": position });
    let (mut ledger, mut read_model, ledger_group, read_model_group) = tokio::join!(
        probe(state.ledger.checkpoint(), position),
        probe(state.read_model.checkpoint(), position),
        group_report(state, Projection::Ledger),
        group_report(state, Projection::ReadModel)
    );
    with_group(&mut ledger, ledger_group);
    with_group(&mut read_model, read_model_group);
    (ledger, read_model)
}

/// `{group, messagesBehind}` of the consumer group feeding `projection`
/// (`{error}` when PostgreSQL does not answer within
/// [`PROJECTION_PROBE_TIMEOUT_MS`]); `None` where no group feeds it.
async fn group_report(state: &AppState, projection: Projection) -> Option<Value> {
    let lag = state.progress.group_lag(projection)?;
    Some(match within_timeout(lag).await {
        Ok(lag) => json!(lag),
        Err(error) => json!({ "error": error }),
    })
}

/// Whether a projection's report shows messages waiting for a consumer
/// group that has stored no offset: no consumer runs in it (not started
/// yet, or a `LEDGER_CONSUMER_GROUP` / `PROJECTION_CONSUMER_GROUP` that is
/// not the consumers' group), so every read of it waits its whole bound.
fn unattended_group(report: &Value) -> bool {
    let group = &report["consumerGroup"];
    group["storedOffsets"] == false
        && group["messagesBehind"]
            .as_u64()
            .is_some_and(|behind| behind > 0)
}

/// The wallet lock: `{kind, status: "up"}`, or `{kind, status: "down", error}`
/// when Redis does not answer a PING within [`PROJECTION_PROBE_TIMEOUT_MS`].
async fn locks_report(state: &AppState) -> Value {
    let lock = state.wallets.lock();
    let mut report = probe(lock.probe(), |()| json!({})).await;
    if let Some(fields) = report.as_object_mut() {
        fields.insert("kind".into(), json!(lock.kind()));
    }
    report
}

/// The transfer process's state (transfer process only): the transfers the
/// sweep has set aside, which an operator must look at (`degraded`); the
/// journal's writes while they fail (`failing`, with the run of failures:
/// transfers and keyed commands are refused meanwhile, even while the event
/// store takes writes); the sweep's resumptions while they fail (`failing`:
/// transfers wait unfinished, maybe with money in flight, though no request
/// comes); or `{status: "down", error}` once the journal was found damaged
/// (no transfer passes until it is repaired).
fn transfers_report(state: &AppState) -> Value {
    if let Some(damage) = state.wallets.transfer_journal_damage() {
        return json!({ "status": "down", "error": damage });
    }
    let quarantined = match state.wallets.quarantined_transfers() {
        None => return json!({ "status": "not a process" }),
        Some(quarantined) => quarantined,
    };
    let writes = state.wallets.transfer_journal_write_failures();
    let resumptions = state.wallets.transfer_resumption_failures();
    let status = if writes.is_some() || resumptions.is_some() {
        "failing"
    } else if quarantined > 0 {
        "degraded"
    } else {
        "ok"
    };
    let failing = |failures: Option<observability::Failures>| match failures {
        None => json!("ok"),
        Some(failures) => json!({ "status": "failing", "failures": failures }),
    };
    json!({
        "status": status,
        "quarantined": quarantined,
        "writes": failing(writes),
        "resumptions": failing(resumptions),
    })
}

/// Events the in-process relays parked because a sink refused them for good
/// (embedded only): the service serves on, but the named sinks are behind
/// until `command-api replay-dead-letters` hands them back. Refreshes the
/// dead-letter metrics on the way.
async fn dead_letters_report(state: &AppState) -> Value {
    let Some(dead_letters) = &state.dead_letters else {
        return json!({ "status": "not in process" });
    };
    match dead_letters.counts().await {
        Ok(counts) => {
            state.metrics.observe_dead_letters(&counts);
            let parked: u64 = counts.iter().map(|count| count.parked).sum();
            let sinks: serde_json::Map<String, Value> = counts
                .iter()
                .filter(|count| count.parked > 0)
                .map(|count| (count.sink.clone(), json!(count.parked)))
                .collect();
            let status = if parked == 0 { "ok" } else { "degraded" };
            json!({ "status": status, "parked": parked, "sinks": sinks })
        }
        Err(error) => json!({ "status": "unknown", "error": error.to_string() }),
    }
}

/// `GET /`: what this service is and where to go from here. The seed's README
/// checks the application with `curl http://localhost:3000` without saying
/// what it answers; this answer needs no token and no storage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceIndex {
    #[schema(example = "wallex")]
    service: &'static str,
    /// The command-api's version (its crate's).
    #[schema(example = "0.1.0")]
    version: &'static str,
    links: ServiceLinks,
}

/// The paths `GET /` points to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceLinks {
    /// Whether the service can take commands.
    #[schema(example = "/health")]
    health: &'static str,
    /// The OpenAPI document.
    #[schema(example = "/openapi.json")]
    openapi: &'static str,
    /// The same document in Swagger UI.
    #[schema(example = "/docs/")]
    docs: &'static str,
}

/// The service's name, version and links to its health check and API document.
#[utoipa::path(get, path = "/", tag = "operations",
    responses((status = 200, description = "{service, version, links: {health, openapi, docs}}", body = ServiceIndex)))]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(ServiceIndex {
        service: "wallex",
        version: env!("CARGO_PKG_VERSION"),
        links: ServiceLinks {
            health: "/health",
            openapi: "/openapi.json",
            docs: "/docs/",
        },
    })
}

/// The liveness probe's: 200 while the process serves HTTP, whatever its
/// stores say. A store away makes `/health` 503, which takes a replica out
/// of its Service (readiness); restarting the process would bring no store
/// back, so liveness does not ask them.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process serves: {status: \"alive\"}", body = Object)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

/// Whether the service can take commands (its event store answers), and how
/// far events have flowed to their consumers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Up: {status: \"ok\", or \"degraded\" while writes fail, the wallet lock is down or the storage of a projection (ledger, readModel, searchIndex) does not answer, the transfer journal is damaged or its writes or the sweep's resumptions fail, transfers are quarantined, events are parked as dead letters or the dead letters cannot be read, eventStore: {kind, status, headPosition, writes: \"ok\" or {status: \"failing\", failures: {since, failures, error}} for the writes failed in the store since the last that passed, within 60 s of the last}, publisher, searchIndex: {status, consumerGroup on the full stack}, ledger: {status, position, consumerGroup: {group, messagesBehind, storedOffsets} on the full stack (status \"degraded\" while messages wait for a group that stored no offset: no consumer runs in it)}, readModel: {status, position, consumerGroup}, transfers: {status, quarantined, writes, resumptions}, each of writes (the transfer journal's) and resumptions (the sweep's) \"ok\" or {status: \"failing\", failures: {since, failures, error}}, and status \"failing\" while either fails; or {status: \"down\", error}, deadLetters: {status, parked, sinks} or {status: \"unknown\", error}, locks: {kind: \"in-process\" or \"redis\", status: \"up\", or \"down\" with error (status \"degraded\": commands go on unlocked)}, authentication: {keyFile: {status: \"ok\", or \"stale\" with error while AUTH_JWT_PUBLIC_KEYS holds a change that cannot be used (status \"degraded\": the keys before it still verify)}} ({} without a key file), walCheckpoints: \"ok\", or {status: \"failing\", files: [{file, since, failures, error}]} while the WAL checkpoints of a database file of this process fail (status \"degraded\": its WAL grows until one passes); status \"degraded\" too while the publisher is not healthy (Kafka away, or the relay stalled while events wait: its error says which)}", body = Object),
              (status = 503, description = "The event store is down: {status: \"error\", eventStore: {kind, status, error}} (Retry-After: seconds; none when its file is damaged, which an operator must repair or restore, or was moved, deleted or replaced, which needs a restart on the folder that holds the data)", body = Object)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.wallets.store();
    let mut needs_operator = false;
    let head = observability::health_check(async {
        let head = store.head_position().await;
        needs_operator = head
            .as_ref()
            .is_err_and(event_store::StoreError::needs_operator);
        head
    })
    .await;
    match head {
        Ok(head) => {
            let (publisher, search_index, (ledger, read_model), dead_letters, locks) = tokio::join!(
                state.publisher.report(),
                search_index_report(&state),
                projections_report(&state),
                dead_letters_report(&state),
                locks_report(&state)
            );
            // The head answers; the writes may not (a full disk, a read-only server).
            let (mut status, writes) = match state.wallets.write_failures() {
                None => ("ok", json!("ok")),
                Some(failures) => (
                    "degraded",
                    json!({ "status": "failing", "failures": failures }),
                ),
            };
            // Commands go on without the lock (the expected version guards
            // them), but a busy wallet may answer 409 meanwhile.
            if locks["status"] != "up" {
                status = "degraded";
            }
            // Transfers wait for an operator (a journal damaged), or the
            // relays for their dead letters (a file that does not answer).
            let transfers = transfers_report(&state);
            // Quarantined transfers wait for their client's retry or an
            // operator (h138); so do parked events, missing from their
            // projection until replayed (h144 F3: a probe of `status` alone
            // saw none of them).
            if ["down", "degraded", "failing"]
                .contains(&transfers["status"].as_str().unwrap_or_default())
                || ["unknown", "degraded"]
                    .contains(&dead_letters["status"].as_str().unwrap_or_default())
            {
                status = "degraded";
            }
            let authentication = authentication_report(&state);
            if authentication["keyFile"]["status"] == "stale" {
                status = "degraded";
            }
            // Reads and writes pass, but the WAL grows until one passes.
            let failing = state
                .data_dir
                .as_deref()
                .map(embedded_sqlite::failing_checkpoints)
                .unwrap_or_default();
            let wal_checkpoints = wal_checkpoints_report(&failing);
            if wal_checkpoints != "ok" {
                status = "degraded";
            }
            // Commands are stored, but no event reaches the projections (Kafka
            // away, or the relay stalled): their data grows stale (h137).
            if !publisher.healthy() {
                status = "degraded";
            }
            // Their reads fail (storage away, or a file damaged), or wait
            // for a consumer group no one runs; commands go on.
            if [&ledger, &read_model, &search_index]
                .into_iter()
                .any(|report| report["status"] == "down" || unattended_group(report))
            {
                status = "degraded";
            }
            HttpResponse::Ok().json(json!({
                "status": status,
                "eventStore": { "kind": store.kind(), "status": "up", "headPosition": head, "writes": writes },
                "publisher": publisher,
                "searchIndex": search_index,
                "ledger": ledger,
                "readModel": read_model,
                "transfers": transfers,
                "locks": locks,
                "deadLetters": dead_letters,
                "authentication": authentication,
                "walCheckpoints": wal_checkpoints,
            }))
        }
        Err(error) => unavailable(needs_operator).json(json!({
            "status": "error",
            "eventStore": { "kind": store.kind(), "status": "down", "error": error },
        })),
    }
}

/// A 503 of a probe, with `Retry-After` as every 503 of this API has, but
/// when it `needs_operator` (a file damaged, or the event store's moved),
/// which no wait mends.
fn unavailable(needs_operator: bool) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::ServiceUnavailable();
    // No wait mends it (its error says what to do).
    if needs_operator {
        return response;
    }
    response.insert_header((
        actix_web::http::header::RETRY_AFTER,
        super::error::RETRY_AFTER_SECONDS.to_string(),
    ));
    response
}

/// `"ok"`, or `{status: "failing", files: [{file, since, failures, error}]}`
/// while WAL checkpoints of a database file of this process fail (`file`:
/// its name in the data folder).
fn wal_checkpoints_report(failing: &[embedded_sqlite::FailingCheckpoints]) -> Value {
    if failing.is_empty() {
        return json!("ok");
    }
    json!({ "status": "failing", "files": failing })
}

/// `{keyFile: {status: "ok"}}`, or `{status: "stale", error}` while the key
/// file holds a change that cannot be used (the keys before it still
/// verify); `{}` without a key file.
fn authentication_report(state: &AppState) -> serde_json::Value {
    match state.access.key_file().map(KeyFile::refused_change) {
        None => json!({}),
        Some(None) => json!({ "keyFile": { "status": "ok" } }),
        Some(Some(error)) => json!({ "keyFile": { "status": "stale", "error": error } }),
    }
}

/// The seed's ledger module health, `{status: "ok", module: "ledger", position}`:
/// the ledger projection answers (`position`: the last event it posted); 503
/// `{status: "error", module: "ledger", error}` when it does not.
#[utoipa::path(get, path = "/ledger/health", tag = "operations",
    responses((status = 200, description = "The ledger answers: {status: \"ok\", module: \"ledger\", position}", body = Object),
              (status = 503, description = "The ledger does not answer: {status: \"error\", module: \"ledger\", error} (Retry-After: seconds; none when its file is damaged, which an operator moves out to have it built again)", body = Object)))]
pub async fn ledger_health(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(PROJECTION_PROBE_TIMEOUT_MS);
    let (error, damaged) = match tokio::time::timeout(timeout, state.ledger.checkpoint()).await {
        Ok(Ok(position)) => {
            return HttpResponse::Ok().json(json!({
                "status": "ok", "module": "ledger", "position": position,
            }))
        }
        Ok(Err(error)) => {
            let damaged = matches!(
                &error,
                LedgerError::Storage(embedded_sqlite::SqliteError::Damaged { .. })
            );
            (error.to_string(), damaged)
        }
        Err(_) => (
            format!("no answer within {PROJECTION_PROBE_TIMEOUT_MS} ms"),
            false,
        ),
    };
    unavailable(damaged).json(json!({ "status": "error", "module": "ledger", "error": error }))
}

/// The seed's integration module probe, `{status: "ok", module: "integration"}`:
/// this server has no separate module to fail, so it answers whenever the
/// server does.
#[utoipa::path(get, path = "/integration/health", tag = "operations",
    responses((status = 200, description = "The seed's module probe: {status: \"ok\", module: \"integration\"}", body = Object)))]
pub async fn integration_health() -> HttpResponse {
    module_up("integration")
}

/// The seed's user module probe, `{status: "ok", module: "user"}`: as
/// [`integration_health`].
#[utoipa::path(get, path = "/users/health", tag = "operations",
    responses((status = 200, description = "The seed's module probe: {status: \"ok\", module: \"user\"}", body = Object)))]
pub async fn users_health() -> HttpResponse {
    module_up("user")
}

fn module_up(module: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "module": module }))
}

/// The seed's publisher health: `{status, producer: {connected}, kafka: {status},
/// publisher: {isRunning, unprocessedEvents, lagMs}, timestamp}` (the seed's README
/// shows `producer` and `publisher`, its server also answered `kafka` and `timestamp`).
#[utoipa::path(get, path = "/health/kafka", tag = "operations",
    responses((status = 200, description = "Healthy: {status: \"healthy\", producer: {connected}, kafka: {status: \"connected\" or \"disconnected\"}, publisher: {isRunning, unprocessedEvents, lagMs}, timestamp (RFC 3339)}", body = Object),
              (status = 503, description = "Unhealthy: the same body (Retry-After: seconds; none when the event store's file is damaged, or was moved, deleted or replaced, which an operator must mend: as for /health)", body = Object)))]
pub async fn publisher_health(state: web::Data<AppState>) -> HttpResponse {
    let report = state.publisher.report().await;
    let body = json!({
        "status": if report.healthy() { "healthy" } else { "unhealthy" },
        "producer": { "connected": report.producer_connected },
        "kafka": { "status": connection_status(report.producer_connected) },
        "publisher": {
            "isRunning": report.is_running,
            "unprocessedEvents": report.unprocessed_events,
            "lagMs": report.lag_ms,
        },
        "timestamp": now_rfc3339(),
    });
    if report.healthy() {
        HttpResponse::Ok().json(body)
    } else {
        unavailable(report.needs_operator).json(body)
    }
}

/// Positions and lag of the publisher in detail, with the seed's `producer:
/// {connected}` and `timestamp`.
#[utoipa::path(get, path = "/health/kafka/stats", tag = "operations",
    responses((status = 200, description = "Publisher statistics: {destination, producerConnected, isRunning, headPosition, publishedPosition, unprocessedEvents, lagMs, error, producer: {connected}, timestamp (RFC 3339)}", body = Object)))]
pub async fn publisher_stats(state: web::Data<AppState>) -> HttpResponse {
    let report = state.publisher.report().await;
    let connected = report.producer_connected;
    let mut body = json!(report);
    if let Some(fields) = body.as_object_mut() {
        fields.insert("producer".into(), json!({ "connected": connected }));
        fields.insert("timestamp".into(), json!(now_rfc3339()));
    }
    HttpResponse::Ok().json(body)
}

/// The seed's words for the producer's connection.
fn connection_status(connected: bool) -> &'static str {
    if connected {
        "connected"
    } else {
        "disconnected"
    }
}

/// Now, as the seed's `timestamp` fields wrote it (`Date.toISOString()`: UTC, milliseconds).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(dead_letters) = &state.dead_letters {
        match dead_letters.counts().await {
            Ok(counts) => state.metrics.observe_dead_letters(&counts),
            Err(error) => tracing::warn!(%error, "cannot count the dead letters for /metrics"),
        }
    }
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body(observability::render_metrics(&state.metrics.registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_waiting_for_a_group_that_stored_nothing_are_unattended() {
        let report = |stored: bool, behind: u64| json!({"status": "up", "consumerGroup": {"group": "g", "messagesBehind": behind, "storedOffsets": stored}});
        assert!(unattended_group(&report(false, 3)));
        assert!(
            !unattended_group(&report(false, 0)),
            "nothing published yet"
        );
        assert!(
            !unattended_group(&report(true, 3)),
            "a group behind, but consuming"
        );
        assert!(
            !unattended_group(&json!({"status": "up", "position": 4})),
            "embedded"
        );
    }

    #[test]
    fn failing_wal_checkpoints_are_listed_by_file() {
        assert_eq!(wal_checkpoints_report(&[]), json!("ok"));
        let since = chrono::DateTime::parse_from_rfc3339("2026-12-05T14:00:00Z")
            .expect("a time")
            .to_utc();
        let failing = embedded_sqlite::FailingCheckpoints {
            file: "events.db".into(),
            failures: observability::Failures {
                since,
                failures: 3,
                error: "attempt to write a readonly database".into(),
            },
        };
        assert_eq!(
            wal_checkpoints_report(&[failing]),
            json!({"status": "failing", "files": [{
                "file": "events.db",
                "since": "2026-12-05T14:00:00Z",
                "failures": 3,
                "error": "attempt to write a readonly database",
            }]})
        );
    }
}
