//! What the OpenAPI document says of many operations at once, said once:
//! the answers of every write operation ([`WriteOperations`]), the bearer
//! token of every protected one ([`BearerAuth`]) and what every operation
//! shares ([`EveryOperation`]: the correlation header, and the refusals the
//! middleware gives before any handler runs).
//!
//! Every `POST` and `PUT` of the API runs through the same pipeline
//! (`wallets::run`): the body is read by one reader, the `Idempotency-Key`
//! header by one rule, the command by one service. So each of them takes the
//! same header and can give the same answers beyond its own: 408 (body not
//! all arrived within `BODY_READ_TIMEOUT_SECONDS`), 413 (body over
//! [`BODY_SIZE_MAX`]), 415 (not JSON in UTF-8, or compressed), 422 (key reused for another
//! operation) and 503 (busy, storage unavailable or outcome unknown: safe to
//! retry with the same key). [`WriteOperations`] adds them to each write
//! operation of the document, keeping whatever an operation states itself.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::Modify;

use super::body::{BODY_READ_TIMEOUT_SECONDS_DEFAULT, BODY_SIZE_MAX, HEAD_READ_TIMEOUT_MS};
use super::context::HEADER_TOKEN_LENGTH_MAX;

/// The header's name as documented (HTTP header names are case-insensitive).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Adds the header and the shared answers to every `POST` and `PUT`.
pub struct WriteOperations;

impl Modify for WriteOperations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put].into_iter().flatten() {
                add_idempotency_key(operation);
                add_shared_responses(operation);
            }
        }
    }
}

fn add_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if parameters
        .iter()
        .any(|parameter| parameter.name.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
    {
        return;
    }
    let schema = token_schema();
    parameters.push(
        ParameterBuilder::new()
            .name(IDEMPOTENCY_KEY)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes retries safe: the same key with the same operation returns the stored \
                 response; with another operation it is 422. Keys are one namespace across every \
                 path; stored responses expire after IDEMPOTENCY_RETENTION_HOURS (default 168).",
            ))
            .schema(Some(schema))
            .build(),
    );
}

fn add_shared_responses(operation: &mut Operation) {
    let too_large = format!(
        "Body over {} KiB, as sent or once decoded from its Content-Encoding",
        BODY_SIZE_MAX / 1024
    );
    let timed_out = format!(
        "The body did not all arrive within BODY_READ_TIMEOUT_SECONDS (default \
         {BODY_READ_TIMEOUT_SECONDS_DEFAULT}) of the start of its read; the connection is closed"
    );
    let shared = [
        ("408", timed_out.as_str()),
        ("413", too_large.as_str()),
        (
            "415",
            "Content-Type other than application/json (UTF-8), or a Content-Encoding other than \
             identity, gzip (x-gzip) or deflate, or more than one coding (identity aside)",
        ),
        ("422", "Idempotency-Key already used for another operation"),
        (
            "503",
            "Wallet busy, storage unavailable, or the outcome unknown: retry with the same \
             Idempotency-Key (Retry-After: seconds); or a file of the embedded store damaged \
             (the event store's, the transfer journal's, or on its own routes a projection's), \
             or the event store's or the transfer journal's file moved under the server, or the \
             wallet's history in the event store not holding together: no Retry-After, an \
             operator must repair, restore or rebuild it, or restart the server on the folder \
             that holds it",
        ),
    ];
    for (status, description) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// The correlation header's name as documented.
const CORRELATION_ID: &str = "X-Correlation-Id";
/// What the origin guard refuses (see `http::origin`).
const CROSS_ORIGIN_REFUSAL: &str = "A command whose Origin is not this server, or, without \
     authentication, a Host that is not a loopback name";
/// What the HTTP layer (actix-http's head parser) answers 431 for, before
/// any handler, with no body.
const HEAD_TOO_LARGE: &str = "More than 96 request headers, or a request head over 128 KiB; \
     answered by the HTTP layer with no body, and the connection is closed";
/// What the HTTP layer (actix-http's request parser) answers 400 for,
/// before any route is known, with no body: the request is not HTTP/1.1
/// a server can read safely (RFC 9112 §3.2, §6.3).
const MALFORMED_REQUEST: &str = "A request that is not well-formed HTTP/1.1 (no Host header, \
     both Content-Length and Transfer-Encoding, a repeated or non-numeric Content-Length, a \
     header line without a colon, a control byte in the request line or in a header value, an \
     unknown HTTP version, one of these bytes unencoded in the request target: <, > or any byte \
     above 0x7E (UTF-8 too) anywhere, a \" in the query, a ` in the path; RFC 3986 §2 has them \
     percent-encoded, while other such bytes, as { } | ^, are taken as sent); answered by the \
     HTTP layer with no body, and the connection is closed";
/// What every route refuses as ambiguous: which of the values was meant?
const REPEATED_INPUT: &str = "A query parameter given more than once, or a header the API \
     reads (Content-Type, Idempotency-Key, X-Correlation-Id, Authorization where a token is \
     asked for) sent more than once";
/// Paths whose answers never depend on storage (no 503).
const STORAGE_FREE_PATHS: [&str; 2] = ["/", "/metrics"];

/// Adds to every operation the `X-Correlation-Id` header and the answers
/// the HTTP layer and the middleware can give before its handler: 400 (a
/// bad correlation id, a malformed request), 403 (the origin guard), 408 (the head too slow:
/// [`HEAD_READ_TIMEOUT_MS`]), 431 (the head too large) and, where storage
/// is read, 503. Runs after
/// the other modifiers, so a 403 or 408 they describe keeps its text with
/// this one's added.
pub struct EveryOperation;

impl Modify for EveryOperation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let head_timed_out = format!(
            "The request line and headers did not all arrive within {HEAD_READ_TIMEOUT_MS} ms; \
             answered by the HTTP layer with no body, and the connection is closed"
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let storage_free = STORAGE_FREE_PATHS.contains(&path.as_str());
            for operation in operations_mut(item) {
                add_correlation_id(operation);
                let responses = &mut operation.responses.responses;
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| error_response("Invalid X-Correlation-Id"));
                add_or_extend(responses, "400", REPEATED_INPUT, error_response);
                add_or_extend(responses, "400", MALFORMED_REQUEST, error_response);
                add_or_extend(responses, "403", CROSS_ORIGIN_REFUSAL, error_response);
                add_or_extend(responses, "408", &head_timed_out, bodiless_response);
                add_or_extend(responses, "431", HEAD_TOO_LARGE, bodiless_response);
                if !storage_free {
                    responses.entry("503".to_owned()).or_insert_with(|| {
                        error_response("Storage or a dependency unavailable: retry later (Retry-After: seconds); or a file of the embedded store damaged or moved under the server: no Retry-After, an operator must repair, restore or rebuild it, or restart the server on its folder")
                    });
                }
            }
        }
    }
}

/// The reads answered from a projection (ledger, read model, search index),
/// which say when it was still behind the event store after their wait.
const PROJECTION_READS: [&str; 8] = [
    "/wallets",
    "/wallets/{walletId}/transactions",
    "/transactions",
    "/ledger/wallet/{walletId}",
    "/ledger/wallet/{walletId}/summary",
    "/ledger/reference/{referenceId}",
    "/ledger/transactions",
    "/ledger/verify",
];

/// What an operation is, for the headers of its answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `POST` or `PUT`.
    Write,
    /// A `GET` of [`PROJECTION_READS`].
    ProjectionRead,
    Other,
}

/// Documents the response headers the server sends: `X-Correlation-Id` on
/// every answer the application gives, `Retry-After` on 429 and 503,
/// `WWW-Authenticate` on 401, `Idempotent-Replayed` on the success of every
/// `POST` and `PUT` (a retry answered with the stored response), and
/// `Stale-Projection` on the answers of a projection's reads. Runs last,
/// when every operation has all its answers.
pub struct ResponseHeaders;

impl Modify for ResponseHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let read = if PROJECTION_READS.contains(&path.as_str()) {
                Kind::ProjectionRead
            } else {
                Kind::Other
            };
            let operations = [
                (&mut item.get, read),
                (&mut item.post, Kind::Write),
                (&mut item.put, Kind::Write),
                (&mut item.delete, Kind::Other),
            ];
            for (operation, kind) in operations {
                let Some(operation) = operation else {
                    continue;
                };
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    for (name, description) in response_headers(status, kind) {
                        response.headers.entry(name.to_owned()).or_insert_with(|| {
                            HeaderBuilder::new()
                                .schema(ObjectBuilder::new().schema_type(Type::String))
                                .description(Some(description))
                                .build()
                        });
                    }
                }
            }
        }
    }
}

/// The headers an answer of `status` carries, by name, with what they say.
fn response_headers(status: &str, kind: Kind) -> Vec<(&'static str, &'static str)> {
    let mut headers = Vec::new();
    // The HTTP layer's own answers carry none of the application's headers.
    if !matches!(status, "408" | "431") {
        headers.push((
            CORRELATION_ID,
            "The request's X-Correlation-Id, or the one made for it",
        ));
    }
    match status {
        "429" | "503" => headers.push((
            "Retry-After",
            "Seconds to wait before retrying (with the same Idempotency-Key, for a command); \
             absent when a file of the embedded store is damaged or was moved under the \
             server, which no retry mends",
        )),
        "401" => headers.push(("WWW-Authenticate", "Bearer, with the failed check")),
        success if kind == Kind::Write && success.starts_with('2') => headers.push((
            "Idempotent-Replayed",
            "true when this is the stored response of an earlier request with the same \
             Idempotency-Key (the operation was not run again)",
        )),
        "200" | "409" if kind == Kind::ProjectionRead => headers.push((
            super::ledger::STALE_PROJECTION,
            "Present when the projection read (ledger, read-model or search-index) was still \
             behind the event store after the read's wait: the answer may miss the newest \
             acknowledged writes. Absent: it shows every write acknowledged before the read",
        )),
        _ => {}
    }
    headers
}

/// Adds the answer `status` made by `new(description)`, or, when the
/// operation already describes that status, appends `description` to it.
fn add_or_extend(
    responses: &mut std::collections::BTreeMap<String, RefOr<Response>>,
    status: &str,
    description: &str,
    new: fn(&str) -> RefOr<Response>,
) {
    match responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            response.description = format!("{}; or: {description}", response.description);
        }
        _ => {
            responses.insert(status.to_owned(), new(description));
        }
    }
}

fn add_correlation_id(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if parameters
        .iter()
        .any(|parameter| parameter.name.eq_ignore_ascii_case(CORRELATION_ID))
    {
        return;
    }
    parameters.push(
        ParameterBuilder::new()
            .name(CORRELATION_ID)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Carried into every event the request causes and returned on the response; \
                 one is made when absent.",
            ))
            .schema(Some(token_schema()))
            .build(),
    );
}

/// The rule of a header token (idempotency key, correlation id).
fn token_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[!-~]{{1,{HEADER_TOKEN_LENGTH_MAX}}}$")))
}

/// The operations of a path item the API serves (GET, POST, PUT, DELETE).
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// An answer of `description` whose body is the seed's error body.
fn error_response(description: &str) -> RefOr<Response> {
    let error_body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_body)
        .build()
        .into()
}

/// An answer of `description` with no body.
fn bodiless_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .build()
        .into()
}

/// The name of the bearer JWT security scheme in the OpenAPI document.
pub const SECURITY_SCHEME: &str = "bearerAuth";
/// Path prefixes that need no token: probes, metrics, the documents.
pub const OPEN_PATH_PREFIXES: [&str; 2] = ["/health", "/metrics"];
/// Paths that need no token, matched whole: the service's index and the
/// seed's module probes.
pub const OPEN_PATHS: [&str; 4] = [
    "/",
    "/ledger/health",
    "/integration/health",
    "/users/health",
];

/// Puts the `bearerAuth` scheme on every protected operation, with the
/// answers every one of them can give: 401, 403 and 429.
pub struct BearerAuth;

impl BearerAuth {
    fn protect(operation: &mut Operation) {
        operation.security = Some(vec![SecurityRequirement::new(
            SECURITY_SCHEME,
            Vec::<String>::new(),
        )]);
        for (status, description) in [
            ("401", "No valid bearer token (WWW-Authenticate: Bearer); the message names the failed check"),
            ("403", "The token's scopes do not allow this call"),
            ("429", "Over this principal's rate limit (Retry-After: seconds)"),
        ] {
            operation
                .responses
                .responses
                .insert(status.to_owned(), error_response(description));
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with sub and scope (wallets, deposits, admin); see the README",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str())
                || OPEN_PATH_PREFIXES
                    .iter()
                    .any(|prefix| path.starts_with(prefix));
            if open {
                continue;
            }
            for operation in operations_mut(item) {
                Self::protect(operation);
            }
        }
    }
}
