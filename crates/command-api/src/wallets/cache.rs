//! Recently used wallets, so a command need not replay a stream it has just
//! written.
//!
//! An entry is a wallet with the id of the last event it was folded from. A
//! command decided on an entry appends with that id as well as its version,
//! so the store refuses it when its stream holds another event there (it lost
//! the one this process saw, and a peer wrote another); the service then reads
//! the stream and decides again. A refusal is never answered from an entry
//! alone (see the service). Writes only move an entry forward in version, so a
//! slow read cannot put an older wallet back; only [`WalletCache::forget`] and
//! [`WalletCache::clear`] take one out. An entry keeps the wallet's newest
//! events too ([`RecentEvents`]), checked with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::Weighter;
use uuid::Uuid;
use wallet_domain::{Wallet, WalletId};

use super::recent::RecentEvents;

/// Wallets the cache expects to hold (sizes its tables).
pub const WALLET_CACHE_CAPACITY: usize = 200_000;
/// What the cache holds at most, in units: a wallet is one, and each of its
/// newest events it keeps ([`RecentEvents`], about 0.3 KiB each) one more:
/// 200,000 wallets with no event kept, or about 5,900 with 100 events each
/// (about 180 MiB).
pub const WALLET_CACHE_WEIGHT_MAX: u64 = 600_000;
/// How long a write waits for another writer of the same entry: none, since
/// nothing here holds an entry while loading it.
const ENTRY_WAIT_MS: u64 = 0;

/// A wallet as it stood after the event `last_event_id` of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedWallet {
    pub wallet: Wallet,
    pub last_event_id: Uuid,
    /// The stream's newest events, the last at `wallet.version`.
    pub recent: RecentEvents,
}

/// A wallet weighs one, and one more per event it keeps.
#[derive(Debug, Clone, Copy, Default)]
struct EntryWeight;

impl Weighter<WalletId, CachedWallet> for EntryWeight {
    fn weight(&self, _: &WalletId, entry: &CachedWallet) -> u64 {
        1 + entry.recent.len() as u64
    }
}

pub struct WalletCache {
    wallets: Cache<WalletId, CachedWallet, EntryWeight>,
    /// The highest global position this process has seen the store hold: a
    /// lower head later means the store lost events (see [`Self::observe_head`]).
    highest_position_seen: AtomicU64,
}

impl Default for WalletCache {
    fn default() -> Self {
        Self {
            wallets: Cache::with_weighter(
                WALLET_CACHE_CAPACITY,
                WALLET_CACHE_WEIGHT_MAX,
                EntryWeight,
            ),
            highest_position_seen: AtomicU64::new(0),
        }
    }
}

impl WalletCache {
    pub fn get(&self, wallet_id: &WalletId) -> Option<CachedWallet> {
        self.wallets.get(wallet_id)
    }

    /// Keeps `entry` unless the cache already holds the wallet at the same or
    /// a later version. When `entry`'s events directly follow the held
    /// wallet's version (a command decided on it, or a read folded on from
    /// it), the held wallet's events are kept before them.
    pub fn put(&self, entry: CachedWallet) {
        let candidate = entry.clone();
        let outcome = self.wallets.entry(
            &entry.wallet.id,
            Some(Duration::from_millis(ENTRY_WAIT_MS)),
            move |_, held: &mut CachedWallet| {
                let follows = candidate
                    .wallet
                    .version
                    .checked_sub(candidate.recent.len() as u64)
                    == Some(held.wallet.version);
                if candidate.wallet.version > held.wallet.version {
                    let recent = if follows {
                        held.recent.followed_by(&candidate.recent)
                    } else {
                        candidate.recent.clone()
                    };
                    *held = CachedWallet {
                        recent,
                        ..candidate
                    };
                }
                EntryAction::Retain(())
            },
        );
        if let EntryResult::Vacant(guard) = outcome {
            // Fails only when the entry was taken out meanwhile: nothing to keep.
            let _ = guard.insert(entry);
        }
    }

    pub fn forget(&self, wallet_id: &WalletId) {
        self.wallets.remove(wallet_id);
    }

    /// Records that the store holds an event at `position`.
    pub fn saw_position(&self, position: u64) {
        self.highest_position_seen
            .fetch_max(position, Ordering::Relaxed);
    }

    /// The highest global position seen so far.
    pub fn position_seen(&self) -> u64 {
        self.highest_position_seen.load(Ordering::Relaxed)
    }

    /// Compares the store's head position with `seen_before`, the highest
    /// position seen before the head was read (a position seen later may be
    /// above a head read earlier): when the store went backwards (it lost
    /// acknowledged events, as after a failover to an asynchronous replica),
    /// everything cached may hold lost events, and it is all dropped. Returns
    /// true when it was.
    pub fn observe_head(&self, seen_before: u64, head_position: u64) -> bool {
        if head_position >= seen_before {
            return false;
        }
        self.wallets.clear();
        // What the store holds now is the new measure.
        self.highest_position_seen
            .store(head_position, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use wallet_domain::{Balance, OwnerId, WalletStatus};

    use super::*;

    fn wallet_at(version: u64) -> CachedWallet {
        let now = Utc::now();
        CachedWallet {
            wallet: Wallet {
                id: WalletId::parse("w-1").expect("valid id"),
                owner_id: OwnerId::parse("owner").expect("valid id"),
                balance: Balance::ZERO,
                overdraft_limit: Balance::ZERO,
                status: WalletStatus::Active,
                created_at: now,
                updated_at: now,
                version,
                holds: Default::default(),
                held_balance: Balance::ZERO,
            },
            last_event_id: Uuid::now_v7(),
            recent: RecentEvents::default(),
        }
    }

    #[test]
    fn a_write_never_moves_an_entry_back_in_version() {
        let cache = WalletCache::default();
        let newer = wallet_at(3);
        cache.put(newer.clone());
        cache.put(wallet_at(2));
        cache.put(wallet_at(3));
        assert_eq!(cache.get(&newer.wallet.id), Some(newer.clone()));
        let newest = wallet_at(4);
        cache.put(newest.clone());
        assert_eq!(cache.get(&newer.wallet.id), Some(newest));
    }

    #[test]
    fn a_store_that_went_backwards_empties_the_cache() {
        let cache = WalletCache::default();
        let entry = wallet_at(1);
        cache.put(entry.clone());
        cache.saw_position(10);
        cache.saw_position(12);
        assert!(!cache.observe_head(cache.position_seen(), 12));
        assert_eq!(cache.get(&entry.wallet.id), Some(entry.clone()));
        assert!(cache.observe_head(cache.position_seen(), 11));
        assert_eq!(cache.get(&entry.wallet.id), None);
        // The head it fell to is the new measure.
        assert_eq!(cache.position_seen(), 11);
        cache.put(entry.clone());
        assert!(!cache.observe_head(cache.position_seen(), 11));
        assert_eq!(cache.get(&entry.wallet.id), Some(entry));
    }
}
