//! The hold directory on KurrentDB, without a multi-stream append or a
//! secondary index: "a hold id is placed once across every wallet" and
//! "which wallet holds this hold" by claim pointers, "which holds are due"
//! by a fold of the wallet log.
//!
//! # A hold id is claimed by a pointer to its `HoldPlaced`
//! Before a wallet append that places hold `h`, the writer records in the
//! pointer stream `hold-<h>` (a `HoldIdClaimed` event) the slot its
//! `HoldPlaced` is about to fill: the wallet stream and the version that
//! event gets. This is the idempotency key's scheme ([`crate::idempotency`]),
//! with the same decision ([`crate::idempotency::decide_reservation`]): the slot's event
//! certifies the claim, so
//! - a slot holding a `HoldPlaced` of `h` is the hold: the id is taken
//!   ([`event_store::AppendError::HoldIdTaken`]) and
//!   [`event_store::EventStore::find_hold_wallet`] answers that wallet;
//! - a slot holding another event is a dead claim (the writer's wallet
//!   append was refused, or it crashed and the wallet moved on): it answers
//!   nothing, and the id is free again;
//! - an empty slot may be a writer still in flight: another wallet is refused
//!   the id until that slot is filled; the same slot (a retry after a
//!   crash) competes for it, and the wallet stream's expected version lets
//!   one writer in.
//!
//! The claim is appended with the pointer stream's expected revision, so two
//! writers never both believe they added the last pointer. Why not a stream
//! per hold written *instead of* a pointer: the hold's truth must ride in the
//! wallet's own atomic append (its balance, its expiry decisions), and one
//! append cannot span two streams; a pointer that the wallet event certifies
//! keeps one source of truth and makes a dangling claim detectable.
//!
//! # Due holds: the log, folded in memory
//! The sweeper's due holds come from [`event_store::HoldSchedule`], a fold of
//! the wallet log (`read_all`, the relay's filtered `$all` read) kept in the
//! store's memory and caught up at each sweep, in bounded batches. Chosen
//! over a per-hold expiry read at start-up because the log is already
//! ordered and complete (a hold settled by any replica is seen), costs no
//! extra write per hold, and is the same code the embedded store's log is
//! tested with. The cost: each command-api replica reads the whole wallet log
//! once after its start (in bounded steps, a sweep at a time) and keeps one
//! entry per pending hold with an expiry; a hold not read yet is expired by
//! the next command on its wallet anyway.

use event_store::StreamAppend;
use wallet_domain::{EventKind, HoldId, WalletEvent, WalletId};

use crate::idempotency::Slot;

/// Event type of a claim in `hold-<id>`.
pub const HOLD_CLAIM_EVENT_TYPE: &str = "HoldIdClaimed";

/// Each hold the append places, with the slot its `HoldPlaced` fills in
/// `stream` (the append's wallet stream).
pub fn claimed_slots(stream: &str, append: &StreamAppend) -> Vec<(HoldId, Slot)> {
    (1u64..)
        .zip(&append.events)
        .filter_map(|(offset, event)| match &event.kind {
            EventKind::HoldPlaced { hold_id, .. } => Some((
                hold_id.clone(),
                Slot {
                    stream: stream.to_owned(),
                    version: append.expected_version + offset,
                },
            )),
            _ => None,
        })
        .collect()
}

/// The wallet a claimed slot's event answers for `hold_id`: its own, when it
/// places that hold; `None` for any other event (a dead claim).
pub fn wallet_placing(hold_id: &HoldId, event: &WalletEvent) -> Option<WalletId> {
    match &event.kind {
        EventKind::HoldPlaced {
            hold_id: placed, ..
        } if placed == hold_id => Some(event.wallet_id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use kurrentdb::StreamState;
    use rust_decimal::Decimal;
    use uuid::Uuid;
    use wallet_domain::{Amount, Balance, EventMetadata};

    use super::*;
    use crate::idempotency::{decide_reservation, Reservation, SlotState};

    fn hold_id(raw: &str) -> HoldId {
        HoldId::parse(raw).expect("hold id")
    }

    fn event(kind: EventKind) -> WalletEvent {
        WalletEvent {
            event_id: Uuid::new_v4(),
            wallet_id: WalletId::parse("w1").expect("wallet id"),
            occurred_at: Utc::now(),
            balance_after: Balance::ZERO,
            metadata: EventMetadata::default(),
            kind,
        }
    }

    fn placed(raw: &str) -> WalletEvent {
        event(EventKind::HoldPlaced {
            hold_id: hold_id(raw),
            amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
            expires_at: None,
            description: None,
        })
    }

    fn slot(stream: &str, version: u64) -> Slot {
        Slot {
            stream: stream.into(),
            version,
        }
    }

    #[test]
    fn each_hold_placed_claims_the_version_its_event_gets() {
        let append = StreamAppend {
            wallet_id: WalletId::parse("w1").expect("wallet id"),
            expected_version: 4,
            expected_last_event_id: None,
            events: vec![event(EventKind::WalletFrozen), placed("h-1"), placed("h-2")],
        };
        assert_eq!(
            claimed_slots("wallet-w1", &append),
            [
                (hold_id("h-1"), slot("wallet-w1", 6)),
                (hold_id("h-2"), slot("wallet-w1", 7))
            ]
        );
    }

    #[test]
    fn only_a_hold_placed_of_that_id_certifies_a_claim() {
        let h1 = hold_id("h-1");
        assert_eq!(
            wallet_placing(&h1, &placed("h-1")),
            Some(WalletId::parse("w1").expect("wallet id"))
        );
        assert_eq!(wallet_placing(&h1, &placed("h-2")), None);
        assert_eq!(wallet_placing(&h1, &event(EventKind::WalletFrozen)), None);
    }

    #[test]
    fn a_hold_id_placed_on_one_wallet_is_refused_to_another_and_a_dead_claim_frees_it() {
        let w1 = WalletId::parse("w1").expect("wallet id");
        let live = [(slot("wallet-w1", 2), SlotState::Filled(Some(w1)))];
        assert_eq!(
            decide_reservation(&live, &slot("wallet-w2", 2), Some(0)),
            Reservation::Taken
        );
        let dead: [(Slot, SlotState<WalletId>); 1] =
            [(slot("wallet-w1", 2), SlotState::Filled(None))];
        assert_eq!(
            decide_reservation(&dead, &slot("wallet-w2", 2), Some(0)),
            Reservation::Add(StreamState::StreamRevision(0))
        );
        let in_flight: [(Slot, SlotState<WalletId>); 1] =
            [(slot("wallet-w1", 2), SlotState::Empty)];
        assert_eq!(
            decide_reservation(&in_flight, &slot("wallet-w2", 2), Some(0)),
            Reservation::Taken
        );
    }
}
