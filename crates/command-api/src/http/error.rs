//! The one place where errors become HTTP responses.
//!
//! Every error body has the seed's shape `{statusCode, message, error}`.
//! Client errors say what is wrong; server errors log their cause and show
//! the client nothing internal.

use actix_web::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use search_index::SearchIndexError;
use serde::Serialize;
use utoipa::ToSchema;
use wallet_domain::{DomainError, ValidationError};

use crate::access::AdmissionError;
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
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    /// 429 with `Retry-After`.
    #[error("Too many requests from this principal; retry in {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        match error {
            ServiceError::Domain(domain) => match domain {
                DomainError::WalletNotFound(_) => ApiError::NotFound(message),
                DomainError::WalletAlreadyExists(_) => ApiError::Conflict(message),
                DomainError::InsufficientFunds { .. }
                | DomainError::SameWalletTransfer(_)
                | DomainError::BalanceOverflow(_) => ApiError::BadRequest(message),
            },
            ServiceError::ConcurrencyConflict(_) => ApiError::Conflict(message),
            ServiceError::IdempotencyKeyReused(_) => ApiError::Unprocessable(message),
            ServiceError::LockTimedOut(_) => ApiError::Unavailable(message),
            ServiceError::Store(_)
            | ServiceError::Encoding(_)
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

impl From<SearchIndexError> for ApiError {
    fn from(error: SearchIndexError) -> Self {
        match error {
            // The port checks paging, ranges and text; its message names the field.
            SearchIndexError::InvalidQuery(message) => ApiError::BadRequest(message),
            // The search server is down or refuses (an index not created yet
            // included): the client may retry; what it said stays in the log.
            SearchIndexError::Unavailable(_) | SearchIndexError::Refused { .. } => {
                tracing::warn!(cause = %error, "search index unavailable");
                ApiError::Unavailable("Search index unavailable".into())
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
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            other => other.to_string(),
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
            _ => {}
        }
        response.json(ErrorBody {
            status_code: status.as_u16(),
            message,
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
        })
    }
}
