//! An event of a schema version this build cannot read (written by a newer
//! build, then a downgrade) is parked by the ledger, read model and search
//! index relays; the others flow, `/health` and `/metrics` say so, and
//! `replay-dead-letters` hands the parked events back once they read.

use std::path::Path;
use std::time::Duration;

use command_api::config::{ReplayDeadLettersArgs, DEAD_LETTER_REPLAY_LIMIT_DEFAULT};
use command_api::Config;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{json_of, spawn_app, spawn_app_in, TestApp};

/// How long the relays get to park the newer event, in milliseconds.
const PARKED_WAIT_MS: u64 = 10_000;
const POLL_INTERVAL_MS: u64 = 50;
const SINKS: usize = 3;

/// Appends `payload` to the log as wallet `w-newer`'s first event.
fn write_raw(data_dir: &Path, payload: &str, event_id: Uuid) {
    let connection = rusqlite::Connection::open(data_dir.join("events.db")).expect("open the log");
    connection
        .execute(
            "INSERT INTO events (event_id, stream_id, version, event_type, payload, recorded_at) \
             VALUES (?1, 'w-newer', 1, 'WalletCreated', ?2, '2026-11-30T12:00:00Z')",
            rusqlite::params![event_id.to_string(), payload],
        )
        .expect("write the newer event");
}

/// The JSON of the first event of `stream_id` as stored (compressed by the
/// server, `event_store::embedded_payload`).
fn stored_payload(data_dir: &Path, stream_id: &str) -> String {
    let connection = rusqlite::Connection::open(data_dir.join("events.db")).expect("open the log");
    connection
        .query_row(
            "SELECT payload FROM events WHERE stream_id = ?1 AND version = 1",
            [stream_id],
            |row| Ok(event_store::embedded_payload::json(row.get_ref(0)?)),
        )
        .expect("a stored creation")
        .expect("a payload the server wrote")
}

async fn health(app: &TestApp) -> Value {
    json_of(app.get("/health").send().await.expect("sent"))
        .await
        .1
}

async fn wait_for_parked(app: &TestApp, parked: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(PARKED_WAIT_MS);
    loop {
        let report = health(app).await;
        if report["deadLetters"]["parked"] == json!(parked) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {parked} parked within {PARKED_WAIT_MS} ms: {report}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

#[tokio::test]
async fn a_newer_schema_version_is_parked_by_every_sink_shown_in_health_and_replayed_once_it_reads()
{
    let app = spawn_app().await;
    let data_dir = app.data_dir.clone();
    app.create_wallet("b", "o", json!(10)).await;
    let temp = app.stop().await;
    let payload_v1 = stored_payload(&data_dir, "b");
    let event_id = Uuid::now_v7();
    let readable = payload_v1
        .replace(r#""walletId":"b""#, r#""walletId":"w-newer""#)
        .replace(&event_id_of(&payload_v1), &event_id.to_string());
    let newer = readable.replace(r#""schemaVersion":1"#, r#""schemaVersion":2"#);
    assert_ne!(
        newer, payload_v1,
        "the payload names its version and wallet"
    );
    write_raw(&data_dir, &newer, event_id);

    let app = spawn_app_in(&data_dir).await;
    app.credit("b", json!(5)).await;
    let report = wait_for_parked(&app, SINKS as u64).await;
    assert_eq!(
        report["status"], "degraded",
        "events wait for an operator (commands are still taken)"
    );
    assert_eq!(
        report["deadLetters"],
        json!({
            "status": "degraded",
            "parked": SINKS,
            "sinks": { "ledger": 1, "read-model": 1, "search-index": 1 },
        })
    );
    assert_eq!(app.balance_text("b").await, "15.00", "wallet b flows");
    let metrics = app.metrics().await;
    for sink in ["ledger", "read-model", "search-index"] {
        for line in [
            format!("wallex_relay_dead_letters{{sink=\"{sink}\"}} 1"),
            format!("wallex_relay_dead_lettered_total{{sink=\"{sink}\"}} 1"),
        ] {
            assert!(metrics.contains(&line), "{line} in:\n{metrics}");
        }
    }
    app.stop().await;

    let config = Config::embedded_for_test(data_dir.clone());
    let args = ReplayDeadLettersArgs {
        sink: None,
        limit: DEAD_LETTER_REPLAY_LIMIT_DEFAULT,
    };
    let refused = command_api::dead_letters::replay(&config, &args)
        .await
        .expect("replayed");
    assert!(
        refused
            .iter()
            .all(|(_, outcome)| (outcome.replayed, outcome.still_parked) == (0, 1)),
        "still unreadable, still parked: {refused:?}"
    );

    // What a newer build reads: the parked copy rewritten in version 1.
    let dead_letters =
        rusqlite::Connection::open(data_dir.join("dead_letters.db")).expect("open dead letters");
    dead_letters
        .execute("UPDATE dead_letters SET payload = ?1", [&readable])
        .expect("rewrite");
    let replayed = command_api::dead_letters::replay(&config, &args)
        .await
        .expect("replayed");
    let sinks: Vec<_> = replayed
        .iter()
        .map(|(sink, outcome)| (*sink, outcome.replayed, outcome.still_parked))
        .collect();
    assert_eq!(
        sinks,
        [
            ("ledger", 1, 0),
            ("read-model", 1, 0),
            ("search-index", 1, 0)
        ]
    );

    let app = spawn_app_in(&data_dir).await;
    let report = health(&app).await;
    assert_eq!(
        report["deadLetters"],
        json!({ "status": "ok", "parked": 0, "sinks": {} })
    );
    // The read model has it now (the event store still holds the unreadable bytes).
    let (_, list) = json_of(app.get("/wallets").send().await.expect("sent")).await;
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|wallet| wallet["id"].as_str())
        .collect();
    assert!(ids.contains(&"w-newer"), "{list}");
    app.stop().await;
    drop(temp);
}

fn event_id_of(payload: &str) -> String {
    let value: Value = serde_json::from_str(payload).expect("JSON");
    value["eventId"].as_str().expect("an event id").to_owned()
}

/// A replay beside a running server changes no schema of its folder: a file
/// older than this build's (as a server of an earlier version left it) is
/// refused, named, and left as it is.
#[tokio::test]
async fn a_replay_beside_a_running_server_migrates_nothing() {
    let folder = tempfile::tempdir().expect("a data folder");
    let app = spawn_app_in(folder.path()).await;
    let search_index = rusqlite::Connection::open(folder.path().join("search_index.db"))
        .expect("open the search index");
    let current: i64 = search_index
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("schema version");
    search_index
        .pragma_update(None, "user_version", current - 1)
        .expect("an earlier schema version");

    let config = Config::embedded_for_test(folder.path().to_path_buf());
    let args = ReplayDeadLettersArgs {
        sink: None,
        limit: DEAD_LETTER_REPLAY_LIMIT_DEFAULT,
    };
    let refused = command_api::dead_letters::replay(&config, &args).await;
    let message = refused
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(message.contains("older than this build's"), "{message}");
    let after: i64 = search_index
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("schema version");
    assert_eq!(after, current - 1, "left as it was");
    app.stop().await;
}

#[tokio::test]
async fn an_event_a_constraint_of_the_ledger_refuses_is_parked_not_retried_for_ever() {
    // h142 F3: a UNIQUE index added to ledger.db refused wallet `bad`'s
    // second credit; the batch was retried without end, the ledger stopped
    // for every wallet, and `/health` said ok.
    let app = spawn_app().await;
    let data_dir = app.data_dir.clone();
    app.create_wallet("bad", "o", json!(10)).await;
    let temp = app.stop().await;
    let ledger = rusqlite::Connection::open(data_dir.join("ledger.db")).expect("open the ledger");
    ledger
        .execute_batch(
            "CREATE UNIQUE INDEX one_credit ON ledger_transactions(wallet_id, transaction_type) \
             WHERE wallet_id = 'bad' AND transaction_type = 'CREDIT';",
        )
        .expect("an index no build makes");
    drop(ledger);

    let app = spawn_app_in(&data_dir).await;
    app.create_wallet("good", "o", json!(10)).await;
    for _ in 0..2 {
        assert_eq!(app.credit("bad", json!(1)).await.status(), 201);
    }
    assert_eq!(app.credit("good", json!(1)).await.status(), 201);
    let report = wait_for_parked(&app, 1).await;
    assert_eq!(report["deadLetters"]["status"], "degraded", "{report}");
    assert_eq!(report["status"], "degraded", "{report}");
    assert_eq!(
        report["deadLetters"]["sinks"],
        json!({"ledger": 1}),
        "{report}"
    );
    // The other wallets flow: the ledger has good's credit.
    let (status, entries) =
        json_of(app.get("/ledger/wallet/good").send().await.expect("sent")).await;
    assert_eq!(status, 200, "{entries}");
    assert_eq!(entries["count"], 2, "{entries}");
    app.stop().await;
    drop(temp);
}
