//! The listening socket of a binary's HTTP server, taken before anything
//! else starts, with an error that names the address.

use std::net::TcpListener;

/// Connections the kernel keeps accepted for the server before it takes
/// them (listen(2)'s backlog; Linux caps it at `net.core.somaxconn`, 4,096
/// by default). With the standard library's 128, a burst of a few hundred
/// new connections overflowed the queue and each dropped handshake waited
/// 1 s, then 3 s, then 7 s for its retransmission (h108 F1, 2,000
/// connections).
pub const LISTEN_BACKLOG: i32 = 4_096;

/// A socket that could not listen, and the address it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {host} port {port}: {source}")]
pub struct ListenError {
    pub host: String,
    pub port: u16,
    #[source]
    pub source: std::io::Error,
}

/// A listening socket, the address it was bound to and its port (the one
/// the system chose when the address's port is 0).
pub struct Listening {
    pub address: ListenAddress,
    pub listener: TcpListener,
    pub port: u16,
}

/// The address `host:port` a server listens on.
#[derive(Debug, Clone)]
pub struct ListenAddress {
    pub host: String,
    pub port: u16,
}

impl ListenAddress {
    /// Binds the address and listens with a queue of [`LISTEN_BACKLOG`]
    /// connections: the listener and its port (the one the system chose
    /// when `port` is 0).
    pub fn bind(&self) -> Result<(TcpListener, u16), ListenError> {
        let listener = TcpListener::bind((self.host.as_str(), self.port))
            .map_err(|source| self.failed(source))?;
        // The standard library listens with a queue of 128; listening again
        // on the bound socket sets the longer one (Linux's listen(2) takes a
        // new backlog on a listening socket).
        let socket = socket2::Socket::from(listener);
        socket
            .listen(LISTEN_BACKLOG)
            .map_err(|source| self.failed(source))?;
        let listener = TcpListener::from(socket);
        let port = listener
            .local_addr()
            .map_err(|source| self.failed(source))?
            .port();
        Ok((listener, port))
    }

    /// [`Self::bind`], kept with the address: what a binary binds before
    /// anything waits for a server, so a port in use or a `HOST` that is no
    /// address stops the start at once, naming it (h157 F7).
    pub fn listen(self) -> Result<Listening, ListenError> {
        let (listener, port) = self.bind()?;
        Ok(Listening {
            address: self,
            listener,
            port,
        })
    }

    /// `source` as this address's [`ListenError`] (the server refusing the
    /// bound socket, say).
    pub fn failed(&self, source: std::io::Error) -> ListenError {
        ListenError {
            host: self.host.clone(),
            port: self.port,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_listens_with_the_named_backlog() {
        let address = ListenAddress {
            host: "127.0.0.1".into(),
            port: 0,
        };
        let (listener, port) = address.bind().expect("bound");
        assert_ne!(port, 0);
        // /proc/net/tcp does not show the backlog; `ss -ltn` reads it from
        // the socket diagnostics: the Send-Q of a listening socket.
        let shown = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output();
        let Ok(shown) = shown else {
            eprintln!("skipped the check of the backlog: no `ss` on this machine");
            return;
        };
        let text = String::from_utf8_lossy(&shown.stdout);
        let send_q: Vec<&str> = text.split_whitespace().collect();
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|value| value.trim().parse::<i32>().ok())
            .unwrap_or(LISTEN_BACKLOG);
        assert_eq!(
            send_q.get(2).copied(),
            Some(LISTEN_BACKLOG.min(somaxconn).to_string().as_str()),
            "{text}"
        );
        drop(listener);
    }
}
