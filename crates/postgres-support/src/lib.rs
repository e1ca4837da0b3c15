//! PostgreSQL for the distributed mode: one pool per process, sized and timed
//! out by configuration, and the schema in `migrations/postgres`, applied at
//! start-up (sqlx takes an advisory lock, so replicas may start together).

pub mod consumer_offsets;
mod database_url;
mod startup_wait;

pub use database_url::{check_database_url, DatabaseUrlError, DATABASE_URL_SCHEMES};
pub use startup_wait::{StartupWait, STARTUP_RETRY_PAUSE_MS, STARTUP_WAIT_SECONDS_MAX};

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

/// The schema's migrations. A migration the database has applied that this
/// build does not know (a newer release's, whose migration Job ran first) is
/// passed over, so an older pod restarting during a rollout, or a rollback,
/// starts on the newer schema: migrations only add (a column or table a
/// release stops using is dropped a release later), so the older code finds
/// everything it uses.
static MIGRATIONS: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/postgres")
};

/// Connections one process holds at most, unless configured otherwise.
pub const POOL_CONNECTIONS_MAX_DEFAULT: u32 = 16;
/// The most connections `DATABASE_CONNECTIONS_MAX` may ask of one pool, in
/// connections (the least is 1: a pool of none panics in sqlx). Ten times
/// PostgreSQL's default `max_connections` (100): above it a typo, not a size.
pub const POOL_CONNECTIONS_MAX_LIMIT: u32 = 1_000;
/// How long a caller waits for a pooled connection.
pub const POOL_ACQUIRE_TIMEOUT_MS: u64 = 5_000;
/// How long the server keeps a session of ours that is idle inside a
/// transaction, in ms (`idle_in_transaction_session_timeout`), on the pools
/// that write ([`connect`], [`writer_pool`]): their transactions run their
/// statements back to back, so a session idle that long has lost its
/// client (a partition, a hung proxy, a paused process), and ending it
/// frees the row and advisory locks the other replicas wait for.
pub const IDLE_IN_TRANSACTION_MS: u64 = 10_000;
/// How long a projection's batch transaction (the ledger's, the read
/// model's) waits for the server at most, in ms, on the client: the server's
/// own bounds cannot fire on a connection gone silent. Past it the batch
/// fails as a lost connection does (transient: retried, never dead-lettered).
pub const BATCH_WAIT_MS_MAX: u64 = 60_000;
/// Bound on one read statement, unless configured otherwise
/// (`DATABASE_STATEMENT_TIMEOUT_MS`).
pub const READ_STATEMENT_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// The longest `DATABASE_STATEMENT_TIMEOUT_MS` accepted, in ms (the least
/// is 1: PostgreSQL reads a `statement_timeout` of 0 as no bound at all).
pub const READ_STATEMENT_TIMEOUT_MS_MAX: u64 = 600_000;
/// For how long, in ms, after a wait bounded on the client gave up on its
/// statement ([`bounded`]) the pools check each connection handed back to
/// them within [`RETURNED_CHECK_MS`]. sqlx checks a returned connection with
/// a ping it waits for without end: on the connection of a statement given
/// up because it went silent (a partition, a middlebox that lost its state)
/// that wait kept the connection's pool slot until the kernel gave the
/// socket up (about 15 minutes), and a few such slots stopped the process.
/// The connection is handed back as soon as the statement is given up, so a
/// few seconds cover it; outside the window a returned connection costs
/// what sqlx's check costs, one round trip.
pub const RETURNED_CHECK_WINDOW_MS: u64 = 10_000;
/// How long, in ms, the check of a connection handed back during that window
/// waits for the server before the connection is closed and its slot freed;
/// below [`POOL_ACQUIRE_TIMEOUT_MS`], so a caller waiting for that slot gets
/// a new connection rather than a timeout.
pub const RETURNED_CHECK_MS: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// The host's name has no address (yet: DNS in Kubernetes can lag a
    /// Service's creation), so the same connect may succeed later.
    #[error("cannot connect to PostgreSQL: its host {host} does not resolve: {source}")]
    Unresolved {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate the PostgreSQL schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl PostgresError {
    /// Whether the same connect may succeed later: the server away, starting
    /// or shutting down (see [`is_transient`]); false for a wrong address,
    /// credentials or a migration the schema refuses.
    pub fn is_transient(&self) -> bool {
        match self {
            PostgresError::Connect(error)
            | PostgresError::Migrate(sqlx::migrate::MigrateError::Execute(error)) => {
                is_transient(error)
            }
            PostgresError::Unresolved { .. } => true,
            PostgresError::Migrate(_) => false,
        }
    }
}

/// Connects and brings the schema up to date; a session idle inside a
/// transaction for [`IDLE_IN_TRANSACTION_MS`] is ended by the server.
pub async fn connect(url: &str, connections_max: u32) -> Result<PgPool, PostgresError> {
    let options = PgConnectOptions::from_str(url).map_err(PostgresError::Connect)?;
    resolve_host(&options).await?;
    let pool = pool_options(connections_max)
        .connect_with(with_idle_in_transaction_timeout(options))
        .await
        .map_err(PostgresError::Connect)?;
    MIGRATIONS.run(&pool).await?;
    tracing::info!("PostgreSQL schema up to date");
    Ok(pool)
}

/// Connects a pool for reads, each statement bounded by
/// `statement_timeout_ms` (a slow or deep read fails instead of holding a
/// connection), after bringing the schema up to date on a connection of
/// its own, with no such bound.
pub async fn connect_reads(
    url: &str,
    connections_max: u32,
    statement_timeout_ms: u64,
) -> Result<PgPool, PostgresError> {
    let options = PgConnectOptions::from_str(url).map_err(PostgresError::Connect)?;
    resolve_host(&options).await?;
    let mut migrating = PgConnection::connect_with(&options)
        .await
        .map_err(PostgresError::Connect)?;
    MIGRATIONS.run(&mut migrating).await?;
    migrating.close().await.map_err(PostgresError::Connect)?;
    tracing::info!("PostgreSQL schema up to date");
    pool_of(options, connections_max, statement_timeout_ms).await
}

/// [`PostgresError::Unresolved`] when the host of `options` (not a Unix
/// socket) has no address: the log then names the host and says so, where
/// sqlx's error says only that a lookup failed.
async fn resolve_host(options: &PgConnectOptions) -> Result<(), PostgresError> {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        return Ok(());
    }
    let host = options.get_host();
    match tokio::net::lookup_host((host, options.get_port())).await {
        Ok(_) => Ok(()),
        Err(source) => Err(PostgresError::Unresolved {
            host: host.to_owned(),
            source,
        }),
    }
}

/// A pool of `connections_max` connections to the database of `pool`, for
/// one writer: its connections are its own, so reads cannot starve it. Each
/// statement is bounded by `statement_timeout_ms`, and the server ends a
/// session left idle inside a transaction for [`IDLE_IN_TRANSACTION_MS`]:
/// a writer cut off from the server mid-transaction (a partition, a hung
/// proxy) must not keep its locks there for as long as the server takes to
/// notice the dead socket.
pub async fn writer_pool(
    pool: &PgPool,
    connections_max: u32,
    statement_timeout_ms: u64,
) -> Result<PgPool, PostgresError> {
    let options = with_idle_in_transaction_timeout(pool.connect_options().as_ref().clone());
    pool_of(options, connections_max, statement_timeout_ms).await
}

/// `options` whose sessions the server ends once idle inside a transaction
/// for [`IDLE_IN_TRANSACTION_MS`].
fn with_idle_in_transaction_timeout(options: PgConnectOptions) -> PgConnectOptions {
    options.options([(
        "idle_in_transaction_session_timeout",
        format!("{IDLE_IN_TRANSACTION_MS}ms"),
    )])
}

/// A pool of `connections_max` connections made with `options`, each
/// statement bounded by `statement_timeout_ms`.
async fn pool_of(
    options: PgConnectOptions,
    connections_max: u32,
    statement_timeout_ms: u64,
) -> Result<PgPool, PostgresError> {
    pool_options(connections_max)
        .connect_with(with_statement_timeout(options, statement_timeout_ms))
        .await
        .map_err(PostgresError::Connect)
}

/// The options of every pool: `connections_max` connections, an acquire
/// bounded by [`POOL_ACQUIRE_TIMEOUT_MS`], and the bounded check of a
/// returned connection ([`RETURNED_CHECK_WINDOW_MS`]).
fn pool_options(connections_max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS))
        .after_release(check_returned)
}

/// Milliseconds since the first call, plus one (0: never), of the last wait
/// [`bounded`] gave up.
static GIVEN_UP_AT_MS: AtomicU64 = AtomicU64::new(0);

fn process_ms() -> u64 {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    let elapsed = STARTED.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

/// Within [`RETURNED_CHECK_WINDOW_MS`] of a wait given up, a connection
/// handed back to a pool is checked within [`RETURNED_CHECK_MS`]: an error
/// closes it (the slot is freed), `true` hands it to sqlx's own check.
fn check_returned(
    connection: &mut PgConnection,
    _: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        let given_up_at = GIVEN_UP_AT_MS.load(Ordering::Acquire);
        if given_up_at == 0 || process_ms() > given_up_at + RETURNED_CHECK_WINDOW_MS {
            return Ok(true);
        }
        tokio::time::timeout(Duration::from_millis(RETURNED_CHECK_MS), connection.ping())
            .await
            .unwrap_or_else(|_| Err(no_answer(RETURNED_CHECK_MS)))
            .map(|()| true)
    })
}

/// `query`'s output, or `None` when it gave nothing within `wait_ms` ms: it
/// is then given up (dropped), and the pools check the connections handed
/// back to them for a while ([`RETURNED_CHECK_WINDOW_MS`]), so the one it
/// held is closed if it has gone silent instead of holding its pool slot.
/// For the waits [`Within`] cannot wrap (a future whose error is not
/// `sqlx::Error`).
pub async fn bounded<F: Future>(wait_ms: u64, query: F) -> Option<F::Output> {
    let mut query = std::pin::pin!(query);
    match tokio::time::timeout(Duration::from_millis(wait_ms), &mut query).await {
        Ok(output) => Some(output),
        Err(_) => {
            // Before the query (and the connection it holds) is dropped.
            GIVEN_UP_AT_MS.store(process_ms() + 1, Ordering::Release);
            None
        }
    }
}

fn with_statement_timeout(
    options: PgConnectOptions,
    statement_timeout_ms: u64,
) -> PgConnectOptions {
    options.options([("statement_timeout", format!("{statement_timeout_ms}ms"))])
}

/// SQLSTATE classes of failures that may pass by themselves: connection
/// exceptions, transaction rollbacks (serialization, deadlock), insufficient
/// resources, operator intervention (shutdown, statement timeout), system errors.
const TRANSIENT_SQLSTATE_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];
/// SQLSTATE of a lock that could not be taken in time (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE of a write refused by a read-only server or session
/// (`read_only_sql_transaction`): a failover's standby not yet promoted, or
/// `default_transaction_read_only` set by an operator. The writes pass once
/// the primary is back; the events are not at fault.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// Whether a PostgreSQL failure may pass by itself, so that the same work is
/// worth trying again (without end, by a consumer): the connection or the
/// pool, a timeout, the server shutting down, short of resources or
/// read-only (a failover), a serialization failure or a deadlock. False for what would fail again on
/// the same input: a constraint violated, a value the column cannot hold, a
/// statement error, a row that does not decode, and TLS: this build has no
/// TLS, so a TLS error is a connection string asking for it (`sslmode=require`)
/// or a server that refuses it, neither of which passes by itself.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => database.code().is_some_and(|code| {
            code == LOCK_NOT_AVAILABLE
                || code == READ_ONLY_SQL_TRANSACTION
                || code
                    .get(..2)
                    .is_some_and(|class| TRANSIENT_SQLSTATE_CLASSES.contains(&class))
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// How long one read waits for the server at most, in ms: `statement_timeout`
/// is enforced by the server, so it cannot fire on one that is paused or cut
/// off by a partition; the client bounds the wait too ([`Within`]).
pub const READ_WAIT_MS_MAX: u64 = 20_000;

/// A query whose wait for the server is bounded on the client.
pub trait Within<T>: Future<Output = Result<T, sqlx::Error>> + Sized {
    /// The query, or after `wait_ms` ms without an answer an I/O error of
    /// kind `TimedOut` (transient by [`is_transient`], as a lost connection
    /// is). The query given up is dropped, and its connection, handed back
    /// to the pool, is closed if it stays silent ([`bounded`]).
    fn within(self, wait_ms: u64) -> impl Future<Output = Result<T, sqlx::Error>> + Send
    where
        Self: Send,
        T: Send,
    {
        async move {
            bounded(wait_ms, self)
                .await
                .unwrap_or_else(|| Err(no_answer(wait_ms)))
        }
    }
}

/// What a wait bounded on the client answers when the server gave nothing
/// within `wait_ms` ms: an I/O error of kind `TimedOut`, transient by
/// [`is_transient`] as a lost connection is. For the waits [`Within`] cannot
/// wrap (a future whose error is not `sqlx::Error`, or one whose connection
/// must be dealt with on timeout).
pub fn no_answer(wait_ms: u64) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL gave no answer within {wait_ms} ms"),
    ))
}

impl<T, F: Future<Output = Result<T, sqlx::Error>>> Within<T> for F {}

/// The embedded migrations, for tools that report or apply them.
pub fn migrator() -> &'static Migrator {
    &MIGRATIONS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_that_does_not_resolve_is_named_and_waited_for() {
        // `.invalid` never resolves (RFC 6761).
        let failed = connect("postgres://u:p@wallex-db.invalid:5432/db", 1)
            .await
            .map(|_| ())
            .expect_err("no such host");
        let message = failed.to_string();
        assert!(
            matches!(&failed, PostgresError::Unresolved { host, .. } if host == "wallex-db.invalid"),
            "{message}"
        );
        assert!(
            message.contains("wallex-db.invalid does not resolve"),
            "{message}"
        );
        assert!(failed.is_transient(), "DNS can lag a Service: {message}");
    }
}
