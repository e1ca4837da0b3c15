//! The ledger API's response bodies and the schema of one ledger entry
//! (`ledger::LedgerEntry` as it is serialized).

use ledger::{LedgerEntry, TransactionType};
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::KnownFormat;
use utoipa::ToSchema;

use super::dto::{identifier_schema, money_schema};

/// What `account` holds: a wallet's account, its held sub-account, or one of
/// the two system accounts.
const ACCOUNT_PATTERN: &str =
    "^((wallet|held):[A-Za-z0-9_-]{1,64}|external:settlement|clearing:transfers)$";
/// `GET /ledger/wallet/{walletId}`: the entries of `wallet:<id>` and `held:<id>`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletEntriesResponse {
    #[schema(example = "wallet-123")]
    pub wallet_id: String,
    /// Entries on this page (the length of `transactions`), not a total:
    /// the ledger's lists are not counted in full (unlike the history's
    /// `count`); the next page is `after=<id of this page's last entry>`.
    pub count: usize,
    /// Newest first.
    #[schema(schema_with = newest_first_entries_schema)]
    pub transactions: Vec<LedgerEntry>,
}

/// `GET /ledger/reference/{referenceId}`: every entry of one operation,
/// transfer or hold.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceEntriesResponse {
    /// The id asked for, as given.
    pub reference_id: String,
    /// Entries in `transactions`: every entry of the reference (this list
    /// is not paged).
    pub count: usize,
    /// In ledger order.
    #[schema(schema_with = ledger_order_entries_schema)]
    pub transactions: Vec<LedgerEntry>,
}

/// `GET /ledger/transactions`: entries of every account, or of one wallet's
/// transactions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntriesResponse {
    /// Entries on this page (the length of `transactions`), not a total:
    /// the ledger's lists are not counted in full (unlike the search's
    /// `count`); the next page is `after=<id of this page's last entry>`.
    pub count: usize,
    /// Newest first.
    #[schema(schema_with = newest_first_entries_schema)]
    pub transactions: Vec<LedgerEntry>,
}

described_schema! {
    newest_first_entries_schema = entries_schema, "The entries, newest first";
    ledger_order_entries_schema = entries_schema, "The entries, in ledger order";
}

/// A list of [`entry_schema`]s.
fn entries_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(entry_schema())
}

/// An [`entry_schema`], or null.
pub fn entry_or_null_schema() -> ObjectBuilder {
    entry_schema().schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
}

/// One ledger entry: an absolute amount on one account and its direction.
pub fn entry_schema() -> ObjectBuilder {
    let uuid = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "id",
            string().description(Some(
                "`<transactionId>:<line>`: the same for the same event however often the ledger is rebuilt",
            )),
        )
        .property("transactionId", uuid().description(Some("The event's id")))
        .property(
            "referenceId",
            uuid().description(Some(
                "The transfer's or hold's reference, else the event's id",
            )),
        )
        .property(
            "walletId",
            identifier_schema().description(Some("The wallet whose event the transaction records")),
        )
        .property("account", string().pattern(Some(ACCOUNT_PATTERN)))
        .property("entryType", string().enum_values(Some(["CREDIT", "DEBIT"])))
        .property(
            "transactionType",
            string().enum_values(Some(TransactionType::ALL.map(TransactionType::as_str))),
        )
        .property(
            "amount",
            money_schema().description(Some("Exact, positive or 0, with 2 decimal places")),
        )
        .property("description", string())
        .property(
            "createdAt",
            string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("When the event occurred (UTC, milliseconds)")),
        )
        .required("id")
        .required("transactionId")
        .required("referenceId")
        .required("walletId")
        .required("account")
        .required("entryType")
        .required("transactionType")
        .required("amount")
        .required("description")
        .required("createdAt")
}
