//! A capture of a hold to another wallet with `TRANSFERS=process` (as on
//! KurrentDB), on the real embedded store: it runs through the transfer
//! process, a step per wallet, and answers as the atomic path does.

use serde_json::{json, Value};
use transfer_process::{
    transfer_id_for_key, EmbeddedTransferJournal, Ending, JournalRecord, TransferJournal,
};
use wallet_domain::HoldId;

use crate::helpers::{error_message, json_of, spawn_process_app_in};

#[tokio::test]
async fn a_capture_to_another_wallet_runs_as_the_transfer_process_and_answers_as_the_atomic_path() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("w", "o", json!(100)).await;
    app.create_wallet("payee", "p", json!(0)).await;
    let (status, body) = json_of(
        app.post_json("/wallets/w/holds", json!({"amount": 25, "holdId": "h-p"}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let capture = |key: &str, body: Value| {
        app.post("/holds/h-p/capture")
            .header("Idempotency-Key", key.to_owned())
            .json(&body)
            .send()
    };
    let asked = json!({"amount": 20, "toWalletId": "payee", "description": "Checkout"});
    let first = capture("cap-p", asked.clone()).await.expect("sent");
    assert_eq!(first.status(), 201);
    let (_, hold) = json_of(first).await;
    assert_eq!(hold["status"], "CAPTURED", "{hold}");
    assert_eq!(hold["capturedAmount"].to_string(), "20.00", "{hold}");
    assert_eq!(hold["amount"].to_string(), "25.00", "{hold}");
    assert_eq!(hold["toWalletId"], "payee", "{hold}");
    let (status, read) = json_of(app.get("/holds/h-p").send().await.expect("sent")).await;
    assert_eq!(status, 200);
    assert_eq!(
        read, hold,
        "the reply is the hold as its wallet's stream tells it"
    );

    let again = capture("cap-p", asked).await.expect("sent");
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(json_of(again).await, (201, hold));
    assert_eq!(app.balance_text("w").await, "80.00");
    assert_eq!(app.balance_text("payee").await, "20.00");

    // It ran as the transfer process: its journal has the capture's intent and end.
    let journal = EmbeddedTransferJournal::open(temp.path()).expect("journal");
    let records = journal
        .read(transfer_id_for_key("cap-p"))
        .await
        .expect("journal");
    assert!(matches!(
        records.first(),
        Some(JournalRecord::Initiated(intent))
            if intent.hold_id == Some(HoldId::parse("h-p").expect("hold id"))
    ));
    assert!(matches!(
        records.last(),
        Some(JournalRecord::Finished(Ending::Completed {
            status: 201,
            ..
        }))
    ));

    // Refusals answer as on the atomic path and record nothing.
    let (status, body) = json_of(
        app.post_json("/holds/h-p/capture", json!({"toWalletId": "payee"}))
            .await,
    )
    .await;
    assert!(error_message(&body, 409).contains("CAPTURED"), "{body}");
    assert_eq!(status, 409);
    app.post_json("/wallets/w/holds", json!({"amount": 5, "holdId": "h-q"}))
        .await;
    let (status, body) = json_of(
        app.post_json("/holds/h-q/capture", json!({"toWalletId": "nobody"}))
            .await,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = json_of(
        app.post_json("/holds/h-q/capture", json!({"toWalletId": "w"}))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(journal.unfinished(10).await.expect("open").is_empty());
    assert_eq!(app.balance_text("w").await, "80.00");
    app.stop().await;
}
