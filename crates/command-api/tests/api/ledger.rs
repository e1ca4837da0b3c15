//! The ledger API on the embedded default: the double-entry view of the same events.

use serde_json::json;

use crate::helpers::{json_of, spawn_app};

#[tokio::test]
async fn every_operation_is_posted_double_entry_and_verifies() {
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(100)).await;
    app.create_wallet("b", "o", json!(0)).await;
    app.credit("a", json!(50)).await;
    app.debit("a", json!(30)).await;
    let (_, transfer) = json_of(app.transfer("a", "b", json!(25)).await).await;
    assert_eq!(transfer["fromWallet"]["balance"].to_string(), "95.00");

    let (status, entries) = json_of(app.get("/ledger/wallet/a").send().await.expect("sent")).await;
    assert_eq!(status, 200);
    assert_eq!(entries["walletId"], "a");
    assert_eq!(entries["count"], 4);
    let types: Vec<&str> = entries["transactions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| entry["transactionType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["TRANSFER_OUT", "DEBIT", "CREDIT", "WALLET_CREATED"],
        "newest first"
    );

    // The keyset cursor: each page starts after the previous page's last id.
    let mut walked = Vec::new();
    let mut path = "/ledger/wallet/a?limit=3".to_owned();
    loop {
        let (status, page) = json_of(app.get(&path).send().await.expect("sent")).await;
        assert_eq!(status, 200, "{page}");
        let count = page["count"].clone();
        let page = page["transactions"].as_array().expect("array").clone();
        assert_eq!(
            count,
            page.len(),
            "count is this page's entries, not a total"
        );
        let Some(last) = page.last() else { break };
        path = format!(
            "/ledger/wallet/a?limit=3&after={}",
            last["id"].as_str().expect("id")
        );
        walked.extend(page);
    }
    assert_eq!(walked, *entries["transactions"].as_array().expect("array"));
    // A cursor naming no entry of the list is refused, on both lists, rather
    // than read as the end of the list: an unknown id, and another wallet's
    // entry on one wallet's list (refused alike, so a cursor tells nothing of
    // entries the list does not show).
    let (_, b_entries) = json_of(app.get("/ledger/wallet/b").send().await.expect("sent")).await;
    let b_entry = b_entries["transactions"][0]["id"]
        .as_str()
        .expect("b's entry id")
        .to_owned();
    // A line its transaction does not have (h111 F1), and the side of a's
    // transaction on another account: in a's transactions, not on a's accounts.
    let a_entry = entries["transactions"][0]["id"]
        .as_str()
        .expect("a's entry id");
    let a_transaction = a_entry.split(':').next().expect("a transaction id");
    let (_, a_transactions) = json_of(
        app.get("/ledger/transactions?walletId=a")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    let other_side = a_transactions["transactions"]
        .as_array()
        .expect("array")
        .iter()
        .find(|line| {
            !["wallet:a", "held:a"].contains(&line["account"].as_str().unwrap_or_default())
        })
        .and_then(|line| line["id"].as_str())
        .expect("a line of a's transactions on another account")
        .to_owned();
    let (status, page) = json_of(
        app.get(&format!(
            "/ledger/transactions?walletId=a&after={other_side}"
        ))
        .send()
        .await
        .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "a cursor of that list: {page}");
    for path in [
        "/ledger/wallet/a?after=ffffffff-ffff-7fff-bfff-ffffffffffff:1".to_owned(),
        "/ledger/transactions?after=00000000-0000-0000-0000-000000000000:1".to_owned(),
        format!("/ledger/wallet/a?after={b_entry}"),
        format!("/ledger/transactions?walletId=a&after={b_entry}"),
        format!("/ledger/wallet/a?after={a_transaction}:999"),
        format!("/ledger/transactions?after={a_transaction}:999"),
        format!("/ledger/wallet/a?after={other_side}"),
    ] {
        let path = path.as_str();
        let (status, body) = json_of(app.get(path).send().await.expect("sent")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            crate::helpers::error_message(&body, 400).starts_with("after "),
            "{body}"
        );
    }

    let (_, debits) = json_of(
        app.get("/ledger/wallet/a?transactionType=DEBIT")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(debits["count"], 1);
    assert_eq!(debits["transactions"][0]["amount"].to_string(), "30.00");

    let reference = entries["transactions"][0]["referenceId"]
        .as_str()
        .expect("reference")
        .to_owned();
    let (_, both_halves) = json_of(
        app.get(&format!("/ledger/reference/{reference}"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        both_halves["count"], 4,
        "two halves, two entries each: {both_halves}"
    );

    let (_, summary) = json_of(
        app.get("/ledger/wallet/a/summary")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(summary["balance"].to_string(), "95.00");

    let (status, verification) =
        json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{verification}");
    assert_eq!(verification["ok"], true);
    assert_eq!(verification["balanceMismatches"], json!([]));

    let (status, _) = json_of(
        app.get("/ledger/transactions?limit=abc")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn the_summary_has_the_seeds_fields_and_money_at_its_scale() {
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(0)).await;
    let (status, empty) = json_of(
        app.get("/ledger/wallet/a/summary")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["walletId"], "a");
    assert_eq!(empty["totalCredits"].to_string(), "0.00");
    assert_eq!(empty["totalDebits"].to_string(), "0.00");
    assert_eq!(empty["transactionCount"], 0);
    assert_eq!(empty["lastTransaction"], json!(null));

    app.credit("a", json!(11)).await;
    app.debit("a", json!(1.5)).await;
    let (_, summary) = json_of(
        app.get("/ledger/wallet/a/summary")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(summary["totalCredits"].to_string(), "11.00");
    assert_eq!(summary["totalDebits"].to_string(), "1.50");
    assert_eq!(summary["balance"].to_string(), "9.50");
    assert_eq!(summary["transactionCount"], 2);
    assert_eq!(summary["entryCount"], 2);
    let last = &summary["lastTransaction"];
    assert_eq!(last["transactionType"], "DEBIT", "the newest: {summary}");
    assert_eq!(last["amount"].to_string(), "1.50");

    let (_, entries) = json_of(app.get("/ledger/wallet/a").send().await.expect("sent")).await;
    let amounts: Vec<String> = entries["transactions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| entry["amount"].to_string())
        .collect();
    assert_eq!(
        amounts,
        ["1.50", "11.00"],
        "newest first, at the money scale"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_ledger_lists_say_their_count_is_the_page_not_a_total() {
    let app = spawn_app().await;
    let (_, spec) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    for schema in ["WalletEntriesResponse", "EntriesResponse"] {
        let description = spec["components"]["schemas"][schema]["properties"]["count"]
            ["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("this page") && description.contains("not a total"),
            "{schema}.count: {description:?}"
        );
    }
    app.create_wallet("a", "o", json!(100)).await;
    for _ in 0..3 {
        app.credit("a", json!(1)).await;
    }
    for path in ["/ledger/wallet/a?limit=2", "/ledger/transactions?limit=2"] {
        let (status, page) = json_of(app.get(path).send().await.expect("sent")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["count"], 2, "{path}: {page}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_read_from_a_projection_still_behind_says_so() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_in(temp.path()).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);
    let fresh = app.get("/ledger/wallet/a").send().await.expect("sent");
    assert_eq!(fresh.status(), 200);
    assert!(fresh.headers().get("stale-projection").is_none());

    // Another program holds the ledger's write lock: its projection cannot
    // post the credit, so the read waits its bound and answers what it has.
    let blocker = rusqlite::Connection::open(temp.path().join("ledger.db")).expect("opened");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock taken");
    assert_eq!(app.credit("a", json!(5)).await.status(), 201);
    let stale = app.get("/ledger/wallet/a").send().await.expect("sent");
    assert_eq!(stale.status(), 200);
    assert_eq!(
        stale
            .headers()
            .get("stale-projection")
            .map(|value| value.as_bytes()),
        Some(&b"ledger"[..])
    );
    let (_, entries) = json_of(stale).await;
    assert_eq!(
        entries["count"], 1,
        "the credit is not posted yet: {entries}"
    );

    blocker.execute_batch("ROLLBACK").expect("the lock let go");
    let caught_up = app.get("/ledger/wallet/a").send().await.expect("sent");
    assert!(caught_up.headers().get("stale-projection").is_none());
    let (_, entries) = json_of(caught_up).await;
    assert_eq!(entries["count"], 2, "{entries}");
    app.stop().await;
}

#[tokio::test]
async fn a_wallets_newest_event_lost_from_the_ledger_fails_the_verification() {
    // h141 F2: with the event deleted from `ledger.db`, its wallet compared
    // at its previous event had no mismatch, and the verification said ok
    // though the relay had delivered everything.
    let temp = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_in(temp.path()).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);
    assert_eq!(app.credit("a", json!(1)).await.status(), 201);
    let (status, verified) = json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["eventsMissing"], 0, "{verified}");
    app.stop().await;

    let ledger = rusqlite::Connection::open(temp.path().join("ledger.db")).expect("opened");
    ledger
        .execute_batch(
            "DELETE FROM ledger_entries WHERE position = 2;
             DELETE FROM ledger_transactions WHERE position = 2;",
        )
        .expect("the credit's transaction deleted");
    drop(ledger);

    let app = crate::helpers::spawn_app_in(temp.path()).await;
    let (status, verified) = json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!(status, 409, "{verified}");
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["eventsNotPosted"], 1, "{verified}");
    assert_eq!(verified["eventsMissing"], 1, "{verified}");
    assert_eq!(verified["balanceMismatches"], json!([]), "{verified}");
    app.stop().await;
}
