//! The process on the real embedded store and journal (SQLite files in a
//! temporary folder), crashed on purpose after each step and restarted on the
//! same files, as a kill -9 and a restart would.

use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use event_store::{
    save_snapshot_of, EmbeddedEventStore, EventStore, SnapshotReplace, SNAPSHOT_INTERVAL_EVENTS,
};
use rust_decimal::Decimal;
use wallet_domain::{replay, Amount, CommandKind, DomainError, EventKind};

use crate::conformance::{
    self, balance, capture_request, create, credit, credit_many, execute, halves, hold_events,
    money, place_hold, request, wallet_id, NEAR_THE_MAXIMUM, REPLY,
};
use crate::{
    transfer_id_for_key, EmbeddedTransferJournal, Ending, ProcessError, Step, TransferAnswer,
    TransferJournal, TransferProcess, KEY_RELEASES_MAX,
};

struct Bench {
    dir: tempfile::TempDir,
}

/// One run of the service: the stores opened on the bench's files.
struct Run {
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
    process: TransferProcess,
}

impl Bench {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn start(&self, crash_after: Option<Step>) -> Run {
        let store: Arc<dyn EventStore> =
            Arc::new(EmbeddedEventStore::open(self.dir.path()).expect("open event store"));
        let journal: Arc<dyn TransferJournal> =
            Arc::new(EmbeddedTransferJournal::open(self.dir.path()).expect("open journal"));
        let mut process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);
        process.crash_after = crash_after;
        Run {
            store,
            journal,
            process,
        }
    }
}

impl Bench {
    /// A run that does not crash, on the payer (10.00) and the payee (0.00).
    async fn start_with_payer_and_payee(&self) -> Run {
        let run = self.start(None);
        create(&*run.store, "payer", money("10.00")).await;
        create(&*run.store, "payee", money("0")).await;
        run
    }
}

impl Run {
    async fn transfer(&self, key: &str, amount: &str) -> Result<TransferAnswer, ProcessError> {
        self.process
            .run(request(key, "payer", "payee", amount))
            .await
    }

    /// The capture of hold `h-1` of the payer to the payee, of `amount`.
    async fn capture(&self, key: &str, amount: &str) -> Result<TransferAnswer, ProcessError> {
        self.process
            .capture(capture_request(key, "h-1", "payer", "payee", Some(amount)))
            .await
    }

    async fn ask(&self, ask: Ask, key: &str, amount: &str) -> Result<TransferAnswer, ProcessError> {
        match ask {
            Ask::Transfer => self.transfer(key, amount).await,
            Ask::Capture => self.capture(key, amount).await,
        }
    }
}

/// What a crashing run is asked to do.
#[derive(Debug, Clone, Copy)]
enum Ask {
    Transfer,
    /// The capture of the payer's hold `h-1` to the payee.
    Capture,
}

/// Starts, crashes after `crash_after`, restarts on the same files and
/// resumes at start-up: the run the assertions look at.
async fn crashed_and_resumed(
    bench: &Bench,
    ask: Ask,
    key: &str,
    amount: &str,
    crash_after: Step,
) -> Run {
    let crashing = bench.start(Some(crash_after));
    let error = crashing
        .ask(ask, key, amount)
        .await
        .expect_err("the run crashes");
    assert!(
        matches!(error, ProcessError::Crashed(step) if step == crash_after),
        "{error:?}"
    );
    drop(crashing);
    let restarted = bench.start(None);
    let resumed = restarted
        .process
        .resume_unfinished(Utc::now())
        .await
        .expect("resume at start-up")
        .resumed;
    let expected = usize::from(crash_after != Step::Finish);
    assert_eq!(
        resumed, expected,
        "unfinished transfers after {crash_after:?}"
    );
    assert!(restarted
        .journal
        .unfinished(10)
        .await
        .expect("unfinished")
        .is_empty());
    restarted
}

const COMPLETED_PATH: [Step; 6] = [
    Step::Intent,
    Step::Debit,
    Step::DebitRecorded,
    Step::Credit,
    Step::CreditRecorded,
    Step::Finish,
];

#[tokio::test]
async fn a_crash_after_any_step_of_a_transfer_is_finished_at_start_up_exactly_once() {
    // The reply a run that never crashed gives.
    let clean = Bench::new();
    let run = clean.start(None);
    create(&*run.store, "payer", money("100.00")).await;
    create(&*run.store, "payee", money("5.00")).await;
    let uncrashed = run.transfer("key-1", "30.00").await.expect("transfer");
    assert!(!uncrashed.replayed);
    assert!(
        matches!(&uncrashed.ending, Ending::Completed { status: 201, .. }),
        "{uncrashed:?}"
    );

    for crash_after in COMPLETED_PATH {
        let bench = Bench::new();
        let setup = bench.start(None);
        create(&*setup.store, "payer", money("100.00")).await;
        create(&*setup.store, "payee", money("5.00")).await;
        drop(setup);

        let run = crashed_and_resumed(&bench, Ask::Transfer, "key-1", "30.00", crash_after).await;
        assert_eq!(
            balance(&*run.store, "payer").await,
            money("70.00"),
            "{crash_after:?}"
        );
        assert_eq!(
            balance(&*run.store, "payee").await,
            money("35.00"),
            "{crash_after:?}"
        );
        let transfer_id = transfer_id_for_key("key-1");
        assert_eq!(
            halves(&*run.store, "payer", transfer_id).await,
            ["TransferSent"]
        );
        assert_eq!(
            halves(&*run.store, "payee", transfer_id).await,
            ["TransferReceived"]
        );

        // The journal knows the log holds the credit (the newest event).
        assert_eq!(
            run.journal.log_position().await.expect("journal"),
            run.store.head_position().await.expect("head"),
            "{crash_after:?}"
        );

        // The retry of the request gets the reply the uncrashed run gave, twice.
        for _ in 0..2 {
            let retried = run.transfer("key-1", "30.00").await.expect("retry");
            assert_eq!(retried.ending, uncrashed.ending, "{crash_after:?}");
            assert!(retried.replayed);
        }
        assert_eq!(balance(&*run.store, "payer").await, money("70.00"));
    }
}

/// A step resumed after a crash is stamped when it is appended, not when its
/// transfer was asked for: the wallet's history as of the moments in between
/// does not change afterwards. To the millisecond, as the API shows it.
#[tokio::test]
async fn a_step_resumed_after_a_crash_is_stamped_when_it_is_appended() {
    let bench = Bench::new();
    let setup = bench.start(None);
    create(&*setup.store, "payer", money("100.00")).await;
    create(&*setup.store, "payee", money("5.00")).await;
    drop(setup);
    let before_the_resumption = Utc::now().trunc_subsecs(3);
    let run = crashed_and_resumed(&bench, Ask::Transfer, "key-1", "30.00", Step::Debit).await;
    let stream = run
        .store
        .read_stream(&wallet_id("payee"), 0)
        .await
        .expect("read");
    let received = stream
        .iter()
        .find(|recorded| recorded.event.type_name() == "TransferReceived")
        .expect("the credit was resumed");
    assert!(
        received.event.occurred_at >= before_the_resumption,
        "stamped {}, the intent's time, not its append",
        received.event.occurred_at
    );
    assert_eq!(
        received.event.occurred_at,
        received.event.occurred_at.trunc_subsecs(3),
        "to the millisecond"
    );
}

#[tokio::test]
async fn a_crash_after_any_step_of_a_capture_is_finished_at_start_up_exactly_once() {
    async fn opened(bench: &Bench) -> Run {
        let run = bench.start(None);
        create(&*run.store, "payer", money("100.00")).await;
        create(&*run.store, "payee", money("5.00")).await;
        place_hold(&*run.store, "payer", "h-1", "25.00").await;
        run
    }
    let clean = Bench::new();
    let uncrashed = opened(&clean)
        .await
        .capture("key-1", "20.00")
        .await
        .expect("capture");
    assert!(
        matches!(&uncrashed.ending, Ending::Completed { status: 201, .. }),
        "{uncrashed:?}"
    );

    for crash_after in COMPLETED_PATH {
        let bench = Bench::new();
        drop(opened(&bench).await);
        let run = crashed_and_resumed(&bench, Ask::Capture, "key-1", "20.00", crash_after).await;
        assert_eq!(balance(&*run.store, "payer").await, money("80.00"));
        assert_eq!(balance(&*run.store, "payee").await, money("25.00"));
        assert_eq!(
            hold_events(&*run.store, "payer", "h-1").await,
            ["HoldPlaced", "HoldCaptured"],
            "{crash_after:?}"
        );
        assert_eq!(
            hold_events(&*run.store, "payee", "h-1").await,
            ["HoldCaptureReceived"],
            "{crash_after:?}"
        );
        for _ in 0..2 {
            let retried = run.capture("key-1", "20.00").await.expect("retry");
            assert_eq!(retried.ending, uncrashed.ending, "{crash_after:?}");
            assert!(retried.replayed);
        }
        assert_eq!(balance(&*run.store, "payee").await, money("25.00"));
    }
}

/// A capture stopped before its end, resumed after the payer's stream got
/// long and a snapshot past the capture: its reply is the same hold.
#[tokio::test]
async fn a_capture_resumed_after_a_snapshot_past_it_replies_with_the_same_hold() {
    let clean = Bench::new();
    let run = clean.start(None);
    create(&*run.store, "payer", money("100.00")).await;
    create(&*run.store, "payee", money("0")).await;
    place_hold(&*run.store, "payer", "h-1", "25.00").await;
    let uncrashed = run.capture("key-1", "20.00").await.expect("capture");

    let bench = Bench::new();
    let setup = bench.start(None);
    create(&*setup.store, "payer", money("100.00")).await;
    create(&*setup.store, "payee", money("0")).await;
    place_hold(&*setup.store, "payer", "h-1", "25.00").await;
    let crashing = bench.start(Some(Step::CreditRecorded));
    assert!(crashing.capture("key-1", "20.00").await.is_err());
    drop(crashing);
    credit_many(&*setup.store, "payer", "0.01", SNAPSHOT_INTERVAL_EVENTS + 1).await;
    let stream = setup
        .store
        .read_stream(&wallet_id("payer"), 0)
        .await
        .expect("read");
    let last_event_id = stream.last().expect("events").event.event_id;
    let payer = replay(stream.iter().map(|recorded| &recorded.event));
    save_snapshot_of(
        &*setup.store,
        payer.wallet().expect("payer"),
        last_event_id,
        SnapshotReplace::OlderOrSame,
    )
    .await;
    drop(setup);

    let run = bench.start(None);
    assert_eq!(
        run.process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    let retried = run.capture("key-1", "20.00").await.expect("retry");
    assert!(retried.replayed);
    assert_eq!(retried.ending, uncrashed.ending);
}

#[tokio::test]
async fn a_capture_the_payee_refuses_is_reversed_after_a_crash_after_any_step() {
    for crash_after in COMPENSATION_PATH.into_iter().chain([Step::Finish]) {
        let bench = Bench::new();
        let setup = bench.start(None);
        create(&*setup.store, "payer", money("100.00")).await;
        create(&*setup.store, "payee", money("0")).await;
        place_hold(&*setup.store, "payer", "h-1", "25.00").await;
        // Closed after the intent is recorded, as a capture racing a close would meet it.
        let mut crashing = bench.start(Some(Step::Intent));
        assert!(crashing.capture("key-1", "20.00").await.is_err());
        execute(&*setup.store, "payee", CommandKind::Close).await;
        drop(setup);
        if crash_after != Step::Intent {
            crashing.process.crash_after = Some(crash_after);
            let error = crashing.capture("key-1", "20.00").await.expect_err("crash");
            assert!(
                matches!(error, ProcessError::Crashed(step) if step == crash_after),
                "{error:?}"
            );
        }
        drop(crashing);
        let run = bench.start(None);
        run.process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume");
        assert_eq!(balance(&*run.store, "payer").await, money("100.00"));
        assert_eq!(
            hold_events(&*run.store, "payer", "h-1").await,
            ["HoldPlaced", "HoldCaptured", "HoldCaptureReversed"],
            "{crash_after:?}"
        );
        let retried = run.capture("key-1", "20.00").await.expect("retry");
        assert_eq!(
            retried.ending,
            Ending::Failed {
                refusal: DomainError::WalletClosed(wallet_id("payee"))
            },
            "{crash_after:?}"
        );
    }
}

#[tokio::test]
async fn a_crash_before_the_debit_may_end_refused_when_the_money_was_spent_meanwhile() {
    let bench = Bench::new();
    let setup = bench.start(None);
    create(&*setup.store, "payer", money("100.00")).await;
    create(&*setup.store, "payee", money("0")).await;
    let crashing = bench.start(Some(Step::Intent));
    drop(setup);
    assert!(crashing.transfer("key-1", "80.00").await.is_err());
    // Before the restart the payer spends the money elsewhere.
    let amount = Amount::parse("amount", money("50.00")).expect("amount");
    let debit = CommandKind::Debit {
        amount,
        description: None,
    };
    execute(&*crashing.store, "payer", debit).await;
    drop(crashing);

    let run = bench.start(None);
    assert_eq!(
        run.process
            .resume_unfinished(Utc::now())
            .await
            .expect("resume")
            .resumed,
        1
    );
    assert_eq!(balance(&*run.store, "payer").await, money("50.00"));
    assert_eq!(balance(&*run.store, "payee").await, money("0.00"));
    for _ in 0..2 {
        let retried = run.transfer("key-1", "80.00").await.expect("retry");
        assert!(
            matches!(
                &retried.ending,
                Ending::Failed {
                    refusal: DomainError::InsufficientFunds { .. }
                }
            ),
            "{retried:?}"
        );
    }
}

const COMPENSATION_PATH: [Step; 5] = [
    Step::Intent,
    Step::Debit,
    Step::DebitRecorded,
    Step::Reversal,
    Step::ReversalRecorded,
];

#[tokio::test]
async fn a_credit_the_payee_cannot_take_is_compensated_and_survives_a_crash_after_any_step() {
    for crash_after in COMPENSATION_PATH.into_iter().chain([Step::Finish]) {
        let bench = Bench::new();
        let setup = bench.start(None);
        create(&*setup.store, "payer", money("100.00")).await;
        // Room for the transfer when it is asked...
        create(&*setup.store, "payee", NEAR_THE_MAXIMUM - money("50")).await;
        drop(setup);

        // ...but it crashes after recording its intent, and another credit
        // takes the room before the restart.
        let first = bench.start(Some(Step::Intent));
        assert!(first.transfer("key-1", "30.00").await.is_err());
        credit(&*first.store, "payee", "30.00").await;
        drop(first);

        let run = if crash_after == Step::Intent {
            let run = bench.start(None);
            assert_eq!(
                run.process
                    .resume_unfinished(Utc::now())
                    .await
                    .expect("resume")
                    .resumed,
                1
            );
            run
        } else {
            let crashing = bench.start(Some(crash_after));
            assert_eq!(
                crashing
                    .process
                    .resume_unfinished(Utc::now())
                    .await
                    .expect("resume")
                    .failed,
                1
            );
            drop(crashing);
            let run = bench.start(None);
            let expected = usize::from(crash_after != Step::Finish);
            assert_eq!(
                run.process
                    .resume_unfinished(Utc::now())
                    .await
                    .expect("resume")
                    .resumed,
                expected
            );
            run
        };

        assert_eq!(
            balance(&*run.store, "payer").await,
            money("100.00"),
            "{crash_after:?}"
        );
        assert_eq!(
            balance(&*run.store, "payee").await,
            NEAR_THE_MAXIMUM - money("20"),
            "{crash_after:?}"
        );
        let transfer_id = transfer_id_for_key("key-1");
        assert_eq!(
            halves(&*run.store, "payer", transfer_id).await,
            ["TransferSent", "TransferReversed"],
            "{crash_after:?}"
        );
        assert!(halves(&*run.store, "payee", transfer_id).await.is_empty());
        // The journal knows the log holds the reversal (the newest event).
        assert_eq!(
            run.journal.log_position().await.expect("journal"),
            run.store.head_position().await.expect("head"),
            "{crash_after:?}"
        );
        let retried = run.transfer("key-1", "30.00").await.expect("retry");
        assert_eq!(
            retried.ending,
            Ending::Failed {
                refusal: DomainError::BalanceOverflow(wallet_id("payee"))
            }
        );
    }
}

#[tokio::test]
async fn refusals_known_at_the_start_record_nothing_and_may_be_retried() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;

    let unknown = run
        .process
        .run(request("key-1", "payer", "nobody", "5.00"))
        .await
        .expect("answer");
    assert_eq!(
        unknown.ending,
        Ending::Failed {
            refusal: DomainError::WalletNotFound(wallet_id("nobody"))
        }
    );
    let poor = run.transfer("key-2", "20.00").await.expect("answer");
    assert!(matches!(
        poor.ending,
        Ending::Failed {
            refusal: DomainError::InsufficientFunds { .. }
        }
    ));
    for key in ["key-1", "key-2"] {
        let records = run
            .journal
            .read(transfer_id_for_key(key))
            .await
            .expect("read");
        assert!(records.is_empty(), "{key}: {records:?}");
    }
    assert_eq!(balance(&*run.store, "payer").await, money("10.00"));

    credit(&*run.store, "payer", "10.00").await;
    let retried = run.transfer("key-2", "20.00").await.expect("answer");
    assert!(matches!(retried.ending, Ending::Completed { .. }));
    assert_eq!(balance(&*run.store, "payee").await, money("20.00"));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;
    run.transfer("key-1", "5.00").await.expect("transfer");
    let error = run
        .transfer("key-1", "6.00")
        .await
        .expect_err("another body");
    assert!(matches!(error, ProcessError::KeyReused(key) if key == "key-1"));
    assert_eq!(balance(&*run.store, "payer").await, money("5.00"));
}

/// h101 F1: a transfer and a credit racing with one key both ran, and a
/// retry of either was then refused. Whichever claims the key's journal
/// stream first has it; the other is refused, before anything moves.
#[tokio::test]
async fn a_key_is_claimed_once_between_a_transfer_and_another_command() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;

    // Given a credit's claim of key-1, when a transfer asks with key-1,
    // then it is refused and nothing moves.
    run.process
        .claim_key("key-1", "credit payee 1.00")
        .await
        .expect("claimed");
    let refused = run
        .transfer("key-1", "5.00")
        .await
        .expect_err("the key is the credit's");
    assert!(matches!(refused, ProcessError::KeyReused(key) if key == "key-1"));
    assert_eq!(balance(&*run.store, "payer").await, money("10.00"));
    // The same request's claim stands (a retry); another request's does not.
    run.process
        .claim_key("key-1", "credit payee 1.00")
        .await
        .expect("a retry's claim stands");
    let other = run
        .process
        .claim_key("key-1", "debit payer 1.00")
        .await
        .expect_err("another request");
    assert!(matches!(other, ProcessError::KeyReused(_)));

    // Given a transfer with key-2, when a command claims key-2, then it is refused.
    run.transfer("key-2", "5.00").await.expect("transfer");
    let taken = run
        .process
        .claim_key("key-2", "credit payee 1.00")
        .await
        .expect_err("the key is the transfer's");
    assert!(matches!(taken, ProcessError::KeyReused(key) if key == "key-2"));
    // A claim opens nothing the resumption would pick up.
    assert!(run.journal.unfinished(10).await.expect("listed").is_empty());
}

/// A keyed command refused after it claimed its key (a hold id another
/// wallet took at its append, a wallet that changed too often) kept the
/// claim: another request with the key was refused for ever, where the
/// atomic path frees a refused request's key. Its release frees the key
/// for another request and for a transfer, each claimed anew after it.
#[tokio::test]
async fn a_released_claim_frees_the_key_for_another_request_or_a_transfer() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;

    // Given a credit's claim of key-1 released, when a debit claims key-1,
    // then the debit holds it: the credit's claim, or release, is refused.
    claim_and_release(&run.process, "key-1", "credit payee 1.00").await;
    run.process
        .claim_key("key-1", "debit payer 1.00")
        .await
        .expect("the key is free again");
    let credit = run.process.claim_key("key-1", "credit payee 1.00").await;
    assert!(matches!(credit, Err(ProcessError::KeyReused(key)) if key == "key-1"));
    let released = run
        .process
        .release_key("key-1", "credit payee 1.00")
        .await
        .expect("read");
    assert!(!released, "the claim is the debit's");
    assert!(run
        .process
        .key_held_by_another("key-1", "credit payee 1.00")
        .await
        .expect("read"));

    // Given a claim of key-2 released, when a transfer asks with key-2,
    // then it runs, its retry replays, and the key is the transfer's.
    claim_and_release(&run.process, "key-2", "credit payee 1.00").await;
    let first = run.transfer("key-2", "5.00").await.expect("transfer");
    assert!(matches!(
        first.ending,
        Ending::Completed { status: 201, .. }
    ));
    let again = run.transfer("key-2", "5.00").await.expect("retry");
    assert!(again.replayed);
    assert_eq!(again.ending, first.ending);
    assert_eq!(balance(&*run.store, "payee").await, money("5.00"));
    let claim = run.process.claim_key("key-2", "credit payee 1.00").await;
    assert!(matches!(claim, Err(ProcessError::KeyReused(_))));
    assert!(!run
        .process
        .release_key("key-2", "credit payee 1.00")
        .await
        .expect("read"));
    assert!(run.journal.unfinished(10).await.expect("listed").is_empty());
}

/// Two requests claiming a released key at once race through the journal's
/// expected record count, as for a key never claimed: one holds it.
#[tokio::test]
async fn requests_racing_for_a_released_key_claim_it_once() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;
    claim_and_release(&run.process, "key-1", "credit payee 1.00").await;

    let (credit, debit) = tokio::join!(
        run.process.claim_key("key-1", "credit payee 2.00"),
        run.process.claim_key("key-1", "debit payer 1.00")
    );
    assert!(
        credit.is_ok() != debit.is_ok(),
        "one claim: {credit:?} {debit:?}"
    );

    claim_and_release(&run.process, "key-2", "credit payee 1.00").await;
    let (transfer, credit) = tokio::join!(
        run.transfer("key-2", "5.00"),
        run.process.claim_key("key-2", "credit payee 2.00")
    );
    assert!(
        transfer.is_ok() != credit.is_ok(),
        "one holder: {transfer:?} {credit:?}"
    );
    let moved = if transfer.is_ok() { "5.00" } else { "0" };
    assert_eq!(balance(&*run.store, "payee").await, money(moved));
}

/// A transfer recorded after a released claim is resumed after a crash as
/// any other: its records follow the claim's in the key's stream.
#[tokio::test]
async fn a_transfer_after_a_released_claim_is_finished_at_start_up() {
    let bench = Bench::new();
    let setup = bench.start_with_payer_and_payee().await;
    claim_and_release(&setup.process, "key-1", "credit payee 1.00").await;
    drop(setup);

    let run =
        crashed_and_resumed(&bench, Ask::Transfer, "key-1", "4.00", Step::DebitRecorded).await;
    assert_eq!(balance(&*run.store, "payer").await, money("6.00"));
    assert_eq!(balance(&*run.store, "payee").await, money("4.00"));
    let retried = run.transfer("key-1", "4.00").await.expect("retry");
    assert!(retried.replayed);
    assert!(matches!(
        retried.ending,
        Ending::Completed { status: 201, .. }
    ));
}

/// A key's stream stays bounded: past [`KEY_RELEASES_MAX`] released claims,
/// a claim stays its request's (only it may use the key), and the stream
/// still reads.
#[tokio::test]
async fn past_the_most_releases_a_claim_stays() {
    let bench = Bench::new();
    let run = bench.start(None);
    for _ in 0..KEY_RELEASES_MAX {
        claim_and_release(&run.process, "key-1", "credit payee 1.00").await;
    }
    run.process
        .claim_key("key-1", "credit payee 1.00")
        .await
        .expect("claimed");
    let released = run
        .process
        .release_key("key-1", "credit payee 1.00")
        .await
        .expect("read");
    assert!(!released, "the claim stays");
    run.process
        .claim_key("key-1", "credit payee 1.00")
        .await
        .expect("its own retry");
    let other = run.process.claim_key("key-1", "debit payer 1.00").await;
    assert!(matches!(other, Err(ProcessError::KeyReused(_))));
}

/// h141 F1: a claim kept for good refused another request with its key,
/// while its own request, its stored answer purged, ran again. A claim
/// older than the claims' expiry frees the key for any request, and for a
/// transfer; one younger, or from before claims had a time, stands.
#[tokio::test]
async fn a_claim_past_its_expiry_frees_the_key_for_any_request() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;
    let kept_an_hour =
        TransferProcess::new(Arc::clone(&run.store), Arc::clone(&run.journal), REPLY)
            .with_claims_expiring_after(chrono::Duration::hours(1));
    let expired_at_once =
        TransferProcess::new(Arc::clone(&run.store), Arc::clone(&run.journal), REPLY)
            .with_claims_expiring_after(chrono::Duration::zero());

    // Given a credit's claim of key-1, when a debit claims it within the
    // hour, then it is refused; once the claim is past its expiry, the
    // debit holds the key, and the credit is the one refused.
    run.process
        .claim_key("key-1", "credit payee 1.00")
        .await
        .expect("claimed");
    let within = kept_an_hour.claim_key("key-1", "debit payer 1.00").await;
    assert!(
        matches!(within, Err(ProcessError::KeyReused(_))),
        "{within:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert!(!expired_at_once
        .key_held_by_another("key-1", "debit payer 1.00")
        .await
        .expect("read"));
    expired_at_once
        .claim_key("key-1", "debit payer 1.00")
        .await
        .expect("the expired claim released, the key claimed");
    let credit = kept_an_hour.claim_key("key-1", "credit payee 1.00").await;
    assert!(
        matches!(credit, Err(ProcessError::KeyReused(_))),
        "{credit:?}"
    );

    // Given a claim of key-2 past its expiry, a transfer with key-2 runs.
    run.process
        .claim_key("key-2", "credit payee 1.00")
        .await
        .expect("claimed");
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let transfer = expired_at_once
        .run(request("key-2", "payer", "payee", "5.00"))
        .await
        .expect("transfer");
    assert!(matches!(
        transfer.ending,
        Ending::Completed { status: 201, .. }
    ));
    assert_eq!(balance(&*run.store, "payee").await, money("5.00"));

    // A claim recorded before claims had a time never expires.
    run.journal
        .append(
            transfer_id_for_key("key-3"),
            0,
            &crate::JournalRecord::KeyClaimed {
                request_fingerprint: "credit payee 1.00".into(),
                claimed_at: None,
            },
            0,
        )
        .await
        .expect("an old claim");
    let other = expired_at_once.claim_key("key-3", "debit payer 1.00").await;
    assert!(
        matches!(other, Err(ProcessError::KeyReused(_))),
        "{other:?}"
    );
}

/// Claims `key` for `request` and releases the claim, as a request refused
/// after its claim does.
async fn claim_and_release(process: &TransferProcess, key: &str, request: &str) {
    process.claim_key(key, request).await.expect("claimed");
    let released = process.release_key(key, request).await.expect("released");
    assert!(released, "{key} released");
}

#[tokio::test]
async fn concurrent_transfers_keep_every_balance_exact() {
    // A multiple of the three wallets: each pays and receives as often.
    const TRANSFERS: usize = 21;
    let bench = Bench::new();
    let run = bench.start(None);
    for wallet in ["w-1", "w-2", "w-3"] {
        create(&*run.store, wallet, money("1000.00")).await;
    }
    let wallets = ["w-1", "w-2", "w-3"];
    let runs = (0..TRANSFERS).map(|index| {
        let from = wallets[index % 3];
        let to = wallets[(index + 1) % 3];
        let key = format!("key-{index}");
        let process = &run.process;
        async move { process.run(request(&key, from, to, "10.00")).await }
    });
    // Without the service's wallet lock some runs may give up on contention;
    // the start-up resumption finishes those.
    let answers = futures::future::join_all(runs).await;
    for answer in answers.iter().flatten() {
        assert!(
            matches!(answer.ending, Ending::Completed { .. }),
            "{answer:?}"
        );
    }
    run.process
        .resume_unfinished(Utc::now())
        .await
        .expect("resume");
    for index in 0..TRANSFERS {
        let retried = run
            .process
            .run(request(
                &format!("key-{index}"),
                wallets[index % 3],
                wallets[(index + 1) % 3],
                "10.00",
            ))
            .await
            .expect("retry");
        assert!(matches!(retried.ending, Ending::Completed { .. }));
    }
    let mut total = Decimal::ZERO;
    for wallet in wallets {
        let balance = balance(&*run.store, wallet).await;
        // Each wallet pays and receives the same number of transfers.
        assert_eq!(balance, money("1000.00"), "{wallet}");
        total += balance;
    }
    assert_eq!(total, money("3000.00"));
    for index in 0..TRANSFERS {
        let transfer_id = transfer_id_for_key(&format!("key-{index}"));
        let sent = halves(&*run.store, wallets[index % 3], transfer_id).await;
        let received = halves(&*run.store, wallets[(index + 1) % 3], transfer_id).await;
        assert_eq!(
            (sent.as_slice(), received.as_slice()),
            (&["TransferSent"][..], &["TransferReceived"][..])
        );
    }
    let payer_stream = run
        .store
        .read_stream(&wallet_id("w-1"), 0)
        .await
        .expect("read");
    assert!(payer_stream
        .iter()
        .all(|recorded| !matches!(recorded.event.kind, EventKind::TransferReversed { .. })));
}

/// The shared scenarios on the embedded store and journal, each on files of
/// its own.
mod embedded_conformance {
    use super::*;

    async fn on_embedded_files(scenario: conformance::Scenario) {
        let bench = Bench::new();
        let run = bench.start(None);
        scenario(run.store, run.journal).await;
    }

    crate::transfer_process_conformance_tests!(on_embedded_files);
}

/// A journal that refuses the transfer's intent (its folder moved away, as
/// a full disk refuses it too) leaves the transfer not started: no wallet
/// changed, and the error says so rather than "may have been applied".
#[tokio::test]
async fn a_transfer_whose_intent_the_journal_refuses_is_not_started() {
    let (stores, journals) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedEventStore::open(stores.path()).expect("open event store"));
    let journal_dir = journals.path().join("journal");
    std::fs::create_dir(&journal_dir).expect("journal folder");
    let journal: Arc<dyn TransferJournal> =
        Arc::new(EmbeddedTransferJournal::open(&journal_dir).expect("open journal"));
    create(store.as_ref(), "payer", money("100.00")).await;
    create(store.as_ref(), "payee", Decimal::ZERO).await;
    std::fs::rename(&journal_dir, journals.path().join("moved")).expect("moved");
    let process = TransferProcess::new(Arc::clone(&store), journal, REPLY);

    let refused = process
        .run(request("refused-intent", "payer", "payee", "10.00"))
        .await;
    assert!(
        matches!(refused, Err(ProcessError::NotStarted { .. })),
        "{refused:?}"
    );
    // Kept for `/health`, apart from the event store's writes (h138 F3).
    let failures = process.journal_write_failures().expect("a failing run");
    assert_eq!(failures.failures, 1, "{failures:?}");
    assert_eq!(balance(store.as_ref(), "payer").await, money("100.00"));
    assert_eq!(balance(store.as_ref(), "payee").await, Decimal::ZERO);
}

/// h135 F1: the process folded a payee's stream without checking that each
/// event continues the one before, so a transfer into a wallet whose log was
/// edited (an event's balance after rewritten) was taken. It is refused as a
/// broken stream, with nothing recorded or moved.
#[tokio::test]
async fn a_transfer_into_a_stream_that_does_not_hold_together_is_refused() {
    let bench = Bench::new();
    let run = bench.start_with_payer_and_payee().await;
    credit(&*run.store, "payee", "1.00").await;
    let stream = run
        .store
        .read_stream(&wallet_id("payee"), 0)
        .await
        .expect("read");
    let credited = stream.last().expect("the credit");
    let mut json: serde_json::Value =
        serde_json::from_str(&credited.event.to_json().expect("json")).expect("parsed");
    json["balanceAfter"] = serde_json::from_str("99.00").expect("a number");
    rusqlite::Connection::open(bench.dir.path().join("events.db"))
        .expect("opened")
        .execute(
            "UPDATE events SET payload = ?1 WHERE stream_id = 'payee' AND version = ?2",
            rusqlite::params![json.to_string(), credited.stream_version],
        )
        .expect("rewritten");

    let refused = run.transfer("key-1", "5.00").await.expect_err("refused");
    assert!(
        matches!(
            &refused,
            ProcessError::Store(event_store::StoreError::BrokenStream { wallet_id: broken, .. })
                if *broken == wallet_id("payee")
        ),
        "{refused}"
    );
    assert_eq!(balance(&*run.store, "payer").await, money("10.00"));
    let records = run
        .journal
        .read(transfer_id_for_key("key-1"))
        .await
        .expect("read");
    assert!(records.is_empty(), "{records:?}");
}

/// h136 F1: a step the event store fails after the intent is recorded (its
/// folder moved away here, as a full disk fails it too) leaves the transfer
/// unfinished in the journal, and the error says so: it is not "nothing
/// was applied", since the next start-up's sweep finishes it.
#[tokio::test]
async fn a_step_the_store_fails_after_the_intent_leaves_the_transfer_unfinished() {
    let (stores, journals) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let store_dir = stores.path().join("store");
    std::fs::create_dir(&store_dir).expect("store folder");
    let journal: Arc<dyn TransferJournal> =
        Arc::new(EmbeddedTransferJournal::open(journals.path()).expect("open journal"));
    {
        let store: Arc<dyn EventStore> =
            Arc::new(EmbeddedEventStore::open(&store_dir).expect("open event store"));
        create(store.as_ref(), "payer", money("100.00")).await;
        create(store.as_ref(), "payee", Decimal::ZERO).await;
        std::fs::rename(&store_dir, stores.path().join("moved")).expect("moved");
        let process = TransferProcess::new(Arc::clone(&store), Arc::clone(&journal), REPLY);

        let failed = process
            .run(request("unfinished", "payer", "payee", "10.00"))
            .await;
        assert!(
            matches!(
                failed,
                Err(ProcessError::Unfinished {
                    source: event_store::StoreError::Moved(_),
                    ..
                })
            ),
            "{failed:?}"
        );
        assert_eq!(
            journal.unfinished(10).await.expect("listed"),
            vec![transfer_id_for_key("unfinished")]
        );
        // h138 F1: sweeps that meet the storage away do not set it aside.
        for _ in 0..=crate::RESUME_ATTEMPTS_MAX {
            let swept = process.resume_unfinished(Utc::now()).await.expect("listed");
            assert_eq!((swept.failed, swept.quarantined), (1, 0), "{swept:?}");
        }
        assert_eq!(process.quarantined(), 0);
        // Shown in `/health` though no request comes (h139 N1).
        let failures = process.resumption_failures().expect("a failing run");
        assert_eq!(failures.failures, 6, "{failures:?}");
    }
    std::fs::rename(stores.path().join("moved"), &store_dir).expect("moved back");
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedEventStore::open(&store_dir).expect("reopen event store"));
    let process = TransferProcess::new(Arc::clone(&store), journal, REPLY);
    let resumed = process
        .resume_unfinished(Utc::now())
        .await
        .expect("resumed");
    assert_eq!(resumed.resumed, 1, "{resumed:?}");
    assert_eq!(balance(store.as_ref(), "payer").await, money("90.00"));
    assert_eq!(balance(store.as_ref(), "payee").await, money("10.00"));
}
