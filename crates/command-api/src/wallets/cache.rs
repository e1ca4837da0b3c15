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

use super::footprint::wallet_bytes;
use super::recent::RecentEvents;

/// Wallets the cache expects to hold (sizes its tables).
pub const WALLET_CACHE_CAPACITY: usize = 200_000;
/// What the cached wallets and their kept events ([`RecentEvents`]) take
/// in memory at most by default, in MiB as [`super::footprint`] reckons
/// them (text plus a fixed allowance per wallet, hold and event): about
/// 250,000 wallets with nothing kept, or about 4,000 with 100 events each
/// (0.6 KiB an event). `WALLET_CACHE_MIB` sets it. An entry that grows is
/// put back in, so the bound holds as the kept wallets are written to, not
/// only as new ones come.
pub const WALLET_CACHE_MIB_DEFAULT: u32 = 256;
/// The largest `WALLET_CACHE_MIB` accepted (64 GiB).
pub const WALLET_CACHE_MIB_MAX: u32 = 65_536;
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

/// An entry weighs its approximate bytes in memory.
#[derive(Debug, Clone, Copy, Default)]
struct EntryWeight;

impl Weighter<WalletId, CachedWallet> for EntryWeight {
    fn weight(&self, _: &WalletId, entry: &CachedWallet) -> u64 {
        wallet_bytes(&entry.wallet) + entry.recent.bytes()
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
        Self::of_mib(WALLET_CACHE_MIB_DEFAULT)
    }
}

impl WalletCache {
    /// A cache holding at most `mib` MiB.
    pub fn of_mib(mib: u32) -> Self {
        Self::holding_at_most(WALLET_CACHE_CAPACITY, u64::from(mib) * 1024 * 1024)
    }

    /// A cache expecting `wallets` entries and holding at most `bytes`.
    fn holding_at_most(wallets: usize, bytes: u64) -> Self {
        Self {
            wallets: Cache::with_weighter(wallets, bytes, EntryWeight),
            highest_position_seen: AtomicU64::new(0),
        }
    }

    pub fn get(&self, wallet_id: &WalletId) -> Option<CachedWallet> {
        self.wallets.get(wallet_id)
    }

    /// Keeps `entry` unless the cache already holds the wallet at the same or
    /// a later version. When `entry`'s events directly follow the held
    /// wallet's version (a command decided on it, or a read folded on from
    /// it), the held wallet's events are kept before them.
    pub fn put(&self, entry: CachedWallet) {
        let mut replacement = None;
        let outcome = self.wallets.entry(
            &entry.wallet.id,
            Some(Duration::from_millis(ENTRY_WAIT_MS)),
            |_, held: &mut CachedWallet| {
                if entry.wallet.version <= held.wallet.version {
                    return EntryAction::Retain(());
                }
                let follows = entry.wallet.version.checked_sub(entry.recent.len() as u64)
                    == Some(held.wallet.version);
                let recent = if follows {
                    held.recent.followed_by(&entry.recent)
                } else {
                    entry.recent.clone()
                };
                replacement = Some(CachedWallet {
                    recent,
                    ..entry.clone()
                });
                // Taken out and put back in: an insertion is what evicts
                // others when the entry grew past the cache's bound.
                EntryAction::ReplaceWithGuard
            },
        );
        // An insertion fails only when the entry was taken out meanwhile:
        // nothing to keep then. Kept as it was (`Retained`), or another
        // writer of the entry is at it (`Timeout`): nothing to do.
        match outcome {
            EntryResult::Vacant(guard) => {
                let _ = guard.insert(entry);
            }
            EntryResult::Replaced(guard, _) => {
                if let Some(replacement) = replacement {
                    let _ = guard.insert(replacement);
                }
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => {}
        }
    }

    /// The approximate bytes the cache holds (its weight).
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.wallets.weight()
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
    use wallet_domain::{Balance, EventKind, EventMetadata, OwnerId, WalletEvent, WalletStatus};

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

    /// A creation of `wallet_id`, as one event to keep.
    fn event(wallet_id: &WalletId) -> WalletEvent {
        WalletEvent {
            event_id: Uuid::now_v7(),
            wallet_id: wallet_id.clone(),
            occurred_at: Utc::now(),
            balance_after: Balance::ZERO,
            metadata: EventMetadata::default(),
            kind: EventKind::WalletFrozen,
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

    /// Wallets cached with one event each, under the bound, then each
    /// written to 99 times more: the cache stays within its bytes as its
    /// entries grow, evicting wallets, and keeps every event of the ones
    /// it keeps.
    #[test]
    fn entries_that_grow_stay_within_the_bound() {
        const WALLETS: usize = 200;
        const BYTES_MAX: u64 = 512 * 1024;
        let cache = WalletCache::holding_at_most(WALLETS, BYTES_MAX);
        let ids: Vec<WalletId> = (0..WALLETS)
            .map(|n| WalletId::parse(&format!("w-{n}")).expect("valid id"))
            .collect();
        let put = |id: &WalletId, version: u64| {
            let mut entry = wallet_at(version);
            entry.wallet.id = id.clone();
            entry.recent.push(event(id));
            cache.put(entry);
        };
        for id in &ids {
            put(id, 1);
        }
        assert_eq!(
            ids.iter().filter(|id| cache.get(id).is_some()).count(),
            WALLETS
        );
        for version in 2..=100 {
            for id in &ids {
                put(id, version);
            }
            assert!(cache.bytes() <= BYTES_MAX, "{} bytes held", cache.bytes());
        }
        let kept: Vec<CachedWallet> = ids.iter().filter_map(|id| cache.get(id)).collect();
        assert!(
            !kept.is_empty() && kept.len() < WALLETS,
            "{} kept",
            kept.len()
        );
        assert!(kept
            .iter()
            .all(|entry| entry.recent.len() as u64 <= entry.wallet.version));
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
