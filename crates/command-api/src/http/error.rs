//! The one place where errors become HTTP responses.
//!
//! Every error body has the seed's shape `{statusCode, message, error}`.
//! Client errors say what is wrong; server errors log their cause and show
//! the client nothing internal. A fault the client can wait out (the event
//! store or its pool unavailable, an append whose outcome is unknown, a busy
//! wallet, the search index down) is a 503 with `Retry-After`, never a 500.
//! A fault no wait mends (the event store's file found damaged) is a 503
//! that says an operator is needed, without `Retry-After`: clients that
//! retried would only add load.

use actix_web::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use embedded_sqlite::SqliteError;
use event_sink::Transience;
use event_store::StoreError;
use ledger::verification::VerificationError;
use ledger::LedgerError;
use read_model::ReadModelError;
use search_index::SearchIndexError;
use serde::Serialize;
use transfer_process::{JournalError, ProcessError};
use utoipa::ToSchema;
use wallet_domain::{refused_in_description, DomainError, EventDecodeError, ValidationError};

use super::query::QueryError;
use crate::access::AdmissionError;
use crate::catch_up::Projection;
use crate::wallets::ServiceError;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[schema(example = 400)]
    pub status_code: u16,
    #[schema(example = "amount must be greater than 0")]
    pub message: String,
    #[schema(example = "Bad Request")]
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// 401 with `WWW-Authenticate: Bearer`; the text names the failed check.
    #[error(transparent)]
    Unauthorized(identity::AuthError),
    /// 403: authenticated, but the scopes do not allow the call.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 408, and the connection is closed: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// 429 with `Retry-After`.
    #[error("Too many requests from this principal; retry in {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: u64 },
    /// 503 with `Retry-After`: the client may send the request again.
    #[error("{0}")]
    Unavailable(String),
    /// 503 without `Retry-After`: the service cannot serve the request
    /// until an operator acts ([`STORE_DAMAGED_MESSAGE`]).
    #[error("{0}")]
    NeedsOperator(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

/// What a client is told to wait before it retries a 503 (`Retry-After`), in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The "outcome unknown" answer, naming the storage (a literal) that did
/// not confirm the request.
macro_rules! outcome_unknown {
    ($storage:literal) => {
        concat!(
            "The outcome of this request is unknown: the ",
            $storage,
            " did not confirm it, and it may or may not have been applied. It is safe to retry \
             with the same Idempotency-Key, which applies it at most once"
        )
    };
}
/// The answer when an append's outcome is unknown: it may be stored.
pub const OUTCOME_UNKNOWN_MESSAGE: &str = outcome_unknown!("event store");
/// The answer when the transfer journal did not confirm a record: the
/// request (a transfer, or a command whose key it claims) may or may not be
/// recorded.
pub const JOURNAL_OUTCOME_UNKNOWN_MESSAGE: &str = outcome_unknown!("transfer journal");
/// The answer when a transfer run as the transfer process could not record
/// its intent: nothing of it was done.
pub const TRANSFER_NOT_STARTED_MESSAGE: &str =
    "The transfer journal is unavailable; nothing of this request was applied. Retry the \
     request, with the same Idempotency-Key if it had one";
/// The answer when the event store (or its pool) cannot be reached.
pub const STORE_UNAVAILABLE_MESSAGE: &str =
    "The event store is unavailable. Retry the request, with the same Idempotency-Key if it \
     had one";
/// The answer when the event store's file was found damaged: no retry
/// brings it back.
pub const STORE_DAMAGED_MESSAGE: &str =
    "The event store's file (events.db) is damaged: this service takes no request that needs it \
     until an operator repairs or restores the file and restarts the server";
/// The answer when a wallet's stream does not hold together (an event that
/// does not continue the state before it: an edit of the log, or a bug):
/// nothing is decided on it, and no retry mends it.
pub const BROKEN_STREAM_MESSAGE: &str =
    "This wallet's history in the event store does not hold together; nothing of this request \
     was applied, and no request on this wallet is taken until an operator repairs or restores \
     the event store";
/// The answer when the event store's file, its folder or its `-wal` was
/// moved, deleted or replaced while the server ran: no retry brings it back.
pub const STORE_MOVED_MESSAGE: &str =
    "The event store's file or its folder was moved, deleted or replaced while the server ran: \
     this service takes no request that needs it until an operator restarts the server on the \
     folder that holds the data";
/// The answer when the transfer journal's file was found damaged (transfer
/// process on the embedded default): no retry brings it back.
pub const JOURNAL_DAMAGED_MESSAGE: &str =
    "The transfer journal's file is damaged: requests that need it (transfers and captures, \
     closes, and commands with an Idempotency-Key, whose keys it holds too) are not taken \
     until an operator repairs the file and restarts the server. A transfer may have been \
     started; a retry with the same Idempotency-Key afterwards applies it at most once";
/// The answer when the transfer journal's file, its folder or its `-wal`
/// was moved, deleted or replaced while the server ran: no retry brings it
/// back.
pub const JOURNAL_MOVED_MESSAGE: &str =
    "The transfer journal's file or its folder was moved, deleted or replaced while the server \
     ran: requests that need it (transfers and captures, closes, and commands with an \
     Idempotency-Key) are not taken until an operator restarts the server on the folder that \
     holds the data. A transfer this request started, if any, is finished by that restart, and \
     a retry with the same Idempotency-Key afterwards applies it at most once";
/// The answer when the wallet's stream holds an event a newer version of
/// Wallex wrote (a schema version or an event type this build does not
/// read), as during a rolling upgrade: this server cannot decide on it.
pub const NEWER_EVENTS_MESSAGE: &str =
    "This wallet holds events written by a newer version of Wallex, which this server cannot \
     read yet. Retry the request, with the same Idempotency-Key if it had one, once the \
     upgrade is done";

/// How often, at most, requests the event store failed as unavailable are
/// logged, in ms (the first at once; each line counts those held back).
pub const STORE_UNAVAILABLE_LOG_INTERVAL_MS: u64 = 10_000;

/// The throttle of "event store unavailable" lines, shared by every request.
static STORE_UNAVAILABLE_LOG: std::sync::LazyLock<std::sync::Mutex<observability::LogThrottle>> =
    std::sync::LazyLock::new(|| {
        std::sync::Mutex::new(observability::LogThrottle::every(
            std::time::Duration::from_millis(STORE_UNAVAILABLE_LOG_INTERVAL_MS),
        ))
    });

/// Logs the whole cause chain of `error` once, where it becomes a response.
fn log_chain(error: &dyn std::error::Error, what: &str) {
    let mut chain = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cause = inner.source();
    }
    tracing::warn!(cause = %chain, "{what}");
}

/// Logs `error` as `what`: every request fails alike while the event store
/// (or the transfer journal) is away or damaged, so one line an interval,
/// with the count held back.
fn log_store_away(error: &dyn std::error::Error, what: &str) {
    let logged = STORE_UNAVAILABLE_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .occurred(std::time::Instant::now());
    if let Some(line) = logged {
        log_chain(
            error,
            &format!("{what} ({} more since the last line)", line.held_back),
        );
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::OutcomeUnknown { .. } => {
                log_chain(&error, "event store append outcome unknown");
                ApiError::Unavailable(OUTCOME_UNKNOWN_MESSAGE.into())
            }
            StoreError::Unavailable(_) => {
                log_store_away(&error, "event store unavailable");
                ApiError::Unavailable(STORE_UNAVAILABLE_MESSAGE.into())
            }
            StoreError::Damaged(_) => {
                // The damage was logged once, at error, when it was found.
                log_store_away(&error, "event store damaged");
                ApiError::NeedsOperator(STORE_DAMAGED_MESSAGE.into())
            }
            StoreError::Moved(_) => {
                log_store_away(&error, "event store moved");
                ApiError::NeedsOperator(STORE_MOVED_MESSAGE.into())
            }
            StoreError::Corrupt {
                source:
                    EventDecodeError::UnsupportedSchemaVersion(_) | EventDecodeError::UnknownType(_),
                ..
            } => {
                log_chain(&error, "stored event written by a newer build");
                ApiError::Unavailable(NEWER_EVENTS_MESSAGE.into())
            }
            // A 500 before (tester h134); logged with its wallet and version.
            StoreError::BrokenStream { .. } => {
                tracing::error!(%error, "wallet stream broken: the event store needs an operator");
                ApiError::NeedsOperator(BROKEN_STREAM_MESSAGE.into())
            }
            StoreError::Corrupt { .. } | StoreError::CorruptSnapshot { .. } => {
                ApiError::Internal(error.to_string())
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        match error {
            ServiceError::Store(store) => store.into(),
            // The transfer may be in its journal: a retry with its key resumes it.
            ServiceError::Transfer(ProcessError::Journal(
                JournalError::Unavailable(_) | JournalError::Refused(_),
            )) => {
                log_chain(&error, "transfer journal unavailable");
                ApiError::Unavailable(JOURNAL_OUTCOME_UNKNOWN_MESSAGE.into())
            }
            ServiceError::Transfer(ProcessError::Journal(JournalError::Damaged(_))) => {
                log_store_away(&error, "transfer journal damaged");
                ApiError::NeedsOperator(JOURNAL_DAMAGED_MESSAGE.into())
            }
            ServiceError::Transfer(
                ProcessError::Journal(JournalError::Moved(_))
                | ProcessError::NotStarted {
                    source: JournalError::Moved(_),
                    ..
                },
            ) => {
                log_store_away(&error, "transfer journal moved");
                ApiError::NeedsOperator(JOURNAL_MOVED_MESSAGE.into())
            }
            // Its intent is recorded: the sweep, or a retry with its key,
            // finishes it (h136 F1: "unavailable, retry" was answered, and a
            // retry without its key paid twice).
            ServiceError::Transfer(ProcessError::Unfinished {
                transfer_id,
                source,
            }) => match source {
                StoreError::Unavailable(_) | StoreError::OutcomeUnknown { .. } => {
                    log_chain(
                        &source,
                        &format!("transfer {transfer_id} left unfinished by the event store"),
                    );
                    ApiError::Unavailable(OUTCOME_UNKNOWN_MESSAGE.into())
                }
                other => other.into(),
            },
            // Its intent was refused: nothing of it was done.
            ServiceError::Transfer(ProcessError::NotStarted { .. }) => {
                log_chain(&error, "transfer journal refused a transfer's intent");
                ApiError::Unavailable(TRANSFER_NOT_STARTED_MESSAGE.into())
            }
            ServiceError::Domain(domain) => match domain {
                DomainError::WalletNotFound(_) => ApiError::NotFound(message),
                DomainError::WalletAlreadyExists(_)
                | DomainError::WalletOwnedByAnother { .. }
                | DomainError::WalletFrozen(_)
                | DomainError::WalletAlreadyFrozen(_)
                | DomainError::WalletNotFrozen(_)
                | DomainError::WalletClosed(_)
                | DomainError::WalletNotEmpty { .. }
                | DomainError::OverdraftLimitInUse { .. }
                | DomainError::WalletHasPendingHolds { .. }
                | DomainError::WalletHasTransfersUnderway { .. }
                | DomainError::HoldAlreadyExists(_)
                | DomainError::HoldNotPending { .. }
                | DomainError::HoldNotDue(_)
                | DomainError::TooManyPendingHolds { .. } => ApiError::Conflict(message),
                DomainError::InsufficientFunds { .. }
                | DomainError::SameWalletTransfer(_)
                | DomainError::BalanceOverflow(_)
                | DomainError::CaptureExceedsHold { .. }
                | DomainError::HoldExpiryNotInFuture(_) => ApiError::BadRequest(message),
            },
            ServiceError::ConcurrencyConflict(_) => ApiError::Conflict(message),
            ServiceError::IdempotencyKeyReused(_) => ApiError::Unprocessable(message),
            ServiceError::LockTimedOut(_) | ServiceError::Overloaded(_) => {
                ApiError::Unavailable(message)
            }
            ServiceError::Encoding(_)
            | ServiceError::Transfer(_)
            | ServiceError::TransferAborted(_) => ApiError::Internal(message),
        }
    }
}

impl From<AdmissionError> for ApiError {
    fn from(error: AdmissionError) -> Self {
        match error {
            AdmissionError::Unauthenticated(error) => ApiError::Unauthorized(error),
            AdmissionError::RateLimited {
                retry_after_seconds,
            } => ApiError::TooManyRequests {
                retry_after_seconds,
            },
        }
    }
}

impl From<identity::Refusal> for ApiError {
    /// A refusal on no wallet in particular: a concealed one is not found.
    fn from(refusal: identity::Refusal) -> Self {
        match refusal {
            identity::Refusal::Forbidden(message) => ApiError::Forbidden(message.to_owned()),
            identity::Refusal::Concealed => ApiError::NotFound("Not found".into()),
        }
    }
}

/// A projection's error (`what`: "Ledger", "Read model"): its storage away
/// or busy (`transient`: a file moved, a pool timed out, a PostgreSQL
/// restart) is 503, as the read may succeed later; the rest (corrupt or
/// unbalanced data) is 500.
fn projection_error(
    error: &dyn std::error::Error,
    fault: ProjectionFault,
    projection: Projection,
) -> ApiError {
    match fault {
        ProjectionFault::Transient => {
            let message = projection.unavailable_message();
            log_chain(error, message);
            ApiError::Unavailable(message.into())
        }
        ProjectionFault::Damaged => {
            log_chain(error, "projection file damaged");
            ApiError::NeedsOperator(projection.damaged_message().into())
        }
        ProjectionFault::Permanent => ApiError::Internal(error.to_string()),
    }
}

/// What kind of failure a projection's error is, for its answer.
enum ProjectionFault {
    /// Its store away, busy or behind: a retry may pass (503, `Retry-After`).
    Transient,
    /// Its file found damaged: no retry passes until an operator moves the
    /// file out to have it built again (503 without `Retry-After`).
    Damaged,
    /// Corrupt or unbalanced data (500).
    Permanent,
}

impl ProjectionFault {
    fn of(transient: bool, damaged: bool) -> Self {
        match (damaged, transient) {
            (true, _) => ProjectionFault::Damaged,
            (false, true) => ProjectionFault::Transient,
            (false, false) => ProjectionFault::Permanent,
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        let damaged = matches!(&error, LedgerError::Storage(SqliteError::Damaged { .. }));
        let fault = ProjectionFault::of(error.is_transient(), damaged);
        projection_error(&error, fault, Projection::Ledger)
    }
}

impl From<VerificationError> for ApiError {
    fn from(error: VerificationError) -> Self {
        match error {
            VerificationError::Ledger(error) => error.into(),
            VerificationError::Store(error) => error.into(),
        }
    }
}

impl From<ReadModelError> for ApiError {
    fn from(error: ReadModelError) -> Self {
        let damaged = matches!(&error, ReadModelError::Damaged(_));
        let fault = ProjectionFault::of(error.is_transient(), damaged);
        projection_error(&error, fault, Projection::ReadModel)
    }
}

impl From<SearchIndexError> for ApiError {
    fn from(error: SearchIndexError) -> Self {
        match error {
            // The port checks paging, ranges and text; its message names the field.
            SearchIndexError::InvalidQuery(message) => ApiError::BadRequest(message),
            // The search server is down or refuses (an index not created yet
            // included): the client may retry; what it said stays in the log.
            SearchIndexError::Damaged(_) => {
                projection_error(&error, ProjectionFault::Damaged, Projection::SearchIndex)
            }
            SearchIndexError::Unavailable(_) | SearchIndexError::Refused { .. } => {
                tracing::warn!(cause = %error, "search index unavailable");
                ApiError::Unavailable(Projection::SearchIndex.unavailable_message().into())
            }
            SearchIndexError::InvalidConfig(_)
            | SearchIndexError::BulkItemsFailed { .. }
            | SearchIndexError::UnknownWallet(_)
            | SearchIndexError::Corrupt(_) => ApiError::Internal(error.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::NeedsOperator(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "Internal server error".to_owned()
            }
            other => displayable(&other.to_string()),
        };
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::Unauthorized(identity::AuthError::Missing) => {
                response.insert_header((WWW_AUTHENTICATE, "Bearer"));
            }
            // RFC 6750 §3: a token was sent and failed.
            ApiError::Unauthorized(_) => {
                response.insert_header((WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            ApiError::TooManyRequests {
                retry_after_seconds,
            } => {
                response.insert_header((RETRY_AFTER, retry_after_seconds.to_string()));
            }
            // The rest of the body may still come: the connection cannot
            // carry another request.
            ApiError::RequestTimeout(_) => {
                response.force_close();
            }
            // No wait mends it: no time to wait is given.
            ApiError::NeedsOperator(_) => {}
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((RETRY_AFTER, RETRY_AFTER_SECONDS.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            status_code: status.as_u16(),
            message,
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
        })
    }
}

/// `message` with every character that may show otherwise than it is
/// written as `<U+XXXX>`: those a description may not hold
/// ([`refused_in_description`]: controls, line and paragraph separators,
/// bidirectional overrides) and the invisible ones ([`invisible`]). A
/// message may quote a path id or a parameter name the client sent (a hold
/// id stored before today's rules, a reference id), and a log viewer or
/// page showing the error must not display it reordered (CVE-2021-42574) or
/// as another id that looks the same.
fn displayable(message: &str) -> String {
    let quoted = |character: char| refused_in_description(character) || invisible(character);
    if !message.chars().any(quoted) {
        return message.to_owned();
    }
    message
        .chars()
        .map(|character| {
            if quoted(character) {
                format!("<U+{:04X}>", u32::from(character))
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// Whether `character` is a format character that shows as nothing:
/// the soft hyphen, the direction marks (U+061C, U+200E, U+200F), the
/// zero-width space, joiners and word joiner (U+200B to U+200D, U+2060 to
/// U+2064), the byte order mark (U+FEFF), the interlinear annotation marks
/// (U+FFF9 to U+FFFB) and the tag characters (U+E0001, U+E0020 to U+E007F).
fn invisible(character: char) -> bool {
    matches!(
        character,
        '\u{AD}'
            | '\u{61C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_shows_bidirectional_and_control_characters_as_code_points() {
        assert_eq!(
            displayable("Hold user\u{202E}gnp.exe not found"),
            "Hold user<U+202E>gnp.exe not found"
        );
        assert_eq!(displayable("a\u{2028}b\u{7}c"), "a<U+2028>b<U+0007>c");
        assert_eq!(displayable("Hold é-1 not found"), "Hold é-1 not found");
        assert_eq!(
            displayable("a\u{200B}b\u{FEFF}c\u{200F}d\u{E0041}"),
            "a<U+200B>b<U+FEFF>c<U+200F>d<U+E0041>"
        );
    }

    /// The response to a store error, and its body as text.
    async fn answered(error: StoreError) -> (StatusCode, Option<String>, String) {
        answered_service(ServiceError::Store(error)).await
    }

    /// The response to a service error, and its body as text.
    async fn answered_service(error: ServiceError) -> (StatusCode, Option<String>, String) {
        let response = ApiError::from(error).error_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("a body");
        let body = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
        (status, retry_after, body)
    }

    /// h136 F1: a transfer whose intent the journal holds, and whose step
    /// the store failed (a full disk), is finished later by the sweep: the
    /// answer is "outcome unknown", never the store's "nothing applied".
    #[tokio::test]
    async fn a_transfer_left_unfinished_by_the_store_is_an_unknown_outcome() {
        let unfinished = ServiceError::Transfer(ProcessError::Unfinished {
            transfer_id: uuid::Uuid::nil(),
            source: StoreError::Unavailable("database or disk is full".into()),
        });
        let (status, retry_after, body) = answered_service(unfinished).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, Some(RETRY_AFTER_SECONDS.to_string()));
        assert!(
            body.contains("outcome of this request is unknown"),
            "{body}"
        );
        // The journal's own failure names the journal, not the store (h138 F3).
        let journal = ServiceError::Transfer(ProcessError::Journal(JournalError::Unavailable(
            "disk I/O error".into(),
        )));
        let (status, _, body) = answered_service(journal).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("transfer journal did not confirm"), "{body}");
        let (unavailable, _, plain) =
            answered(StoreError::Unavailable("database or disk is full".into())).await;
        assert_eq!(unavailable, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !plain.contains("outcome of this request is unknown"),
            "{plain}"
        );
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_a_503_to_retry_with_the_same_key() {
        let (status, retry_after, body) = answered(StoreError::OutcomeUnknown {
            source: Box::new(std::io::Error::other("connection reset during COMMIT")),
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, Some(RETRY_AFTER_SECONDS.to_string()));
        assert!(
            body.contains("outcome of this request is unknown"),
            "{body}"
        );
        assert!(body.contains("Idempotency-Key"), "{body}");
        assert!(!body.contains("connection reset"), "no cause shown: {body}");
    }

    #[test]
    fn projection_storage_away_is_a_503_and_corrupt_data_a_500() {
        let moved = || embedded_sqlite::SqliteError::Moved {
            path: "data/ledger.db".into(),
        };
        let status = |error: ApiError| error.status_code();
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(status(LedgerError::Storage(moved()).into()), unavailable);
        assert_eq!(
            status(VerificationError::Ledger(LedgerError::Storage(moved())).into()),
            unavailable
        );
        assert_eq!(
            status(VerificationError::Store(StoreError::Unavailable("away".into())).into()),
            unavailable
        );
        assert_eq!(
            status(ReadModelError::Unavailable("pool timed out".into()).into()),
            unavailable
        );
        let fault = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(status(LedgerError::Corrupt("bad row".into()).into()), fault);
        assert_eq!(
            status(ReadModelError::Corrupt("bad row".into()).into()),
            fault
        );
    }

    #[tokio::test]
    async fn an_unavailable_store_is_a_503_with_retry_after() {
        let (status, retry_after, body) =
            answered(StoreError::Unavailable("pool timed out".into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, Some(RETRY_AFTER_SECONDS.to_string()));
        assert!(body.contains("event store is unavailable"), "{body}");
        assert!(!body.contains("pool timed out"), "no cause shown: {body}");
    }

    /// h97 F5: a damaged event log answered 503 telling the client to retry.
    #[tokio::test]
    async fn a_damaged_event_log_is_a_503_for_an_operator_without_retry_after() {
        let damage = || {
            StoreError::Damaged(embedded_sqlite::SqliteError::Damaged {
                path: "data/events.db".into(),
                detail: "database disk image is malformed".into(),
            })
        };
        let (status, retry_after, body) = answered(damage()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, None, "no wait mends it");
        assert!(
            body.contains("event store's file (events.db) is damaged"),
            "{body}"
        );
        assert!(body.contains("operator"), "{body}");
        assert!(!body.to_lowercase().contains("retry"), "{body}");
        assert!(!body.contains("malformed"), "no cause shown: {body}");
        // The same through an append and a ledger verification.
        let appended = ApiError::from(ServiceError::Store(damage()));
        assert!(matches!(appended, ApiError::NeedsOperator(_)), "{appended}");
        let verified = ApiError::from(VerificationError::Store(damage()));
        assert!(matches!(verified, ApiError::NeedsOperator(_)), "{verified}");
    }

    /// h134: a wallet's stream that does not hold together (an edited
    /// event's type or balance) answered 500; no retry mends it either.
    #[tokio::test]
    async fn a_broken_stream_is_a_503_for_an_operator() {
        let (status, retry_after, body) = answered(StoreError::BrokenStream {
            wallet_id: wallet_domain::WalletId::parse("w").expect("id"),
            version: 2,
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after, None, "no wait mends it");
        assert!(body.contains("does not hold together"), "{body}");
        assert!(body.contains("operator"), "{body}");
    }

    /// A damaged transfer journal is not "outcome unknown, retry": no retry
    /// passes until it is repaired.
    #[tokio::test]
    async fn a_damaged_transfer_journal_is_a_503_for_an_operator() {
        let damaged = ServiceError::Transfer(ProcessError::Journal(JournalError::Damaged(
            "transfers.db is damaged".into(),
        )));
        let answer = ApiError::from(damaged);
        assert!(matches!(answer, ApiError::NeedsOperator(_)), "{answer}");
        let response = answer.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(RETRY_AFTER).is_none());
        assert!(answer
            .to_string()
            .contains("transfer journal's file is damaged"));
    }

    #[tokio::test]
    async fn an_event_of_a_newer_build_is_a_503_not_a_500() {
        for source in [
            EventDecodeError::UnsupportedSchemaVersion(2),
            EventDecodeError::UnknownType("WalletRenamed".into()),
        ] {
            let (status, retry_after, body) = answered(StoreError::Corrupt {
                position: 7,
                source,
            })
            .await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry_after, Some(RETRY_AFTER_SECONDS.to_string()));
            assert!(body.contains("newer version"), "{body}");
        }
        let (status, _, _) = answered(StoreError::Corrupt {
            position: 7,
            source: EventDecodeError::MissingField {
                event_type: "WalletCredited".into(),
                field: "amount",
            },
        })
        .await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "corruption stays a 500"
        );
    }
}
