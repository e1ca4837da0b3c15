//! Authentication and authorization of a request: the [`Caller`] extractor
//! (401 and 429 before the handler runs) and the checks handlers make once
//! they know the wallet (403, or 404 for someone else's wallet).

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures::future::{ready, Ready};
use identity::{authorize, visibility, Action, Principal, Refusal, Scope, Visibility};
use wallet_domain::{DomainError, OwnerId, WalletId};

use super::error::ApiError;
use crate::startup::AppState;

/// The authenticated caller of a request; every protected handler takes one.
/// Extracting it also puts its [`Principal`] in the request's extensions, for
/// the request's context (events' metadata, idempotency keys).
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admit(request))
    }
}

pub(super) fn admit(request: &HttpRequest) -> Result<Caller, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("the application state is not registered".into()))?;
    let mut credentials = request.headers().get_all(AUTHORIZATION);
    let first = credentials.next();
    if credentials.next().is_some() {
        // Which one is the caller? A proxy that appends one must not decide.
        return Err(ApiError::BadRequest(
            "Authorization must be sent once, not several times".into(),
        ));
    }
    let principal = state.access.admit(first)?;
    request.extensions_mut().insert(principal.clone());
    Ok(Caller(principal))
}

/// The principal of a request, once [`Caller`] admitted it.
pub fn principal_of(request: &HttpRequest) -> Option<Principal> {
    request.extensions().get::<Principal>().cloned()
}

/// The idempotency key as stored: the same key from two principals is two
/// keys. A key holds no space (visible ASCII only), so `<sub> <key>` cannot
/// be another principal's. Unchanged when unauthenticated.
pub fn scoped_idempotency_key(request: &HttpRequest, key: &str) -> String {
    match principal_of(request).as_ref().and_then(Principal::subject) {
        Some(subject) => format!("{subject} {key}"),
        None => key.to_owned(),
    }
}

/// The answer to a refusal on `wallet_id`.
pub fn refused(refusal: Refusal, wallet_id: &WalletId) -> ApiError {
    match refusal {
        Refusal::Forbidden(message) => ApiError::Forbidden(message.to_owned()),
        // Exactly what an unknown wallet answers.
        Refusal::Concealed => {
            ApiError::NotFound(DomainError::WalletNotFound(wallet_id.clone()).to_string())
        }
    }
}

/// Refuses unless `caller` may do `action` on `wallet_id`. The wallet is
/// looked up for its owner only when the answer depends on it (the owner
/// never changes, so the answer stays true while the command runs): what the
/// rules allow or forbid on no wallet they allow or forbid on any.
pub async fn authorize_on_wallet(
    state: &AppState,
    caller: &Caller,
    wallet_id: &WalletId,
    action: fn(Option<&str>) -> Action<'_>,
) -> Result<(), ApiError> {
    match authorize(&caller.0, action(None)) {
        Ok(()) => return Ok(()),
        Err(Refusal::Forbidden(message)) => return Err(ApiError::Forbidden(message.to_owned())),
        Err(Refusal::Concealed) => {}
    }
    let wallet = state
        .wallets
        .current(wallet_id)
        .await
        .map_err(crate::wallets::ServiceError::from)?;
    let owner_id = wallet.as_ref().map(|wallet| wallet.owner_id.as_str());
    authorize(&caller.0, action(owner_id)).map_err(|refusal| refused(refusal, wallet_id))
}

/// Refuses unless `caller` may do `action`, which needs no wallet's owner.
pub fn authorize_call(caller: &Caller, action: Action<'_>) -> Result<(), ApiError> {
    authorize(&caller.0, action).map_err(ApiError::from)
}

// An end user's `sub` is its owner id: every owner id must be a `sub` a
// token may carry, or an owner could never call for its own wallets.
const _: () = assert!(wallet_domain::OWNER_ID_LENGTH_MAX <= identity::SUBJECT_LENGTH_MAX);

/// A list's or a search's owner filter, as the caller may see it.
pub enum OwnerFilter {
    /// Apply this filter (`None`: every owner).
    Apply(Option<OwnerId>),
    /// The caller asked for someone else's wallets: the answer is empty.
    Nothing,
}

/// The owner filter of a list or search by `caller` that asked for `requested`:
/// an admin's as asked, an end user's narrowed to its own wallets.
pub fn owner_filter(caller: &Caller, requested: Option<OwnerId>) -> Result<OwnerFilter, ApiError> {
    match visibility(&caller.0)? {
        Visibility::Everything => Ok(OwnerFilter::Apply(requested)),
        Visibility::Owner(subject) => {
            let Ok(own) = OwnerId::parse(subject) else {
                // A subject that is no valid owner id owns no wallet.
                return Ok(OwnerFilter::Nothing);
            };
            match requested {
                Some(requested) if requested != own => Ok(OwnerFilter::Nothing),
                _ => Ok(OwnerFilter::Apply(Some(own))),
            }
        }
    }
}

/// Whether `caller` may see who caused each event (the audit trail): admins only.
pub fn sees_principals(caller: &Caller) -> bool {
    caller.0.has(Scope::Admin)
}
