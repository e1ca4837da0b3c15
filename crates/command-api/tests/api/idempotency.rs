//! Retries with an Idempotency-Key are answered once and applied once.

use serde_json::json;

use crate::helpers::{error_message, json_of, spawn_app, spawn_app_in};

#[tokio::test]
async fn the_same_key_and_body_replays_the_stored_response() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    let send = || {
        app.post("/wallets/w/credit")
            .header("Idempotency-Key", "credit-1")
            .json(&json!({"amount": 5, "description": "once"}))
            .send()
    };
    let first = send().await.expect("sent");
    let first_status = first.status();
    let first_body = first.text().await.expect("text");
    let second = send().await.expect("sent");
    assert_eq!(second.status(), first_status);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.expect("text"), first_body);
    assert_eq!(app.balance_text("w").await, "15.00", "credited once");
    app.stop().await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    let post = |amount: i64| {
        app.post("/wallets/w/debit")
            .header("Idempotency-Key", "debit-1")
            .json(&json!({"amount": amount}))
            .send()
    };
    assert_eq!(post(1).await.expect("sent").status(), 201);
    let (status, body) = json_of(post(2).await.expect("sent")).await;
    assert_eq!(status, 422);
    assert!(error_message(&body, 422).contains("Idempotency-Key"));
    assert_eq!(app.balance_text("w").await, "9.00");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_retries_of_one_key_apply_once() {
    const RETRIES: usize = 10;
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(0)).await;
    let requests = (0..RETRIES).map(|_| {
        app.post("/wallets/w/credit")
            .header("Idempotency-Key", "burst")
            .json(&json!({"amount": 7}))
            .send()
    });
    let responses = futures_join(requests).await;
    let bodies: Vec<String> = responses
        .iter()
        .map(|(status, body)| format!("{status} {body}"))
        .collect();
    assert!(bodies.iter().all(|body| body == &bodies[0]), "{bodies:?}");
    assert_eq!(app.balance_text("w").await, "7.00");
    app.stop().await;
}

async fn futures_join<F>(requests: impl Iterator<Item = F>) -> Vec<(u16, String)>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut out = Vec::new();
    let responses = futures::future::join_all(requests).await;
    for response in responses {
        let response = response.expect("sent");
        out.push((
            response.status().as_u16(),
            response.text().await.expect("text"),
        ));
    }
    out
}

#[tokio::test]
async fn keys_survive_a_restart() {
    let app = spawn_app().await;
    let directory = app.data_dir.clone();
    let create = |app: &crate::helpers::TestApp| {
        app.post("/wallets")
            .header("Idempotency-Key", "create-w")
            .json(&json!({"walletId": "w", "ownerId": "o", "initialBalance": 3}))
            .send()
    };
    let first = create(&app)
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let temp = app.stop().await;
    let app = spawn_app_in(&directory).await;
    let again = create(&app).await.expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.text().await.expect("text"), first);
    app.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_retry_the_rules_would_now_refuse_still_gets_the_stored_answer() {
    let app = spawn_app().await;
    let create = || {
        app.post("/wallets")
            .header("Idempotency-Key", "create-once")
            .json(&json!({"walletId": "w", "ownerId": "o", "initialBalance": 10}))
            .send()
    };
    let debit_all = || {
        app.post("/wallets/w/debit")
            .header("Idempotency-Key", "empty-it")
            .json(&json!({"amount": 10}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            create().await.expect("sent").status(),
            201,
            "a repeated create is not a 409"
        );
        assert_eq!(
            debit_all().await.expect("sent").status(),
            201,
            "a repeated debit is not a 400"
        );
    }
    assert_eq!(app.balance_text("w").await, "0.00");
    app.stop().await;
}
