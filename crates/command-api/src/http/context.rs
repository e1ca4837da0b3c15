//! Per-request context: the correlation id and the idempotency claim.

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest};
use futures::future::LocalBoxFuture;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::auth::{principal_of, scoped_idempotency_key};
use super::error::ApiError;
use crate::wallets::{IdempotencyClaim, RequestContext, WalletOperation};

pub const CORRELATION_HEADER: &str = "x-correlation-id";
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longest correlation id or idempotency key accepted.
pub const HEADER_TOKEN_LENGTH_MAX: usize = 255;

#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= HEADER_TOKEN_LENGTH_MAX
        && value.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Middleware: takes the caller's `X-Correlation-Id` (or makes one), keeps it
/// for the handler and returns it on the response. One that is not 1 to
/// [`HEADER_TOKEN_LENGTH_MAX`] visible ASCII characters is a 400: it would be
/// stored in every event of the request.
pub fn correlate<S>(
    request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    let header = single_header(request.request(), CORRELATION_HEADER).map(|value| {
        value.map(|value| {
            value
                .to_str()
                .ok()
                .filter(|value| is_token(value))
                .map(str::to_owned)
        })
    });
    let correlation_id = match header {
        Ok(None) => Uuid::new_v4().to_string(),
        Ok(Some(Some(value))) => value,
        Ok(Some(None)) => {
            let refusal = ApiError::BadRequest(format!(
                "X-Correlation-Id must be 1 to {HEADER_TOKEN_LENGTH_MAX} visible ASCII characters (no spaces or control characters)"
            ));
            return Box::pin(async move { Ok(request.error_response(refusal)) });
        }
        Err(refusal) => return Box::pin(async move { Ok(request.error_response(refusal)) }),
    };
    request
        .extensions_mut()
        .insert(CorrelationId(correlation_id.clone()));
    let response = service.call(request);
    Box::pin(async move {
        let mut response = response.await?;
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(CORRELATION_HEADER), value);
        }
        Ok(response)
    })
}

/// The one value of header `name`, `None` when absent; a header sent more
/// than once is ambiguous (which key or id was meant?) and refused (400).
fn single_header<'r>(
    request: &'r HttpRequest,
    name: &str,
) -> Result<Option<&'r HeaderValue>, ApiError> {
    let mut values = request.headers().get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!(
            "{} must be sent once, not several times",
            documented_name(name)
        )));
    }
    Ok(first)
}

/// A header's name as the API documents it.
fn documented_name(name: &str) -> &str {
    match name {
        IDEMPOTENCY_HEADER => "Idempotency-Key",
        CORRELATION_HEADER => "X-Correlation-Id",
        other => other,
    }
}

/// The context a command runs in. The idempotency fingerprint is a digest of
/// the parsed operation ([`WalletOperation::canonical`]), not of the request's
/// text; keys are one namespace across every path.
pub fn request_context(
    request: &HttpRequest,
    operation: &WalletOperation,
) -> Result<RequestContext, ApiError> {
    context_of(request, &operation.canonical())
}

/// The canonical text of a command that cannot be decided, its wallet or
/// hold being unknown to its caller: no operation's canonical text (each
/// begins with its name and an id), so its fingerprint is no kept answer's.
const UNDECIDED_COMMAND: &str = "undecided";

/// The context of a command that cannot be decided, its wallet or hold being
/// unknown to its caller, for the check of its `Idempotency-Key` alone
/// ([`crate::wallets::WalletService::refuse_reused_key`]).
pub fn undecided_context(request: &HttpRequest) -> Result<RequestContext, ApiError> {
    context_of(request, UNDECIDED_COMMAND)
}

/// The context of a command whose canonical text is `canonical`.
fn context_of(request: &HttpRequest, canonical: &str) -> Result<RequestContext, ApiError> {
    let correlation_id = request
        .extensions()
        .get::<CorrelationId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let idempotency = match single_header(request, IDEMPOTENCY_HEADER)? {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|key| is_token(key))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "Idempotency-Key must be 1 to {HEADER_TOKEN_LENGTH_MAX} visible ASCII characters (no spaces or control characters)"
                    ))
                })?;
            let fingerprint = hex::encode(Sha256::digest(canonical));
            Some(IdempotencyClaim {
                key: scoped_idempotency_key(request, key),
                fingerprint,
            })
        }
    };
    Ok(RequestContext {
        principal: principal_of(request)
            .and_then(|principal| principal.subject().map(str::to_owned)),
        correlation_id,
        request_id: Uuid::new_v4(),
        idempotency,
    })
}
