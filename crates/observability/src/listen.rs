//! The listening socket of a binary's HTTP server, taken before anything
//! else starts, with an error that names the address.

use std::net::TcpListener;

/// A socket that could not listen, and the address it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {host} port {port}: {source}")]
pub struct ListenError {
    pub host: String,
    pub port: u16,
    #[source]
    pub source: std::io::Error,
}

/// The address `host:port` a server listens on.
#[derive(Debug, Clone)]
pub struct ListenAddress {
    pub host: String,
    pub port: u16,
}

impl ListenAddress {
    /// Binds the address: the listener and its port (the one the system
    /// chose when `port` is 0).
    pub fn bind(&self) -> Result<(TcpListener, u16), ListenError> {
        let listener = TcpListener::bind((self.host.as_str(), self.port))
            .map_err(|source| self.failed(source))?;
        let port = listener
            .local_addr()
            .map_err(|source| self.failed(source))?
            .port();
        Ok((listener, port))
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
