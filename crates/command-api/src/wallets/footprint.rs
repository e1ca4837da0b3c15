//! What a cached wallet and its kept events take in memory, approximately:
//! the text they hold plus a fixed allowance per item for the structs, the
//! allocations and the cache's own slot. The cache's bound is in these
//! bytes (`WALLET_CACHE_MIB`, `cache::WALLET_CACHE_MIB_DEFAULT`). The allowances were measured on
//! the embedded default (anonymous memory of the server per cached item:
//! about 0.5 KiB an event with little text, 3 KiB with a 2 KB description).

use wallet_domain::{EventKind, EventMetadata, Wallet, WalletEvent};

/// Bytes a cached wallet takes besides its text and holds.
pub const WALLET_BYTES_FIXED: u64 = 1_024;
/// Bytes a pending hold takes besides its id and description.
pub const HOLD_BYTES_FIXED: u64 = 512;
/// Bytes a kept event takes besides its text.
pub const EVENT_BYTES_FIXED: u64 = 512;

/// `wallet`'s approximate bytes in memory, its pending holds included.
pub fn wallet_bytes(wallet: &Wallet) -> u64 {
    let holds: u64 = wallet
        .holds
        .iter()
        .map(|(hold_id, hold)| {
            HOLD_BYTES_FIXED
                + text(hold_id.as_str())
                + hold.description.as_ref().map_or(0, |d| text(d.as_str()))
        })
        .sum();
    WALLET_BYTES_FIXED + text(wallet.id.as_str()) + text(wallet.owner_id.as_str()) + holds
}

/// `event`'s approximate bytes in memory.
pub fn event_bytes(event: &WalletEvent) -> u64 {
    EVENT_BYTES_FIXED
        + text(event.wallet_id.as_str())
        + metadata_bytes(&event.metadata)
        + kind_text_bytes(&event.kind)
}

fn metadata_bytes(metadata: &EventMetadata) -> u64 {
    [
        &metadata.idempotency_key,
        &metadata.correlation_id,
        &metadata.causation_id,
        &metadata.principal,
    ]
    .into_iter()
    .map(|field| field.as_deref().map_or(0, text))
    .sum()
}

/// The ids and description an event of this kind carries.
fn kind_text_bytes(kind: &EventKind) -> u64 {
    let (ids, description): (Vec<&str>, _) = match kind {
        EventKind::WalletCreated { owner_id, .. } => (vec![owner_id.as_str()], None),
        EventKind::WalletCredited { description, .. }
        | EventKind::WalletDebited { description, .. } => (vec![], description.as_ref()),
        EventKind::TransferSent {
            to_wallet_id: other,
            description,
            ..
        }
        | EventKind::TransferReceived {
            from_wallet_id: other,
            description,
            ..
        } => (vec![other.as_str()], description.as_ref()),
        EventKind::TransferReversed { to_wallet_id, .. } => (vec![to_wallet_id.as_str()], None),
        EventKind::HoldPlaced {
            hold_id,
            description,
            ..
        } => (vec![hold_id.as_str()], description.as_ref()),
        EventKind::HoldCaptured {
            hold_id,
            to_wallet_id,
            description,
            ..
        } => (
            [
                Some(hold_id.as_str()),
                to_wallet_id.as_ref().map(|id| id.as_str()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            description.as_ref(),
        ),
        EventKind::HoldCaptureReceived {
            hold_id,
            from_wallet_id,
            description,
            ..
        } => (
            vec![hold_id.as_str(), from_wallet_id.as_str()],
            description.as_ref(),
        ),
        EventKind::HoldCaptureReversed {
            hold_id,
            to_wallet_id,
            ..
        } => (vec![hold_id.as_str(), to_wallet_id.as_str()], None),
        EventKind::HoldVoided { hold_id, .. } | EventKind::HoldExpired { hold_id, .. } => {
            (vec![hold_id.as_str()], None)
        }
        EventKind::OverdraftLimitSet { .. }
        | EventKind::WalletFrozen
        | EventKind::WalletUnfrozen
        | EventKind::WalletClosed => (vec![], None),
    };
    ids.into_iter().map(text).sum::<u64>() + description.map_or(0, |d| text(d.as_str()))
}

fn text(value: &str) -> u64 {
    value.len() as u64
}
