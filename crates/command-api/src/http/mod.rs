//! HTTP: routes, request parsing, the wire format and the error mapping.

#[macro_use]
mod described;
mod as_of;
mod audit_trail;
mod auth;
mod body;
mod context;
mod disclosure;
mod documented_query;
mod dto;
mod error;
mod health;
mod hold_dto;
mod holds;
mod json_keys;
mod ledger;
mod ledger_dto;
mod malformed;
mod number;
mod openapi;
mod origin;
mod path;
mod query;
mod route_case;
mod transactions;
mod unread_body;
mod wallet_list;
mod wallets;

use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpRequest};
use futures::future::LocalBoxFuture;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

pub use body::{
    BodyReadTimeout, BODY_READ_TIMEOUT_SECONDS_DEFAULT, BODY_READ_TIMEOUT_SECONDS_MAX,
    BODY_SIZE_MAX, HEAD_READ_TIMEOUT_MS,
};
pub use context::correlate;
pub use documented_query::{refuse_undocumented as refuse_undocumented_query, DocumentedQueries};
pub use error::{ApiError, ErrorBody};
pub use origin::{allowed_origin, guard as guard_origin, OriginPolicy};
pub use query::refuse_undecodable as refuse_undecodable_query;
pub use route_case::{spell_as_documented, RouteSpellings};
pub use unread_body::{hold_unread_body, UNREAD_BODY_HOLD_MS};
pub use wallets::TRANSFER_REPLY;

/// The `Cache-Control` every answer carries: balances and histories are not
/// to be kept by any cache.
pub const CACHE_CONTROL: &str = "no-store";

use crate::metrics::Metrics;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wallex",
        description = "Event-sourced wallets with a double-entry ledger"
    ),
    paths(
        wallets::create_wallet,
        wallets::credit_wallet,
        wallets::debit_wallet,
        wallets::transfer,
        wallets::set_overdraft_limit,
        wallets::freeze_wallet,
        wallets::unfreeze_wallet,
        wallets::close_wallet,
        wallets::get_wallet,
        wallet_list::list_wallets,
        holds::place_hold,
        holds::capture_hold,
        holds::void_hold,
        holds::get_hold,
        holds::wallet_holds,
        ledger::wallet_entries,
        ledger::wallet_summary,
        ledger::reference_entries,
        ledger::transactions,
        ledger::verify,
        transactions::wallet_transactions,
        transactions::search_transactions,
        health::index,
        health::health,
        health::live,
        health::publisher_health,
        health::publisher_stats,
        health::ledger_health,
        health::integration_health,
        health::users_health,
        health::metrics,
    ),
    components(schemas(
        dto::WalletResponse,
        audit_trail::WalletReadResponse,
        audit_trail::AuditTrailEntry,
        dto::TransferResponse,
        dto::WalletReference,
        dto::WalletReply,
        dto::CreateWalletRequest,
        dto::AmountRequest,
        dto::TransferRequest,
        dto::OverdraftLimitRequest,
        dto::EmptyRequest,
        dto::TransactionResponse,
        dto::WalletTransactionsResponse,
        dto::TransactionSearchResponse,
        ledger::WalletSummaryResponse,
        hold_dto::HoldResponse,
        hold_dto::WalletHoldsResponse,
        hold_dto::PlaceHoldRequest,
        hold_dto::CaptureHoldRequest,
        health::ServiceIndex,
        health::ServiceLinks,
        ErrorBody
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document of this server: every write operation with its
/// `Idempotency-Key` and shared answers ([`openapi`]); with
/// authentication on, every protected operation carries `bearerAuth` and its
/// 401, 403 and 429; without it (the embedded default's open mode) no
/// operation asks for a token, because none is checked.
pub fn document(authenticated: bool) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    openapi::WriteOperations.modify(&mut document);
    if authenticated {
        openapi::BearerAuth.modify(&mut document);
    }
    openapi::EveryOperation.modify(&mut document);
    openapi::ResponseHeaders.modify(&mut document);
    document
}

/// Every route of the API; `document` is served at `/openapi.json`.
pub fn routes(config: &mut web::ServiceConfig, document: utoipa::openapi::OpenApi) {
    config
        .service(
            web::resource("/wallets")
                .route(web::post().to(wallets::create_wallet))
                .route(web::get().to(wallet_list::list_wallets))
                // Another method answers as on any unknown route, as the
                // seed did (404 naming method and path), not an empty 405.
                .default_service(web::to(unknown_route)),
        )
        .route("/wallets/{walletId}", web::get().to(wallets::get_wallet))
        .route(
            "/wallets/{walletId}/credit",
            web::post().to(wallets::credit_wallet),
        )
        .route(
            "/wallets/{walletId}/debit",
            web::post().to(wallets::debit_wallet),
        )
        .route(
            "/wallets/{fromWalletId}/transfer",
            web::post().to(wallets::transfer),
        )
        .route(
            "/wallets/{walletId}/overdraft-limit",
            web::put().to(wallets::set_overdraft_limit),
        )
        .route(
            "/wallets/{walletId}/freeze",
            web::post().to(wallets::freeze_wallet),
        )
        .route(
            "/wallets/{walletId}/unfreeze",
            web::post().to(wallets::unfreeze_wallet),
        )
        .route(
            "/wallets/{walletId}/close",
            web::post().to(wallets::close_wallet),
        )
        .service(
            web::resource("/wallets/{walletId}/holds")
                .route(web::post().to(holds::place_hold))
                .route(web::get().to(holds::wallet_holds))
                .default_service(web::to(unknown_route)),
        )
        .route("/holds/{holdId}", web::get().to(holds::get_hold))
        .route(
            "/holds/{holdId}/capture",
            web::post().to(holds::capture_hold),
        )
        .route("/holds/{holdId}/void", web::post().to(holds::void_hold))
        .route(
            "/wallets/{walletId}/transactions",
            web::get().to(transactions::wallet_transactions),
        )
        .route(
            "/transactions",
            web::get().to(transactions::search_transactions),
        )
        .route(
            "/ledger/wallet/{walletId}",
            web::get().to(ledger::wallet_entries),
        )
        .route(
            "/ledger/wallet/{walletId}/summary",
            web::get().to(ledger::wallet_summary),
        )
        .route(
            "/ledger/reference/{referenceId}",
            web::get().to(ledger::reference_entries),
        )
        .route("/ledger/transactions", web::get().to(ledger::transactions))
        .route("/ledger/verify", web::get().to(ledger::verify))
        .route("/", web::get().to(health::index))
        .route("/health", web::get().to(health::health))
        .route("/health/live", web::get().to(health::live))
        .route("/health/kafka", web::get().to(health::publisher_health))
        .route("/ledger/health", web::get().to(health::ledger_health))
        .route(
            "/integration/health",
            web::get().to(health::integration_health),
        )
        .route("/users/health", web::get().to(health::users_health))
        .route(
            "/health/kafka/stats",
            web::get().to(health::publisher_stats),
        )
        .route("/metrics", web::get().to(health::metrics))
        .route(DOCS_HOME, web::get().to(swagger_ui_home))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document))
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            // Every parameter is read as text, so only the query string's
            // shape can fail here: serde names the parameter given twice
            // ("duplicate field `limit`").
            let text = error.to_string();
            let message = match text.split('`').nth(1) {
                Some(name) if text.contains("duplicate field") => format!(
                    "query parameter {name} is given more than once: give each parameter at most once"
                ),
                _ => format!("Invalid query string: {text}; give each parameter at most once"),
            };
            ApiError::BadRequest(message).into()
        }))
        .default_service(web::to(unknown_route));
}

/// Where Swagger UI is: its page is this path with a slash, `/docs/`, whose
/// relative links name its files.
const DOCS_HOME: &str = "/docs";

/// `/docs` without its slash: Swagger UI lives at `/docs/`.
async fn swagger_ui_home() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

async fn unknown_route(request: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(not_found(&request))
}

/// The seed's 404 of a path nothing answers: "Cannot GET /nowhere".
fn not_found(request: &HttpRequest) -> ApiError {
    ApiError::NotFound(format!("Cannot {} {}", request.method(), request.path()))
}

/// Middleware: a path ending in `/` is routed, checked and answered as the
/// path without it, as the seed's Express router matched paths (`strict`
/// routing off, its default): `POST /wallets/` is `POST /wallets`. Swagger
/// UI's pages under `/docs/` keep their slash (its page is `/docs/`).
pub fn trim_trailing_slash<S>(
    mut request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    if let Some(uri) = without_trailing_slash(request.uri()) {
        request.match_info_mut().get_mut().update(&uri);
        request.head_mut().uri = uri;
    }
    Box::pin(service.call(request))
}

/// `uri` with its path's one trailing slash removed (the root stays `/`), its
/// query kept; `None` when there is nothing to remove, or under Swagger UI.
/// One only, as Express's non-strict routes end in `\/?$`: a path ending
/// in two slashes names no route (tester h136 F2).
fn without_trailing_slash(uri: &actix_web::http::Uri) -> Option<actix_web::http::Uri> {
    let path = uri.path();
    let docs = path
        .strip_prefix(DOCS_HOME)
        .is_some_and(|rest| rest.starts_with('/'));
    if path.len() <= 1 || !path.ends_with('/') || docs {
        return None;
    }
    let trimmed = match path.strip_suffix('/').unwrap_or(path) {
        "" => "/",
        trimmed => trimmed,
    };
    route_case::with_path(uri, trimmed)
}

/// Middleware: a `HEAD` is answered as its `GET` without the content (RFC
/// 9110 §9.3.2), as the seed's server did; the HTTP layer leaves the body
/// out of the answer to a `HEAD` request.
pub fn head_as_get<S>(
    mut request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    if request.method() == actix_web::http::Method::HEAD {
        request.head_mut().method = actix_web::http::Method::GET;
    }
    Box::pin(service.call(request))
}

/// Middleware: a file Swagger UI does not have (under `/docs/`), which its
/// file service answers 404 with no body, answers as every unknown path does:
/// 404 with the error body naming the method and the path.
pub fn docs_not_found_body<S>(
    request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    let docs = request
        .path()
        .strip_prefix(DOCS_HOME)
        .is_some_and(|file| file.starts_with('/'));
    let response = service.call(request);
    Box::pin(async move {
        let response = response.await?;
        let bare = response.status() == actix_web::http::StatusCode::NOT_FOUND
            && !response
                .headers()
                .contains_key(actix_web::http::header::CONTENT_TYPE);
        if !(docs && bare) {
            return Ok(response);
        }
        let (request, _) = response.into_parts();
        let error = not_found(&request);
        Ok(ServiceResponse::new(
            request,
            actix_web::ResponseError::error_response(&error),
        ))
    })
}

/// Middleware: counts requests and times them by route pattern (a path no
/// route matches is `unmatched`, so the labels stay bounded). It wraps every
/// middleware that may answer for the handler (the origin guard, the
/// correlation and query checks), so whatever answers a request, refusals
/// included, is counted: monitoring sees the probes refused at the door.
pub fn measure<S>(
    request: ServiceRequest,
    service: &S,
    metrics: Metrics,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    let started = Instant::now();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = service.call(request);
    Box::pin(async move {
        let response = response.await;
        let status = match &response {
            Ok(response) => response.status(),
            // What actix-web answers for an error a middleware returns.
            Err(error) => error.as_response_error().status_code(),
        };
        let status = status.as_u16().to_string();
        metrics
            .requests
            .with_label_values(&[route.as_str(), status.as_str()])
            .inc();
        metrics
            .request_seconds
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
        response
    })
}

#[cfg(test)]
mod tests {
    use regex::Regex;
    use serde_json::Value;
    use wallet_domain::{HOLD_ID_LENGTH_MAX, IDENTIFIER_LENGTH_MAX};

    use super::{document, path, without_trailing_slash};

    #[test]
    fn a_trailing_slash_is_dropped_except_under_swagger_ui() {
        let trimmed = |raw: &str| {
            let uri: actix_web::http::Uri = raw.parse().expect("a URI");
            without_trailing_slash(&uri).map(|uri| uri.to_string())
        };
        assert_eq!(trimmed("/wallets/").as_deref(), Some("/wallets"));
        assert_eq!(
            trimmed("/wallets/w-1/transactions/?limit=2&before=9").as_deref(),
            Some("/wallets/w-1/transactions?limit=2&before=9")
        );
        assert_eq!(
            trimmed("/wallets/w-1/credit//").as_deref(),
            Some("/wallets/w-1/credit/")
        );
        assert_eq!(trimmed("//").as_deref(), Some("/"));
        assert_eq!(trimmed("/docsx/").as_deref(), Some("/docsx"));
        for kept in [
            "/",
            "/wallets",
            "/wallets?x=/",
            "/docs/",
            "/docs/index.html",
            "/docs//",
        ] {
            assert_eq!(trimmed(kept), None, "{kept}");
        }
    }

    /// What the document states of a path parameter: its pattern and its
    /// longest length in characters, when stated.
    struct Stated {
        pattern: Regex,
        length_max: Option<usize>,
    }

    impl Stated {
        fn accepts(&self, raw: &str) -> bool {
            self.pattern.is_match(raw)
                && self
                    .length_max
                    .is_none_or(|length_max| raw.chars().count() <= length_max)
        }
    }

    /// Every path parameter of every operation: (operation, name, schema).
    fn path_parameters() -> Vec<(String, String, Value)> {
        let document = serde_json::to_value(document(true)).expect("a JSON document");
        let mut found = Vec::new();
        for (route, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let parameters = operation["parameters"].as_array().into_iter().flatten();
                for parameter in parameters.filter(|parameter| parameter["in"] == "path") {
                    found.push((
                        format!("{method} {route}"),
                        parameter["name"].as_str().expect("a name").to_owned(),
                        parameter["schema"].clone(),
                    ));
                }
            }
        }
        found
    }

    /// The server's rule for a path parameter of that name: whether it takes
    /// `raw`, by the same function its handler reads it with.
    fn server_accepts(name: &str, raw: &str) -> bool {
        match name {
            "walletId" => path::wallet_id(raw).is_ok(),
            "fromWalletId" => path::wallet_id_named("fromWalletId", raw).is_ok(),
            "holdId" => path::hold_id(raw).is_ok(),
            "referenceId" => path::reference_id(raw).is_ok(),
            other => panic!("the path parameter {other} has no rule in this test: add it"),
        }
    }

    /// The repository's copy of the document, for clients that generate code
    /// without running a server: the one served with authentication on (the
    /// open mode's lacks only `bearerAuth` and its 401, 403 and 429).
    const COMMITTED_DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");

    #[test]
    fn the_committed_openapi_json_is_the_served_document() {
        let served = serde_json::to_string_pretty(&document(true)).expect("a JSON document") + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(COMMITTED_DOCUMENT, &served).expect("openapi.json written");
        }
        let committed = std::fs::read_to_string(COMMITTED_DOCUMENT).expect("openapi.json read");
        assert!(
            committed == served,
            "openapi.json is not the served document: regenerate it with \
             `UPDATE_OPENAPI=1 cargo test -p command-api --lib the_committed_openapi_json`"
        );
    }

    /// The schemas come from functions for most fields, which leave a
    /// field's doc comment out (see [`super::described`]).
    #[test]
    fn every_optional_field_of_a_request_says_what_absent_means() {
        let served = serde_json::to_value(document(true)).expect("a JSON document");
        let schemas = served["components"]["schemas"]
            .as_object()
            .expect("schemas");
        let mut optional = 0;
        for (name, schema) in schemas.iter().filter(|(name, _)| name.ends_with("Request")) {
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                if required.contains(&serde_json::Value::from(field.as_str())) {
                    continue;
                }
                optional += 1;
                let description = property["description"].as_str().unwrap_or_default();
                assert!(
                    description.to_lowercase().contains("absent"),
                    "{name}.{field}: {description:?}"
                );
            }
        }
        assert!(
            optional >= 10,
            "every request was seen: {optional} optional fields"
        );
    }

    #[test]
    fn every_id_in_a_path_states_the_pattern_and_length_the_server_enforces() {
        let samples = [
            "w-1_A".to_owned(),
            String::new(),
            "a".repeat(IDENTIFIER_LENGTH_MAX),
            "a".repeat(IDENTIFIER_LENGTH_MAX + 1),
            "h".repeat(HOLD_ID_LENGTH_MAX),
            "h".repeat(HOLD_ID_LENGTH_MAX + 1),
            "transfer:0191e0c4".to_owned(),
            "café au lait".to_owned(),
            "bell\u{7}".to_owned(),
            "next line\u{85}".to_owned(),
        ];
        let parameters = path_parameters();
        assert!(
            parameters.len() >= 17,
            "every route was seen: {}",
            parameters.len()
        );
        for (operation, name, schema) in parameters {
            let pattern = schema["pattern"].as_str().unwrap_or_else(|| {
                panic!("{operation}: the path parameter {name} states no pattern")
            });
            let stated = Stated {
                pattern: Regex::new(pattern).expect("a valid pattern"),
                length_max: schema["maxLength"]
                    .as_u64()
                    .map(|length| usize::try_from(length).expect("a length")),
            };
            for sample in &samples {
                assert_eq!(
                    stated.accepts(sample),
                    server_accepts(&name, sample),
                    "{operation}: {name} = {sample:?}: the document and the server disagree"
                );
            }
        }
    }
}
