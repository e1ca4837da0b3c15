//! Retries with an Idempotency-Key are answered once and applied once.

use serde_json::json;

use crate::helpers::{error_message, json_of, spawn_app, spawn_app_in, spawn_app_with_retention};

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

#[tokio::test]
async fn the_fingerprint_is_of_the_operation_not_its_spelling() {
    let app = spawn_app().await;
    app.create_wallet("w-1", "o", json!(0)).await;
    let send = |path: &'static str, key: &'static str, body: &'static str| {
        app.post(path)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (key, first, again) in [
        (
            "number",
            ("/wallets/w-1/credit", r#"{"amount":100}"#),
            ("/wallets/w-1/credit", r#"{"amount":1e2}"#),
        ),
        (
            "path",
            ("/wallets/w%2D1/credit", r#"{"amount":3}"#),
            ("/wallets/w-1/credit", r#"{"amount":3.00}"#),
        ),
        (
            "null",
            ("/wallets/w-1/credit", r#"{"amount":5,"description":null}"#),
            ("/wallets/w-1/credit", r#"{"amount":5}"#),
        ),
    ] {
        let first = send(first.0, key, first.1).await.expect("sent");
        assert_eq!(first.status(), 201, "{key}");
        let first_body = first.text().await.expect("text");
        let again = send(again.0, key, again.1).await.expect("sent");
        assert_eq!(again.status(), 201, "{key}: the same operation");
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{key}");
        assert_eq!(again.text().await.expect("text"), first_body, "{key}");
    }
    assert_eq!(app.balance_text("w-1").await, "108.00", "each applied once");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_one_namespace_across_every_path() {
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(10)).await;
    let first = app
        .post("/wallets/a/credit")
        .header("Idempotency-Key", "shared")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), 201);
    for (path, body) in [
        ("/wallets/a/debit", json!({"amount": 1})),
        ("/wallets/b/credit", json!({"amount": 1})),
        (
            "/wallets/a/transfer",
            json!({"toWalletId": "b", "amount": 1}),
        ),
        ("/wallets", json!({"walletId": "c", "ownerId": "o"})),
    ] {
        let response = app
            .post(path)
            .header("Idempotency-Key", "shared")
            .json(&body)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 422, "{path}: {body}");
    }
    assert_eq!(app.balance_text("a").await, "11.00");
    assert_eq!(app.balance_text("b").await, "10.00");
    assert_eq!(app.wallet("c").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn two_different_requests_racing_with_one_key_run_exactly_once() {
    const ROUNDS: usize = 20;
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(0)).await;
    app.create_wallet("b", "o", json!(0)).await;
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let credit = |wallet: &str| {
            app.post(&format!("/wallets/{wallet}/credit"))
                .header("Idempotency-Key", key.clone())
                .json(&json!({"amount": 1}))
                .send()
        };
        let (on_a, on_b) = tokio::join!(credit("a"), credit("b"));
        let mut statuses = [
            on_a.expect("sent").status().as_u16(),
            on_b.expect("sent").status().as_u16(),
        ];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 422], "round {round}");
    }
    let (a, b) = (app.balance_text("a").await, app.balance_text("b").await);
    let cents = |text: &str| text.replace('.', "").parse::<u64>().expect("cents");
    assert_eq!(cents(&a) + cents(&b), 100 * ROUNDS as u64, "{a} + {b}");
    app.stop().await;
}

#[tokio::test]
async fn stored_responses_expire_after_the_retention() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(0)).await;
    let credit = |app: &crate::helpers::TestApp, amount: i64| {
        app.post("/wallets/w/credit")
            .header("Idempotency-Key", "expiring")
            .json(&json!({"amount": amount}))
            .send()
    };
    // A hold placed without an id, its key kept for the same time.
    let place = |app: &crate::helpers::TestApp| {
        app.post("/wallets/w/holds")
            .header("Idempotency-Key", "expiring-hold")
            .json(&json!({"amount": 1}))
            .send()
    };
    assert_eq!(credit(&app, 1).await.expect("sent").status(), 201);
    assert_eq!(credit(&app, 2).await.expect("sent").status(), 422);
    let (status, first_hold) = json_of(place(&app).await.expect("sent")).await;
    assert_eq!(status, 201, "{first_hold}");
    let directory = app.data_dir.clone();
    let kept = app.stop().await;
    // A restart with a retention of 0 hours purges every stored response before serving.
    let app = spawn_app_with_retention(&directory, 0).await;
    assert_eq!(
        credit(&app, 2).await.expect("sent").status(),
        201,
        "the key is free again"
    );
    assert_eq!(app.balance_text("w").await, "3.00");
    let (status, second_hold) = json_of(place(&app).await.expect("sent")).await;
    assert_eq!(
        status, 201,
        "the hold's key is free again too: {second_hold}"
    );
    assert_ne!(first_hold["id"], second_hold["id"], "a new hold");
    app.stop().await;
    drop(kept);
}

#[tokio::test]
async fn a_key_or_correlation_id_sent_twice_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(10)).await.status(), 201);
    for header in ["Idempotency-Key", "X-Correlation-Id"] {
        let response = app
            .post("/wallets/w/credit")
            .header(header, "first")
            .header(header, "second")
            .json(&json!({"amount": 1}))
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 400, "{header}: {body}");
        assert!(error_message(&body, 400).contains(header), "{body}");
    }
    assert_eq!(app.balance_text("w").await, "10.00");
    app.stop().await;
}
