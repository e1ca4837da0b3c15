//! Given events, when a command, then events or an error.

mod support;

use support::*;
use uuid::Uuid;
use wallet_domain::{
    decide, decide_transfer, replay, replay_as_of, AsOf, Balance, CommandKind, DomainError,
    EventKind, OwnerId, WalletEvent, WalletState, WalletStatus,
};

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
fn creating_an_existing_wallet_for_another_owner_says_it_is_not_theirs() {
    let mut for_another = create("w1", "5");
    if let CommandKind::Create { owner_id, .. } = &mut for_another.kind {
        *owner_id = OwnerId::parse("owner-2").expect("owner");
    }
    let error = given_when(&[create("w1", "0")], &for_another).expect_err("taken");
    assert_eq!(
        error,
        DomainError::WalletOwnedByAnother {
            wallet_id: wallet_id("w1"),
            owner_id: OwnerId::parse("owner-2").expect("owner"),
        }
    );
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

#[test]
fn a_wallet_created_with_an_overdraft_limit_may_go_below_zero_down_to_it() {
    let mut create = create("w1", "10");
    if let CommandKind::Create {
        overdraft_limit, ..
    } = &mut create.kind
    {
        *overdraft_limit = money("50");
    }
    let events = given_when(std::slice::from_ref(&create), &debit("w1", "60")).expect("debit");
    assert_eq!(events[0].balance_after.value().to_string(), "-50.00");
    let error =
        given_when(&[create, debit("w1", "60")], &debit("w1", "0.01")).expect_err("past the limit");
    assert!(matches!(
        error,
        DomainError::InsufficientFunds { overdraft_limit, .. } if overdraft_limit.to_string() == "50.00"
    ));
}

#[test]
fn setting_an_overdraft_limit_moves_no_money_and_lets_transfers_out_overdraw() {
    let events = given_when(&[create("w1", "5")], &set_limit("w1", "100")).expect("limit");
    assert_eq!(events[0].type_name(), "OverdraftLimitSet");
    assert_eq!(events[0].amount(), Balance::ZERO);
    assert_eq!(events[0].balance_after.value().to_string(), "5.00");
    let wallet = state_after(
        &[create("w1", "5"), set_limit("w1", "100")],
        &transfer_out("w1", "w2", "105"),
    );
    assert_eq!(wallet.balance.value().to_string(), "-100.00");
    assert_eq!(wallet.overdraft_limit.value().to_string(), "100.00");
}

#[test]
fn setting_the_limit_a_wallet_has_changes_nothing() {
    let given = [create("w1", "5"), set_limit("w1", "100")];
    for same in ["100", "100.00"] {
        let events = given_when(&given, &set_limit("w1", same)).expect("no change");
        assert!(events.is_empty(), "{same}: {events:?}");
    }
    assert_eq!(
        given_when(&given, &set_limit("w1", "100.01"))
            .expect("change")
            .len(),
        1
    );
    let unlimited = given_when(&[create("w1", "5")], &set_limit("w1", "0")).expect("no change");
    assert!(unlimited.is_empty());
}

#[test]
fn setting_the_limit_a_wallet_has_under_an_idempotency_key_is_recorded() {
    let given = [create("w1", "5"), set_limit("w1", "100")];
    let mut keyed = set_limit("w1", "100");
    keyed.metadata.idempotency_key = Some("limit-1".into());
    let events = given_when(&given, &keyed).expect("recorded");
    assert_eq!(events.len(), 1, "its answer is kept with its event");
    assert_eq!(events[0].type_name(), "OverdraftLimitSet");
}

#[test]
fn lowering_the_limit_below_what_is_used_is_refused() {
    let given = [create("w1", "0"), set_limit("w1", "100"), debit("w1", "40")];
    let error = given_when(&given, &set_limit("w1", "39.99")).expect_err("in use");
    assert!(matches!(error, DomainError::OverdraftLimitInUse { .. }));
    assert!(given_when(&given, &set_limit("w1", "40")).is_ok());
}

#[test]
fn a_frozen_wallet_refuses_money_out_and_still_receives() {
    let given = [create("w1", "10"), command("w1", CommandKind::Freeze)];
    for refused in [debit("w1", "1"), transfer_out("w1", "w2", "1")] {
        let error = given_when(&given, &refused).expect_err("frozen");
        assert_eq!(error, DomainError::WalletFrozen(wallet_id("w1")));
        assert!(error.to_string().contains("frozen"));
    }
    assert!(given_when(&given, &credit("w1", "1")).is_ok());
    assert!(given_when(&given, &transfer_in("w1", "w2", "1")).is_ok());
}

#[test]
fn a_frozen_wallet_cannot_be_closed_until_unfrozen() {
    let frozen = [create("w1", "0"), command("w1", CommandKind::Freeze)];
    let error = given_when(&frozen, &command("w1", CommandKind::Close)).expect_err("frozen");
    assert_eq!(error, DomainError::WalletFrozen(wallet_id("w1")));
    let unfrozen = [
        create("w1", "0"),
        command("w1", CommandKind::Freeze),
        command("w1", CommandKind::Unfreeze),
    ];
    let wallet = state_after(&unfrozen, &command("w1", CommandKind::Close));
    assert_eq!(wallet.status, WalletStatus::Closed);
}

#[test]
fn unfreezing_lets_money_out_again_and_needs_a_frozen_wallet() {
    let wallet = state_after(
        &[create("w1", "10"), command("w1", CommandKind::Freeze)],
        &command("w1", CommandKind::Unfreeze),
    );
    assert_eq!(wallet.status, WalletStatus::Active);
    assert_eq!(wallet.version, 3);
    let error = given_when(&[create("w1", "10")], &command("w1", CommandKind::Unfreeze))
        .expect_err("not frozen");
    assert_eq!(error, DomainError::WalletNotFrozen(wallet_id("w1")));
}

#[test]
fn a_second_freeze_is_refused_as_already_frozen() {
    let frozen = [create("w1", "10"), command("w1", CommandKind::Freeze)];
    let error = given_when(&frozen, &command("w1", CommandKind::Freeze)).expect_err("frozen");
    assert_eq!(error, DomainError::WalletAlreadyFrozen(wallet_id("w1")));
    assert_eq!(error.to_string(), "Wallet w1 is already frozen");
}

#[test]
fn a_wallet_closes_only_at_zero_and_then_refuses_every_change() {
    let error = given_when(&[create("w1", "0.01")], &command("w1", CommandKind::Close))
        .expect_err("not empty");
    assert!(matches!(error, DomainError::WalletNotEmpty { .. }));
    let given = [create("w1", "0"), command("w1", CommandKind::Close)];
    for refused in [
        credit("w1", "1"),
        debit("w1", "1"),
        transfer_in("w1", "w2", "1"),
        set_limit("w1", "1"),
        command("w1", CommandKind::Freeze),
        command("w1", CommandKind::Unfreeze),
        command("w1", CommandKind::Close),
    ] {
        let error = given_when(&given, &refused).expect_err("closed");
        assert_eq!(error, DomainError::WalletClosed(wallet_id("w1")));
    }
}

#[test]
fn status_and_limit_events_round_trip_and_old_creations_decode_with_no_limit() {
    let given = [create("w1", "0"), set_limit("w1", "7.5")];
    for when in [
        set_limit("w1", "12"),
        command("w1", CommandKind::Freeze),
        command("w1", CommandKind::Close),
    ] {
        let events = given_when(&given, &when).expect("decided");
        let json = events[0].to_json().expect("encode");
        assert_eq!(WalletEvent::from_json(&json).expect("decode"), events[0]);
    }
    let old = r#"{"type":"WalletCreated","schemaVersion":1,"eventId":"0193f0c2-6d1e-7a8b-9c0d-1e2f3a4b5c6d","walletId":"w1","occurredAt":"2025-10-23T10:00:00Z","amount":1.00,"balanceAfter":1.00,"ownerId":"o","metadata":{"idempotencyKey":null,"correlationId":null,"causationId":null}}"#;
    let decoded = WalletEvent::from_json(old).expect("an old creation decodes");
    assert_eq!(decoded.kind.overdraft_limit(), Some(Balance::ZERO));
}

#[test]
fn a_wallet_as_of_a_time_or_a_version_is_the_state_its_events_up_to_then_made() {
    let mut history = Vec::new();
    let steps = [create("w1", "10"), credit("w1", "5"), debit("w1", "3")];
    for (minute, mut step) in steps.into_iter().enumerate() {
        step.issued_at += chrono::Duration::minutes(i64::try_from(minute).expect("small"));
        history.extend(decide(&replay(&history), &step).expect("step"));
    }
    let start = history[0].occurred_at;
    let before = replay_as_of(&history, AsOf::Time(start - chrono::Duration::seconds(1)));
    assert_eq!(before, WalletState::Absent);
    let at_credit = replay_as_of(&history, AsOf::Time(history[1].occurred_at));
    assert_eq!(at_credit, replay(&history[..2]));
    let between = replay_as_of(
        &history,
        AsOf::Time(history[1].occurred_at + chrono::Duration::seconds(30)),
    );
    assert_eq!(
        between.wallet().expect("open").balance.value().to_string(),
        "15.00"
    );
    assert_eq!(
        replay_as_of(&history, AsOf::Version(1)),
        replay(&history[..1])
    );
    assert_eq!(replay_as_of(&history, AsOf::Version(3)), replay(&history));
    assert_eq!(replay_as_of(&history, AsOf::Version(9)), replay(&history));
    assert_eq!(
        replay_as_of(&history, AsOf::Version(0)),
        WalletState::Absent
    );
}

#[test]
fn a_transfer_is_decided_on_both_wallets_at_once() {
    let payer = replay(&given_when(&[], &create("w1", "10")).expect("payer"));
    let payee = replay(&given_when(&[], &create("w2", "0")).expect("payee"));
    let out = transfer_out("w1", "w2", "4");
    let into = transfer_in("w2", "w1", "4");
    let (sent, received) = decide_transfer(&payer, &out, &payee, &into).expect("transfer");
    assert_eq!(sent[0].balance_after.value().to_string(), "6.00");
    assert_eq!(received[0].balance_after.value().to_string(), "4.00");

    let error = decide_transfer(&payer, &out, &WalletState::Absent, &into).expect_err("payee");
    assert_eq!(error, DomainError::WalletNotFound(wallet_id("w2")));
    let too_much = transfer_out("w1", "w2", "11");
    let error = decide_transfer(&WalletState::Absent, &too_much, &payee, &into)
        .expect_err("unknown before insufficient");
    assert_eq!(error, DomainError::WalletNotFound(wallet_id("w1")));
    let error = decide_transfer(&payer, &out, &payer, &out).expect_err("same wallet");
    assert_eq!(error, DomainError::SameWalletTransfer(wallet_id("w1")));
}

#[test]
fn a_command_whose_clock_is_behind_the_stream_is_stamped_at_its_last_event() {
    let created = create("w1", "10");
    let mut behind = credit("w1", "1");
    behind.issued_at = created.issued_at - chrono::Duration::seconds(2);
    let events = given_when(std::slice::from_ref(&created), &behind).expect("credit");
    assert_eq!(events[0].occurred_at, created.issued_at);
    let mut ahead = credit("w1", "1");
    ahead.issued_at = created.issued_at + chrono::Duration::seconds(2);
    let events = given_when(&[created], &ahead).expect("credit");
    assert_eq!(events[0].occurred_at, ahead.issued_at);
}
