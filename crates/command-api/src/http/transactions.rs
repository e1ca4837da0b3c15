//! Transaction history and search, served from the search index.
//!
//! Query parameters arrive as text and are read by the `query` module, so
//! that a bad value is a 400 naming its parameter and what it accepts.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use search_index::{
    SearchIndex, TransactionSearch, QUERY_TEXT_LENGTH_MAX, RESULT_WINDOW_MAX,
    TRANSACTIONS_LIMIT_MAX,
};
use serde::Deserialize;
use utoipa::openapi::path::Parameter;
use utoipa::IntoParams;

use identity::Action;

use super::auth::{authorize_on_wallet, owner_filter, sees_principals, Caller, OwnerFilter};
use super::dto::{TransactionSearchResponse, WalletTransactionsResponse};
use super::error::{ApiError, ErrorBody};
use super::ledger::catch_up;
use super::path;
use super::query::{self, Bounds, Kind, QueryError, Spec};
use crate::catch_up::Projection;
use crate::startup::AppState;
use crate::wallets::ServiceError;

/// How long a history or search waits for the search index to
/// reach the writes acknowledged before it began.
pub const SEARCH_CATCH_UP_WAIT_MS: u64 = 2_000;

fn search_index(state: &AppState) -> Result<&Arc<dyn SearchIndex>, ApiError> {
    state.search_index.as_ref().ok_or_else(|| {
        ApiError::Unavailable("Transaction search is not configured (set ELASTICSEARCH_URL)".into())
    })
}

const LIMIT_BOUNDS: Bounds = Bounds {
    min: 1,
    max: TRANSACTIONS_LIMIT_MAX as u64,
};
/// How deep a page may start is the index's to say (`offset + limit` is
/// bounded there); here the deepest any page can start.
const OFFSET_BOUNDS: Bounds = Bounds {
    min: 0,
    max: RESULT_WINDOW_MAX as u64 - 1,
};
pub(super) const LIMIT: Spec = Spec {
    name: "limit",
    description: "Transactions per page, 1 to 500 (default 50, or fewer where `offset` is past 9950: what is left of the first 10000).",
    kind: Kind::Integer(LIMIT_BOUNDS),
};
pub(super) const OFFSET: Spec = Spec {
    name: "offset",
    description: "Transactions to skip, newest first (`offset + limit` at most 10000; without `limit`, the page ends at the 10000th).",
    kind: Kind::Integer(OFFSET_BOUNDS),
};

/// The page asked for: its size (the index's default when absent) and start.
pub(super) fn page(
    limit: &Option<String>,
    offset: &Option<String>,
) -> Result<(Option<usize>, usize), QueryError> {
    Ok((
        query::size(LIMIT.name, limit, LIMIT_BOUNDS)?,
        query::size(OFFSET.name, offset, OFFSET_BOUNDS)?.unwrap_or_default(),
    ))
}

/// Any position a transaction can have: the cursor names one.
const POSITION_BOUNDS: Bounds = Bounds {
    min: 1,
    max: u64::MAX,
};
/// The keyset cursor of a wallet's history: deep pages cost what the first does.
const BEFORE: Spec = Spec {
    name: "before",
    description: "Keyset cursor: only transactions older than the one at this position (the \
                  `position` of the last transaction of the previous page), newest first; \
                  `count` is then how many of those selected are older, and `offset` skips \
                  among them. Pages deeper than `offset` reaches are read this way, each \
                  transaction once.",
    kind: Kind::Integer(POSITION_BOUNDS),
};

/// `limit`, `offset` and the keyset cursor `before` of a wallet's history.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    offset: Option<String>,
    before: Option<String>,
}

impl IntoParams for PageParams {
    fn into_params(_: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>) -> Vec<Parameter> {
        query::parameters(&[LIMIT, OFFSET, BEFORE])
    }
}

/// One wallet's transactions, newest first (from the search index).
#[utoipa::path(
    get, path = "/wallets/{walletId}/transactions", tag = "transactions",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$"), PageParams),
    responses(
        (status = 200, description = "One page of the wallet's transactions, newest first, and how many there are (with before, how many are older than it)", body = WalletTransactionsResponse),
        (status = 400, description = "Invalid walletId, limit, offset or before, or a walletId that is not UTF-8: the message names the parameter", body = ErrorBody),
        (status = 404, description = "Wallet not found", body = ErrorBody),
        (status = 503, description = "Search index unavailable", body = ErrorBody),
    )
)]
pub async fn wallet_transactions(
    caller: Caller,
    path: path::Parameter,
    params: web::Query<PageParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw: &str = &path;
    let not_found = || ApiError::NotFound(format!("Wallet {raw} not found"));
    let wallet_id = path::wallet_id(raw)?;
    authorize_on_wallet(&state, &caller, &wallet_id, |owner_id| Action::ReadWallet {
        owner_id,
    })
    .await?;
    let (limit, offset) = page(&params.limit, &params.offset)?;
    let before = query::integer(BEFORE.name, &params.before, POSITION_BOUNDS)?;
    let index = search_index(&state)?;
    let freshness = catch_up(&state, Projection::SearchIndex, SEARCH_CATCH_UP_WAIT_MS).await?;
    let page = index
        .wallet_transactions(&wallet_id, before, limit, offset)
        .await?;
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
    Ok(freshness.ok().json(WalletTransactionsResponse::new(
        &wallet_id,
        page,
        sees_principals(&caller),
    )))
}

/// The filters of a search, as text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchParams {
    owner_id: Option<String>,
    wallet_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    min_amount: Option<String>,
    max_amount: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    before: Option<String>,
}

const SEARCH_FILTERS: [Spec; 7] = [
    Spec {
        name: "ownerId",
        description: "Only transactions of this owner's wallets (percent-encoded: a `+` as %2B, as a bare `+` reads as a space).",
        kind: Kind::OwnerId,
    },
    Spec {
        name: "walletId",
        description: "Only this wallet's transactions.",
        kind: Kind::Id,
    },
    Spec {
        name: "from",
        description: "Occurred at or after: an RFC 3339 date-time, or a date (from its start, UTC).",
        kind: Kind::Date,
    },
    Spec {
        name: "to",
        description: "Occurred at or before: an RFC 3339 date-time, or a date (to its end, UTC); not before `from`.",
        kind: Kind::Date,
    },
    Spec {
        name: "minAmount",
        description: "Amount at least this much.",
        kind: Kind::Decimal,
    },
    Spec {
        name: "maxAmount",
        description: "Amount at most this much; not less than `minAmount`.",
        kind: Kind::Decimal,
    },
    Spec {
        name: "q",
        description: "Every word of it in the description, in any order, case-insensitive \
                      (a word is a run of letters and digits with the combining marks after \
                      them, read in Unicode NFKC with default-ignorable characters taken out, \
                      accents kept, cut every 100 characters once folded; \
                      anything else, `-`, `,`, quotes, `*`, parentheses, emoji, separates words \
                      and is never an operator), or exactly an id (event, wallet, counterparty \
                      wallet, transfer, hold); at most 200 characters, no control characters. \
                      Spaces only are the same as absent; a text with no word otherwise (`*`, \
                      `-`) finds only the id it is.",
        kind: Kind::Text(QUERY_TEXT_LENGTH_MAX),
    },
];

impl IntoParams for SearchParams {
    fn into_params(_: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>) -> Vec<Parameter> {
        let mut specs = SEARCH_FILTERS.to_vec();
        specs.extend([LIMIT, OFFSET, BEFORE]);
        query::parameters(&specs)
    }
}

impl SearchParams {
    fn search(&self) -> Result<TransactionSearch, QueryError> {
        let from = query::start_date("from", &self.from)?;
        let to = query::end_date("to", &self.to)?;
        query::ordered(("from", from.as_ref()), ("to", to.as_ref()))?;
        let (limit, offset) = page(&self.limit, &self.offset)?;
        Ok(TransactionSearch {
            owner_id: query::owner_id("ownerId", &self.owner_id)?,
            wallet_id: query::wallet_id("walletId", &self.wallet_id)?,
            from,
            to,
            // The index refuses a minimum above the maximum, by name.
            min_amount: query::decimal("minAmount", &self.min_amount)?,
            max_amount: query::decimal("maxAmount", &self.max_amount)?,
            q: query::text("q", &self.q, QUERY_TEXT_LENGTH_MAX)?.map(str::to_owned),
            before_position: query::integer(BEFORE.name, &self.before, POSITION_BOUNDS)?,
            limit,
            offset,
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
    let freshness = catch_up(&state, Projection::SearchIndex, SEARCH_CATCH_UP_WAIT_MS).await?;
    let page = index.search_transactions(&search).await?;
    Ok(freshness.ok().json(TransactionSearchResponse::new(
        page,
        sees_principals(&caller),
    )))
}
