//! The four binaries as separate processes (command-api as one or more
//! replicas), wired to fresh resources on the real servers: a database, a
//! topic and its dead-letter topic, consumer groups and search indices of
//! their own.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::TcpListener;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{create_named_topic, require_env, unique_name, TestDatabase};

/// Bound on a binary's start-up (connect, migrate, join its consumer group).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// As in production: the topic's partition count bounds the consumers' parallelism.
const TOPIC_PARTITIONS: i32 = 10;
/// How much of a binary's log a failure message shows.
const LOG_TAIL_BYTES: usize = 4_000;
/// Variable giving the binaries' `RUST_LOG` (`info` when unset), e.g.
/// `info,librdkafka=debug` with `KAFKA_DEBUG=cgrp` (which the binaries
/// inherit) to keep the consumer groups' join states in their logs.
pub const BINARY_LOG_FILTER_VARIABLE: &str = "WALLEX_BINARY_RUST_LOG";

/// The binaries' `RUST_LOG`: [`BINARY_LOG_FILTER_VARIABLE`], else `info`.
fn binary_log_filter() -> String {
    std::env::var(BINARY_LOG_FILTER_VARIABLE)
        .ok()
        .filter(|filter| !filter.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned())
}

pub const OUTBOX_RELAY: &str = "outbox-relay";
pub const LEDGER_CONSUMER: &str = "ledger-consumer";
pub const PROJECTION_CONSUMER: &str = "projection-consumer";
pub const COMMAND_API: &str = "command-api";
/// The binaries, each once.
pub const BINARIES: [&str; 4] = [
    OUTBOX_RELAY,
    LEDGER_CONSUMER,
    PROJECTION_CONSUMER,
    COMMAND_API,
];

/// Where the real servers are (`scripts/infra.sh env`).
pub struct Servers {
    pub database_url: String,
    pub redis_url: String,
    pub kafka_brokers: String,
    pub elasticsearch_url: String,
}

impl Servers {
    /// `None` (after a `skipped:` line) when a server is not configured.
    pub fn from_env() -> Option<Self> {
        Some(Self {
            database_url: require_env("DATABASE_URL")?,
            redis_url: require_env("REDIS_URL")?,
            kafka_brokers: require_env("KAFKA_BROKERS")?,
            elasticsearch_url: require_env("ELASTICSEARCH_URL")?,
        })
    }
}

/// One binary, restartable with the same configuration.
pub struct Process {
    /// The binary's name, or `command-api-<n>` for the replicas of a replicated command-api.
    name: String,
    binary: &'static str,
    port: u16,
    environment: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn new(
        name: String,
        binary: &'static str,
        environment: Vec<(String, String)>,
        logs: &Path,
    ) -> Self {
        let port = free_port();
        let mut environment = environment;
        environment.push(("HOST".into(), "127.0.0.1".into()));
        environment.push(("PORT".into(), port.to_string()));
        Self {
            log: logs.join(format!("{name}.log")),
            name,
            binary,
            port,
            environment,
            child: None,
        }
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the binary's log file");
        let child = Command::new(binary_path(self.binary))
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .env("RUST_LOG", binary_log_filter())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({error}); build the binaries first: cargo build --bins",
                    binary_path(self.binary).display()
                )
            });
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook, no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error here means it already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let answer = client
                .get(format!("{}/health", self.url()))
                .timeout(HEALTH_POLL * 10)
                .send()
                .await;
            if matches!(&answer, Ok(response) if response.status().is_success()) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "{} did not become healthy (exit: {exited:?}, last answer: {answer:?}); its log ends with:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let start = (start..text.len())
            .find(|index| text.is_char_boundary(*index))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The whole system on fresh resources.
pub struct System {
    processes: Vec<Process>,
    database: Option<TestDatabase>,
    pub elasticsearch_url: String,
    pub index_prefix: String,
    pub kafka_brokers: String,
    /// The topic the consumers park what they cannot handle on.
    pub dead_letter_topic: String,
    /// The binaries' whole logs (a failure prints their tails only): kept
    /// on disk when the test fails, removed otherwise.
    logs: Option<tempfile::TempDir>,
}

impl Drop for System {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(logs) = self.logs.take() {
                eprintln!(
                    "the binaries' whole logs are kept in {}",
                    logs.keep().display()
                );
            }
        }
    }
}

impl System {
    /// Starts every binary, command-api once, and waits until each one's `/health` answers 200.
    pub async fn start(servers: &Servers) -> Self {
        Self::start_replicated(servers, 1).await
    }

    /// Starts every binary, command-api as `replicas` processes (named
    /// `command-api-1`, … when more than one), and waits until each one's
    /// `/health` answers 200.
    pub async fn start_replicated(servers: &Servers, replicas: usize) -> Self {
        let database = TestDatabase::create(&servers.database_url).await;
        let topic = unique_name("wallet_events");
        let dead_letters = format!("{topic}_dlq");
        create_named_topic(&servers.kafka_brokers, &topic, TOPIC_PARTITIONS).await;
        create_named_topic(&servers.kafka_brokers, &dead_letters, 1).await;
        // Elasticsearch index names are lower case.
        let index_prefix = unique_name("wallex").to_lowercase();
        let group = |binary: &str| format!("{topic}_{binary}");
        let (ledger_group, projection_group) = (group(LEDGER_CONSUMER), group(PROJECTION_CONSUMER));
        // Each system its own wallet locks on the shared Redis.
        let lock_prefix = format!("{topic}:lock:");

        let shared = [
            ("DATABASE_URL", database.url.as_str()),
            ("REDIS_URL", servers.redis_url.as_str()),
            ("REDIS_KEY_PREFIX", lock_prefix.as_str()),
            ("KAFKA_BROKERS", servers.kafka_brokers.as_str()),
            ("KAFKA_TOPIC", topic.as_str()),
            ("KAFKA_DLQ_TOPIC", dead_letters.as_str()),
            ("ELASTICSEARCH_URL", servers.elasticsearch_url.as_str()),
            ("ELASTICSEARCH_INDEX_PREFIX", index_prefix.as_str()),
            // command-api's reads wait for these groups (the consumers' own below).
            ("LEDGER_CONSUMER_GROUP", ledger_group.as_str()),
            ("PROJECTION_CONSUMER_GROUP", projection_group.as_str()),
            // Authentication on, as in production (the others ignore it).
            ("AUTH_JWT_SECRET", crate::client::API_SECRET),
        ];
        let logs = tempfile::tempdir().expect("a folder for the binaries' logs");
        let mut names: Vec<(String, &'static str)> = BINARIES
            .iter()
            .filter(|binary| **binary != COMMAND_API)
            .map(|binary| ((*binary).to_owned(), *binary))
            .collect();
        if replicas == 1 {
            names.push((COMMAND_API.to_owned(), COMMAND_API));
        } else {
            names.extend((1..=replicas).map(|replica| (replica_name(replica), COMMAND_API)));
        }
        let processes = names
            .into_iter()
            .map(|(name, binary)| {
                let mut environment: Vec<(String, String)> = shared
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                    .collect();
                environment.push(("KAFKA_GROUP_ID".into(), group(binary)));
                // Static membership, as the k8s manifests give it (the pod's
                // name): a consumer killed and restarted takes its partitions
                // back at once.
                environment.push(("KAFKA_GROUP_INSTANCE_ID".into(), name.clone()));
                Process::new(name, binary, environment, logs.path())
            })
            .collect();
        let mut system = Self {
            processes,
            database: Some(database),
            elasticsearch_url: servers.elasticsearch_url.clone(),
            index_prefix,
            kafka_brokers: servers.kafka_brokers.clone(),
            dead_letter_topic: dead_letters,
            logs: Some(logs),
        };
        for process in &mut system.processes {
            process.spawn();
        }
        for process in &mut system.processes {
            process.wait_healthy().await;
        }
        system
    }

    /// The first command-api's URL.
    pub fn api_url(&self) -> String {
        self.api_urls()
            .into_iter()
            .next()
            .expect("at least one command-api")
    }

    /// Every command-api replica's URL.
    pub fn api_urls(&self) -> Vec<String> {
        self.processes
            .iter()
            .filter(|process| process.binary == COMMAND_API)
            .map(Process::url)
            .collect()
    }

    /// The URL of the event store's (and every PostgreSQL store's) database.
    pub fn database_url(&self) -> &str {
        &self
            .database
            .as_ref()
            .expect("the database lives until stop")
            .url
    }

    fn process_mut(&mut self, name: &str) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|process| process.name == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
    }

    /// kill -9 of the process `name` (a binary, or `command-api-<n>`).
    pub fn kill(&mut self, name: &str) {
        self.process_mut(name).kill();
    }

    /// Starts the process `name` again on the same configuration and waits until it is healthy.
    pub async fn restart(&mut self, name: &str) {
        let process = self.process_mut(name);
        process.spawn();
        process.wait_healthy().await;
    }

    /// kill -9, then start it again on the same configuration and wait until it is healthy.
    pub async fn crash_and_restart(&mut self, name: &str) {
        self.kill(name);
        self.restart(name).await;
    }

    /// Every binary's log tail, for a failure message.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|process| format!("--- {} ---\n{}", process.name, process.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs the binary of process `name` with its configuration and
    /// `arguments` (a subcommand such as `rebuild`) to its end, appending its
    /// output to that process's log; whether it exited 0.
    pub async fn run_command(&self, name: &str, arguments: &[&str]) -> bool {
        let process = self
            .processes
            .iter()
            .find(|process| process.name == name)
            .unwrap_or_else(|| panic!("no process named {name}"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log)
            .expect("open the binary's log file");
        let mut command = tokio::process::Command::new(binary_path(process.binary));
        command
            .args(arguments)
            .envs(
                process
                    .environment
                    .iter()
                    .map(|(name, value)| (name, value)),
            )
            .env("RUST_LOG", binary_log_filter())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on the log file"))
            .stderr(log);
        command
            .status()
            .await
            .unwrap_or_else(|error| panic!("cannot run {name} {arguments:?}: {error}"))
            .success()
    }

    /// How many times `text` occurs in every binary's whole log.
    pub fn log_count(&self, text: &str) -> usize {
        self.processes
            .iter()
            .map(|process| {
                std::fs::read_to_string(&process.log)
                    .map(|log| log.matches(text).count())
                    .unwrap_or(0)
            })
            .sum()
    }

    pub async fn stop(mut self) {
        for process in &mut self.processes {
            process.kill();
        }
        if let Some(database) = self.database.take() {
            database.drop_database().await;
        }
    }
}

/// The name of the `replica`th command-api (from 1) of a replicated system.
pub fn replica_name(replica: usize) -> String {
    format!("{COMMAND_API}-{replica}")
}

/// The binaries `cargo build --bins` put in this test's target folder, or `WALLEX_BIN_DIR`.
fn binary_path(name: &str) -> PathBuf {
    let folder = match std::env::var_os("WALLEX_BIN_DIR") {
        Some(folder) => PathBuf::from(folder),
        // target/<profile>/deps/end_to_end-<hash> -> target/<profile>
        None => std::env::current_exe()
            .expect("the test's own path")
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps")
            .to_path_buf(),
    };
    folder.join(name)
}

/// The ports the binaries listen on: below Linux's ephemeral range
/// (32768–60999 by default), as `scripts/infra.sh` chooses its servers'. A
/// port picked there by the kernel (`bind` to port 0) was free only until the
/// listener was dropped: the next outgoing connection, or another test's pick,
/// could take it before the binary bound it, or between a kill and a restart
/// on it (CI: outbox-relay refused its port, and another test's binary
/// answered its health checks).
const BINARY_PORTS: Range<u16> = 20_000..32_000;

/// How many ports this test process has handed out: none is handed out twice.
static BINARY_PORTS_HANDED_OUT: AtomicUsize = AtomicUsize::new(0);

/// A port of `BINARY_PORTS` nothing listens on and no other caller in this
/// test process was given (a binary's, or an address that must refuse). Each test process starts at a place its id gives,
/// so two processes on the machine seldom try the same ports.
pub fn free_port() -> u16 {
    let span = usize::from(BINARY_PORTS.end - BINARY_PORTS.start);
    let first = std::process::id() as usize % span;
    for _ in 0..span {
        let handed_out = BINARY_PORTS_HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let offset = u16::try_from((first + handed_out) % span).expect("below the span");
        let port = BINARY_PORTS.start + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {BINARY_PORTS:?}");
}
