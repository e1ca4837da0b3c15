//! Transaction history and search, served from the search index.
//!
//! Query parameters arrive as text and are parsed here, so that a bad value is
//! a 400 naming its parameter rather than a generic query-string error.

use std::str::FromStr;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use search_index::{SearchIndex, TransactionSearch, TRANSACTIONS_LIMIT_MAX};
use serde::Deserialize;
use utoipa::IntoParams;
use wallet_domain::{OwnerId, WalletId};

use identity::Action;

use super::auth::{authorize_on_wallet, owner_filter, sees_principals, Caller, OwnerFilter};
use super::dto::{TransactionSearchResponse, WalletTransactionsResponse};
use super::error::{ApiError, ErrorBody};
use super::ledger::catch_up;
use crate::startup::AppState;
use crate::wallets::ServiceError;

/// How long a history or search waits for the in-process search index to
/// reach the writes acknowledged before it began.
pub const SEARCH_CATCH_UP_WAIT_MS: u64 = 2_000;
/// Characters of a decimal parameter read at most; longer is refused unread.
const DECIMAL_TEXT_LENGTH_MAX: usize = 40;

fn search_index(state: &AppState) -> Result<&Arc<dyn SearchIndex>, ApiError> {
    state.search_index.as_ref().ok_or_else(|| {
        ApiError::Unavailable("Transaction search is not configured (set ELASTICSEARCH_URL)".into())
    })
}

async fn caught_up(state: &AppState) {
    if !catch_up(state, &state.progress.search_index, SEARCH_CATCH_UP_WAIT_MS).await {
        tracing::warn!("search index is behind the event store; answering with what it has");
    }
}

fn limit(raw: Option<&str>) -> Result<Option<usize>, ApiError> {
    raw.map(|raw| {
        raw.parse::<usize>()
            .ok()
            .filter(|limit| (1..=TRANSACTIONS_LIMIT_MAX).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be an integer from 1 to {TRANSACTIONS_LIMIT_MAX}"
                ))
            })
    })
    .transpose()
}

/// How deep a page may start is the index's to say (`offset + limit` is
/// bounded there); here only the form.
fn offset(raw: Option<&str>) -> Result<usize, ApiError> {
    raw.map(|raw| {
        raw.parse::<usize>()
            .map_err(|_| ApiError::BadRequest("offset must be an integer of 0 or more".into()))
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

/// An RFC 3339 instant, or a `YYYY-MM-DD` date (UTC) meaning its first
/// instant for `from` and its last for `to`, so that `to=2025-01-31` includes
/// the whole of that day.
fn instant(
    field: &str,
    raw: Option<&str>,
    time_of_day: NaiveTime,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|at| at.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .map(|date| date.and_time(time_of_day).and_utc())
            })
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "{field} must be an RFC 3339 date-time (2025-01-31T12:00:00Z) \
                     or a date (2025-01-31)"
                ))
            })
    })
    .transpose()
}

fn amount(field: &str, raw: Option<&str>) -> Result<Option<Decimal>, ApiError> {
    raw.map(|raw| {
        Some(raw)
            .filter(|raw| raw.len() <= DECIMAL_TEXT_LENGTH_MAX)
            .and_then(|raw| Decimal::from_str(raw).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{field} must be a decimal number, like 10.50"))
            })
    })
    .transpose()
}

/// The last nanosecond of a day.
fn end_of_day() -> NaiveTime {
    NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap_or(NaiveTime::MIN)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Transactions per page, 1 to 500 (default 50).
    limit: Option<String>,
    /// Transactions to skip, newest first (`offset + limit` at most 10000).
    offset: Option<String>,
}

/// One wallet's transactions, newest first (from the search index).
#[utoipa::path(
    get, path = "/wallets/{walletId}/transactions", tag = "transactions",
    params(("walletId" = String, Path), PageParams),
    responses(
        (status = 200, description = "One page of the wallet's transactions and their count", body = WalletTransactionsResponse),
        (status = 400, description = "Invalid paging", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 503, description = "Search index unavailable", body = ErrorBody),
    )
)]
pub async fn wallet_transactions(
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let not_found = || ApiError::NotFound(format!("Wallet {raw} not found"));
    let wallet_id = WalletId::parse(&raw).map_err(|_| not_found())?;
    authorize_on_wallet(&state, &caller, &wallet_id, |owner_id| Action::ReadWallet {
        owner_id,
    })
    .await?;
    let limit = limit(params.limit.as_deref())?;
    let offset = offset(params.offset.as_deref())?;
    let index = search_index(&state)?;
    caught_up(&state).await;
    let page = index.wallet_transactions(&wallet_id, limit, offset).await?;
    // An empty history is either a wallet with none yet indexed or no wallet:
    // the event store, the source of truth, tells which.
    if page.total == 0
        && state
            .wallets
            .current(&wallet_id)
            .await
            .map_err(ServiceError::from)?
            .is_none()
    {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(WalletTransactionsResponse::new(
        &wallet_id,
        page,
        sees_principals(&caller),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct SearchParams {
    /// Only transactions of this owner's wallets.
    owner_id: Option<String>,
    /// Only this wallet's transactions.
    wallet_id: Option<String>,
    /// Occurred at or after: an RFC 3339 date-time, or a date (from its start, UTC).
    from: Option<String>,
    /// Occurred at or before: an RFC 3339 date-time, or a date (to its end, UTC).
    to: Option<String>,
    /// Amount at least this much.
    min_amount: Option<String>,
    /// Amount at most this much.
    max_amount: Option<String>,
    /// Every word in the description, or exactly an id (event, wallet,
    /// counterparty wallet, transfer); at most 200 characters.
    q: Option<String>,
    /// Transactions per page, 1 to 500 (default 50).
    limit: Option<String>,
    /// Transactions to skip, newest first (`offset + limit` at most 10000).
    offset: Option<String>,
}

impl SearchParams {
    fn search(&self) -> Result<TransactionSearch, ApiError> {
        Ok(TransactionSearch {
            owner_id: self.owner_id.as_deref().map(OwnerId::parse).transpose()?,
            wallet_id: self.wallet_id.as_deref().map(WalletId::parse).transpose()?,
            from: instant("from", self.from.as_deref(), NaiveTime::MIN)?,
            to: instant("to", self.to.as_deref(), end_of_day())?,
            min_amount: amount("minAmount", self.min_amount.as_deref())?,
            max_amount: amount("maxAmount", self.max_amount.as_deref())?,
            q: self.q.clone(),
            limit: limit(self.limit.as_deref())?,
            offset: offset(self.offset.as_deref())?,
        })
    }
}

/// Transactions of every wallet matching every filter given, newest first
/// (from the search index).
#[utoipa::path(
    get, path = "/transactions", tag = "transactions",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of the matches and their count", body = TransactionSearchResponse),
        (status = 400, description = "Invalid filter or paging", body = ErrorBody),
        (status = 503, description = "Search index unavailable", body = ErrorBody),
    )
)]
pub async fn search_transactions(
    caller: Caller,
    params: web::Query<SearchParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut search = params.search()?;
    search.owner_id = match owner_filter(&caller, search.owner_id.take())? {
        OwnerFilter::Apply(owner_id) => owner_id,
        OwnerFilter::Nothing => {
            return Ok(HttpResponse::Ok().json(TransactionSearchResponse::empty()));
        }
    };
    let index = search_index(&state)?;
    caught_up(&state).await;
    let page = index.search_transactions(&search).await?;
    Ok(HttpResponse::Ok().json(TransactionSearchResponse::new(
        page,
        sees_principals(&caller),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_covers_its_whole_day() {
        let from = instant("from", Some("2025-01-31"), NaiveTime::MIN).expect("date");
        let to = instant("to", Some("2025-01-31"), end_of_day()).expect("date");
        assert_eq!(
            from.map(|at| at.to_rfc3339()),
            Some("2025-01-31T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            to.map(|at| at.to_rfc3339()),
            Some("2025-01-31T23:59:59.999999999+00:00".to_owned())
        );
        let offset = instant("to", Some("2025-01-31T12:00:00+02:00"), end_of_day()).expect("rfc");
        assert_eq!(
            offset.map(|at| at.to_rfc3339()),
            Some("2025-01-31T10:00:00+00:00".to_owned())
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let bad_date = instant("from", Some("yesterday"), NaiveTime::MIN);
        assert!(
            matches!(bad_date, Err(ApiError::BadRequest(message)) if message.starts_with("from "))
        );
        let bad_amount = amount("minAmount", Some("1e3x"));
        assert!(
            matches!(bad_amount, Err(ApiError::BadRequest(message)) if message.starts_with("minAmount "))
        );
        let long_amount = amount("maxAmount", Some(&"9".repeat(DECIMAL_TEXT_LENGTH_MAX + 1)));
        assert!(long_amount.is_err());
        assert!(limit(Some("0")).is_err());
        assert!(limit(Some(&(TRANSACTIONS_LIMIT_MAX + 1).to_string())).is_err());
        assert_eq!(limit(Some("7")).ok(), Some(Some(7)));
        assert!(offset(Some("-1")).is_err());
        assert_eq!(offset(None).ok(), Some(0));
    }
}
