//! Property tests over random command sequences.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, decode_snapshot, encode_snapshot, evolve, fold_as_of, holds_in, pending_at, replay,
    replay_as_of, Amount, AsOf, Balance, Command, CommandKind, EventMetadata, Hold, HoldId,
    HoldStatus, OwnerId, WalletEvent, WalletId, WalletState, WalletStatus,
};

const COMMANDS_PER_CASE_MAX: usize = 60;

#[derive(Debug, Clone)]
enum Step {
    Credit(i64),
    Debit(i64),
    TransferOut(i64),
    TransferIn(i64),
    SetLimit(i64),
    Freeze,
    Unfreeze,
    Close,
    /// A hold of these cents, expiring that many seconds after it is placed (or never).
    PlaceHold(i64, Option<i64>),
    /// Of the hold at this index (modulo the holds placed), these cents or all of it.
    Capture(usize, Option<i64>),
    Void(usize),
    Expire(usize),
}

/// Seconds between two commands of a case: holds expire within a few of them.
const SECONDS_PER_COMMAND: i64 = 10;

fn cents() -> impl Strategy<Value = i64> {
    prop_oneof![1i64..=100, 1i64..=1_000_000, Just(100_000_000_000_000i64)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        cents().prop_map(Step::Credit),
        cents().prop_map(Step::Debit),
        cents().prop_map(Step::TransferOut),
        cents().prop_map(Step::TransferIn),
        (0i64..=1_000_000).prop_map(Step::SetLimit),
        Just(Step::Freeze),
        Just(Step::Unfreeze),
        Just(Step::Close),
        (cents(), prop::option::of(1i64..=60))
            .prop_map(|(cents, expiry)| Step::PlaceHold(cents, expiry)),
        (0usize..8, prop::option::of(cents()))
            .prop_map(|(index, cents)| Step::Capture(index, cents)),
        (0usize..8).prop_map(Step::Void),
        (0usize..8).prop_map(Step::Expire),
    ]
}

fn hold_id_of(index: usize) -> HoldId {
    HoldId::parse(&format!("h-{index}")).expect("hold id")
}

fn amount_of(cents: i64) -> Amount {
    Amount::parse("amount", Decimal::new(cents, 2)).expect("generated amount is valid")
}

/// The command of `step`, the `sequence`-th of its case; `placed` holds were placed before it.
fn command_for(wallet_id: &WalletId, step: &Step, sequence: u32, placed: usize) -> Command {
    let other = WalletId::parse("counterparty").expect("id");
    let issued_at = Utc
        .timestamp_opt(1_700_000_000 + i64::from(sequence) * SECONDS_PER_COMMAND, 0)
        .single()
        .expect("time");
    let earlier_hold = |index: usize| hold_id_of(index % placed.max(1));
    let kind = match *step {
        Step::Credit(cents) => CommandKind::Credit {
            amount: amount_of(cents),
            description: None,
        },
        Step::Debit(cents) => CommandKind::Debit {
            amount: amount_of(cents),
            description: None,
        },
        Step::TransferOut(cents) => CommandKind::TransferOut {
            transfer_id: Uuid::new_v4(),
            to_wallet_id: other,
            amount: amount_of(cents),
            description: None,
        },
        Step::TransferIn(cents) => CommandKind::TransferIn {
            transfer_id: Uuid::new_v4(),
            from_wallet_id: other,
            amount: amount_of(cents),
            description: None,
        },
        Step::SetLimit(cents) => CommandKind::SetOverdraftLimit {
            overdraft_limit: Balance::limit("overdraftLimit", Decimal::new(cents, 2))
                .expect("generated limit is valid"),
        },
        Step::Freeze => CommandKind::Freeze,
        Step::Unfreeze => CommandKind::Unfreeze,
        Step::Close => CommandKind::Close,
        Step::PlaceHold(cents, expiry) => CommandKind::PlaceHold {
            hold_id: hold_id_of(placed),
            amount: amount_of(cents),
            expires_at: expiry.map(|seconds| issued_at + chrono::Duration::seconds(seconds)),
            description: None,
        },
        Step::Capture(index, cents) => CommandKind::CaptureHold {
            hold_id: earlier_hold(index),
            amount: cents.map(amount_of),
            to_wallet_id: None,
            description: None,
        },
        Step::Void(index) => CommandKind::VoidHold {
            hold_id: earlier_hold(index),
        },
        Step::Expire(index) => CommandKind::ExpireHold {
            hold_id: earlier_hold(index),
        },
    };
    Command {
        wallet_id: wallet_id.clone(),
        kind,
        event_id: Uuid::new_v4(),
        issued_at,
        metadata: EventMetadata::default(),
    }
}

fn create_command(wallet_id: &WalletId, opening: Balance) -> Command {
    Command {
        wallet_id: wallet_id.clone(),
        kind: CommandKind::Create {
            owner_id: OwnerId::parse("o").expect("owner"),
            initial_balance: opening,
            overdraft_limit: Balance::ZERO,
        },
        event_id: Uuid::new_v4(),
        issued_at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"),
        metadata: EventMetadata::default(),
    }
}

proptest! {
    #[test]
    fn balance_is_money_in_minus_money_out_never_below_the_limit_and_replayable(
        opening_cents in 0i64..=1_000_000,
        steps in prop::collection::vec(step(), 0..COMMANDS_PER_CASE_MAX),
        snapshot_at in any::<prop::sample::Index>(),
    ) {
        let wallet_id = WalletId::parse("w").expect("id");
        let opening = Balance::opening("initialBalance", Decimal::new(opening_cents, 2)).expect("opening");
        let create = create_command(&wallet_id, opening);
        let mut history: Vec<WalletEvent> = decide(&WalletState::Absent, &create).expect("create");
        let mut state = replay(&history);
        let mut expected = opening.value();
        let mut placed = 0;

        for (sequence, step) in steps.iter().enumerate() {
            let sequence = u32::try_from(sequence).expect("bounded");
            let command = command_for(&wallet_id, step, sequence + 1, placed);
            match decide(&state, &command) {
                Ok(events) => {
                    for event in &events {
                        let before = state.version();
                        prop_assert!(wallet_domain::continues(&state, event));
                        state = evolve(state, event);
                        prop_assert_eq!(state.version(), before + 1);
                        expected += event.signed_amount();
                        if matches!(event.kind, wallet_domain::EventKind::HoldPlaced { .. }) {
                            placed += 1;
                        }
                    }
                    history.extend(events);
                }
                Err(refusal) => {
                    let wallet = state.wallet().expect("open");
                    let money_in = matches!(step, Step::Credit(_) | Step::TransferIn(_));
                    prop_assert!(
                        !money_in || wallet.status == WalletStatus::Closed,
                        "money in is refused only by a closed wallet: {:?} {:?}", step, refusal
                    );
                }
            }
            let wallet = state.wallet().expect("open");
            prop_assert!(wallet.available_balance().value() >= -wallet.overdraft_limit.value());
            prop_assert_eq!(wallet.balance.value(), expected);
            let pending: Decimal = wallet.holds.values().map(|hold| hold.amount.value()).sum();
            prop_assert_eq!(wallet.held_balance.value(), pending);
            prop_assert_eq!(
                wallet.available_balance().value(),
                wallet.balance.value() - pending
            );
            // The state's pending holds at a clock are the log's, due ones left out.
            for clock in [command.issued_at, command.issued_at + chrono::Duration::seconds(3)] {
                let from_log: Vec<Hold> = holds_in(&history, clock)
                    .into_values()
                    .filter(|hold| hold.status == HoldStatus::Pending)
                    .collect();
                let from_state: Vec<Hold> = pending_at(wallet, clock).into_values().collect();
                prop_assert_eq!(from_state, from_log);
            }
            // The log's story of the holds (no clock: as the events left them) agrees.
            let told = holds_in(&history, chrono::DateTime::<Utc>::MIN_UTC);
            let pending_told: Vec<&HoldId> = told
                .values()
                .filter(|hold| hold.status == HoldStatus::Pending)
                .map(|hold| &hold.id)
                .collect();
            prop_assert_eq!(pending_told, wallet.holds.keys().collect::<Vec<_>>());
            // Money is conserved: what was captured left the balance exactly.
            let captured: Decimal = told.values().map(|hold| hold.captured_amount.value()).sum();
            let moved_plainly: Decimal = history
                .iter()
                .filter(|event| !matches!(event.kind, wallet_domain::EventKind::HoldCaptured { .. }))
                .map(WalletEvent::signed_amount)
                .sum();
            prop_assert_eq!(moved_plainly - captured, expected);
        }

        // A snapshot after any prefix, encoded and decoded, plus the events
        // after it, folds to the state of the whole stream.
        let cut = 1 + snapshot_at.index(history.len());
        let WalletState::Open(prefix) = replay(&history[..cut]) else {
            panic!("a stream that begins with a creation is open");
        };
        let text = encode_snapshot(&prefix).expect("encode snapshot");
        let restored = decode_snapshot(&text).expect("decode snapshot").expect("this schema");
        prop_assert_eq!(&restored, &prefix);
        let resumed = history[cut..].iter().fold(WalletState::Open(restored), evolve);
        prop_assert_eq!(&resumed, &state);

        prop_assert_eq!(replay(&history), state);
        let decoded: Vec<WalletEvent> = history
            .iter()
            .map(|event| WalletEvent::from_json(&event.to_json().expect("encode")).expect("decode"))
            .collect();
        prop_assert_eq!(decoded, history);
    }
}

proptest! {
    /// Whatever happened to the payer in between, a transfer's paying half and
    /// its reversal leave the payer's balance where the two found it, and the
    /// stream still replays to the same state.
    #[test]
    fn a_reversed_transfer_gives_the_payer_back_exactly_what_it_sent(
        opening_cents in 0i64..=1_000_000,
        sent_cents in cents(),
    ) {
        let wallet_id = WalletId::parse("w").expect("id");
        let opening = Balance::opening("initialBalance", Decimal::new(opening_cents, 2)).expect("opening");
        let create = create_command(&wallet_id, opening);
        let mut history = decide(&WalletState::Absent, &create).expect("create");
        let sent = command_for(&wallet_id, &Step::TransferOut(sent_cents), 1, 0);
        let CommandKind::TransferOut { transfer_id, to_wallet_id, amount, .. } = sent.kind.clone() else {
            unreachable!("a transfer out step makes a transfer out command");
        };
        match decide(&replay(&history), &sent) {
            Err(_) => prop_assert!(Decimal::new(sent_cents, 2) > opening.value()),
            Ok(events) => {
                history.extend(events);
                let reverse = Command {
                    kind: CommandKind::TransferReverse { transfer_id, to_wallet_id, amount },
                    event_id: Uuid::new_v4(),
                    ..sent
                };
                let reversed = decide(&replay(&history), &reverse).expect("a reversal refunds");
                prop_assert_eq!(reversed[0].kind.transfer_id(), Some(transfer_id));
                history.extend(reversed);
                let state = replay(&history);
                prop_assert_eq!(state.wallet().expect("open").balance, opening);
                prop_assert_eq!(state.version(), 3);
                let decoded: Vec<WalletEvent> = history
                    .iter()
                    .map(|event| WalletEvent::from_json(&event.to_json().expect("encode")).expect("decode"))
                    .collect();
                prop_assert_eq!(decoded, history);
            }
        }
    }
}

proptest! {
    /// Commands whose clocks run behind one another (replicas, a resumed
    /// transfer step) still leave a stream whose events never go back in
    /// time, and the wallet as of any event's time is the stream up to the
    /// last event at that time.
    #[test]
    fn a_stream_never_goes_back_in_time_whatever_the_commands_clocks(
        steps in prop::collection::vec((step(), -3 * SECONDS_PER_COMMAND..=0i64), 0..COMMANDS_PER_CASE_MAX),
    ) {
        let wallet_id = WalletId::parse("w").expect("id");
        let opening = Balance::opening("initialBalance", Decimal::new(100_000, 2)).expect("opening");
        let mut history: Vec<WalletEvent> =
            decide(&WalletState::Absent, &create_command(&wallet_id, opening)).expect("create");
        let mut state = replay(&history);
        let mut placed = 0;
        for (sequence, (step, skew_seconds)) in steps.iter().enumerate() {
            let sequence = u32::try_from(sequence).expect("bounded");
            let mut command = command_for(&wallet_id, step, sequence + 1, placed);
            command.issued_at += chrono::Duration::seconds(*skew_seconds);
            if let Ok(events) = decide(&state, &command) {
                for event in &events {
                    prop_assert!(event.occurred_at >= command.issued_at);
                    state = evolve(state, event);
                    placed += usize::from(matches!(event.kind, wallet_domain::EventKind::HoldPlaced { .. }));
                }
                history.extend(events);
            }
        }
        for (index, pair) in history.windows(2).enumerate() {
            prop_assert!(pair[0].occurred_at <= pair[1].occurred_at, "event {} goes back in time", index + 1);
        }
        for (index, event) in history.iter().enumerate() {
            let last_at_that_time = history.iter().rposition(|later| later.occurred_at <= event.occurred_at).unwrap_or(index);
            let whole = replay_as_of(&history, AsOf::Time(event.occurred_at));
            prop_assert_eq!(&whole, &replay(&history[..=last_at_that_time]));
            // From any earlier state on (a snapshot's), the same state.
            for cut in [0, index / 2, index] {
                let base = replay(&history[..=cut]);
                let folded = fold_as_of(base, &history[cut + 1..], AsOf::Time(event.occurred_at));
                prop_assert_eq!(&folded, &whole);
            }
        }
    }
}
