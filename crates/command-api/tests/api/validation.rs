//! Bad input gets a clear 4xx and changes nothing.

use serde_json::json;

use crate::helpers::{error_message, json_of, spawn_app, TestApp};

async fn expect_bad_request(app: &TestApp, path: &str, body: &str, needle: &str) {
    let (status, json) = app.post_raw(path, body).await;
    assert_eq!(status, 400, "{path} {body}: {json}");
    let message = error_message(&json, 400);
    assert!(
        message.contains(needle),
        "{body}: expected {needle:?} in {message:?}"
    );
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_by_field() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(5)).await;
    let credit = "/wallets/w/credit";
    for (body, needle) in [
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1,2]", "must be a JSON object"),
        // A number JSON does not have names its property and JSON's form.
        (r#"{"amount": +1}"#, "amount is not valid JSON"),
        (r#"{"amount": 01.5}"#, "amount is not valid JSON"),
        (r#"{"amount": NaN}"#, "no leading + or 0"),
        (
            r#"{"amount": 1, "description": 'x'}"#,
            "description is not valid JSON",
        ),
        (r#"{"amount": "10"}"#, "amount must be a number"),
        (r#"{}"#, "amount is required"),
        (r#"{"amount": null}"#, "amount is required"),
        (
            r#"{"amount": 10, "extra": 1}"#,
            "property extra should not exist",
        ),
        (r#"{"amount": 0}"#, "amount must be greater than 0"),
        (r#"{"amount": -5}"#, "amount must be greater than 0"),
        (r#"{"amount": 1.001}"#, "at most 2 decimal places"),
        (r#"{"amount": 1000000000000.01}"#, "at most"),
        (
            r#"{"amount": 1e400}"#,
            "amount has more than 29 significant digits or is too large",
        ),
        (
            r#"{"amount": 10, "description": 5}"#,
            "description must be a string",
        ),
    ] {
        expect_bad_request(&app, credit, body, needle).await;
    }
    let long = format!(r#"{{"amount": 1, "description": "{}"}}"#, "x".repeat(501));
    expect_bad_request(&app, credit, &long, "description must be at most 500").await;
    assert_eq!(app.balance_text("w").await, "5.00", "nothing changed");
    app.stop().await;
}

#[tokio::test]
async fn create_validates_ids_and_opening_balance() {
    let app = spawn_app().await;
    for (body, needle) in [
        (r#"{"ownerId": "o"}"#, "walletId is required"),
        (
            r#"{"walletId": "", "ownerId": "o"}"#,
            "walletId must not be empty",
        ),
        (
            r#"{"walletId": "a b", "ownerId": "o"}"#,
            "walletId may contain only",
        ),
        (
            r#"{"walletId": 12, "ownerId": "o"}"#,
            "walletId must be a string",
        ),
        (r#"{"walletId": "w"}"#, "ownerId is required"),
        (
            r#"{"walletId": "w", "ownerId": "o", "initialBalance": -1}"#,
            "initialBalance must not be negative",
        ),
        (
            r#"{"walletId": "w", "ownerId": "o", "initialBalance": "1"}"#,
            "initialBalance must be a number",
        ),
    ] {
        expect_bad_request(&app, "/wallets", body, needle).await;
    }
    let long_id = format!(r#"{{"walletId": "{}", "ownerId": "o"}}"#, "a".repeat(65));
    expect_bad_request(&app, "/wallets", &long_id, "at most 64").await;
    assert_eq!(app.wallet("w").await.status(), 404, "nothing was created");
    app.stop().await;
}

#[tokio::test]
async fn transfer_validates_its_target() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(5)).await;
    expect_bad_request(
        &app,
        "/wallets/w/transfer",
        r#"{"amount": 1}"#,
        "toWalletId is required",
    )
    .await;
    expect_bad_request(
        &app,
        "/wallets/w/transfer",
        r#"{"toWalletId": "x", "amount": 0.001}"#,
        "decimal places",
    )
    .await;
    // The paying wallet of the path is named as the document and the seed
    // name it.
    for (path, needle) in [
        ("/wallets/a.b/transfer", "fromWalletId may contain only"),
        ("/wallets/%FF/transfer", "fromWalletId must be UTF-8"),
    ] {
        expect_bad_request(&app, path, r#"{"toWalletId": "w", "amount": 1}"#, needle).await;
    }
    assert_eq!(app.balance_text("w").await, "5.00");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let body = format!(
        r#"{{"walletId": "w", "ownerId": "o", "pad": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let response = app.post("/wallets").body(body).send().await.expect("sent");
    let (status, json) = json_of(response).await;
    assert_eq!(status, 413);
    error_message(&json, 413);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let response = app
        .post("/wallets")
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"walletId": "w", "ownerId": "o"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    app.stop().await;
}
