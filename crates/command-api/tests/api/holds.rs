//! Holds: every endpoint and every refusal, on the embedded default; each
//! refusal is shown to have changed nothing.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    error_message, json_of, spawn_app, spawn_auth_app, token, without_audit_trail, TestApp,
};

/// Polls of a wallet while waiting for the expiry sweeper, at most.
const SWEEP_WAIT_POLLS_MAX: usize = 50;
/// Pause between two polls.
const SWEEP_WAIT_POLL_MS: u64 = 100;

async fn place(app: &TestApp, wallet: &str, body: Value) -> (u16, Value) {
    json_of(
        app.post_json(&format!("/wallets/{wallet}/holds"), body)
            .await,
    )
    .await
}

async fn capture(app: &TestApp, hold: &str, body: Value) -> (u16, Value) {
    json_of(app.post_json(&format!("/holds/{hold}/capture"), body).await).await
}

async fn void(app: &TestApp, hold: &str) -> (u16, Value) {
    json_of(
        app.post(&format!("/holds/{hold}/void"))
            .send()
            .await
            .expect("sent"),
    )
    .await
}

async fn read(app: &TestApp, path: &str) -> (u16, Value) {
    json_of(app.get(path).send().await.expect("sent")).await
}

async fn wallet(app: &TestApp, id: &str) -> Value {
    let (status, body) = json_of(app.wallet(id).await).await;
    assert_eq!(status, 200, "{body}");
    without_audit_trail(body)
}

/// A wallet `w` with 100.00 and a hold `h-1` of 25.00 on it.
async fn app_with_a_hold() -> TestApp {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(100)).await.status(), 201);
    let (status, body) = place(
        &app,
        "w",
        json!({"amount": 25, "holdId": "h-1", "description": "Hotel"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    app
}

#[track_caller]
fn money(body: &Value, field: &str) -> String {
    body[field].to_string()
}

#[tokio::test]
async fn a_placed_hold_is_pending_and_counts_against_the_available_balance() {
    let app = app_with_a_hold().await;
    let (status, hold) = read(&app, "/holds/h-1").await;
    assert_eq!(status, 200);
    assert_eq!(hold["id"], "h-1");
    assert_eq!(hold["walletId"], "w");
    assert_eq!(money(&hold, "amount"), "25.00");
    assert_eq!(money(&hold, "capturedAmount"), "0.00");
    assert_eq!(hold["status"], "PENDING");
    assert_eq!(hold["expiresAt"], Value::Null);
    assert_eq!(hold["description"], "Hotel");
    assert!(hold["createdAt"].is_string() && hold["updatedAt"].is_string());
    let body = wallet(&app, "w").await;
    assert_eq!(money(&body, "balance"), "100.00");
    assert_eq!(money(&body, "heldBalance"), "25.00");
    assert_eq!(money(&body, "availableBalance"), "75.00");
    let (_, listed) = read(&app, "/wallets").await;
    assert_eq!(
        listed[0], body,
        "the read model shows the same held balance"
    );

    let (status, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(status, 200);
    assert_eq!(list["walletId"], "w");
    assert_eq!(list["count"], 1);
    assert_eq!(list["holds"][0], hold);
    let (_, captured) = read(&app, "/wallets/w/holds?status=CAPTURED").await;
    assert_eq!(captured["count"], 0);
    let (_, pending) = read(&app, "/wallets/w/holds?status=").await;
    assert_eq!(pending["count"], 1, "an empty status is no filter");
    app.stop().await;
}

#[tokio::test]
async fn a_hold_debit_or_transfer_needs_that_much_available_and_a_refusal_changes_nothing() {
    let app = app_with_a_hold().await;
    let before = wallet(&app, "w").await;
    let (status, body) = place(&app, "w", json!({"amount": 75.01, "holdId": "h-2"})).await;
    assert!(
        error_message(&body, 400).contains("Insufficient funds"),
        "{body}"
    );
    assert_eq!(status, 400);
    let (status, body) = json_of(app.debit("w", json!(75.01)).await).await;
    assert_eq!(
        (status, error_message(&body, 400).contains("Insufficient")),
        (400, true)
    );
    app.create_wallet("other", "o", json!(0)).await;
    let (status, _) = json_of(app.transfer("w", "other", json!(75.01)).await).await;
    assert_eq!(status, 400);
    assert_eq!(wallet(&app, "w").await, before);
    let (status, _) = read(&app, "/holds/h-2").await;
    assert_eq!(status, 404, "a refused hold is not found");
    let (status, _) = place(&app, "w", json!({"amount": 75, "holdId": "h-2"})).await;
    assert_eq!(status, 201, "the refused id is free");
    app.stop().await;
}

#[tokio::test]
async fn a_hold_id_is_used_once_across_every_wallet() {
    let app = app_with_a_hold().await;
    app.create_wallet("w2", "o", json!(10)).await;
    let before = wallet(&app, "w2").await;
    for on in ["w", "w2"] {
        let (status, body) = place(&app, on, json!({"amount": 1, "holdId": "h-1"})).await;
        assert!(error_message(&body, 409).contains("h-1"), "{body}");
        assert_eq!(status, 409);
    }
    // The id's conflict comes before what the wallet could afford.
    let (status, body) = place(&app, "w2", json!({"amount": 1000, "holdId": "h-1"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(wallet(&app, "w2").await, before);
    let (_, list) = read(&app, "/wallets/w2/holds").await;
    assert_eq!(list["count"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_hold_without_an_id_gets_one_and_its_key_replays_it() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let (status, body) = place(&app, "w", json!({"amount": 1})).await;
    assert_eq!(status, 201);
    let generated = body["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let keyed = || {
        app.post("/wallets/w/holds")
            .header("Idempotency-Key", "hold-key-1")
            .json(&json!({"amount": 2, "description": "keyed"}))
    };
    let first = keyed().send().await.expect("sent");
    assert_eq!(first.status(), 201);
    let (_, first) = json_of(first).await;
    let again = keyed().send().await.expect("sent");
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    let (status, again) = json_of(again).await;
    assert_eq!((status, &again), (201, &first));
    let (_, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(list["count"], 2, "the retry placed nothing");
    let (status, body) = json_of(
        app.post("/wallets/w/holds")
            .header("Idempotency-Key", "hold-key-1")
            .json(&json!({"amount": 3}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, error_message(&body, 422).is_empty()), (422, false));
    app.stop().await;
}

/// Placements racing with one key and no `holdId` (each given its own id)
/// place one hold, and every one of them answers with it.
#[tokio::test]
async fn keyed_placements_racing_without_an_id_place_one_hold() {
    const RACERS: usize = 10;
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let racing = (0..RACERS).map(|_| {
        app.post("/wallets/w/holds")
            .header("Idempotency-Key", "racing-hold")
            .json(&json!({"amount": 3}))
            .send()
    });
    let mut ids = std::collections::BTreeSet::new();
    for response in futures::future::join_all(racing).await {
        let (status, body) = json_of(response.expect("sent")).await;
        assert_eq!(status, 201, "{body}");
        ids.insert(body["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 1, "one hold, one answer: {ids:?}");
    let (_, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(list["count"], 1);
    app.stop().await;
}

/// A chosen `holdId` reads the same in a path (no dot segment, nothing to
/// escape) and is never a version-5 UUID, the ids the server derived from
/// a key before it made them v7: choosing one could tell whether that key
/// was used. A keyed placement without an id gets a v7.
#[tokio::test]
async fn a_chosen_hold_id_is_path_safe_and_never_a_derived_one() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let keyed = app
        .post("/wallets/w/holds")
        .header("Idempotency-Key", "order-1")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    let (status, generated) = json_of(keyed).await;
    assert_eq!(status, 201, "{generated}");
    let generated = generated["id"].as_str().expect("id").to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&generated).map(|id| id.get_version_num()),
        Ok(7)
    );
    // What the server derived from the key "order-1" before.
    let derived = uuid::Uuid::new_v5(
        &uuid::Uuid::from_u128(0x3c8e_91a2_5f47_4d0b_b6e1_7a2d_9c04_e835),
        b"order-1",
    )
    .to_string();
    let v5 = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"elsewhere").to_string();
    for chosen in [
        ".",
        "..",
        "a.b",
        "a/b",
        "a?b",
        "a#b",
        " a",
        "a b",
        "\u{202e}ab",
        "é",
        &derived,
        &v5,
    ] {
        let (status, body) = place(&app, "w", json!({"amount": 1, "holdId": chosen})).await;
        assert!(
            error_message(&body, 400).contains("holdId"),
            "{chosen:?}: {body}"
        );
        assert_eq!(status, 400, "{chosen:?}");
    }
    let v4 = uuid::Uuid::new_v4().to_string();
    let v7 = uuid::Uuid::now_v7().to_string();
    for chosen in ["h-1", "H_2", v4.as_str(), v7.as_str(), &"h".repeat(128)] {
        let (status, body) = place(&app, "w", json!({"amount": 1, "holdId": chosen})).await;
        assert_eq!(status, 201, "{chosen:?}: {body}");
    }
    let (_, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(list["count"], 6, "the refused placements held nothing");
    app.stop().await;
}

#[tokio::test]
async fn capturing_part_of_a_hold_debits_that_and_releases_the_rest_once() {
    let app = app_with_a_hold().await;
    let (status, hold) = capture(&app, "h-1", json!({"amount": 10})).await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["status"], "CAPTURED");
    assert_eq!(money(&hold, "capturedAmount"), "10.00");
    assert_eq!(money(&hold, "amount"), "25.00");
    assert_eq!(hold["toWalletId"], Value::Null);
    let body = wallet(&app, "w").await;
    assert_eq!(money(&body, "balance"), "90.00");
    assert_eq!(money(&body, "heldBalance"), "0.00");
    assert_eq!(money(&body, "availableBalance"), "90.00");
    assert_eq!(read(&app, "/holds/h-1").await.1, hold);

    for (status, body) in [
        capture(&app, "h-1", json!({})).await,
        void(&app, "h-1").await,
    ] {
        let message = error_message(&body, 409);
        assert!(message.contains("not PENDING: it is CAPTURED"), "{body}");
        assert_eq!(status, 409);
    }
    assert_eq!(
        wallet(&app, "w").await,
        body,
        "the refusals changed nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn capturing_more_than_held_is_refused_and_the_whole_hold_is_the_default() {
    let app = app_with_a_hold().await;
    let before = wallet(&app, "w").await;
    let (status, body) = capture(&app, "h-1", json!({"amount": 25.01})).await;
    assert!(
        error_message(&body, 400).contains("it holds 25.00"),
        "{body}"
    );
    assert_eq!(status, 400);
    let (status, body) = capture(&app, "h-1", json!({"amount": 0})).await;
    assert!(error_message(&body, 400).contains("amount"), "{body}");
    assert_eq!(status, 400);
    let (status, body) = capture(&app, "h-1", json!({"extra": 1})).await;
    assert!(error_message(&body, 400).contains("extra"), "{body}");
    assert_eq!(status, 400);
    assert_eq!(wallet(&app, "w").await, before);
    let (status, hold) = capture(&app, "h-1", json!({"amount": null})).await;
    assert_eq!(status, 201);
    assert_eq!(money(&hold, "capturedAmount"), "25.00");
    assert_eq!(money(&wallet(&app, "w").await, "balance"), "75.00");
    app.stop().await;
}

#[tokio::test]
async fn a_capture_to_another_wallet_pays_it_all_or_nothing() {
    let app = app_with_a_hold().await;
    app.create_wallet("payee", "p", json!(0)).await;
    let before = wallet(&app, "w").await;
    let (status, body) = capture(&app, "h-1", json!({"toWalletId": "nobody"})).await;
    assert!(error_message(&body, 404).contains("nobody"), "{body}");
    assert_eq!(status, 404);
    let (status, body) = capture(&app, "h-1", json!({"toWalletId": "w"})).await;
    assert!(error_message(&body, 400).contains("toWalletId"), "{body}");
    assert_eq!(status, 400);
    let (status, body) = capture(&app, "h-1", json!({"toWalletId": "no such"})).await;
    assert!(error_message(&body, 400).contains("toWalletId"), "{body}");
    assert_eq!(status, 400);
    assert_eq!(wallet(&app, "w").await, before, "nothing was captured");

    let (status, hold) = capture(
        &app,
        "h-1",
        json!({"toWalletId": "payee", "amount": 20, "description": "Room"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["toWalletId"], "payee");
    assert_eq!(money(&wallet(&app, "payee").await, "balance"), "20.00");
    assert_eq!(money(&wallet(&app, "w").await, "balance"), "80.00");
    let payer = wallet(&app, "w").await;
    assert_eq!(money(&payer, "availableBalance"), "80.00");
    let (_, listed) = read(&app, "/wallets").await;
    assert_eq!(
        listed[1], payer,
        "the read model (by id) agrees after the capture"
    );
    app.stop().await;
}

#[tokio::test]
async fn voiding_makes_the_money_available_again() {
    let app = app_with_a_hold().await;
    let (status, hold) = void(&app, "h-1").await;
    assert_eq!(status, 201, "{hold}");
    assert_eq!(hold["status"], "VOIDED");
    let body = wallet(&app, "w").await;
    assert_eq!(money(&body, "availableBalance"), "100.00");
    assert_eq!(money(&body, "heldBalance"), "0.00");
    let (status, body) = json_of(
        app.post("/holds/h-1/void")
            .header("content-type", "application/json")
            .body("{\"amount\": 1}")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, error_message(&body, 400).contains("amount")),
        (400, true)
    );
    let (_, voided) = read(&app, "/wallets/w/holds?status=VOIDED").await;
    assert_eq!(voided["count"], 1);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_hold_ids_and_statuses_are_refused() {
    let app = app_with_a_hold().await;
    for (status, body) in [
        read(&app, "/holds/nope").await,
        capture(&app, "nope", json!({})).await,
        void(&app, "nope").await,
    ] {
        assert!(
            error_message(&body, 404).contains("Hold nope not found"),
            "{body}"
        );
        assert_eq!(status, 404);
    }
    // An id a page would show reversed is quoted by its code point.
    let (status, body) = read(&app, "/holds/user%E2%80%AEgnp.exe").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        error_message(&body, 404),
        "Hold user<U+202E>gnp.exe not found"
    );
    let long = "h".repeat(129);
    for (status, body) in [
        read(&app, &format!("/holds/{long}")).await,
        read(&app, "/holds/a%01b").await,
        capture(&app, "a%01b", json!({})).await,
    ] {
        assert!(error_message(&body, 400).contains("holdId"), "{body}");
        assert_eq!(status, 400);
    }
    let (status, body) = read(&app, "/wallets/w/holds?status=OPEN").await;
    assert!(error_message(&body, 400).contains("status"), "{body}");
    assert_eq!(status, 400);
    for unknown in [
        "/wallets/nobody/holds",
        "/wallets/nobody/holds?status=PENDING",
    ] {
        let (status, body) = read(&app, unknown).await;
        assert_eq!(status, 404, "{unknown}: {body}");
    }
    let (status, body) = place(&app, "nobody", json!({"amount": 1})).await;
    assert_eq!(
        (status, error_message(&body, 404).contains("nobody")),
        (404, true)
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expiry_must_be_a_future_rfc_3339_instant() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    for (expires_at, words) in [
        (json!("2000-01-01T00:00:00Z"), "in the future"),
        (json!("tomorrow"), "RFC 3339"),
        // A leap second, a five-digit UTC year or a space: none has one
        // RFC 3339 form to be stored and answered in.
        (json!("2999-12-01T00:00:60Z"), "RFC 3339"),
        (json!("9999-12-31T23:59:59.999999999-23:59"), "RFC 3339"),
        (json!("2999-01-01 00:00:00Z"), "RFC 3339"),
        (json!(12), "must be a string"),
    ] {
        let (status, body) = place(&app, "w", json!({"amount": 1, "expiresAt": expires_at})).await;
        let message = error_message(&body, 400);
        assert!(
            message.contains("expiresAt") && message.contains(words),
            "{body}"
        );
        assert_eq!(status, 400);
    }
    let (_, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(list["count"], 0);
    // Lower-case `t` and `z` are RFC 3339 too (§5.6), answered in upper case.
    let (status, hold) = place(
        &app,
        "w",
        json!({"amount": 1, "expiresAt": "2999-01-01t00:00:00z"}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    assert!(
        hold["expiresAt"]
            .as_str()
            .is_some_and(|at| at.starts_with("2999-01-01T00:00:00") && at.ends_with('Z')),
        "{hold}"
    );
    app.stop().await;
}

/// A placement retried with its key after its `expiresAt` has passed is the
/// same request: it gets the stored 201, while a new request with that
/// `expiresAt` is refused as one in the past.
#[tokio::test]
async fn a_placement_retried_after_its_expiry_replays_and_a_new_one_is_refused() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::milliseconds(1_500)).to_rfc3339();
    let keyed = |key: &str| {
        app.post("/wallets/w/holds")
            .header("Idempotency-Key", key)
            .json(&json!({"amount": 10, "expiresAt": expires_at}))
    };
    let first = keyed("place-before-expiry").send().await.expect("sent");
    assert_eq!(first.status(), 201);
    let (_, first) = json_of(first).await;
    tokio::time::sleep(Duration::from_millis(1_700)).await;

    let again = keyed("place-before-expiry").send().await.expect("sent");
    assert_eq!(
        again
            .headers()
            .get("Idempotent-Replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let (status, again) = json_of(again).await;
    assert_eq!((status, &again), (201, &first));

    let (status, body) = json_of(keyed("place-after-expiry").send().await.expect("sent")).await;
    let message = error_message(&body, 400);
    assert!(
        message.contains("expiresAt") && message.contains("in the future"),
        "{body}"
    );
    assert_eq!(status, 400);
    let (_, list) = read(&app, "/wallets/w/holds").await;
    assert_eq!(list["count"], 1, "only the first placed a hold: {list}");
    app.stop().await;
}

/// `expiresAt` is kept to the millisecond, finer digits rounded up (the hold
/// never stops counting before the instant asked), and answered as kept.
#[tokio::test]
async fn an_expiry_is_kept_to_the_millisecond_rounded_up() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    for (hold_id, given, answered) in [
        (
            "ms",
            "2999-01-02T03:04:05.123+01:00",
            "2999-01-02T02:04:05.123Z",
        ),
        ("whole", "2999-01-02T03:04:05Z", "2999-01-02T03:04:05.000Z"),
        (
            "us",
            "2999-01-02T03:04:05.123456Z",
            "2999-01-02T03:04:05.124Z",
        ),
        (
            "ns",
            "2999-01-02T03:04:05.000000789Z",
            "2999-01-02T03:04:05.001Z",
        ),
        (
            "ms9",
            "2999-01-02T03:04:05.999000000Z",
            "2999-01-02T03:04:05.999Z",
        ),
        (
            "carry",
            "2999-12-31T23:59:59.9991Z",
            "3000-01-01T00:00:00.000Z",
        ),
    ] {
        let (status, hold) = place(
            &app,
            "w",
            json!({"amount": 1, "holdId": hold_id, "expiresAt": given}),
        )
        .await;
        assert_eq!(
            (status, &hold["expiresAt"]),
            (201, &json!(answered)),
            "{hold}"
        );
        let (_, read_back) = read(&app, &format!("/holds/{hold_id}")).await;
        assert_eq!(read_back["expiresAt"], answered, "{read_back}");
    }
    // Rounded up past year 9999, it has no RFC 3339 form.
    let (status, body) = place(
        &app,
        "w",
        json!({"amount": 1, "expiresAt": "9999-12-31T23:59:59.9999Z"}),
    )
    .await;
    assert!(error_message(&body, 400).contains("expiresAt"), "{body}");
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn a_hold_past_its_expiry_is_expired_and_released_without_anyone_calling() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let expires_at = chrono::Utc::now() + chrono::Duration::milliseconds(600);
    let (status, hold) = place(
        &app,
        "w",
        json!({"amount": 60, "holdId": "soon", "expiresAt": expires_at.to_rfc3339()}),
    )
    .await;
    assert_eq!(status, 201, "{hold}");
    assert!(hold["expiresAt"].is_string());
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Past its expiry the hold no longer counts, whether the sweeper has
    // stored its HoldExpired yet or not.
    let seen = wallet(&app, "w").await;
    assert_eq!(money(&seen, "heldBalance"), "0.00", "{seen}");
    assert_eq!(money(&seen, "availableBalance"), "100.00", "{seen}");
    // The list (from the read model) sees it so too.
    let (_, listed) = read(&app, "/wallets").await;
    assert_eq!(money(&listed[0], "heldBalance"), "0.00", "{listed}");
    assert_eq!(money(&listed[0], "availableBalance"), "100.00", "{listed}");
    let (_, read_back) = read(&app, "/holds/soon").await;
    assert_eq!(read_back["status"], "EXPIRED", "{read_back}");
    let (_, pending) = read(&app, "/wallets/w/holds?status=PENDING").await;
    assert_eq!(pending["count"], 0, "{pending}");
    let (_, expired) = read(&app, "/wallets/w/holds?status=EXPIRED").await;
    assert_eq!(expired["count"], 1, "{expired}");
    let (status, body) = capture(&app, "soon", json!({})).await;
    assert!(error_message(&body, 409).contains("EXPIRED"), "{body}");
    assert_eq!(status, 409);
    // The sweeper stores its HoldExpired without anyone calling.
    let mut transactions = Value::Null;
    for _ in 0..SWEEP_WAIT_POLLS_MAX {
        transactions = read(&app, "/wallets/w/transactions").await.1;
        if transactions.to_string().contains("HoldExpired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(SWEEP_WAIT_POLL_MS)).await;
    }
    assert!(
        transactions.to_string().contains("HoldExpired"),
        "the sweeper expired it: {transactions}"
    );
    let released = wallet(&app, "w").await;
    assert_eq!(money(&released, "heldBalance"), "0.00");
    assert_eq!(money(&released, "availableBalance"), "100.00");
    app.stop().await;
}

#[tokio::test]
async fn a_frozen_wallet_refuses_holds_and_captures_and_a_pending_hold_keeps_a_wallet_open() {
    let app = app_with_a_hold().await;
    let (status, _) = json_of(app.post("/wallets/w/freeze").send().await.expect("sent")).await;
    assert_eq!(status, 201);
    let before = wallet(&app, "w").await;
    for (status, body) in [
        place(&app, "w", json!({"amount": 1})).await,
        capture(&app, "h-1", json!({})).await,
    ] {
        assert!(error_message(&body, 409).contains("frozen"), "{body}");
        assert_eq!(status, 409);
    }
    assert_eq!(wallet(&app, "w").await, before);
    json_of(app.post("/wallets/w/unfreeze").send().await.expect("sent")).await;

    app.create_wallet("empty", "o", json!(0)).await;
    let (status, _) = json_of(
        app.put("/wallets/empty/overdraft-limit")
            .json(&json!({"overdraftLimit": 10}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = place(&app, "empty", json!({"amount": 5, "holdId": "e-1"})).await;
    assert_eq!(status, 201);
    let (status, body) =
        json_of(app.post("/wallets/empty/close").send().await.expect("sent")).await;
    assert!(error_message(&body, 409).contains("pending hold"), "{body}");
    assert_eq!(status, 409);
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_holds_the_money_apart_and_still_verifies() {
    let app = app_with_a_hold().await;
    app.create_wallet("payee", "p", json!(0)).await;
    place(&app, "w", json!({"amount": 5, "holdId": "h-2"})).await;
    capture(&app, "h-1", json!({"amount": 10, "toWalletId": "payee"})).await;
    void(&app, "h-2").await;
    place(&app, "w", json!({"amount": 7, "holdId": "h-3"})).await;
    let mut verified = Value::Null;
    for _ in 0..SWEEP_WAIT_POLLS_MAX {
        let (status, body) = read(&app, "/ledger/verify").await;
        assert_eq!(status, 200, "{body}");
        verified = body;
        if verified["caughtUp"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(SWEEP_WAIT_POLL_MS)).await;
    }
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["ledger"]["heldBalances"]["w"].to_string(), "7.00");
    assert_eq!(
        verified["ledger"]["walletBalances"]["w"].to_string(),
        "90.00"
    );
    let (_, summary) = read(&app, "/ledger/wallet/w/summary").await;
    assert_eq!(money(&summary, "balance"), "90.00", "{summary}");
    let (status, hold) = read(&app, "/ledger/reference/h-1").await;
    assert_eq!(status, 200);
    // Placed (2 entries), captured to the payee (3: held, the rest, clearing), received (2).
    assert_eq!(hold["count"], 7, "{hold}");
    app.stop().await;
}

#[tokio::test]
async fn a_hold_named_after_a_transfer_does_not_join_its_ledger_entries() {
    let app = app_with_a_hold().await;
    app.create_wallet("payee", "p", json!(0)).await;
    let (status, _) = json_of(app.transfer("w", "payee", json!(1)).await).await;
    assert_eq!(status, 201);
    let (_, received) = read(&app, "/ledger/wallet/payee?transactionType=TRANSFER_IN").await;
    let transfer_id = received["transactions"][0]["referenceId"]
        .as_str()
        .expect("a transfer id")
        .to_owned();
    let reference = format!("/ledger/reference/{transfer_id}");
    let (_, before) = read(&app, &reference).await;
    let (status, _) = place(&app, "w", json!({"amount": 2, "holdId": transfer_id})).await;
    assert_eq!(status, 201);
    let (_, after) = read(&app, &reference).await;
    assert_eq!(after["count"], before["count"], "{after}");
    // A hold named in another spelling of the transfer's id is the client's
    // own name: found as written, and the transfer in its own spelling.
    let spelled_otherwise = transfer_id.replace('-', "").to_uppercase();
    let (status, _) = place(
        &app,
        "w",
        json!({"amount": 3, "holdId": spelled_otherwise, "description": "other spelling"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, named) = read(&app, &format!("/ledger/reference/{spelled_otherwise}")).await;
    assert_eq!(status, 200);
    assert_eq!(named["count"], 2, "the placing's two entries: {named}");
    assert_eq!(
        named["transactions"][0]["description"], "other spelling",
        "{named}"
    );
    let (_, transfer) = read(&app, &reference).await;
    assert_eq!(transfer["count"], before["count"], "{transfer}");
    // The hold's own entries are under the reference its entries carry.
    let (_, held) = read(&app, "/ledger/reference/h-1").await;
    let hold_reference = held["transactions"][0]["referenceId"]
        .as_str()
        .expect("a reference")
        .to_owned();
    let (_, by_reference) = read(&app, &format!("/ledger/reference/{hold_reference}")).await;
    assert_eq!(by_reference["count"], held["count"]);
    app.stop().await;
}

#[tokio::test]
async fn a_capture_and_a_void_with_a_key_are_answered_once_and_the_key_is_theirs() {
    let app = app_with_a_hold().await;
    place(&app, "w", json!({"amount": 5, "holdId": "h-2"})).await;
    let keyed = |path: &str, key: &str, body: Value| {
        app.post(path)
            .header("Idempotency-Key", key.to_owned())
            .json(&body)
    };
    let first = json_of(
        keyed("/holds/h-1/capture", "cap-1", json!({"amount": 5}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(first.0, 201);
    let again = keyed("/holds/h-1/capture", "cap-1", json!({"amount": 5.00}))
        .send()
        .await
        .expect("sent");
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    assert_eq!(
        json_of(again).await,
        first,
        "the stored answer, nothing captured twice"
    );
    assert_eq!(money(&wallet(&app, "w").await, "balance"), "95.00");

    let void_first = json_of(
        keyed("/holds/h-2/void", "void-1", json!({}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(void_first.0, 201);
    let void_again = json_of(
        keyed("/holds/h-2/void", "void-1", json!({}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(void_again, void_first);
    let (status, body) = json_of(
        keyed("/holds/h-2/void", "cap-1", json!({}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, error_message(&body, 422).is_empty()), (422, false));
    app.stop().await;
}

/// The status of POST `path` with `body`, `Idempotency-Key: key` and,
/// when given, the bearer token `bearer`.
async fn keyed_status(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut request = app.post(path).header("Idempotency-Key", key).json(&body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    json_of(request.send().await.expect("sent")).await
}

/// A key used already is 422 on a hold route whatever the target, an unknown
/// hold or wallet included, as on the wallet routes; an unused key on an
/// unknown target is still its 404 (h104 F5).
#[tokio::test]
async fn a_reused_key_is_422_on_a_hold_route_whatever_the_target() {
    let app = app_with_a_hold().await;
    place(&app, "w", json!({"amount": 5, "holdId": "h-2"})).await;
    let (status, body) = keyed_status(&app, "/holds/h-1/void", "k2", json!({}), None).await;
    assert_eq!(status, 201, "{body}");
    for (path, body) in [
        ("/holds/h-2/void", json!({})),
        ("/holds/no-such-hold/void", json!({})),
        ("/holds/no-such-hold/capture", json!({"amount": 1})),
        ("/wallets/no-such-wallet/holds", json!({"amount": 1})),
        ("/wallets/no-such-wallet/credit", json!({"amount": 1})),
    ] {
        let (status, answer) = keyed_status(&app, path, "k2", body, None).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert!(error_message(&answer, 422).contains("k2"), "{answer}");
    }
    let (status, body) =
        keyed_status(&app, "/holds/no-such-hold/void", "unused", json!({}), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = read(&app, "/holds/h-2").await;
    assert_eq!(body["status"], "PENDING", "{status} {body}");
    app.stop().await;
}

/// So it is for an end user, whose unknown and other owners' wallets and
/// holds answer 404 before anything else: the 422 says only that its own key
/// was used, nothing of the target.
#[tokio::test]
async fn a_reused_key_is_422_for_an_end_user_on_a_target_it_cannot_see() {
    let app = spawn_auth_app(1_000, 1_000).await;
    let admin = token("admin-1", "admin");
    let user = token("user-1", "wallets");
    for (wallet, owner) in [("mine", "user-1"), ("theirs", "user-2")] {
        let (status, body) = keyed_status(
            &app,
            "/wallets",
            &format!("create-{wallet}"),
            json!({"walletId": wallet, "ownerId": owner, "initialBalance": 50}),
            Some(&admin),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = keyed_status(
        &app,
        "/wallets/theirs/holds",
        "theirs-hold",
        json!({"amount": 5, "holdId": "their-hold"}),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = keyed_status(
        &app,
        "/wallets/mine/debit",
        "k",
        json!({"amount": 1}),
        Some(&user),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (path, body) in [
        ("/wallets/no-such-wallet/holds", json!({"amount": 1})),
        ("/wallets/theirs/holds", json!({"amount": 1})),
        ("/holds/no-such-hold/void", json!({})),
        ("/holds/their-hold/void", json!({})),
        ("/holds/their-hold/capture", json!({})),
        ("/wallets/no-such-wallet/debit", json!({"amount": 1})),
    ] {
        let (status, answer) = keyed_status(&app, path, "k", body.clone(), Some(&user)).await;
        assert_eq!(status, 422, "{path}: {answer}");
        let (status, answer) = keyed_status(&app, path, "unused", body, Some(&user)).await;
        assert_eq!(status, 404, "{path}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf_8_is_refused_naming_it() {
    let app = app_with_a_hold().await;
    for (status, body) in [
        capture(&app, "%FE", json!({})).await,
        void(&app, "h%FF-1").await,
        read(&app, "/holds/%C3").await,
    ] {
        let message = error_message(&body, 400);
        assert!(
            message.contains("holdId") && message.contains("UTF-8"),
            "{body}"
        );
        assert_eq!(status, 400);
    }
    for path in [
        "/wallets/%FE",
        "/wallets/%FE/holds",
        "/wallets/%FE/transactions",
    ] {
        let (status, body) = read(&app, path).await;
        assert!(
            error_message(&body, 400).contains("walletId"),
            "{path}: {body}"
        );
        assert_eq!(status, 400, "{path}");
    }
    let (status, body) = json_of(
        app.post_json("/wallets/%FE/credit", json!({"amount": 1}))
            .await,
    )
    .await;
    assert!(error_message(&body, 400).contains("walletId"), "{body}");
    assert_eq!(status, 400);
    // Percent-encoded UTF-8 is read as its text.
    let (status, body) = read(&app, "/holds/h%2D1").await;
    assert_eq!((status, &body["id"]), (200, &json!("h-1")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_body_is_refused_before_an_unknown_hold_as_before_an_unknown_wallet() {
    let app = app_with_a_hold().await;
    let (wallet_status, wallet_body) = json_of(
        app.post_json("/wallets/nobody/credit", json!({"amount": "x"}))
            .await,
    )
    .await;
    assert!(
        error_message(&wallet_body, 400).contains("amount"),
        "{wallet_body}"
    );
    assert_eq!(wallet_status, 400);
    let (status, body) = capture(&app, "nope", json!({"amount": "x"})).await;
    assert!(error_message(&body, 400).contains("amount"), "{body}");
    assert_eq!(status, wallet_status);
    let (status, body) =
        json_of(app.post_json("/holds/nope/void", json!({"extra": 1})).await).await;
    assert!(error_message(&body, 400).contains("extra"), "{body}");
    assert_eq!(status, 400);
    // A well-formed body on an unknown hold is still 404.
    let (status, _) = capture(&app, "nope", json!({"amount": 1})).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_wallets_holds_come_in_pages_like_its_transactions() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    for index in 0..5 {
        let (status, body) = place(
            &app,
            "w",
            json!({"amount": 1, "holdId": format!("p-{index}")}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, page) = read(&app, "/wallets/w/holds?limit=2&offset=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 5);
    let ids: Vec<&str> = page["holds"]
        .as_array()
        .expect("holds")
        .iter()
        .map(|hold| hold["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, ["p-1", "p-2"]);
    let (_, last) = read(&app, "/wallets/w/holds?limit=2&offset=4").await;
    assert_eq!(last["holds"].as_array().map(Vec::len), Some(1), "{last}");
    for (query, parameter) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
        ("offset=9999&limit=2", "offset + limit"),
    ] {
        let (status, body) = read(&app, &format!("/wallets/w/holds?{query}")).await;
        assert!(
            error_message(&body, 400).contains(parameter),
            "{query}: {body}"
        );
        assert_eq!(status, 400, "{query}");
    }
    let (status, deepest) = read(&app, "/wallets/w/holds?offset=9999").await;
    assert_eq!(status, 200, "the deepest offset alone: {deepest}");
    assert_eq!(deepest["holds"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn hold_events_in_the_history_and_the_search_carry_their_hold_id() {
    let app = app_with_a_hold().await;
    let (status, body) = capture(&app, "h-1", json!({"amount": 5})).await;
    assert_eq!(status, 201, "{body}");
    let (status, history) = read(&app, "/wallets/w/transactions").await;
    assert_eq!(status, 200, "{history}");
    let items = history["transactions"].as_array().expect("transactions");
    let holds: Vec<(&str, Option<&str>)> = items
        .iter()
        .map(|item| {
            (
                item["type"].as_str().expect("a type"),
                item["holdId"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        holds,
        [
            ("HoldCaptured", Some("h-1")),
            ("HoldPlaced", Some("h-1")),
            ("WalletCreated", None)
        ]
    );
    assert!(
        items[2].get("holdId").is_none(),
        "absent, not null: {history}"
    );
    let (status, found) = read(&app, "/transactions?q=h-1").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["count"], 2, "{found}");
    assert!(found["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .all(|item| item["holdId"] == "h-1"));
    app.stop().await;
}

#[tokio::test]
async fn a_hold_reads_the_same_before_and_after_a_snapshot_of_its_wallet() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(1000)).await;
    for (hold, amount) in [("settled", 1), ("across", 2)] {
        let (status, body) = place(&app, "w", json!({"amount": amount, "holdId": hold})).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(void(&app, "settled").await.0, 201);
    // Enough events that a snapshot of the wallet is stored after them.
    let events = usize::try_from(event_store::SNAPSHOT_INTERVAL_EVENTS).expect("small");
    for _ in 0..events {
        assert_eq!(app.credit("w", json!(1)).await.status(), 201);
    }
    let (status, body) = capture(&app, "across", json!({"amount": 1.5})).await;
    assert_eq!(status, 201, "{body}");
    let (status, settled) = read(&app, "/holds/settled").await;
    assert_eq!(
        (status, &settled["status"]),
        (200, &json!("VOIDED")),
        "{settled}"
    );
    let (status, across) = read(&app, "/holds/across").await;
    assert_eq!(
        (status, &across["status"]),
        (200, &json!("CAPTURED")),
        "{across}"
    );
    assert_eq!(money(&across, "capturedAmount"), "1.50", "{across}");
    let (status, _) = read(&app, "/holds/never").await;
    assert_eq!(status, 404);
    app.stop().await;
}
