//! Locks shared by every command-api replica, in Redis. One script takes
//! every key of a command at once or none of them (`SET key token NX PX` for
//! each, after checking that none is held), and one gives back only the keys
//! that still hold our token (compare-and-delete). So an uncontended command
//! costs one round trip to take its locks, a transfer's two wallets included,
//! and none to give them back: a dropped lease waits, for at most
//! [`RELEASE_LINGER_MS`], for the replica's next lock request, whose script
//! call gives it back (compare-and-delete) before it takes its own keys. What
//! no request carried within that time one task gives back, every lease left
//! in one script call, so an idle replica's lock is free again within a few
//! milliseconds.
//! Scripts run by their SHA-1 (`EVALSHA`), sent whole only when Redis does not
//! know them yet. Every request of a replica goes down one multiplexed
//! connection (`redis::aio::ConnectionManager`, made on the first request): a
//! pool checked each connection out with a `PING` of its own, a second round
//! trip per lock. A request that fails or gets no answer replaces that
//! connection, since one that went silent (a lost NAT entry, a hung proxy) or
//! reaches a demoted primary (`READONLY`) would fail every request after it;
//! every request that failed at once is sent again on the new connection: a
//! `PING`, a release (compare-and-delete), and a lock request, whose script
//! counts keys holding the request's own token as its own, so a request
//! Redis ran before the failure takes nothing twice. A lock expires
//! by itself, so a crashed holder (or a release that could not be queued or
//! sent) blocks nobody for long.
//!
//! In front of Redis, each replica queues its own commands on one wallet in
//! an in-process lock (first come, first served), so only the head of each
//! replica's queue polls Redis: without it every waiter of a busy wallet
//! polled on its own backoff, a release went to whichever poll came first,
//! and some waiters were overtaken until their wait ran out (the seed's
//! single-wallet load test, 50 concurrent requests, saw 503s after 10 s).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;
use wallet_domain::WalletId;

use crate::{InProcessWalletLock, LockError, LockLease, WalletLock, WrittenVersions};

/// Records, beside a lock given back, the version its holder wrote: the
/// lock's key with [`WRITTEN_SUFFIX`] (`written_suffix`, set before it by
/// [`script`]) holds the highest version recorded, for [`WRITTEN_TTL_MS`].
/// Both read and write with `redis.pcall`, so that nothing there fails a
/// script halfway (Redis keeps a script's writes before an error: a lock
/// request would hold its keys without knowing it, h149 F1): a value that is
/// no version, or no string at all (written by something else), counts as
/// none and is replaced by the next version written; a version that cannot
/// be recorded (Redis out of memory) is not, and the lock works on.
const RECORD_WRITTEN: &str = r#"
local function written_of(key)
    local value = redis.pcall("GET", key .. written_suffix)
    if type(value) ~= "string" then
        return 0
    end
    local known = tonumber(value)
    if not known or known < 0 or known > 9007199254740991 or known ~= math.floor(known) then
        return 0
    end
    return known
end
local function record_written(key, version, ttl)
    local wrote = tonumber(version)
    if wrote and wrote > written_of(key) then
        redis.pcall("SET", key .. written_suffix, version, "PX", ttl)
    end
end
"#;

/// First gives back the leases carried along: each key `KEYS[i]`, for `i`
/// past `taking` (`ARGV[3]`), that still holds its token (`ARGV[j]`,
/// `j = 5 + 2 * (i - taking - 1)`) is deleted, and the version its holder
/// wrote (`ARGV[j + 1]`, 0 for none) recorded for `ARGV[4]` milliseconds;
/// a lock that expired and was taken by another holder is left alone. Then
/// takes every key in `KEYS[1..=taking]` with token `ARGV[1]` and time to
/// live `ARGV[2]` milliseconds, or none when one is held by another token
/// (a key holding `ARGV[1]` is this request's own, taken by a try whose
/// answer was lost). Answers `{0, v1, …, vtaking}` when taken, each `v` the
/// version recorded for that key (0 when none), else `{i}`, the 1-based
/// index in `KEYS` of the first key held by someone else. Keys are on one
/// Redis (no cluster slots are involved).
const ACQUIRE_SCRIPT: &str = r#"
local taking = tonumber(ARGV[3])
for index = taking + 1, #KEYS do
    local token = 5 + 2 * (index - taking - 1)
    if redis.call("GET", KEYS[index]) == ARGV[token] then
        redis.call("DEL", KEYS[index])
        record_written(KEYS[index], ARGV[token + 1], ARGV[4])
    end
end
for index = 1, taking do
    local holder = redis.call("GET", KEYS[index])
    if holder and holder ~= ARGV[1] then
        return {index}
    end
end
local taken = {0}
for index = 1, taking do
    redis.call("SET", KEYS[index], ARGV[1], "PX", ARGV[2])
    taken[index + 1] = written_of(KEYS[index])
end
return taken
"#;

/// Deletes each key `KEYS[i]` that still holds token `ARGV[2i]` and records
/// the version its holder wrote, `ARGV[2i + 1]` (0 for none), for `ARGV[1]`
/// milliseconds (a lock that expired and was taken by another holder is
/// left alone); answers how many. One token per key, so one call gives back
/// the leases of many commands.
const RELEASE_SCRIPT: &str = r#"
local released = 0
for index, key in ipairs(KEYS) do
    if redis.call("GET", key) == ARGV[2 * index] then
        released = released + redis.call("DEL", key)
        record_written(key, ARGV[2 * index + 1], ARGV[1])
    end
end
return released
"#;

/// What a lock key's companion, holding the version its last holder wrote,
/// ends with: `:` is in no wallet id, so no lock key ends so.
pub const WRITTEN_SUFFIX: &str = ":written";
/// How long, in ms, the version a holder wrote is kept beside its wallet's
/// lock: far longer than commands on a busy wallet are apart, while Redis
/// holds one key (about 160 bytes) per wallet written within it, where the
/// locks alone hold one per command running (h149 F2: 2,000 keys for 2,000
/// wallets created in 10 minutes). A replica whose cached wallet outlived it
/// decides on its cache, and at worst retries its append once on the
/// expected version.
pub const WRITTEN_TTL_MS: u64 = 60_000;

/// A lock outlives a crashed holder by at most this long. Commands hold a lock
/// for milliseconds; a lease that expires early costs only a version conflict
/// (retried), while a long one stalls a crashed replica's wallets.
pub const LOCK_TTL_MS_DEFAULT: u64 = 2_000;
/// How long a command waits for a wallet's lock before answering 503.
pub const LOCK_WAIT_MAX_MS_DEFAULT: u64 = 10_000;
/// What every lock key starts with, before the wallet id, unless configured
/// ([`RedisLockConfig::key_prefix`]).
pub const LOCK_KEY_PREFIX_DEFAULT: &str = "wallex:lock:wallet:";
const RETRY_BACKOFF_MIN_MS_DEFAULT: u64 = 1;
const RETRY_BACKOFF_MAX_MS_DEFAULT: u64 = 50;
const COMMAND_TIMEOUT_MS_DEFAULT: u64 = 500;
/// Attempts to connect again after the connection dropped, within one
/// request (each bounded by `command_timeout_ms`); the request that still
/// finds no Redis counts it away ([`AWAY_RETRY_INTERVAL_MS`]).
const RECONNECT_ATTEMPTS_MAX: usize = 1;
/// Tries of one request to Redis (a lock request, a release, a `PING`; each
/// safe to repeat): a try that failed before the request's time ran out is
/// sent again once, on a new connection.
const REQUEST_TRIES_MAX: usize = 2;
/// While Redis is away (its last request failed), how often, in ms, one
/// command asks it again: the others go on without the lock at once (the
/// expected version still guards their appends) instead of each waiting
/// out `command_timeout_ms` (tester h86: with Redis paused every command
/// took a second).
pub const AWAY_RETRY_INTERVAL_MS: u64 = 1_000;
/// For how long, in ms, the probe reports a failed lock request that no
/// answered one followed, when Redis answers its `PING`: a replica with
/// commands asks Redis again every [`AWAY_RETRY_INTERVAL_MS`], so a failure
/// that lasts is reported without a break, and an idle replica's report
/// clears once Redis answers.
pub const FAILED_REQUEST_REPORTED_MS: u64 = 5_000;
/// Dropped leases waiting to be given back at most; a lease dropped while the
/// queue is full is left to expire (its TTL), which costs waiting, never money.
pub const RELEASE_QUEUE_LEASES_MAX: usize = 4_096;
/// Leases given back in one script call at most (a lease has one or two keys).
pub const RELEASE_BATCH_LEASES_MAX: usize = 256;
/// How long, in milliseconds, a dropped lease waits for a lock request to
/// carry it before the release task gives it back in a call of its own: what
/// another replica waiting for that wallet may wait longer (it polls every
/// 1–50 ms anyway), while this replica's own next request on the wallet
/// carries the release and waits nothing.
pub const RELEASE_LINGER_MS: u64 = 5;
/// Seconds a lock connection stays idle before TCP's keepalive probes it.
/// A NAT or load balancer that forgets idle connections (after 350 s on an
/// AWS NLB, 4 minutes on Azure's) dropped the lock's connection silently
/// between commands, so the first command after each quiet spell waited a
/// request timeout and ran unlocked (tester h118, F4); Linux's own default
/// is two hours.
pub const KEEPALIVE_IDLE_S: u64 = 60;
/// Seconds between keepalive probes once they start.
pub const KEEPALIVE_INTERVAL_S: u64 = 10;

/// How the lock reaches the Redis at `url`: `TCP_NODELAY` (a lock request is
/// one small write, which Nagle's algorithm would hold back behind an
/// unanswered one on the shared connection) and keepalive probes
/// ([`KEEPALIVE_IDLE_S`], [`KEEPALIVE_INTERVAL_S`]).
fn connection_info(url: &str) -> Result<redis::ConnectionInfo, LockError> {
    use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(KEEPALIVE_IDLE_S))
        .with_interval(Duration::from_secs(KEEPALIVE_INTERVAL_S));
    Ok(crate::check_redis_url(url)
        .map_err(unavailable)?
        .set_tcp_settings(
            TcpSettings::default()
                .set_nodelay(true)
                .set_keepalive(keepalive),
        ))
}

#[derive(Debug, Clone)]
pub struct RedisLockConfig {
    pub url: String,
    /// How long a lock lives if its holder never releases it.
    pub ttl_ms: u64,
    /// How long a command waits for a wallet's lock before giving up.
    pub wait_max_ms: u64,
    /// Pause between tries, doubled up to `retry_backoff_max_ms`, with jitter.
    pub retry_backoff_min_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Bound on one Redis round trip, so a hung Redis counts as unavailable.
    pub command_timeout_ms: u64,
    /// What every lock key starts with, before the wallet id: deployments
    /// that share one Redis each take a prefix of their own, or the same
    /// wallet id in two of them waits on one lock (h112 F1).
    pub key_prefix: String,
}

impl RedisLockConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ttl_ms: LOCK_TTL_MS_DEFAULT,
            wait_max_ms: LOCK_WAIT_MAX_MS_DEFAULT,
            retry_backoff_min_ms: RETRY_BACKOFF_MIN_MS_DEFAULT,
            retry_backoff_max_ms: RETRY_BACKOFF_MAX_MS_DEFAULT,
            command_timeout_ms: COMMAND_TIMEOUT_MS_DEFAULT,
            key_prefix: LOCK_KEY_PREFIX_DEFAULT.to_owned(),
        }
    }
}

pub struct RedisWalletLock {
    /// The replica's one connection, shared by every request (pipelined),
    /// replaced after a request on it fails.
    connection: Arc<SharedConnection>,
    config: RedisLockConfig,
    /// This replica's queue of commands for each wallet, taken before Redis.
    queue: InProcessWalletLock,
    scripts: Arc<Scripts>,
    round_trips: Arc<AtomicU64>,
    /// Dropped leases not given back yet.
    releases: Arc<PendingReleases>,
    /// The task that gives back what no request carried, started by the
    /// first acquire (on the runtime that serves the commands).
    release_task: OnceLock<()>,
    /// When this lock was made: the clock of `away_until_ms`.
    created: Instant,
    /// Milliseconds since `created` until which Redis counts as away (0:
    /// it answered last): commands meanwhile go on without asking it.
    away_until_ms: AtomicU64,
    /// When (ms since `created`) and why the last lock request failed, until
    /// one is answered: what the probe reports for
    /// [`FAILED_REQUEST_REPORTED_MS`] even when Redis answers its `PING`
    /// (out of memory, read-only).
    away_because: Mutex<Option<(u64, String)>>,
}

/// The connection every request of a replica shares, and what makes a new
/// one.
struct SharedConnection {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// The connection and how many were made before it.
    current: Mutex<(u64, ConnectionManager)>,
}

impl SharedConnection {
    fn new(client: redis::Client, config: ConnectionManagerConfig) -> Result<Self, LockError> {
        let first = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(unavailable)?;
        Ok(Self {
            client,
            config,
            current: Mutex::new((0, first)),
        })
    }

    /// The connection to send on, with its number.
    fn get(&self) -> (u64, ConnectionManager) {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces connection `number` (a request on it failed) by a new one,
    /// made on its first request; a connection already replaced stays.
    fn replace(&self, number: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != number {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => *current = (number + 1, fresh),
            Err(error) => tracing::warn!(%error, "cannot make a new connection to Redis"),
        }
    }

    /// Sends `request`, which must be safe to repeat, bounded by `timeout`
    /// in all: a try that fails or gets no answer replaces the connection,
    /// and one that failed before the time ran out is sent again on the new
    /// connection ([`REQUEST_TRIES_MAX`] tries). Each try counts in
    /// `round_trips`.
    async fn send<T, Answer>(
        &self,
        timeout: Duration,
        round_trips: Option<&AtomicU64>,
        request: impl Fn(ConnectionManager) -> Answer,
    ) -> Result<T, LockError>
    where
        Answer: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = Instant::now() + timeout;
        let mut tries = 0;
        loop {
            tries += 1;
            if let Some(round_trips) = round_trips {
                round_trips.fetch_add(1, Ordering::Relaxed);
            }
            let (number, connection) = self.get();
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match tokio::time::timeout(left, request(connection)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => unavailable(error),
                Err(elapsed) => unavailable(elapsed),
            };
            self.replace(number);
            if tries >= REQUEST_TRIES_MAX || Instant::now() >= deadline {
                return Err(error);
            }
            tracing::debug!(%error, "Redis request failed; sent again on a new connection");
        }
    }
}

/// A dropped lease's keys, still holding `token` unless they expired, with
/// the version its holder wrote to each key's wallet (0 for none), one per
/// key.
struct Release {
    keys: Vec<String>,
    token: String,
    versions: Vec<u64>,
}

impl Release {
    /// Each key with the version written to its wallet.
    fn written(&self) -> impl Iterator<Item = (&String, u64)> {
        self.keys.iter().zip(self.versions.iter().copied())
    }
}

/// The leases dropped and not given back yet, oldest first (at most
/// [`RELEASE_QUEUE_LEASES_MAX`]), shared by the lock requests that carry
/// them and the task that gives back the rest.
#[derive(Default)]
struct PendingReleases {
    leases: Mutex<VecDeque<Release>>,
    /// Woken by each lease dropped, and once when the lock is dropped.
    queued: Notify,
    /// The lock is gone: the task gives back what is left and ends.
    closed: AtomicBool,
}

impl PendingReleases {
    fn push(&self, release: Release) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        if leases.len() >= RELEASE_QUEUE_LEASES_MAX {
            tracing::debug!("lock release not queued (queue full); the locks will expire");
            return;
        }
        leases.push_back(release);
        drop(leases);
        self.queued.notify_one();
    }

    /// The oldest [`RELEASE_BATCH_LEASES_MAX`] leases at most, taken out.
    fn take_batch(&self) -> Vec<Release> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let count = leases.len().min(RELEASE_BATCH_LEASES_MAX);
        leases.drain(..count).collect()
    }
}

/// The two scripts, hashed once.
struct Scripts {
    acquire: Script,
    release: Script,
}

/// `body` after what it needs to record the versions written.
fn script(body: &str) -> Script {
    Script::new(&format!(
        "local written_suffix = {WRITTEN_SUFFIX:?}\n{RECORD_WRITTEN}{body}"
    ))
}

fn unavailable(error: impl std::fmt::Display) -> LockError {
    LockError::Unavailable(error.to_string())
}

fn lock_key(prefix: &str, wallet_id: &WalletId) -> String {
    format!("{prefix}{wallet_id}")
}

impl RedisWalletLock {
    /// A lock on the Redis at `config.url`. Sends nothing: the connection
    /// is made by the first request. Fails on a URL that is not Redis's.
    pub fn connect(config: RedisLockConfig) -> Result<Self, LockError> {
        let client = redis::Client::open(connection_info(&config.url)?).map_err(unavailable)?;
        let timeout = Some(Duration::from_millis(config.command_timeout_ms));
        let connection = SharedConnection::new(
            client,
            ConnectionManagerConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout)
                .set_number_of_retries(RECONNECT_ATTEMPTS_MAX),
        )?;
        Ok(Self {
            connection: Arc::new(connection),
            config,
            queue: InProcessWalletLock::default(),
            scripts: Arc::new(Scripts {
                acquire: script(ACQUIRE_SCRIPT),
                release: script(RELEASE_SCRIPT),
            }),
            round_trips: Arc::new(AtomicU64::new(0)),
            releases: Arc::default(),
            release_task: OnceLock::new(),
            created: Instant::now(),
            away_until_ms: AtomicU64::new(0),
            away_because: Mutex::new(None),
        })
    }

    /// Starts the release task on the first call.
    fn start_release_task(&self) {
        self.release_task.get_or_init(|| {
            tokio::spawn(give_back(
                Arc::clone(&self.connection),
                Arc::clone(&self.scripts),
                Arc::clone(&self.round_trips),
                Duration::from_millis(self.config.command_timeout_ms),
                Arc::clone(&self.releases),
            ));
        });
    }

    /// Round trips to Redis this lock has made to take and give back locks
    /// (a script Redis did not know yet counts once): what a benchmark or a
    /// test reads to see what a command costs.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> Result<(), LockError> {
        let timeout = Duration::from_millis(self.config.command_timeout_ms);
        let pong: String = self
            .connection
            .send(timeout, None, |mut connection| async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(format!("unexpected PING reply {pong:?}")))
        }
    }

    /// One attempt to take every key of `keys`, giving back the leases
    /// dropped since the last call on the way: `Ok` with the version last
    /// written to each key's wallet (0 when none is known) when all were
    /// taken, else `Err` with the index in `keys` of one that someone else
    /// holds. Should the call fail, the leases it carried are queued again
    /// for the release task.
    async fn try_take(
        &self,
        keys: &[String],
        token: &str,
    ) -> Result<Result<Vec<u64>, usize>, LockError> {
        let carried = self.releases.take_batch();
        let mut invocation = self.scripts.acquire.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation
            .arg(token)
            .arg(self.config.ttl_ms)
            .arg(keys.len())
            .arg(WRITTEN_TTL_MS);
        for release in &carried {
            for (key, version) in release.written() {
                invocation.key(key).arg(&release.token).arg(version);
            }
        }
        // A connection made on the way is bounded with the script.
        let timeout = Duration::from_millis(self.config.command_timeout_ms);
        let invocation = &invocation;
        let answer: Result<Vec<u64>, LockError> = self
            .connection
            .send(
                timeout,
                Some(&self.round_trips),
                |mut connection| async move { invocation.invoke_async(&mut connection).await },
            )
            .await;
        match answer {
            Ok(answer) => match answer.split_first() {
                Some((0, versions)) if versions.len() == keys.len() => Ok(Ok(versions.to_vec())),
                Some((&held_at, [])) if held_at > 0 => {
                    Ok(Err(usize::try_from(held_at - 1).unwrap_or(usize::MAX)))
                }
                _ => Err(unavailable(format!(
                    "the lock script answered {answer:?} for {} keys",
                    keys.len()
                ))),
            },
            Err(error) => {
                for release in carried {
                    self.releases.push(release);
                }
                Err(error)
            }
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `Ok` when this command may ask Redis: it answered last, or it is
    /// away and [`AWAY_RETRY_INTERVAL_MS`] has passed since it was last
    /// asked (one command asks, and the interval starts again).
    fn ask_unless_away(&self) -> Result<(), LockError> {
        let away_until = self.away_until_ms.load(Ordering::Acquire);
        if away_until == 0 {
            return Ok(());
        }
        let now = self.elapsed_ms();
        let asks = now >= away_until
            && self
                .away_until_ms
                .compare_exchange(
                    away_until,
                    now + AWAY_RETRY_INTERVAL_MS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok();
        if asks {
            Ok(())
        } else {
            Err(LockError::Unavailable(format!(
                "Redis did not answer lately; asked again every {AWAY_RETRY_INTERVAL_MS} ms"
            )))
        }
    }

    /// Redis is away after a failed request, back after an answer.
    fn note_answer<T>(&self, taken: &Result<T, LockError>) {
        let mut because = self
            .away_because
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match taken {
            Err(LockError::Unavailable(error)) => {
                let now = self.elapsed_ms();
                self.away_until_ms
                    .store(now + AWAY_RETRY_INTERVAL_MS, Ordering::Release);
                *because = Some((now, error.clone()));
            }
            _ => {
                self.away_until_ms.store(0, Ordering::Release);
                *because = None;
            }
        }
    }

    /// Tries to take every key of `keys` until `deadline`, backing off with
    /// jitter between tries; the versions last written to the keys' wallets
    /// once taken (see [`Self::try_take`]).
    async fn take(
        &self,
        wallet_ids: &[&WalletId],
        keys: &[String],
        token: &str,
        deadline: Instant,
    ) -> Result<Vec<u64>, LockError> {
        let mut backoff_ms = self.config.retry_backoff_min_ms.max(1);
        loop {
            let held = match self.try_take(keys, token).await? {
                Ok(versions) => return Ok(versions),
                Err(held) => held,
            };
            if Instant::now() >= deadline {
                let contended = wallet_ids.get(held).ok_or_else(|| {
                    unavailable(format!(
                        "the lock script named key {held} of {}",
                        keys.len()
                    ))
                })?;
                return Err(LockError::TimedOut((*contended).clone()));
            }
            let jitter = rand::rng().random_range(0..=backoff_ms);
            tokio::time::sleep(Duration::from_millis(backoff_ms + jitter)).await;
            backoff_ms = (backoff_ms * 2).min(self.config.retry_backoff_max_ms);
        }
    }
}

impl Drop for RedisWalletLock {
    fn drop(&mut self) {
        self.releases.closed.store(true, Ordering::Release);
        self.releases.queued.notify_one();
    }
}

/// Gives the locks back when the lease is dropped, with the versions its
/// holder wrote: queued for the next lock request or [`give_back`].
struct Held {
    releases: Arc<PendingReleases>,
    /// The wallets locked, in the order of `keys`.
    wallets: Vec<WalletId>,
    keys: Vec<String>,
    token: String,
    written: WrittenVersions,
}

impl Drop for Held {
    fn drop(&mut self) {
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let versions = self
            .wallets
            .iter()
            .map(|wallet| {
                written
                    .iter()
                    .find(|(id, _)| id == wallet)
                    .map_or(0, |(_, version)| *version)
            })
            .collect();
        drop(written);
        debug_assert_eq!(self.keys.len(), self.wallets.len(), "one key per wallet");
        self.releases.push(Release {
            keys: std::mem::take(&mut self.keys),
            token: std::mem::take(&mut self.token),
            versions,
        });
    }
}

/// Gives back, until the lock is dropped, the leases no lock request carried
/// within [`RELEASE_LINGER_MS`] of being queued: each call takes what is
/// left (at most [`RELEASE_BATCH_LEASES_MAX`] leases).
async fn give_back(
    connection: Arc<SharedConnection>,
    scripts: Arc<Scripts>,
    round_trips: Arc<AtomicU64>,
    timeout: Duration,
    pending: Arc<PendingReleases>,
) {
    loop {
        pending.queued.notified().await;
        let closed = pending.closed.load(Ordering::Acquire);
        if !closed {
            tokio::time::sleep(Duration::from_millis(RELEASE_LINGER_MS)).await;
        }
        loop {
            let batch = pending.take_batch();
            if batch.is_empty() {
                break;
            }
            release(&connection, &scripts, &round_trips, timeout, &batch).await;
        }
        if closed {
            return;
        }
    }
}

/// Gives back `batch` in one script call (sent again once on a new
/// connection when it fails at once: a compare-and-delete is safe to
/// repeat); a failure then leaves its locks to expire.
async fn release(
    connection: &SharedConnection,
    scripts: &Scripts,
    round_trips: &AtomicU64,
    timeout: Duration,
    batch: &[Release],
) {
    let mut invocation = scripts.release.prepare_invoke();
    invocation.arg(WRITTEN_TTL_MS);
    for release in batch {
        for (key, version) in release.written() {
            invocation.key(key).arg(&release.token).arg(version);
        }
    }
    let invocation = &invocation;
    let released: Result<i64, LockError> = connection
        .send(timeout, Some(round_trips), |mut connection| async move {
            invocation.invoke_async(&mut connection).await
        })
        .await;
    if let Err(error) = released {
        tracing::debug!(leases = batch.len(), %error, "lock release failed; the locks will expire");
    }
}

#[async_trait]
impl WalletLock for RedisWalletLock {
    async fn acquire(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, LockError> {
        let mut ordered: Vec<&WalletId> = wallet_ids.to_vec();
        ordered.sort();
        ordered.dedup();
        if ordered.is_empty() {
            return Ok(LockLease::none());
        }
        // One wait limit for the replica's queue and Redis together.
        let deadline = Instant::now() + Duration::from_millis(self.config.wait_max_ms);
        let queued = self.queue.acquire_until(&ordered, deadline).await?;
        self.ask_unless_away()?;
        let keys: Vec<String> = ordered
            .iter()
            .map(|id| lock_key(&self.config.key_prefix, id))
            .collect();
        let token = Uuid::new_v4().to_string();
        let taken = self.take(&ordered, &keys, &token, deadline).await;
        self.note_answer(&taken);
        let versions = taken?;
        let last_written = ordered
            .iter()
            .zip(versions)
            .filter(|(_, version)| *version > 0)
            .map(|(wallet, version)| ((*wallet).clone(), version))
            .collect();
        let written = WrittenVersions::default();
        // Dropped in this order: the Redis keys are queued for release, then
        // the replica's next waiter goes on to take them.
        self.start_release_task();
        Ok(LockLease::passing_versions(
            vec![
                Box::new(Held {
                    releases: Arc::clone(&self.releases),
                    wallets: ordered.into_iter().cloned().collect(),
                    keys,
                    token,
                    written: Arc::clone(&written),
                }),
                Box::new(queued),
            ],
            last_written,
            written,
        ))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    /// Redis answers a `PING`, and the last lock request did not fail
    /// (a Redis out of memory or read-only answers the one, not the other).
    async fn probe(&self) -> Result<(), LockError> {
        self.ping().await?;
        let because = self
            .away_because
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match because {
            Some((at, error)) if self.elapsed_ms() < at + FAILED_REQUEST_REPORTED_MS => {
                Err(LockError::Unavailable(format!(
                    "Redis answers PING, but a lock request failed {} ms ago: {error}",
                    self.elapsed_ms() - at
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wait of a request to a Redis that does not answer, in ms.
    const SILENT_WAIT_MS: u64 = 200;

    #[test]
    fn the_lock_connects_without_nagle_and_with_keepalive_probes() {
        let info = connection_info("redis://127.0.0.1:6379/0").expect("a Redis URL");
        assert!(info.tcp_settings().nodelay());
        assert!(info.tcp_settings().keepalive().is_some());
        assert!(connection_info("http://127.0.0.1:6379").is_err());
    }

    fn wallet(raw: &str) -> WalletId {
        WalletId::parse(raw).expect("wallet id")
    }

    async fn unavailable_after(lock: &RedisWalletLock, wallet: &WalletId) -> Duration {
        let started = Instant::now();
        let refused = lock.acquire(&[wallet]).await.err();
        assert!(
            matches!(refused, Some(LockError::Unavailable(_))),
            "{refused:?}"
        );
        started.elapsed()
    }

    /// A Redis that takes connections and never answers (paused, or cut off
    /// by a partition): the first command waits out its request, the others
    /// go on at once until the retry interval has passed.
    #[tokio::test]
    async fn while_redis_is_away_one_command_an_interval_asks_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let mut config = RedisLockConfig::new(format!("redis://127.0.0.1:{port}"));
        config.command_timeout_ms = SILENT_WAIT_MS;
        let lock = RedisWalletLock::connect(config).expect("the pool is lazy");
        let (first, others) = (wallet("first"), wallet("others"));

        let waited = unavailable_after(&lock, &first).await;
        assert!(
            waited >= Duration::from_millis(SILENT_WAIT_MS),
            "the first asked Redis: {waited:?}"
        );
        for _ in 0..10 {
            let waited = unavailable_after(&lock, &others).await;
            assert!(
                waited < Duration::from_millis(SILENT_WAIT_MS / 2),
                "the others did not ask: {waited:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(AWAY_RETRY_INTERVAL_MS)).await;
        let waited = unavailable_after(&lock, &others).await;
        assert!(
            waited >= Duration::from_millis(SILENT_WAIT_MS),
            "asked again once the interval passed: {waited:?}"
        );
        silent.abort();
    }
}
