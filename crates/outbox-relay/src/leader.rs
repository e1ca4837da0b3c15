//! Leader election: exactly one replica relays at a time.
//!
//! The leader holds a session-level PostgreSQL advisory lock on a connection
//! of its own (not the pool's, whose connections come and go). When the
//! leader's process dies its connection closes and PostgreSQL releases the
//! lock; a standby, trying every [`STANDBY_RETRY_INTERVAL_MS`], takes over.
//! The leader checks its connection every [`LEADER_CHECK_INTERVAL_MS`] and
//! stops relaying (after the batch in hand) when it has lost it, so two
//! replicas publish together for at most about a check interval plus one
//! batch: duplicates the consumers drop by event id, never a lost event. A
//! leader that stops running with its socket open (paused, stuck) loses
//! the lock after [`LOCK_IDLE_SESSION_TIMEOUT_MS`]: the server ends its
//! idle session, as a lease runs out. A leader whose batches keep failing
//! while its lock connection answers (its pool's path to PostgreSQL or its
//! path to Kafka broken, not another replica's) steps down after
//! `RELAY_STEP_DOWN_AFTER_FAILING_MS`: it unlocks and sits out
//! [`STEP_DOWN_SIT_OUT_MS`] before it stands by again, so a standby takes
//! over rather than no one publishing for as long as the fault lasts.
//!
//! Each term runs a new relay, which starts from the checkpoint in PostgreSQL
//! (on KurrentDB it opens its subscription there, and drops it when the term
//! ends), so whoever leads next resumes right after the last batch Kafka
//! acknowledged.

use std::sync::Arc;
use std::time::Duration;

use event_relay::{run_relay, RelayLimits};
use event_sink::EventSink;
use event_store::EventStore;
use postgres_support::Within;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The advisory lock of the relay's leader ("WALLEXRL" in ASCII, so it
/// collides with no other lock of ours by chance).
pub const RELAY_LEADER_LOCK_KEY: i64 = 0x5741_4c4c_4558_524c;
/// How often a standby tries to become the leader.
pub const STANDBY_RETRY_INTERVAL_MS: u64 = 1_000;
/// How often the leader checks that its lock connection is alive.
pub const LEADER_CHECK_INTERVAL_MS: u64 = 1_000;
/// A check that takes longer than this counts as a lost connection; so does
/// any other statement on the lock connection (a standby's try for the lock,
/// the session's setting, the unlock at shutdown) that waits longer: the
/// connection is dropped and opened again, as a standby silent in its try
/// would never take over from a leader gone meanwhile.
pub const LEADER_CHECK_TIMEOUT_MS: u64 = 2_000;
/// How long, in ms, a leader that stepped down waits before it tries for the
/// lock again: several of a standby's tries ([`STANDBY_RETRY_INTERVAL_MS`]),
/// so another replica takes the lock first. Should every replica fail alike
/// (Kafka away for all), they take turns, each term starting again from the
/// checkpoint.
pub const STEP_DOWN_SIT_OUT_MS: u64 = 5 * STANDBY_RETRY_INTERVAL_MS;
/// Bound on opening the lock connection.
pub const LOCK_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// TCP keepalives of the lock connection's server side, so PostgreSQL also
/// releases the lock of a leader whose host vanished without closing its
/// socket (after about idle + interval × count seconds).
const LOCK_KEEPALIVE_IDLE_SECONDS: &str = "5";
const LOCK_KEEPALIVE_INTERVAL_SECONDS: &str = "2";
const LOCK_KEEPALIVE_COUNT: &str = "3";
/// How long the server keeps the lock connection's session idle, in ms
/// (`idle_session_timeout`, PostgreSQL 14 and later; older servers go
/// without): the leader checks its connection every
/// [`LEADER_CHECK_INTERVAL_MS`] and a standby tries the lock as often, so a
/// session idle this long belongs to a process that stopped (paused,
/// stuck) while its socket stayed open; ending it frees the lock for a
/// standby, as a lease that ran out. Keepalives cannot: the paused
/// process's kernel answers them.
pub const LOCK_IDLE_SESSION_TIMEOUT_MS: u64 = 10_000;
/// The first PostgreSQL release with `idle_session_timeout` (14), as
/// `server_version_num` counts.
const IDLE_SESSION_TIMEOUT_SINCE_VERSION_NUM: i32 = 140_000;

/// Whether this replica leads, and the PostgreSQL backend holding its lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leadership {
    pub leader: bool,
    pub lock_backend_pid: Option<i32>,
}

enum Term {
    /// Shutdown was asked: release the lock and stop.
    Shutdown,
    /// The lock connection failed: the lock is gone, stand by again.
    Lost,
    /// The relay ended unasked (its batches kept failing, or it panicked):
    /// give the lock up and sit out before standing by again.
    SteppedDown,
}

/// A task aborted when its owner is dropped: a killed election must not
/// leave a relay publishing without a lock.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stands by, leads when it holds the lock, and relays `store` to `sink`
/// while it leads, until `shutdown` turns true (or its sender goes away).
pub async fn run_elected_relay(
    lock_options: PgConnectOptions,
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    limits: RelayLimits,
    progress: watch::Sender<u64>,
    leadership: watch::Sender<Leadership>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lock_options = with_keepalives(lock_options);
    let mut connection: Option<PgConnection> = None;
    while !stopping(&shutdown) {
        match try_lead(&mut connection, &lock_options).await {
            Ok(Some(lock_backend_pid)) => {
                tracing::info!(lock_backend_pid, "leader: relaying to {}", sink.name());
                leadership.send_replace(Leadership {
                    leader: true,
                    lock_backend_pid: Some(lock_backend_pid),
                });
                let term = match connection.as_mut() {
                    Some(held) => {
                        lead(
                            held,
                            Arc::clone(&store),
                            Arc::clone(&sink),
                            limits,
                            progress.clone(),
                            &mut shutdown,
                        )
                        .await
                    }
                    None => Term::Lost,
                };
                leadership.send_replace(Leadership::default());
                match term {
                    Term::Shutdown => {
                        release(connection.take()).await;
                        tracing::info!("leader: stopped and released the lock");
                        return;
                    }
                    Term::Lost => {
                        connection = None;
                        tracing::warn!("leader: lost the lock connection; standing by");
                    }
                    Term::SteppedDown => {
                        release(connection.take()).await;
                        tracing::warn!(
                            sit_out_ms = STEP_DOWN_SIT_OUT_MS,
                            "leader: stepped down, the relay could not publish; standing by"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(STEP_DOWN_SIT_OUT_MS)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                connection = None;
                tracing::warn!(%error, "standby: cannot reach PostgreSQL for the leader lock");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(STANDBY_RETRY_INTERVAL_MS)) => {}
            _ = shutdown.changed() => {}
        }
    }
    release(connection.take()).await;
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

fn with_keepalives(options: PgConnectOptions) -> PgConnectOptions {
    options
        .application_name("outbox-relay-leader-lock")
        .options([
            ("tcp_keepalives_idle", LOCK_KEEPALIVE_IDLE_SECONDS),
            ("tcp_keepalives_interval", LOCK_KEEPALIVE_INTERVAL_SECONDS),
            ("tcp_keepalives_count", LOCK_KEEPALIVE_COUNT),
        ])
}

/// Opens a connection for the leader lock, within
/// [`LOCK_CONNECT_TIMEOUT_MS`], its session ended by the server once idle
/// for [`LOCK_IDLE_SESSION_TIMEOUT_MS`] (on a server that knows the
/// setting: an older one would refuse the name).
pub async fn open_lock_connection(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let mut connection = tokio::time::timeout(
        Duration::from_millis(LOCK_CONNECT_TIMEOUT_MS),
        PgConnection::connect_with(options),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    sqlx::query(
        "SELECT set_config('idle_session_timeout', $1, false) \
         WHERE current_setting('server_version_num')::int >= $2",
    )
    .bind(format!("{LOCK_IDLE_SESSION_TIMEOUT_MS}ms"))
    .bind(IDLE_SESSION_TIMEOUT_SINCE_VERSION_NUM)
    .execute(&mut connection)
    .within(LEADER_CHECK_TIMEOUT_MS)
    .await?;
    Ok(connection)
}

/// Tries the lock on the standby connection (opened if need be); the
/// backend's pid when this replica now leads.
async fn try_lead(
    connection: &mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<Option<i32>, sqlx::Error> {
    if connection.is_none() {
        *connection = Some(open_lock_connection(options).await?);
    }
    let Some(held) = connection.as_mut() else {
        return Ok(None);
    };
    let (acquired, backend_pid): (bool, i32) =
        sqlx::query_as("SELECT pg_try_advisory_lock($1), pg_backend_pid()")
            .bind(RELAY_LEADER_LOCK_KEY)
            .fetch_one(held)
            .within(LEADER_CHECK_TIMEOUT_MS)
            .await?;
    Ok(acquired.then_some(backend_pid))
}

/// Relays while the lock connection answers, no shutdown is asked and the
/// relay runs; the relay always finishes the batch in hand before this
/// returns.
async fn lead(
    connection: &mut PgConnection,
    store: Arc<dyn EventStore>,
    sink: Arc<dyn EventSink>,
    limits: RelayLimits,
    progress: watch::Sender<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Term {
    let (stop_relay, relay_stopping) = watch::channel(false);
    let mut relay = AbortOnDrop(tokio::spawn(run_relay(
        store,
        sink,
        // The publisher moves bytes: Kafka refuses none of them for good.
        None,
        limits,
        progress,
        relay_stopping,
    )));
    let mut check = tokio::time::interval(Duration::from_millis(LEADER_CHECK_INTERVAL_MS));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term: Option<Term> = None;
    loop {
        tokio::select! {
            finished = &mut relay.0 => {
                if let Err(error) = finished {
                    tracing::error!(%error, "the relay task ended abnormally");
                }
                return term.unwrap_or(Term::SteppedDown);
            }
            _ = shutdown.changed(), if term.is_none() => {
                term = Some(Term::Shutdown);
                stop_relay.send_replace(true);
            }
            _ = check.tick(), if term.is_none() => {
                if !answers(connection).await {
                    term = Some(Term::Lost);
                    stop_relay.send_replace(true);
                }
            }
        }
    }
}

async fn answers(connection: &mut PgConnection) -> bool {
    let checked = tokio::time::timeout(
        Duration::from_millis(LEADER_CHECK_TIMEOUT_MS),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(connection),
    )
    .await;
    matches!(checked, Ok(Ok(1)))
}

/// Unlocks and closes politely; the lock goes with the session anyway.
async fn release(connection: Option<PgConnection>) {
    let Some(mut connection) = connection else {
        return;
    };
    let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
        .bind(RELAY_LEADER_LOCK_KEY)
        .fetch_one(&mut connection)
        .within(LEADER_CHECK_TIMEOUT_MS)
        .await;
    if let Err(error) = unlocked {
        // Dropped unclosed: the server ends the session, and the lock with it.
        tracing::debug!(%error, "leader lock not released explicitly");
        return;
    }
    let closed = tokio::time::timeout(
        Duration::from_millis(LEADER_CHECK_TIMEOUT_MS),
        connection.close(),
    )
    .await;
    if !matches!(closed, Ok(Ok(()))) {
        tracing::debug!("leader lock connection not closed cleanly");
    }
}
