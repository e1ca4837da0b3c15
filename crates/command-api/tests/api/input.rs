//! Every input read exactly or refused with a 400 naming the field: numbers
//! in every notation, repeated keys, control characters in text and headers;
//! a body that does not arrive is a 408.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    answer_to_raw, error_message, json_of, spawn_app, spawn_app_with_body_read_timeout,
};

/// The body read limit of the 408 test's server, in seconds.
const TEST_BODY_READ_TIMEOUT_SECONDS: u64 = 1;
/// How stale actix-web's cached clock, which its timers read, may be, in
/// milliseconds (its date service refreshes it every 500 ms).
const HTTP_CLOCK_RESOLUTION_MS: u64 = 500;
/// What the 408 test allows beyond that limit for the answer, in seconds.
const BODY_TIMEOUT_SLACK_SECONDS: u64 = 3;

#[track_caller]
fn assert_refused(outcome: &(u16, serde_json::Value), needle: &str) {
    let (status, body) = outcome;
    assert_eq!(*status, 400, "{body}");
    let message = error_message(body, 400);
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

#[tokio::test]
async fn numbers_in_exponent_form_are_read_exactly_never_rounded() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(0)).await;
    let credit = "/wallets/w/credit";
    let (status, body) = app
        .post_raw(credit, r#"{"amount": 0.000000000000000000000000000149e28}"#)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["balance"].to_string(), "1.49");
    let (status, body) = app
        .post_raw(credit, r#"{"amount": 0.00000000000000000000000000999e28}"#)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["balance"].to_string(),
        "101.39",
        "99.9 exactly, not 100"
    );
    for (text, needle) in [
        (
            r#"{"amount": 0.00000000000000000000000001001e26}"#,
            "amount must have at most 2 decimal places",
        ),
        (
            r#"{"amount": 1.001E0}"#,
            "amount must have at most 2 decimal places",
        ),
        (
            r#"{"amount": 1e-40}"#,
            "amount has more than 28 decimal places",
        ),
        (
            r#"{"amount": 1e400}"#,
            "amount has more than 29 significant digits or is too large",
        ),
    ] {
        assert_refused(&app.post_raw(credit, text).await, needle);
    }
    let (status, body) = app
        .post_raw(
            "/wallets",
            r#"{"walletId": "x", "ownerId": "o", "initialBalance": 125E-2}"#,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["balance"].to_string(), "1.25");
    assert_eq!(app.balance_text("w").await, "101.39");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_key_is_refused_on_every_endpoint_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.create_wallet("v", "o", json!(0)).await;
    for (path, body) in [
        ("/wallets/w/debit", r#"{"amount": 1, "amount": 90}"#),
        (
            "/wallets/w/credit",
            r#"{"amount": 1, "description": "a", "description": "b"}"#,
        ),
        (
            "/wallets/w/transfer",
            r#"{"toWalletId": "v", "amount": 1, "amount": 2}"#,
        ),
    ] {
        assert_refused(&app.post_raw(path, body).await, "property ");
    }
    let outcome = app
        .post_raw(
            "/wallets",
            r#"{"walletId": "a", "walletId": "b", "ownerId": "o"}"#,
        )
        .await;
    assert_refused(&outcome, "property walletId is repeated");
    assert_refused(
        &app.post_raw("/wallets/w/debit", r#"{"amount": 1, "amount": 90}"#)
            .await,
        "property amount is repeated",
    );
    assert_eq!(app.wallet("a").await.status(), 404);
    assert_eq!(app.wallet("b").await.status(), 404);
    assert_eq!(app.balance_text("w").await, "100.00");
    assert_eq!(app.balance_text("v").await, "0.00");
    app.stop().await;
}

/// `serde_json` reads an object keyed `$serde_json::private::…` as a number or
/// as JSON text: such a key would carry a repeated key, or an object standing
/// for a number or a string, past every check.
#[tokio::test]
async fn a_key_the_parser_reserves_is_refused_on_every_endpoint_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(100)).await;
    app.create_wallet("v", "o", json!(0)).await;
    let hold = app
        .post_raw("/wallets/w/holds", r#"{"amount": 5, "holdId": "h1"}"#)
        .await;
    assert_eq!(hold.0, 201, "{}", hold.1);
    for (path, body) in [
        (
            "/wallets/w/credit",
            r#"{"$serde_json::private::RawValue": "{\"amount\":1,\"amount\":900}"}"#,
        ),
        (
            "/wallets/w/credit",
            r#"{"amount": {"$serde_json::private::Number": "2.50"}}"#,
        ),
        (
            "/wallets/w/debit",
            r#"{"amount": {"\u0024serde_json::private::Number": "2"}}"#,
        ),
        (
            "/wallets/w/transfer",
            r#"{"toWalletId": {"$serde_json::private::RawValue": "\"v\""}, "amount": 1}"#,
        ),
        (
            "/wallets",
            r#"{"walletId": {"$serde_json::private::RawValue": "\"x\""}, "ownerId": "o"}"#,
        ),
        (
            "/wallets/w/holds",
            r#"{"amount": {"$serde_json::private::Number": "1"}}"#,
        ),
        (
            "/holds/h1/capture",
            r#"{"amount": {"$serde_json::private::Number": "1"}}"#,
        ),
        (
            "/holds/h1/void",
            r#"{"$serde_json::private::RawValue": "{}"}"#,
        ),
        (
            "/wallets/w/freeze",
            r#"{"$serde_json::private::RawValue": "{}"}"#,
        ),
    ] {
        assert_refused(
            &app.post_raw(path, body).await,
            "should not exist: keys starting with $serde_json::private:: are reserved",
        );
    }
    assert_eq!(app.wallet("x").await.status(), 404);
    assert_eq!(app.balance_text("w").await, "100.00");
    assert_eq!(app.balance_text("v").await, "0.00");
    let (status, hold) = json_of(app.get("/holds/h1").send().await.expect("sent")).await;
    assert_eq!((status, hold["status"].as_str()), (200, Some("PENDING")));
    app.stop().await;
}

#[tokio::test]
async fn control_characters_in_text_and_headers_are_refused_by_name() {
    let app = spawn_app().await;
    app.create_wallet("w", "o", json!(10)).await;
    for description in [
        "a\u{0}b",
        "line\nbreak",
        "bell\u{7}",
        "pay\u{202E}evil\u{202C}",
        "one\u{2028}line",
    ] {
        let body = json!({"amount": 1, "description": description}).to_string();
        assert_refused(
            &app.post_raw("/wallets/w/credit", &body).await,
            "description must not contain control characters",
        );
    }
    let body = json!({"walletId": "a\u{0}", "ownerId": "o"}).to_string();
    assert_refused(&app.post_raw("/wallets", &body).await, "walletId");
    let body = json!({"walletId": "a", "ownerId": "o\u{1}"}).to_string();
    assert_refused(&app.post_raw("/wallets", &body).await, "ownerId");

    let credit = |header: &'static str, value: &'static str| {
        app.post("/wallets/w/credit")
            .header(header, value)
            .json(&json!({"amount": 1}))
            .send()
    };
    let (status, body) = json_of(credit("X-Correlation-Id", "a b").await.expect("sent")).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, 400).contains("X-Correlation-Id"));
    let (status, body) = json_of(credit("Idempotency-Key", "a\tb").await.expect("sent")).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body, 400).contains("Idempotency-Key"));
    assert_eq!(app.balance_text("w").await, "10.00", "nothing was applied");
    assert_eq!(app.wallet("a").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn ids_in_the_path_follow_the_id_rules_and_each_message_names_its_field() {
    let app = spawn_app().await;
    app.create_wallet("w1", "o1", json!(10)).await;
    for (method, path) in [
        ("GET", "/wallets/a%00b"),
        ("GET", "/wallets/a%20b/transactions"),
        ("GET", "/ledger/wallet/%C3%A9"),
        ("GET", "/ledger/wallet/a%01b/summary"),
        ("POST", "/wallets/a%00b/credit"),
    ] {
        let request = match method {
            "GET" => app.client.get(format!("{}{path}", app.address)),
            _ => app
                .client
                .post(format!("{}{path}", app.address))
                .json(&json!({"amount": 1})),
        };
        let (status, body) = json_of(request.send().await.expect("sent")).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert!(
            error_message(&body, 400).starts_with("walletId "),
            "{path}: {body}"
        );
    }
    let (status, body) = json_of(
        app.client
            .get(format!("{}/ledger/reference/a%00b", app.address))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body, 400).starts_with("referenceId "));
    let (status, body) = app
        .post_raw("/wallets/w1/transfer", r#"{"toWalletId":"a b","amount":1}"#)
        .await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body, 400).starts_with("toWalletId "),
        "{body}"
    );
    let (_, wallet) = json_of(app.get("/wallets/w1").send().await.expect("sent")).await;
    assert_eq!(
        (wallet["balance"].to_string(), wallet["version"].to_string()),
        ("10.00".to_owned(), "1".to_owned())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_declared_as_anything_but_json_or_in_a_content_coding_is_refused_and_changes_nothing(
) {
    let app = spawn_app().await;
    app.create_wallet("w1", "o1", json!(10)).await;
    for content_type in [
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
    ] {
        let response = app
            .post("/wallets/w1/debit")
            .header("content-type", content_type)
            .body(r#"{"amount": 1}"#)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 415, "{content_type}: {body}");
        assert!(error_message(&body, 415).contains("application/json"));
    }
    for coding in ["br", "zstd", "compress", "gzip, gzip", "gzip, deflate"] {
        let response = app
            .post("/wallets/w1/debit")
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(gzip(br#"{"amount": 1}"#))
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 415, "{coding}: {body}");
        assert!(error_message(&body, 415).contains("Content-Encoding"));
    }
    let (status, _) = app.post_raw("/wallets/w1/debit", r#"{"amount": 1}"#).await;
    assert_eq!(status, 201);
    let (_, wallet) = json_of(app.get("/wallets/w1").send().await.expect("sent")).await;
    assert_eq!(wallet["version"].to_string(), "2");
    // A parameter JSON does not define is passed over, as the seed's parser
    // did (h152 F6); a charset is still held to UTF-8.
    let response = app
        .post("/wallets/w1/debit")
        .header("content-type", "application/json; foo=bar")
        .body(r#"{"amount": 1}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    app.stop().await;
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain).expect("in memory");
    encoder.finish().expect("in memory")
}

fn zlib(plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain).expect("in memory");
    encoder.finish().expect("in memory")
}

#[tokio::test]
async fn a_body_in_gzip_or_deflate_is_read_decoded_within_the_size_limit() {
    let app = spawn_app().await;
    app.create_wallet("w1", "o1", json!(10)).await;
    let send = |coding: &'static str, body: Vec<u8>| {
        app.post("/wallets/w1/debit")
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(body)
            .send()
    };
    let (status, body) = json_of(
        send("gzip", gzip(br#"{"amount": 1.25}"#))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "8.75".into()),
        "{body}"
    );
    let (status, body) = json_of(
        send("Deflate", zlib(br#"{"amount": 0.75}"#))
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "8.00".into()),
        "{body}"
    );
    // Small as sent, over the limit once decoded: 413, as a plain one would be.
    let mut padded = br#"{"amount": 1,"description": "x""#.to_vec();
    padded.extend(std::iter::repeat_n(b' ', 70 * 1024));
    padded.push(b'}');
    let (status, body) = json_of(send("gzip", gzip(&padded)).await.expect("sent")).await;
    assert_eq!(status, 413, "{body}");
    // Two members are one body, as every gzip reader reads them; bytes after
    // the last member or the zlib stream are refused.
    let mut members = gzip(br#"{"amount": "#);
    members.extend(gzip(b"0.50}"));
    let (status, body) = json_of(send("gzip", members).await.expect("sent")).await;
    assert_eq!(
        (status, body["balance"].to_string()),
        (201, "7.50".into()),
        "{body}"
    );
    for (coding, mut trailed) in [
        ("gzip", gzip(br#"{"amount": 1}"#)),
        ("deflate", zlib(br#"{"amount": 1}"#)),
    ] {
        trailed.extend(b"{}");
        let (status, body) = json_of(send(coding, trailed).await.expect("sent")).await;
        assert_eq!(status, 400, "{coding}: {body}");
        assert!(
            error_message(&body, 400).ends_with("2 bytes follow the end of the coded data"),
            "{coding}: {body}"
        );
    }
    // Not what it says it is.
    let (status, body) = json_of(
        send("gzip", br#"{"amount": 1}"#.to_vec())
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body, 400).ends_with(
            "Content-Encoding: it is not gzip data (a gzip member begins with the bytes 1F 8B)"
        ),
        "{body}"
    );
    let (_, wallet) = json_of(app.get("/wallets/w1").send().await.expect("sent")).await;
    assert_eq!(wallet["version"].to_string(), "4");
    app.stop().await;
}

#[tokio::test]
async fn a_byte_order_mark_before_the_json_is_ignored() {
    let app = spawn_app().await;
    app.create_wallet("w1", "o1", json!(10)).await;
    let response = app
        .post("/wallets/w1/debit")
        .header("content-type", "application/json")
        .body(b"\xEF\xBB\xBF{\"amount\": 1.50}".to_vec())
        .send()
        .await
        .expect("sent");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["balance"].to_string(), "8.50", "{body}");
    // Only one, and only before the text.
    for sent in [
        b"\xEF\xBB\xBF\xEF\xBB\xBF{\"amount\": 1}".to_vec(),
        b"{\"amount\": 1}\xEF\xBB\xBF".to_vec(),
    ] {
        let response = app
            .post("/wallets/w1/debit")
            .header("content-type", "application/json")
            .body(sent)
            .send()
            .await
            .expect("sent");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 400, "{body}");
    }
    let (_, wallet) = json_of(app.get("/wallets/w1").send().await.expect("sent")).await;
    assert_eq!(wallet["version"].to_string(), "2");
    app.stop().await;
}

#[tokio::test]
async fn a_head_that_does_not_all_arrive_is_a_408_and_the_connection_is_closed() {
    let app = spawn_app().await;
    let timeout = Duration::from_millis(command_api::http::HEAD_READ_TIMEOUT_MS);
    // The request line and one header, never the blank line that ends a head.
    let (answer, took) = answer_to_raw(
        &app.address,
        |authority| format!("GET /health HTTP/1.1\r\nHost: {authority}\r\n"),
        timeout + Duration::from_secs(BODY_TIMEOUT_SLACK_SECONDS),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // actix-web's timers read a clock it refreshes every 500 ms, so the
    // deadline may fall up to that much early.
    assert!(
        took + Duration::from_millis(HTTP_CLOCK_RESOLUTION_MS) >= timeout,
        "answered after {took:?}, well before the limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_head_of_too_many_headers_is_the_documented_431() {
    let app = spawn_app().await;
    let extra: String = (0..100).map(|n| format!("X-Extra-{n}: {n}\r\n")).collect();
    let (answer, _) = answer_to_raw(
        &app.address,
        |authority| format!("GET /health HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n"),
        Duration::from_secs(BODY_TIMEOUT_SLACK_SECONDS),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let (_, document) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    assert!(document["paths"]["/health"]["get"]["responses"]["431"].is_object());
    app.stop().await;
}

/// A request's bytes, made from the server's authority (`host:port`).
type RawRequest = fn(&str) -> String;

#[tokio::test]
async fn a_request_that_is_not_well_formed_http_is_the_documented_bodiless_400() {
    let app = spawn_app().await;
    let malformed: [(&str, RawRequest); 6] = [
        ("no Host", |_| "GET /health HTTP/1.1\r\n\r\n".to_owned()),
        ("two framings", |authority| {
            let body = r#"{"walletId":"framed","ownerId":"o1"}"#;
            format!(
                "POST /wallets HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }),
        ("a header without a colon", |authority| {
            format!("GET /health HTTP/1.1\r\nHost: {authority}\r\nNoColon\r\n\r\n")
        }),
        // Bytes RFC 3986 has percent-encoded, sent as they are (curl sends
        // what it is given); `?q=caf%C3%A9` is the same query, and is served.
        ("UTF-8 unencoded in the query", |authority| {
            format!("GET /transactions?q=caf\u{e9} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
        }),
        ("a quote unencoded in the query", |authority| {
            let body = r#"{"walletId":"quoted","ownerId":"o1"}"#;
            format!(
                "POST /wallets?src=\"x\" HTTP/1.1\r\nHost: {authority}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }),
        ("angle brackets unencoded in the path", |authority| {
            format!("GET /wallets/<w> HTTP/1.1\r\nHost: {authority}\r\n\r\n")
        }),
    ];
    for (what, request) in malformed {
        let (answer, _) = answer_to_raw(
            &app.address,
            request,
            Duration::from_secs(BODY_TIMEOUT_SLACK_SECONDS),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
    }
    // Neither the request with two framings nor the one with a quote in
    // its query created anything.
    for created in ["/wallets/framed", "/wallets/quoted"] {
        let (status, _) = json_of(app.get(created).send().await.expect("sent")).await;
        assert_eq!(status, 404, "{created}");
    }
    let (status, _) = json_of(
        app.get("/transactions?q=caf%C3%A9")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200);
    let (_, document) = json_of(app.get("/openapi.json").send().await.expect("sent")).await;
    for (path, method) in [("/health", "get"), ("/wallets", "post")] {
        let description = document["paths"][path][method]["responses"]["400"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("not well-formed HTTP/1.1")
                && description.contains("unencoded in the request target"),
            "{method} {path}: {description}"
        );
    }
    app.stop().await;
}

/// Sends a request's head declaring a 100-byte body and then only `sent` of
/// it; returns all the server answered until it closed, and how long that took.
async fn answer_to_a_body_cut_short(address: &str, sent: &str) -> (String, Duration) {
    answer_to_raw(
        address,
        |authority| {
            format!(
                "POST /wallets HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{sent}"
            )
        },
        Duration::from_secs(TEST_BODY_READ_TIMEOUT_SECONDS + BODY_TIMEOUT_SLACK_SECONDS),
    )
    .await
}

/// Sends a chunked request's head to `path` and then only `sent` of its
/// body; returns all the server answered until it closed, and how long that
/// took.
async fn answer_to_a_chunked_body_cut_short(
    address: &str,
    path: &str,
    sent: &str,
) -> (String, Duration) {
    answer_to_raw(
        address,
        |authority| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{sent}"
            )
        },
        Duration::from_secs(TEST_BODY_READ_TIMEOUT_SECONDS + BODY_TIMEOUT_SLACK_SECONDS),
    )
    .await
}

#[tokio::test]
async fn a_body_that_does_not_all_arrive_is_a_408_and_the_connection_is_closed() {
    let app = spawn_app_with_body_read_timeout(TEST_BODY_READ_TIMEOUT_SECONDS).await;
    for sent in [r#"{"walletId": "w1", "own"#, ""] {
        let (answer, took) = answer_to_a_body_cut_short(&app.address, sent).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{sent:?}: {answer}");
        assert!(
            took >= Duration::from_secs(TEST_BODY_READ_TIMEOUT_SECONDS),
            "{sent:?}: answered after {took:?}, before the limit"
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["statusCode"], 408, "{body}");
        assert_eq!(body["error"], "Request Timeout", "{body}");
        assert!(
            error_message(&body, 408).contains("did not arrive"),
            "{body}"
        );
    }
    // Nothing was created, and the server still serves.
    let (status, _) = json_of(app.wallet("w1").await).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// A chunked body stalled mid-way: 408, and the connection closed after it
/// (actix-http drained a dropped chunked body without end, so the connection
/// stayed open, and served requests, after its `connection: close`). So is
/// one stalled under any answer given before the body was read.
#[tokio::test]
async fn a_chunked_body_that_does_not_all_arrive_is_a_408_and_the_connection_is_closed() {
    let app = spawn_app_with_body_read_timeout(TEST_BODY_READ_TIMEOUT_SECONDS).await;
    for sent in ["5\r\n{\"wal\r\n", "", "5\r\n{\"wal"] {
        let (answer, took) =
            answer_to_a_chunked_body_cut_short(&app.address, "/wallets", sent).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{sent:?}: {answer}");
        assert!(
            took >= Duration::from_secs(TEST_BODY_READ_TIMEOUT_SECONDS),
            "{sent:?}: answered after {took:?}, before the limit"
        );
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    }
    for path in ["/no-such-route", "/wallets/w1/credit"] {
        let (answer, _) =
            answer_to_a_chunked_body_cut_short(&app.address, path, "5\r\n{\"amo\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{path}: {answer}");
    }
    // A chunk whose size is not hexadecimal: 400 saying what the framing is.
    let (answer, _) =
        answer_to_a_chunked_body_cut_short(&app.address, "/wallets", "zz\r\n{}\r\n0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("chunked framing is invalid"), "{answer}");
    assert!(!answer.contains("None"), "{answer}");
    // A whole chunked body is read as any other.
    let whole = "18\r\n{\"walletId\": \"chunked\", \r\n10\r\n\"ownerId\": \"o1\"}\r\n0\r\n\r\n";
    let (answer, _) = answer_to_raw(
        &app.address,
        |authority| {
            format!(
                "POST /wallets HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{whole}"
            )
        },
        Duration::from_secs(BODY_TIMEOUT_SLACK_SECONDS),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    app.stop().await;
}
