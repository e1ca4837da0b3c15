//! Hold endpoints: a hold is placed on a wallet, then captured, voided and
//! read by its id alone; the event store's hold directory finds its wallet.
//! Another owner's hold answers exactly as an unknown one (404).

use std::future::Future;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use event_store::HoldPageQuery;
use identity::{authorize, Action, Refusal};
use search_index::Page;
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;
use uuid::Uuid;
use wallet_domain::{HoldId, HoldStatus, WalletId};

use super::auth::{authorize_on_wallet, Caller};
use super::dto::EmptyRequest;
use super::error::{ApiError, ErrorBody};
use super::hold_dto::{CaptureHoldRequest, HoldResponse, PlaceHoldRequest, WalletHoldsResponse};
use super::path;
use super::query::{self, Kind, QueryError, Spec};
use super::transactions;
use super::wallets::{
    authorize_command_on_wallet, json_body, optional_json_body, run, target_of_command,
};
use crate::startup::AppState;
use crate::wallets::WalletOperation;

/// The names `status` accepts.
const HOLD_STATUSES: [&str; 4] = [
    HoldStatus::Pending.as_str(),
    HoldStatus::Captured.as_str(),
    HoldStatus::Voided.as_str(),
    HoldStatus::Expired.as_str(),
];

fn hold_not_found(hold_id: &HoldId) -> ApiError {
    ApiError::NotFound(format!("Hold {hold_id} not found"))
}

/// The id of a hold placed without one: a new UUID (v7), with or without an
/// `Idempotency-Key`. A retry with the key replays the stored answer (the
/// key is stored with the events; its fingerprint leaves a generated id
/// out), so it needs no id derived from the key; and a key free again
/// after the retention (see `retention`) places a new hold, where a derived
/// id would stay taken for good.
fn generated_hold_id() -> Result<HoldId, ApiError> {
    Ok(HoldId::parse(&Uuid::now_v7().to_string())?)
}

/// The wallet of a hold `caller` may do `action` on: 403 when its scopes
/// allow it on no wallet, 404 for an unknown hold and for another owner's.
async fn hold_wallet(
    state: &AppState,
    caller: &Caller,
    hold_id: &HoldId,
    action: fn(Option<&str>) -> Action<'_>,
) -> Result<WalletId, ApiError> {
    if let Err(Refusal::Forbidden(message)) = authorize(&caller.0, action(None)) {
        return Err(ApiError::Forbidden(message.to_owned()));
    }
    let wallet_id = state
        .wallets
        .hold_wallet(hold_id)
        .await?
        .ok_or_else(|| hold_not_found(hold_id))?;
    authorize_on_wallet(state, caller, &wallet_id, action)
        .await
        .map_err(|error| match error {
            ApiError::NotFound(_) => hold_not_found(hold_id),
            other => other,
        })?;
    Ok(wallet_id)
}

/// Placing, capturing or voiding a hold of `owner_id`'s wallet.
fn hold_action(owner_id: Option<&str>) -> Action<'_> {
    Action::Hold { owner_id }
}

/// The hold's wallet and the request's body, checked in the order the wallet
/// endpoints check theirs: the body first when what the caller may do does not
/// depend on the owner (a malformed body is 400 even on an unknown hold, as it
/// is on an unknown wallet), the hold first when it does (another owner's
/// hold answers 404 whatever the body, so holds cannot be probed). A 404 is
/// judged by [`target_of_command`]: a reused `Idempotency-Key` is 422.
async fn hold_wallet_and_body<T>(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    hold_id: &HoldId,
    body: impl Future<Output = Result<T, ApiError>>,
) -> Result<(WalletId, T), ApiError> {
    let wallet = || async {
        let found = hold_wallet(state, caller, hold_id, hold_action).await;
        target_of_command(state, request, found).await
    };
    if authorize(&caller.0, hold_action(None)).is_ok() {
        let body = body.await?;
        Ok((wallet().await?, body))
    } else {
        let wallet_id = wallet().await?;
        Ok((wallet_id, body.await?))
    }
}

/// Reserve money on a wallet until the hold is captured, voided or expires.
#[utoipa::path(
    post, path = "/wallets/{walletId}/holds", tag = "holds",
    request_body = PlaceHoldRequest,
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Placed: the hold, PENDING", body = HoldResponse),
        (status = 400, description = "Invalid input (the message names the field), expiresAt not in the future, or insufficient available funds", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "holdId already used, the wallet has 1000 pending holds already (the most a wallet may have), wallet frozen or closed, or the wallet changed too often while this request ran", body = ErrorBody),
    )
)]
pub async fn place_hold(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_command_on_wallet(&state, &request, &caller, &wallet_id, hold_action).await?;
    let body = json_body(&request, payload, PlaceHoldRequest::FIELDS).await?;
    let PlaceHoldRequest {
        amount,
        hold_id,
        expires_at,
        description,
    } = PlaceHoldRequest::parse(&body)?;
    let generated_id = hold_id.is_none();
    let hold_id = match hold_id {
        Some(hold_id) => hold_id,
        None => generated_hold_id()?,
    };
    let operation = WalletOperation::PlaceHold {
        wallet_id,
        hold_id,
        generated_id,
        amount,
        expires_at,
        description,
    };
    run(&state, &request, &caller, operation).await
}

/// Take some or all of a pending hold: out of its wallet, or to another
/// wallet (all or nothing); the rest is released.
#[utoipa::path(
    post, path = "/holds/{holdId}/capture", tag = "holds",
    request_body = Option<CaptureHoldRequest>,
    params(("holdId" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")),
    responses(
        (status = 201, description = "Captured: the hold, CAPTURED", body = HoldResponse),
        (status = 400, description = "Invalid input (the message names the field; a malformed body is refused before the hold is looked up, as on the wallet endpoints), a holdId that is not UTF-8, more than the held amount, or toWalletId the hold's own wallet", body = ErrorBody),
        (status = 404, description = "Hold not found, or toWalletId not found", body = ErrorBody),
        (status = 409, description = "Hold not PENDING (captured, voided or expired), the hold's wallet frozen, either wallet closed (a frozen toWalletId receives), or a wallet changed too often while this request ran", body = ErrorBody),
    )
)]
pub async fn capture_hold(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hold_id = path::hold_id(&path)?;
    let body = async {
        let body = optional_json_body(&request, payload, CaptureHoldRequest::FIELDS).await?;
        CaptureHoldRequest::parse(&body)
    };
    let (
        wallet_id,
        CaptureHoldRequest {
            amount,
            to_wallet_id,
            description,
        },
    ) = hold_wallet_and_body(&state, &request, &caller, &hold_id, body).await?;
    let operation = WalletOperation::CaptureHold {
        wallet_id,
        hold_id,
        amount,
        to_wallet_id,
        description,
    };
    run(&state, &request, &caller, operation).await
}

/// Release a pending hold: its money is available again.
#[utoipa::path(
    post, path = "/holds/{holdId}/void", tag = "holds",
    request_body(content = Option<EmptyRequest>, description = "None (or only white space, a byte-order mark allowed before it), null or {}"),
    params(("holdId" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")),
    responses(
        (status = 201, description = "Voided: the hold, VOIDED", body = HoldResponse),
        (status = 400, description = "Invalid input: a body that is not empty (white space only), null or {}, or a bad Idempotency-Key", body = ErrorBody),
        (status = 404, description = "Hold not found", body = ErrorBody),
        (status = 409, description = "Hold not PENDING (captured, voided or expired), wallet closed, or the wallet changed too often while this request ran", body = ErrorBody),
    )
)]
pub async fn void_hold(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hold_id = path::hold_id(&path)?;
    let body = optional_json_body(&request, payload, &[]);
    let (wallet_id, _) = hold_wallet_and_body(&state, &request, &caller, &hold_id, body).await?;
    run(
        &state,
        &request,
        &caller,
        WalletOperation::VoidHold { wallet_id, hold_id },
    )
    .await
}

/// One hold, as it stands now (read from its wallet's newest snapshot on,
/// or its whole stream for a hold settled before that snapshot).
#[utoipa::path(
    get, path = "/holds/{holdId}", tag = "holds",
    params(("holdId" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")),
    responses(
        (status = 200, description = "The hold", body = HoldResponse),
        (status = 400, description = "Not a hold id: the message says what is accepted", body = ErrorBody),
        (status = 404, description = "Hold not found", body = ErrorBody),
    )
)]
pub async fn get_hold(
    caller: Caller,
    path: path::Parameter,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let hold_id = path::hold_id(&path)?;
    let wallet_id = hold_wallet(&state, &caller, &hold_id, |owner_id| Action::ReadWallet {
        owner_id,
    })
    .await?;
    let hold = state
        .wallets
        .hold(&wallet_id, &hold_id, Utc::now())
        .await?
        .ok_or_else(|| hold_not_found(&hold_id))?;
    Ok(HttpResponse::Ok().json(HoldResponse::from(&hold)))
}

/// The filter and the page of a wallet's holds, as text: the page by the
/// transaction history's `limit` and `offset`, with its limits.
#[derive(Debug, Deserialize)]
pub struct HoldListParams {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

const HOLD_LIST_PARAMS: [Spec; 3] = [
    Spec {
        name: "status",
        description: "Only holds in this status (as they stand now).",
        kind: Kind::OneOf(&HOLD_STATUSES),
    },
    Spec {
        description: "Holds per page, 1 to 500 (default 50, or fewer where `offset` is past 9950: what is left of the first 10000).",
        ..transactions::LIMIT
    },
    Spec {
        description: "Holds to skip, oldest first (`offset + limit` at most 10000; without `limit`, the page ends at the 10000th).",
        ..transactions::OFFSET
    },
];

impl IntoParams for HoldListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&HOLD_LIST_PARAMS)
    }
}

impl HoldListParams {
    fn status(&self) -> Result<Option<HoldStatus>, QueryError> {
        query::one_of("status", &self.status, &HOLD_STATUSES)
    }

    fn page(&self) -> Result<Page, ApiError> {
        let (limit, offset) = transactions::page(&self.limit, &self.offset)?;
        Ok(Page::parse(limit, offset)?)
    }
}

/// A wallet's holds, oldest first, as they stand now, one page of them;
/// `count` is how many match the filter. `status=PENDING` is read from the
/// wallet's state, any other from the hold directory and the listed holds'
/// own events ([`crate::wallets::WalletService::holds_listed`]): neither
/// grows with the wallet's history.
#[utoipa::path(
    get, path = "/wallets/{walletId}/holds", tag = "holds",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$"), HoldListParams),
    responses(
        (status = 200, description = "{walletId, count, holds}: count is every hold matching the filter, holds one page of them (limit default 50), oldest first (by createdAt, then by holdId among holds placed in one millisecond)", body = WalletHoldsResponse),
        (status = 400, description = "Invalid walletId, status, limit or offset (offset + limit at most 10000), or a walletId that is not UTF-8", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
    )
)]
pub async fn wallet_holds(
    caller: Caller,
    path: path::Parameter,
    params: web::Query<HoldListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    let status = params.status()?;
    let page = params.page()?;
    authorize_on_wallet(&state, &caller, &wallet_id, |owner_id| Action::ReadWallet {
        owner_id,
    })
    .await?;
    let query = HoldPageQuery {
        status,
        clock: Utc::now(),
        offset: u64::try_from(page.offset).unwrap_or(u64::MAX),
        limit: u64::try_from(page.limit).unwrap_or(u64::MAX),
    };
    let (count, holds) = state
        .wallets
        .holds_listed(&wallet_id, &query)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Wallet {wallet_id} not found")))?;
    Ok(HttpResponse::Ok().json(WalletHoldsResponse {
        wallet_id: wallet_id.to_string(),
        count: usize::try_from(count).unwrap_or(usize::MAX),
        holds: holds.iter().map(HoldResponse::from).collect(),
    }))
}
