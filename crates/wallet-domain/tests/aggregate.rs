//! Given events, when a command, then events or an error.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, replay, Amount, Balance, Command, CommandKind, DomainError, EventKind, EventMetadata,
    OwnerId, WalletEvent, WalletId, WalletState,
};

fn wallet_id(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("test wallet id")
}

fn amount(text: &str) -> Amount {
    Amount::parse("amount", Decimal::from_str(text).expect("decimal")).expect("amount")
}

fn command(wallet: &str, kind: CommandKind) -> Command {
    Command {
        wallet_id: wallet_id(wallet),
        kind,
        event_id: Uuid::new_v4(),
        issued_at: Utc
            .with_ymd_and_hms(2025, 10, 23, 10, 0, 0)
            .single()
            .expect("time"),
        metadata: EventMetadata::default(),
    }
}

fn create(wallet: &str, opening: &str) -> Command {
    command(
        wallet,
        CommandKind::Create {
            owner_id: OwnerId::parse("owner-1").expect("owner"),
            initial_balance: Balance::opening(
                "initialBalance",
                Decimal::from_str(opening).expect("decimal"),
            )
            .expect("balance"),
        },
    )
}

fn credit(wallet: &str, value: &str) -> Command {
    command(
        wallet,
        CommandKind::Credit {
            amount: amount(value),
            description: None,
        },
    )
}

fn debit(wallet: &str, value: &str) -> Command {
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
fn given_when(given: &[Command], when: &Command) -> Result<Vec<WalletEvent>, DomainError> {
    let mut history = Vec::new();
    for earlier in given {
        let state = replay(&history);
        history.extend(decide(&state, earlier).expect("given command must succeed"));
    }
    decide(&replay(&history), when)
}

#[test]
fn creating_a_wallet_opens_it_at_version_one_with_its_opening_balance() {
    let events = given_when(&[], &create("w1", "100.00")).expect("create");
    let state = replay(&events);
    let wallet = state.wallet().expect("wallet is open");
    assert_eq!(wallet.version, 1);
    assert_eq!(wallet.balance.value().to_string(), "100.00");
    assert_eq!(events[0].type_name(), "WalletCreated");
}

#[test]
fn creating_an_existing_wallet_is_refused() {
    let error = given_when(&[create("w1", "0")], &create("w1", "5")).expect_err("duplicate");
    assert_eq!(error, DomainError::WalletAlreadyExists(wallet_id("w1")));
}

#[test]
fn crediting_an_absent_wallet_is_not_found() {
    let error = given_when(&[], &credit("w1", "5")).expect_err("absent");
    assert_eq!(error, DomainError::WalletNotFound(wallet_id("w1")));
}

#[test]
fn debiting_more_than_the_balance_is_refused_with_the_numbers() {
    let error = given_when(&[create("w1", "10")], &debit("w1", "10.01")).expect_err("too much");
    assert!(matches!(error, DomainError::InsufficientFunds { .. }));
    assert!(error.to_string().contains("Insufficient funds"));
}

#[test]
fn debiting_the_whole_balance_leaves_zero() {
    let events = given_when(&[create("w1", "10")], &debit("w1", "10")).expect("debit");
    assert_eq!(events[0].balance_after, Balance::ZERO);
}

#[test]
fn a_transfer_to_the_same_wallet_is_refused() {
    let transfer = command(
        "w1",
        CommandKind::TransferOut {
            transfer_id: Uuid::new_v4(),
            to_wallet_id: wallet_id("w1"),
            amount: amount("1"),
            description: None,
        },
    );
    let error = given_when(&[create("w1", "10")], &transfer).expect_err("self transfer");
    assert_eq!(error, DomainError::SameWalletTransfer(wallet_id("w1")));
}

#[test]
fn transfer_halves_carry_the_transfer_id_and_counterparty() {
    let transfer_id = Uuid::new_v4();
    let sent = given_when(
        &[create("w1", "10")],
        &command(
            "w1",
            CommandKind::TransferOut {
                transfer_id,
                to_wallet_id: wallet_id("w2"),
                amount: amount("4"),
                description: None,
            },
        ),
    )
    .expect("transfer out");
    assert_eq!(sent[0].kind.transfer_id(), Some(transfer_id));
    assert_eq!(sent[0].balance_after.value().to_string(), "6.00");
    assert!(
        matches!(&sent[0].kind, EventKind::TransferSent { to_wallet_id, .. } if to_wallet_id.as_str() == "w2")
    );
}

#[test]
fn a_reversal_refunds_the_payer_and_names_the_payee() {
    let transfer_id = Uuid::new_v4();
    let sent = command(
        "w1",
        CommandKind::TransferOut {
            transfer_id,
            to_wallet_id: wallet_id("w2"),
            amount: amount("4"),
            description: None,
        },
    );
    let reverse = command(
        "w1",
        CommandKind::TransferReverse {
            transfer_id,
            to_wallet_id: wallet_id("w2"),
            amount: amount("4"),
        },
    );
    let given = [create("w1", "10"), sent];
    let reversed = given_when(&given, &reverse).expect("reversal");
    assert_eq!(reversed[0].type_name(), "TransferReversed");
    assert_eq!(reversed[0].balance_after.value().to_string(), "10.00");
    assert_eq!(reversed[0].signed_amount().to_string(), "4.00");
    assert_eq!(reversed[0].kind.counterparty(), Some(&wallet_id("w2")));
    let json = reversed[0].to_json().expect("encode");
    assert_eq!(WalletEvent::from_json(&json).expect("decode"), reversed[0]);
}

#[test]
fn a_refusal_round_trips_through_json() {
    let error = given_when(&[create("w1", "1")], &debit("w1", "2")).expect_err("refused");
    let json = serde_json::to_string(&error).expect("encode");
    let decoded: DomainError = serde_json::from_str(&json).expect("decode");
    assert_eq!(decoded, error);
    assert_eq!(decoded.to_string(), error.to_string());
}

#[test]
fn events_round_trip_through_json_exactly() {
    let events = given_when(&[create("w1", "0.1")], &credit("w1", "0.2")).expect("credit");
    let json = events[0].to_json().expect("encode");
    assert!(json.contains("\"balanceAfter\":0.30"), "{json}");
    assert!(json.contains("\"type\":\"WalletCredited\""), "{json}");
    assert_eq!(WalletEvent::from_json(&json).expect("decode"), events[0]);
}

#[test]
fn the_principal_rides_in_the_metadata_and_old_events_lack_it() {
    let mut event = given_when(&[], &create("w1", "1")).expect("create")[0].clone();
    let before = event.to_json().expect("encode");
    assert!(!before.contains("principal"), "{before}");
    assert_eq!(
        WalletEvent::from_json(&before)
            .expect("an event stored before principals decodes")
            .metadata
            .principal,
        None
    );
    event.metadata.principal = Some("user-456".into());
    let json = event.to_json().expect("encode");
    assert!(json.contains("\"principal\":\"user-456\""), "{json}");
    assert_eq!(WalletEvent::from_json(&json).expect("decode"), event);
}

#[test]
fn an_unknown_event_type_is_refused_on_decode() {
    let events = given_when(&[], &create("w1", "1")).expect("create");
    let json = events[0]
        .to_json()
        .expect("encode")
        .replace("WalletCreated", "WalletExploded");
    assert!(WalletEvent::from_json(&json).is_err());
}

#[test]
fn absent_state_has_version_zero() {
    assert_eq!(WalletState::Absent.version(), 0);
}

#[test]
fn an_event_continues_a_stream_only_from_the_balance_it_followed() {
    let created = decide(&WalletState::Absent, &create("w1", "10.00")).expect("created");
    assert!(wallet_domain::continues(&WalletState::Absent, &created[0]));
    let state = replay(&created);
    assert!(
        !wallet_domain::continues(&state, &created[0]),
        "a second creation"
    );
    let credit = command(
        "w1",
        CommandKind::Credit {
            amount: amount("5.00"),
            description: None,
        },
    );
    let credited = decide(&state, &credit).expect("credited");
    assert!(wallet_domain::continues(&state, &credited[0]));
    // The same credit decided on another balance does not continue this stream.
    let richer = replay(&decide(&WalletState::Absent, &create("w1", "20.00")).expect("created"));
    let elsewhere = decide(&richer, &credit).expect("credited");
    assert!(!wallet_domain::continues(&state, &elsewhere[0]));
    assert!(!wallet_domain::continues(
        &WalletState::Absent,
        &credited[0]
    ));
}
