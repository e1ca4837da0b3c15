//! The seed's `auditTrail` on a wallet read: what happened to the wallet, one
//! entry per event, oldest first, in the seed's words (its read model,
//! `wallet-read.repository.ts`, kept `{type, amount?, description,
//! occurredAt}` per event). Money in is `WalletCredited`, money out
//! `WalletDebited`, whatever moved it (a transfer, a capture), so a seed
//! client that adds the entries up finds the balance; `eventType` names the
//! event. A wallet's newest [`AUDIT_TRAIL_EVENTS_MAX`] events at most: the
//! whole history is `GET /wallets/{id}/transactions`, paged.

use std::sync::Arc;

use event_store::{EventStore, StoreError};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use wallet_domain::{Balance, EventKind, Wallet, WalletEvent};

use super::dto::{money_schema, timestamp, WalletResponse};
use crate::wallets::{RecentEvents, RECENT_EVENTS_PER_WALLET};

/// Events a wallet read shows in its audit trail at most: its newest, as
/// many as a cached wallet keeps, so a wallet read from the cache reads no
/// event again.
pub const AUDIT_TRAIL_EVENTS_MAX: u64 = RECENT_EVENTS_PER_WALLET as u64;

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
    /// `wallet` (as the read shows it: [`Wallet::seen_at`] changes its
    /// holds, not its version) with the audit trail of its events up to its
    /// version: from `recent` (the newest events, the last at `wallet`'s
    /// version) when it holds them all, else read from `store`.
    pub async fn read(
        store: &Arc<dyn EventStore>,
        wallet: &Wallet,
        recent: &RecentEvents,
    ) -> Result<Self, StoreError> {
        let after = wallet.version.saturating_sub(AUDIT_TRAIL_EVENTS_MAX);
        let count = (wallet.version - after) as usize;
        let audit_trail = match recent.newest(count, wallet.version) {
            Some(events) => events
                .into_iter()
                .flat_map(|(version, event)| entries(event, version))
                .collect(),
            None => store
                .read_stream_until(&wallet.id, after, wallet.version)
                .await?
                .iter()
                .flat_map(|recorded| entries(&recorded.event, recorded.stream_version))
                .collect(),
        };
        Ok(Self {
            wallet: WalletResponse::from(wallet),
            audit_trail,
            audit_trail_truncated: after > 0,
        })
    }
}

/// The entries of `event`, at `version` of its stream: two for a creation
/// with an opening balance.
fn entries(event: &WalletEvent, version: u64) -> Vec<AuditTrailEntry> {
    let entry = |kind, amount, description| AuditTrailEntry {
        kind,
        amount,
        description,
        occurred_at: timestamp(&event.occurred_at),
        event_type: event.type_name(),
        version,
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
