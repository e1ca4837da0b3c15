//! What the given / when / then tests share: commands built from short
//! text, and the fold of a history. Each test crate uses a part of it.
#![allow(dead_code)]

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, replay, Amount, Balance, Command, CommandKind, DomainError, EventMetadata, OwnerId,
    WalletEvent, WalletId,
};

/// The fixed clock of every command: 2025-10-23T10:00:00Z.
pub fn clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 10, 23, 10, 0, 0)
        .single()
        .expect("time")
}

pub fn wallet_id(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("test wallet id")
}

pub fn amount(text: &str) -> Amount {
    Amount::parse("amount", Decimal::from_str(text).expect("decimal")).expect("amount")
}

pub fn command(wallet: &str, kind: CommandKind) -> Command {
    Command {
        wallet_id: wallet_id(wallet),
        kind,
        event_id: Uuid::new_v4(),
        issued_at: clock(),
        metadata: EventMetadata::default(),
    }
}

pub fn create(wallet: &str, opening: &str) -> Command {
    command(
        wallet,
        CommandKind::Create {
            owner_id: OwnerId::parse("owner-1").expect("owner"),
            initial_balance: Balance::opening(
                "initialBalance",
                Decimal::from_str(opening).expect("decimal"),
            )
            .expect("balance"),
            overdraft_limit: Balance::ZERO,
        },
    )
}

pub fn money(text: &str) -> Balance {
    Balance::limit("overdraftLimit", Decimal::from_str(text).expect("decimal")).expect("limit")
}

pub fn set_limit(wallet: &str, limit: &str) -> Command {
    command(
        wallet,
        CommandKind::SetOverdraftLimit {
            overdraft_limit: money(limit),
        },
    )
}

pub fn transfer_out(wallet: &str, to: &str, value: &str) -> Command {
    command(
        wallet,
        CommandKind::TransferOut {
            transfer_id: Uuid::new_v4(),
            to_wallet_id: wallet_id(to),
            amount: amount(value),
            description: None,
        },
    )
}

pub fn transfer_in(wallet: &str, from: &str, value: &str) -> Command {
    command(
        wallet,
        CommandKind::TransferIn {
            transfer_id: Uuid::new_v4(),
            from_wallet_id: wallet_id(from),
            amount: amount(value),
            description: None,
        },
    )
}

pub fn credit(wallet: &str, value: &str) -> Command {
    command(
        wallet,
        CommandKind::Credit {
            amount: amount(value),
            description: None,
        },
    )
}

pub fn debit(wallet: &str, value: &str) -> Command {
    command(
        wallet,
        CommandKind::Debit {
            amount: amount(value),
            description: None,
        },
    )
}

/// Folds the given commands (each must succeed) and decides the last one.
#[track_caller]
pub fn given_when(given: &[Command], when: &Command) -> Result<Vec<WalletEvent>, DomainError> {
    let mut history = Vec::new();
    for earlier in given {
        let state = replay(&history);
        history.extend(decide(&state, earlier).expect("given command must succeed"));
    }
    decide(&replay(&history), when)
}

/// The wallet after the given commands (each must succeed) and `when` (must succeed).
#[track_caller]
pub fn state_after(given: &[Command], when: &Command) -> wallet_domain::Wallet {
    let mut history = Vec::new();
    for command in given.iter().chain([when]) {
        let state = replay(&history);
        history.extend(decide(&state, command).expect("command must succeed"));
    }
    replay(&history).wallet().expect("open").clone()
}
