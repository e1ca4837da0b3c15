//! The seed's `auditTrail` on a wallet read: what happened to the wallet, one
//! entry per event, oldest first, in the seed's words (its read model,
//! `wallet-read.repository.ts`, kept `{type, amount?, description,
//! occurredAt}` per event). Money in is `WalletCredited`, money out
//! `WalletDebited`, whatever moved it (a transfer, a capture), so a seed
//! client that adds the entries up finds the balance; `eventType` names the
//! event. A wallet's newest [`AUDIT_TRAIL_EVENTS_MAX`] events at most: the
//! whole history is `GET /wallets/{id}/transactions`, paged.

use std::sync::Arc;

use event_store::{EventStore, RecordedEvent, StoreError};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use wallet_domain::{Balance, EventKind, Wallet};

use super::dto::{money_schema, timestamp, WalletResponse};

/// Events a wallet read shows in its audit trail at most: its newest.
pub const AUDIT_TRAIL_EVENTS_MAX: u64 = 100;

/// One entry of a wallet's audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditTrailEntry {
    /// `WalletCreated`; `WalletCredited` for money in (a credit, a transfer
    /// or capture received, a reversal, the opening balance) and
    /// `WalletDebited` for money out (a debit, a transfer sent, a capture);
    /// for an event that moves no money, its type (`HoldPlaced`,
    /// `HoldVoided`, `HoldExpired`, `OverdraftLimitSet`, `WalletFrozen`,
    /// `WalletUnfrozen`, `WalletClosed`).
    #[serde(rename = "type")]
    #[schema(example = "WalletCredited")]
    kind: &'static str,
    /// The money moved, or held or released by a hold's event; absent for
    /// an event that moves none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = money_schema)]
    amount: Option<Balance>,
    /// The client's description, or what happened (`Wallet created`,
    /// `Initial balance`, `Credit`, `Transfer to <id>`, …).
    #[schema(example = "Monthly salary deposit")]
    description: String,
    #[schema(example = "2025-10-23T10:05:00.000Z")]
    occurred_at: String,
    /// The event's own type (`TransferSent`, `HoldCaptured`, …).
    #[schema(example = "WalletCredited")]
    event_type: &'static str,
    /// The wallet's version the event made.
    #[schema(example = 2)]
    version: u64,
}

/// `GET /wallets/{walletId}`: the wallet and its audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletReadResponse {
    #[serde(flatten)]
    wallet: WalletResponse,
    /// The wallet's newest events up to the version shown, oldest first (at
    /// most 100 events; a creation with an opening balance gives two
    /// entries, `WalletCreated` then `WalletCredited` "Initial balance", as
    /// the seed's).
    audit_trail: Vec<AuditTrailEntry>,
    /// Whether older events were left out of `auditTrail`.
    audit_trail_truncated: bool,
}

impl WalletReadResponse {
    /// `shown` (the wallet as the read shows it) with the audit trail of
    /// `wallet`'s events up to its version, read from `store`.
    pub async fn read(
        store: &Arc<dyn EventStore>,
        wallet: &Wallet,
        shown: &Wallet,
    ) -> Result<Self, StoreError> {
        let after = wallet.version.saturating_sub(AUDIT_TRAIL_EVENTS_MAX);
        let events = store
            .read_stream_until(&wallet.id, after, wallet.version)
            .await?;
        Ok(Self {
            wallet: WalletResponse::from(shown),
            audit_trail: events.iter().flat_map(entries).collect(),
            audit_trail_truncated: after > 0,
        })
    }
}

/// The entries of one event: two for a creation with an opening balance.
fn entries(recorded: &RecordedEvent) -> Vec<AuditTrailEntry> {
    let event = &recorded.event;
    let entry = |kind, amount, description| AuditTrailEntry {
        kind,
        amount,
        description,
        occurred_at: timestamp(&event.occurred_at),
        event_type: event.type_name(),
        version: recorded.stream_version,
    };
    if let EventKind::WalletCreated {
        opening_balance, ..
    } = &event.kind
    {
        let mut created = vec![entry("WalletCreated", None, "Wallet created".to_owned())];
        if opening_balance.value() > Decimal::ZERO {
            created.push(entry(
                "WalletCredited",
                Some(*opening_balance),
                "Initial balance".to_owned(),
            ));
        }
        return created;
    }
    let signed = event.signed_amount();
    let kind = if signed > Decimal::ZERO {
        "WalletCredited"
    } else if signed < Decimal::ZERO {
        "WalletDebited"
    } else {
        event.type_name()
    };
    let amount = Some(event.amount()).filter(|amount| amount.value() != Decimal::ZERO);
    vec![entry(kind, amount, ledger::posting::description(event))]
}
