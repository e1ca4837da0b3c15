//! Locks shared by every command-api replica, in Redis: `SET key token NX PX`
//! to take, a compare-and-delete script to give back only what we hold. A
//! lock expires by itself, so a crashed holder blocks nobody for long.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::{redis, Config, Pool, Runtime};
use rand::Rng;
use uuid::Uuid;
use wallet_domain::WalletId;

use crate::{LockError, LockLease, WalletLock};

const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"#;

/// A lock outlives a crashed holder by at most this long. Commands hold a lock
/// for milliseconds; a lease that expires early costs only a version conflict
/// (retried), while a long one stalls a crashed replica's wallets.
pub const LOCK_TTL_MS_DEFAULT: u64 = 2_000;
/// How long a command waits for a wallet's lock before answering 503.
pub const LOCK_WAIT_MAX_MS_DEFAULT: u64 = 10_000;
const RETRY_BACKOFF_MIN_MS_DEFAULT: u64 = 1;
const RETRY_BACKOFF_MAX_MS_DEFAULT: u64 = 50;
/// Connections per replica: one per concurrent command holding a lock is plenty.
const POOL_SIZE_MAX_DEFAULT: usize = 32;
const COMMAND_TIMEOUT_MS_DEFAULT: u64 = 500;

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
    pub pool_size_max: usize,
    /// Bound on one Redis round trip, so a hung Redis counts as unavailable.
    pub command_timeout_ms: u64,
}

impl RedisLockConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ttl_ms: LOCK_TTL_MS_DEFAULT,
            wait_max_ms: LOCK_WAIT_MAX_MS_DEFAULT,
            retry_backoff_min_ms: RETRY_BACKOFF_MIN_MS_DEFAULT,
            retry_backoff_max_ms: RETRY_BACKOFF_MAX_MS_DEFAULT,
            pool_size_max: POOL_SIZE_MAX_DEFAULT,
            command_timeout_ms: COMMAND_TIMEOUT_MS_DEFAULT,
        }
    }
}

pub struct RedisWalletLock {
    pool: Pool,
    config: RedisLockConfig,
}

fn unavailable(error: impl std::fmt::Display) -> LockError {
    LockError::Unavailable(error.to_string())
}

fn lock_key(wallet_id: &WalletId) -> String {
    format!("wallex:lock:wallet:{wallet_id}")
}

impl RedisWalletLock {
    pub fn connect(config: RedisLockConfig) -> Result<Self, LockError> {
        let mut pool_config = Config::from_url(&config.url);
        pool_config.pool = Some(deadpool_redis::PoolConfig::new(config.pool_size_max));
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(unavailable)?;
        Ok(Self { pool, config })
    }

    /// Whether Redis answers a PING.
    pub async fn ping(&self) -> Result<(), LockError> {
        let mut connection = self.pool.get().await.map_err(unavailable)?;
        let timeout = Duration::from_millis(self.config.command_timeout_ms);
        let pong: String =
            tokio::time::timeout(timeout, redis::cmd("PING").query_async(&mut connection))
                .await
                .map_err(unavailable)?
                .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable(format!("unexpected PING reply {pong:?}")))
        }
    }

    async fn try_take(&self, key: &str, token: &str) -> Result<bool, LockError> {
        let mut connection = self.pool.get().await.map_err(unavailable)?;
        let timeout = Duration::from_millis(self.config.command_timeout_ms);
        let taken: Option<String> = tokio::time::timeout(
            timeout,
            redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(self.config.ttl_ms)
                .query_async(&mut connection),
        )
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        Ok(taken.is_some())
    }

    async fn take(&self, wallet_id: &WalletId, token: &str) -> Result<(), LockError> {
        let key = lock_key(wallet_id);
        let deadline = Instant::now() + Duration::from_millis(self.config.wait_max_ms);
        let mut backoff_ms = self.config.retry_backoff_min_ms.max(1);
        loop {
            if self.try_take(&key, token).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LockError::TimedOut(wallet_id.clone()));
            }
            let jitter = rand::rng().random_range(0..=backoff_ms);
            tokio::time::sleep(Duration::from_millis(backoff_ms + jitter)).await;
            backoff_ms = (backoff_ms * 2).min(self.config.retry_backoff_max_ms);
        }
    }
}

/// Gives the locks back when the lease is dropped.
struct Held {
    pool: Pool,
    keys: Vec<String>,
    token: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime: the locks expire by themselves.
        };
        let (pool, keys, token) = (
            self.pool.clone(),
            std::mem::take(&mut self.keys),
            self.token.clone(),
        );
        runtime.spawn(async move {
            let Ok(mut connection) = pool.get().await else {
                return;
            };
            for key in keys {
                let released: Result<i64, _> = redis::cmd("EVAL")
                    .arg(RELEASE_SCRIPT)
                    .arg(1)
                    .arg(&key)
                    .arg(&token)
                    .query_async(&mut connection)
                    .await;
                if let Err(error) = released {
                    tracing::debug!(%key, %error, "lock release failed; it will expire");
                }
            }
        });
    }
}

#[async_trait]
impl WalletLock for RedisWalletLock {
    async fn acquire(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, LockError> {
        let mut ordered: Vec<&WalletId> = wallet_ids.to_vec();
        ordered.sort();
        ordered.dedup();
        let token = Uuid::new_v4().to_string();
        let mut held = Held {
            pool: self.pool.clone(),
            keys: Vec::with_capacity(ordered.len()),
            token: token.clone(),
        };
        for wallet_id in ordered {
            // On failure `held` is dropped and gives back what was taken.
            self.take(wallet_id, &token).await?;
            held.keys.push(lock_key(wallet_id));
        }
        Ok(LockLease::new(vec![Box::new(held)]))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
