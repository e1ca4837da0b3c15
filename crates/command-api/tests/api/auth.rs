//! Identity and access with authentication on: every endpoint against every
//! kind of caller, and on every refusal nothing changed.

use std::time::Duration;

use identity::{mint_hs256, mint_with_pem, unix_now_seconds, unsigned, Algorithm, Claims};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    error_message, json_of, spawn_app_with_key_file, spawn_auth_app, token, TestApp, AUTH_AUDIENCE,
    AUTH_SECRET,
};

const OWNER: &str = "alice";
const OTHER: &str = "bob";
const OWN_WALLET: &str = "alice-w";
const OTHER_WALLET: &str = "bob-w";
/// Effectively unlimited for the matrix.
const RATE_UNLIMITED: u32 = 0;

/// A caller of the matrix, and its `Authorization` header.
struct Caller {
    name: &'static str,
    authorization: Option<String>,
}

fn claims(sub: &str, scope: &str) -> Claims {
    Claims {
        aud: Some(AUTH_AUDIENCE.into()),
        ..Claims::new(sub, scope, Duration::from_secs(3600))
    }
}

fn bearer(token: String) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// The first callers of [`callers`], each refused 401.
const UNAUTHENTICATED_CALLERS: usize = 6;

fn callers() -> Vec<Caller> {
    let expired = Claims {
        exp: unix_now_seconds() - 3600,
        ..claims(OWNER, "wallets admin")
    };
    // h115 F2: a token that practically never expires.
    let everlasting = Claims {
        exp: u64::MAX,
        ..claims(OWNER, "wallets admin")
    };
    let wrong_audience = Claims {
        aud: Some("another-api".into()),
        ..claims(OWNER, "wallets admin")
    };
    let forged = mint_hs256(
        b"not-the-secret-but-at-least-32-bytes",
        &claims(OWNER, "admin"),
    );
    vec![
        Caller {
            name: "no token",
            authorization: None,
        },
        Caller {
            name: "expired",
            authorization: bearer(mint_hs256(AUTH_SECRET.as_bytes(), &expired).expect("mint")),
        },
        Caller {
            name: "expiring more than a year ahead",
            authorization: bearer(mint_hs256(AUTH_SECRET.as_bytes(), &everlasting).expect("mint")),
        },
        Caller {
            name: "bad signature",
            authorization: bearer(forged.expect("mint")),
        },
        Caller {
            name: "alg none",
            authorization: bearer(unsigned(&claims(OWNER, "admin")).expect("unsigned")),
        },
        Caller {
            name: "wrong audience",
            authorization: bearer(
                mint_hs256(AUTH_SECRET.as_bytes(), &wrong_audience).expect("mint"),
            ),
        },
        Caller {
            name: "owner",
            authorization: bearer(token(OWNER, "wallets")),
        },
        Caller {
            name: "other owner",
            authorization: bearer(token(OTHER, "wallets")),
        },
        Caller {
            name: "deposits",
            authorization: bearer(token("gateway", "deposits")),
        },
        Caller {
            name: "admin",
            authorization: bearer(token("ops", "admin")),
        },
    ]
}

/// What each check's 401 message says.
fn unauthenticated_message(caller: &str) -> &'static str {
    match caller {
        "no token" => "Missing bearer token",
        "expired" => "expired",
        "expiring more than a year ahead" => "too far ahead",
        "bad signature" => "signature",
        "alg none" => "none",
        _ => "audience",
    }
}

/// One endpoint and what the four authenticated callers get from it.
struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<fn(&str) -> Value>,
    /// Owner, other owner, deposits, admin.
    expected: [u16; 4],
}

fn endpoints() -> Vec<Endpoint> {
    let get = |path, expected| Endpoint {
        method: Method::GET,
        path,
        body: None,
        expected,
    };
    let post = |path, body: fn(&str) -> Value, expected| Endpoint {
        method: Method::POST,
        path,
        body: Some(body),
        expected,
    };
    vec![
        post(
            "/wallets",
            |case| json!({"walletId": format!("new-{case}"), "ownerId": OWNER}),
            [201, 403, 201, 201],
        ),
        post(
            "/wallets/alice-w/credit",
            |_| json!({"amount": 1}),
            [403, 403, 201, 201],
        ),
        post(
            "/wallets/alice-w/debit",
            |_| json!({"amount": 1}),
            [201, 404, 403, 201],
        ),
        post(
            "/wallets/alice-w/transfer",
            |_| json!({"toWalletId": OTHER_WALLET, "amount": 1}),
            [201, 404, 403, 201],
        ),
        get("/wallets/alice-w", [200, 404, 403, 200]),
        get("/wallets?ownerId=alice", [200, 200, 403, 200]),
        get("/wallets/alice-w/transactions", [200, 404, 403, 200]),
        get("/transactions", [200, 200, 403, 200]),
        get("/ledger/wallet/alice-w", [200, 404, 403, 200]),
        get("/ledger/wallet/alice-w/summary", [200, 404, 403, 200]),
        get("/ledger/reference/some-reference", [403, 403, 403, 200]),
        get("/ledger/transactions", [403, 403, 403, 200]),
        get(
            "/ledger/transactions?walletId=alice-w",
            [200, 404, 403, 200],
        ),
        get("/ledger/verify", [403, 403, 403, 200]),
        post(
            "/wallets",
            |case| json!({"walletId": format!("od-{case}"), "ownerId": OWNER, "overdraftLimit": 5}),
            [403, 403, 403, 201],
        ),
        get("/wallets/alice-w?version=1", [200, 404, 403, 200]),
        get(
            "/ledger/wallet/alice-w/summary?at=2100-01-01T00:00:00Z",
            [200, 404, 403, 200],
        ),
        Endpoint {
            method: Method::PUT,
            path: "/wallets/alice-w/overdraft-limit",
            body: Some(|_| json!({"overdraftLimit": 10})),
            expected: [403, 403, 403, 201],
        },
        // The owner may close its wallet, which the rules then refuse: not at 0.00.
        post(
            "/wallets/alice-w/close",
            |_| json!({}),
            [409, 404, 403, 409],
        ),
        post(
            "/wallets/alice-w/freeze",
            |_| json!({}),
            [403, 403, 403, 201],
        ),
        post(
            "/wallets/alice-w/unfreeze",
            |_| json!({}),
            [403, 403, 403, 201],
        ),
        post(
            "/wallets/alice-w/holds",
            |case| json!({"amount": 1, "holdId": format!("h-{case}")}),
            [201, 404, 403, 201],
        ),
        get("/holds/alice-h", [200, 404, 403, 200]),
        get(
            "/wallets/alice-w/holds?status=PENDING",
            [200, 404, 403, 200],
        ),
        // The owner settles the hold first; the admin then meets a settled one.
        post(
            "/holds/alice-c/capture",
            |_| json!({"amount": 1}),
            [201, 404, 403, 409],
        ),
        post("/holds/alice-v/void", |_| json!({}), [201, 404, 403, 409]),
    ]
}

impl TestApp {
    async fn send_as(
        &self,
        authorization: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// The event count and both wallets as an admin sees them.
    async fn snapshot(&self) -> (Value, Value, Value) {
        let admin = bearer(token("ops", "admin"));
        let (_, health) = json_of(self.get("/health").send().await.expect("sent")).await;
        let mut wallets = Vec::new();
        for id in [OWN_WALLET, OTHER_WALLET] {
            let response = self
                .send_as(
                    admin.as_deref(),
                    Method::GET,
                    &format!("/wallets/{id}"),
                    None,
                )
                .await;
            let (_, wallet) = json_of(response).await;
            wallets.push(json!({"balance": wallet["balance"], "version": wallet["version"]}));
        }
        let other = wallets.pop().expect("two");
        let own = wallets.pop().expect("two");
        (health["eventStore"]["headPosition"].clone(), own, other)
    }
}

async fn app_with_two_owners(rate_limit_per_second: u32, rate_limit_burst: u32) -> TestApp {
    let app = spawn_auth_app(rate_limit_per_second, rate_limit_burst).await;
    let gateway = bearer(token("gateway", "deposits"));
    for (id, owner) in [(OWN_WALLET, OWNER), (OTHER_WALLET, OTHER)] {
        let body = json!({"walletId": id, "ownerId": owner, "initialBalance": 100});
        let response = app
            .send_as(gateway.as_deref(), Method::POST, "/wallets", Some(body))
            .await;
        assert_eq!(response.status(), 201);
    }
    app
}

#[tokio::test]
async fn a_gateway_learns_that_a_wallet_id_it_creates_for_a_user_is_another_owners() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let gateway = bearer(token("gateway", "deposits"));
    for (owner, message) in [
        (OWNER, format!("Wallet {OWN_WALLET} already exists")),
        (
            OTHER,
            format!(
                "Wallet {OWN_WALLET} already exists under another owner than {OTHER}: \
                 choose another walletId"
            ),
        ),
    ] {
        let create = json!({"walletId": OWN_WALLET, "ownerId": owner, "initialBalance": 25});
        let (_, body) = json_of(
            app.send_as(gateway.as_deref(), Method::POST, "/wallets", Some(create))
                .await,
        )
        .await;
        assert_eq!(error_message(&body, 409), message, "{owner}");
    }
}

/// The holds the matrix reads, captures and voids, placed by an admin on the owner's wallet.
async fn place_holds(app: &TestApp) {
    let admin = bearer(token("ops", "admin"));
    for hold_id in ["alice-h", "alice-c", "alice-v"] {
        let body = json!({"amount": 2, "holdId": hold_id});
        let path = format!("/wallets/{OWN_WALLET}/holds");
        let response = app
            .send_as(admin.as_deref(), Method::POST, &path, Some(body))
            .await;
        assert_eq!(response.status(), 201);
    }
}

#[tokio::test]
async fn every_endpoint_answers_every_caller_as_the_rules_say_and_refusals_change_nothing() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    place_holds(&app).await;
    let callers = callers();
    for endpoint in endpoints() {
        for (index, caller) in callers.iter().enumerate() {
            let expected = match index.checked_sub(UNAUTHENTICATED_CALLERS) {
                None => 401,
                Some(authenticated) => endpoint.expected[authenticated],
            };
            let before = app.snapshot().await;
            let response = app
                .send_as(
                    caller.authorization.as_deref(),
                    endpoint.method.clone(),
                    endpoint.path,
                    endpoint
                        .body
                        .map(|body| body(&caller.name.replace(' ', "-"))),
                )
                .await;
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(
                status, expected,
                "{} {} as {}: {body}",
                endpoint.method, endpoint.path, caller.name
            );
            if status >= 400 {
                let message = error_message(&body, status);
                assert_eq!(
                    app.snapshot().await,
                    before,
                    "{} {} as {} changed something",
                    endpoint.method,
                    endpoint.path,
                    caller.name
                );
                if status == 401 {
                    assert!(
                        challenge
                            .as_deref()
                            .is_some_and(|value| value.starts_with("Bearer")),
                        "{challenge:?}"
                    );
                    let expected_words = unauthenticated_message(caller.name);
                    assert!(
                        message.contains(expected_words),
                        "{} says {message:?}",
                        caller.name
                    );
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wallet_of_someone_else_answers_exactly_as_an_unknown_one() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let bob = bearer(token(OTHER, "wallets"));
    for (method, path, body) in [
        (Method::GET, "/wallets/{id}", None),
        (
            Method::POST,
            "/wallets/{id}/debit",
            Some(json!({"amount": 1})),
        ),
        (
            Method::POST,
            "/wallets/{id}/transfer",
            Some(json!({"toWalletId": OTHER_WALLET, "amount": 1})),
        ),
        (Method::GET, "/ledger/wallet/{id}/summary", None),
    ] {
        let mut answers = Vec::new();
        for id in [OWN_WALLET, "no-such-w"] {
            let response = app
                .send_as(
                    bob.as_deref(),
                    method.clone(),
                    &path.replace("{id}", id),
                    body.clone(),
                )
                .await;
            let (status, body) = json_of(response).await;
            answers.push((status, body.to_string().replace(id, "{id}")));
        }
        assert_eq!(answers[0], answers[1], "{method} {path}");
        assert_eq!(answers[0].0, 404);
    }
    app.stop().await;
}

/// A reply shows whole only the wallets its caller may read: a transfer to
/// another owner shows the payee by its id (first answer and key replay,
/// atomic path), a gateway's credit and creation show the wallet's id, and an
/// admin sees everything.
#[tokio::test]
async fn a_reply_shows_no_wallet_its_caller_may_not_read() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let alice = bearer(token(OWNER, "wallets"));
    let transfer = json!({"toWalletId": OTHER_WALLET, "amount": 1.5});
    let path = format!("/wallets/{OWN_WALLET}/transfer");
    for attempt in ["first", "replay"] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .header("Authorization", alice.as_deref().expect("token"))
            .header("Idempotency-Key", "alice-pays-bob")
            .json(&transfer)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 201, "{attempt}: {body}");
        assert_eq!(body["toWallet"], json!({"id": OTHER_WALLET}), "{attempt}");
        assert!(body["transferId"].is_string(), "{attempt}: the id is kept");
        assert_eq!(body["fromWallet"]["id"], OWN_WALLET, "{attempt}");
        assert_eq!(
            body["fromWallet"]["balance"].to_string(),
            "98.50",
            "{attempt}"
        );
    }

    let gateway = bearer(token("gateway", "deposits"));
    let credit = app
        .send_as(
            gateway.as_deref(),
            Method::POST,
            &format!("/wallets/{OTHER_WALLET}/credit"),
            Some(json!({"amount": 10})),
        )
        .await;
    let (status, body) = json_of(credit).await;
    assert_eq!((status, body), (201, json!({"id": OTHER_WALLET})));
    let created = app
        .send_as(
            gateway.as_deref(),
            Method::POST,
            "/wallets",
            Some(json!({"walletId": "carol-w", "ownerId": "carol", "initialBalance": 5})),
        )
        .await;
    let (status, body) = json_of(created).await;
    assert_eq!((status, body), (201, json!({"id": "carol-w"})));

    let admin = bearer(token("ops", "admin"));
    let response = app
        .send_as(admin.as_deref(), Method::POST, &path, Some(transfer))
        .await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201);
    assert_eq!(body["toWallet"]["ownerId"], OTHER);
    assert_eq!(body["toWallet"]["balance"].to_string(), "113.00");
    app.stop().await;
}

#[tokio::test]
async fn an_end_user_opens_only_empty_wallets_of_its_own_and_lists_only_its_own() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let alice = bearer(token(OWNER, "wallets"));
    let create = |id: &str, owner: &str, opening: Value| json!({"walletId": id, "ownerId": owner, "initialBalance": opening});
    for (body, expected) in [
        (create("a2", OWNER, json!(5)), StatusCode::FORBIDDEN),
        (create("a3", OTHER, json!(0)), StatusCode::FORBIDDEN),
        (create("a4", OWNER, json!(0)), StatusCode::CREATED),
    ] {
        let response = app
            .send_as(alice.as_deref(), Method::POST, "/wallets", Some(body))
            .await;
        assert_eq!(response.status(), expected);
    }
    let (status, listed) = json_of(
        app.send_as(alice.as_deref(), Method::GET, "/wallets", None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|wallet| wallet["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["a4", OWN_WALLET]);
    let (_, others) = json_of(
        app.send_as(alice.as_deref(), Method::GET, "/wallets?ownerId=bob", None)
            .await,
    )
    .await;
    assert_eq!(others, json!([]));
    let (_, search) = json_of(
        app.send_as(
            alice.as_deref(),
            Method::GET,
            "/transactions?walletId=bob-w",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(search["count"], 0, "{search}");
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_per_principal_and_admins_see_who_moved_the_money() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let credit = |authorization: Option<String>| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/wallets/{OWN_WALLET}/credit", app.address))
                .header("Authorization", authorization.expect("token"))
                .header("Idempotency-Key", "same-key")
                .json(&json!({"amount": 7}))
                .send()
                .await
                .expect("sent")
        }
    };
    let gateway = bearer(token("gateway", "deposits"));
    let ops = bearer(token("ops", "admin"));
    let first = credit(gateway.clone()).await;
    assert_eq!(first.status(), 201);
    let second = credit(ops.clone()).await;
    assert_eq!(second.status(), 201);
    assert!(second.headers().get("idempotent-replayed").is_none());
    let replay = credit(gateway.clone()).await;
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|value| value.as_bytes()),
        Some(&b"true"[..])
    );
    let reused = app
        .client
        .post(format!("{}/wallets/{OWN_WALLET}/credit", app.address))
        .header("Authorization", gateway.clone().expect("token"))
        .header("Idempotency-Key", "same-key")
        .json(&json!({"amount": 8}))
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(reused).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["message"], "Idempotency-Key \"same-key\" was already used for a different request",
        "the key as sent, not as stored with its principal"
    );
    let (_, wallet) = json_of(
        app.send_as(ops.as_deref(), Method::GET, "/wallets/alice-w", None)
            .await,
    )
    .await;
    assert_eq!(
        wallet["balance"].to_string(),
        "114.00",
        "two keys, two credits"
    );

    let history = |authorization: Option<String>| {
        let app = &app;
        async move {
            let response = app
                .send_as(
                    authorization.as_deref(),
                    Method::GET,
                    "/wallets/alice-w/transactions",
                    None,
                )
                .await;
            json_of(response).await.1
        }
    };
    let seen_by_admin = history(ops.clone()).await;
    let principals: Vec<&Value> = seen_by_admin["transactions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|transaction| &transaction["principal"])
        .collect();
    assert_eq!(
        principals,
        [&json!("ops"), &json!("gateway"), &json!("gateway")],
        "{seen_by_admin}"
    );
    let seen_by_owner = history(bearer(token(OWNER, "wallets"))).await;
    assert!(
        !seen_by_owner.to_string().contains("principal"),
        "{seen_by_owner}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_principal_over_its_rate_is_told_to_wait_and_others_are_not() {
    let app = spawn_auth_app(1, 2).await;
    let alice = bearer(token(OWNER, "wallets"));
    for _ in 0..2 {
        let response = app
            .send_as(alice.as_deref(), Method::GET, "/wallets", None)
            .await;
        assert_eq!(response.status(), 200);
    }
    let limited = app
        .send_as(alice.as_deref(), Method::GET, "/wallets", None)
        .await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let (status, body) = json_of(limited).await;
    error_message(&body, status);
    let bob = bearer(token(OTHER, "wallets"));
    let response = app
        .send_as(bob.as_deref(), Method::GET, "/wallets", None)
        .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn probes_metrics_and_documents_stay_open_and_the_document_says_who_may_call() {
    let app = spawn_auth_app(RATE_UNLIMITED, RATE_UNLIMITED).await;
    for path in [
        "/",
        "/health",
        "/metrics",
        "/openapi.json",
        "/health/kafka/stats",
        "/ledger/health",
        "/integration/health",
        "/users/health",
    ] {
        let response = app.get(path).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
    }
    let (_, document) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    assert_eq!(
        document["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let secured = operation["security"][0].get("bearerAuth").is_some();
            let open = path.starts_with("/health")
                || ["/ledger/health", "/integration/health", "/users/health"]
                    .contains(&path.as_str())
                || path == "/metrics"
                || path == "/";
            assert_eq!(secured, !open, "{method} {path}");
            if secured {
                for status in ["401", "403", "429"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_key_file_verifies_its_algorithms_and_a_rotation_takes_effect_while_serving() {
    let folder = tempfile::tempdir().expect("tempdir");
    let key_file = folder.path().join("keys.pem");
    std::fs::write(
        &key_file,
        include_str!("../../../identity/testdata/rsa_public.pem"),
    )
    .expect("write the key file");
    let app = spawn_app_with_key_file(&key_file).await;
    let operator = claims("ops", "admin");
    let signed = |algorithm, private: &str| {
        bearer(mint_with_pem(algorithm, private.as_bytes(), None, &operator).expect("mint"))
    };
    let rsa = signed(
        Algorithm::RS256,
        include_str!("../../../identity/testdata/rsa_private.pem"),
    );
    let ed = signed(
        Algorithm::EdDSA,
        include_str!("../../../identity/testdata/ed_private.pem"),
    );
    let status = |authorization: Option<String>| {
        let app = &app;
        async move {
            app.send_as(
                authorization.as_deref(),
                Method::GET,
                "/ledger/verify",
                None,
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(status(rsa.clone()).await, 200);
    assert_eq!(status(ed.clone()).await, 401, "no EdDSA key yet");

    std::fs::write(
        &key_file,
        include_str!("../../../identity/testdata/ed_public.pem"),
    )
    .expect("rotate the key file");
    tokio::time::sleep(Duration::from_millis(
        identity::KEY_FILE_CHECK_INTERVAL_MS + 300,
    ))
    .await;
    assert_eq!(
        status(ed.clone()).await,
        200,
        "the new key is read without a restart"
    );
    assert_eq!(status(rsa).await, 401, "the old key is gone");
    let key_file_health = || async {
        let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
        assert_eq!(status, 200, "{health}");
        (
            health["status"].clone(),
            health["authentication"]["keyFile"].clone(),
        )
    };
    assert_eq!(
        key_file_health().await,
        (json!("ok"), json!({"status": "ok"}))
    );

    // A change caught half written is refused whole: the keys in use stay,
    // and /health says the file is not what verifies.
    let whole = include_str!("../../../identity/testdata/rsa_public.pem");
    std::fs::write(&key_file, &whole[..whole.len() / 2]).expect("break the key file");
    tokio::time::sleep(Duration::from_millis(
        identity::KEY_FILE_CHECK_INTERVAL_MS + 300,
    ))
    .await;
    assert_eq!(status(ed).await, 200, "the keys in use stay");
    let (health_status, key_file_status) = key_file_health().await;
    assert_eq!(health_status, "degraded");
    assert_eq!(key_file_status["status"], "stale", "{key_file_status}");
    assert!(
        key_file_status["error"]
            .as_str()
            .is_some_and(|error| error.contains("without its END")),
        "{key_file_status}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_undocumented_query_parameter_is_refused_only_once_the_caller_is_admitted() {
    let app = app_with_two_owners(RATE_UNLIMITED, RATE_UNLIMITED).await;
    let path = format!("/wallets/{OWN_WALLET}/transactions?after=5");
    for anonymous in [None, Some("Bearer garbage")] {
        let response = app.send_as(anonymous, Method::GET, &path, None).await;
        assert_eq!(response.status(), 401, "{anonymous:?}");
    }
    let owner = bearer(token(OWNER, "wallets"));
    let (status, body) = json_of(
        app.send_as(owner.as_deref(), Method::GET, &path, None)
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("query parameter \"after\"")),
        "{body}"
    );
    app.stop().await;
}
