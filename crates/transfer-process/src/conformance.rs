//! What every [`TransferJournal`] must do, and the process on a real store,
//! written once: each backend runs them all with
//! [`transfer_process_conformance_tests!`](crate::transfer_process_conformance_tests)
//! (the embedded store in this crate's tests, KurrentDB in the integration
//! tests, feature `conformance`). Each scenario takes an empty store and
//! journal.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use event_store::testing::CountingStore;
use event_store::{
    save_snapshot_of, AppendRequest, EventStore, SnapshotReplace, StreamAppend,
    SNAPSHOT_INTERVAL_EVENTS,
};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    decide, holds_in, replay, Amount, Balance, Command, CommandKind, DomainError, EventMetadata,
    Hold, HoldId, HoldStatus, OwnerId, Wallet, WalletId, WalletState,
};

use crate::{
    transfer_id_for_key, CaptureRequest, Ending, Half, JournalError, JournalRecord, ProcessError,
    Resumption, TransferAnswer, TransferIntent, TransferJournal, TransferProcess, TransferReply,
    TransferRequest, RESUME_ATTEMPTS_MAX,
};

/// A scenario handed a backend's empty store and journal, as the harness of
/// [`transfer_process_conformance_tests!`](crate::transfer_process_conformance_tests)
/// receives it.
pub type Scenario = Box<
    dyn FnOnce(Arc<dyn EventStore>, Arc<dyn TransferJournal>) -> Pin<Box<dyn Future<Output = ()>>>,
>;

/// The largest balance a wallet may hold: a payee there cannot be credited.
pub const NEAR_THE_MAXIMUM: Decimal = Decimal::MAX;

fn render(transfer_id: Uuid, from: &Wallet, to: &Wallet) -> Result<String, serde_json::Error> {
    serde_json::to_string(&serde_json::json!({
        "transfer": transfer_id,
        "from": [from.id.as_str(), from.balance.to_string(), from.version],
        "to": [to.id.as_str(), to.balance.to_string(), to.version],
    }))
}

fn render_capture(hold: &Hold) -> Result<String, serde_json::Error> {
    serde_json::to_string(&serde_json::json!({
        "hold": [hold.id.as_str(), hold.status.as_str(), hold.captured_amount.to_string()],
        "to": hold.to_wallet_id.as_ref().map(|wallet_id| wallet_id.as_str()),
    }))
}

/// A reply that shows the transfer's id and both wallets' balances and
/// versions, or the hold a capture settled.
pub const REPLY: TransferReply = TransferReply {
    status: 201,
    render,
    render_capture,
};

pub fn wallet_id(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("test wallet id")
}

pub fn money(text: &str) -> Decimal {
    Decimal::from_str(text).expect("test decimal")
}

pub async fn state(store: &dyn EventStore, wallet_id: &WalletId) -> WalletState {
    let stream = store.read_stream(wallet_id, 0).await.expect("read");
    replay(stream.iter().map(|recorded| &recorded.event))
}

/// Decides `kind` on the wallet as stored and appends it.
pub async fn execute(store: &dyn EventStore, wallet: &str, kind: CommandKind) {
    let wallet_id = wallet_id(wallet);
    let state = state(store, &wallet_id).await;
    let command = Command {
        wallet_id: wallet_id.clone(),
        kind,
        event_id: Uuid::now_v7(),
        issued_at: Utc::now(),
        metadata: EventMetadata::default(),
    };
    let events = decide(&state, &command).expect("test command is allowed");
    store
        .append(AppendRequest {
            streams: vec![StreamAppend {
                wallet_id,
                expected_version: state.version(),
                expected_last_event_id: None,
                events,
            }],
            idempotent_response: None,
        })
        .await
        .expect("append");
}

pub async fn create(store: &dyn EventStore, wallet: &str, opening: Decimal) {
    let kind = CommandKind::Create {
        owner_id: OwnerId::parse("owner").expect("owner"),
        initial_balance: Balance::try_from(opening).expect("test balance"),
        overdraft_limit: Balance::ZERO,
    };
    execute(store, wallet, kind).await;
}

pub async fn credit(store: &dyn EventStore, wallet: &str, amount: &str) {
    let kind = CommandKind::Credit {
        amount: Amount::parse("amount", money(amount)).expect("test amount"),
        description: None,
    };
    execute(store, wallet, kind).await;
}

pub async fn balance(store: &dyn EventStore, wallet: &str) -> Decimal {
    let state = state(store, &wallet_id(wallet)).await;
    state.wallet().expect("wallet exists").balance.value()
}

/// The types of the events of `transfer_id` on the wallet's stream, in order.
pub async fn halves(store: &dyn EventStore, wallet: &str, transfer_id: Uuid) -> Vec<&'static str> {
    let stream = store
        .read_stream(&wallet_id(wallet), 0)
        .await
        .expect("read");
    stream
        .iter()
        .filter(|recorded| recorded.event.kind.transfer_id() == Some(transfer_id))
        .map(|recorded| recorded.event.type_name())
        .collect()
}

/// A request with an idempotency key, as command-api makes one.
pub fn request(key: &str, from: &str, to: &str, amount: &str) -> TransferRequest {
    TransferRequest {
        transfer_id: transfer_id_for_key(key),
        intent: TransferIntent {
            from_wallet_id: wallet_id(from),
            to_wallet_id: wallet_id(to),
            amount: Amount::parse("amount", money(amount)).expect("test amount"),
            description: None,
            metadata: EventMetadata {
                idempotency_key: Some(key.to_owned()),
                correlation_id: Some("correlation".into()),
                causation_id: None,
                principal: Some("user-456".into()),
            },
            request_fingerprint: Some(format!("{from}->{to}:{amount}")),
            initiated_at: Utc
                .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
                .single()
                .expect("time"),
            hold_id: None,
        },
    }
}

// --- the journal ------------------------------------------------------------

pub async fn journal_records_append_in_order_and_a_stale_count_conflicts(
    _store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    let transfer_id = Uuid::new_v4();
    assert!(journal.read(transfer_id).await.expect("read").is_empty());
    let intent = JournalRecord::Initiated(request("key-1", "a", "b", "1.00").intent);
    journal
        .append(transfer_id, 0, &intent, 0)
        .await
        .expect("intent");
    let error = journal
        .append(transfer_id, 0, &intent, 0)
        .await
        .expect_err("a second intent");
    assert!(
        matches!(error, JournalError::Conflict { expected: 0, .. }),
        "{error:?}"
    );
    journal
        .append(transfer_id, 1, &JournalRecord::Debited, 0)
        .await
        .expect("debited");
    let error = journal
        .append(transfer_id, 1, &JournalRecord::Credited, 0)
        .await
        .expect_err("stale count");
    assert!(
        matches!(error, JournalError::Conflict { expected: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        journal.read(transfer_id).await.expect("read"),
        vec![intent, JournalRecord::Debited]
    );
}

pub async fn journal_lists_open_transfers_oldest_first_until_they_finish(
    _store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (index, transfer_id) in ids.iter().enumerate() {
        let intent = request(&format!("key-{index}"), "a", "b", "1.00").intent;
        journal
            .append(*transfer_id, 0, &JournalRecord::Initiated(intent), 0)
            .await
            .expect("intent");
    }
    assert_eq!(journal.unfinished(10).await.expect("open"), ids);
    assert_eq!(journal.unfinished(2).await.expect("open"), ids[..2]);
    let refusal = DomainError::WalletNotFound(wallet_id("b"));
    journal
        .append(
            ids[0],
            1,
            &JournalRecord::Finished(Ending::Failed { refusal }),
            0,
        )
        .await
        .expect("end");
    assert_eq!(journal.unfinished(10).await.expect("open"), ids[1..]);
    for transfer_id in &ids[1..] {
        let ending = Ending::Completed {
            status: 201,
            body: "{}".into(),
        };
        journal
            .append(*transfer_id, 1, &JournalRecord::Finished(ending), 0)
            .await
            .expect("end");
    }
    assert!(journal.unfinished(10).await.expect("open").is_empty());
}

// --- the process on a store ---------------------------------------------------

pub async fn a_transfer_runs_to_its_end_and_its_key_replays_it(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    let process = TransferProcess::new(Arc::clone(&store), journal, REPLY);
    let first = process
        .run(request("key-1", "payer", "payee", "40.00"))
        .await
        .expect("transfer");
    assert!(!first.replayed);
    let Ending::Completed { status: 201, body } = &first.ending else {
        panic!("completed, not {first:?}");
    };
    assert!(body.contains("\"60.00\""), "{body}");
    let again = process
        .run(request("key-1", "payer", "payee", "40.00"))
        .await
        .expect("retry");
    assert!(again.replayed);
    assert_eq!(again.ending, first.ending);
    assert_eq!(balance(&*store, "payer").await, money("60.00"));
    assert_eq!(balance(&*store, "payee").await, money("40.00"));
}

/// Credits of 0.01 the payer gets before the transfers: many snapshot intervals.
pub const LONG_HISTORY_CREDITS: u64 = 10 * SNAPSHOT_INTERVAL_EVENTS;

/// Wallet loads of one transfer: two for the refusals checked first, one per
/// half, two for the reply.
const LOADS_PER_TRANSFER_MAX: u64 = 6;

/// `count` credits of `amount`, decided one after another on the state the
/// previous one left (one read of the stream, not one per credit).
pub async fn credit_many(store: &dyn EventStore, wallet: &str, amount: &str, count: u64) {
    let wallet_id = wallet_id(wallet);
    let mut state = state(store, &wallet_id).await;
    for _ in 0..count {
        let command = Command {
            wallet_id: wallet_id.clone(),
            kind: CommandKind::Credit {
                amount: Amount::parse("amount", money(amount)).expect("test amount"),
                description: None,
            },
            event_id: Uuid::now_v7(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        let events = decide(&state, &command).expect("a credit is allowed");
        let expected_version = state.version();
        state = events.iter().fold(state, wallet_domain::evolve);
        store
            .append(AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: wallet_id.clone(),
                    expected_version,
                    expected_last_event_id: None,
                    events,
                }],
                idempotent_response: None,
            })
            .await
            .expect("append");
    }
}

/// A payer with [`LONG_HISTORY_CREDITS`] events and no snapshot: the first
/// transfer folds the whole stream once and stores a snapshot; a transfer
/// by a new process (as after a restart) then reads only tails, each under
/// the snapshot interval, however long the history.
pub async fn a_transfer_from_a_long_history_reads_a_bounded_tail(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    create(&*store, "payer", money("0")).await;
    create(&*store, "payee", money("0")).await;
    credit_many(&*store, "payer", "0.01", LONG_HISTORY_CREDITS).await;
    let first = TransferProcess::new(
        Arc::clone(&counting) as Arc<dyn EventStore>,
        Arc::clone(&journal),
        REPLY,
    );
    first
        .run(request("long-1", "payer", "payee", "1.00"))
        .await
        .expect("first transfer");

    let restarted =
        TransferProcess::new(Arc::clone(&counting) as Arc<dyn EventStore>, journal, REPLY);
    counting.reset();
    let second = restarted
        .run(request("long-2", "payer", "payee", "1.00"))
        .await
        .expect("second transfer");
    assert!(
        matches!(&second.ending, Ending::Completed { status: 201, .. }),
        "{second:?}"
    );
    let read = counting.stream_events_read();
    let bound = LOADS_PER_TRANSFER_MAX * (SNAPSHOT_INTERVAL_EVENTS + 1);
    assert!(
        read <= bound,
        "a transfer read {read} events, more than {bound}"
    );
    let expected =
        Decimal::new(i64::try_from(LONG_HISTORY_CREDITS).expect("small"), 2) - money("2.00");
    assert_eq!(balance(&*store, "payer").await, expected);
    assert_eq!(balance(&*store, "payee").await, money("2.00"));
}

/// Records an intent as a request would, without running it: what a crash
/// right after the intent leaves (the refusals checked at the start skipped).
async fn intent_left_by_a_crash(journal: &dyn TransferJournal, key: &str, amount: &str) -> Uuid {
    let request = request(key, "payer", "payee", amount);
    journal
        .append(
            request.transfer_id,
            0,
            &JournalRecord::Initiated(request.intent),
            0,
        )
        .await
        .expect("intent");
    request.transfer_id
}

pub async fn an_intent_left_by_a_crash_is_finished_by_the_resumption(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    let transfer_id = intent_left_by_a_crash(&*journal, "key-1", "30.00").await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    assert_eq!(balance(&*store, "payer").await, money("70.00"));
    assert_eq!(balance(&*store, "payee").await, money("30.00"));
    assert_eq!(
        halves(&*store, "payee", transfer_id).await,
        ["TransferReceived"]
    );
    assert!(journal.unfinished(10).await.expect("open").is_empty());
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        0
    );
}

/// A sweep leaves a transfer initiated after its cutoff to its request, and
/// takes it once the cutoff passes its initiation.
pub async fn a_transfer_still_in_flight_is_left_to_its_request(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    intent_left_by_a_crash(&*journal, "key-1", "30.00").await;
    // A second before the test intents' initiation.
    let before = Utc
        .with_ymd_and_hms(2026, 11, 25, 11, 59, 59)
        .single()
        .expect("time");
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    let young = process.resume_unfinished(before).await.expect("resume");
    assert_eq!((young.resumed, young.in_flight), (0, 1));
    assert_eq!(balance(&*store, "payer").await, money("100.00"));
    assert_eq!(journal.unfinished(10).await.expect("open").len(), 1);
    let due = process.resume_unfinished(Utc::now()).await.expect("resume");
    assert_eq!((due.resumed, due.in_flight), (1, 0));
    assert_eq!(balance(&*store, "payer").await, money("70.00"));
}

/// One transfer whose journal cannot be resumed (a record out of order) is
/// retried by each resumption, then set aside; the transfer behind it is
/// resumed from the first resumption on.
pub async fn a_transfer_that_keeps_failing_is_quarantined_and_the_others_resume(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    let broken = intent_left_by_a_crash(&*journal, "key-broken", "10.00").await;
    journal
        .append(broken, 1, &JournalRecord::Credited, 0)
        .await
        .expect("a record out of order");
    intent_left_by_a_crash(&*journal, "key-1", "30.00").await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    for attempt in 1..=RESUME_ATTEMPTS_MAX {
        let resumption = process.resume_unfinished(Utc::now()).await.expect("resume");
        assert_eq!(resumption.failed, 1, "attempt {attempt}");
        assert_eq!(
            resumption.resumed,
            usize::from(attempt == 1),
            "attempt {attempt}"
        );
        assert_eq!(
            resumption.quarantined,
            usize::from(attempt == RESUME_ATTEMPTS_MAX),
            "attempt {attempt}"
        );
    }
    assert_eq!(
        process.resume_unfinished(Utc::now()).await.expect("resume"),
        Resumption {
            quarantined: 1,
            ..Resumption::default()
        }
    );
    assert_eq!(process.quarantined(), 1);
    assert_eq!(balance(&*store, "payer").await, money("70.00"));
    assert_eq!(balance(&*store, "payee").await, money("30.00"));
}

pub async fn a_credit_the_payee_cannot_take_is_reversed(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", NEAR_THE_MAXIMUM).await;
    let transfer_id = intent_left_by_a_crash(&*journal, "key-1", "30.00").await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    assert_eq!(balance(&*store, "payer").await, money("100.00"));
    assert_eq!(balance(&*store, "payee").await, NEAR_THE_MAXIMUM);
    assert_eq!(
        halves(&*store, "payer", transfer_id).await,
        ["TransferSent", "TransferReversed"]
    );
    let retried = process
        .run(request("key-1", "payer", "payee", "30.00"))
        .await
        .expect("retry");
    assert_eq!(
        retried.ending,
        Ending::Failed {
            refusal: DomainError::BalanceOverflow(wallet_id("payee"))
        }
    );
}

// --- the capture of a hold to another wallet ----------------------------------

fn hold_id(raw: &str) -> HoldId {
    HoldId::parse(raw).expect("test hold id")
}

fn amount(text: &str) -> Amount {
    Amount::parse("amount", money(text)).expect("test amount")
}

/// Places hold `hold` of `amount` on the wallet, with no expiry.
pub async fn place_hold(store: &dyn EventStore, wallet: &str, hold: &str, amount_held: &str) {
    let kind = CommandKind::PlaceHold {
        hold_id: hold_id(hold),
        amount: amount(amount_held),
        expires_at: None,
        description: None,
    };
    execute(store, wallet, kind).await;
}

/// A capture of `hold` from `from` to `to` (of `captured`, or the whole
/// hold) with an idempotency key, as command-api makes one.
pub fn capture_request(
    key: &str,
    hold: &str,
    from: &str,
    to: &str,
    captured: Option<&str>,
) -> CaptureRequest {
    CaptureRequest {
        transfer_id: transfer_id_for_key(key),
        capture: Command {
            wallet_id: wallet_id(from),
            kind: CommandKind::CaptureHold {
                hold_id: hold_id(hold),
                amount: captured.map(amount),
                to_wallet_id: Some(wallet_id(to)),
                description: None,
            },
            event_id: Uuid::now_v7(),
            issued_at: Utc::now(),
            metadata: EventMetadata {
                idempotency_key: Some(key.to_owned()),
                correlation_id: Some("correlation".into()),
                causation_id: None,
                principal: Some("user-456".into()),
            },
        },
        request_fingerprint: Some(format!("capture {hold} {from}->{to}:{captured:?}")),
    }
}

/// The types of the events of hold `hold` on the wallet's stream, in order.
pub async fn hold_events(store: &dyn EventStore, wallet: &str, hold: &str) -> Vec<&'static str> {
    let stream = store
        .read_stream(&wallet_id(wallet), 0)
        .await
        .expect("read");
    stream
        .iter()
        .filter(|recorded| recorded.event.kind.hold_id() == Some(&hold_id(hold)))
        .map(|recorded| recorded.event.type_name())
        .collect()
}

/// What the hold's wallet's stream says of it now.
pub async fn hold_status(store: &dyn EventStore, wallet: &str, hold: &str) -> HoldStatus {
    let stream = store
        .read_stream(&wallet_id(wallet), 0)
        .await
        .expect("read");
    holds_in(stream.iter().map(|recorded| &recorded.event), Utc::now())
        .get(&hold_id(hold))
        .expect("the wallet has the hold")
        .status
}

/// Records the intent of a capture of `captured` as a request would, without
/// running it: what a crash right after the intent leaves.
async fn capture_left_by_a_crash(journal: &dyn TransferJournal, key: &str, captured: &str) -> Uuid {
    let request = capture_request(key, "h-1", "payer", "payee", Some(captured));
    let intent = TransferIntent {
        from_wallet_id: wallet_id("payer"),
        to_wallet_id: wallet_id("payee"),
        amount: amount(captured),
        description: None,
        metadata: request.capture.metadata.clone(),
        request_fingerprint: request.request_fingerprint.clone(),
        initiated_at: request.capture.issued_at,
        hold_id: Some(hold_id("h-1")),
    };
    journal
        .append(request.transfer_id, 0, &JournalRecord::Initiated(intent), 0)
        .await
        .expect("intent");
    request.transfer_id
}

pub async fn a_capture_to_another_wallet_runs_as_a_transfer_and_its_key_replays_it(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    place_hold(&*store, "payer", "h-1", "25.00").await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    let first = the_capture(&process).await;
    assert!(!first.replayed);
    let Ending::Completed { status: 201, body } = &first.ending else {
        panic!("completed, not {first:?}");
    };
    assert_eq!(body, r#"{"hold":["h-1","CAPTURED","20.00"],"to":"payee"}"#);
    assert_eq!(balance(&*store, "payer").await, money("80.00"));
    assert_eq!(balance(&*store, "payee").await, money("20.00"));
    assert_eq!(
        hold_events(&*store, "payer", "h-1").await,
        ["HoldPlaced", "HoldCaptured"]
    );
    assert_eq!(
        hold_events(&*store, "payee", "h-1").await,
        ["HoldCaptureReceived"]
    );
    let payer = state(&*store, &wallet_id("payer")).await;
    assert!(payer.wallet().expect("payer").holds.is_empty());

    let again = process
        .capture(capture_request(
            "key-1",
            "h-1",
            "payer",
            "payee",
            Some("20.00"),
        ))
        .await
        .expect("retry");
    assert!(again.replayed);
    assert_eq!(again.ending, first.ending);
    assert_eq!(balance(&*store, "payee").await, money("20.00"));
    let other = process
        .capture(capture_request("key-1", "h-1", "payer", "payee", None))
        .await;
    assert!(matches!(other, Err(ProcessError::KeyReused(key)) if key == "key-1"));

    // The whole hold when no amount is asked; refusals record nothing.
    place_hold(&*store, "payer", "h-2", "5.00").await;
    let whole = process
        .capture(capture_request("key-2", "h-2", "payer", "payee", None))
        .await
        .expect("capture");
    assert!(matches!(&whole.ending, Ending::Completed { body, .. } if body.contains("\"5.00\"")));
    assert_eq!(balance(&*store, "payee").await, money("25.00"));
    let settled = process
        .capture(capture_request("key-3", "h-2", "payer", "payee", None))
        .await
        .expect("answer");
    assert_eq!(
        settled.ending,
        Ending::Failed {
            refusal: DomainError::HoldNotPending {
                hold_id: hold_id("h-2"),
                status: None
            }
        }
    );
    // The refusal recorded nothing under its key: another request may take it.
    process
        .claim_key("key-3", "another request")
        .await
        .expect("key-3 is free");
    assert!(journal.unfinished(10).await.expect("open").is_empty());
}

/// The capture these cases send (key `key-1`, 20.00 of `h-1` to the
/// payee): first, and again as its retry.
async fn the_capture(process: &TransferProcess) -> TransferAnswer {
    process
        .capture(capture_request(
            "key-1",
            "h-1",
            "payer",
            "payee",
            Some("20.00"),
        ))
        .await
        .expect("capture")
}

/// That retry once the capture finished: answered from the journal, `CAPTURED`.
async fn a_retry_of_the_capture_replays_it(process: &TransferProcess) {
    let retried = the_capture(process).await;
    assert!(retried.replayed);
    assert!(matches!(&retried.ending, Ending::Completed { body, .. } if body.contains("CAPTURED")));
}

/// A capture of 20.00 of hold `h-1` (25.00 of the payer's 100.00) to the
/// payee, stopped by a crash right after the payer's half was stored and
/// recorded: what a resumption finds.
async fn capture_stopped_between_its_halves(store: &dyn EventStore, journal: &dyn TransferJournal) {
    create(store, "payer", money("100.00")).await;
    create(store, "payee", money("0")).await;
    place_hold(store, "payer", "h-1", "25.00").await;
    let transfer_id = capture_left_by_a_crash(journal, "key-1", "20.00").await;
    // The payer's half stored and recorded, then the crash.
    let records = journal.read(transfer_id).await.expect("journal");
    let Some(JournalRecord::Initiated(intent)) = records.first() else {
        panic!("an intent, not {records:?}");
    };
    let captured = Half::Sent.command(transfer_id, intent);
    let payer = state(store, &wallet_id("payer")).await;
    let events = decide(&payer, &captured).expect("the capture is allowed");
    let stored = store
        .append(AppendRequest {
            streams: vec![StreamAppend {
                wallet_id: wallet_id("payer"),
                expected_version: payer.version(),
                expected_last_event_id: None,
                events,
            }],
            idempotent_response: None,
        })
        .await
        .expect("append");
    journal
        .append(
            transfer_id,
            1,
            &JournalRecord::Debited,
            stored.last_position,
        )
        .await
        .expect("debited");
    assert_eq!(balance(store, "payee").await, money("0.00"));
}

pub async fn a_capture_stopped_between_its_halves_is_finished_by_the_resumption(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    capture_stopped_between_its_halves(&*store, &*journal).await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    assert_eq!(balance(&*store, "payer").await, money("80.00"));
    assert_eq!(balance(&*store, "payee").await, money("20.00"));
    assert_eq!(
        hold_events(&*store, "payer", "h-1").await,
        ["HoldPlaced", "HoldCaptured"]
    );
    assert_eq!(
        hold_events(&*store, "payee", "h-1").await,
        ["HoldCaptureReceived"]
    );
    a_retry_of_the_capture_replays_it(&process).await;
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        0
    );
}

/// The same stopped capture, resumed after the payer's stream grew by
/// [`LONG_HISTORY_CREDITS`] and a snapshot passed the payer's half: the
/// resumption finds that half by its id and folds the stream up to it (for
/// its state and for the reply's hold), never the whole stream.
pub async fn a_capture_resumed_past_the_payers_snapshot_reads_up_to_its_half(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    capture_stopped_between_its_halves(&*store, &*journal).await;
    credit_many(&*store, "payer", "0.01", LONG_HISTORY_CREDITS).await;
    let payer = wallet_id("payer");
    let stream = store.read_stream(&payer, 0).await.expect("stream");
    let last = stream.last().expect("events");
    let state = replay(stream.iter().map(|recorded| &recorded.event));
    save_snapshot_of(
        &*store,
        state.wallet().expect("payer"),
        last.event.event_id,
        SnapshotReplace::OlderOrSame,
    )
    .await;

    let counting = Arc::new(CountingStore::new(Arc::clone(&store)));
    let process = TransferProcess::new(
        Arc::clone(&counting) as Arc<dyn EventStore>,
        Arc::clone(&journal),
        REPLY,
    );
    let resumed = process.resume_unfinished(Utc::now()).await.expect("resume");
    assert_eq!(resumed.resumed, 1);
    let read = counting.stream_events_read();
    let bound = LOADS_PER_TRANSFER_MAX * (SNAPSHOT_INTERVAL_EVENTS + 1);
    assert!(
        read <= bound,
        "the resumption read {read} events, more than {bound}"
    );
    let credited = Decimal::new(i64::try_from(LONG_HISTORY_CREDITS).expect("small"), 2);
    assert_eq!(balance(&*store, "payer").await, money("80.00") + credited);
    assert_eq!(balance(&*store, "payee").await, money("20.00"));
    a_retry_of_the_capture_replays_it(&process).await;
}

pub async fn a_capture_the_payee_refuses_is_reversed_and_the_hold_stays_captured(
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
) {
    create(&*store, "payer", money("100.00")).await;
    create(&*store, "payee", money("0")).await;
    place_hold(&*store, "payer", "h-1", "25.00").await;
    capture_left_by_a_crash(&*journal, "key-1", "20.00").await;
    // Closed after the capture was recorded, before its halves ran.
    execute(&*store, "payee", CommandKind::Close).await;
    let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
    assert_eq!(
        process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    assert_eq!(balance(&*store, "payer").await, money("100.00"));
    assert_eq!(balance(&*store, "payee").await, money("0.00"));
    assert_eq!(
        hold_events(&*store, "payer", "h-1").await,
        ["HoldPlaced", "HoldCaptured", "HoldCaptureReversed"]
    );
    assert!(hold_events(&*store, "payee", "h-1").await.is_empty());
    assert_eq!(
        hold_status(&*store, "payer", "h-1").await,
        HoldStatus::Captured
    );
    let payer = state(&*store, &wallet_id("payer")).await;
    let payer = payer.wallet().expect("payer");
    assert!(payer.holds.is_empty());
    assert_eq!(payer.available_balance().value(), money("100.00"));
    let retried = the_capture(&process).await;
    assert_eq!(
        retried.ending,
        Ending::Failed {
            refusal: DomainError::WalletClosed(wallet_id("payee"))
        }
    );
    assert!(journal.unfinished(10).await.expect("open").is_empty());
}

/// Defines one `#[tokio::test]` per scenario, each running it through
/// `$harness`: an `async fn(conformance::Scenario)` that gives the scenario an
/// empty store and journal of its backend (and cleans up after it, or skips
/// saying why when the backend is not there).
#[macro_export]
macro_rules! transfer_process_conformance_tests {
    ($harness:path) => {
        $crate::transfer_process_conformance_tests!(
            @each $harness;
            journal_records_append_in_order_and_a_stale_count_conflicts,
            journal_lists_open_transfers_oldest_first_until_they_finish,
            a_transfer_runs_to_its_end_and_its_key_replays_it,
            a_transfer_from_a_long_history_reads_a_bounded_tail,
            an_intent_left_by_a_crash_is_finished_by_the_resumption,
            a_transfer_still_in_flight_is_left_to_its_request,
            a_transfer_that_keeps_failing_is_quarantined_and_the_others_resume,
            a_credit_the_payee_cannot_take_is_reversed,
            a_capture_to_another_wallet_runs_as_a_transfer_and_its_key_replays_it,
            a_capture_stopped_between_its_halves_is_finished_by_the_resumption,
            a_capture_resumed_past_the_payers_snapshot_reads_up_to_its_half,
            a_capture_the_payee_refuses_is_reversed_and_the_hold_stays_captured,
        );
    };
    (@each $harness:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                $harness(Box::new(|store, journal| {
                    Box::pin($crate::conformance::$scenario(store, journal))
                }))
                .await;
            }
        )+
    };
}
