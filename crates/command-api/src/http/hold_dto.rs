//! The wire contract of holds: request bodies as parsed, responses as sent.

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{ObjectBuilder, Type};
use utoipa::ToSchema;
use uuid::Uuid;
use wallet_domain::{
    kept_expiry, Amount, Balance, Description, Hold, HoldId, HoldStatus, WalletId,
    HOLD_ID_LENGTH_MAX,
};

use super::body::JsonObject;
use super::dto::{
    amount_schema, description, description_schema, identifier_schema, money_schema,
    stored_description_schema, timestamp,
};
use super::error::ApiError;
use super::query;

/// What a hold id accepts: 1 to 128 characters, none a control character.
pub const HOLD_ID_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]{1,128}$";

/// A hold id: 1 to 128 characters, none a control character.
pub fn hold_id_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(HOLD_ID_LENGTH_MAX))
        .pattern(Some(HOLD_ID_PATTERN))
        .examples(["h-1"])
}

fn status_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(HoldStatus::ALL.map(HoldStatus::as_str)))
}

fn optional_instant_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
        .pattern(Some(query::INSTANT_PATTERN))
}

/// What a hold id chosen at placement accepts: 1 to 128 letters, digits,
/// '-' and '_' (a wallet id's characters, so it reads the same in a path, with
/// no dot segment a client or proxy would collapse and nothing to escape),
/// and no version-5 UUID in the two forms those characters can spell
/// (hyphenated, or 32 hex digits): the negative lookahead of ECMA-262, the
/// regular expressions of JSON Schema. Holds placed before this rule keep
/// their ids and stay reachable ([`HOLD_ID_PATTERN`] in paths).
pub const CHOSEN_HOLD_ID_PATTERN: &str = concat!(
    r"^(?![0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-5[0-9A-Fa-f]{3}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
    r"|[0-9A-Fa-f]{12}5[0-9A-Fa-f]{19}$)",
    r"[A-Za-z0-9_-]{1,128}$"
);

/// The `holdId` of a placement: [`CHOSEN_HOLD_ID_PATTERN`], and no version-5
/// UUID: the server derived those from a placement's `Idempotency-Key` until
/// 2026-12-03, and a client choosing one could learn whether a key was used
/// then (the id taken: 409).
fn chosen_hold_id(raw: &str) -> Result<HoldId, ApiError> {
    let allowed = !raw.is_empty()
        && raw.chars().count() <= HOLD_ID_LENGTH_MAX
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !allowed {
        return Err(ApiError::BadRequest(format!(
            "holdId must be 1 to {HOLD_ID_LENGTH_MAX} characters, each a letter, a digit, '-' or '_'"
        )));
    }
    if Uuid::try_parse(raw).is_ok_and(|id| id.get_version_num() == 5) {
        return Err(ApiError::BadRequest(
            "holdId may not be a version-5 UUID: those are ids the server derived from an \
             Idempotency-Key; choose another form (a v4 or v7 UUID, or your own reference)"
                .into(),
        ));
    }
    Ok(HoldId::parse(raw)?)
}

fn optional_chosen_hold_id_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(HOLD_ID_LENGTH_MAX))
        .pattern(Some(CHOSEN_HOLD_ID_PATTERN))
        .description(Some(
            "The hold's id, unique across every wallet: 1 to 128 ASCII letters, digits, '-' or \
             '_', and not a version-5 UUID (hyphenated or 32 hex digits: ids the server derived \
             from an Idempotency-Key). Absent or null: the server makes one (a UUID v7).",
        ))
        .examples(["h-1"])
}

fn optional_identifier_schema() -> ObjectBuilder {
    identifier_schema().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn optional_amount_schema() -> ObjectBuilder {
    amount_schema().schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
}

/// A hold as every hold endpoint shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldResponse {
    #[schema(schema_with = hold_id_schema)]
    pub id: String,
    #[schema(schema_with = identifier_schema)]
    pub wallet_id: String,
    /// The amount held.
    #[schema(schema_with = held_amount_schema)]
    pub amount: Balance,
    /// What a capture took (0.00 unless `CAPTURED`).
    #[schema(schema_with = captured_amount_schema)]
    pub captured_amount: Balance,
    #[schema(schema_with = status_schema)]
    pub status: &'static str,
    /// When it stops counting; null: never.
    #[schema(schema_with = hold_expiry_schema)]
    pub expires_at: Option<String>,
    #[schema(schema_with = stored_description_schema)]
    pub description: Option<String>,
    /// The wallet a capture paid; null for a capture that was a debit, or none.
    #[schema(schema_with = paid_wallet_schema)]
    pub to_wallet_id: Option<String>,
    #[schema(example = "2025-10-23T10:00:00.000Z")]
    pub created_at: String,
    #[schema(example = "2025-10-23T10:05:00.000Z")]
    pub updated_at: String,
}

impl From<&Hold> for HoldResponse {
    fn from(hold: &Hold) -> Self {
        Self {
            id: hold.id.to_string(),
            wallet_id: hold.wallet_id.to_string(),
            amount: Balance::from(hold.amount),
            captured_amount: hold.captured_amount,
            status: hold.status.as_str(),
            expires_at: hold.expires_at.as_ref().map(timestamp),
            description: hold
                .description
                .as_ref()
                .map(|text| text.as_str().to_owned()),
            to_wallet_id: hold.to_wallet_id.as_ref().map(ToString::to_string),
            created_at: timestamp(&hold.created_at),
            updated_at: timestamp(&hold.updated_at),
        }
    }
}

/// `GET /wallets/{walletId}/holds`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletHoldsResponse {
    #[schema(schema_with = identifier_schema)]
    pub wallet_id: String,
    #[schema(example = 1)]
    pub count: usize,
    pub holds: Vec<HoldResponse>,
}

/// `POST /wallets/{walletId}/holds`
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct PlaceHoldRequest {
    #[schema(schema_with = amount_schema)]
    pub amount: Amount,
    /// The hold's id: letters, digits, '-' and '_', and not a version-5 UUID
    /// (those are the ids the server derives from an Idempotency-Key); the
    /// server makes one (a UUID) when absent or null.
    #[schema(schema_with = optional_chosen_hold_id_schema, required = false)]
    pub hold_id: Option<HoldId>,
    /// RFC 3339, in the future; the hold never expires when absent or null.
    #[schema(schema_with = requested_expiry_schema, required = false)]
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(schema_with = description_schema)]
    pub description: Option<Description>,
}

impl PlaceHoldRequest {
    pub const FIELDS: &'static [&'static str] = &["amount", "holdId", "expiresAt", "description"];

    /// The request as written. Whether `expiresAt` is still in the future is
    /// the domain's decision (`DomainError::HoldExpiryNotInFuture`), made
    /// after the idempotency key is looked up: a retry of a hold placed
    /// before its expiry passed is answered with the stored reply.
    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        let expires_at = body
            .optional_string("expiresAt")?
            .map(|raw| {
                query::instant(raw)
                    .filter(|asked| kept_expiry(*asked).year() <= query::INSTANT_YEAR_MAX)
                    .ok_or_else(|| {
                        ApiError::BadRequest(
                            "expiresAt must be an RFC 3339 date-time with seconds and an offset \
                             (2026-11-30T12:00:00Z), a real second, at most 9 digits after its \
                             point, in a year up to 9999 once rounded up to the millisecond \
                             (the precision an expiry is kept at)"
                                .into(),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            amount: Amount::parse("amount", body.required_decimal("amount")?)?,
            hold_id: body
                .optional_string("holdId")?
                .map(chosen_hold_id)
                .transpose()?,
            expires_at,
            description: description(body)?,
        })
    }
}

/// `POST /holds/{holdId}/capture`
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct CaptureHoldRequest {
    /// At most the held amount; the whole of it when absent or null.
    #[schema(schema_with = capture_amount_schema, required = false)]
    pub amount: Option<Amount>,
    /// Pays this wallet (all or nothing); a debit when absent or null.
    #[schema(schema_with = payee_schema, required = false)]
    pub to_wallet_id: Option<WalletId>,
    #[schema(schema_with = description_schema)]
    pub description: Option<Description>,
}

impl CaptureHoldRequest {
    pub const FIELDS: &'static [&'static str] = &["amount", "toWalletId", "description"];

    pub fn parse(body: &JsonObject) -> Result<Self, ApiError> {
        Ok(Self {
            amount: body
                .optional_decimal("amount")?
                .map(|amount| Amount::parse("amount", amount))
                .transpose()?,
            to_wallet_id: body
                .optional_string("toWalletId")?
                .map(|raw| WalletId::parse_field("toWalletId", raw))
                .transpose()?,
            description: description(body)?,
        })
    }
}

described_schema! {
    held_amount_schema = money_schema, "The amount held. Exact decimal, 2 places";
    captured_amount_schema = money_schema,
        "What a capture took: 0.00 unless CAPTURED. Exact decimal, 2 places";
    hold_expiry_schema = optional_instant_schema,
        "When the hold stops counting (RFC 3339, UTC, to the millisecond: one asked with \
         finer digits is rounded up, and stops counting then); null: never";
    paid_wallet_schema = optional_identifier_schema,
        "The wallet a capture paid; null for a capture that was a debit, or a hold not captured";
    requested_expiry_schema = optional_instant_schema,
        "When the hold expires: an RFC 3339 date-time with seconds and an offset, a real \
         second in the future; finer digits than milliseconds are rounded up (the hold never \
         stops counting before the instant asked), and the UTC year of that millisecond is at \
         most 9999; the hold never expires when absent or null";
    capture_amount_schema = optional_amount_schema,
        "How much to take: greater than 0, at most the held amount, at most 2 decimal places \
         (exact decimal); the whole of it when absent or null";
    payee_schema = optional_identifier_schema,
        "The wallet the capture pays (all or nothing), not the hold's own; the capture is a \
         debit of the hold's wallet when absent or null";
}
