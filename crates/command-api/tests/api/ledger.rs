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
    assert_eq!(types, ["WALLET_CREATED", "CREDIT", "DEBIT", "TRANSFER_OUT"]);

    let (_, debits) = json_of(
        app.get("/ledger/wallet/a?transactionType=DEBIT")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(debits["count"], 1);
    assert_eq!(debits["transactions"][0]["amount"].to_string(), "30.00");

    let reference = entries["transactions"][3]["referenceId"]
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
