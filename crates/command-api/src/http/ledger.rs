//! The ledger API, served from the double-entry ledger's tables.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use identity::Action;
use ledger::posting::hold_reference;
use ledger::verification;
use ledger::{
    EntryFilter, EntryId, EntryList, LedgerEntry, TransactionType, TransactionsQuery,
    WalletEntriesQuery, WalletSummary, ENTRIES_LIMIT_MAX, ENTRIES_OFFSET_MAX, ENTRY_ID_PATTERN,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};
use wallet_domain::{server_id_spelling, AsOf, HoldId};

use super::as_of::SummaryAsOfParams;
use super::auth::{authorize_call, authorize_on_wallet, Caller};
use super::dto::money_schema;
use super::error::{ApiError, ErrorBody};
use super::ledger_dto::{
    entry_or_null_schema, EntriesResponse, ReferenceEntriesResponse, WalletEntriesResponse,
};
use super::path;
use super::query::{self, Bounds, Kind, QueryError, Spec};
use super::wallets::not_yet_created;
use crate::catch_up::{CatchUp, Projection};
use crate::startup::AppState;

/// How long a ledger read waits for the ledger to reach the acknowledged writes.
pub const LEDGER_CATCH_UP_WAIT_MS: u64 = 2_000;

fn read_wallet(owner_id: Option<&str>) -> Action<'_> {
    Action::ReadWallet { owner_id }
}

/// The header of a read answered from a projection still behind the event
/// store when its wait ended: the projection's name ([`Projection::token`]).
/// Without it, the answer shows every write acknowledged before the read.
pub const STALE_PROJECTION: &str = "Stale-Projection";

/// Whether a read's projection showed every acknowledged write when it was
/// read, or which one did not.
#[must_use = "the answer must say when it is stale"]
pub struct Freshness {
    /// The projection that was behind, if it was.
    stale: Option<Projection>,
    /// The log position up to which the projection was delivered every
    /// event, when the wait knows it ([`CatchUp::Reached`]).
    delivered_through: Option<u64>,
}

impl Freshness {
    /// The log position up to which the projection was delivered every
    /// event (so lacks none of them but by a gap), when known.
    pub fn delivered_through(&self) -> Option<u64> {
        self.delivered_through
    }

    /// An answer of `status`, with [`STALE_PROJECTION`] when behind.
    pub fn respond(&self, status: StatusCode) -> HttpResponseBuilder {
        let mut response = HttpResponse::build(status);
        if let Some(projection) = self.stale {
            response.insert_header((STALE_PROJECTION, projection.token()));
        }
        response
    }

    /// `200 OK`, with [`STALE_PROJECTION`] when behind.
    pub fn ok(&self) -> HttpResponseBuilder {
        self.respond(StatusCode::OK)
    }
}

/// Waits (bounded by `wait_ms`) until `projection` shows every write
/// acknowledged before the read ([`crate::catch_up`]); a projection still
/// behind then is read as it is, the answer says so ([`Freshness`]) and a
/// warning too. 503 when what the wait asks did not answer
/// ([`CatchUp::Unavailable`]).
pub async fn catch_up(
    state: &AppState,
    projection: Projection,
    wait_ms: u64,
) -> Result<Freshness, ApiError> {
    let caught = state
        .progress
        .catch_up(state.wallets.store().as_ref(), projection, wait_ms)
        .await;
    match caught {
        CatchUp::Reached { through } => Ok(Freshness {
            stale: None,
            delivered_through: through,
        }),
        CatchUp::Behind => Ok(Freshness {
            stale: Some(projection),
            delivered_through: None,
        }),
        CatchUp::Unavailable(_) => Err(ApiError::Unavailable(
            projection.unavailable_message().to_owned(),
        )),
    }
}

/// The names `transactionType` accepts.
const TRANSACTION_TYPES: [&str; 8] = [
    TransactionType::WalletCreated.as_str(),
    TransactionType::Credit.as_str(),
    TransactionType::Debit.as_str(),
    TransactionType::TransferOut.as_str(),
    TransactionType::TransferIn.as_str(),
    TransactionType::HoldPlaced.as_str(),
    TransactionType::HoldReleased.as_str(),
    TransactionType::HoldCaptured.as_str(),
];

const ENTRIES_LIMIT_BOUNDS: Bounds = Bounds {
    min: 1,
    max: ENTRIES_LIMIT_MAX as u64,
};
/// An offset past the last entry is an empty page; deeper than
/// [`ENTRIES_OFFSET_MAX`] the keyset cursor `after` pages instead.
const ENTRIES_OFFSET_BOUNDS: Bounds = Bounds {
    min: 0,
    max: ENTRIES_OFFSET_MAX,
};
/// What `after` accepts, in words.
const ENTRY_ID_FORM: &str =
    "an entry id: <transaction uuid>:<line from 1>, as the `id` of an entry";

const ENTRY_FILTERS: [Spec; 6] = [
    Spec {
        name: "transactionType",
        description: "Only entries of transactions of this type.",
        kind: Kind::OneOf(&TRANSACTION_TYPES),
    },
    Spec {
        name: "startDate",
        description: "Occurred at or after: an RFC 3339 date-time, or a date (from 00:00, UTC).",
        kind: Kind::Date,
    },
    Spec {
        name: "endDate",
        description: "Occurred at or before: an RFC 3339 date-time, or a date (its whole day, UTC); not before `startDate`.",
        kind: Kind::Date,
    },
    Spec {
        name: "limit",
        description: "Entries per page, 1 to 500 (default 50).",
        kind: Kind::Integer(ENTRIES_LIMIT_BOUNDS),
    },
    Spec {
        name: "offset",
        description: "Entries to skip, in ledger order, at most 10000; deeper pages by `after`.",
        kind: Kind::Integer(ENTRIES_OFFSET_BOUNDS),
    },
    Spec {
        name: "after",
        description: "Keyset cursor: only entries after this one in ledger order (the `id` of \
                      the last entry of the previous page). An id of a transaction the ledger \
                      does not hold is refused (400).",
        kind: Kind::Pattern(ENTRY_ID_PATTERN),
    },
];

/// The entry filters and paging of a ledger query, as text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryParams {
    transaction_type: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    after: Option<String>,
}

impl IntoParams for EntryParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&ENTRY_FILTERS)
    }
}

impl EntryParams {
    fn filter(&self) -> Result<EntryFilter, QueryError> {
        let start_date = query::start_date("startDate", &self.start_date)?;
        let end_date = query::end_date("endDate", &self.end_date)?;
        query::ordered(
            ("startDate", start_date.as_ref()),
            ("endDate", end_date.as_ref()),
        )?;
        let limit = query::integer("limit", &self.limit, ENTRIES_LIMIT_BOUNDS)?;
        Ok(EntryFilter {
            transaction_type: query::one_of(
                "transactionType",
                &self.transaction_type,
                &TRANSACTION_TYPES,
            )?,
            start_date,
            end_date,
            limit: limit.and_then(|limit| u32::try_from(limit).ok()),
            offset: query::integer("offset", &self.offset, ENTRIES_OFFSET_BOUNDS)?,
            after: query::parsed::<EntryId>("after", &self.after, ENTRY_ID_FORM)?,
        })
    }
}

/// Refuses (400) a keyset cursor that names no transaction of the list
/// (the ledger's, or one wallet's): an empty page would read as the end of
/// the list, and a client paging with a tampered or mistyped cursor would
/// stop there without knowing. Scoped to the wallet, so that another
/// wallet's entry id is refused as an unknown one is: the answer tells
/// nothing of entries the caller may not read.
async fn known_cursor(
    state: &AppState,
    filter: &EntryFilter,
    list: EntryList<'_>,
) -> Result<(), ApiError> {
    let Some(after) = filter.after else {
        return Ok(());
    };
    if state.ledger.holds_entry(after, list).await? {
        return Ok(());
    }
    let named = match list {
        EntryList::WalletAccounts(wallet_id) => format!("no entry of wallet {wallet_id}"),
        EntryList::WalletTransactions(wallet_id) => {
            format!("no entry of the transactions of wallet {wallet_id}")
        }
        EntryList::Ledger => "no ledger entry".to_owned(),
    };
    Err(ApiError::BadRequest(format!(
        "after names {named} ({after}): it must be the id of an entry of this list, as the last \
         entry of the previous page gives it"
    )))
}

/// Entries on one wallet's two accounts: its own and its held sub-account
/// `held:<id>` (a hold placed or released shows both sides, a capture its
/// posting out of `held:<id>`).
#[utoipa::path(get, path = "/ledger/wallet/{walletId}", tag = "ledger",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$"), EntryParams),
    responses(
        (status = 200, description = "The entries of wallet:<id> and held:<id>, newest first", body = WalletEntriesResponse),
        (status = 400, description = "Invalid walletId, filter or paging, an `after` cursor that names no entry of the wallet, or a walletId that is not UTF-8: the message names the parameter", body = ErrorBody),
        (status = 404, description = "For a caller limited to its own wallets: not one of them (an unknown wallet's entries are an empty list for an admin)", body = ErrorBody),
    ))]
pub async fn wallet_entries(
    caller: Caller,
    path: path::Parameter,
    params: web::Query<EntryParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_on_wallet(&state, &caller, &wallet_id, read_wallet).await?;
    let filter = params.filter()?;
    let freshness = catch_up(&state, Projection::Ledger, LEDGER_CATCH_UP_WAIT_MS).await?;
    known_cursor(&state, &filter, EntryList::WalletAccounts(&wallet_id)).await?;
    let entries = state
        .ledger
        .wallet_entries(WalletEntriesQuery {
            wallet_id: wallet_id.clone(),
            filter,
        })
        .await?;
    Ok(freshness.ok().json(WalletEntriesResponse {
        wallet_id: wallet_id.to_string(),
        count: entries.len(),
        transactions: entries,
    }))
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
    /// The newest entry on the wallet's two accounts (`last_entry_schema`).
    #[schema(schema_with = last_entry_schema)]
    last_transaction: Option<LedgerEntry>,
}

impl WalletSummaryResponse {
    fn new(summary: WalletSummary) -> Self {
        Self {
            wallet_id: summary.wallet_id.to_string(),
            total_credits: summary.total_credits,
            total_debits: summary.total_debits,
            balance: summary.balance,
            transaction_count: summary.entry_count,
            entry_count: summary.entry_count,
            last_transaction: summary.newest_entry,
        }
    }
}

/// Credit and debit totals, the ledger balance and the newest entry of one
/// wallet, now or as of a moment (`?at=`: the transactions that occurred at
/// or before then).
#[utoipa::path(get, path = "/ledger/wallet/{walletId}/summary", tag = "ledger",
    params(("walletId" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$"), SummaryAsOfParams),
    responses((status = 200, description = "Summary (an admin's of a wallet never created: all zeros, as the seed's)", body = WalletSummaryResponse),
              (status = 400, description = "Invalid at", body = ErrorBody),
              (status = 404, description = "Wallet not found, or (with at) not yet created then", body = ErrorBody),
              (status = 503, description = "Storage unavailable", body = ErrorBody)))]
pub async fn wallet_summary(
    caller: Caller,
    path: path::Parameter,
    params: web::Query<SummaryAsOfParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = path::wallet_id(&path)?;
    authorize_on_wallet(&state, &caller, &wallet_id, read_wallet).await?;
    let at = params.at()?;
    // As of a moment before the wallet existed, as `GET /wallets/{id}?at=` answers: 404.
    if let Some(at) = at {
        if state
            .wallets
            .as_of(&wallet_id, AsOf::Time(at))
            .await?
            .is_none()
        {
            return Err(not_yet_created(&wallet_id, at));
        }
    }
    let freshness = catch_up(&state, Projection::Ledger, LEDGER_CATCH_UP_WAIT_MS).await?;
    let summary = state.ledger.wallet_summary(&wallet_id, at).await?;
    Ok(freshness.ok().json(WalletSummaryResponse::new(summary)))
}

/// Every entry of one operation, transfer or hold (by the hold's id: every
/// transaction of its placing, capture, release and the payee's half).
///
/// An operation's or a transfer's id is a UUID the server wrote, found in
/// any spelling of it; a hold's id is the client's, found as written. So an
/// id in the server's own spelling (lower case, hyphenated) is looked up as
/// an operation or transfer first, and any other text as a hold first: a
/// hold named `01A24158FCC3…` is found by that name even when a transfer's
/// id reads as the same UUID. A hold named exactly as another operation's id
/// is found by the `referenceId` its entries carry.
#[utoipa::path(get, path = "/ledger/reference/{referenceId}", tag = "ledger",
    params(("referenceId" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$",
            description = "An operation's, a transfer's or a hold's id: 1 to 128 characters, none a control character")),
    responses((status = 200, description = "Every entry of the operation, transfer or hold (none: an empty list)", body = ReferenceEntriesResponse),
              (status = 400, description = "Not a reference id: the message says what is accepted", body = ErrorBody)))]
pub async fn reference_entries(
    caller: Caller,
    path: path::Parameter,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // A transfer's entries are both wallets': an operator's read.
    authorize_call(&caller, Action::Audit)?;
    let reference_id = path::reference_id(&path)?;
    let freshness = catch_up(&state, Projection::Ledger, LEDGER_CATCH_UP_WAIT_MS).await?;
    let as_hold = HoldId::parse(reference_id)
        .ok()
        .map(|hold_id| hold_reference(&hold_id).to_string());
    let written_by_the_server =
        server_id_spelling(reference_id).is_some_and(|spelling| spelling == reference_id);
    let mut lookups = vec![Some(reference_id.to_owned()), as_hold];
    if !written_by_the_server {
        lookups.reverse();
    }
    let mut entries = Vec::new();
    for reference in lookups.into_iter().flatten() {
        entries = state.ledger.reference_entries(&reference).await?;
        if !entries.is_empty() {
            break;
        }
    }
    Ok(freshness.ok().json(ReferenceEntriesResponse {
        reference_id: path.to_owned(),
        count: entries.len(),
        transactions: entries,
    }))
}

/// The wallet whose transactions `/ledger/transactions` lists, as text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletFilter {
    wallet_id: Option<String>,
}

impl IntoParams for WalletFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&[Spec {
            name: "walletId",
            description: "Only entries of this wallet's transactions.",
            kind: Kind::Id,
        }])
    }
}

/// Entries on every account, optionally of one wallet's transactions.
#[utoipa::path(get, path = "/ledger/transactions", tag = "ledger",
    params(WalletFilter, EntryParams),
    responses(
        (status = 200, description = "Entries, newest first", body = EntriesResponse),
        (status = 400, description = "Invalid filter or paging, or an `after` cursor that names no entry of the list (of the wallet, with walletId): the message names the parameter", body = ErrorBody),
        (status = 404, description = "With walletId, for a caller limited to its own wallets: not one of them (an unknown wallet's entries are an empty list for an admin)", body = ErrorBody),
    ))]
pub async fn transactions(
    caller: Caller,
    wallet: web::Query<WalletFilter>,
    params: web::Query<EntryParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wallet_id = query::wallet_id("walletId", &wallet.wallet_id)?;
    let filter = params.filter()?;
    // One wallet's entries are its owner's to read; every wallet's, an operator's.
    match &wallet_id {
        Some(wallet_id) => authorize_on_wallet(&state, &caller, wallet_id, read_wallet).await?,
        None => authorize_call(&caller, Action::Audit)?,
    }
    let freshness = catch_up(&state, Projection::Ledger, LEDGER_CATCH_UP_WAIT_MS).await?;
    let list = wallet_id
        .as_ref()
        .map_or(EntryList::Ledger, EntryList::WalletTransactions);
    known_cursor(&state, &filter, list).await?;
    let entries = state
        .ledger
        .transactions(TransactionsQuery { wallet_id, filter })
        .await?;
    Ok(freshness.ok().json(EntriesResponse {
        count: entries.len(),
        transactions: entries,
    }))
}

/// Checks the ledger: every transaction sums to zero, no transfer misses a
/// half the event store has, and every wallet's ledger balance equals its
/// event-sourced balance at the same log position (the position of its last
/// posted event), so writes running meanwhile are never reported as errors.
#[utoipa::path(get, path = "/ledger/verify", tag = "ledger",
    responses(
        (status = 200, description = "The ledger is consistent: {ok, caughtUp, headPosition, eventsNotPosted, eventsMissing, walletsInLedger, walletsChecked, stoppedEarly, balanceMismatches, transfersInFlight, ledger}", body = Object),
        (status = 409, description = "It is not; the same body says where", body = Object),
    ))]
pub async fn verify(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize_call(&caller, Action::Audit)?;
    // Let the ledger reach what is acknowledged, so `caughtUp`
    // is usually true; the answer is right either way.
    let freshness = catch_up(&state, Projection::Ledger, LEDGER_CATCH_UP_WAIT_MS).await?;
    let verification = verification::verify(
        state.ledger.as_ref(),
        state.wallets.store().as_ref(),
        freshness.delivered_through(),
    )
    .await?;
    Ok(if verification.ok {
        freshness.ok().json(verification)
    } else {
        freshness.respond(StatusCode::CONFLICT).json(verification)
    })
}

described_schema! {
    last_entry_schema = entry_or_null_schema,
        "The newest entry on the wallet's account (wallet:<id>) or its held sub-account (held:<id>), as account says; null when there is none. An entry, not its transaction's net: after a hold's capture, its posting of the hold's whole amount out of held:<id>, whatever part was captured (the rest returns to wallet:<id> in the same transaction; GET /ledger/reference/{holdId} lists every line)";
}
