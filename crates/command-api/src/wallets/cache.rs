//! Recently used wallets, so a command need not replay a stream it has just
//! written. A stale entry is harmless: the append's expected version rejects
//! it, and the service reloads from the store and retries.

use quick_cache::sync::Cache;
use wallet_domain::{Wallet, WalletId};

/// Wallets kept in memory at most.
pub const WALLET_CACHE_CAPACITY: usize = 200_000;

pub struct WalletCache {
    wallets: Cache<WalletId, Wallet>,
}

impl Default for WalletCache {
    fn default() -> Self {
        Self {
            wallets: Cache::new(WALLET_CACHE_CAPACITY),
        }
    }
}

impl WalletCache {
    pub fn get(&self, wallet_id: &WalletId) -> Option<Wallet> {
        self.wallets.get(wallet_id)
    }

    pub fn put(&self, wallet: Wallet) {
        self.wallets.insert(wallet.id.clone(), wallet);
    }

    pub fn forget(&self, wallet_id: &WalletId) {
        self.wallets.remove(wallet_id);
    }
}
