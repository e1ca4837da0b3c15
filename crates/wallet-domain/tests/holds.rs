//! Holds, given events / when a command / then events or an error, on the
//! fixed clock of `support::clock()`.

mod support;

use chrono::{DateTime, Duration, Utc};
use support::*;
use uuid::Uuid;
use wallet_domain::{
    capture_halves, capture_received, decide, decide_capture, evolve, holds_in, replay, Command,
    CommandKind, DomainError, EventKind, HoldId, HoldStatus, WalletEvent, WalletState,
    PENDING_HOLDS_MAX,
};

fn hold_id(raw: &str) -> HoldId {
    HoldId::parse(raw).expect("test hold id")
}

fn place(wallet: &str, id: &str, value: &str, expires_at: Option<DateTime<Utc>>) -> Command {
    command(
        wallet,
        CommandKind::PlaceHold {
            hold_id: hold_id(id),
            amount: amount(value),
            expires_at,
            description: None,
        },
    )
}

fn capture(wallet: &str, id: &str, value: Option<&str>, to: Option<&str>) -> Command {
    command(
        wallet,
        CommandKind::CaptureHold {
            hold_id: hold_id(id),
            amount: value.map(amount),
            to_wallet_id: to.map(wallet_id),
            description: None,
        },
    )
}

fn void(wallet: &str, id: &str) -> Command {
    command(
        wallet,
        CommandKind::VoidHold {
            hold_id: hold_id(id),
        },
    )
}

fn expire(wallet: &str, id: &str) -> Command {
    command(
        wallet,
        CommandKind::ExpireHold {
            hold_id: hold_id(id),
        },
    )
}

/// `when`, issued `seconds` after the fixed clock.
fn later(mut when: Command, seconds: i64) -> Command {
    when.issued_at += Duration::seconds(seconds);
    when
}

/// The history of the given commands, each of which must succeed.
#[track_caller]
fn history(given: &[Command]) -> Vec<WalletEvent> {
    let mut events = Vec::new();
    for command in given {
        let state = replay(&events);
        events.extend(decide(&state, command).expect("given command must succeed"));
    }
    events
}

fn in_a_minute() -> Option<DateTime<Utc>> {
    Some(clock() + Duration::minutes(1))
}

#[test]
fn a_hold_reserves_money_without_moving_the_balance() {
    let events = given_when(&[create("w1", "100")], &place("w1", "h1", "25", None)).expect("hold");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_name(), "HoldPlaced");
    assert_eq!(events[0].balance_after.value().to_string(), "100.00");
    assert_eq!(events[0].signed_amount().to_string(), "0");
    let wallet = state_after(&[create("w1", "100")], &place("w1", "h1", "25", None));
    assert_eq!(wallet.held_balance.value().to_string(), "25.00");
    assert_eq!(wallet.available_balance().value().to_string(), "75.00");
    assert_eq!(wallet.balance.value().to_string(), "100.00");
}

#[test]
fn a_hold_needs_that_much_available_counting_the_limit_and_other_holds() {
    let given = [create("w1", "100"), place("w1", "h1", "60", None)];
    let error = given_when(&given, &place("w1", "h2", "40.01", None)).expect_err("too much");
    assert!(
        matches!(error, DomainError::InsufficientFunds { balance, .. } if balance.to_string() == "40.00")
    );
    assert!(given_when(&given, &place("w1", "h2", "40", None)).is_ok());
    let limited = [
        create("w1", "100"),
        set_limit("w1", "10"),
        place("w1", "h1", "60", None),
    ];
    assert!(given_when(&limited, &place("w1", "h2", "50", None)).is_ok());
    assert!(given_when(&limited, &place("w1", "h2", "50.01", None)).is_err());
}

#[test]
fn debits_and_transfers_out_check_the_available_balance() {
    let given = [create("w1", "100"), place("w1", "h1", "60", None)];
    let error = given_when(&given, &debit("w1", "40.01")).expect_err("held");
    assert!(matches!(error, DomainError::InsufficientFunds { .. }));
    assert!(given_when(&given, &transfer_out("w1", "w2", "40.01")).is_err());
    assert!(given_when(&given, &debit("w1", "40")).is_ok());
}

#[test]
fn a_refusal_on_a_wallet_with_holds_names_the_available_balance() {
    let given = [create("w1", "100"), place("w1", "h1", "60", None)];
    let error = given_when(&given, &debit("w1", "40.01")).expect_err("held");
    assert_eq!(
        error.to_string(),
        "Insufficient funds in wallet w1: available balance 40.00 (60.00 held), requested 40.01"
    );
    let nothing_held =
        given_when(&[create("w1", "100")], &debit("w1", "100.01")).expect_err("too much");
    assert_eq!(
        nothing_held.to_string(),
        "Insufficient funds in wallet w1: balance 100.00, requested 100.01"
    );
    let with_a_limit = [
        create("w1", "100"),
        set_limit("w1", "20"),
        place("w1", "h1", "90", None),
    ];
    let error = given_when(&with_a_limit, &debit("w1", "30.01")).expect_err("over the limit");
    assert_eq!(
        error.to_string(),
        "Insufficient funds in wallet w1: available balance 10.00 (90.00 held), overdraft limit 20.00, requested 30.01"
    );
}

#[test]
fn a_hold_id_is_used_once_per_wallet() {
    let given = [create("w1", "100"), place("w1", "h1", "1", None)];
    let error = given_when(&given, &place("w1", "h1", "1", None)).expect_err("twice");
    assert_eq!(error, DomainError::HoldAlreadyExists(hold_id("h1")));
}

#[test]
fn setting_the_limit_again_still_records_the_holds_due() {
    let given = [create("w1", "100"), place("w1", "h1", "25", in_a_minute())];
    let same = later(set_limit("w1", "0"), 61);
    let events = given_when(&given, &same).expect("expiry only");
    let kinds: Vec<&str> = events.iter().map(|event| event.type_name()).collect();
    assert_eq!(kinds, ["HoldExpired"]);
}

#[test]
fn an_expiry_must_be_after_the_clock() {
    let error = given_when(
        &[create("w1", "100")],
        &place("w1", "h1", "1", Some(clock())),
    )
    .expect_err("now is not the future");
    assert_eq!(error, DomainError::HoldExpiryNotInFuture(hold_id("h1")));
}

#[test]
fn capturing_the_whole_hold_takes_it_out_as_a_debit() {
    let given = [create("w1", "100"), place("w1", "h1", "25", None)];
    let events = given_when(&given, &capture("w1", "h1", None, None)).expect("capture");
    assert_eq!(events.len(), 1);
    let EventKind::HoldCaptured {
        amount, released, ..
    } = &events[0].kind
    else {
        panic!("a capture makes HoldCaptured, not {:?}", events[0].kind);
    };
    assert_eq!(amount.value().to_string(), "25.00");
    assert_eq!(released.value().to_string(), "0.00");
    assert_eq!(events[0].balance_after.value().to_string(), "75.00");
    let wallet = state_after(&given, &capture("w1", "h1", None, None));
    assert_eq!(wallet.held_balance.value().to_string(), "0.00");
    assert_eq!(wallet.available_balance().value().to_string(), "75.00");
}

#[test]
fn capturing_less_releases_the_rest() {
    let given = [create("w1", "100"), place("w1", "h1", "25", None)];
    let events = given_when(&given, &capture("w1", "h1", Some("10"), None)).expect("capture");
    assert!(matches!(
        &events[0].kind,
        EventKind::HoldCaptured { released, .. } if released.value().to_string() == "15.00"
    ));
    let wallet = state_after(&given, &capture("w1", "h1", Some("10"), None));
    assert_eq!(wallet.balance.value().to_string(), "90.00");
    assert_eq!(wallet.available_balance().value().to_string(), "90.00");
}

#[test]
fn capturing_more_than_held_is_refused() {
    let given = [create("w1", "100"), place("w1", "h1", "25", None)];
    let error = given_when(&given, &capture("w1", "h1", Some("25.01"), None)).expect_err("more");
    assert!(matches!(error, DomainError::CaptureExceedsHold { .. }));
}

#[test]
fn a_hold_is_settled_once() {
    let base = [create("w1", "100"), place("w1", "h1", "25", None)];
    for settle in [capture("w1", "h1", None, None), void("w1", "h1")] {
        let given = [base[0].clone(), base[1].clone(), settle];
        for again in [capture("w1", "h1", None, None), void("w1", "h1")] {
            let error = given_when(&given, &again).expect_err("not pending");
            assert!(
                matches!(error, DomainError::HoldNotPending { status: None, .. }),
                "{error:?}"
            );
        }
    }
}

#[test]
fn voiding_makes_the_whole_hold_available_again() {
    let given = [create("w1", "100"), place("w1", "h1", "25", None)];
    let events = given_when(&given, &void("w1", "h1")).expect("void");
    assert_eq!(events[0].type_name(), "HoldVoided");
    assert_eq!(events[0].balance_after.value().to_string(), "100.00");
    let wallet = state_after(&given, &void("w1", "h1"));
    assert_eq!(wallet.available_balance().value().to_string(), "100.00");
    assert!(wallet.holds.is_empty());
}

#[test]
fn a_frozen_wallet_refuses_new_holds_and_captures_but_voids() {
    let given = [
        create("w1", "100"),
        place("w1", "h1", "25", None),
        command("w1", CommandKind::Freeze),
    ];
    for refused in [
        place("w1", "h2", "1", None),
        capture("w1", "h1", None, None),
    ] {
        let error = given_when(&given, &refused).expect_err("frozen");
        assert_eq!(error, DomainError::WalletFrozen(wallet_id("w1")));
        assert!(error.to_string().contains("frozen"));
    }
    assert!(given_when(&given, &void("w1", "h1")).is_ok());
}

#[test]
fn a_settled_hold_on_a_frozen_wallet_is_not_pending_whether_or_not_its_expiry_is_recorded() {
    let voided = [
        create("w1", "100"),
        place("w1", "h1", "25", None),
        void("w1", "h1"),
        command("w1", CommandKind::Freeze),
    ];
    let error = given_when(&voided, &capture("w1", "h1", None, None)).expect_err("settled");
    assert!(
        matches!(&error, DomainError::HoldNotPending { hold_id: id, .. } if *id == hold_id("h1")),
        "{error:?}"
    );
    // Expired: the same answer before the sweeper records the expiry (the
    // capture finds it due) and after (the hold is gone from the wallet).
    let expiring = [
        create("w1", "100"),
        place("w1", "h1", "25", in_a_minute()),
        command("w1", CommandKind::Freeze),
    ];
    let unswept =
        given_when(&expiring, &later(capture("w1", "h1", None, None), 61)).expect_err("expired");
    let mut swept_history = history(&expiring);
    swept_history
        .extend(decide(&replay(&swept_history), &later(expire("w1", "h1"), 60)).expect("swept"));
    let swept = decide(
        &replay(&swept_history),
        &later(capture("w1", "h1", None, None), 61),
    )
    .expect_err("expired and recorded");
    for error in [unswept, swept] {
        assert!(
            matches!(&error, DomainError::HoldNotPending { hold_id: id, .. } if *id == hold_id("h1")),
            "{error:?}"
        );
    }
}

#[test]
fn a_wallet_with_a_pending_hold_cannot_close_and_a_closed_one_refuses_holds() {
    let given = [
        create("w1", "0"),
        set_limit("w1", "10"),
        place("w1", "h1", "5", None),
    ];
    let error = given_when(&given, &command("w1", CommandKind::Close)).expect_err("pending");
    assert!(matches!(
        error,
        DomainError::WalletHasPendingHolds { count: 1, .. }
    ));
    let closed = [create("w1", "0"), command("w1", CommandKind::Close)];
    let error = given_when(&closed, &place("w1", "h1", "1", None)).expect_err("closed");
    assert_eq!(error, DomainError::WalletClosed(wallet_id("w1")));
}

#[test]
fn a_due_hold_expires_before_the_next_command_so_its_money_is_available_again() {
    let given = [create("w1", "100"), place("w1", "h1", "60", in_a_minute())];
    let debit_now = debit("w1", "50");
    assert!(given_when(&given, &debit_now).is_err(), "still held");
    let events = given_when(&given, &later(debit("w1", "50"), 60)).expect("released");
    let types: Vec<&str> = events.iter().map(WalletEvent::type_name).collect();
    assert_eq!(types, ["HoldExpired", "WalletDebited"]);
    assert_ne!(events[0].event_id, events[1].event_id);
    assert_eq!(events[0].balance_after.value().to_string(), "100.00");
    let mut all = history(&given);
    all.extend(events);
    let wallet = replay(&all).wallet().expect("open").clone();
    assert_eq!(wallet.held_balance.value().to_string(), "0.00");
    assert_eq!(wallet.balance.value().to_string(), "50.00");
}

/// An expiry with finer digits than the millisecond stops counting at the
/// next millisecond (`kept_expiry`): commands (on a clock to the
/// millisecond) and reads (on the exact one) find it due at that one
/// instant, the one its answer shows, never before the instant asked.
#[test]
fn an_expiry_finer_than_the_millisecond_stops_counting_at_the_next_one() {
    let asked = clock() + Duration::nanoseconds(1_000);
    let kept = clock() + Duration::milliseconds(1);
    // Asked a microsecond after the clock's millisecond: still in its future.
    let given = [create("w1", "100"), place("w1", "h1", "60", Some(asked))];
    let events = history(&given);
    let state = replay(&events);
    let wallet = state.wallet().expect("open");
    let hold = &holds_in(&events, asked)[&hold_id("h1")];
    assert_eq!(hold.expires_at, Some(kept));
    assert_eq!(
        hold.status,
        HoldStatus::Pending,
        "read at the instant asked"
    );
    assert_eq!(
        holds_in(&events, kept)[&hold_id("h1")].status,
        HoldStatus::Expired
    );
    assert_eq!(holds_in(&events, kept)[&hold_id("h1")].updated_at, kept);
    assert!(!wallet.holds[&hold_id("h1")].is_due(asked));
    assert!(wallet.holds[&hold_id("h1")].is_due(kept));
    // A capture at the clock's millisecond finds it pending, at the next
    // one expired.
    assert!(given_when(&given, &capture("w1", "h1", None, None)).is_ok());
    let mut at_kept = capture("w1", "h1", None, None);
    at_kept.issued_at = kept;
    assert!(given_when(&given, &at_kept).is_err(), "expired at {kept}");
}

#[test]
fn a_due_hold_cannot_be_captured_or_voided_it_is_expired() {
    let given = [create("w1", "100"), place("w1", "h1", "60", in_a_minute())];
    for when in [capture("w1", "h1", None, None), void("w1", "h1")] {
        let error = given_when(&given, &later(when, 60)).expect_err("expired");
        assert_eq!(
            error,
            DomainError::HoldNotPending {
                hold_id: hold_id("h1"),
                status: Some(HoldStatus::Expired)
            }
        );
        assert!(error.to_string().contains("EXPIRED"));
    }
    assert!(given_when(&given, &later(capture("w1", "h1", None, None), 59)).is_ok());
}

#[test]
fn an_expiry_a_command_records_is_not_the_callers_doing() {
    let given = [create("w1", "100"), place("w1", "h1", "60", in_a_minute())];
    let mut credit_later = later(credit("w1", "5"), 61);
    credit_later.metadata.principal = Some("gateway".into());
    credit_later.metadata.correlation_id = Some("request-1".into());
    let events = given_when(&given, &credit_later).expect("credited");
    let kinds: Vec<_> = events.iter().map(WalletEvent::type_name).collect();
    assert_eq!(kinds, ["HoldExpired", "WalletCredited"]);
    assert_eq!(events[0].metadata.principal, None, "time expired it");
    assert_eq!(
        events[0].metadata.correlation_id.as_deref(),
        Some("request-1")
    );
    assert_eq!(events[1].metadata.principal.as_deref(), Some("gateway"));
}

#[test]
fn the_sweeper_expires_a_due_hold_and_only_a_due_one() {
    let given = [create("w1", "100"), place("w1", "h1", "60", in_a_minute())];
    let error = given_when(&given, &expire("w1", "h1")).expect_err("not due");
    assert_eq!(error, DomainError::HoldNotDue(hold_id("h1")));
    let events = given_when(&given, &later(expire("w1", "h1"), 61)).expect("due");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_name(), "HoldExpired");
    let mut all = history(&given);
    all.extend(events);
    let error = decide(&replay(&all), &later(expire("w1", "h1"), 62)).expect_err("done");
    assert!(matches!(
        error,
        DomainError::HoldNotPending { status: None, .. }
    ));
}

#[test]
fn a_capture_to_another_wallet_is_decided_on_both_at_once() {
    let payer = replay(&history(&[
        create("w1", "100"),
        place("w1", "h1", "25", None),
    ]));
    let payee = replay(&history(&[create("w2", "0")]));
    let when = capture("w1", "h1", Some("20"), Some("w2"));
    let (sent, received) = decide_capture(&payer, &when, &payee).expect("capture");
    assert_eq!(sent[0].balance_after.value().to_string(), "80.00");
    assert_eq!(received.len(), 1);
    assert!(matches!(
        &received[0].kind,
        EventKind::HoldCaptureReceived { hold_id: id, from_wallet_id, amount, .. }
            if *id == hold_id("h1") && from_wallet_id.as_str() == "w1" && amount.value().to_string() == "20.00"
    ));
    assert_eq!(received[0].balance_after.value().to_string(), "20.00");
    assert_eq!(
        received[0].metadata.causation_id,
        Some(sent[0].event_id.to_string())
    );
    let again = capture_received(&sent[0]).expect("receiving half");
    assert_eq!(
        again.event_id, received[0].event_id,
        "derived, so a replay finds it"
    );

    let error = decide_capture(&payer, &when, &WalletState::Absent).expect_err("payee");
    assert_eq!(error, DomainError::WalletNotFound(wallet_id("w2")));
    let to_self = capture("w1", "h1", None, Some("w1"));
    let error = decide_capture(&payer, &to_self, &payer).expect_err("same");
    assert_eq!(error, DomainError::SameWalletTransfer(wallet_id("w1")));
    let closed = replay(&history(&[
        create("w2", "0"),
        command("w2", CommandKind::Close),
    ]));
    let error = decide_capture(&payer, &when, &closed).expect_err("closed payee");
    assert_eq!(error, DomainError::WalletClosed(wallet_id("w2")));
    let (debit_only, none) = decide_capture(
        &payer,
        &capture("w1", "h1", None, None),
        &WalletState::Absent,
    )
    .expect("a capture without a payee is a debit");
    assert_eq!(debit_only.len(), 1);
    assert!(none.is_empty());
}

#[test]
fn hold_events_round_trip_through_json_and_a_settled_hold_cannot_be_settled_again_in_the_log() {
    let all = history(&[
        create("w1", "100"),
        place("w1", "h1", "25", in_a_minute()),
        capture("w1", "h1", Some("5"), Some("w2")),
        place("w1", "h2", "1", None),
        void("w1", "h2"),
        place("w1", "h3", "2", in_a_minute()),
        later(expire("w1", "h3"), 60),
    ]);
    for event in &all {
        let decoded = WalletEvent::from_json(&event.to_json().expect("encode")).expect("decode");
        assert_eq!(&decoded, event);
    }
    // A second void of h2 does not continue the stream.
    let mut twice = all[4].clone();
    twice.event_id = Uuid::new_v4();
    assert!(!wallet_domain::continues(&replay(&all), &twice));
}

#[test]
fn a_holds_story_is_read_from_the_stream_at_a_clock() {
    let all = history(&[
        create("w1", "100"),
        place("w1", "h1", "25", None),
        capture("w1", "h1", Some("5"), None),
        place("w1", "h2", "1", in_a_minute()),
        place("w1", "h3", "1", None),
        void("w1", "h3"),
    ]);
    let now = holds_in(&all, clock());
    let status = |holds: &std::collections::BTreeMap<HoldId, wallet_domain::Hold>, id| {
        holds.get(&hold_id(id)).expect("hold").status
    };
    assert_eq!(status(&now, "h1"), HoldStatus::Captured);
    assert_eq!(
        now[&hold_id("h1")].captured_amount.value().to_string(),
        "5.00"
    );
    assert_eq!(status(&now, "h2"), HoldStatus::Pending);
    assert_eq!(status(&now, "h3"), HoldStatus::Voided);
    let after = holds_in(&all, clock() + Duration::minutes(1));
    assert_eq!(status(&after, "h2"), HoldStatus::Expired);
}

#[test]
fn a_capture_the_payee_refuses_is_reversed_to_the_payer_and_the_hold_stays_captured() {
    let given = history(&[
        create("w1", "100"),
        place("w1", "h1", "25", None),
        capture("w1", "h1", Some("20"), Some("w2")),
    ]);
    let captured = given.last().expect("the capture");
    let received = capture_received(captured).expect("a capture to a wallet");
    let capture_command = capture("w1", "h1", Some("20"), Some("w2"));
    let halves = capture_halves(&capture_command).expect("halves of a capture to a wallet");
    assert_eq!(halves.received.wallet_id, wallet_id("w2"));
    assert_eq!(
        halves.reversed.metadata.causation_id,
        Some(capture_command.event_id.to_string())
    );
    assert_ne!(halves.received.event_id, halves.reversed.event_id);
    assert_eq!(
        received.kind, halves.received.kind,
        "the atomic path and the process receive the same half"
    );

    let when = halves.reversed;
    let then = decide(&replay(&given), &when).expect("a reversal is always taken");
    assert_eq!(then.len(), 1);
    assert!(matches!(
        &then[0].kind,
        EventKind::HoldCaptureReversed { hold_id: id, to_wallet_id, amount }
            if *id == hold_id("h1") && to_wallet_id.as_str() == "w2" && amount.value().to_string() == "20.00"
    ));
    assert_eq!(then[0].balance_after.value().to_string(), "100.00");
    let decoded = WalletEvent::from_json(&then[0].to_json().expect("encode")).expect("decode");
    assert_eq!(decoded, then[0]);

    let mut all = given.clone();
    all.extend(then);
    let wallet = replay(&all).wallet().cloned().expect("wallet");
    assert_eq!(wallet.balance.value().to_string(), "100.00");
    assert!(wallet.holds.is_empty());
    let holds = holds_in(&all, clock());
    assert_eq!(holds[&hold_id("h1")].status, HoldStatus::Captured);

    assert!(capture_halves(&capture("w1", "h1", None, Some("w2"))).is_none());
    assert!(capture_halves(&capture("w1", "h1", Some("20"), None)).is_none());
}

#[test]
fn a_wallet_has_at_most_its_bound_of_pending_holds_and_a_settled_one_makes_room() {
    let mut state = replay(&history(&[create("w1", "1000")]));
    let decided = |state: WalletState, command: &Command| {
        let events = decide(&state, command)?;
        Ok::<_, DomainError>(events.iter().fold(state, evolve))
    };
    for n in 0..PENDING_HOLDS_MAX {
        state =
            decided(state, &place("w1", &format!("h{n}"), "0.01", None)).expect("within the bound");
    }
    let error = decided(state.clone(), &place("w1", "one-more", "0.01", None)).expect_err("beyond");
    assert_eq!(
        error,
        DomainError::TooManyPendingHolds {
            wallet_id: wallet_id("w1"),
            count: PENDING_HOLDS_MAX
        }
    );
    // Money is not what refuses it: a debit still passes.
    assert!(decided(state.clone(), &debit("w1", "1")).is_ok());
    for settle in [void("w1", "h0"), capture("w1", "h0", None, None)] {
        let Ok(room) = decided(state.clone(), &settle) else {
            continue;
        };
        assert!(decided(room, &place("w1", "one-more", "0.01", None)).is_ok());
    }
}

/// h101 F2: an expired hold's `updatedAt` read before the sweep recorded
/// its `HoldExpired` was its expiry, and after it the sweep's time. Given a
/// hold due in a minute, when the sweep expires it 90 s after the clock,
/// then it reads as expired at its expiry, before and after.
#[test]
fn an_expired_hold_is_updated_at_its_expiry_before_and_after_the_sweep() {
    let placed = [create("w1", "100"), place("w1", "h1", "25", in_a_minute())];
    let before_sweep = history(&placed);
    let expiry = clock() + Duration::minutes(1);
    let read_at = clock() + Duration::minutes(2);
    let seen = &holds_in(&before_sweep, read_at)[&hold_id("h1")];
    assert_eq!(
        (seen.status, seen.updated_at),
        (HoldStatus::Expired, expiry)
    );

    let mut swept = placed.to_vec();
    swept.push(later(expire("w1", "h1"), 90));
    let after_sweep = history(&swept);
    assert_eq!(
        after_sweep.last().map(|event| event.type_name()),
        Some("HoldExpired")
    );
    let recorded = &holds_in(&after_sweep, read_at)[&hold_id("h1")];
    assert_eq!(
        (recorded.status, recorded.updated_at),
        (HoldStatus::Expired, expiry),
        "the sweep's time does not move it"
    );
}
