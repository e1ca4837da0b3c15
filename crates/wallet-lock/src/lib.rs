//! The wallet lock port.
//!
//! Commands on one wallet take its lock so that concurrent requests queue
//! instead of racing into optimistic-concurrency conflicts. The lock only
//! cuts contention: the expected stream version at append is what keeps the
//! data correct, so a lock that is lost, expired or unavailable costs retries,
//! never money.

mod in_process;
mod redis_lock;
mod redis_url;

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use wallet_domain::WalletId;

pub use in_process::InProcessWalletLock;
pub use redis_lock::{
    RedisLockConfig, RedisWalletLock, AWAY_RETRY_INTERVAL_MS, FAILED_REQUEST_REPORTED_MS,
    LOCK_KEY_PREFIX_DEFAULT, LOCK_TTL_MS_DEFAULT, LOCK_WAIT_MAX_MS_DEFAULT, WRITTEN_SUFFIX,
    WRITTEN_TTL_MS,
};
pub use redis_url::{check_redis_url, RedisUrlError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("wallet lock unavailable: {0}")]
    Unavailable(String),
    #[error("timed out waiting for the lock of wallet {0}")]
    TimedOut(WalletId),
}

/// Held locks; dropping the lease releases them.
///
/// A lock shared by replicas also passes on what its holders wrote: each
/// holder records the version it left a wallet at ([`Self::wrote`]), the
/// release keeps it beside the lock, and the next holder learns it when it
/// takes the lock ([`Self::last_written`]). A replica whose cached wallet
/// is older then reads the events it lacks before it decides, instead of
/// deciding on its cache and failing its append on the expected version
/// (h147 F1: commands sent round robin to three replicas failed 0.82 first
/// appends each and ran at 40 % of the rate of commands pinned to one).
pub struct LockLease {
    _guards: Vec<Box<dyn Any + Send + Sync>>,
    /// The version each wallet's last holder recorded, when the lock knows one.
    last_written: Vec<(WalletId, u64)>,
    /// Where [`Self::wrote`] records, for the release; `None` when nothing
    /// passes versions on (a lock within one process, or none).
    written: Option<WrittenVersions>,
}

/// The versions a lease's holder recorded, shared with what releases it.
pub type WrittenVersions = Arc<Mutex<Vec<(WalletId, u64)>>>;

impl LockLease {
    pub fn new(guards: Vec<Box<dyn Any + Send + Sync>>) -> Self {
        Self {
            _guards: guards,
            last_written: Vec::new(),
            written: None,
        }
    }

    /// A lease that passes versions on: `last_written` as the lock knew
    /// them when taken, and `written` read by the release.
    pub fn passing_versions(
        guards: Vec<Box<dyn Any + Send + Sync>>,
        last_written: Vec<(WalletId, u64)>,
        written: WrittenVersions,
    ) -> Self {
        Self {
            _guards: guards,
            last_written,
            written: Some(written),
        }
    }

    /// A lease that holds nothing, for when the lock service is down.
    pub fn none() -> Self {
        Self::new(Vec::new())
    }

    /// The version the wallet's last holder recorded with [`Self::wrote`],
    /// when the lock passes versions on and still keeps it.
    pub fn last_written(&self, wallet_id: &WalletId) -> Option<u64> {
        self.last_written
            .iter()
            .find(|(id, _)| id == wallet_id)
            .map(|(_, version)| *version)
    }

    /// Records that this holder left `wallet_id` at stream `version`, for
    /// the wallet's next holder (a no-op where nothing passes versions on).
    pub fn wrote(&self, wallet_id: &WalletId, version: u64) {
        if let Some(written) = &self.written {
            let mut written = written.lock().unwrap_or_else(PoisonError::into_inner);
            match written.iter_mut().find(|(id, _)| id == wallet_id) {
                Some((_, known)) => *known = (*known).max(version),
                None => written.push((wallet_id.clone(), version)),
            }
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
