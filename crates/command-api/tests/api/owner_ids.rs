//! An owner id takes what identity providers' subjects hold (`auth0|123`,
//! an e-mail address, a URN), so an end user's `sub` owns wallets without a
//! claim mapping; it is found again by the list, the search and the token,
//! percent-encoded in a query (h104 F2).

use serde_json::{json, Value};

use crate::helpers::{error_message, json_of, spawn_app, spawn_auth_app, token, TestApp};

/// Owners of the kinds identity providers name their users.
const SUBJECTS: [&str; 4] = [
    "auth0|123",
    "google-oauth2|1043",
    "a.b+c@example.com",
    "urn:x:y",
];

/// `raw` percent-encoded as a query value (every byte but letters and digits).
fn encoded(raw: &str) -> String {
    raw.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut request = app.get(path);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    json_of(request.send().await.expect("sent")).await
}

#[tokio::test]
async fn an_owner_named_as_an_identity_provider_names_it_owns_lists_and_finds_its_wallets() {
    let app = spawn_app().await;
    let longest = "o".repeat(wallet_domain::OWNER_ID_LENGTH_MAX);
    let owners: Vec<&str> = SUBJECTS.into_iter().chain([longest.as_str()]).collect();
    for (index, owner) in owners.iter().enumerate() {
        for wallet in [format!("w{index}-a"), format!("w{index}-b")] {
            let (status, body) = json_of(app.create_wallet(&wallet, owner, json!(10)).await).await;
            assert_eq!(
                (status, body["ownerId"].as_str()),
                (201, Some(*owner)),
                "{body}"
            );
        }
    }
    for (index, owner) in owners.iter().enumerate() {
        let (status, listed) =
            get(&app, &format!("/wallets?ownerId={}", encoded(owner)), None).await;
        assert_eq!(status, 200, "{listed}");
        let ids: Vec<&str> = listed
            .as_array()
            .expect("an array")
            .iter()
            .map(|wallet| wallet["id"].as_str().expect("an id"))
            .collect();
        let own = [format!("w{index}-a"), format!("w{index}-b")];
        assert_eq!(
            ids,
            own.iter().map(String::as_str).collect::<Vec<_>>(),
            "{owner}"
        );

        // A full page's Link names the owner again, and following it reads on.
        let first = app
            .get(&format!("/wallets?limit=1&ownerId={}", encoded(owner)))
            .send()
            .await
            .expect("sent");
        let link = first.headers()["link"].to_str().expect("text").to_owned();
        let next = link
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(target, _)| target.to_owned())
            .expect("a link target");
        assert!(!next.contains('|') && !next.contains('+'), "{next}");
        let (status, rest) = get(&app, &next, None).await;
        assert_eq!(status, 200, "{rest}");
        assert_eq!(rest[0]["id"], own[1], "{next}: {rest}");

        let (status, found) = get(
            &app,
            &format!("/transactions?ownerId={}", encoded(owner)),
            None,
        )
        .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["count"], 2, "{owner}: {found}");
        for transaction in found["transactions"].as_array().expect("an array") {
            assert_eq!(transaction["ownerId"], *owner, "{transaction}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_owner_id_out_of_the_rule_is_refused_naming_it() {
    let app = spawn_app().await;
    let too_long = "o".repeat(wallet_domain::OWNER_ID_LENGTH_MAX + 1);
    for owner in [
        too_long.as_str(),
        "a b",
        "a/b",
        "a%b",
        "a\u{1}b",
        "a\tb",
        "zoë",
        " ",
    ] {
        let (status, body) = json_of(app.create_wallet("w", owner, json!(0)).await).await;
        assert_eq!(status, 400, "{owner:?}: {body}");
        assert!(error_message(&body, 400).contains("ownerId"), "{body}");
        for path in ["/wallets", "/transactions"] {
            let (status, body) =
                get(&app, &format!("{path}?ownerId={}", encoded(owner)), None).await;
            assert_eq!(status, 400, "{path} {owner:?}: {body}");
            let message = error_message(&body, 400);
            assert!(
                message.contains("ownerId") && message.contains("255"),
                "{message}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn an_end_user_whose_sub_is_an_identity_providers_uses_its_own_wallets_only() {
    let app = spawn_auth_app(1_000, 1_000).await;
    let user = token("auth0|123", "wallets");
    let admin = token("admin-1", "admin");
    let (status, body) = json_of(
        app.post("/wallets")
            .bearer_auth(&user)
            .json(&json!({"walletId": "mine", "ownerId": "auth0|123"}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (wallet, owner) in [("theirs", "auth0|1234"), ("funds", "admin-1")] {
        let (status, body) = json_of(
            app.post("/wallets")
                .bearer_auth(&admin)
                .json(&json!({"walletId": wallet, "ownerId": owner, "initialBalance": 20}))
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = json_of(
        app.post("/wallets/funds/transfer")
            .bearer_auth(&admin)
            .json(&json!({"toWalletId": "mine", "amount": 5}))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let debit = |wallet: &str| {
        app.post(&format!("/wallets/{wallet}/debit"))
            .bearer_auth(&user)
            .json(&json!({"amount": 1}))
            .send()
    };
    let (status, body) = json_of(debit("mine").await.expect("sent")).await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "4.00".into()),
        "{body}"
    );
    let (status, body) = json_of(debit("theirs").await.expect("sent")).await;
    assert_eq!(status, 404, "another owner's wallet: {body}");
    let (status, listed) = get(&app, "/wallets", Some(&user)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], "mine", "{listed}");
    let (status, found) = get(&app, "/transactions", Some(&user)).await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found["transactions"]
            .as_array()
            .expect("an array")
            .iter()
            .all(|transaction| transaction["walletId"] == "mine"),
        "{found}"
    );
    app.stop().await;
}
