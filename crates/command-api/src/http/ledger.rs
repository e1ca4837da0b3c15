//! The ledger API, served from the double-entry ledger's tables.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use ledger::{EntryFilter, LedgerEntry, TransactionsQuery, WalletEntriesQuery, WalletSummary};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use utoipa::ToSchema;
use wallet_domain::WalletId;

use identity::Action;

use super::auth::{authorize_call, authorize_on_wallet, Caller};
use super::dto::money_schema;
use super::error::{ApiError, ErrorBody};
use crate::startup::AppState;

/// Wallets compared one by one with the event store in a verification, at most.
pub const VERIFY_WALLETS_MAX: usize = 100_000;
/// How long a ledger read waits for the ledger to reach the acknowledged writes.
pub const LEDGER_CATCH_UP_WAIT_MS: u64 = 2_000;

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

fn wallet_id(raw: &str) -> Result<WalletId, ApiError> {
    WalletId::parse(raw).map_err(|_| ApiError::NotFound(format!("Wallet {raw} not found")))
}

fn read_wallet(owner_id: Option<&str>) -> Action<'_> {
    Action::ReadWallet { owner_id }
}

/// Waits (bounded) until an in-process projection has reached every write
/// acknowledged so far; projections in other processes are not waited for.
pub async fn catch_up(
    state: &AppState,
    progress: &Option<watch::Receiver<u64>>,
    wait_ms: u64,
) -> bool {
    let Some(progress) = progress else {
        return true;
    };
    let head = *state.wallets.store().appended().borrow();
    let mut progress = progress.clone();
    let reached = tokio::time::timeout(
        Duration::from_millis(wait_ms),
        progress.wait_for(|position| *position >= head),
    )
    .await;
    matches!(reached, Ok(Ok(_)))
}

/// Entries on one wallet's account.
#[utoipa::path(get, path = "/ledger/wallet/{walletId}", tag = "ledger",
    params(("walletId" = String, Path), ("transactionType" = Option<String>, Query), ("startDate" = Option<String>, Query),
           ("endDate" = Option<String>, Query), ("limit" = Option<u32>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, description = "{walletId, count, transactions}, newest first"),
              (status = 400, description = "Invalid filter or paging: the message names the parameter", body = ErrorBody),
              (status = 404, description = "Not a wallet id", body = ErrorBody)))]
pub async fn wallet_entries(
    caller: Caller,
    path: web::Path<String>,
    filter: web::Query<EntryFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet_id(&path)?;
    authorize_on_wallet(&state, &caller, &wallet_id, read_wallet).await?;
    catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let entries = state
        .ledger
        .wallet_entries(WalletEntriesQuery {
            wallet_id: wallet_id.clone(),
            filter: filter.into_inner(),
        })
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "walletId": wallet_id.as_str(),
        "count": entries.len(),
        "transactions": entries,
    })))
}

/// `GET /ledger/wallet/{walletId}/summary`: the seed's fields (`walletId`,
/// `totalCredits`, `totalDebits`, `transactionCount`, `lastTransaction`) and
/// the ledger balance; amounts at the money scale.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletSummaryResponse {
    #[schema(example = "wallet-123")]
    wallet_id: String,
    /// The sum of the credits to the wallet's account.
    #[serde(with = "ledger::money_json")]
    #[schema(schema_with = money_schema)]
    total_credits: Decimal,
    /// The sum of the debits from it, as a positive number.
    #[serde(with = "ledger::money_json")]
    #[schema(schema_with = money_schema)]
    total_debits: Decimal,
    /// `totalCredits - totalDebits`.
    #[serde(with = "ledger::money_json")]
    #[schema(schema_with = money_schema)]
    balance: Decimal,
    /// Transactions that moved the wallet's account (one entry each).
    #[schema(example = 3)]
    transaction_count: u64,
    /// The same count, under the name earlier versions of this API used.
    #[schema(example = 3)]
    entry_count: u64,
    /// The newest entry on the wallet's account; null when there is none.
    #[schema(value_type = Option<Object>)]
    last_transaction: Option<LedgerEntry>,
}

impl WalletSummaryResponse {
    fn new(summary: WalletSummary, last_transaction: Option<LedgerEntry>) -> Self {
        Self {
            wallet_id: summary.wallet_id.to_string(),
            total_credits: summary.total_credits,
            total_debits: summary.total_debits,
            balance: summary.balance,
            transaction_count: summary.entry_count,
            entry_count: summary.entry_count,
            last_transaction,
        }
    }
}

/// Credit and debit totals, the ledger balance and the newest entry of one wallet.
#[utoipa::path(get, path = "/ledger/wallet/{walletId}/summary", tag = "ledger",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Summary", body = WalletSummaryResponse),
              (status = 404, description = "Not a wallet id", body = ErrorBody)))]
pub async fn wallet_summary(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet_id(&path)?;
    authorize_on_wallet(&state, &caller, &wallet_id, read_wallet).await?;
    catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let summary = state
        .ledger
        .wallet_summary(&wallet_id)
        .await
        .map_err(internal)?;
    let newest = state
        .ledger
        .wallet_entries(WalletEntriesQuery {
            wallet_id,
            filter: EntryFilter {
                limit: Some(1),
                ..EntryFilter::default()
            },
        })
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(WalletSummaryResponse::new(
        summary,
        newest.into_iter().next(),
    )))
}

/// Every entry of one operation or transfer.
#[utoipa::path(get, path = "/ledger/reference/{referenceId}", tag = "ledger",
    params(("referenceId" = String, Path)), responses((status = 200, description = "{referenceId, count, transactions}")))]
pub async fn reference_entries(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A transfer's entries are both wallets': an operator's read.
    authorize_call(&caller, Action::Audit)?;
    catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let entries = state
        .ledger
        .reference_entries(&path)
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "referenceId": path.as_str(),
        "count": entries.len(),
        "transactions": entries,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletFilter {
    wallet_id: Option<String>,
}

/// Entries on every account, optionally of one wallet's transactions.
#[utoipa::path(get, path = "/ledger/transactions", tag = "ledger",
    params(("walletId" = Option<String>, Query), ("transactionType" = Option<String>, Query), ("startDate" = Option<String>, Query),
           ("endDate" = Option<String>, Query), ("limit" = Option<u32>, Query), ("offset" = Option<u64>, Query)),
    responses((status = 200, description = "{count, transactions}, newest first"),
              (status = 400, description = "Invalid filter or paging: the message names the parameter", body = ErrorBody)))]
pub async fn transactions(
    caller: Caller,
    wallet: web::Query<WalletFilter>,
    filter: web::Query<EntryFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet
        .wallet_id
        .as_deref()
        .map(WalletId::parse)
        .transpose()?;
    // One wallet's entries are its owner's to read; every wallet's, an operator's.
    match &wallet_id {
        Some(wallet_id) => authorize_on_wallet(&state, &caller, wallet_id, read_wallet).await?,
        None => authorize_call(&caller, Action::Audit)?,
    }
    catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let entries = state
        .ledger
        .transactions(TransactionsQuery {
            wallet_id,
            filter: filter.into_inner(),
        })
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "count": entries.len(), "transactions": entries })))
}

/// Checks the ledger: every transaction sums to zero, no transfer lacks a half,
/// and every wallet's ledger balance equals its event-sourced balance.
#[utoipa::path(get, path = "/ledger/verify", tag = "ledger",
    responses((status = 200, description = "The ledger is consistent"), (status = 409, description = "It is not; the body says where")))]
pub async fn verify(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize_call(&caller, Action::Audit)?;
    let caught_up = catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let verification = state.ledger.verify().await.map_err(internal)?;
    let mut mismatches = Vec::new();
    for (wallet_id, ledger_balance) in verification.wallet_balances.iter().take(VERIFY_WALLETS_MAX)
    {
        let event_sourced = state
            .wallets
            .current(wallet_id)
            .await
            .map_err(internal)?
            .map(|wallet| wallet.balance.value())
            .unwrap_or(Decimal::ZERO);
        if event_sourced != *ledger_balance {
            mismatches.push(json!({
                "walletId": wallet_id.as_str(),
                "ledgerBalance": ledger_balance.to_string(),
                "eventSourcedBalance": event_sourced.to_string(),
            }));
        }
    }
    let consistent = verification.ok && mismatches.is_empty();
    let body = json!({
        "ok": consistent,
        "caughtUp": caught_up,
        "ledger": verification,
        "balanceMismatches": mismatches,
    });
    Ok(if consistent {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Conflict().json(body)
    })
}
