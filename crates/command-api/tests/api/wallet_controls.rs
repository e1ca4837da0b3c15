//! Overdraft limits, frozen and closed wallets: every endpoint and every refusal.

use serde_json::{json, Value};

use crate::helpers::{
    error_message, json_of, spawn_app, spawn_process_app_in, without_audit_trail, TestApp,
};

async fn set_limit(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    json_of(
        app.put(&format!("/wallets/{id}/overdraft-limit"))
            .json(&body)
            .send()
            .await
            .expect("sent"),
    )
    .await
}

/// `POST /wallets/{id}/{action}` with no body.
async fn act(app: &TestApp, id: &str, action: &str) -> (u16, Value) {
    json_of(
        app.post(&format!("/wallets/{id}/{action}"))
            .send()
            .await
            .expect("sent"),
    )
    .await
}

#[track_caller]
fn money(body: &Value, field: &str) -> String {
    body[field].to_string()
}

#[tokio::test]
async fn a_wallet_shows_the_seed_fields_then_its_available_and_held_balance_limit_and_status() {
    let app = spawn_app().await;
    let (status, body) = json_of(app.create_wallet("w", "o", json!(100)).await).await;
    assert_eq!(status, 201);
    for field in [
        "id",
        "ownerId",
        "balance",
        "createdAt",
        "updatedAt",
        "version",
    ] {
        assert!(!body[field].is_null(), "{field} in {body}");
    }
    assert_eq!(money(&body, "availableBalance"), "100.00");
    assert_eq!(money(&body, "heldBalance"), "0.00");
    assert_eq!(money(&body, "overdraftLimit"), "0.00");
    assert_eq!(body["status"], "ACTIVE");
    let (_, listed) = json_of(app.get("/wallets").send().await.expect("sent")).await;
    assert_eq!(listed[0], body, "the read model shows the same wallet");
    app.stop().await;
}

#[tokio::test]
async fn a_limit_given_at_creation_lets_the_balance_go_down_to_it_and_no_further() {
    let app = spawn_app().await;
    let (status, created) = json_of(
        app.post_json(
            "/wallets",
            json!({"walletId": "w", "ownerId": "o", "initialBalance": 100, "overdraftLimit": 50}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(money(&created, "overdraftLimit"), "50.00");
    let (status, debited) = json_of(app.debit("w", json!(120)).await).await;
    assert_eq!(status, 201);
    assert_eq!(money(&debited, "balance"), "-20.00");
    assert_eq!(money(&debited, "availableBalance"), "-20.00");
    let (status, refused) = json_of(app.debit("w", json!(30.01)).await).await;
    assert!(error_message(&refused, 400).contains("Insufficient funds"));
    assert_eq!(status, 400);
    app.create_wallet("other", "o", json!(0)).await;
    let (status, _) = json_of(app.transfer("w", "other", json!(30)).await).await;
    assert_eq!(
        status, 201,
        "a transfer out may use the rest of the overdraft"
    );
    assert_eq!(app.balance_text("w").await, "-50.00");

    let (_, listed) = json_of(app.get("/wallets").send().await.expect("sent")).await;
    assert_eq!(money(&listed[1], "balance"), "-50.00");
    assert_eq!(money(&listed[1], "overdraftLimit"), "50.00");
    let (_, summary) = json_of(
        app.get("/ledger/wallet/w/summary")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(money(&summary, "balance"), "-50.00");
    let verify = app.get("/ledger/verify").send().await.expect("sent");
    assert_eq!(verify.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn put_overdraft_limit_changes_it_but_never_below_what_is_used() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    let (status, body) = set_limit(&app, "w", json!({"overdraftLimit": 100.00})).await;
    assert_eq!(status, 201);
    assert_eq!(money(&body, "overdraftLimit"), "100.00");
    assert_eq!(body["version"], 2);
    assert_eq!(app.debit("w", json!(50)).await.status(), 201);
    let (status, refused) = set_limit(&app, "w", json!({"overdraftLimit": 39.99})).await;
    assert_eq!(status, 409);
    assert!(error_message(&refused, 409).contains("Overdraft limit"));
    let (status, _) = set_limit(&app, "w", json!({"overdraftLimit": 40})).await;
    assert_eq!(status, 201);

    for bad in [
        json!({}),
        json!({"overdraftLimit": -1}),
        json!({"overdraftLimit": 0.001}),
        json!({"overdraftLimit": "10"}),
        json!({"overdraftLimit": 1, "extra": 1}),
    ] {
        let (status, body) = set_limit(&app, "w", bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        let message = error_message(&body, 400);
        assert!(
            message.contains("overdraftLimit") || message.contains("extra"),
            "{message}"
        );
    }
    let (status, _) = set_limit(&app, "missing", json!({"overdraftLimit": 1})).await;
    assert_eq!(status, 404);
    let (status, body) = json_of(
        app.post_json(
            "/wallets",
            json!({"walletId": "x", "ownerId": "o", "overdraftLimit": -5}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("overdraftLimit"));
    app.stop().await;
}

#[tokio::test]
async fn putting_the_limit_a_wallet_has_changes_nothing_unless_its_answer_must_be_kept() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    let (_, set) = set_limit(&app, "w", json!({ "overdraftLimit": 5 })).await;
    assert_eq!(set["version"], 2);
    for same in [json!(5), json!(5.00), json!(5e0)] {
        let (status, body) = set_limit(&app, "w", json!({ "overdraftLimit": same })).await;
        assert_eq!(status, 201, "{same}");
        assert_eq!(body["version"], 2, "no event for {same}: {body}");
        assert_eq!(money(&body, "overdraftLimit"), "5.00");
    }
    let keyed = |key: &'static str, limit: Value| {
        app.put("/wallets/w/overdraft-limit")
            .header("Idempotency-Key", key)
            .json(&json!({ "overdraftLimit": limit }))
            .send()
    };
    // A keyed request that asks for the limit the wallet has is recorded, so
    // that its retry after another change answers as it did and changes
    // nothing, and the key cannot serve another request (tester h93).
    let (status, first) = json_of(keyed("same-1", json!(5)).await.expect("sent")).await;
    assert_eq!(status, 201);
    assert_eq!(first["version"], 3);
    let (status, _) = set_limit(&app, "w", json!({ "overdraftLimit": 0 })).await;
    assert_eq!(status, 201);
    let (status, retried) = json_of(keyed("same-1", json!(5)).await.expect("sent")).await;
    assert_eq!(status, 201);
    assert_eq!(retried, first, "the stored answer");
    let (_, wallet) = json_of(app.get("/wallets/w").send().await.expect("sent")).await;
    assert_eq!(
        money(&wallet, "overdraftLimit"),
        "0.00",
        "the operator's 0 stands"
    );
    let (status, refused) = json_of(app.debit("w", json!(15)).await).await;
    assert_eq!(status, 400, "no overdraft: {refused}");
    let (status, _) = json_of(keyed("same-2", json!(0)).await.expect("sent")).await;
    assert_eq!(status, 201);
    let (status, reused) = json_of(
        app.post("/wallets/w/credit")
            .header("Idempotency-Key", "same-2")
            .json(&json!({"amount": 1}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 422, "{reused}");
    assert_eq!(app.balance_text("w").await, "10.00", "nothing credited");
    app.stop().await;
}

#[tokio::test]
async fn a_frozen_wallet_refuses_money_out_with_409_and_still_receives() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.create_wallet("other", "o", json!(100)).await;
    let (status, frozen) = act(&app, "w", "freeze").await;
    assert_eq!(status, 201);
    assert_eq!(frozen["status"], "FROZEN");

    let (status, body) = json_of(app.debit("w", json!(1)).await).await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("frozen"));
    let (status, body) = json_of(app.transfer("w", "other", json!(1)).await).await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("frozen"));
    assert_eq!(app.balance_text("other").await, "100.00", "nothing moved");
    assert_eq!(app.credit("w", json!(5)).await.status(), 201);
    assert_eq!(app.transfer("other", "w", json!(5)).await.status(), 201);
    assert_eq!(app.balance_text("w").await, "110.00");
    let (status, _) = set_limit(&app, "w", json!({"overdraftLimit": 10})).await;
    assert_eq!(status, 201, "a frozen wallet's limit may still be set");

    let (status, again) = act(&app, "w", "freeze").await;
    assert_eq!(status, 409);
    assert!(error_message(&again, 409).contains("frozen"));
    let (status, active) = act(&app, "w", "unfreeze").await;
    assert_eq!(status, 201);
    assert_eq!(active["status"], "ACTIVE");
    let (status, _) = act(&app, "w", "unfreeze").await;
    assert_eq!(status, 409);
    assert_eq!(app.debit("w", json!(1)).await.status(), 201);
    let (status, _) = act(&app, "missing", "freeze").await;
    assert_eq!(status, 404);
    let (status, body) = json_of(app.post_json("/wallets/w/freeze", json!({"x": 1})).await).await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("x"));
    app.stop().await;
}

#[tokio::test]
async fn a_wallet_closes_only_at_zero_then_refuses_every_change_and_stays_readable() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    app.create_wallet("other", "o", json!(10)).await;
    let (status, body) = act(&app, "w", "close").await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("balance"));
    app.debit("w", json!(10)).await;
    let (status, closed) = act(&app, "w", "close").await;
    assert_eq!(status, 201);
    assert_eq!(closed["status"], "CLOSED");

    let refusals = [
        app.credit("w", json!(1)).await,
        app.debit("w", json!(1)).await,
        app.transfer("other", "w", json!(1)).await,
        app.put("/wallets/w/overdraft-limit")
            .json(&json!({"overdraftLimit": 1}))
            .send()
            .await
            .expect("sent"),
        app.post("/wallets/w/freeze").send().await.expect("sent"),
        app.post("/wallets/w/close").send().await.expect("sent"),
    ];
    for response in refusals {
        let (status, body) = json_of(response).await;
        assert_eq!(status, 409, "{body}");
        assert!(error_message(&body, 409).contains("closed"));
    }
    assert_eq!(
        app.balance_text("other").await,
        "10.00",
        "the payer kept its money"
    );
    let (status, read) = json_of(app.wallet("w").await).await;
    assert_eq!(status, 200);
    assert_eq!(without_audit_trail(read), closed);
    let (_, history) = json_of(
        app.get("/wallets/w/transactions")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(history["transactions"][0]["type"], "WalletClosed");
    assert_eq!(money(&history["transactions"][0], "amount"), "0.00");
    app.stop().await;
}

#[tokio::test]
async fn a_status_change_takes_an_idempotency_key() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(1)).await;
    let freeze = || {
        app.post("/wallets/w/freeze")
            .header("Idempotency-Key", "freeze-1")
            .send()
    };
    let first = freeze().await.expect("sent");
    assert_eq!(first.status(), 201);
    let second = freeze().await.expect("sent");
    assert_eq!(second.status(), 201);
    assert_eq!(
        second
            .headers()
            .get("Idempotent-Replayed")
            .and_then(|value| value.to_str().ok()),
        Some("true")
    );
    let (_, wallet) = json_of(app.wallet("w").await).await;
    assert_eq!(wallet["version"], 2, "frozen once");
    app.stop().await;
}

#[tokio::test]
async fn the_transfer_process_refuses_a_frozen_payer_and_a_closed_payee() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("payer", "o", json!(10)).await;
    app.create_wallet("payee", "o", json!(0)).await;
    act(&app, "payee", "close").await;
    let (status, body) = json_of(app.transfer("payer", "payee", json!(1)).await).await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("closed"));
    app.create_wallet("open", "o", json!(0)).await;
    act(&app, "payer", "freeze").await;
    let (status, body) = json_of(app.transfer("payer", "open", json!(1)).await).await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("frozen"));
    assert_eq!(app.balance_text("payer").await, "10.00");
    app.stop().await;
}
