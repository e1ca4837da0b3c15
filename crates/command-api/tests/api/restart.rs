//! Acknowledged writes survive a restart, and the projections resume.

use std::path::PathBuf;

use serde_json::json;
use sha2::Digest;

use crate::helpers::{
    copy_event_log, error_message, json_of, restore_event_log, spawn_app, spawn_app_in,
    spawn_process_app_in,
};

#[tokio::test]
async fn writes_survive_a_restart_and_the_list_resumes() {
    let app = spawn_app().await;
    let directory = app.data_dir.clone();
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;
    app.transfer("a", "b", json!(4)).await;
    let temp = app.stop().await;

    let app = spawn_app_in(&directory).await;
    let (_, a) = json_of(app.wallet("a").await).await;
    assert_eq!(
        (a["balance"].to_string(), a["version"].clone()),
        ("6.00".into(), json!(2))
    );
    assert_eq!(app.balance_text("b").await, "4.00");
    app.credit("b", json!(1)).await;
    let (_, list) = json_of(app.get("/wallets").send().await.expect("sent")).await;
    let balances: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|w| w["balance"].to_string())
        .collect();
    assert_eq!(balances, ["6.00", "5.00"]);
    app.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_second_server_on_a_data_folder_in_use_is_refused_and_the_first_keeps_serving() {
    let app = spawn_app().await;
    app.create_wallet("a", "o", json!(10)).await;

    let second = command_api::Application::build(command_api::Config::embedded_for_test(
        app.data_dir.clone(),
    ))
    .await;
    let Err(refusal) = second else {
        panic!("a second server started on a data folder in use");
    };
    let message = refusal.to_string();
    assert!(
        message.contains("in use by another Wallex server") && message.contains("WALLEX_DATA_DIR"),
        "{message}"
    );
    assert_eq!(app.balance_text("a").await, "10.00");

    let directory = app.data_dir.clone();
    let temp = app.stop().await;
    let app = spawn_app_in(&directory).await;
    assert_eq!(app.balance_text("a").await, "10.00", "free once stopped");
    app.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_data_folder_that_is_a_file_is_refused_by_name() {
    let temp = tempfile::tempdir().expect("tempdir");
    let file = temp.path().join("data");
    std::fs::write(&file, "not a folder").expect("file written");

    for path in [file.clone(), file.join("")] {
        let built =
            command_api::Application::build(command_api::Config::embedded_for_test(path.clone()))
                .await;
        let Err(refusal) = built else {
            panic!("a server started on a file as its data folder");
        };
        assert!(
            refusal.to_string().contains("is not a folder"),
            "{}: {refusal}",
            path.display()
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_data_folder_that_is_a_link_to_nothing_is_refused_naming_the_target() {
    let temp = tempfile::tempdir().expect("tempdir");
    let link = temp.path().join("data");
    let target = temp.path().join("gone");
    std::os::unix::fs::symlink(&target, &link).expect("link made");
    let built =
        command_api::Application::build(command_api::Config::embedded_for_test(link.clone())).await;
    let Err(refusal) = built else {
        panic!("a server started on a link to nothing");
    };
    let message = refusal.to_string();
    assert!(
        message.contains("symbolic link") && message.contains(&target.display().to_string()),
        "{message}"
    );
    assert!(!target.exists(), "nothing made at the link's target");

    // A link to a file is a data folder that is not a folder.
    std::fs::write(&target, "a file").expect("file written");
    let built =
        command_api::Application::build(command_api::Config::embedded_for_test(link.clone())).await;
    let Err(refusal) = built else {
        panic!("a server started on a link to a file");
    };
    assert!(refusal.to_string().contains("is not a folder"), "{refusal}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_data_folder_is_its_owners_only() {
    use std::os::unix::fs::PermissionsExt;

    let temp = tempfile::tempdir().expect("tempdir");
    let folder = temp.path().join("fresh");
    let app = crate::helpers::spawn_app_in(&folder).await;
    let mode = std::fs::metadata(&folder)
        .expect("folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    app.stop().await;
}

#[tokio::test]
async fn a_data_folder_moved_under_the_server_takes_no_more_writes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let folder = temp.path().join("data");
    let app = spawn_app_in(&folder).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);

    let moved = temp.path().join("moved");
    std::fs::rename(&folder, &moved).expect("renamed");
    let response = app.credit("a", json!(5)).await;
    assert_eq!(
        response.headers().get("retry-after"),
        None,
        "no retry brings the folder back: an operator restarts the server"
    );
    let (status, body) = json_of(response).await;
    assert_eq!(
        status, 503,
        "no write acknowledged into a folder that moved: {body}"
    );
    let message = error_message(&body, 503);
    assert!(
        !message.contains("unknown") && message.contains("restarts the server"),
        "the refused commit wrote nothing, says so, and what it needs: {body}"
    );
    // The ledger's and the read model's files moved too: a read on a
    // connection opened before the move still reads them (200, from the
    // moved folder), one that needs a new connection is storage unavailable
    // (503); neither is a server fault (500).
    for path in [
        "/ledger/wallet/a",
        "/ledger/transactions",
        "/wallets?ownerId=o",
        "/ledger/verify",
    ] {
        let (status, body) = json_of(app.get(path).send().await.expect("sent")).await;
        assert!(status == 200 || status == 503, "{path}: {status} {body}");
    }
    let response = app.get("/health").send().await.expect("sent");
    assert_eq!(
        response.headers().get("retry-after"),
        None,
        "no wait brings the folder back"
    );
    let (status, health) = json_of(response).await;
    assert_eq!(status, 503, "{health}");
    assert!(
        health["eventStore"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("moved")),
        "{health}"
    );
    // The publisher's probe reads the same store: the same 503, and no
    // Retry-After either (it said to retry while /health did not).
    let response = app.get("/health/kafka").send().await.expect("sent");
    assert_eq!(
        response.headers().get("retry-after"),
        None,
        "no wait brings the folder back"
    );
    let (status, publisher) = json_of(response).await;
    assert_eq!(
        (status, &publisher["status"]),
        (503, &json!("unhealthy")),
        "{publisher}"
    );
    // Out of its Service (readiness), but alive: a restart brings no folder back.
    let (status, live) = json_of(app.get("/health/live").send().await.expect("sent")).await;
    assert_eq!((status, &live["status"]), (200, &json!("alive")), "{live}");
    app.stop().await;

    // The moved folder holds what was acknowledged, and only that.
    let app = spawn_app_in(&moved).await;
    assert_eq!(app.balance_text("a").await, "10.00");
    app.stop().await;
}

/// h123 F1: SQLite goes on using a `-wal` file deleted under it, so what
/// was acknowledged before the deletion lived only in a file a crash takes
/// with it. The first refused write copies it into `events.db`, which then
/// holds it alone.
#[tokio::test]
async fn a_log_wal_deleted_under_the_server_is_copied_into_its_file_at_the_first_refused_write() {
    const CREDITS: usize = 12;
    let temp = tempfile::tempdir().expect("tempdir");
    let folder = temp.path().join("data");
    let app = spawn_app_in(&folder).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);
    for _ in 0..CREDITS {
        assert_eq!(app.credit("a", json!(1)).await.status(), 201);
    }
    std::fs::remove_file(folder.join("events.db-wal")).expect("WAL deleted");
    let (status, body) = json_of(app.credit("a", json!(5)).await).await;
    assert_eq!(
        status, 503,
        "no write acknowledged after the deletion: {body}"
    );

    // What a restart after a crash would read: the file alone.
    let copy = temp.path().join("copy");
    std::fs::create_dir(&copy).expect("folder");
    std::fs::copy(folder.join("events.db"), copy.join("events.db")).expect("copied");
    let log = rusqlite::Connection::open(copy.join("events.db")).expect("opened");
    let events: i64 = log
        .query_row(
            "SELECT COUNT(*) FROM events WHERE stream_id = 'a'",
            [],
            |row| row.get(0),
        )
        .expect("counted");
    assert_eq!(
        events,
        i64::try_from(1 + CREDITS).expect("small"),
        "the creation and every acknowledged credit"
    );
    app.stop().await;
}

#[tokio::test]
async fn writes_the_store_refuses_while_its_head_answers_make_health_degraded_until_one_passes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_in(temp.path()).await;
    assert_eq!(app.create_wallet("a", "o", json!(10)).await.status(), 201);
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    assert_eq!(health["eventStore"]["writes"], "ok", "{health}");

    // Another program holds the event store's write lock (as an open
    // `sqlite3` shell's transaction would): reads of the head pass, writes fail.
    let blocker = rusqlite::Connection::open(temp.path().join("events.db")).expect("opened");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock taken");
    let (status, body) = json_of(app.credit("a", json!(5)).await).await;
    assert_eq!(status, 503, "{body}");
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!(status, 200, "the store answers reads: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    let writes = &health["eventStore"]["writes"];
    assert_eq!(writes["status"], "failing", "{health}");
    assert_eq!(writes["failures"]["failures"], 1, "{health}");
    assert!(
        writes["failures"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("locked")),
        "{health}"
    );

    blocker.execute_batch("ROLLBACK").expect("the lock let go");
    assert_eq!(app.credit("a", json!(5)).await.status(), 201);
    let (status, health) = json_of(app.get("/health").send().await.expect("sent")).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    assert_eq!(health["eventStore"]["writes"], "ok", "{health}");
    assert_eq!(app.balance_text("a").await, "15.00");
    app.stop().await;
}

#[tokio::test]
async fn a_port_in_use_is_refused_by_name_before_the_data_folder_opens() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port taken");
    let port = taken.local_addr().expect("address").port();
    let temp = tempfile::tempdir().expect("tempdir");
    let folder = temp.path().join("data");
    let mut config = command_api::Config::embedded_for_test(folder.clone());
    config.port = port;
    let Err(refusal) = command_api::Application::build(config).await else {
        panic!("a server started on a port in use");
    };
    let message = refusal.to_string();
    assert!(
        message.contains(&format!("127.0.0.1 port {port}")),
        "{message}"
    );
    assert!(!folder.exists(), "nothing opened before the port was taken");
}

/// Wallet `id`'s balance in the ledger, as its summary writes it.
/// Seconds the read model gets to show a write: far past its lag on a
/// loaded machine (its list answers once the wait for it runs out, with
/// `Stale-Projection`, so one read is not enough: seen in CI).
const READ_MODEL_WAIT_SECONDS: u64 = 30;

/// Waits until the wallet list's row of `id` shows `balance`, for at most
/// [`READ_MODEL_WAIT_SECONDS`].
async fn read_model_shows(app: &crate::helpers::TestApp, id: &str, balance: &str) {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(READ_MODEL_WAIT_SECONDS);
    loop {
        let (status, rows) =
            json_of(app.get("/wallets?limit=100").send().await.expect("sent")).await;
        assert_eq!(status, 200, "{rows}");
        let shown = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["id"] == id))
            .map(|row| row["balance"].to_string());
        if shown.as_deref() == Some(balance) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read model shows {shown:?} for {id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn ledger_balance(app: &crate::helpers::TestApp, id: &str) -> String {
    let path = format!("/ledger/wallet/{id}/summary");
    let (status, summary) = json_of(app.get(&path).send().await.expect("sent")).await;
    assert_eq!(status, 200, "{summary}");
    summary["balance"].to_string()
}

/// The bytes of `events.db` and of its `-wal`, after frames were put in the
/// WAL by a connection that keeps it on close (as a crash leaves it): the
/// log as a refused start finds it (h98: closing, it folded the WAL into the
/// file and deleted it).
fn log_files(folder: &std::path::Path) -> [String; 2] {
    let wal = folder.join("events.db-wal");
    if !wal.exists() {
        let log = rusqlite::Connection::open(folder.join("events.db")).expect("open the log");
        log.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .expect("keep the WAL on close");
        log.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE scratch (x); DROP TABLE scratch;")
            .expect("frames in the WAL");
    }
    assert!(
        std::fs::metadata(&wal).expect("WAL").len() > 0,
        "the WAL holds frames"
    );
    [folder.join("events.db"), wal].map(|path| {
        let bytes = std::fs::read(&path).unwrap_or_default();
        format!(
            "{}: {} bytes, sha256 {:x}",
            path.display(),
            bytes.len(),
            sha2::Sha256::digest(&bytes)
        )
    })
}

#[tokio::test]
async fn an_event_log_older_than_its_projections_is_refused_until_they_are_rebuilt_from_it() {
    let app = spawn_app().await;
    let directory = app.data_dir.clone();
    app.create_wallet("a", "o", json!(10)).await;
    let temp = app.stop().await;
    let older = tempfile::tempdir().expect("tempdir");
    copy_event_log(&directory, older.path());

    let app = spawn_app_in(&directory).await;
    for _ in 0..3 {
        assert_eq!(app.credit("a", json!(1)).await.status(), 201);
    }
    assert_eq!(ledger_balance(&app, "a").await, "13.00");
    // The search index caught up too (its route waits for it), so all three
    // projections are past the older log's head when the server stops.
    let (status, page) = json_of(
        app.get("/wallets/a/transactions")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!((status, &page["count"]), (200, &json!(4)), "{page}");
    read_model_shows(&app, "a", "13.00").await;
    app.stop().await;

    restore_event_log(older.path(), &directory);
    let files_before = log_files(&directory);
    let Err(refusal) =
        command_api::Application::build(command_api::Config::embedded_for_test(directory.clone()))
            .await
    else {
        panic!("a server started on an event log older than its projections");
    };
    assert_eq!(
        log_files(&directory),
        files_before,
        "a refused start leaves the log and its WAL as they were"
    );
    let message = refusal.to_string();
    assert!(
        message.contains("events.db ends at position 1, "),
        "{message}"
    );
    for file in ["ledger.db", "read_model.db", "search_index.db"] {
        assert!(message.contains(&format!("{file} ")), "{message}");
    }

    for file in ["ledger.db", "read_model.db", "search_index.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(directory.join(format!("{file}{suffix}")));
        }
    }
    let app = spawn_app_in(&directory).await;
    assert_eq!(app.balance_text("a").await, "10.00");
    assert_eq!(ledger_balance(&app, "a").await, "10.00");
    let (status, verdict) = json_of(app.get("/ledger/verify").send().await.expect("sent")).await;
    assert_eq!((status, &verdict["ok"]), (200, &json!(true)), "{verdict}");
    app.stop().await;
    drop(temp);
}

/// When the stop has answered, the server has closed every file of its
/// folder: no descriptor of this process leads into it. A folder unlocked
/// while a file was still open let the next server (or a tool) open that
/// file while the old connection could still close last and delete its
/// `-wal` under the new one, which then refused every commit as if the file
/// had been moved (a flaky test showed it: the state's last copy was dropped
/// after the stop had answered, by an HTTP worker or a pooled reader).
#[tokio::test]
async fn a_stopped_server_has_closed_every_file_of_its_folder() {
    let temp = tempfile::tempdir().expect("tempdir");
    let app = spawn_process_app_in(temp.path()).await;
    app.create_wallet("a", "o", json!(10)).await;
    app.create_wallet("b", "o", json!(0)).await;
    let transfer = app
        .post_json(
            "/wallets/a/transfer",
            json!({"toWalletId": "b", "amount": 1}),
        )
        .await;
    assert_eq!(transfer.status(), 201);
    app.stop().await;
    let folder = temp.path().canonicalize().expect("the folder");
    let open: Vec<PathBuf> = std::fs::read_dir("/proc/self/fd")
        .expect("this process's descriptors")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target != &folder && target.starts_with(&folder))
        .collect();
    assert!(open.is_empty(), "still open: {open:?}");
}

/// h132 F1: a snapshot row forged to a version past its stream's head was
/// never replaced (a store kept a snapshot unless the stored one was newer),
/// so every load of the wallet after a restart read its whole stream and
/// logged an error. The first load replaces it with the state it folded.
#[tokio::test]
async fn a_snapshot_forged_past_its_stream_is_replaced_at_the_first_load() {
    let app = spawn_app().await;
    let directory = app.data_dir.clone();
    app.create_wallet("w", "o", json!(0)).await;
    let credits = event_store::SNAPSHOT_INTERVAL_EVENTS;
    for _ in 0..credits {
        assert_eq!(app.credit("w", json!(1)).await.status(), 201);
    }
    let temp = app.stop().await;
    let events = rusqlite::Connection::open(directory.join("events.db")).expect("opened");
    let stored_version = || -> i64 {
        events
            .query_row(
                "SELECT version FROM snapshots WHERE stream_id = 'w'",
                [],
                |row| row.get(0),
            )
            .expect("a snapshot row")
    };
    let head = i64::try_from(credits).expect("a version");
    assert_eq!(stored_version(), head, "the writer kept one at {head}");
    events
        .execute(
            "UPDATE snapshots SET version = 9223372036854775807 WHERE stream_id = 'w'",
            [],
        )
        .expect("forged");

    for restart in 0..2 {
        let app = spawn_app_in(&directory).await;
        let (status, wallet) = json_of(app.wallet("w").await).await;
        assert_eq!(status, 200, "{wallet}");
        assert_eq!(
            wallet["balance"].to_string(),
            format!("{credits}.00"),
            "{wallet}"
        );
        assert_eq!(wallet["version"], json!(credits + 1), "{wallet}");
        app.stop().await;
        assert_eq!(
            stored_version(),
            head + 1,
            "restart {restart}: the forged row was replaced by the state at the head"
        );
    }
    drop(temp);
}
