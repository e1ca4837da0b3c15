//! Transaction history and search on the embedded default: the embedded
//! search index, fed in-process from the same events.

use serde_json::{json, Value};

use crate::helpers::{error_message, json_of, spawn_app, TestApp};

impl TestApp {
    async fn get_json(&self, path: &str) -> (u16, Value) {
        json_of(self.get(path).send().await.expect("request sent")).await
    }
}

fn types(body: &Value) -> Vec<String> {
    body["transactions"]
        .as_array()
        .expect("transactions is an array")
        .iter()
        .map(|transaction| transaction["type"].as_str().expect("type").to_owned())
        .collect()
}

/// a (owner o1): created with 100, credited 50 "Salary March", debited 30.25
/// "Coffee beans", sends 25 to b. b (owner o2): created empty, receives 25.
async fn app_with_history() -> TestApp {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("a", "o1", json!(100)).await.status(), 201);
    assert_eq!(app.create_wallet("b", "o2", json!(0)).await.status(), 201);
    let credited = app
        .post_json(
            "/wallets/a/credit",
            json!({"amount": 50, "description": "Salary March"}),
        )
        .await;
    assert_eq!(credited.status(), 201);
    let debited = app
        .post_json(
            "/wallets/a/debit",
            json!({"amount": 30.25, "description": "Coffee beans"}),
        )
        .await;
    assert_eq!(debited.status(), 201);
    assert_eq!(app.transfer("a", "b", json!(25)).await.status(), 201);
    app
}

#[tokio::test]
async fn a_wallet_history_shows_every_operation_newest_first() {
    let app = app_with_history().await;

    let (status, body) = app.get_json("/wallets/a/transactions").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["walletId"], "a");
    assert_eq!(body["count"], 4);
    assert_eq!(
        types(&body),
        [
            "TransferSent",
            "WalletDebited",
            "WalletCredited",
            "WalletCreated"
        ]
    );
    let sent = &body["transactions"][0];
    // Exact JSON numbers, as the wallet endpoints print them.
    assert_eq!(sent["amount"].to_string(), "25.00");
    assert_eq!(sent["balanceAfter"].to_string(), "94.75");
    assert_eq!(sent["counterpartyWalletId"], "b");
    assert_eq!(sent["description"], "test");
    assert_eq!(sent["ownerId"], "o1");
    assert_eq!(sent["streamVersion"], 4);
    assert!(sent["transferId"].is_string(), "{sent}");
    assert_eq!(body["transactions"][1]["amount"].to_string(), "30.25");
    assert_eq!(body["transactions"][3]["amount"].to_string(), "100.00");

    let (status, received) = app.get_json("/wallets/b/transactions").await;
    assert_eq!(status, 200);
    assert_eq!(types(&received), ["TransferReceived", "WalletCreated"]);
    assert_eq!(
        received["transactions"][0]["transferId"],
        sent["transferId"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_history_is_paged_and_counts_every_transaction() {
    let app = app_with_history().await;

    let (_, first) = app.get_json("/wallets/a/transactions?limit=3").await;
    assert_eq!(first["count"], 4);
    assert_eq!(
        types(&first),
        ["TransferSent", "WalletDebited", "WalletCredited"]
    );
    let (_, second) = app
        .get_json("/wallets/a/transactions?limit=3&offset=3")
        .await;
    assert_eq!(second["count"], 4);
    assert_eq!(types(&second), ["WalletCreated"]);
    let (status, beyond) = app.get_json("/wallets/a/transactions?offset=10").await;
    assert_eq!((status, beyond["count"].clone()), (200, json!(4)));
    assert_eq!(types(&beyond), Vec::<String>::new());
    app.stop().await;
}

/// The `position` of each transaction of a history page, newest first.
fn positions(body: &Value) -> Vec<u64> {
    body["transactions"]
        .as_array()
        .expect("transactions is an array")
        .iter()
        .map(|transaction| transaction["position"].as_u64().expect("position"))
        .collect()
}

#[tokio::test]
async fn a_history_paged_by_its_cursor_while_it_grows_sees_each_transaction_once() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(0)).await.status(), 201);
    for _ in 0..8 {
        assert_eq!(app.credit("w", json!(1)).await.status(), 201);
    }
    let (_, whole) = app.get_json("/wallets/w/transactions").await;
    let history = positions(&whole);
    assert_eq!(history.len(), 9);

    let mut walked: Vec<u64> = Vec::new();
    let mut path = "/wallets/w/transactions?limit=3".to_owned();
    for page_number in 1..=3 {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        let page = positions(&page);
        assert_eq!(page.len(), 3, "page {page_number}");
        walked.extend(&page);
        path = format!("/wallets/w/transactions?limit=3&before={}", page[2]);
        // Newer transactions arrive between two pages: an offset's next
        // page would shift by them, the cursor's does not.
        assert_eq!(app.credit("w", json!(1)).await.status(), 201);
        assert_eq!(app.debit("w", json!(1)).await.status(), 201);
    }
    assert_eq!(
        walked, history,
        "each transaction once, none skipped, newest first"
    );
    let (_, end) = app.get_json(&path).await;
    assert_eq!(
        (end["count"].clone(), positions(&end)),
        (json!(0), Vec::new())
    );

    // The cursor and an offset together: the offset skips among the older.
    let (_, skipped) = app
        .get_json(&format!(
            "/wallets/w/transactions?limit=2&offset=1&before={}",
            history[0]
        ))
        .await;
    assert_eq!(skipped["count"], 8, "all older than the newest of then");
    assert_eq!(positions(&skipped), history[2..4]);
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_wallet_has_no_history() {
    let app = app_with_history().await;
    let (status, body) = app.get_json("/wallets/nobody/transactions").await;
    assert_eq!(status, 404);
    assert_eq!(error_message(&body, 404), "Wallet nobody not found");
    // Not an id at all: a 400 naming the path parameter.
    let (status, body) = app.get_json("/wallets/not%20an%20id/transactions").await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).starts_with("walletId "));
    let (_, body) = app.get_json("/wallets/nobody/transactions").await;
    assert_eq!(body["message"], "Wallet nobody not found");
    app.stop().await;
}

#[tokio::test]
async fn a_search_narrows_by_every_filter() {
    let app = app_with_history().await;

    let (status, all) = app.get_json("/transactions").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["count"], 6);
    assert!(all.get("walletId").is_none());
    assert_eq!(types(&all)[0], "TransferReceived", "newest first");

    let (_, of_o2) = app.get_json("/transactions?ownerId=o2").await;
    assert_eq!(types(&of_o2), ["TransferReceived", "WalletCreated"]);

    let (_, of_a) = app.get_json("/transactions?walletId=a&limit=2").await;
    assert_eq!(of_a["count"], 4);
    assert_eq!(types(&of_a), ["TransferSent", "WalletDebited"]);

    let (_, between) = app
        .get_json("/transactions?minAmount=25&maxAmount=50&walletId=a")
        .await;
    assert_eq!(
        types(&between),
        ["TransferSent", "WalletDebited", "WalletCredited"]
    );
    let (_, exact) = app
        .get_json("/transactions?minAmount=30.25&maxAmount=30.25")
        .await;
    assert_eq!(types(&exact), ["WalletDebited"]);
    assert_eq!(exact["transactions"][0]["amount"].to_string(), "30.25");

    let (_, coffee) = app.get_json("/transactions?q=COFFEE").await;
    assert_eq!(types(&coffee), ["WalletDebited"]);
    let (_, salary) = app.get_json("/transactions?q=march%20salary").await;
    assert_eq!(types(&salary), ["WalletCredited"]);
    let (_, to_b) = app.get_json("/transactions?q=b").await;
    assert_eq!(
        types(&to_b),
        ["TransferReceived", "TransferSent", "WalletCreated"],
        "a whole wallet id matches its own and its counterparties' transactions"
    );

    // Everything happened today: a day-wide window finds it all, a past one nothing.
    let today = chrono::Utc::now().date_naive();
    let (_, within) = app
        .get_json(&format!("/transactions?from={today}&to={today}"))
        .await;
    assert_eq!(within["count"], 6);
    let (_, before) = app.get_json("/transactions?to=2020-01-01T00:00:00Z").await;
    assert_eq!(before["count"], 0);
    app.stop().await;
}

/// The search's deep pages are read by the keyset cursor `before`, each
/// transaction once, newest first (h151 F1).
#[tokio::test]
async fn a_search_pages_by_its_keyset_cursor() {
    let app = app_with_history().await;
    let (status, whole) = app.get_json("/transactions").await;
    assert_eq!(status, 200, "{whole}");
    let whole = positions(&whole);
    assert_eq!(whole.len(), 6);
    let mut walked = Vec::new();
    let mut path = "/transactions?limit=4".to_owned();
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_eq!(page["count"], whole.len() - walked.len(), "{path}");
        let Some(&last) = positions(&page).last() else {
            break;
        };
        walked.extend(positions(&page));
        path = format!("/transactions?limit=4&before={last}");
    }
    assert_eq!(walked, whole);
    app.stop().await;
}

#[tokio::test]
async fn invalid_parameters_are_refused_naming_the_field() {
    let app = app_with_history().await;
    let cases = [
        ("/transactions?from=yesterday", "from"),
        ("/transactions?to=2025-13-01", "to"),
        ("/transactions?minAmount=ten", "minAmount"),
        ("/transactions?maxAmount=1.2.3", "maxAmount"),
        ("/transactions?limit=0", "limit"),
        ("/transactions?limit=501", "limit"),
        ("/transactions?limit=-1", "limit"),
        ("/transactions?offset=x", "offset"),
        ("/transactions?offset=9990&limit=50", "offset"),
        ("/transactions?walletId=not%20an%20id", "walletId"),
        ("/transactions?ownerId=a%20b", "ownerId"),
        ("/transactions?minAmount=10&maxAmount=1", "minAmount"),
        ("/transactions?from=2025-02-01&to=2025-01-01", "from"),
        ("/wallets/a/transactions?limit=0", "limit"),
        ("/wallets/a/transactions?limit=100000", "limit"),
        ("/wallets/a/transactions?offset=-3", "offset"),
        ("/wallets/a/transactions?before=0", "before"),
        ("/wallets/a/transactions?before=x", "before"),
        ("/transactions?before=0", "before"),
        ("/transactions?before=-1", "before"),
    ];
    for (path, field) in cases {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let message = error_message(&body, 400);
        assert!(message.contains(field), "{path}: {message}");
    }
    // Every offset the document allows can be asked alone: the default page
    // ends at the window's last row (h152 F1).
    for path in [
        "/transactions?offset=9999",
        "/wallets/a/transactions?offset=9999",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["transactions"], json!([]), "{path}");
    }
    let long = "x".repeat(search_index::QUERY_TEXT_LENGTH_MAX + 1);
    let (status, body) = app.get_json(&format!("/transactions?q={long}")).await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).starts_with("q "), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart_and_health_reports_the_projections() {
    let app = app_with_history().await;
    let (status, health) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["searchIndex"]["status"], "up", "{health}");
    let head = health["eventStore"]["headPosition"]
        .as_u64()
        .expect("a head");
    for projection in ["ledger", "readModel"] {
        assert_eq!(health[projection]["status"], "up", "{health}");
        let position = health[projection]["position"].as_u64().expect("a position");
        assert!(position <= head, "{projection} within the log: {health}");
    }
    let temp = app.stop().await;

    let directory = temp.expect("the first app owned its folder");
    let app = crate::helpers::spawn_app_in(directory.path()).await;
    let (status, body) = app.get_json("/wallets/a/transactions").await;
    assert_eq!(status, 200);
    assert_eq!(body["count"], 4);
    app.credit("a", json!(1)).await;
    let (_, body) = app.get_json("/wallets/a/transactions?limit=1").await;
    assert_eq!(body["count"], 5);
    assert_eq!(types(&body), ["WalletCredited"]);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_both_endpoints() {
    let app = spawn_app().await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["paths"]["/wallets/{walletId}/transactions"]["get"].is_object());
    let search = &document["paths"]["/transactions"]["get"];
    let names: Vec<&str> = search["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|parameter| parameter["name"].as_str())
        .collect();
    for name in [
        "ownerId",
        "walletId",
        "from",
        "to",
        "minAmount",
        "maxAmount",
        "q",
        "limit",
        "offset",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    app.stop().await;
}
