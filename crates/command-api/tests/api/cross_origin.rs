//! Requests a browser sends for a page of another site are refused and change
//! nothing; the server's own origin and clients without `Origin` are served.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    answer_to_raw, error_message, json_of, spawn_app, spawn_app_allowing_origins, spawn_auth_app,
    token,
};

const ATTACKER: &str = "http://attacker.example";
/// How long a raw HTTP/1.0 request may take to be answered, in ms.
const RAW_ANSWER_WAIT_MS: u64 = 5_000;

/// The status and body of `head` (a whole HTTP/1.0 request head) sent raw.
async fn raw_http_1_0(address: &str, head: &str) -> (u16, serde_json::Value) {
    let (answer, _) = answer_to_raw(
        address,
        |_| head.to_owned(),
        Duration::from_millis(RAW_ANSWER_WAIT_MS),
    )
    .await;
    let (status_line, rest) = answer.split_once("\r\n").expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status");
    let (_, body) = rest.split_once("\r\n\r\n").expect("a head and a body");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test]
async fn a_command_from_another_origin_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_wallet("victim", "owner-1", json!(100))
            .await
            .status(),
        201
    );
    // What a page's fetch(..., {mode: "no-cors"}) sends: Origin, and a body
    // with no Content-Type, or no body at all.
    let debit = app
        .post("/wallets/victim/debit")
        .header("origin", ATTACKER)
        .body(r#"{"amount":45}"#)
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(debit).await;
    assert_eq!(status, 403);
    assert!(error_message(&body, 403).contains(ATTACKER), "{body}");
    for command in ["/wallets/victim/freeze", "/wallets/victim/close"] {
        let response = app
            .post(command)
            .header("origin", "null")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 403, "{command}");
    }
    let (status, wallet) = json_of(app.wallet("victim").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (wallet["balance"].to_string(), wallet["status"].as_str()),
        ("100.00".into(), Some("ACTIVE"))
    );
    app.stop().await;
}

#[tokio::test]
async fn the_servers_own_origin_and_clients_without_origin_are_served() {
    let app = spawn_app().await;
    let own_origin = app.address.clone();
    let created = app
        .post("/wallets")
        .header("origin", own_origin)
        .json(&json!({"walletId": "w", "ownerId": "o", "initialBalance": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    assert_eq!(app.credit("w", json!(1)).await.status(), 201);
    let read = app
        .get("/wallets/w")
        .header("origin", ATTACKER)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        read.status(),
        200,
        "a read changes nothing: the browser keeps its answer from the page"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_authentication_a_host_that_is_not_loopback_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(5)).await.status(), 201);
    for host in [
        "attacker.example:3000",
        "attacker.example",
        "10.1.2.3",
        "[::1",
    ] {
        let response = app
            .get("/wallets/w")
            .header("host", host)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 403, "{host}");
        assert!(error_message(&body, 403).contains("loopback"), "{body}");
    }
    for host in ["localhost:1234", "127.0.0.1", "[::1]:80"] {
        let response = app
            .get("/wallets/w")
            .header("host", host)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "{host}");
    }
    app.stop().await;
}

/// A browser always sends `Host`, so a request without one (HTTP/1.0, which
/// has none) is no DNS-rebinding page's: served, while a `Host` sent and not
/// loopback is still refused (h104 F3).
#[tokio::test]
async fn without_authentication_a_request_naming_no_host_is_served() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(5)).await.status(), 201);
    let (status, health) = raw_http_1_0(&app.address, "GET /health HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{health}");
    let (status, wallet) = raw_http_1_0(&app.address, "GET /wallets/w HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        (status, wallet["balance"].to_string()),
        (200, "5.00".to_owned()),
        "{wallet}"
    );
    let (status, body) = raw_http_1_0(
        &app.address,
        "POST /wallets/w/credit HTTP/1.0\r\nContent-Type: application/json\r\n\
         Content-Length: 12\r\n\r\n{\"amount\":1}",
    )
    .await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "6.00".to_owned()),
        "{body}"
    );
    let (status, body) = raw_http_1_0(
        &app.address,
        "GET /health HTTP/1.0\r\nHost: attacker.example\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(error_message(&body, 403).contains("loopback"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn with_authentication_any_host_is_served_and_origins_are_still_checked() {
    let app = spawn_auth_app(1_000, 1_000).await;
    let admin = token("admin-1", "admin");
    let created = app
        .post("/wallets")
        .bearer_auth(&admin)
        .header("host", "wallex.example")
        .json(&json!({"walletId": "w", "ownerId": "o", "initialBalance": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    let forged = app
        .post("/wallets/w/credit")
        .bearer_auth(&admin)
        .header("host", "wallex.example")
        .header("origin", ATTACKER)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn several_origins_or_credentials_are_refused() {
    let app = spawn_auth_app(1_000, 1_000).await;
    let admin = token("admin-1", "admin");
    let created = app
        .post("/wallets")
        .bearer_auth(&admin)
        .json(&json!({"walletId": "w", "ownerId": "o", "initialBalance": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    let own_origin = app.address.clone();
    let two_origins = app
        .post("/wallets/w/credit")
        .bearer_auth(&admin)
        .header("origin", own_origin)
        .header("origin", ATTACKER)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(two_origins.status(), 403);
    let two_tokens = app
        .post("/wallets/w/credit")
        .header("authorization", format!("Bearer {admin}"))
        .header("authorization", format!("Bearer {}", token("o", "wallets")))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(two_tokens).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body, 400).contains("Authorization"),
        "{body}"
    );
    let (_, wallet) = json_of(
        app.get("/wallets/w")
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(wallet["balance"].to_string(), "1.00");
    app.stop().await;
}

#[tokio::test]
async fn the_commands_of_an_allowed_origin_are_served_and_others_still_refused() {
    // h143 F1: a web app on its own origin, or behind a proxy that gives this
    // server another Host, had no way to send a command.
    let app = spawn_app_allowing_origins(&["https://app.example.com"]).await;
    assert_eq!(app.create_wallet("w", "o", json!(10)).await.status(), 201);
    let credit = |origin: &'static str| {
        app.post("/wallets/w/credit")
            .header("origin", origin)
            .json(&json!({"amount": 1}))
            .send()
    };
    assert_eq!(
        credit("https://APP.example.com")
            .await
            .expect("sent")
            .status(),
        201,
        "an allowed origin, case aside"
    );
    for refused in [
        ATTACKER,
        "http://app.example.com",
        "https://app.example.com:8443",
    ] {
        let (status, body) = json_of(credit(refused).await.expect("sent")).await;
        assert_eq!(status, 403, "{refused}: {body}");
    }
    assert_eq!(app.balance_text("w").await, "11.00");
    app.stop().await;
}
