//! The seed's REST contract, endpoint by endpoint.

use serde_json::{json, Value};

use std::time::Duration;

use crate::helpers::{
    answer_to_raw, error_message, json_of, spawn_app, spawn_app_with_redis_lock,
    without_audit_trail, TestApp,
};

#[tokio::test]
async fn create_returns_the_wallet_at_version_one() {
    let app = spawn_app().await;
    let (status, body) = json_of(
        app.create_wallet("wallet-123", "user-456", json!(100.00))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["id"], "wallet-123");
    assert_eq!(body["ownerId"], "user-456");
    assert_eq!(body["balance"].to_string(), "100.00");
    assert_eq!(body["version"], 1);
    assert_eq!(body["createdAt"], body["updatedAt"]);
    let created_at = body["createdAt"].as_str().expect("string");
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );
    app.stop().await;
}

#[tokio::test]
async fn credit_debit_and_get_follow_the_seed_example() {
    let app = spawn_app().await;
    app.create_wallet("wallet-123", "user-456", json!(100))
        .await;
    let (status, credited) = json_of(app.credit("wallet-123", json!(50.00)).await).await;
    assert_eq!(
        (
            status,
            credited["balance"].to_string(),
            credited["version"].clone()
        ),
        (201, "150.00".into(), json!(2))
    );
    let (status, debited) = json_of(app.debit("wallet-123", json!(30)).await).await;
    assert_eq!(
        (
            status,
            debited["balance"].to_string(),
            debited["version"].clone()
        ),
        (201, "120.00".into(), json!(3))
    );
    let (status, fetched) = json_of(app.wallet("wallet-123").await).await;
    assert_eq!(status, 200);
    assert_eq!(without_audit_trail(fetched), debited);
    app.stop().await;
}

#[tokio::test]
async fn amounts_are_exact_decimals() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(0)).await;
    for _ in 0..10 {
        assert_eq!(app.credit("w", json!(0.1)).await.status(), 201);
    }
    assert_eq!(app.balance_text("w").await, "1.00");
    assert_eq!(app.debit("w", json!(0.3)).await.status(), 201);
    assert_eq!(app.balance_text("w").await, "0.70");
    app.stop().await;
}

#[tokio::test]
async fn transfer_moves_money_and_returns_both_wallets() {
    let app = spawn_app().await;
    app.create_wallet("wallet-123", "user-456", json!(120))
        .await;
    app.create_wallet("wallet-789", "user-999", json!(100))
        .await;
    let (status, body) =
        json_of(app.transfer("wallet-123", "wallet-789", json!(25.00)).await).await;
    assert_eq!(status, 201);
    assert_eq!(body["fromWallet"]["balance"].to_string(), "95.00");
    assert_eq!(body["fromWallet"]["version"], 2);
    assert_eq!(body["toWallet"]["balance"].to_string(), "125.00");
    assert_eq!(body["toWallet"]["ownerId"], "user-999");
    assert_eq!(app.balance_text("wallet-123").await, "95.00");
    assert_eq!(app.balance_text("wallet-789").await, "125.00");
    assert_eq!(
        newest_transfer_id(&app, "wallet-789").await,
        body["transferId"],
        "the reply names the transfer both halves carry"
    );
    assert_eq!(
        newest_transfer_id(&app, "wallet-123").await,
        body["transferId"]
    );
    app.stop().await;
}

/// The `transferId` of `wallet_id`'s newest transaction.
async fn newest_transfer_id(app: &TestApp, wallet_id: &str) -> Value {
    let (status, history) = json_of(
        app.get(&format!("/wallets/{wallet_id}/transactions?limit=1"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200);
    let transfer_id = history["transactions"][0]["transferId"].clone();
    assert!(transfer_id.is_string(), "{history}");
    transfer_id
}

#[tokio::test]
async fn domain_refusals_map_to_the_seed_status_codes() {
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;

    let (status, body) = json_of(app.create_wallet("a", "o", json!(1)).await).await;
    assert_eq!(status, 409);
    assert!(error_message(&body, 409).contains("already exists"));

    let (status, body) = json_of(app.credit("missing", json!(1)).await).await;
    assert_eq!(status, 404);
    assert_eq!(error_message(&body, 404), "Wallet missing not found");

    let (status, body) = json_of(app.debit("a", json!(10.01)).await).await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("Insufficient funds"));

    let (status, body) = json_of(app.transfer("a", "a", json!(1)).await).await;
    assert_eq!(status, 400);
    let message = error_message(&body, 400);
    assert!(
        message.contains("itself") && message.contains("toWalletId"),
        "{message}"
    );

    let (status, body) = json_of(app.transfer("a", "ghost", json!(1)).await).await;
    assert_eq!(status, 404);
    assert_eq!(error_message(&body, 404), "Wallet ghost not found");
    assert_eq!(
        app.balance_text("a").await,
        "10.00",
        "a transfer to nowhere debits nothing"
    );

    let (status, body) = json_of(app.transfer("a", "b", json!(11)).await).await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("Insufficient funds"));
    assert_eq!(app.balance_text("b").await, "0.00");

    let (status, body) = json_of(app.wallet("missing").await).await;
    assert_eq!(status, 404);
    assert_eq!(error_message(&body, 404), "Wallet missing not found");
    app.stop().await;
}

/// More wallets than one chunk of the whole list (`EVERY_WALLET_PAGE_WALLETS`).
const WALLETS_PAST_ONE_CHUNK: usize = 1_001;
/// Wallet creations sent at once while filling the list.
const CREATIONS_IN_FLIGHT: usize = 50;

/// The list without `limit` is every wallet even when it is sent in chunks:
/// chunked over HTTP/1.1, and over HTTP/1.0, which has no chunked coding,
/// as a body that ends where the server closes the connection.
#[tokio::test]
async fn the_whole_list_past_one_chunk_reads_as_one_array_over_http_1_1_and_1_0() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..WALLETS_PAST_ONE_CHUNK)
        .map(|n| format!("w{n:05}"))
        .collect();
    for batch in ids.chunks(CREATIONS_IN_FLIGHT) {
        let created =
            futures::future::join_all(batch.iter().map(|id| app.create_wallet(id, "o", json!(1))))
                .await;
        assert!(created.iter().all(|response| response.status() == 201));
    }
    let listed = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("array")
            .iter()
            .map(|w| w["id"].as_str().expect("id").to_owned())
            .collect()
    };

    let chunked = app.get("/wallets").send().await.expect("sent");
    assert_eq!(chunked.headers()["transfer-encoding"], "chunked");
    let (status, list) = json_of(chunked).await;
    assert_eq!(status, 200);
    assert_eq!(listed(&list), ids);

    let (answer, _) = answer_to_raw(
        &app.address,
        |_| "GET /wallets HTTP/1.0\r\n\r\n".to_owned(),
        Duration::from_secs(30),
    )
    .await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    let list: Value = serde_json::from_str(body).expect("the body is the JSON array alone");
    assert_eq!(listed(&list), ids);
    app.stop().await;
}

#[tokio::test]
async fn list_is_an_array_that_pages_and_filters() {
    let app = spawn_app().await;
    for (id, owner) in [
        ("w1", "alice"),
        ("w2", "bob"),
        ("w3", "alice"),
        ("w4", "alice"),
    ] {
        assert_eq!(app.create_wallet(id, owner, json!(1)).await.status(), 201);
    }
    // Without `limit`, every wallet, as the seed listed them: no page, no link.
    let every = app.get("/wallets").send().await.expect("sent");
    assert!(every.headers().get("link").is_none());
    let (status, all) = json_of(every).await;
    assert_eq!(status, 200);
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .expect("array")
            .iter()
            .map(|w| w["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(&all), ["w1", "w2", "w3", "w4"]);

    let page = app
        .get("/wallets?limit=2&after=w1")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        page.headers()["link"],
        "</wallets?after=w3&limit=2>; rel=\"next\""
    );
    let (_, page) = json_of(page).await;
    assert_eq!(ids(&page), ["w2", "w3"]);
    let alices = app
        .get("/wallets?ownerId=alice&limit=2")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        alices.headers()["link"],
        "</wallets?after=w3&limit=2&ownerId=alice>; rel=\"next\""
    );
    let (_, alices) = json_of(alices).await;
    assert_eq!(ids(&alices), ["w1", "w3"]);
    // Following the links reaches every wallet, and a page shorter than its
    // limit has none.
    let mut listed = Vec::new();
    let mut next = Some("/wallets?ownerId=alice&limit=2".to_owned());
    while let Some(path) = next.take() {
        let response = app.get(&path).send().await.expect("sent");
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().expect("text");
            link[1..link.find('>').expect("a reference")].to_owned()
        });
        let (_, page) = json_of(response).await;
        listed.extend(ids(&page));
    }
    assert_eq!(listed, ["w1", "w3", "w4"]);
    let short = app.get("/wallets?limit=5").send().await.expect("sent");
    assert!(short.headers().get("link").is_none());

    let (status, body) = json_of(app.get("/wallets?limit=0").send().await.expect("sent")).await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).contains("limit"));
    app.stop().await;
}

/// Balances and histories are not kept by a browser's or a proxy's cache
/// (RFC 9111 §5.2.2.5 `no-store`; OWASP's guidance for financial APIs):
/// every answer says so, an error's too.
#[tokio::test]
async fn no_answer_may_be_stored_by_a_cache() {
    let app = spawn_app().await;
    let created = app
        .post("/wallets")
        .json(&json!({"walletId": "cached", "ownerId": "o", "initialBalance": 5}))
        .send()
        .await
        .expect("sent");
    let answers = [
        created,
        app.wallet("cached").await,
        app.wallet("unknown").await,
        app.get("/wallets/cached/transactions")
            .send()
            .await
            .expect("sent"),
        app.get("/health").send().await.expect("sent"),
    ];
    for answer in answers {
        assert_eq!(
            answer
                .headers()
                .get("cache-control")
                .map(|value| value.as_bytes()),
            Some(&b"no-store"[..]),
            "{} {}",
            answer.url(),
            answer.status()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn correlation_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .post("/wallets")
        .header("X-Correlation-Id", "corr-42")
        .json(&json!({"walletId": "w", "ownerId": "o"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-correlation-id"], "corr-42");
    let generated = app.wallet("w").await;
    assert!(!generated.headers()["x-correlation-id"].is_empty());
    app.stop().await;
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = spawn_app().await;
    let (status, index) = json_of(app.get("/").send().await.expect("sent")).await;
    assert_eq!((status, index["service"].as_str()), (200, Some("wallex")));
    assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
    for link in ["health", "openapi", "docs"] {
        let target = index["links"][link].as_str().expect("a link");
        let response = app.get(target).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{link}: {target}");
    }
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(
        health["locks"],
        json!({ "kind": "in-process", "status": "up" })
    );
    let (status, kafka) = json_of(app.get("/health/kafka").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{kafka}");
    assert_eq!(kafka["status"], "healthy");
    assert_eq!(kafka["producer"]["connected"], true);
    assert_eq!(kafka["publisher"]["isRunning"], true);
    assert!(kafka["publisher"]["unprocessedEvents"].is_u64());
    assert!(kafka["publisher"]["lagMs"].is_u64());
    // The fields the seed's server also answered.
    assert_eq!(kafka["kafka"]["status"], "connected");
    assert_rfc3339(&kafka["timestamp"]);
    let (status, stats) = json_of(app.get("/health/kafka/stats").send().await.expect("sent")).await;
    assert_eq!(
        (status, stats["destination"].as_str()),
        (200, Some("in-process"))
    );
    assert_eq!(stats["producer"]["connected"], true);
    assert_rfc3339(&stats["timestamp"]);
    let (status, ledger) = json_of(app.get("/ledger/health").send().await.expect("sent")).await;
    assert_eq!(
        (status, &ledger["status"], &ledger["module"]),
        (200, &json!("ok"), &json!("ledger"))
    );
    assert!(ledger["position"].is_u64(), "{ledger}");
    // The seed's other module probes.
    for (path, module) in [
        ("/integration/health", "integration"),
        ("/users/health", "user"),
    ] {
        let (status, body) = json_of(app.get(path).send().await.expect("sent")).await;
        assert_eq!(
            (status, body),
            (200, json!({"status": "ok", "module": module})),
            "{path}"
        );
    }
    let (status, spec) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/wallets/{fromWalletId}/transfer"]["post"].is_object());
    assert_eq!(app.get("/docs/").send().await.expect("sent").status(), 200);
    // reqwest follows the redirect of `/docs` to `/docs/`.
    assert_eq!(app.get("/docs").send().await.expect("sent").status(), 200);
    // A file Swagger UI does not have answers as every unknown path does.
    for missing in ["/docs/no-such-file.js", "/docs/%00", "/docs/a/b/c"] {
        let (status, body) = json_of(app.get(missing).send().await.expect("sent")).await;
        assert_eq!(status, 404, "{missing}");
        assert!(
            error_message(&body, 404).starts_with("Cannot GET /docs/"),
            "{missing}: {body}"
        );
    }
    app.create_wallet("w", "o", json!(1)).await;
    let metrics = app.metrics().await;
    assert!(metrics.contains("wallex_http_requests_total"), "{metrics}");
    // A trailing slash is the path without it, as on the seed's Express router.
    let (status, body) = app
        .post_raw("/wallets/", r#"{"walletId": "slash", "ownerId": "o"}"#)
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post_raw("/wallets/slash/credit/", r#"{"amount": 2}"#)
        .await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "2.00".into()),
        "{body}"
    );
    let (status, body) = json_of(app.get("/wallets/slash/").send().await.expect("sent")).await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some("slash")),
        "{body}"
    );
    let (status, body) = json_of(
        app.get("/wallets/slash/transactions/?limit=1")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(
        app.get("/health/").send().await.expect("sent").status(),
        200
    );
    // One slash only, as on Express (h136 F2): two name no route, and write nothing.
    let (status, body) = app
        .post_raw("/wallets/slash/credit//", r#"{"amount": 2}"#)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = json_of(app.get("/wallets/slash").send().await.expect("sent")).await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (200, "2.00".into()),
        "{body}"
    );
    // A route's fixed words in any case, as on the seed's Express router;
    // ids keep theirs.
    let (status, body) = app
        .post_raw("/Wallets/slash/CREDIT/", r#"{"amount": 3}"#)
        .await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "5.00".into()),
        "{body}"
    );
    let (status, body) = json_of(
        app.get("/WALLETS/slash/Transactions?limit=1")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, body["count"].as_u64()), (200, Some(3)), "{body}");
    let (status, body) = json_of(app.get("/Wallets/SLASH").send().await.expect("sent")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_message(&body, 404), "Wallet SLASH not found");
    let (status, body) = json_of(app.get("/nowhere").send().await.expect("sent")).await;
    assert_eq!(status, 404);
    assert_eq!(error_message(&body, 404), "Cannot GET /nowhere");
    // A method a path does not take answers the same way, with a body.
    for path in ["/wallets", "/wallets/w/holds", "/wallets/w/credit"] {
        let response = app
            .client
            .delete(format!("{}{path}", app.address))
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error_message(&body, 404), format!("Cannot DELETE {path}"));
    }
    app.stop().await;
}

#[tokio::test]
async fn every_operation_documents_its_correlation_header_and_the_middlewares_answers() {
    let app = spawn_app().await;
    let (status, spec) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    assert_eq!(status, 200);
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !["get", "post", "put", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let correlation = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["name"] == "X-Correlation-Id")
                .count();
            assert_eq!(correlation, 1, "{method} {path}: one X-Correlation-Id");
            for status in ["400", "403"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
    assert!(operations >= 20, "every operation was seen: {operations}");
    // What the document promises is what the server does.
    let (status, _) = json_of(
        app.get("/health")
            .header("X-Correlation-Id", "a b")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn every_write_operation_documents_its_key_and_shared_answers_once() {
    let app = spawn_app().await;
    let (status, spec) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    assert_eq!(status, 200);
    let mut writes = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["post", "put"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            writes += 1;
            let keys = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["name"] == "Idempotency-Key")
                .count();
            assert_eq!(keys, 1, "{method} {path}: one Idempotency-Key");
            for status in ["201", "400", "408", "413", "415", "422", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
        }
    }
    assert!(writes >= 8, "every write operation was seen: {writes}");
    // A head that does not arrive in time is 408 on any path, a body on any write.
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(
                operation["responses"]["431"].is_object(),
                "{method} {path} documents 431"
            );
            let timed_out = &operation["responses"]["408"];
            assert!(timed_out.is_object(), "{method} {path} documents 408");
            let description = timed_out["description"].as_str().unwrap_or_default();
            assert!(
                description.contains("request line and headers"),
                "{method} {path}: {description}"
            );
            if operation.get("requestBody").is_some() {
                assert!(
                    description.contains("BODY_READ_TIMEOUT_SECONDS"),
                    "{method} {path} takes a body: {description}"
                );
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_head_is_answered_as_its_get_without_content() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(5)).await.status(), 201);
    for (path, status) in [
        ("/wallets/w", 200),
        ("/health", 200),
        ("/wallets/missing", 404),
    ] {
        let response = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), status, "{path}");
        assert!(response.bytes().await.expect("body").is_empty(), "{path}");
    }
    let credit = app
        .client
        .head(format!("{}/wallets/w/credit", app.address))
        .send()
        .await
        .expect("sent");
    assert_eq!(credit.status(), 404, "a HEAD never runs a command");
    assert_eq!(app.balance_text("w").await, "5.00");
    app.stop().await;
}

fn assert_rfc3339(value: &serde_json::Value) {
    let text = value.as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "an RFC 3339 timestamp: {value}"
    );
}

#[tokio::test]
async fn a_wallet_lock_that_does_not_answer_degrades_health_and_commands_go_on() {
    // Nothing listens on port 1: Redis is down from the start.
    let app = spawn_app_with_redis_lock("redis://127.0.0.1:1").await;
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")));
    assert_eq!(health["locks"]["kind"], "redis");
    assert_eq!(health["locks"]["status"], "down", "{health}");
    assert!(health["locks"]["error"].is_string(), "{health}");
    let created = app.create_wallet("w-unlocked", "owner", json!(10)).await;
    assert_eq!(
        created.status(),
        201,
        "the expected version guards the append"
    );
    let credited = app.credit("w-unlocked", json!(5)).await;
    assert_eq!(credited.status(), 201);
    assert_eq!(app.balance_text("w-unlocked").await, "15.00");
    app.stop().await;
}

/// `(type, amount, description, eventType, version)` of each entry of a
/// wallet read's audit trail.
fn audit_entries(read: &serde_json::Value) -> Vec<(String, String, String, String, u64)> {
    read["auditTrail"]
        .as_array()
        .expect("auditTrail")
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().expect("text").to_owned();
            (
                text("type"),
                entry
                    .get("amount")
                    .map_or(String::new(), |amount| amount.to_string()),
                text("description"),
                text("eventType"),
                entry["version"].as_u64().expect("version"),
            )
        })
        .collect()
}

/// The seed's own test (`src/wallet/wallet.module.spec.ts`): a wallet opened
/// with 100, credited 50 "bonus deposit", debited 20 "purchase", reads at
/// version 3 with 130 and an audit trail of four entries, the last
/// "purchase". Money in and out are `WalletCredited` and `WalletDebited`
/// whatever moved it; an event that moves no money keeps its type.
#[tokio::test]
async fn a_wallet_read_carries_the_seeds_audit_trail() {
    let app = spawn_app().await;
    app.create_wallet("wallet-1", "owner-1", json!(100)).await;
    for (path, body) in [
        (
            "credit",
            json!({"amount": 50, "description": "bonus deposit"}),
        ),
        ("debit", json!({"amount": 20, "description": "purchase"})),
    ] {
        let response = app
            .post_json(&format!("/wallets/wallet-1/{path}"), body)
            .await;
        assert_eq!(response.status(), 201);
    }
    let (status, read) = json_of(app.wallet("wallet-1").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (read["version"].clone(), read["balance"].to_string()),
        (json!(3), "130.00".into())
    );
    let trail = read["auditTrail"].as_array().expect("auditTrail");
    assert_eq!(trail.len(), 4, "{read}");
    assert_eq!(trail[3]["description"], "purchase");
    assert_eq!(read["auditTrailTruncated"], false);
    assert!(trail
        .iter()
        .all(|entry| entry["occurredAt"] == trail[0]["occurredAt"]
            || entry["occurredAt"].as_str() > trail[0]["occurredAt"].as_str()));

    app.create_wallet("wallet-2", "owner-2", json!(0)).await;
    let transfer = json!({"toWalletId": "wallet-2", "amount": 5});
    let response = app.post_json("/wallets/wallet-1/transfer", transfer).await;
    assert_eq!(response.status(), 201);
    let hold = json!({"amount": 10, "holdId": "hold-1"});
    assert_eq!(
        app.post_json("/wallets/wallet-1/holds", hold)
            .await
            .status(),
        201
    );
    let (_, payer) = json_of(app.wallet("wallet-1").await).await;
    let row = |kind: &str, amount: &str, description: &str, event: &str, version| {
        (
            kind.to_owned(),
            amount.to_owned(),
            description.to_owned(),
            event.to_owned(),
            version,
        )
    };
    assert_eq!(
        audit_entries(&payer),
        [
            row("WalletCreated", "", "Wallet created", "WalletCreated", 1),
            row(
                "WalletCredited",
                "100.00",
                "Initial balance",
                "WalletCreated",
                1
            ),
            row(
                "WalletCredited",
                "50.00",
                "bonus deposit",
                "WalletCredited",
                2
            ),
            row("WalletDebited", "20.00", "purchase", "WalletDebited", 3),
            row(
                "WalletDebited",
                "5.00",
                "Transfer to wallet-2",
                "TransferSent",
                4
            ),
            row("HoldPlaced", "10.00", "Hold hold-1", "HoldPlaced", 5),
        ]
    );
    let (_, payee) = json_of(app.wallet("wallet-2").await).await;
    assert_eq!(
        audit_entries(&payee),
        [
            row("WalletCreated", "", "Wallet created", "WalletCreated", 1),
            row(
                "WalletCredited",
                "5.00",
                "Transfer from wallet-1",
                "TransferReceived",
                2
            ),
        ],
        "no opening credit without an opening balance"
    );
    // As of a version: the trail up to it.
    let (_, then) = json_of(
        app.get("/wallets/wallet-1?version=2")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(audit_entries(&then).len(), 3, "{then}");
    app.stop().await;
}

/// A long history shows its newest events only, and says so.
#[tokio::test]
async fn a_long_historys_audit_trail_is_its_newest_events() {
    let app = spawn_app().await;
    app.create_wallet("long", "o", json!(0)).await;
    for _ in 0..100 {
        assert_eq!(app.credit("long", json!(1)).await.status(), 201);
    }
    let (_, read) = json_of(app.wallet("long").await).await;
    let entries = audit_entries(&read);
    assert_eq!(entries.len(), 100);
    assert_eq!((entries[0].4, entries[99].4), (2, 101), "versions 2 to 101");
    assert_eq!(read["auditTrailTruncated"], true);
    app.stop().await;
}

/// `wallex_http_requests_total` for `route` and `status` as `/metrics` shows it
/// now (0 when it shows none).
async fn requests_counted(app: &TestApp, route: &str, status: u16) -> u64 {
    let metrics = app.metrics().await;
    let series = format!("wallex_http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |count| count.parse().expect("a count"))
}

/// A request refused at the front door (a `Host` that is not loopback when
/// open, a cross-origin command, a malformed `X-Correlation-Id`) is counted as
/// every other answer is, by its route, or `unmatched` (h104 F4).
#[tokio::test]
async fn requests_refused_at_the_front_door_are_counted() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(1)).await.status(), 201);
    let refusals = [
        (
            app.get("/health").header("host", "attacker.example"),
            "/health",
            403,
        ),
        (
            app.get("/nowhere").header("host", "attacker.example"),
            "unmatched",
            403,
        ),
        (
            app.post("/wallets/w/credit")
                .header("origin", "http://attacker.example")
                .json(&json!({"amount": 1})),
            "/wallets/{walletId}/credit",
            403,
        ),
        (
            app.get("/wallets/w")
                .header("x-correlation-id", "two words"),
            "/wallets/{walletId}",
            400,
        ),
    ];
    for (request, route, status) in refusals {
        let before = requests_counted(&app, route, status).await;
        assert_eq!(request.send().await.expect("sent").status(), status);
        assert_eq!(
            requests_counted(&app, route, status).await,
            before + 1,
            "{route} {status}"
        );
    }
    app.stop().await;
}
