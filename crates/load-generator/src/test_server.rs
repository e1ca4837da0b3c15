//! A real HTTP/1.1 server on 127.0.0.1:0 for the tests of the retry policy: it answers each
//! connection as its script says (or closes it unanswered, as a server killed mid-request
//! does), one request per connection, and keeps every request's `Idempotency-Key`.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{ClientError, RetryPolicy, WalletClient};

/// A policy that closes its window in well under a second.
pub const FAST_POLICY: RetryPolicy = RetryPolicy {
    backoff_first_ms: 10,
    backoff_max_ms: 40,
    window_ms: 400,
};
/// Bound on a test request's head.
const HEAD_BYTES_MAX: usize = 16 * 1024;
const CREATED_BODY: &str = r#"{"id":"w1","balance":1000}"#;

/// What the server does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Read the request, then close the connection without an answer.
    Drop,
    /// Answer with this status and `Connection: close`.
    Status(u16),
    /// Answer 201 as a replay (`Idempotent-Replayed: true`).
    Replayed,
}

/// The reply to the connection numbered by its argument (0 for the first).
pub type Script = dyn Fn(usize) -> Reply + Send + Sync;

pub struct ScriptedServer {
    pub url: String,
    keys: Arc<Mutex<Vec<String>>>,
}

impl ScriptedServer {
    pub async fn start(script: Arc<Script>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&keys);
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let reply = script(connection);
                connection += 1;
                let seen = Arc::clone(&seen);
                tokio::spawn(async move { serve(stream, reply, &seen).await });
            }
        });
        Ok(Self { url, keys })
    }

    /// Answers the n-th connection with `replies[n]`, and every one past the list with its
    /// last entry.
    pub async fn sequence(replies: Vec<Reply>) -> std::io::Result<Self> {
        assert!(!replies.is_empty(), "a script of at least one reply");
        Self::start(Arc::new(move |connection: usize| {
            replies[connection.min(replies.len() - 1)]
        }))
        .await
    }

    /// A client of this server resending by [`FAST_POLICY`].
    pub fn client(&self) -> Result<WalletClient, ClientError> {
        Ok(WalletClient::new(&self.url, 1, None)?.with_retry_policy(FAST_POLICY))
    }

    /// The `Idempotency-Key` of every request read, in order (empty when absent).
    pub fn keys(&self) -> Vec<String> {
        self.keys
            .lock()
            .map(|keys| keys.clone())
            .unwrap_or_default()
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, keys: &Mutex<Vec<String>>) {
    let Some(key) = read_request(&mut stream).await else {
        return;
    };
    if let Ok(mut keys) = keys.lock() {
        keys.push(key);
    }
    let (status, extra_header) = match reply {
        Reply::Drop => return,
        Reply::Status(status) => (status, ""),
        Reply::Replayed => (201, "Idempotent-Replayed: true\r\n"),
    };
    let body = if status == 201 { CREATED_BODY } else { "{}" };
    let answer = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra_header}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads one request's head and body; its `Idempotency-Key` (empty when absent).
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if bytes.len() > HEAD_BYTES_MAX {
            return None;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_owned())
    };
    let content_length: usize = header("content-length:")?.parse().ok()?;
    let key = header("idempotency-key:").unwrap_or_default();
    while bytes.len() < head_end + content_length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
    Some(key)
}
