//! The wire contract: request bodies as parsed, responses as sent.

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::ToSchema;
use wallet_domain::ids::DESCRIPTION_LENGTH_MAX;
use wallet_domain::money::AMOUNT_MAX;
use wallet_domain::{
    Amount, Balance, Description, Hold, HoldId, IdentifierRule, OwnerId, Wallet, WalletId,
    WalletStatus,
};

use super::body::JsonObject;
use super::error::ApiError;
use crate::wallets::OperationOutcome;

/// A balance or total as the API prints it.
pub fn money_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .description(Some("Exact decimal amount with at most 2 decimal places"))
}

/// What [`Description`] accepts: no character
/// [`wallet_domain::refused_in_description`] names.
pub const DESCRIPTION_PATTERN: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F\\u2028\\u2029\\u202A-\\u202E\\u2066-\\u2069]*$";
/// The step of every amount: [`wallet_domain::money::MONEY_SCALE`] decimal places.
const MONEY_STEP: f64 = 0.01;

/// A wallet's id, as [`WalletId`] accepts it.
pub fn identifier_schema() -> ObjectBuilder {
    rule_schema(&WalletId::RULE).examples(["wallet-123"])
}

/// An owner's id, as [`OwnerId`] accepts it.
pub fn owner_id_schema() -> ObjectBuilder {
    rule_schema(&OwnerId::RULE).examples(["user-456", "auth0|123"])
}

/// A string `rule` accepts: its length and its pattern.
fn rule_schema(rule: &IdentifierRule) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(rule.length_max))
        .pattern(Some(rule.pattern()))
}

/// An amount one operation moves: more than 0, at most 1e12, at most 2 decimals.
pub fn amount_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .maximum(i64::try_from(AMOUNT_MAX).ok())
        .multiple_of(Some(MONEY_STEP))
        .description(Some(
            "Exact decimal: greater than 0, at most 1000000000000, at most 2 decimal places",
        ))
        .examples([50.25])
}

/// An opening balance: 0 (or absent, or null) to 1e12, at most 2 decimals.
fn opening_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(0))
        .maximum(i64::try_from(AMOUNT_MAX).ok())
        .multiple_of(Some(MONEY_STEP))
        .description(Some(
            "Exact decimal: 0 to 1000000000000, at most 2 decimal places; 0 when absent or null",
        ))
        .examples([100])
}

/// An overdraft limit: how far below zero a balance may go.
fn limit_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0))
        .maximum(i64::try_from(AMOUNT_MAX).ok())
        .multiple_of(Some(MONEY_STEP))
        .description(Some(
            "Exact decimal: 0 to 1000000000000, at most 2 decimal places",
        ))
        .examples([100])
}

/// Free text: at most 500 characters, none a control character; null means absent.
pub fn description_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(DESCRIPTION_LENGTH_MAX))
        .pattern(Some(DESCRIPTION_PATTERN))
        .description(Some(
            "At most 500 characters, no control characters (U+0000 to U+001F, U+007F to \
             U+009F), line or paragraph separators (U+2028, U+2029) or bidirectional \
             embedding, override or isolate controls (U+202A to U+202E, U+2066 to U+2069); \
             none when absent or null",
        ))
        .examples(["Deposit from bank account"])
}

/// A description as an answer shows it: as its request gave it. No pattern:
/// events stored before today's character rules may hold any text.
pub fn stored_description_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(DESCRIPTION_LENGTH_MAX))
        .description(Some(
            "As its request gave it (at most 500 characters); null when it had none",
        ))
        .examples(["Deposit from bank account"])
}

/// An instant as the API prints it: RFC 3339, milliseconds, `Z`. Every time
/// the server keeps is to the millisecond (it stamps events so, and rounds a
/// hold's requested expiry up), so this is all of it.
pub fn timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A wallet as every endpoint shows it: the seed's fields, then what
/// overdraft limits and statuses add.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletResponse {
    #[schema(example = "wallet-123")]
    pub id: String,
    #[schema(example = "user-456")]
    pub owner_id: String,
    #[schema(schema_with = money_schema)]
    pub balance: Balance,
    #[schema(example = "2025-10-23T10:00:00.000Z")]
    pub created_at: String,
    #[schema(example = "2025-10-23T10:05:00.000Z")]
    pub updated_at: String,
    #[schema(example = 2)]
    pub version: u64,
    /// What may be spent before the overdraft: balance − held balance.
    #[schema(schema_with = available_balance_schema)]
    pub available_balance: Balance,
    /// Money reserved by pending holds.
    #[schema(schema_with = held_balance_schema)]
    pub held_balance: Balance,
    /// How far below zero the available balance may go (0 by default).
    #[schema(schema_with = overdraft_limit_schema)]
    pub overdraft_limit: Balance,
    /// `ACTIVE`, `FROZEN` (refuses money out) or `CLOSED` (refuses every change).
    #[schema(value_type = String, example = "ACTIVE")]
    pub status: WalletStatus,
}

/// The fields of a wallet response, from the event store or the read model.
struct WalletFields<'a> {
    id: &'a WalletId,
    owner_id: &'a OwnerId,
    balance: Balance,
    held_balance: Balance,
    overdraft_limit: Balance,
    status: WalletStatus,
    created_at: &'a chrono::DateTime<chrono::Utc>,
    updated_at: &'a chrono::DateTime<chrono::Utc>,
    version: u64,
}

impl From<WalletFields<'_>> for WalletResponse {
    fn from(fields: WalletFields<'_>) -> Self {
        Self {
            id: fields.id.to_string(),
            owner_id: fields.owner_id.to_string(),
            balance: fields.balance,
            created_at: timestamp(fields.created_at),
            updated_at: timestamp(fields.updated_at),
            version: fields.version,
            available_balance: fields.balance.saturating_minus(fields.held_balance),
            held_balance: fields.held_balance,
            overdraft_limit: fields.overdraft_limit,
            status: fields.status,
        }
    }
}

impl From<&Wallet> for WalletResponse {
    fn from(wallet: &Wallet) -> Self {
        WalletFields {
            id: &wallet.id,
            owner_id: &wallet.owner_id,
            balance: wallet.balance,
            held_balance: wallet.held_balance,
            overdraft_limit: wallet.overdraft_limit,
            status: wallet.status,
            created_at: &wallet.created_at,
            updated_at: &wallet.updated_at,
            version: wallet.version,
        }
        .into()
    }
}

impl From<&read_model::WalletView> for WalletResponse {
    fn from(view: &read_model::WalletView) -> Self {
        WalletFields {
            id: &view.id,
            owner_id: &view.owner_id,
            balance: view.balance,
            held_balance: view.held_balance,
            overdraft_limit: view.overdraft_limit,
            status: view.status,
            created_at: &view.created_at,
            updated_at: &view.updated_at,
            version: view.version,
        }
        .into()
    }
}

/// A wallet shown by its id alone: what a command's reply shows of a wallet
/// its caller may not read (another owner's payee, the wallet a `deposits`
/// principal credited).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WalletReference {
    #[schema(example = "wallet-123")]
    pub id: String,
}

/// A wallet in a command's reply: whole when the caller may read it, else
/// its id alone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum WalletReply {
    Whole(WalletResponse),
    Reference(WalletReference),
}

/// Both wallets of a transfer after it; the payee by its id alone when the
/// caller may not read it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferResponse {
    /// The transfer's id: the `transferId` of its two transactions, which
    /// `/ledger/reference/{transferId}` and `/transactions?q=` find. Absent
    /// only in the replay of a reply stored before it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid, example = "0193f0c2-6d1e-7a8b-9c0d-1e2f3a4b5c6d")]
    pub transfer_id: Option<uuid::Uuid>,
    pub from_wallet: WalletResponse,
    pub to_wallet: WalletReply,
}

/// One transaction of a wallet's history or of a search: one event, seen from
/// its wallet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    /// The id of the event.
    #[schema(value_type = String, example = "0193f0c2-6d1e-7a8b-9c0d-1e2f3a4b5c6d")]
    pub id: uuid::Uuid,
    #[schema(example = "wallet-123")]
    pub wallet_id: String,
    #[schema(example = "user-456")]
    pub owner_id: String,
    /// `WalletCreated` (the opening balance), `WalletCredited`, `WalletDebited`,
    /// `TransferSent`, `TransferReceived`, `TransferReversed` (a transfer's
    /// paying half given back because the payee could not be credited), a
    /// hold's life (`HoldPlaced`, `HoldCaptured`, `HoldCaptureReceived` by the
    /// wallet a capture paid, `HoldCaptureReversed` when that wallet could not
    /// receive it and the payer got it back, `HoldVoided`, `HoldExpired`), or
    /// a change that moves no money (amount 0.00): `OverdraftLimitSet`,
    /// `WalletFrozen`, `WalletUnfrozen`, `WalletClosed`.
    #[serde(rename = "type")]
    #[schema(example = "WalletCredited")]
    pub transaction_type: String,
    /// The amount moved, never negative; the direction is in the type.
    #[schema(schema_with = moved_amount_schema)]
    pub amount: Balance,
    /// Below zero when the wallet uses its overdraft.
    #[schema(schema_with = balance_after_schema)]
    pub balance_after: Balance,
    /// The other wallet of a transfer.
    #[schema(example = "wallet-789")]
    pub counterparty_wallet_id: Option<String>,
    /// Shared by both halves of a transfer.
    #[schema(value_type = Option<String>)]
    pub transfer_id: Option<uuid::Uuid>,
    /// The description the client gave with the command, as given; null
    /// when it gave none (the type, `counterpartyWalletId` and `holdId` say
    /// what happened; the audit trail of `GET /wallets/{id}` and the
    /// ledger's entries show a text of the server's, such as `Transfer to
    /// <id>`, in its place). `q` searches these descriptions only.
    #[schema(example = "Deposit from bank account")]
    pub description: Option<String>,
    #[schema(example = "2025-10-23T10:05:00.000Z")]
    pub occurred_at: String,
    /// Global position of the event in the event log: the order of the results.
    #[schema(example = 42)]
    pub position: u64,
    /// The wallet's version after this event.
    #[schema(example = 2)]
    pub stream_version: u64,
    /// Who caused the event (the `sub` of its bearer token): shown to the
    /// `admin` scope only, absent for events made without authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "gateway-7")]
    pub principal: Option<String>,
    /// The hold of a hold event (`HoldPlaced`, `HoldCaptured`,
    /// `HoldCaptureReceived`, `HoldVoided`, `HoldExpired`); absent on every
    /// other. A void's or an expiry's `description` is null: the hold's own
    /// is on its `HoldPlaced`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "hold-7")]
    pub hold_id: Option<String>,
}

impl TransactionResponse {
    /// The transaction as a caller sees it: with who caused it when `with_principal`.
    fn new(transaction: search_index::Transaction, with_principal: bool) -> Self {
        Self {
            id: transaction.id,
            wallet_id: transaction.wallet_id.to_string(),
            owner_id: transaction.owner_id.to_string(),
            transaction_type: transaction.transaction_type,
            amount: transaction.amount,
            balance_after: transaction.balance_after,
            counterparty_wallet_id: transaction
                .counterparty_wallet_id
                .as_ref()
                .map(WalletId::to_string),
            transfer_id: transaction.transfer_id,
            description: transaction.description,
            occurred_at: timestamp(&transaction.occurred_at),
            position: transaction.position,
            stream_version: transaction.stream_version,
            principal: transaction.principal.filter(|_| with_principal),
            hold_id: transaction.hold_id.as_ref().map(HoldId::to_string),
        }
    }
}

fn transactions(
    page: search_index::TransactionPage,
    with_principals: bool,
) -> Vec<TransactionResponse> {
    page.items
        .into_iter()
        .map(|transaction| TransactionResponse::new(transaction, with_principals))
        .collect()
}

/// `GET /wallets/{walletId}/transactions`: one page, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletTransactionsResponse {
    #[schema(example = "wallet-123")]
    pub wallet_id: String,
    /// Transactions of the wallet in all, not only on this page (with the
    /// cursor `before`, all of those older than it).
    #[schema(example = 3)]
    pub count: u64,
    pub transactions: Vec<TransactionResponse>,
}

impl WalletTransactionsResponse {
    /// One page of a wallet's history; who caused each event when `with_principals`.
    pub fn new(
        wallet_id: &WalletId,
        page: search_index::TransactionPage,
        with_principals: bool,
    ) -> Self {
        Self {
            wallet_id: wallet_id.to_string(),
            count: page.total,
            transactions: transactions(page, with_principals),
        }
    }
}

/// `GET /transactions`: one page of the matches, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionSearchResponse {
    /// Matches in all, not only on this page.
    #[schema(example = 3)]
    pub count: u64,
    pub transactions: Vec<TransactionResponse>,
}

impl TransactionSearchResponse {
    /// One page of matches; who caused each event when `with_principals`.
    pub fn new(page: search_index::TransactionPage, with_principals: bool) -> Self {
        Self {
            count: page.total,
            transactions: transactions(page, with_principals),
        }
    }

    /// No match: what a search of someone else's wallets finds.
    pub fn empty() -> Self {
        Self {
            count: 0,
            transactions: Vec::new(),
        }
    }
}

/// The JSON body of a successful command.
pub fn render_outcome(outcome: &OperationOutcome) -> Result<String, serde_json::Error> {
    match outcome {
        OperationOutcome::Wallet(wallet) => serde_json::to_string(&WalletResponse::from(wallet)),
        OperationOutcome::Transfer {
            transfer_id,
            from,
            to,
        } => render_transfer(*transfer_id, from, to),
        OperationOutcome::Hold { hold, .. } => render_hold(hold),
    }
}

/// The body of a hold operation's reply, on either path (atomic append or
/// the transfer process for a capture to another wallet).
pub fn render_hold(hold: &Hold) -> Result<String, serde_json::Error> {
    serde_json::to_string(&super::hold_dto::HoldResponse::from(hold))
}

/// The body of a transfer's reply, on either path (atomic append or process).
pub fn render_transfer(
    transfer_id: uuid::Uuid,
    from: &Wallet,
    to: &Wallet,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&TransferResponse {
        transfer_id: Some(transfer_id),
        from_wallet: from.into(),
        to_wallet: WalletReply::Whole(to.into()),
    })
}

/// The optional `description` of a body.
pub fn description(body: &JsonObject) -> Result<Option<Description>, ApiError> {
    body.optional_string("description")?
        .map(Description::parse)
        .transpose()
        .map_err(ApiError::from)
}

/// `POST /wallets`
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    #[schema(schema_with = identifier_schema)]
    pub wallet_id: WalletId,
    #[schema(schema_with = owner_id_schema)]
    pub owner_id: OwnerId,
    #[schema(schema_with = opening_schema, required = false)]
    pub initial_balance: Balance,
    /// How far below zero the balance may go: zero or more; 0 when absent.
    #[schema(schema_with = opening_overdraft_limit_schema, required = false)]
    pub overdraft_limit: Balance,
}

impl CreateWalletRequest {
    pub const FIELDS: &'static [&'static str] =
        &["walletId", "ownerId", "initialBalance", "overdraftLimit"];

    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let opening = body
            .optional_decimal("initialBalance")?
            .unwrap_or(Decimal::ZERO);
        let limit = body
            .optional_decimal("overdraftLimit")?
            .unwrap_or(Decimal::ZERO);
        Ok(Self {
            wallet_id: WalletId::parse(body.required_string("walletId")?)?,
            owner_id: OwnerId::parse(body.required_string("ownerId")?)?,
            initial_balance: Balance::opening("initialBalance", opening)?,
            overdraft_limit: Balance::limit("overdraftLimit", limit)?,
        })
    }
}

/// The body of a command that takes none (void, freeze, unfreeze, close): no
/// body, `null` or `{}`; any property is refused (400).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `PUT /wallets/{walletId}/overdraft-limit`
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct OverdraftLimitRequest {
    #[schema(schema_with = limit_schema)]
    pub overdraft_limit: Balance,
}

impl OverdraftLimitRequest {
    pub const FIELDS: &'static [&'static str] = &["overdraftLimit"];

    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let limit = body.required_decimal("overdraftLimit")?;
        Ok(Self {
            overdraft_limit: Balance::limit("overdraftLimit", limit)?,
        })
    }
}

/// `POST /wallets/{walletId}/credit` and `/debit`
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    #[schema(schema_with = amount_schema)]
    pub amount: Amount,
    #[schema(schema_with = description_schema)]
    pub description: Option<Description>,
}

impl AmountRequest {
    pub const FIELDS: &'static [&'static str] = &["amount", "description"];

    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        Ok(Self {
            amount: Amount::parse("amount", body.required_decimal("amount")?)?,
            description: description(body)?,
        })
    }
}

/// `POST /wallets/{fromWalletId}/transfer`
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(schema_with = identifier_schema)]
    pub to_wallet_id: WalletId,
    #[schema(schema_with = amount_schema)]
    pub amount: Amount,
    #[schema(schema_with = description_schema)]
    pub description: Option<Description>,
}

impl TransferRequest {
    pub const FIELDS: &'static [&'static str] = &["toWalletId", "amount", "description"];

    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        Ok(Self {
            to_wallet_id: WalletId::parse_field("toWalletId", body.required_string("toWalletId")?)?,
            amount: Amount::parse("amount", body.required_decimal("amount")?)?,
            description: description(body)?,
        })
    }
}

described_schema! {
    available_balance_schema = money_schema,
        "What may be spent before the overdraft: balance − held balance. Exact decimal, 2 places";
    held_balance_schema = money_schema,
        "Money reserved by pending holds. Exact decimal, 2 places";
    overdraft_limit_schema = money_schema,
        "How far below zero the available balance may go (0 by default). Exact decimal, 2 places";
    moved_amount_schema = money_schema,
        "The amount moved, never negative; the direction is in the type. Exact decimal, 2 places";
    balance_after_schema = money_schema,
        "The balance after this transaction; below zero when the wallet uses its overdraft. \
         Exact decimal, 2 places";
    opening_overdraft_limit_schema = opening_schema,
        "How far below zero the balance may go. Exact decimal: 0 to 1000000000000, at most 2 \
         decimal places; 0 when absent or null (above 0 only for an admin)";
}
