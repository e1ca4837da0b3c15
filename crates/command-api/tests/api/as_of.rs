//! Wallets and ledger summaries as of a moment: `?at=` and `?version=`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    error_message, json_of, spawn_app, spawn_app_in, without_audit_trail, TestApp,
};

/// Keeps each operation in a millisecond of its own, the precision of times.
const STEP_PAUSE_MS: u64 = 5;

/// The answer to `path`, a wallet read's without its audit trail.
async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let (status, body) = json_of(app.get(path).send().await.expect("sent")).await;
    (status, without_audit_trail(body))
}

#[tokio::test]
async fn a_wallet_as_of_a_version_or_a_time_is_what_it_was_then() {
    let app = spawn_app().await;
    let (_, created) = json_of(app.create_wallet("w", "o", json!(100)).await).await;
    tokio::time::sleep(Duration::from_millis(STEP_PAUSE_MS)).await;
    let (_, credited) = json_of(app.credit("w", json!(50)).await).await;
    tokio::time::sleep(Duration::from_millis(STEP_PAUSE_MS)).await;
    let (_, debited) = json_of(app.debit("w", json!(30)).await).await;

    assert_eq!(
        get(&app, "/wallets/w?version=1").await,
        (200, created.clone())
    );
    assert_eq!(
        get(&app, "/wallets/w?version=2").await,
        (200, credited.clone())
    );
    assert_eq!(
        get(&app, "/wallets/w?version=3").await,
        (200, debited.clone())
    );
    let at_credit = credited["updatedAt"].as_str().expect("time");
    assert_eq!(
        get(&app, &format!("/wallets/w?at={at_credit}")).await,
        (200, credited.clone())
    );
    let (status, body) = get(&app, "/wallets/w?at=2000-01-01T00:00:00Z").await;
    assert_eq!(status, 404);
    assert!(error_message(&body, 404).contains("did not exist"));
    let (status, body) = get(&app, "/wallets/w?version=4").await;
    assert_eq!(status, 404);
    assert!(error_message(&body, 404).contains("no version 4"));
    let (status, _) = get(&app, "/wallets/missing?version=1").await;
    assert_eq!(status, 404);
    for bad in [
        "version=0",
        "version=x",
        "at=yesterday",
        "at=2025-10-23T10:00:00Z&version=1",
    ] {
        let (status, body) = get(&app, &format!("/wallets/w?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        let message = error_message(&body, 400);
        assert!(
            message.contains("at") || message.contains("version"),
            "{message}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_ledger_summary_as_of_a_moment_agrees_with_the_wallet_then() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    tokio::time::sleep(Duration::from_millis(STEP_PAUSE_MS)).await;
    let (_, credited) = json_of(app.credit("w", json!(50)).await).await;
    tokio::time::sleep(Duration::from_millis(STEP_PAUSE_MS)).await;
    app.debit("w", json!(30)).await;

    let at = credited["updatedAt"].as_str().expect("time");
    let (status, summary) = get(&app, &format!("/ledger/wallet/w/summary?at={at}")).await;
    assert_eq!(status, 200);
    let (_, wallet) = get(&app, &format!("/wallets/w?at={at}")).await;
    assert_eq!(summary["balance"], wallet["balance"]);
    assert_eq!(summary["balance"].to_string(), "150.00");
    let (_, now) = get(&app, "/ledger/wallet/w/summary").await;
    assert_eq!(now["balance"].to_string(), "120.00");
    let (status, body) = get(&app, "/ledger/wallet/w/summary?at=soon").await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("at must be"));
    app.stop().await;
}

#[tokio::test]
async fn before_its_creation_a_wallet_and_its_summary_agree_it_did_not_exist() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    // The message names the instant asked, to the digit.
    let before = "2000-01-01T00:00:00.1234567Z";
    let (wallet_status, wallet) = get(&app, &format!("/wallets/w?at={before}")).await;
    let (summary_status, summary) =
        get(&app, &format!("/ledger/wallet/w/summary?at={before}")).await;
    assert_eq!((wallet_status, summary_status), (404, 404));
    assert_eq!(error_message(&summary, 404), error_message(&wallet, 404));
    assert!(error_message(&wallet, 404).ends_with(before), "{wallet}");
    // Without `at`, a wallet never created sums to nothing, as the seed's summary did.
    let (status, never) = get(&app, "/ledger/wallet/never-created/summary").await;
    assert_eq!(status, 200, "{never}");
    assert_eq!(never["balance"].to_string(), "0.00");
    assert_eq!(never["transactionCount"], 0);
    app.stop().await;
}

#[tokio::test]
async fn as_of_parameters_follow_the_query_rules_of_every_endpoint() {
    let app = spawn_app().await;
    let (_, created) = json_of(app.create_wallet("w", "o", json!(100)).await).await;
    // An empty value is an absent one: the wallet now.
    assert_eq!(
        get(&app, "/wallets/w?at=&version=").await,
        (200, created.clone())
    );
    // A day is its whole day: the day of the creation holds it.
    let today = created["createdAt"].as_str().expect("createdAt")[..10].to_owned();
    assert_eq!(
        get(&app, &format!("/wallets/w?at={today}")).await,
        (200, created)
    );
    let (status, summary) = get(&app, &format!("/ledger/wallet/w/summary?at={today}")).await;
    assert_eq!(
        (status, summary["totalCredits"].to_string()),
        (200, "100.00".to_owned())
    );
    for (path, parameter) in [
        ("/wallets/w?at=2026-02-30", "at "),
        ("/wallets/w?version=0", "version "),
        ("/ledger/wallet/w/summary?at=yesterday", "at "),
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            error_message(&body, 400).starts_with(parameter),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_moment_to_come_reads_as_now_and_does_not_expire_holds_ahead_of_time() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(100)).await.status(), 201);
    let expires_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let placed = app
        .post_json(
            "/wallets/w/holds",
            json!({"holdId": "h-future", "amount": 30, "expiresAt": expires_at}),
        )
        .await;
    assert_eq!(placed.status(), 201);
    let later = (chrono::Utc::now() + chrono::Duration::days(365))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (status, then) = get(&app, &format!("/wallets/w?at={later}")).await;
    assert_eq!(status, 200, "{then}");
    let (_, now) = get(&app, "/wallets/w").await;
    assert_eq!(then, now, "a year ahead reads as now");
    assert_eq!(then["heldBalance"].to_string(), "30.00");
    app.stop().await;
}

/// h135 F2: a read of the past folded a history that does not hold together
/// (an event's balance after rewritten in the log) and answered 200, where a
/// read of now answered 503. Every read that folds the rewritten event
/// answers 503 for an operator; one before it is still served.
#[tokio::test]
async fn a_read_of_the_past_over_a_broken_history_answers_for_an_operator() {
    let app = spawn_app().await;
    let directory = app.data_dir.clone();
    assert_eq!(app.create_wallet("w", "o", json!(10)).await.status(), 201);
    let placed = app
        .post_json("/wallets/w/holds", json!({"amount": 2, "holdId": "h-1"}))
        .await;
    assert_eq!(placed.status(), 201);
    assert_eq!(app.credit("w", json!(5)).await.status(), 201);
    let temp = app.stop().await;
    let events = rusqlite::Connection::open(directory.join("events.db")).expect("opened");
    let stored: String = events
        .query_row(
            "SELECT payload FROM events WHERE stream_id = 'w' AND version = 3",
            [],
            |row| Ok(event_store::embedded_payload::json(row.get_ref(0)?)),
        )
        .expect("the credit")
        .expect("a payload the server wrote");
    let mut credit: Value = serde_json::from_str(&stored).expect("json");
    credit["balanceAfter"] = serde_json::from_str("99.00").expect("a number");
    events
        .execute(
            "UPDATE events SET payload = ?1 WHERE stream_id = 'w' AND version = 3",
            [credit.to_string()],
        )
        .expect("rewritten");

    let app = spawn_app_in(&directory).await;
    let (status, before) = get(&app, "/wallets/w?version=2").await;
    assert_eq!(
        (status, before["balance"].to_string()),
        (200, "10.00".into()),
        "{before}"
    );
    for path in [
        "/wallets/w",
        "/wallets/w?version=3",
        "/wallets/w?at=2999-01-01T00:00:00Z",
        "/holds/h-1",
        "/wallets/w/holds",
    ] {
        let answer = app.get(path).send().await.expect("sent");
        assert!(answer.headers().get("retry-after").is_none(), "{path}");
        let (status, body) = json_of(answer).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(
            error_message(&body, 503).contains("does not hold together"),
            "{path}: {body}"
        );
    }
    app.stop().await;
    drop(temp);
}
