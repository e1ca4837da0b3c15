//! Locks for one process: a fixed array of mutexes, each wallet hashed to one.
//! Memory stays bounded however many wallets there are; two wallets that share
//! a stripe merely queue behind each other. The hash is keyed with keys drawn
//! when the lock is made (SipHash, as `RandomState` keys it), so a client that
//! chooses wallet ids cannot pick one sharing another wallet's stripe and
//! flood it to hold that wallet's commands up.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;
use wallet_domain::WalletId;

use crate::{LockError, LockLease, WalletLock};

/// Mutexes in the stripe array (about 4 MiB of them). Under load, a lock is
/// held for as long as a command's append waits in the writer's queue, so
/// two wallets that share a stripe queue behind each other for that long:
/// with 4,096 stripes, 2,000 connections over 10,500 wallets kept most
/// stripes taken, and waits in a stripe's queue reached the 10 s of
/// [`LOCK_WAIT_MAX_MS`] (h108 F1). With 65,536, a stripe is shared by
/// fewer wallets than the busiest server has in flight.
pub const LOCK_STRIPES: usize = 65_536;
/// How long a command waits for its wallets' locks before giving up, in ms:
/// one deadline for all of them (a transfer's two included), as the Redis
/// lock's wait.
pub const LOCK_WAIT_MAX_MS: u64 = 10_000;

pub struct InProcessWalletLock {
    stripes: Vec<Arc<Mutex<()>>>,
    /// Keyed anew for each lock: which wallets share a stripe cannot be
    /// worked out from outside.
    stripe_hash: RandomState,
}

impl Default for InProcessWalletLock {
    fn default() -> Self {
        Self {
            stripes: (0..LOCK_STRIPES)
                .map(|_| Arc::new(Mutex::new(())))
                .collect(),
            stripe_hash: RandomState::new(),
        }
    }
}

impl InProcessWalletLock {
    fn stripe_of(&self, wallet_id: &WalletId) -> usize {
        let hash = self.stripe_hash.hash_one(wallet_id);
        usize::try_from(hash % LOCK_STRIPES as u64).unwrap_or_default()
    }

    /// The stripes of the named wallets, each once, in stripe order (the one
    /// order every caller takes them in), with a wallet of each to name.
    fn sorted_stripes<'a>(&self, wallet_ids: &[&'a WalletId]) -> Vec<(usize, &'a WalletId)> {
        let mut stripes: Vec<(usize, &WalletId)> = wallet_ids
            .iter()
            .map(|id| (self.stripe_of(id), *id))
            .collect();
        stripes.sort_by_key(|(stripe, _)| *stripe);
        stripes.dedup_by_key(|(stripe, _)| *stripe);
        stripes
    }

    /// Takes every named wallet's stripe, in stripe order, waiting for them
    /// until `deadline` at most (one deadline for all of them); a stripe
    /// still held then is [`LockError::TimedOut`] naming its wallet. Waiters
    /// on one stripe are served in the order they came (tokio's mutex is
    /// fair).
    pub async fn acquire_until(
        &self,
        wallet_ids: &[&WalletId],
        deadline: Instant,
    ) -> Result<LockLease, LockError> {
        let stripes = self.sorted_stripes(wallet_ids);
        let mut guards: Vec<Box<dyn std::any::Any + Send + Sync>> =
            Vec::with_capacity(stripes.len());
        for (stripe, wallet_id) in stripes {
            let mutex = Arc::clone(&self.stripes[stripe]);
            let guard = tokio::time::timeout_at(deadline, mutex.lock_owned())
                .await
                .map_err(|_| LockError::TimedOut(wallet_id.clone()))?;
            guards.push(Box::new(guard));
        }
        Ok(LockLease::new(guards))
    }
}

#[async_trait]
impl WalletLock for InProcessWalletLock {
    async fn acquire(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, LockError> {
        self.acquire_until(
            wallet_ids,
            Instant::now() + Duration::from_millis(LOCK_WAIT_MAX_MS),
        )
        .await
    }

    fn tries_without_waiting(&self) -> bool {
        true
    }

    fn try_acquire(&self, wallet_ids: &[&WalletId]) -> Option<LockLease> {
        let stripes = self.sorted_stripes(wallet_ids);
        let mut guards: Vec<Box<dyn std::any::Any + Send + Sync>> =
            Vec::with_capacity(stripes.len());
        for (stripe, _) in stripes {
            let guard = Arc::clone(&self.stripes[stripe]).try_lock_owned().ok()?;
            guards.push(Box::new(guard));
        }
        Some(LockLease::new(guards))
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }

    async fn probe(&self) -> Result<(), LockError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn id(raw: &str) -> WalletId {
        WalletId::parse(raw).expect("id")
    }

    #[tokio::test]
    async fn try_acquire_takes_every_wallet_or_none() {
        let lock = InProcessWalletLock::default();
        let a = id("try-a");
        let b = (0..)
            .map(|n| id(&format!("try-b-{n}")))
            .find(|b| lock.stripe_of(b) != lock.stripe_of(&a))
            .expect("a wallet of another stripe");
        let both = lock.try_acquire(&[&a, &b]).expect("both free");
        assert!(lock.try_acquire(&[&a]).is_none(), "a is held");
        drop(both);
        let held_b = lock.try_acquire(&[&b]).expect("b free again");
        assert!(lock.try_acquire(&[&a, &b]).is_none(), "b is held");
        // The refused pair took nothing: a is still free.
        assert!(lock.try_acquire(&[&a]).is_some(), "a left free");
        drop(held_b);
    }

    #[test]
    fn which_wallets_share_a_stripe_differs_from_one_lock_to_the_next() {
        let ids: Vec<WalletId> = (0..64).map(|index| id(&format!("w-{index}"))).collect();
        let stripes = |lock: &InProcessWalletLock| -> Vec<usize> {
            ids.iter()
                .map(|wallet_id| lock.stripe_of(wallet_id))
                .collect()
        };
        let first = InProcessWalletLock::default();
        assert_eq!(
            stripes(&first),
            stripes(&first),
            "one lock keeps its mapping"
        );
        assert_ne!(
            stripes(&first),
            stripes(&InProcessWalletLock::default()),
            "a fixed mapping could be worked out from outside"
        );
    }

    #[tokio::test]
    async fn holders_of_one_wallet_never_overlap() {
        const TASKS: usize = 32;
        let lock = Arc::new(InProcessWalletLock::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let overlaps = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (lock, inside, overlaps) = (lock.clone(), inside.clone(), overlaps.clone());
                tokio::spawn(async move {
                    let wallet = id("w1");
                    let _lease = lock.acquire(&[&wallet]).await.expect("lock");
                    if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join");
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pair_waits_for_both_locks_within_one_limit_not_one_each() {
        let lock = Arc::new(InProcessWalletLock::default());
        let (a, b) = (id("a"), id("b"));
        let (first, second) = if lock.stripe_of(&a) < lock.stripe_of(&b) {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        // The first stripe is free for most of the limit, then the second is
        // held past it: the pair must give up at the limit, naming the second.
        let held_first = lock.acquire(&[&first]).await.expect("first");
        let held_second = lock.acquire(&[&second]).await.expect("second");
        let waiting = {
            let (lock, a, b) = (lock.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = lock.acquire(&[&a, &b]).await.map(drop);
                (outcome, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(LOCK_WAIT_MAX_MS - 1_000)).await;
        drop(held_first);
        let (outcome, waited) = waiting.await.expect("join");
        drop(held_second);
        assert!(
            matches!(&outcome, Err(LockError::TimedOut(wallet_id)) if *wallet_id == second),
            "{outcome:?}"
        );
        assert_eq!(waited, Duration::from_millis(LOCK_WAIT_MAX_MS));
    }

    #[tokio::test]
    async fn opposite_transfers_do_not_deadlock() {
        let lock = Arc::new(InProcessWalletLock::default());
        let (a, b) = (id("a"), id("b"));
        let forward = {
            let (lock, a, b) = (lock.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    let _lease = lock.acquire(&[&a, &b]).await.expect("lock");
                    tokio::task::yield_now().await;
                }
            })
        };
        for _ in 0..100 {
            let _lease = lock.acquire(&[&b, &a]).await.expect("lock");
            tokio::task::yield_now().await;
        }
        forward.await.expect("join");
    }
}
