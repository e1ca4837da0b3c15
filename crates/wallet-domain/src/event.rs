//! Events: immutable, past-tense facts about one wallet.
//!
//! On the wire an event is one flat JSON object whose `type` names the fact and
//! `schemaVersion` its shape, so a reader can refuse (or later upcast) a shape
//! it does not know instead of misreading it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{Description, HoldId, OwnerId, WalletId};
use crate::money::{Amount, Balance};
use crate::status::WalletStatus;

pub const EVENT_SCHEMA_VERSION: u16 = 1;

/// Where a command came from, carried by every event it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The authenticated principal (`sub`) that caused the event: the audit
    /// trail of who moved the money. Absent when unauthenticated, and in
    /// events stored before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new wallet holding `opening_balance`.
    WalletCreated {
        owner_id: OwnerId,
        /// The balance the wallet opens with (the wire's `amount`).
        opening_balance: Balance,
        /// Zero for wallets created before overdraft limits existed.
        overdraft_limit: Balance,
    },
    WalletCredited {
        amount: Amount,
        description: Option<Description>,
    },
    WalletDebited {
        amount: Amount,
        description: Option<Description>,
    },
    TransferSent {
        transfer_id: Uuid,
        to_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    TransferReceived {
        transfer_id: Uuid,
        from_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    /// The paying half of a transfer given back to the payer, because the
    /// receiving half could not happen: the transfer ends with no money moved.
    TransferReversed {
        transfer_id: Uuid,
        to_wallet_id: WalletId,
        amount: Amount,
    },
    /// The wallet's overdraft limit is now `overdraft_limit`. Moves no money.
    OverdraftLimitSet { overdraft_limit: Balance },
    /// Money out is refused from now on. Moves no money.
    WalletFrozen,
    /// Money out is allowed again. Moves no money.
    WalletUnfrozen,
    /// Every change is refused from now on. Moves no money.
    WalletClosed,
    /// `amount` is reserved: out of the available balance, still in the
    /// balance, until the hold is captured, voided or expires.
    HoldPlaced {
        hold_id: HoldId,
        amount: Amount,
        /// When the hold stops counting; `None`: never.
        expires_at: Option<DateTime<Utc>>,
        description: Option<Description>,
    },
    /// `amount` of the hold leaves the wallet (a debit, or to `to_wallet_id`,
    /// whose receiving event is [`EventKind::HoldCaptureReceived`]); the
    /// hold's `released` rest is available again.
    HoldCaptured {
        hold_id: HoldId,
        amount: Amount,
        released: Balance,
        to_wallet_id: Option<WalletId>,
        description: Option<Description>,
    },
    /// The money a capture to this wallet brought, from `from_wallet_id`'s hold.
    HoldCaptureReceived {
        hold_id: HoldId,
        from_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    /// A capture to another wallet given back to the payer, because the
    /// payee could not receive it (the capture ran as a process, one wallet
    /// at a time): `amount` returns to the wallet, the hold stays captured.
    HoldCaptureReversed {
        hold_id: HoldId,
        to_wallet_id: WalletId,
        amount: Amount,
    },
    /// The whole hold, `amount`, is available again. Moves no money.
    HoldVoided { hold_id: HoldId, amount: Amount },
    /// The hold passed its `expires_at`: `amount` is available again. Moves no money.
    HoldExpired { hold_id: HoldId, amount: Amount },
}

impl EventKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::WalletCreated { .. } => "WalletCreated",
            EventKind::WalletCredited { .. } => "WalletCredited",
            EventKind::WalletDebited { .. } => "WalletDebited",
            EventKind::TransferSent { .. } => "TransferSent",
            EventKind::TransferReceived { .. } => "TransferReceived",
            EventKind::TransferReversed { .. } => "TransferReversed",
            EventKind::OverdraftLimitSet { .. } => "OverdraftLimitSet",
            EventKind::WalletFrozen => "WalletFrozen",
            EventKind::WalletUnfrozen => "WalletUnfrozen",
            EventKind::WalletClosed => "WalletClosed",
            EventKind::HoldPlaced { .. } => "HoldPlaced",
            EventKind::HoldCaptured { .. } => "HoldCaptured",
            EventKind::HoldCaptureReceived { .. } => "HoldCaptureReceived",
            EventKind::HoldCaptureReversed { .. } => "HoldCaptureReversed",
            EventKind::HoldVoided { .. } => "HoldVoided",
            EventKind::HoldExpired { .. } => "HoldExpired",
        }
    }

    /// The amount the event moved: for a creation, the opening balance; zero
    /// for an event that moves no money (a limit, a freeze, a closing); for a
    /// hold's placing, void or expiry the amount held or released (the
    /// balance stays: see [`WalletEvent::signed_amount`]); for a capture the
    /// amount captured. This is the wire's `amount`.
    pub fn amount(&self) -> Balance {
        match self {
            EventKind::WalletCreated {
                opening_balance, ..
            } => *opening_balance,
            EventKind::OverdraftLimitSet { .. }
            | EventKind::WalletFrozen
            | EventKind::WalletUnfrozen
            | EventKind::WalletClosed => Balance::ZERO,
            EventKind::WalletCredited { amount, .. }
            | EventKind::WalletDebited { amount, .. }
            | EventKind::TransferSent { amount, .. }
            | EventKind::TransferReceived { amount, .. }
            | EventKind::TransferReversed { amount, .. }
            | EventKind::HoldPlaced { amount, .. }
            | EventKind::HoldCaptured { amount, .. }
            | EventKind::HoldCaptureReceived { amount, .. }
            | EventKind::HoldCaptureReversed { amount, .. }
            | EventKind::HoldVoided { amount, .. }
            | EventKind::HoldExpired { amount, .. } => Balance::from(*amount),
        }
    }

    /// The hold a hold event is about.
    pub fn hold_id(&self) -> Option<&HoldId> {
        match self {
            EventKind::HoldPlaced { hold_id, .. }
            | EventKind::HoldCaptured { hold_id, .. }
            | EventKind::HoldCaptureReceived { hold_id, .. }
            | EventKind::HoldCaptureReversed { hold_id, .. }
            | EventKind::HoldVoided { hold_id, .. }
            | EventKind::HoldExpired { hold_id, .. } => Some(hold_id),
            _ => None,
        }
    }

    /// How much the event takes out of the wallet's held balance: a hold's
    /// whole amount when it is captured, voided or expires.
    pub fn hold_settled(&self) -> Option<Balance> {
        match self {
            EventKind::HoldCaptured {
                amount, released, ..
            } => Balance::from(*amount).checked_plus(*released),
            EventKind::HoldVoided { amount, .. } | EventKind::HoldExpired { amount, .. } => {
                Some(Balance::from(*amount))
            }
            _ => None,
        }
    }

    pub fn transfer_id(&self) -> Option<Uuid> {
        match self {
            EventKind::TransferSent { transfer_id, .. }
            | EventKind::TransferReceived { transfer_id, .. }
            | EventKind::TransferReversed { transfer_id, .. } => Some(*transfer_id),
            _ => None,
        }
    }

    pub fn description(&self) -> Option<&Description> {
        match self {
            EventKind::WalletCreated { .. }
            | EventKind::TransferReversed { .. }
            | EventKind::HoldCaptureReversed { .. }
            | EventKind::OverdraftLimitSet { .. }
            | EventKind::WalletFrozen
            | EventKind::WalletUnfrozen
            | EventKind::WalletClosed
            | EventKind::HoldVoided { .. }
            | EventKind::HoldExpired { .. } => None,
            EventKind::WalletCredited { description, .. }
            | EventKind::WalletDebited { description, .. }
            | EventKind::TransferSent { description, .. }
            | EventKind::TransferReceived { description, .. }
            | EventKind::HoldPlaced { description, .. }
            | EventKind::HoldCaptured { description, .. }
            | EventKind::HoldCaptureReceived { description, .. } => description.as_ref(),
        }
    }

    /// The other wallet of a transfer: the payee for the paying half and its
    /// reversal, the payer for the receiving half; likewise for a capture to
    /// another wallet, its receiving event and its reversal.
    pub fn counterparty(&self) -> Option<&WalletId> {
        match self {
            EventKind::TransferSent { to_wallet_id, .. }
            | EventKind::TransferReversed { to_wallet_id, .. }
            | EventKind::HoldCaptureReversed { to_wallet_id, .. } => Some(to_wallet_id),
            EventKind::TransferReceived { from_wallet_id, .. }
            | EventKind::HoldCaptureReceived { from_wallet_id, .. } => Some(from_wallet_id),
            EventKind::HoldCaptured { to_wallet_id, .. } => to_wallet_id.as_ref(),
            _ => None,
        }
    }

    /// The status the event leaves the wallet in, for those that set one.
    pub fn status(&self) -> Option<WalletStatus> {
        match self {
            EventKind::WalletCreated { .. } | EventKind::WalletUnfrozen => {
                Some(WalletStatus::Active)
            }
            EventKind::WalletFrozen => Some(WalletStatus::Frozen),
            EventKind::WalletClosed => Some(WalletStatus::Closed),
            _ => None,
        }
    }

    /// The overdraft limit the event sets, for a creation and a limit change.
    pub fn overdraft_limit(&self) -> Option<Balance> {
        match self {
            EventKind::WalletCreated {
                overdraft_limit, ..
            }
            | EventKind::OverdraftLimitSet { overdraft_limit } => Some(*overdraft_limit),
            _ => None,
        }
    }
}

/// One fact about one wallet, with the balance it left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEvent {
    pub event_id: Uuid,
    pub wallet_id: WalletId,
    pub occurred_at: DateTime<Utc>,
    pub balance_after: Balance,
    pub metadata: EventMetadata,
    pub kind: EventKind,
}

impl WalletEvent {
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// The amount the event moved, held only by its kind: see
    /// [`EventKind::amount`].
    pub fn amount(&self) -> Balance {
        self.kind.amount()
    }

    /// How the event moved the balance, as seen from this wallet: money in
    /// is positive, money out negative; zero for a hold placed, voided or
    /// expired (it moves money between available and held, not the balance).
    pub fn signed_amount(&self) -> Decimal {
        match self.kind {
            EventKind::WalletDebited { .. }
            | EventKind::TransferSent { .. }
            | EventKind::HoldCaptured { .. } => -self.amount().value(),
            EventKind::HoldPlaced { .. }
            | EventKind::HoldVoided { .. }
            | EventKind::HoldExpired { .. } => Decimal::ZERO,
            _ => self.amount().value(),
        }
    }

    /// How the event moved the wallet's held balance: up by a hold placed,
    /// down by a hold's whole amount when it is captured, voided or expires.
    pub fn held_change(&self) -> Decimal {
        match &self.kind {
            EventKind::HoldPlaced { amount, .. } => amount.value(),
            kind => kind
                .hold_settled()
                .map_or(Decimal::ZERO, |settled| -settled.value()),
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&EventWire::from(self))
    }

    pub fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(EventWire::from(self))
    }

    pub fn from_json(text: &str) -> Result<Self, EventDecodeError> {
        let wire: EventWire = serde_json::from_str(text)?;
        WalletEvent::try_from(wire)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("event is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event schema version {0} is not supported (this build reads {EVENT_SCHEMA_VERSION})")]
    UnsupportedSchemaVersion(u16),
    #[error("event of type {event_type} lacks {field}")]
    MissingField {
        event_type: String,
        field: &'static str,
    },
    #[error("event of type {event_type} has an invalid {field}")]
    InvalidField {
        event_type: String,
        field: &'static str,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventWire {
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u16,
    event_id: Uuid,
    wallet_id: WalletId,
    occurred_at: DateTime<Utc>,
    amount: Balance,
    balance_after: Balance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner_id: Option<OwnerId>,
    /// Absent from creations stored before overdraft limits existed: zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overdraft_limit: Option<Balance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counterparty_wallet_id: Option<WalletId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hold_id: Option<HoldId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    /// A capture's released rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released_amount: Option<Balance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<Description>,
    metadata: MetadataWire,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataWire {
    idempotency_key: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transfer_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
}

impl From<&WalletEvent> for EventWire {
    fn from(event: &WalletEvent) -> Self {
        let owner_id = match &event.kind {
            EventKind::WalletCreated { owner_id, .. } => Some(owner_id.clone()),
            _ => None,
        };
        EventWire {
            event_type: event.type_name().to_owned(),
            schema_version: EVENT_SCHEMA_VERSION,
            event_id: event.event_id,
            wallet_id: event.wallet_id.clone(),
            occurred_at: event.occurred_at,
            amount: event.amount(),
            balance_after: event.balance_after,
            owner_id,
            overdraft_limit: event.kind.overdraft_limit(),
            counterparty_wallet_id: event.kind.counterparty().cloned(),
            hold_id: event.kind.hold_id().cloned(),
            expires_at: match &event.kind {
                EventKind::HoldPlaced { expires_at, .. } => *expires_at,
                _ => None,
            },
            released_amount: match &event.kind {
                EventKind::HoldCaptured { released, .. } => Some(*released),
                _ => None,
            },
            description: event.kind.description().cloned(),
            metadata: MetadataWire {
                idempotency_key: event.metadata.idempotency_key.clone(),
                correlation_id: event.metadata.correlation_id.clone(),
                causation_id: event.metadata.causation_id.clone(),
                transfer_id: event.kind.transfer_id(),
                principal: event.metadata.principal.clone(),
            },
        }
    }
}

impl TryFrom<EventWire> for WalletEvent {
    type Error = EventDecodeError;

    fn try_from(wire: EventWire) -> Result<Self, Self::Error> {
        if wire.schema_version != EVENT_SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedSchemaVersion(
                wire.schema_version,
            ));
        }
        let event_type = wire.event_type.clone();
        let missing = |field| EventDecodeError::MissingField {
            event_type: event_type.clone(),
            field,
        };
        let moved = || {
            Amount::parse("amount", wire.amount.value()).map_err(|_| {
                EventDecodeError::InvalidField {
                    event_type: event_type.clone(),
                    field: "amount",
                }
            })
        };
        let transfer_id = || {
            wire.metadata
                .transfer_id
                .ok_or_else(|| missing("metadata.transferId"))
        };
        let counterparty = || {
            wire.counterparty_wallet_id
                .clone()
                .ok_or_else(|| missing("counterpartyWalletId"))
        };
        let hold_id = || wire.hold_id.clone().ok_or_else(|| missing("holdId"));
        let description = wire.description.clone();
        let kind = match wire.event_type.as_str() {
            "WalletCreated" => EventKind::WalletCreated {
                owner_id: wire.owner_id.clone().ok_or_else(|| missing("ownerId"))?,
                opening_balance: wire.amount,
                overdraft_limit: wire.overdraft_limit.unwrap_or(Balance::ZERO),
            },
            "WalletCredited" => EventKind::WalletCredited {
                amount: moved()?,
                description,
            },
            "WalletDebited" => EventKind::WalletDebited {
                amount: moved()?,
                description,
            },
            "TransferSent" => EventKind::TransferSent {
                transfer_id: transfer_id()?,
                to_wallet_id: counterparty()?,
                amount: moved()?,
                description,
            },
            "TransferReceived" => EventKind::TransferReceived {
                transfer_id: transfer_id()?,
                from_wallet_id: counterparty()?,
                amount: moved()?,
                description,
            },
            "TransferReversed" => EventKind::TransferReversed {
                transfer_id: transfer_id()?,
                to_wallet_id: counterparty()?,
                amount: moved()?,
            },
            "OverdraftLimitSet" => EventKind::OverdraftLimitSet {
                overdraft_limit: wire
                    .overdraft_limit
                    .ok_or_else(|| missing("overdraftLimit"))?,
            },
            "WalletFrozen" => EventKind::WalletFrozen,
            "WalletUnfrozen" => EventKind::WalletUnfrozen,
            "WalletClosed" => EventKind::WalletClosed,
            "HoldPlaced" => EventKind::HoldPlaced {
                hold_id: hold_id()?,
                amount: moved()?,
                expires_at: wire.expires_at,
                description,
            },
            "HoldCaptured" => EventKind::HoldCaptured {
                hold_id: hold_id()?,
                amount: moved()?,
                released: wire
                    .released_amount
                    .ok_or_else(|| missing("releasedAmount"))?,
                to_wallet_id: wire.counterparty_wallet_id.clone(),
                description,
            },
            "HoldCaptureReceived" => EventKind::HoldCaptureReceived {
                hold_id: hold_id()?,
                from_wallet_id: counterparty()?,
                amount: moved()?,
                description,
            },
            "HoldCaptureReversed" => EventKind::HoldCaptureReversed {
                hold_id: hold_id()?,
                to_wallet_id: counterparty()?,
                amount: moved()?,
            },
            "HoldVoided" => EventKind::HoldVoided {
                hold_id: hold_id()?,
                amount: moved()?,
            },
            "HoldExpired" => EventKind::HoldExpired {
                hold_id: hold_id()?,
                amount: moved()?,
            },
            other => return Err(EventDecodeError::UnknownType(other.to_owned())),
        };
        // The kind is the only holder of the amount: a wire `amount` it does
        // not carry (a freeze that claims to move money) is refused, not dropped.
        if kind.amount() != wire.amount {
            return Err(EventDecodeError::InvalidField {
                event_type,
                field: "amount",
            });
        }
        Ok(WalletEvent {
            event_id: wire.event_id,
            wallet_id: wire.wallet_id,
            occurred_at: wire.occurred_at,
            balance_after: wire.balance_after,
            metadata: EventMetadata {
                idempotency_key: wire.metadata.idempotency_key,
                correlation_id: wire.metadata.correlation_id,
                causation_id: wire.metadata.causation_id,
                principal: wire.metadata.principal,
            },
            kind,
        })
    }
}
