//! The one place where errors become HTTP responses.
//!
//! Every error body has the seed's shape `{statusCode, message, error}`.
//! Client errors say what is wrong; server errors log their cause and show
//! the client nothing internal.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use search_index::SearchIndexError;
use serde::Serialize;
use utoipa::ToSchema;
use wallet_domain::{DomainError, ValidationError};

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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
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
                DomainError::WalletAlreadyExists(_)
                | DomainError::WalletFrozen(_)
                | DomainError::WalletNotFrozen(_)
                | DomainError::WalletClosed(_)
                | DomainError::WalletNotEmpty { .. }
                | DomainError::OverdraftLimitInUse { .. } => ApiError::Conflict(message),
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
        HttpResponse::build(status).json(ErrorBody {
            status_code: status.as_u16(),
            message,
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
        })
    }
}
