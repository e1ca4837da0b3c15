//! The connections a worker serves at once are bounded: more wait, unanswered,
//! until one closes (`HTTP_CONNECTIONS_PER_WORKER`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_serving_at_most;

/// How long a connection past the bound is watched for an answer it must not get.
const UNANSWERED_WATCH_MS: u64 = 700;
/// How long a waiting connection may take to be answered once a slot frees.
const ANSWER_WAIT_MS: u64 = 5_000;

/// A keep-alive connection that sent one request; whether it was answered
/// within `wait` (the first bytes of the answer, if any).
async fn ask(address: &str, wait: Duration) -> (TcpStream, Option<String>) {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .expect("connected (the listen backlog takes it)");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("written");
    let answered = read_some(&mut stream, wait).await;
    (stream, answered)
}

async fn read_some(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buffer = [0u8; 256];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Ok(Ok(read)) if read > 0 => Some(String::from_utf8_lossy(&buffer[..read]).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn a_connection_past_the_bound_waits_until_one_closes() {
    let app = spawn_app_serving_at_most(2).await;
    let answer_wait = Duration::from_millis(ANSWER_WAIT_MS);
    let (first, answered) = ask(&app.address, answer_wait).await;
    assert!(answered.is_some_and(|head| head.starts_with("HTTP/1.1 200")));
    let (_second, answered) = ask(&app.address, answer_wait).await;
    assert!(answered.is_some_and(|head| head.starts_with("HTTP/1.1 200")));

    let (mut third, answered) = ask(&app.address, Duration::from_millis(UNANSWERED_WATCH_MS)).await;
    assert_eq!(
        answered, None,
        "two connections are served at once, not three"
    );
    drop(first);
    let answered = read_some(&mut third, answer_wait).await;
    assert!(
        answered
            .as_deref()
            .is_some_and(|head| head.starts_with("HTTP/1.1 200")),
        "served once a slot freed: {answered:?}"
    );
    app.stop().await;
}
