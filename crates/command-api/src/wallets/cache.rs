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
/// them (text plus a fixed allowance per wallet, hold and event).
/// `WALLET_CACHE_MIB` sets it. A quarter ([`STATES_SHARE_DIVISOR`]) is for
/// the wallets themselves, what a command decides on: about 65,000 by
/// default. The rest is for their newest events, what a wallet read shows
/// as its audit trail: about 3,000 wallets with 100 events each (0.6 KiB an
/// event). An entry that grows is put back in, so each bound holds as the
/// kept wallets are written to, not only as new ones come.
pub const WALLET_CACHE_MIB_DEFAULT: u32 = 256;
/// The largest `WALLET_CACHE_MIB` accepted (64 GiB).
pub const WALLET_CACHE_MIB_MAX: u32 = 65_536;
/// The wallets get one part in this many of the cache's bytes, their
/// newest events the rest. Kept apart, so wallets read for their trails
/// never evict the wallets commands decide on: when one budget held both,
/// 10,500 busy wallets of a few hundred events each did not fit, every
/// command read its wallet's snapshot and tail again, and the mix ran at
/// 1,452 ops/s against 3,851 with the cache eight times larger (h108's
/// data folder, 2026-12-05).
pub const STATES_SHARE_DIVISOR: u64 = 4;
/// How long a write waits for another writer of the same entry: none, since
/// nothing here holds an entry while loading it.
const ENTRY_WAIT_MS: u64 = 0;

/// A wallet as it stood after the event `last_event_id` of its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedWallet {
    pub wallet: Wallet,
    pub last_event_id: Uuid,
    /// The stream's newest events, the last at `wallet.version` (none when
    /// they were not kept).
    pub recent: RecentEvents,
}

/// A wallet and the id of the last event folded into it.
#[derive(Debug, Clone)]
struct State {
    wallet: Wallet,
    last_event_id: Uuid,
}

/// A stream's newest events, the last of them `last_event_id` at `version`.
#[derive(Debug, Clone)]
struct Trail {
    version: u64,
    last_event_id: Uuid,
    events: RecentEvents,
}

/// What is kept of a wallet, by its version: a write replaces what is held
/// only with something newer.
trait Versioned: Clone {
    fn version(&self) -> u64;
    /// What replaces `held` when `self` is newer.
    fn after(&self, held: &Self) -> Self;
}

impl Versioned for State {
    fn version(&self) -> u64 {
        self.wallet.version
    }

    fn after(&self, _: &Self) -> Self {
        self.clone()
    }
}

impl Versioned for Trail {
    fn version(&self) -> u64 {
        self.version
    }

    /// When these events directly follow the held ones (a command decided
    /// on them, or a read folded on from them), the held events are kept
    /// before them.
    fn after(&self, held: &Self) -> Self {
        let follows = self.version.checked_sub(self.events.len() as u64) == Some(held.version);
        Trail {
            events: if follows {
                held.events.followed_by(&self.events)
            } else {
                self.events.clone()
            },
            ..self.clone()
        }
    }
}

/// A kept thing weighs its approximate bytes in memory.
#[derive(Debug, Clone, Copy, Default)]
struct Footprint;

impl Weighter<WalletId, State> for Footprint {
    fn weight(&self, _: &WalletId, state: &State) -> u64 {
        wallet_bytes(&state.wallet)
    }
}

impl Weighter<WalletId, Trail> for Footprint {
    fn weight(&self, _: &WalletId, trail: &Trail) -> u64 {
        trail.events.bytes()
    }
}

pub struct WalletCache {
    states: Cache<WalletId, State, Footprint>,
    trails: Cache<WalletId, Trail, Footprint>,
    /// The highest global position this process has seen the store hold: a
    /// lower head later means the store lost events (see [`Self::observe_head`]).
    highest_position_seen: AtomicU64,
}

impl Default for WalletCache {
    fn default() -> Self {
        Self::of_mib(WALLET_CACHE_MIB_DEFAULT)
    }
}

/// Keeps `entry` under `wallet_id` unless `cache` holds the same or a
/// later version.
fn put_newer<T: Versioned>(cache: &Cache<WalletId, T, Footprint>, wallet_id: &WalletId, entry: T)
where
    Footprint: Weighter<WalletId, T>,
{
    let mut replacement = None;
    let outcome = cache.entry(
        wallet_id,
        Some(Duration::from_millis(ENTRY_WAIT_MS)),
        |_, held: &mut T| {
            if entry.version() <= held.version() {
                return EntryAction::Retain(());
            }
            replacement = Some(entry.after(held));
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

impl WalletCache {
    /// A cache holding at most `mib` MiB.
    pub fn of_mib(mib: u32) -> Self {
        Self::holding_at_most(WALLET_CACHE_CAPACITY, u64::from(mib) * 1024 * 1024)
    }

    /// A cache expecting `wallets` entries and holding at most `bytes`.
    fn holding_at_most(wallets: usize, bytes: u64) -> Self {
        let state_bytes = bytes / STATES_SHARE_DIVISOR;
        Self {
            states: Cache::with_weighter(wallets, state_bytes, Footprint),
            trails: Cache::with_weighter(wallets, bytes - state_bytes, Footprint),
            highest_position_seen: AtomicU64::new(0),
        }
    }

    /// The wallet, with its newest events when they are kept for the very
    /// version held.
    pub fn get(&self, wallet_id: &WalletId) -> Option<CachedWallet> {
        let State {
            wallet,
            last_event_id,
        } = self.states.get(wallet_id)?;
        let recent = self
            .trails
            .get(wallet_id)
            .filter(|trail| trail.last_event_id == last_event_id && trail.version == wallet.version)
            .map(|trail| trail.events)
            .unwrap_or_default();
        Some(CachedWallet {
            wallet,
            last_event_id,
            recent,
        })
    }

    /// The version of the wallet held, if any.
    pub fn version_of(&self, wallet_id: &WalletId) -> Option<u64> {
        self.states.get(wallet_id).map(|state| state.wallet.version)
    }

    /// Keeps `entry` unless the cache already holds the wallet at the same or
    /// a later version. When `entry`'s events directly follow the held
    /// wallet's version (a command decided on it, or a read folded on from
    /// it), the held wallet's events are kept before them.
    pub fn put(&self, entry: CachedWallet) {
        let CachedWallet {
            wallet,
            last_event_id,
            recent,
        } = entry;
        let wallet_id = wallet.id.clone();
        if !recent.is_empty() {
            let trail = Trail {
                version: wallet.version,
                last_event_id,
                events: recent,
            };
            put_newer(&self.trails, &wallet_id, trail);
        }
        put_newer(
            &self.states,
            &wallet_id,
            State {
                wallet,
                last_event_id,
            },
        );
    }

    /// The approximate bytes the cache holds (its weight).
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.states.weight() + self.trails.weight()
    }

    pub fn forget(&self, wallet_id: &WalletId) {
        self.states.remove(wallet_id);
        self.trails.remove(wallet_id);
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
        self.states.clear();
        self.trails.clear();
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
    /// entries grow, evicting trails, never wallets, and keeps every event
    /// of the trails it keeps.
    #[test]
    fn entries_that_grow_stay_within_the_bound() {
        const WALLETS: usize = 200;
        // Each shard of the cache holds its share of the bytes: the bound is
        // far above the first trails (about 0.3 MiB in all, states included),
        // so that no shard's share of them overflows (with 1 MiB one did, a
        // run in three), and the trails of 100 events need more than the
        // trails' share of it (about 1.6 MiB of 1.5), so some must go.
        const BYTES_MAX: u64 = 2 * 1024 * 1024;
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
        let with_trail = || {
            ids.iter()
                .filter_map(|id| cache.get(id))
                .filter(|entry| !entry.recent.is_empty())
                .count()
        };
        assert_eq!(with_trail(), WALLETS);
        for version in 2..=100 {
            for id in &ids {
                put(id, version);
            }
            assert!(cache.bytes() <= BYTES_MAX, "{} bytes held", cache.bytes());
        }
        let kept: Vec<CachedWallet> = ids.iter().filter_map(|id| cache.get(id)).collect();
        assert_eq!(kept.len(), WALLETS, "every wallet is kept");
        assert!(
            (1..WALLETS).contains(&with_trail()),
            "{} trails kept",
            with_trail()
        );
        assert!(kept
            .iter()
            .all(|entry| entry.recent.len() as u64 <= entry.wallet.version));
    }

    /// Wallets kept with 100 events each, more than the trails' share
    /// holds: every wallet stays for the commands, the trails of some go,
    /// and a wallet whose trail went is read without one.
    #[test]
    fn trails_never_evict_the_wallets_commands_decide_on() {
        const WALLETS: usize = 200;
        const BYTES_MAX: u64 = 2 * 1024 * 1024;
        let cache = WalletCache::holding_at_most(WALLETS, BYTES_MAX);
        let ids: Vec<WalletId> = (0..WALLETS)
            .map(|n| WalletId::parse(&format!("w-{n}")).expect("valid id"))
            .collect();
        for id in &ids {
            let mut entry = wallet_at(100);
            entry.wallet.id = id.clone();
            for _ in 0..100 {
                entry.recent.push(event(id));
            }
            cache.put(entry);
        }
        let kept: Vec<CachedWallet> = ids.iter().filter_map(|id| cache.get(id)).collect();
        assert_eq!(kept.len(), WALLETS, "every wallet is kept");
        let with_trail = kept
            .iter()
            .filter(|entry| entry.recent.len() == 100)
            .count();
        assert!(
            with_trail > 0 && with_trail < WALLETS,
            "{with_trail} trails kept"
        );
        assert!(kept
            .iter()
            .all(|entry| entry.recent.is_empty() || entry.recent.len() == 100));
        assert!(cache.bytes() <= BYTES_MAX, "{} bytes held", cache.bytes());
    }

    /// A trail is shown only with the wallet it ends at: a wallet written
    /// on without its events (a fold from a snapshot) has none.
    #[test]
    fn a_trail_is_kept_only_with_its_own_version() {
        let cache = WalletCache::default();
        let mut entry = wallet_at(1);
        entry.recent.push(event(&entry.wallet.id));
        cache.put(entry.clone());
        assert_eq!(
            cache.get(&entry.wallet.id).map(|held| held.recent.len()),
            Some(1)
        );
        let bare = wallet_at(5);
        cache.put(bare.clone());
        assert_eq!(cache.get(&bare.wallet.id), Some(bare));
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
