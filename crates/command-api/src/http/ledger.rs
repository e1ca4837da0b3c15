//! The ledger API, served from the double-entry ledger's tables.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use ledger::{EntryFilter, TransactionsQuery, WalletEntriesQuery};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use wallet_domain::WalletId;

use super::as_of::SummaryAsOfParams;
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
    responses((status = 200, description = "{walletId, count, transactions}")))]
pub async fn wallet_entries(
    path: web::Path<String>,
    filter: web::Query<EntryFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet_id(&path)?;
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

/// Credit and debit totals and the ledger balance of one wallet, now or as
/// of a moment (`?at=`: the transactions that occurred at or before then).
#[utoipa::path(get, path = "/ledger/wallet/{walletId}/summary", tag = "ledger",
    params(("walletId" = String, Path), SummaryAsOfParams),
    responses((status = 200, description = "Summary"), (status = 400, description = "Invalid at", body = ErrorBody)))]
pub async fn wallet_summary(
    path: web::Path<String>,
    params: web::Query<SummaryAsOfParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet_id(&path)?;
    let at = params.at()?;
    catch_up(&state, &state.progress.ledger, LEDGER_CATCH_UP_WAIT_MS).await;
    let summary = state
        .ledger
        .wallet_summary(&wallet_id, at)
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().json(summary))
}

/// Every entry of one operation or transfer.
#[utoipa::path(get, path = "/ledger/reference/{referenceId}", tag = "ledger",
    params(("referenceId" = String, Path)), responses((status = 200, description = "{referenceId, count, transactions}")))]
pub async fn reference_entries(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
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
    responses((status = 200, description = "{count, transactions}")))]
pub async fn transactions(
    wallet: web::Query<WalletFilter>,
    filter: web::Query<EntryFilter>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = wallet
        .wallet_id
        .as_deref()
        .map(WalletId::parse)
        .transpose()?;
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
pub async fn verify(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
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
