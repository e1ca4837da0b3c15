//! One set of rules for every query parameter of every endpoint: dates as
//! RFC 3339 or a day, an empty value as an absent one, every refusal a 400
//! naming the parameter and the accepted form; and `q` with one meaning.

use serde_json::{json, Value};

use crate::helpers::{error_message, json_of, spawn_app, TestApp};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    json_of(app.get(path).send().await.expect("sent")).await
}

/// Asserts a 400 whose message starts with `start`.
#[track_caller]
fn assert_refused((status, body): &(u16, Value), start: &str) {
    assert_eq!(*status, 400, "{body}");
    let message = error_message(body, 400);
    assert!(
        message.starts_with(start),
        "{message:?} should start with {start:?}"
    );
}

#[tokio::test]
async fn a_day_is_a_whole_day_and_an_empty_value_is_absent_on_every_endpoint() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.credit("w", json!(5)).await;
    let today = chrono::Utc::now().date_naive().to_string();
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();

    let (status, body) = get(
        &app,
        &format!("/ledger/wallet/w?startDate={today}&endDate={today}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 2, "{body}");
    let (_, body) = get(&app, &format!("/ledger/wallet/w?startDate={tomorrow}")).await;
    assert_eq!(body["count"], 0, "{body}");
    // Both entries of each of the two transactions.
    let (_, body) = get(
        &app,
        &format!("/ledger/transactions?walletId=w&endDate={today}"),
    )
    .await;
    assert_eq!(body["count"], 4, "{body}");
    let (_, body) = get(&app, &format!("/transactions?from={today}&to={today}")).await;
    assert_eq!(body["count"], 2, "{body}");

    for path in [
        "/ledger/wallet/w?startDate=&endDate=&transactionType=&limit=&offset=&after=",
        "/ledger/transactions?walletId=&startDate=&endDate=",
        "/transactions?ownerId=&walletId=&from=&to=&minAmount=&maxAmount=&q=&limit=&offset=",
        "/wallets/w/transactions?limit=&offset=",
        "/wallets?limit=&after=&ownerId=",
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_refusal_names_the_parameter_and_what_it_accepts() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    let date_form = "an RFC 3339 date-time (2026-11-30T12:00:00Z) or a date (2026-11-30)";
    assert_refused(
        &get(&app, "/ledger/wallet/w?startDate=2026-11-31").await,
        &format!("startDate must be {date_form}"),
    );
    assert_refused(
        &get(&app, "/transactions?to=30/11/2026").await,
        &format!("to must be {date_form}"),
    );
    assert_refused(
        &get(
            &app,
            "/ledger/wallet/w?startDate=2026-12-01&endDate=2026-11-30",
        )
        .await,
        "startDate must not be after endDate",
    );
    assert_refused(
        &get(&app, "/transactions?from=2026-12-01&to=2026-11-30").await,
        "from must not be after to",
    );
    assert_refused(
        &get(&app, "/ledger/transactions?transactionType=REFUND").await,
        "transactionType must be one of WALLET_CREATED, CREDIT, DEBIT, TRANSFER_OUT, TRANSFER_IN",
    );
    assert_refused(
        &get(&app, "/ledger/wallet/w?limit=501").await,
        "limit must be an integer from 1 to 500",
    );
    assert_refused(
        &get(&app, "/ledger/transactions?offset=-1").await,
        "offset must be an integer from 0 to",
    );
    assert_refused(
        &get(&app, "/ledger/transactions?offset=10001").await,
        "offset must be an integer from 0 to 10000",
    );
    for cursor in ["x", "00000000-0000-0000-0000-000000000000:0", "%00"] {
        assert_refused(
            &get(&app, &format!("/ledger/wallet/w?after={cursor}")).await,
            "after must be an entry id",
        );
    }
    assert_refused(
        &get(&app, "/wallets?limit=0").await,
        "limit must be an integer from 1 to 10000",
    );
    assert_refused(
        &get(&app, "/wallets?after=a%20b").await,
        "after must be an id",
    );
    assert_refused(
        &get(&app, "/wallets/w/transactions?offset=10000").await,
        "offset must be an integer from 0 to 9999",
    );
    assert_refused(
        &get(&app, "/transactions?minAmount=1e3").await,
        "minAmount must be a decimal number",
    );
    assert_refused(
        &get(&app, "/transactions?q=a%00b").await,
        "q must not contain control characters",
    );
    assert_refused(
        &get(&app, "/transactions?ownerId=o%0A").await,
        "ownerId must be an id",
    );
    // A parameter given twice is named too.
    let (status, body) = get(&app, "/wallets?limit=1&limit=2").await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, 400).contains("limit"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn q_is_every_word_in_any_order_and_never_an_operator() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(0)).await;
    for description in [
        "agent fee for the multi leg payout",
        "multi-agent settlement",
    ] {
        let response = app
            .post_json(
                "/wallets/w/credit",
                json!({"amount": 1, "description": description}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    for (q, count) in [
        ("multi-agent", 2),
        ("payout,agent", 1),
        ("%22multi%20agent%22", 2),
        ("NEAR(multi%20payout)", 0),
        ("multi%20OR%20nothing", 0),
        ("*", 0),
        ("w", 3),
    ] {
        let (status, body) = get(&app, &format!("/transactions?q={q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(body["count"], count, "{q}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_document_states_what_the_server_accepts() {
    let app = spawn_app().await;
    let (_, document) = get(&app, "/openapi.json").await;
    let parameters = &document["paths"]["/ledger/wallet/{walletId}"]["get"]["parameters"];
    let start_date = parameters
        .as_array()
        .expect("parameters")
        .iter()
        .find(|parameter| parameter["name"] == "startDate")
        .expect("startDate is documented");
    assert_eq!(start_date["in"], "query");
    assert_eq!(start_date["required"], false);
    let accepted = &start_date["schema"]["anyOf"];
    assert!(
        accepted[0]["pattern"]
            .as_str()
            .is_some_and(|p| p.starts_with("^(?:[0-9]{4}-") && p.contains("-02-29")),
        "a calendar day first: {start_date}"
    );
    assert_eq!(
        accepted[1]["maxLength"], 0,
        "empty is accepted: {start_date}"
    );
    let limit = &document["paths"]["/wallets"]["get"]["parameters"][0];
    assert_eq!(limit["name"], "limit");
    assert_eq!(limit["schema"]["anyOf"][0]["minimum"], 1);
    assert_eq!(limit["schema"]["anyOf"][0]["maximum"], 10_000);
    app.stop().await;
}

#[tokio::test]
async fn a_query_value_that_is_not_utf8_is_refused_naming_its_parameter() {
    let app = spawn_app().await;
    assert_eq!(app.create_wallet("w", "o", json!(5)).await.status(), 201);
    for (path, name) in [
        ("/wallets/w/transactions?limit=5&type=%FF", "type"),
        ("/wallets/w?at=%FE%FF", "at"),
        ("/wallets?ownerId=o%C3", "ownerId"),
    ] {
        let response = app.get(path).send().await.expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(error_message(&body, 400).contains(name), "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_parameter_the_endpoint_does_not_document_is_refused_by_name_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.credit("w", json!(5)).await;
    for (path, unknown) in [
        // Another route's cursor: the history pages with `before`, the ledger with `after`.
        ("/wallets/w/transactions?after=5&limit=1", "after"),
        ("/ledger/wallet/w?before=5&limit=1", "before"),
        ("/ledger/transactions?referenceId=x", "referenceId"),
        // A misspelt filter would otherwise list every wallet.
        ("/wallets?ownerid=nobody", "ownerid"),
        ("/wallets/w/transactions?type=WalletCredited", "type"),
        ("/transactions?wallet=w", "wallet"),
        ("/wallets/w?asOf=2026-01-01", "asOf"),
        ("/wallets/w/transactions?limit=1&li%6Dits=2", "limits"),
        // A name a page would show reversed is quoted by its code points.
        (
            "/wallets/w/transactions?own%E2%80%AEerId=1",
            "own<U+202E>erId",
        ),
    ] {
        let refused = get(&app, path).await;
        assert_refused(
            &refused,
            &format!("query parameter \"{unknown}\" is not accepted here"),
        );
        let message = error_message(&refused.1, 400);
        assert!(
            message.contains("limit") || message.contains("at"),
            "{path}: {message}"
        );
    }
    let repeated = get(&app, "/wallets/w/transactions?limit=1&limit=1").await;
    assert_refused(&repeated, "query parameter limit is given more than once");
    // The documented ones still answer, and a route that reads no query
    // ignores one, as the seed's server did.
    let (status, body) = get(&app, "/wallets/w/transactions?before=99&limit=1").await;
    assert_eq!(status, 200, "{body}");
    let credited = app
        .client
        .post(format!(
            "{}/wallets/w/credit?source=seed-client",
            app.address
        ))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("sent");
    assert_eq!(credited.status(), 201);
    let (_, wallet) = get(&app, "/wallets/w").await;
    assert_eq!(wallet["balance"].to_string(), "106.00", "{wallet}");
    // The cache-busting timestamp a client adds (jQuery's `cache: false`) is
    // ignored on every route, with or without other parameters.
    for path in [
        "/wallets/w?_=1700000000000",
        "/wallets?_=1700000000000&limit=1",
        "/wallets/w/transactions?_=1&limit=1",
        "/transactions?_=1&walletId=w",
        "/ledger/wallet/w?_=1",
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

#[tokio::test]
async fn an_integer_is_read_in_every_notation_its_schema_admits() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.credit("w", json!(5)).await;
    app.credit("w", json!(6)).await;
    for limit in ["1", "1.0", "0.1e1", "1E0", "001"] {
        let (status, body) = get(&app, &format!("/wallets/w/transactions?limit={limit}")).await;
        assert_eq!(status, 200, "{limit}: {body}");
        assert_eq!(
            body["transactions"].as_array().map(Vec::len),
            Some(1),
            "{limit}: {body}"
        );
    }
    let (status, body) = get(&app, "/wallets/w?version=2.0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"].to_string(), "105.00", "{body}");
    for limit in ["1.5", "1e400", "1.", "-1"] {
        assert_refused(
            &get(&app, &format!("/wallets/w/transactions?limit={limit}")).await,
            "limit must be an integer from 1 to",
        );
    }
}
