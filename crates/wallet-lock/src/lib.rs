//! The wallet lock port.
//!
//! Commands on one wallet take its lock so that concurrent requests queue
//! instead of racing into optimistic-concurrency conflicts. The lock only
//! cuts contention: the expected stream version at append is what keeps the
//! data correct, so a lock that is lost, expired or unavailable costs retries,
//! never money.

mod in_process;
mod redis_lock;

use std::any::Any;

use async_trait::async_trait;
use wallet_domain::WalletId;

pub use in_process::InProcessWalletLock;
pub use redis_lock::{
    RedisLockConfig, RedisWalletLock, AWAY_RETRY_INTERVAL_MS, FAILED_REQUEST_REPORTED_MS,
    LOCK_KEY_PREFIX_DEFAULT, LOCK_TTL_MS_DEFAULT, LOCK_WAIT_MAX_MS_DEFAULT,
};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("wallet lock unavailable: {0}")]
    Unavailable(String),
    #[error("timed out waiting for the lock of wallet {0}")]
    TimedOut(WalletId),
}

/// Held locks; dropping the lease releases them.
pub struct LockLease {
    _guards: Vec<Box<dyn Any + Send>>,
}

impl LockLease {
    pub fn new(guards: Vec<Box<dyn Any + Send>>) -> Self {
        Self { _guards: guards }
    }

    /// A lease that holds nothing, for when the lock service is down.
    pub fn none() -> Self {
        Self {
            _guards: Vec::new(),
        }
    }
}

#[async_trait]
pub trait WalletLock: Send + Sync {
    /// Takes every named wallet's lock, in one global order so two callers
    /// locking the same pair never deadlock.
    async fn acquire(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, LockError>;

    /// Whether [`Self::try_acquire`] can tell without waiting if the wallets
    /// are free: true in process; false for a lock that needs a round trip
    /// to know (Redis).
    fn tries_without_waiting(&self) -> bool {
        false
    }

    /// Every named wallet's lock when all are free right now, without
    /// waiting; else `None`, holding none of them. Always `None` where
    /// [`Self::tries_without_waiting`] is false.
    fn try_acquire(&self, _wallet_ids: &[&WalletId]) -> Option<LockLease> {
        None
    }

    fn kind(&self) -> &'static str;

    /// Whether the lock service answers (for `/health`): Redis a `PING`
    /// within its command timeout; an in-process lock always.
    async fn probe(&self) -> Result<(), LockError>;
}
