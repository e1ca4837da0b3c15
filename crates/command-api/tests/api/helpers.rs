use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use command_api::config::TransferMode;
use command_api::{Application, Config};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub data_dir: PathBuf,
    handle: ServerHandle,
    running: JoinHandle<std::io::Result<()>>,
    _temp: Option<tempfile::TempDir>,
}

/// Starts the application on a free port with storage in a fresh folder.
pub async fn spawn_app() -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut app = spawn_app_in(temp.path()).await;
    app._temp = Some(temp);
    app
}

/// Starts the application on storage that may already hold data.
pub async fn spawn_app_in(data_dir: &Path) -> TestApp {
    spawn_app_with(Config::embedded_for_test(data_dir.to_path_buf())).await
}

/// Starts the application with transfers as the transfer process
/// (`TRANSFERS=process`) on storage that may already hold data.
pub async fn spawn_process_app_in(data_dir: &Path) -> TestApp {
    spawn_app_with(process_config(data_dir)).await
}

/// The configuration of [`spawn_process_app_in`].
pub fn process_config(data_dir: &Path) -> Config {
    Config {
        transfers: Some(TransferMode::Process),
        ..Config::embedded_for_test(data_dir.to_path_buf())
    }
}

/// Starts the application on storage that may already hold data, its stored
/// idempotent responses expiring after `retention_hours`.
pub async fn spawn_app_with_retention(data_dir: &Path, retention_hours: u32) -> TestApp {
    let config = Config {
        idempotency_retention_hours: retention_hours,
        ..Config::embedded_for_test(data_dir.to_path_buf())
    };
    spawn_app_with(config).await
}

/// Starts the application on a fresh folder, serving the commands of pages
/// of `origins` too (`ALLOWED_ORIGINS`).
pub async fn spawn_app_allowing_origins(origins: &[&str]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        allowed_origins: origins.iter().map(|origin| (*origin).to_owned()).collect(),
        ..Config::embedded_for_test(data_dir.path().to_path_buf())
    };
    let mut app = spawn_app_with(config).await;
    app._temp = Some(data_dir);
    app
}

/// Starts the application on a fresh folder with one HTTP worker serving
/// at most `connections` at once (`HTTP_CONNECTIONS_PER_WORKER`).
pub async fn spawn_app_serving_at_most(connections: usize) -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = Config {
        http_workers: Some(1),
        http_connections_per_worker: connections,
        ..Config::embedded_for_test(temp.path().to_path_buf())
    };
    let mut app = spawn_app_with(config).await;
    app._temp = Some(temp);
    app
}

/// Starts the application on a fresh folder, a request's body given at
/// most `seconds` to arrive (`BODY_READ_TIMEOUT_SECONDS`).
pub async fn spawn_app_with_body_read_timeout(seconds: u64) -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = Config {
        body_read_timeout_seconds: seconds,
        ..Config::embedded_for_test(temp.path().to_path_buf())
    };
    let mut app = spawn_app_with(config).await;
    app._temp = Some(temp);
    app
}

/// Starts the application on a fresh folder with its wallet lock in Redis
/// at `redis_url` (`REDIS_URL`).
pub async fn spawn_app_with_redis_lock(redis_url: &str) -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = Config {
        redis_url: Some(redis_url.to_owned()),
        ..Config::embedded_for_test(temp.path().to_path_buf())
    };
    let mut app = spawn_app_with(config).await;
    app._temp = Some(temp);
    app
}

/// The HS256 secret of [`spawn_auth_app`].
pub const AUTH_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
/// The audience [`spawn_auth_app`] requires.
pub const AUTH_AUDIENCE: &str = "wallex-api";

/// Starts the application with authentication on (`AUTH_JWT_SECRET`,
/// `AUTH_AUDIENCE`) and this rate limit per principal, on a fresh folder.
pub async fn spawn_auth_app(rate_limit_per_second: u32, rate_limit_burst: u32) -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut config = Config::embedded_for_test(temp.path().to_path_buf());
    config.auth.jwt_secret = Some(AUTH_SECRET.into());
    config.auth.audience = Some(AUTH_AUDIENCE.into());
    config.auth.rate_limit_per_second = rate_limit_per_second;
    config.auth.rate_limit_burst = rate_limit_burst;
    let mut app = spawn_app_with(config).await;
    app._temp = Some(temp);
    app
}

/// Starts the application verifying tokens with the keys of the file at
/// `key_file` (`AUTH_JWT_PUBLIC_KEYS`), on a fresh folder.
pub async fn spawn_app_with_key_file(key_file: &Path) -> TestApp {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut config = Config::embedded_for_test(temp.path().to_path_buf());
    config.auth.jwt_public_keys = Some(key_file.to_path_buf());
    config.auth.audience = Some(AUTH_AUDIENCE.into());
    let mut app = spawn_app_with(config).await;
    app._temp = Some(temp);
    app
}

/// A token of [`spawn_auth_app`] for `sub` with `scope`, valid for an hour.
pub fn token(sub: &str, scope: &str) -> String {
    let claims = identity::Claims {
        aud: Some(AUTH_AUDIENCE.into()),
        ..identity::Claims::new(sub, scope, Duration::from_secs(3600))
    };
    identity::mint_hs256(AUTH_SECRET.as_bytes(), &claims).expect("token")
}

async fn spawn_app_with(config: Config) -> TestApp {
    let data_dir = config.data_dir.clone();
    let application = Application::build(config)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let running = tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        data_dir: data_dir.to_path_buf(),
        handle,
        running,
        _temp: None,
    }
}

impl TestApp {
    /// Graceful stop, as on SIGTERM.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.handle.stop(true).await;
        self.running.await.expect("join").expect("served");
        self._temp
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{}", self.address, path))
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.client.put(format!("{}{}", self.address, path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{}", self.address, path))
    }

    /// POSTs `body` as it is written, as JSON: the status and the answer.
    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .post(path)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("sent");
        json_of(response).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.post(path)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn create_wallet(&self, id: &str, owner: &str, opening: Value) -> Response {
        self.post_json(
            "/wallets",
            json!({"walletId": id, "ownerId": owner, "initialBalance": opening}),
        )
        .await
    }

    pub async fn credit(&self, id: &str, amount: Value) -> Response {
        self.post_json(&format!("/wallets/{id}/credit"), json!({"amount": amount}))
            .await
    }

    pub async fn debit(&self, id: &str, amount: Value) -> Response {
        self.post_json(&format!("/wallets/{id}/debit"), json!({"amount": amount}))
            .await
    }

    pub async fn transfer(&self, from: &str, to: &str, amount: Value) -> Response {
        self.post_json(
            &format!("/wallets/{from}/transfer"),
            json!({"toWalletId": to, "amount": amount, "description": "test"}),
        )
        .await
    }

    pub async fn wallet(&self, id: &str) -> Response {
        self.get(&format!("/wallets/{id}"))
            .send()
            .await
            .expect("request sent")
    }

    /// The balance exactly as the JSON text shows it.
    pub async fn balance_text(&self, id: &str) -> String {
        let response = self.wallet(id).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["balance"].to_string()
    }

    /// The Prometheus text `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text")
    }
}

/// Asserts the seed's error body and returns its message.
#[track_caller]
pub fn error_message(body: &Value, status: u16) -> String {
    assert_eq!(body["statusCode"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
    body["message"]
        .as_str()
        .expect("message is a string")
        .to_owned()
}

/// A wallet read's body without its audit trail: the fields every wallet
/// response (a command's reply, a list's item) shares.
pub fn without_audit_trail(mut body: Value) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields.remove("auditTrail");
        fields.remove("auditTrailTruncated");
    }
    body
}

pub async fn json_of(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("json body");
    (status, body)
}

/// A consistent copy of the event log of the data folder `from` (its server
/// stopped), in one file `events.db` of `to`.
pub fn copy_event_log(from: &std::path::Path, to: &std::path::Path) {
    let copy = to.join("events.db");
    let _ = std::fs::remove_file(&copy);
    rusqlite::Connection::open(from.join("events.db"))
        .and_then(|log| log.execute("VACUUM INTO ?1", [copy.to_string_lossy()]))
        .expect("copy the event log");
}

/// Puts the event log copied by [`copy_event_log`] in `from` back into the
/// data folder `to`, in place of its own (its server stopped): a new file
/// renamed over the old, as a restore does, so that nothing still holding
/// the old file open writes into the copy.
pub fn restore_event_log(from: &std::path::Path, to: &std::path::Path) {
    for file in ["events.db-wal", "events.db-shm"] {
        let _ = std::fs::remove_file(to.join(file));
    }
    let restored = to.join("events.db.restored");
    std::fs::copy(from.join("events.db"), &restored).expect("copy the event log back");
    std::fs::rename(&restored, to.join("events.db")).expect("restore the event log");
}

/// Sends the bytes `request(authority)` makes on a new connection; returns
/// all the server answered until it closed it (within `limit`), and how
/// long that took from the send.
pub async fn answer_to_raw(
    address: &str,
    request: impl FnOnce(&str) -> String,
    limit: Duration,
) -> (String, Duration) {
    let authority = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.expect("connected");
    let head = request(authority);
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("written");
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the server answered and closed the connection within the limit")
        .expect("read");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}
