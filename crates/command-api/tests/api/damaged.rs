//! A damaged event log answers 503 naming the damage and the operator it
//! needs, without `Retry-After` (h97 F5: the body said to retry); so does a
//! damaged projection file on its own routes, naming the file and the way
//! back, while wallet commands are still taken (h97 F4); a damaged transfer
//! journal or dead-letter file makes `/health` say `degraded` (h98).

use serde_json::{json, Value};

use crate::helpers::{
    error_message, json_of, spawn_app, spawn_app_in, spawn_process_app_in, TestApp,
};

#[tokio::test]
async fn a_damaged_event_log_answers_for_an_operator_and_takes_no_more_writes() {
    let app = spawn_app().await;
    let created = app.create_wallet("w-damaged", "owner", json!(100)).await;
    assert_eq!(created.status(), 201);

    // What a read that met SQLITE_CORRUPT does, through a place of the file
    // of this process's own: every place of the file shares the damage.
    let events = embedded_sqlite::ReadPool::open(&app.data_dir.join("events.db")).expect("pool");
    events
        .place()
        .mark_damaged("database disk image is malformed".into());

    let message = operator_message(app.credit("w-damaged", json!(5)).await).await;
    assert!(
        message.contains("event store's file (events.db) is damaged"),
        "{message}"
    );
    assert!(message.contains("operator"), "{message}");
    assert!(!message.to_lowercase().contains("retry"), "{message}");

    let health = app.get("/health").send().await.expect("sent");
    assert!(health.headers().get("retry-after").is_none(), "{health:?}");
    let (status, body) = json_of(health).await;
    assert_eq!(status, 503);
    assert_eq!(body["eventStore"]["status"], "down", "{body}");
    let error = body["eventStore"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("events.db is damaged"), "{body}");
    assert!(!error.to_lowercase().contains("retry"), "{body}");
    let publisher = app.get("/health/kafka").send().await.expect("sent");
    assert!(
        publisher.headers().get("retry-after").is_none(),
        "{publisher:?}"
    );
    assert_eq!(publisher.status(), 503);
    let events_path = app.data_dir.join("events.db");
    let _folder = app.stop().await;

    // The credit refused was not stored: the log holds the creation only.
    let stored: i64 = rusqlite::Connection::open(events_path)
        .expect("opened")
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("counted");
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_damaged_projection_file_answers_its_routes_for_an_operator_and_commands_go_on() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_wallet("w", "owner", json!(100)).await.status(),
        201
    );
    let routes = [
        ("ledger.db", "/ledger/wallet/w/summary"),
        ("read_model.db", "/wallets"),
        ("search_index.db", "/wallets/w/transactions"),
    ];
    for (file, _) in routes {
        mark_damaged(&app.data_dir, file);
    }

    for (file, path) in routes {
        assert_answers_damaged(&app, path, file).await;
    }

    let ledger_health = app.get("/ledger/health").send().await.expect("sent");
    assert!(ledger_health.headers().get("retry-after").is_none());
    let (status, body) = json_of(ledger_health).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("ledger.db is damaged"),
        "{body}"
    );

    commands_go_on_with_projections_down(&app, &["ledger", "readModel", "searchIndex"]).await;
    app.stop().await;
}

/// A row of a projection file that does not read back as this build writes
/// it (an amount that is not a number, a position of another type) marks
/// its file damaged, as the read model's did since h131: its routes answer
/// 503 naming the file instead of 500, `/health` reports it, commands go on,
/// and the events wait for the rebuild: none is dead-lettered.
#[tokio::test]
async fn a_projection_row_no_build_writes_marks_its_file_damaged() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_wallet("w", "owner", json!(100)).await.status(),
        201
    );
    let (status, page) = transactions_of_w(&app).await;
    assert_eq!((status, page["count"].clone()), (200, json!(1)), "{page}");
    let (status, summary) = json_of(
        app.get("/ledger/wallet/w/summary")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let edits = [
        (
            "ledger.db",
            "UPDATE ledger_entries SET amount = 'one hundred'",
            "/ledger/wallet/w/summary",
        ),
        (
            "search_index.db",
            "UPDATE search_transactions SET amount = x'00ff'",
            "/wallets/w/transactions",
        ),
    ];
    for (file, edit, _) in edits {
        rusqlite::Connection::open(app.data_dir.join(file))
            .expect("opened")
            .execute(edit, [])
            .expect(edit);
    }
    for (file, _, path) in edits {
        assert_answers_damaged(&app, path, file).await;
    }
    let health = commands_go_on_with_projections_down(&app, &["ledger", "searchIndex"]).await;
    assert_eq!(health["deadLetters"]["parked"], json!(0), "{health}");
    let directory = app.data_dir.clone();
    let temp = app.stop().await;

    // Moved out, each file is built again from the log, the credit taken
    // while it was damaged included.
    for (file, _, _) in edits {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(directory.join(format!("{file}{suffix}")));
        }
    }
    let app = spawn_app_in(&directory).await;
    let (status, page) = transactions_of_w(&app).await;
    assert_eq!((status, &page["count"]), (200, &json!(2)), "{page}");
    assert_eq!(
        page["transactions"][0]["amount"].to_string(),
        "5.00",
        "{page}"
    );
    let (status, verdict) = json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!((status, &verdict["ok"]), (200, &json!(true)), "{verdict}");
    app.stop().await;
    drop(temp);
}

/// The status and page of `GET /wallets/w/transactions`.
async fn transactions_of_w(app: &TestApp) -> (u16, Value) {
    json_of(
        app.get("/wallets/w/transactions")
            .send()
            .await
            .expect("sent"),
    )
    .await
}

/// `path` answers 503 for an operator: `file` is damaged, moving it out
/// rebuilds it, and no wait mends it (no `Retry-After`).
async fn assert_answers_damaged(app: &TestApp, path: &str, file: &str) {
    let answer = app.get(path).send().await.expect("sent");
    assert!(
        answer.headers().get("retry-after").is_none(),
        "{path}: no wait mends it: {:?}",
        answer.headers()
    );
    let (status, body) = json_of(answer).await;
    assert_eq!(status, 503, "{path}: {body}");
    let message = error_message(&body, 503);
    assert!(
        message.contains(&format!("({file}) is damaged")),
        "{path}: {message}"
    );
    assert!(
        message.contains("moves it out of the data folder"),
        "{message}"
    );
    assert!(!message.to_lowercase().contains("retry"), "{message}");
}

/// A credit of 5 to `w` (100.00) is taken while the projections `down`
/// are down, which `/health` (degraded) names; its report.
async fn commands_go_on_with_projections_down(app: &TestApp, down: &[&str]) -> Value {
    assert_eq!(app.credit("w", json!(5)).await.status(), 201);
    assert_eq!(app.balance_text("w").await, "105.00");
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("degraded")),
        "{health}"
    );
    for report in down {
        assert_eq!(health[*report]["status"], "down", "{report}: {health}");
    }
    health
}

/// Marks the data folder's `file` damaged, as a read of it that met
/// `SQLITE_CORRUPT` does (every place of the file shares the damage).
fn mark_damaged(folder: &std::path::Path, file: &str) {
    embedded_sqlite::ReadPool::open(&folder.join(file))
        .expect("pool")
        .place()
        .mark_damaged("database disk image is malformed".into());
}

/// The transfer process on a folder of its own, with wallets `a` (10.00)
/// and `b` (0.00).
async fn process_app_paying_a_to_b() -> (tempfile::TempDir, TestApp) {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    for (id, opening) in [("a", 10), ("b", 0)] {
        assert_eq!(
            app.create_wallet(id, "o", json!(opening)).await.status(),
            201
        );
    }
    (temp, app)
}

/// The transfer of 4 from `a` to `b`.
fn transfer_a_to_b(app: &TestApp) -> reqwest::RequestBuilder {
    app.post("/wallets/a/transfer")
        .json(&json!({"toWalletId": "b", "amount": 4}))
}

/// The message of `response`, a 503 for an operator: no `Retry-After`.
async fn operator_message(response: reqwest::Response) -> String {
    assert!(
        response.headers().get("retry-after").is_none(),
        "no wait mends it: {:?}",
        response.headers()
    );
    let (status, body) = json_of(response).await;
    assert_eq!(status, 503, "{body}");
    error_message(&body, 503)
}

/// `/health` of `app`, which says `degraded` with its transfers `down`.
async fn health_with_transfers_down(app: &TestApp) -> Value {
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("degraded")),
        "{health}"
    );
    assert_eq!(health["transfers"]["status"], "down", "{health}");
    health
}

#[tokio::test]
async fn a_damaged_transfer_journal_or_dead_letter_file_is_named_by_the_health_check() {
    let (temp, app) = process_app_paying_a_to_b().await;
    mark_damaged(temp.path(), "transfers.db");
    mark_damaged(temp.path(), "dead_letters.db");

    let transfer = transfer_a_to_b(&app).send().await.expect("sent");
    let message = operator_message(transfer).await;
    assert!(
        message.contains("transfer journal's file is damaged"),
        "{message}"
    );
    assert_eq!(
        app.credit("a", json!(1)).await.status(),
        201,
        "no key: no journal"
    );
    assert_eq!(app.balance_text("a").await, "11.00");

    let health = health_with_transfers_down(&app).await;
    let error = health["transfers"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("transfers.db is damaged"), "{health}");
    assert_eq!(health["deadLetters"]["status"], "unknown", "{health}");
    app.stop().await;
}

/// h102 F4: `transfers.db` moved out of the folder while the server ran:
/// transfers and keyed commands answered "retry" (503 with Retry-After)
/// for ever, and `/health` said the transfers were ok.
#[tokio::test]
async fn a_transfer_journal_moved_under_the_server_needs_a_restart_and_health_says_so() {
    let (temp, app) = process_app_paying_a_to_b().await;
    let away = tempfile::tempdir().expect("tempdir");
    std::fs::rename(
        temp.path().join("transfers.db"),
        away.path().join("transfers.db"),
    )
    .expect("moved");

    let keyed_credit = app
        .post("/wallets/a/credit")
        .header("Idempotency-Key", "k-moved")
        .json(&json!({"amount": 1}))
        .send();
    let transfer = transfer_a_to_b(&app).send();
    for response in [
        transfer.await.expect("sent"),
        keyed_credit.await.expect("sent"),
    ] {
        let message = operator_message(response).await;
        assert!(
            message.contains("transfer journal's file or its folder was moved")
                && message.contains("restarts the server"),
            "{message}"
        );
    }
    assert_eq!(app.balance_text("a").await, "10.00", "nothing applied");
    health_with_transfers_down(&app).await;
    app.stop().await;
}

/// h102 F7: the projection files moved out of the folder while the server
/// ran: every projection commit was refused, yet `/health` said `ok` with
/// each projection `up`, as reads on connections opened before the move
/// still answered.
#[tokio::test]
async fn projection_files_moved_under_the_server_are_down_in_the_health_check() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_in(temp.path()).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    let away = tempfile::tempdir().expect("tempdir");
    for file in ["ledger.db", "read_model.db", "search_index.db"] {
        std::fs::rename(temp.path().join(file), away.path().join(file)).expect("moved");
    }

    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!(
        (status, &health["status"]),
        (200, &json!("degraded")),
        "commands go on, the projections do not: {health}"
    );
    for projection in ["ledger", "readModel", "searchIndex"] {
        assert_eq!(
            health[projection]["status"], "down",
            "{projection}: {health}"
        );
        let error = health[projection]["error"].to_string();
        assert!(error.contains("moved"), "{projection}: {health}");
    }
    assert_eq!(app.credit("a", json!(1)).await.status(), 201);
    app.stop().await;
}
