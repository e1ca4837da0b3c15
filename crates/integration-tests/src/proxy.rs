//! A TCP forwarder for the fault tests: it stops passing bytes as a paused
//! server or a partition does, and can freeze one connection after a given
//! statement went through it. It also counts what clients send, for tests of
//! how many round trips a client makes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes the proxy moves at a time.
const PROXY_BUFFER_BYTES: usize = 16 * 1024;

/// What the proxy passes: nothing while `paused`; nothing, ever again, on
/// the `frozen` connection (numbered from 0 in the order accepted): the
/// first whose client sends the text `freeze_after` is `marked`, and frozen
/// once the client's next message has passed (PostgreSQL's extended query
/// protocol sends a statement's text to prepare it, then runs it apart).
#[derive(Debug, Clone, Copy, Default)]
struct ProxyState {
    paused: bool,
    freeze_after: Option<&'static str>,
    marked: Option<u64>,
    frozen: Option<u64>,
    /// Connections accepted so far.
    accepted: u64,
    /// Connections numbered below it are closed.
    closed_below: u64,
}

impl ProxyState {
    fn passes(&self, connection: u64) -> bool {
        !self.paused && self.frozen != Some(connection)
    }
}

/// A TCP forwarder to PostgreSQL that stops passing bytes while paused, as a
/// server stopped with SIGSTOP or cut off by a partition does: connections
/// stay open and nothing answers. Or that freezes one connection after a
/// statement went through it, while others pass, as a middlebox that lost
/// its state does.
pub struct PausableProxy {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    state: Arc<tokio::sync::watch::Sender<ProxyState>>,
    client_writes: Arc<AtomicU64>,
}

impl PausableProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: (String, u16)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(tokio::sync::watch::Sender::new(ProxyState::default()));
        let shared = Arc::clone(&state);
        let client_writes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&client_writes);
        tokio::spawn(async move {
            let mut accepted = 0_u64;
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let (client_reads, client_writes) = client.into_split();
                let (server_reads, server_writes) = server.into_split();
                let from_client = Pump {
                    connection: accepted,
                    state: Arc::clone(&shared),
                    watches_for_freeze: true,
                    writes: Some(Arc::clone(&counted)),
                };
                let from_server = Pump {
                    watches_for_freeze: false,
                    writes: None,
                    ..from_client.clone()
                };
                tokio::spawn(from_client.run(client_reads, server_writes));
                tokio::spawn(from_server.run(server_reads, client_writes));
                accepted += 1;
                shared.send_modify(|state| state.accepted = accepted);
            }
        });
        Self {
            port,
            state,
            client_writes,
        }
    }

    /// Closes every connection open now, both ways, as a server that drops
    /// its clients does; later ones pass.
    pub fn close_connections(&self) {
        self.state
            .send_modify(|state| state.closed_below = state.accepted);
    }

    /// Reads that clients' bytes arrived in, over every connection: with a
    /// client that waits for each answer before its next request (on
    /// loopback), its requests.
    pub fn client_writes(&self) -> u64 {
        self.client_writes.load(Ordering::Relaxed)
    }

    /// Passes nothing while `paused`.
    pub fn pause(&self, paused: bool) {
        self.state.send_modify(|state| state.paused = paused);
    }

    /// The first connection whose client sends `text` passes nothing more
    /// once it has passed that and the message after it.
    pub fn freeze_after(&self, text: &'static str) {
        self.state
            .send_modify(|state| state.freeze_after = Some(text));
    }
}

/// One direction of one proxied connection.
#[derive(Clone)]
struct Pump {
    connection: u64,
    state: Arc<tokio::sync::watch::Sender<ProxyState>>,
    /// The client's side: looks for the text that freezes its connection.
    watches_for_freeze: bool,
    /// Counts the reads of this direction (the client's side).
    writes: Option<Arc<AtomicU64>>,
}

impl Pump {
    /// Copies `from` to `to`, holding each chunk while the proxy does not
    /// pass this connection.
    async fn run(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut passing = self.state.subscribe();
        let mut closing = self.state.subscribe();
        let mut buffer = vec![0_u8; PROXY_BUFFER_BYTES];
        loop {
            let read = tokio::select! {
                read = from.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(read) => read,
                },
                _ = closing.wait_for(|state| state.closed_below > self.connection) => return,
            };
            let chunk = &buffer[..read];
            if let Some(writes) = &self.writes {
                writes.fetch_add(1, Ordering::Relaxed);
            }
            if passing
                .wait_for(|state| state.passes(self.connection))
                .await
                .is_err()
                || to.write_all(chunk).await.is_err()
            {
                return;
            }
            if self.watches_for_freeze {
                self.state.send_if_modified(|state| {
                    if state.marked == Some(self.connection) {
                        state.marked = None;
                        state.frozen = Some(self.connection);
                        return true;
                    }
                    let sent = state.freeze_after.is_some_and(|text| {
                        chunk
                            .windows(text.len())
                            .any(|window| window == text.as_bytes())
                    });
                    if sent {
                        state.freeze_after = None;
                        state.marked = Some(self.connection);
                    }
                    sent
                });
            }
        }
    }
}
