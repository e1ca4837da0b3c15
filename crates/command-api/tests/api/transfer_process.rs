//! Transfers through the transfer process (`TRANSFERS=process`, as on
//! KurrentDB) on the real embedded store: the same contract as the atomic
//! path, and unfinished transfers finished at start-up.

use std::sync::Arc;

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use transfer_process::{EmbeddedTransferJournal, JournalRecord, TransferIntent, TransferJournal};
use uuid::Uuid;
use wallet_domain::{Amount, EventMetadata, WalletId};

use crate::helpers::{
    copy_event_log, error_message, json_of, process_config, restore_event_log,
    spawn_process_app_in, TestApp,
};

async fn process_app() -> (tempfile::TempDir, TestApp) {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    (temp, app)
}

fn transfer_body(to: &str, amount: Value) -> Value {
    json!({"toWalletId": to, "amount": amount, "description": "rent"})
}

/// The transfer of 4 from `a` to `b` under the key `once`.
fn transfer_once(app: &TestApp) -> reqwest::RequestBuilder {
    app.post("/wallets/a/transfer")
        .header("Idempotency-Key", "once")
        .json(&transfer_body("b", json!(4)))
}

#[tokio::test]
async fn a_transfer_moves_the_money_and_its_key_replays_the_same_reply() {
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(100)).await;
    app.create_wallet("b", "o", json!(0)).await;
    let send = |amount: Value| {
        app.post("/wallets/a/transfer")
            .header("Idempotency-Key", "rent-1")
            .json(&transfer_body("b", amount))
            .send()
    };
    let first = send(json!(30)).await.expect("sent");
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.expect("text");
    let reply: Value = serde_json::from_str(&first_body).expect("json");
    assert_eq!(reply["fromWallet"]["balance"].to_string(), "70.00");
    assert_eq!(reply["toWallet"]["balance"].to_string(), "30.00");
    let (_, history) = json_of(
        app.get("/wallets/b/transactions?limit=1")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(reply["transferId"].is_string(), "{reply}");
    assert_eq!(
        history["transactions"][0]["transferId"], reply["transferId"],
        "the reply names the transfer the payee's transaction carries"
    );

    let again = send(json!(30)).await.expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.expect("text"), first_body);

    let (status, body) = json_of(send(json!(31)).await.expect("sent")).await;
    assert_eq!(status, 422);
    assert!(error_message(&body, 422).contains("Idempotency-Key"));
    // The key a transfer recorded cannot serve a credit either.
    let credit = app
        .post("/wallets/a/credit")
        .header("Idempotency-Key", "rent-1")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(credit.status(), 422);

    assert_eq!(app.balance_text("a").await, "70.00");
    assert_eq!(app.balance_text("b").await, "30.00");
    app.stop().await;
}

#[tokio::test]
async fn refusals_are_those_of_the_atomic_path_and_move_nothing() {
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;

    let (status, body) = json_of(app.transfer("a", "nobody", json!(5)).await).await;
    assert_eq!(status, 404);
    assert!(error_message(&body, 404).contains("nobody"));
    let (status, _) = json_of(app.transfer("a", "b", json!(11)).await).await;
    assert_eq!(status, 400);
    let (status, _) = json_of(app.transfer("a", "a", json!(1)).await).await;
    assert_eq!(status, 400);
    assert_eq!(app.balance_text("a").await, "10.00");
    assert_eq!(app.balance_text("b").await, "0.00");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_transfers_keep_every_balance_exact_and_the_ledger_sound() {
    const TRANSFERS: usize = 20;
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(1000)).await;
    app.create_wallet("b", "o", json!(1000)).await;
    let requests = (0..TRANSFERS).map(|index| {
        let (from, to) = if index % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        app.transfer(from, to, json!(10 + index))
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 201);
    }
    // a pays 10, 12, ..., 28 and receives 11, 13, ..., 29: ten more.
    assert_eq!(app.balance_text("a").await, "1010.00");
    assert_eq!(app.balance_text("b").await, "990.00");
    let (status, verification) =
        json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{verification}");
    app.stop().await;
}

/// h101 F1: a transfer and a credit racing with one key both ran, and a
/// retry of either was then 422. One of them now runs, the other is 422, and
/// the winner's retry replays its answer.
#[tokio::test]
async fn a_transfer_and_a_credit_racing_with_one_key_run_once_and_the_winner_replays() {
    const ROUNDS: usize = 10;
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(1000)).await;
    app.create_wallet("b", "o", json!(0)).await;
    app.create_wallet("c", "o", json!(0)).await;
    let mut moved = (0_u32, 0_u32);
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let transfer = || {
            app.post("/wallets/a/transfer")
                .header("Idempotency-Key", key.clone())
                .json(&transfer_body("b", json!(10)))
                .send()
        };
        let credit = || {
            app.post("/wallets/c/credit")
                .header("Idempotency-Key", key.clone())
                .json(&json!({"amount": 5}))
                .send()
        };
        let (transferred, credited) = tokio::join!(transfer(), credit());
        let answered = |response: reqwest::Result<reqwest::Response>| async move {
            let response = response.expect("sent");
            let status = response.status().as_u16();
            (status, response.text().await.expect("text"))
        };
        let (transferred, credited) = (answered(transferred).await, answered(credited).await);
        let mut statuses = [transferred.0, credited.0];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 422],
            "round {round}: {transferred:?} {credited:?}"
        );
        let (winner, retried) = if transferred.0 == 201 {
            moved.0 += 1;
            (transferred, answered(transfer().await).await)
        } else {
            moved.1 += 1;
            (credited, answered(credit().await).await)
        };
        assert_eq!(retried, winner, "round {round}: the winner's retry replays");
    }
    assert_eq!(app.balance_text("b").await, format!("{}.00", moved.0 * 10));
    assert_eq!(app.balance_text("c").await, format!("{}.00", moved.1 * 5));
    app.stop().await;
}

/// h102 F2: a command the rules refuse, sent with a transfer's key, answered
/// its refusal (400, 409) where the atomic path answers 422.
#[tokio::test]
async fn a_refused_command_with_a_transfers_key_is_422_as_on_the_atomic_path() {
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;
    assert_eq!(
        transfer_once(&app).send().await.expect("sent").status(),
        201
    );
    let (status, body) = json_of(
        app.post("/wallets/a/debit")
            .header("Idempotency-Key", "once")
            .json(&json!({"amount": 99999}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 422, "the key is the transfer's: {body}");
    assert!(error_message(&body, 422).contains("already used"), "{body}");
    app.stop().await;
}

/// h102 F5: a key the store answered before the journal claimed keys (a
/// folder run atomic first) was claimed by the next request with it, and
/// the first request's own retry was then 422 instead of its answer.
#[tokio::test]
async fn a_key_answered_before_the_journal_claimed_keys_still_replays_its_answer() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(10)).await;
    let credit = |app: &TestApp| {
        app.post("/wallets/a/credit")
            .header("Idempotency-Key", "k1")
            .json(&json!({"amount": 7}))
            .send()
    };
    let first = credit(&app).await.expect("sent");
    assert_eq!(first.status(), 201);
    let first = first.text().await.expect("text");
    app.stop().await;

    let app = spawn_process_app_in(temp.path()).await;
    let debit = app
        .post("/wallets/a/debit")
        .header("Idempotency-Key", "k1")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(debit.status(), 422);
    let retried = credit(&app).await.expect("sent");
    assert_eq!(retried.status(), 201, "the credit's own retry replays");
    assert_eq!(retried.text().await.expect("text"), first);
    assert_eq!(app.balance_text("a").await, "17.00");
    app.stop().await;
}

/// A keyed command refused (a hold id another wallet holds) leaves its key
/// free, as on the atomic path; the command that then runs with the key
/// keeps it: another request with it, a transfer included, is 422, and its
/// retry replays. (A refusal met only after the key's claim, at the
/// append, releases the claim: `wallets::replicas`, whose two replicas
/// make one.)
#[tokio::test]
async fn a_refused_keyed_command_leaves_its_key_free_and_one_that_ran_keeps_it() {
    let (_temp, app) = process_app().await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(10)).await;
    let place_hold = |wallet: &str| {
        app.post(&format!("/wallets/{wallet}/holds"))
            .json(&json!({"amount": 1, "holdId": "h-1"}))
    };
    assert_eq!(place_hold("a").send().await.expect("sent").status(), 201);
    let (status, body) = json_of(
        place_hold("b")
            .header("Idempotency-Key", "k-1")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 409, "the hold id is a's: {body}");

    let credit = || {
        app.post("/wallets/b/credit")
            .header("Idempotency-Key", "k-1")
            .json(&json!({"amount": 2}))
            .send()
    };
    let credited = credit().await.expect("sent");
    assert_eq!(credited.status(), 201, "the refused hold freed k-1");
    let credited = credited.text().await.expect("text");
    let retried = credit().await.expect("sent");
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    assert_eq!(retried.text().await.expect("text"), credited);
    let debit = app
        .post("/wallets/b/debit")
        .header("Idempotency-Key", "k-1")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(debit.status(), 422, "k-1 is the credit's");
    let transfer = app
        .post("/wallets/b/transfer")
        .header("Idempotency-Key", "k-1")
        .json(&transfer_body("a", json!(1)))
        .send()
        .await
        .expect("sent");
    assert_eq!(transfer.status(), 422, "k-1 is the credit's");
    assert_eq!(app.balance_text("b").await, "12.00");
    app.stop().await;
}

/// Bound on waiting for the start-up sweep to finish a transfer.
const SWEEP_WAIT_MS: u64 = 10_000;
/// How often a test looks again while it waits for the sweep.
const SWEEP_POLL_MS: u64 = 20;

/// Waits until wallet `id` shows `balance` (the sweep runs beside serving).
async fn wait_for_balance(app: &TestApp, id: &str, balance: &str) {
    let started = std::time::Instant::now();
    while app.balance_text(id).await != balance {
        assert!(
            started.elapsed() < std::time::Duration::from_millis(SWEEP_WAIT_MS),
            "wallet {id} did not reach {balance}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(SWEEP_POLL_MS)).await;
    }
}

/// Wallets `a` (opening with `payer_opening`) and `b` (0), then, the
/// server stopped, a transfer of 25 from `a` to `b` whose journal no run can
/// finish (a record out of order): the folder, for a restart on it.
async fn a_stuck_transfer(payer_opening: u32) -> tempfile::TempDir {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(payer_opening)).await;
    app.create_wallet("b", "o", json!(0)).await;
    app.stop().await;
    let journal = EmbeddedTransferJournal::open(temp.path()).expect("journal");
    let transfer_id = Uuid::now_v7();
    journal
        .append(transfer_id, 0, &JournalRecord::Initiated(intent(25)), 0)
        .await
        .expect("record the intent");
    journal
        .append(transfer_id, 1, &JournalRecord::Credited, 0)
        .await
        .expect("a record out of order");
    temp
}

#[tokio::test]
async fn a_stuck_transfer_does_not_keep_the_restart_from_serving() {
    let temp = a_stuck_transfer(100).await;
    let app = spawn_process_app_in(temp.path()).await;
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{health}");
    assert!(health["transfers"]["quarantined"].is_number(), "{health}");
    assert_eq!(app.credit("a", json!(5)).await.status(), 201);
    assert_eq!(app.balance_text("a").await, "105.00");
    app.stop().await;
}

/// A wallet that an unfinished transfer takes money out of does not close:
/// the transfer's compensation may yet bring the money back to it.
#[tokio::test]
async fn a_payer_with_an_unfinished_transfer_out_does_not_close() {
    let temp = a_stuck_transfer(0).await;
    let app = spawn_process_app_in(temp.path()).await;
    let (status, body) = json_of(app.post("/wallets/a/close").send().await.expect("sent")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        error_message(&body, 409).contains("transfer(s) out of it are not finished yet"),
        "{body}"
    );
    let (status, body) = json_of(app.post("/wallets/b/close").send().await.expect("sent")).await;
    assert_eq!(status, 201, "the payee closes: {body}");
    app.stop().await;
}

/// A data folder whose journal records transfers does not start atomic: the
/// atomic path would neither finish an unfinished one nor see a finished
/// one's key, so a retry would run its transfer again.
#[tokio::test]
async fn a_folder_run_with_the_transfer_process_does_not_start_atomic() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;
    assert_eq!(
        transfer_once(&app).send().await.expect("sent").status(),
        201
    );
    app.stop().await;

    let atomic = command_api::Application::build(command_api::Config::embedded_for_test(
        temp.path().to_path_buf(),
    ))
    .await;
    let Err(refusal) = atomic else {
        panic!("an atomic start on a folder with a journal of transfers");
    };
    assert!(
        refusal.to_string().contains("keep TRANSFERS=process"),
        "{refusal}"
    );
    // The process start goes on as before, and the key still replays.
    let app = spawn_process_app_in(temp.path()).await;
    assert_eq!(
        transfer_once(&app).send().await.expect("sent").status(),
        201
    );
    assert_eq!(app.balance_text("a").await, "6.00");
    app.stop().await;
}

/// An event log older than the transfer journal (restored from an older
/// copy) is refused at start, naming the journal: served anyway, a retry of a
/// transfer the journal finished would answer 201 for money the log never
/// moved. With the log that goes with the journal put back, the key replays.
#[tokio::test]
async fn an_event_log_older_than_the_transfer_journal_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;
    app.stop().await;
    let older = tempfile::tempdir().expect("tempdir");
    copy_event_log(temp.path(), older.path());

    let app = spawn_process_app_in(temp.path()).await;
    assert_eq!(
        transfer_once(&app).send().await.expect("sent").status(),
        201
    );
    app.stop().await;
    let newer = tempfile::tempdir().expect("tempdir");
    copy_event_log(temp.path(), newer.path());

    restore_event_log(older.path(), temp.path());
    let Err(refusal) = command_api::Application::build(process_config(temp.path())).await else {
        panic!("a server started on an event log older than its transfer journal");
    };
    let message = refusal.to_string();
    assert!(
        message.contains("events.db ends at position 2, but transfers.db records transfer steps stored up to position 4"),
        "{message}"
    );

    restore_event_log(newer.path(), temp.path());
    let app = spawn_process_app_in(temp.path()).await;
    assert_eq!(
        transfer_once(&app).send().await.expect("sent").status(),
        201
    );
    assert_eq!(app.balance_text("a").await, "6.00");
    assert_eq!(app.balance_text("b").await, "4.00");
    app.stop().await;
}

/// A folder where the transfer process never moved money starts atomic.
#[tokio::test]
async fn a_folder_whose_journal_is_empty_starts_atomic() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(10)).await;
    app.stop().await;
    let app = crate::helpers::spawn_app_in(temp.path()).await;
    assert_eq!(app.balance_text("a").await, "10.00");
    app.stop().await;
}

fn intent(amount: u32) -> TransferIntent {
    TransferIntent {
        from_wallet_id: WalletId::parse("a").expect("id"),
        to_wallet_id: WalletId::parse("b").expect("id"),
        amount: Amount::parse("amount", amount.into()).expect("amount"),
        description: None,
        metadata: EventMetadata::default(),
        request_fingerprint: None,
        initiated_at: Utc::now(),
        hold_id: None,
    }
}

#[tokio::test]
async fn a_transfer_a_crash_left_unfinished_is_finished_by_the_sweep_after_the_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(100)).await;
    app.create_wallet("b", "o", json!(0)).await;
    let stopped = app.stop().await;
    assert!(stopped.is_none());

    // What a crash right after recording the intent leaves behind.
    let journal = Arc::new(EmbeddedTransferJournal::open(temp.path()).expect("journal"));
    let transfer_id = Uuid::now_v7();
    journal
        .append(transfer_id, 0, &JournalRecord::Initiated(intent(25)), 0)
        .await
        .expect("record the intent");
    drop(journal);

    let app = spawn_process_app_in(temp.path()).await;
    wait_for_balance(&app, "b", "25.00").await;
    assert_eq!(app.balance_text("a").await, "75.00");
    let (_, history) = json_of(
        app.get("/wallets/b/transactions")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(history["transactions"][0]["type"], "TransferReceived");
    assert_eq!(
        history["transactions"][0]["transferId"],
        transfer_id.to_string()
    );
    app.stop().await;
    let journal = EmbeddedTransferJournal::open(temp.path()).expect("journal");
    assert!(journal.unfinished(10).await.expect("read").is_empty());
}

/// The start finishes what a crash left before it serves: the first request
/// already meets the transfer done, so no close can land between its halves
/// (a closed payee would send the money back to a payer closed meanwhile).
#[tokio::test]
async fn the_first_request_after_a_restart_meets_the_unfinished_transfer_finished() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(25)).await;
    app.create_wallet("b", "o", json!(0)).await;
    assert!(app.stop().await.is_none());
    let journal = Arc::new(EmbeddedTransferJournal::open(temp.path()).expect("journal"));
    journal
        .append(Uuid::now_v7(), 0, &JournalRecord::Initiated(intent(25)), 0)
        .await
        .expect("record the intent");
    drop(journal);

    let app = spawn_process_app_in(temp.path()).await;
    let (status, body) = json_of(app.post("/wallets/b/close").send().await.expect("sent")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(app.balance_text("b").await, "25.00");
    let (status, body) = json_of(app.post("/wallets/a/close").send().await.expect("sent")).await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn two_different_transfers_racing_with_one_key_run_exactly_once() {
    const ROUNDS: usize = 10;
    let (_temp, app) = process_app().await;
    for wallet in ["a", "b", "c", "d"] {
        app.create_wallet(wallet, "o", json!(100)).await;
    }
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let transfer = |from: &str, to: &str| {
            app.post(&format!("/wallets/{from}/transfer"))
                .header("Idempotency-Key", key.clone())
                .json(&transfer_body(to, json!(1)))
                .send()
        };
        let (first, second) = tokio::join!(transfer("a", "b"), transfer("c", "d"));
        let mut statuses = [
            first.expect("sent").status().as_u16(),
            second.expect("sent").status().as_u16(),
        ];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 422], "round {round}");
    }
    let moved = |text: String| Decimal::from(100) - text.parse::<Decimal>().expect("decimal");
    let sent = moved(app.balance_text("a").await) + moved(app.balance_text("c").await);
    assert_eq!(sent, Decimal::from(ROUNDS), "one transfer per key");
    app.stop().await;
}
