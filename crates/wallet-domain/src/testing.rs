//! Wallet histories made by the domain itself, for other crates' tests that
//! need valid events (feature `testing`; never part of a binary).

use chrono::Utc;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    decide, evolve, Amount, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletEvent,
    WalletId, WalletState,
};

/// `length` more events for `wallet` after `before` (a creation first if it is empty).
pub fn continue_history(
    wallet: &WalletId,
    before: &[WalletEvent],
    length: usize,
) -> Vec<WalletEvent> {
    let mut state = before.iter().fold(WalletState::default(), evolve);
    let mut events = Vec::with_capacity(length);
    for index in 0..length {
        let kind = if before.is_empty() && index == 0 {
            CommandKind::Create {
                owner_id: OwnerId::parse("owner").expect("owner id"),
                initial_balance: Balance::opening("initialBalance", Decimal::from(10))
                    .expect("opening balance"),
                overdraft_limit: Balance::ZERO,
            }
        } else {
            CommandKind::Credit {
                amount: Amount::parse("amount", Decimal::new(100 + index as i64, 2))
                    .expect("amount"),
                description: None,
            }
        };
        let command = Command {
            wallet_id: wallet.clone(),
            kind,
            event_id: Uuid::now_v7(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        for event in decide(&state, &command).expect("the command is valid") {
            state = evolve(state, &event);
            events.push(event);
        }
    }
    events
}
