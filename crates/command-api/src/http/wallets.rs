//! Wallet endpoints.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use transfer_process::TransferReply;
use wallet_domain::{Amount, AsOf, Description, Wallet, WalletId};

use identity::Action;

use super::as_of::WalletAsOfParams;
use super::audit_trail::WalletReadResponse;
use super::auth::{authorize_call, authorize_on_wallet, refused, Caller};
use super::body::{read_body, JsonObject};
use super::context::{request_context, undecided_context};
use super::disclosure::{disclose, ReplyShape};
use super::dto::{
    render_hold, render_outcome, render_transfer, AmountRequest, CreateWalletRequest, EmptyRequest,
    OverdraftLimitRequest, TransferRequest, TransferResponse, WalletReply, WalletResponse,
};
use super::error::{ApiError, ErrorBody};
use super::path;
use crate::startup::AppState;
use crate::wallets::{RecentEvents, ReplyFormat, WalletOperation};

const CREATED: ReplyFormat = ReplyFormat {
    status: 201,
    render: render_outcome,
};

/// A transfer's reply when it runs as the transfer process: the same status
/// and body as [`CREATED`] gives a transfer (or the capture of a hold to
/// another wallet) on the atomic path.
pub const TRANSFER_REPLY: TransferReply = TransferReply {
    status: CREATED.status,
    render: render_transfer,
    render_capture: render_hold,
};

/// Runs the operation for `caller` and answers 201 with its body (a wallet,
/// a transfer's two wallets, or a hold), each wallet as the caller may see
/// it ([`disclosure`](super::disclosure)).
pub async fn run(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    operation: WalletOperation,
) -> Result<HttpResponse, ApiError> {
    let context = request_context(request, &operation)?;
    let shape = ReplyShape::of(&operation);
    let mut reply = state.wallets.execute(operation, context, CREATED).await?;
    if (200..300).contains(&reply.status) {
        reply.body = disclose(&caller.0, shape, reply.body)?;
    }
    let status = actix_web::http::StatusCode::from_u16(reply.status)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let mut response = HttpResponse::build(status);
    response.content_type(ContentType::json());
    if reply.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.body(reply.body))
}

/// What a command's lookup of its wallet or hold found. A 404 (none such, or
/// another owner's) is 422 instead when the request's `Idempotency-Key` was
/// used already: a reused key is refused whatever the target, as it is when
/// the rules refuse a command on an unknown wallet (h104 F5). The answer
/// depends on the caller's own keys only, so it tells nothing of the target.
pub async fn target_of_command<T>(
    state: &AppState,
    request: &HttpRequest,
    found: Result<T, ApiError>,
) -> Result<T, ApiError> {
    match found {
        Err(refusal @ ApiError::NotFound(_)) => {
            let context = undecided_context(request)?;
            state.wallets.refuse_reused_key(&context).await?;
            Err(refusal)
        }
        found => found,
    }
}

/// Refuses unless `caller` may run a command doing `action` on `wallet_id`
/// ([`authorize_on_wallet`], its 404 judged by [`target_of_command`]).
pub async fn authorize_command_on_wallet(
    state: &AppState,
    request: &HttpRequest,
    caller: &Caller,
    wallet_id: &WalletId,
    action: fn(Option<&str>) -> Action<'_>,
) -> Result<(), ApiError> {
    let authorized = authorize_on_wallet(state, caller, wallet_id, action).await;
    target_of_command(state, request, authorized).await
}

pub async fn json_body(
    request: &HttpRequest,
    payload: web::Payload,
    fields: &[&str],
) -> Result<JsonObject, ApiError> {
    let bytes = read_body(request, payload).await?;
    JsonObject::parse(&bytes, fields)
}

/// The body of an operation whose every field is optional: no body, only
/// whitespace, or `null` reads as `{}`.
pub async fn optional_json_body(
    request: &HttpRequest,
    payload: web::Payload,
    fields: &[&str],
) -> Result<JsonObject, ApiError> {
    let bytes = read_body(request, payload).await?;
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return JsonObject::parse(b"{}", fields);
    }
    JsonObject::parse(&bytes, fields)
}

/// Create a wallet.
#[utoipa::path(
    post, path = "/wallets", tag = "wallets",
    request_body = CreateWalletRequest,
    responses(
        (status = 201, description = "Created: the wallet, or its id alone when the caller may not read it (a `deposits` principal creating it for an owner)", body = WalletReply),
        (status = 400, description = "Invalid input: the message names the field", body = ErrorBody),
        (status = 409, description = "Wallet already exists: \"Wallet {id} already exists\" when it is ownerId's, \"Wallet {id} already exists under another owner than {ownerId}: choose another walletId\" when not", body = ErrorBody),
    )
)]
pub async fn create_wallet(
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&request, payload, CreateWalletRequest::FIELDS).await?;
    let CreateWalletRequest {
        wallet_id,
        owner_id,
        initial_balance,
        overdraft_limit,
    } = CreateWalletRequest::parse(&body)?;
    authorize_call(
        &caller,
        Action::CreateWallet {
            owner_id: owner_id.as_str(),
            opening_balance: initial_balance.value() > rust_decimal::Decimal::ZERO,
            overdraft: overdraft_limit.value() > rust_decimal::Decimal::ZERO,
        },
    )?;
    let operation = WalletOperation::Create {
        wallet_id,
        owner_id,
        initial_balance,
        overdraft_limit,
    };
    run(&state, &request, &caller, operation).await
}

/// A credit or a debit: the wallet in the path, the amount in the body.
async fn amount_operation(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
    action: fn(Option<&str>) -> Action<'_>,
    operation: fn(WalletId, Amount, Option<Description>) -> WalletOperation,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_command_on_wallet(&state, &request, &caller, &wallet_id, action).await?;
    let body = json_body(&request, payload, AmountRequest::FIELDS).await?;
    let AmountRequest {
        amount,
        description,
    } = AmountRequest::parse(&body)?;
    run(
        &state,
        &request,
        &caller,
        operation(wallet_id, amount, description),
    )
    .await
}

/// Add funds to a wallet.
#[utoipa::path(
    post, path = "/wallets/{walletId}/credit", tag = "wallets",
    request_body = AmountRequest,
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Credited: the wallet, or its id alone when the caller may not read it (a `deposits` principal)", body = WalletReply),
        (status = 400, description = "Invalid input: the message names the field", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Wallet closed, or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn credit_wallet(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    amount_operation(
        caller,
        request,
        path,
        payload,
        state,
        |_| Action::Credit,
        |wallet_id, amount, description| WalletOperation::Credit {
            wallet_id,
            amount,
            description,
        },
    )
    .await
}

/// Withdraw funds from a wallet.
#[utoipa::path(
    post, path = "/wallets/{walletId}/debit", tag = "wallets",
    request_body = AmountRequest,
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Debited", body = WalletResponse),
        (status = 400, description = "Invalid input or insufficient funds", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Wallet frozen or closed, or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn debit_wallet(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    amount_operation(
        caller,
        request,
        path,
        payload,
        state,
        |owner_id| Action::MoveOut { owner_id },
        |wallet_id, amount, description| WalletOperation::Debit {
            wallet_id,
            amount,
            description,
        },
    )
    .await
}

/// Move funds from one wallet to another, all or nothing.
#[utoipa::path(
    post, path = "/wallets/{fromWalletId}/transfer", tag = "wallets",
    request_body = TransferRequest,
    params(("fromWalletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Transferred", body = TransferResponse),
        (status = 400, description = "Invalid input, insufficient funds or the same wallet twice", body = ErrorBody),
        (status = 404, description = "Either wallet not found", body = ErrorBody),
        (status = 409, description = "Payer frozen, either wallet closed, or a wallet changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn transfer(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let from_wallet_id = path::wallet_id_named("fromWalletId", &path)?;
    authorize_command_on_wallet(&state, &request, &caller, &from_wallet_id, |owner_id| {
        Action::MoveOut { owner_id }
    })
    .await?;
    let body = json_body(&request, payload, TransferRequest::FIELDS).await?;
    let TransferRequest {
        to_wallet_id,
        amount,
        description,
    } = TransferRequest::parse(&body)?;
    let operation = WalletOperation::Transfer {
        from_wallet_id,
        to_wallet_id,
        amount,
        description,
    };
    run(&state, &request, &caller, operation).await
}

/// Set how far below zero a wallet's balance may go.
#[utoipa::path(
    put, path = "/wallets/{walletId}/overdraft-limit", tag = "wallets",
    request_body = OverdraftLimitRequest,
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Limit set; the wallet as it is, with no new event or version, when it already had this limit and the request carries no Idempotency-Key (a keyed answer is kept with an event)", body = WalletResponse),
        (status = 400, description = "Invalid limit", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Limit below the overdraft in use, wallet closed, or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn set_overdraft_limit(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_call(&caller, Action::Control)?;
    let body = json_body(&request, payload, OverdraftLimitRequest::FIELDS).await?;
    let OverdraftLimitRequest { overdraft_limit } = OverdraftLimitRequest::parse(&body)?;
    let operation = WalletOperation::SetOverdraftLimit {
        wallet_id,
        overdraft_limit,
    };
    run(&state, &request, &caller, operation).await
}

/// A change of status: the wallet in the path, no body (or `{}`).
async fn status_operation(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
    action: fn(Option<&str>) -> Action<'_>,
    operation: fn(WalletId) -> WalletOperation,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_command_on_wallet(&state, &request, &caller, &wallet_id, action).await?;
    optional_json_body(&request, payload, &[]).await?;
    run(&state, &request, &caller, operation(wallet_id)).await
}

/// Freeze a wallet: it refuses debits and transfers out, still receives.
#[utoipa::path(
    post, path = "/wallets/{walletId}/freeze", tag = "wallets",
    request_body(content = Option<EmptyRequest>, description = "None (or only white space, a byte-order mark allowed before it), null or {}"),
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Frozen", body = WalletResponse),
        (status = 400, description = "Invalid input: a body that is not empty (white space only), null or {}, or a bad Idempotency-Key", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Already frozen, wallet closed, or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn freeze_wallet(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    status_operation(
        caller,
        request,
        path,
        payload,
        state,
        |_| Action::Control,
        |wallet_id| WalletOperation::Freeze { wallet_id },
    )
    .await
}

/// Unfreeze a frozen wallet.
#[utoipa::path(
    post, path = "/wallets/{walletId}/unfreeze", tag = "wallets",
    request_body(content = Option<EmptyRequest>, description = "None (or only white space, a byte-order mark allowed before it), null or {}"),
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Active again", body = WalletResponse),
        (status = 400, description = "Invalid input: a body that is not empty (white space only), null or {}, or a bad Idempotency-Key", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Not frozen, wallet closed, or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn unfreeze_wallet(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    status_operation(
        caller,
        request,
        path,
        payload,
        state,
        |_| Action::Control,
        |wallet_id| WalletOperation::Unfreeze { wallet_id },
    )
    .await
}

/// Close a wallet for good: only at balance 0.00; it stays readable.
#[utoipa::path(
    post, path = "/wallets/{walletId}/close", tag = "wallets",
    request_body(content = Option<EmptyRequest>, description = "None (or only white space, a byte-order mark allowed before it), null or {}"),
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 201, description = "Closed", body = WalletResponse),
        (status = 400, description = "Invalid input: a body that is not empty (white space only), null or {}, or a bad Idempotency-Key", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 409, description = "Balance not 0.00, a pending hold, frozen (unfreeze first), already closed, a transfer out of it not finished yet (the transfer process), or it changed too often while this request ran (retry it)", body = ErrorBody),
    )
)]
pub async fn close_wallet(
    caller: Caller,
    request: HttpRequest,
    path: path::Parameter,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    status_operation(
        caller,
        request,
        path,
        payload,
        state,
        |owner_id| Action::Close { owner_id },
        |wallet_id| WalletOperation::Close { wallet_id },
    )
    .await
}

/// One wallet, with every acknowledged write applied (read from the event
/// store); with `at` or `version`, as it stood then.
#[utoipa::path(
    get, path = "/wallets/{walletId}", tag = "wallets",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$"), WalletAsOfParams),
    responses(
        (status = 200, description = "The wallet, with its audit trail (the seed's `auditTrail`)", body = WalletReadResponse),
        (status = 400, description = "Invalid at or version", body = ErrorBody),
        (status = 404, description = "Wallet not found, not yet created then, or without that version", body = ErrorBody),
    )
)]
pub async fn get_wallet(
    caller: Caller,
    path: path::Parameter,
    params: web::Query<WalletAsOfParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    if let Some(as_of) = params.as_of()? {
        authorize_on_wallet(&state, &caller, &wallet_id, |owner_id| Action::ReadWallet {
            owner_id,
        })
        .await?;
        return wallet_as_of(&state, &wallet_id, as_of).await;
    }
    let read = state
        .wallets
        .current_with_recent(&wallet_id)
        .await
        .map_err(ApiError::from)?;
    let owner_id = read.as_ref().map(|(wallet, _)| wallet.owner_id.as_str());
    identity::authorize(&caller.0, Action::ReadWallet { owner_id })
        .map_err(|refusal| refused(refusal, &wallet_id))?;
    let (wallet, recent) =
        read.ok_or_else(|| ApiError::NotFound(format!("Wallet {wallet_id} not found")))?;
    // A hold past its expiry is not held, stored `HoldExpired` or not.
    let shown = wallet.seen_at(chrono::Utc::now());
    with_audit_trail(&state, &shown, &recent).await
}

/// The 200 of a wallet read: `shown` with the audit trail of its events,
/// from `recent` when it holds them.
async fn with_audit_trail(
    state: &AppState,
    shown: &Wallet,
    recent: &RecentEvents,
) -> Result<HttpResponse, ApiError> {
    let body = WalletReadResponse::read(state.wallets.store(), shown, recent).await?;
    Ok(HttpResponse::Ok().json(body))
}

/// The answer about a wallet at a moment before it existed (404).
pub fn not_yet_created(wallet_id: &WalletId, at: chrono::DateTime<chrono::Utc>) -> ApiError {
    ApiError::NotFound(format!(
        "Wallet {wallet_id} did not exist at {}",
        instant_as_asked(at)
    ))
}

/// `at` in UTC with every digit of its fraction that is not a trailing
/// zero: the instant a query asked about, neither rounded nor padded.
fn instant_as_asked(at: chrono::DateTime<chrono::Utc>) -> String {
    let text = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let seconds = text.trim_end_matches('Z').trim_end_matches('0');
    format!("{}Z", seconds.trim_end_matches('.'))
}

/// The wallet as it stood at `as_of`: 404 before its creation or past its last version.
async fn wallet_as_of(
    state: &AppState,
    wallet_id: &WalletId,
    as_of: AsOf,
) -> Result<HttpResponse, ApiError> {
    let wallet = state
        .wallets
        .as_of(wallet_id, as_of)
        .await
        .map_err(ApiError::from)?;
    match (wallet, as_of) {
        (None, AsOf::Time(at)) => Err(not_yet_created(wallet_id, at)),
        (None, AsOf::Version(_)) => {
            Err(ApiError::NotFound(format!("Wallet {wallet_id} not found")))
        }
        (Some(wallet), AsOf::Version(version)) if wallet.version < version => {
            Err(ApiError::NotFound(format!(
                "Wallet {wallet_id} has no version {version}: it is at version {}",
                wallet.version
            )))
        }
        (Some(wallet), AsOf::Time(at)) => {
            // A moment to come reads as now: what will expire by then has
            // not yet, and may be captured or voided first.
            let seen = at.min(chrono::Utc::now());
            with_audit_trail(state, &wallet.seen_at(seen), &RecentEvents::default()).await
        }
        (Some(wallet), AsOf::Version(_)) => {
            with_audit_trail(state, &wallet, &RecentEvents::default()).await
        }
    }
}
