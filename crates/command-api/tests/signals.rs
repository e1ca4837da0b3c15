//! The binary's stop on a signal: SIGINT (Ctrl-C in the terminal the
//! embedded default runs in) stops as gracefully as SIGTERM, answering the
//! request in flight. Runs the built `command-api` binary on a port of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the binary gets to start listening, and to stop.
const PROCESS_WAIT: Duration = Duration::from_secs(30);

/// The binary, killed if a test leaves it running.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The binary on a port it chose itself (`PORT=0`: a port picked for it
/// beforehand could be taken by another socket before it bound it), read from
/// its log line `command-api listening … port=N`, and a connection to it that
/// has had one answer.
fn start(data_dir: &std::path::Path) -> (Server, TcpStream) {
    start_with_log(data_dir, Log::Read)
}

/// What becomes of the server's log once it said where it listens.
#[derive(Clone, Copy, PartialEq)]
enum Log {
    /// Read to its end.
    Read,
    /// Its pipe closed, and standard error's too: every later line fails
    /// to be written (`EPIPE`), as when a log collector has gone.
    Broken,
}

/// The server's command with none of this process's environment: any
/// free port, logging at `info`.
fn command_api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_command-api"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PORT", "0")
        .env("RUST_LOG", "info");
    command
}

fn start_with_log(data_dir: &std::path::Path, log: Log) -> (Server, TcpStream) {
    let mut server = Server(
        command_api()
            .env("WALLEX_DATA_DIR", data_dir)
            .stdout(Stdio::piped())
            .stderr(if log == Log::Broken {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("command-api starts"),
    );
    drop(server.0.stderr.take());
    let port = listening_port(&mut server, log);
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            // One request answered on the connection first: the server has
            // taken it from its listen queue (a connection still queued when
            // the signal comes is not in flight, and is reset), whatever the
            // machine's load.
            stream
                .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .expect("probe sent");
            stream
                .set_read_timeout(Some(PROCESS_WAIT))
                .expect("read timeout");
            let probe = read_answer(&mut stream);
            assert!(probe.starts_with("HTTP/1.1 200"), "{probe:?}");
            return (server, stream);
        }
        assert!(
            started.elapsed() < PROCESS_WAIT,
            "command-api never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the log line that says the server listens; the rest of its
/// log is read to its end on a thread of its own, so the server never waits
/// on a full pipe, or its pipe is closed ([`Log`]).
fn listening_port(server: &mut Server, log: Log) -> u16 {
    let stdout = server.0.stdout.take().expect("the server's log is piped");
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("command-api logged that it listens before its log ended")
            .expect("a line of its log");
        if line.contains("command-api listening") {
            break line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("port="))
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("a port in {line:?}"));
        }
    };
    match log {
        Log::Read => drop(std::thread::spawn(move || lines.for_each(drop))),
        Log::Broken => drop(lines),
    }
    port
}

/// One answer read off a keep-alive connection: its head, then as many body
/// bytes as its `content-length` says.
fn read_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut byte = [0_u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("an answer's head");
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().expect("a content-length"));
    let mut body = vec![0_u8; length];
    stream.read_exact(&mut body).expect("an answer's body");
    answer.extend(body);
    String::from_utf8_lossy(&answer).into_owned()
}

fn signal(server: &Server, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

#[test]
fn sigint_and_sigterm_let_the_request_in_flight_finish() {
    for name in ["INT", "TERM"] {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let (mut server, mut stream) = start(data_dir.path());
        let body = br#"{"walletId":"w1","ownerId":"o","initialBalance":10}"#;
        let head = format!(
            "POST /wallets HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("head sent");
        stream
            .write_all(&body[..10])
            .expect("part of the body sent");
        std::thread::sleep(Duration::from_millis(300));
        signal(&server, name);
        std::thread::sleep(Duration::from_millis(500));
        stream
            .write_all(&body[10..])
            .expect("the rest of the body sent");
        stream
            .set_read_timeout(Some(PROCESS_WAIT))
            .expect("read timeout");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 201"), "SIG{name}: {answer:?}");
        let status = server.0.wait().expect("command-api stops");
        assert!(status.success(), "SIG{name}: {status}");
    }
}

#[test]
fn a_second_signal_stops_at_once() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (mut server, mut stream) = start(data_dir.path());
    // A request left waiting for the rest of its body keeps a graceful stop
    // going for the whole shutdown timeout.
    let head = "POST /wallets HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).expect("head sent");
    std::thread::sleep(Duration::from_millis(300));
    signal(&server, "INT");
    std::thread::sleep(Duration::from_millis(500));
    let second = Instant::now();
    signal(&server, "INT");
    let status = server.0.wait().expect("command-api stops");
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "stopped {:?} after the second signal",
        second.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn a_log_that_can_no_longer_be_written_stops_nothing() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (mut server, mut stream) = start_with_log(data_dir.path(), Log::Broken);
    for (wallet, expected) in [("w1", "HTTP/1.1 201"), ("w1", "HTTP/1.1 409")] {
        let body = format!(r#"{{"walletId":"{wallet}","ownerId":"o","initialBalance":10}}"#);
        let request = format!(
            "POST /wallets HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("request sent");
        let answer = read_answer(&mut stream);
        assert!(answer.starts_with(expected), "{answer:?}");
    }
    // The stop logs on the main thread: a panic there would end it with 101,
    // or leave it waiting for the threads it did not stop.
    signal(&server, "TERM");
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("the server's status") {
            break status;
        }
        assert!(asked.elapsed() < PROCESS_WAIT, "command-api did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a free port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn a_signal_ends_the_wait_for_postgresql_at_start_up() {
    for (name, exit_status) in [("TERM", 143), ("INT", 130)] {
        let url = format!("postgres://u:p@127.0.0.1:{}/db", closed_port());
        let mut server = Server(
            command_api()
                .env("AUTH", "none")
                .env("DATABASE_URL", url)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("command-api starts"),
        );
        let stdout = server.0.stdout.take().expect("the server's log is piped");
        let waiting = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("not answering at start-up"));
        assert!(waiting, "command-api waits for PostgreSQL");
        signal(&server, name);
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = server.0.try_wait().expect("the server's status") {
                break status;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "SIG{name}: still waiting for PostgreSQL"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(exit_status), "SIG{name}: {status}");
    }
}
