//! `GET /ledger/verify` while writes run: it compares each wallet at one log
//! position, so it never reports a healthy wallet.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::helpers::{json_of, spawn_app};

const WALLETS: usize = 4;
const WRITERS: usize = 4;
const OPERATIONS_PER_WRITER: usize = 40;
/// Verifications asked for at least, while the writers run.
const VERIFICATIONS_MIN: usize = 5;

#[tokio::test]
async fn verify_answers_200_every_time_under_concurrent_writes() {
    let app = spawn_app().await;
    for wallet in 0..WALLETS {
        let response = app
            .create_wallet(&format!("v-{wallet}"), "o", json!(1000))
            .await;
        assert_eq!(response.status(), 201);
    }
    let writing = AtomicBool::new(true);
    let writers = (0..WRITERS).map(|writer| {
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for operation in 0..OPERATIONS_PER_WRITER {
                let from = format!("v-{}", (writer + operation) % WALLETS);
                let to = format!("v-{}", (writer + operation + 1) % WALLETS);
                let response = match operation % 3 {
                    0 => app.credit(&from, json!(0.01)).await,
                    1 => app.debit(&from, json!(0.01)).await,
                    _ => app.transfer(&from, &to, json!(0.01)).await,
                };
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    });
    let writers = async {
        let statuses: Vec<u16> = futures::future::join_all(writers)
            .await
            .into_iter()
            .flatten()
            .collect();
        writing.store(false, Ordering::SeqCst);
        statuses
    };
    let verifier = async {
        let mut answers = Vec::new();
        while writing.load(Ordering::SeqCst) || answers.len() < VERIFICATIONS_MIN {
            let (status, body) =
                json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
            answers.push((status, body));
        }
        answers
    };
    let (statuses, answers) = tokio::join!(writers, verifier);
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["ok"], true, "{body}");
        assert_eq!(body["balanceMismatches"], json!([]), "{body}");
        assert_eq!(body["stoppedEarly"], false, "{body}");
    }

    // Once the writes are done, the ledger has them all.
    let (status, body) = json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caughtUp"], true, "{body}");
    assert_eq!(body["eventsNotPosted"], 0, "{body}");
    assert_eq!(body["walletsInLedger"], WALLETS, "{body}");
    assert_eq!(body["walletsChecked"], WALLETS, "{body}");
    assert_eq!(body["transfersInFlight"], json!([]), "{body}");
    app.stop().await;
}
