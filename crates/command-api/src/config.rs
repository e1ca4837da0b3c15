//! Configuration, from flags or the environment, with defaults that run the
//! whole system in one process on embedded storage.

use std::path::PathBuf;

use observability::LogFormat;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "command-api",
    version,
    about = "Wallex REST API (embedded default: the whole system in one process)"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Folder of the embedded storage (SQLite files).
    #[arg(long, env = "WALLEX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub shutdown_timeout_seconds: u64,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    /// The defaults, rooted at `data_dir`, on a free port: for tests.
    pub fn embedded_for_test(data_dir: PathBuf) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir,
            http_workers: Some(2),
            shutdown_timeout_seconds: 5,
            log_format: LogFormat::Text,
        }
    }
}
