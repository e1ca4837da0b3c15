//! Wallets on the embedded index, derived from their transaction rows
//! instead of kept in a table of their own: a wallet's owner and creation
//! time are those of its first row (its `WalletCreated`), its balance,
//! version and last change those of its newest. Both rows are found through
//! the wallet's word in `search_keys`, which yields rows in position order
//! either way. Within one wallet's stream, position order is version order:
//! the log appends a stream's events in version order.
//!
//! A wallet table written once per wallet per batch took half of the file's
//! writes (`bench/README.md`, "Which B-tree each WAL frame writes"); the rows
//! are written anyway.
//!
//! The writer remembers what it learnt of each wallet ([`KnownWallets`]) so
//! that a batch looks up only wallets it has not seen since the server
//! started, or since the memory was last cleared.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};
use wallet_domain::WalletId;

use super::keys::Key;
use super::{timestamp_column, unsigned_column};
use crate::documents::{WalletIdentity, WalletSource};
use crate::SearchIndexError;

/// Wallets the writer remembers at most; past it the memory is cleared and
/// filled again by lookups. At about 200 bytes a wallet, 20 MB.
const KNOWN_WALLETS_MAX: usize = 100_000;

/// A wallet's first and newest rows, by the wallet's word (`?1`).
const WALLET_SQL: &str = "SELECT first.owner_id, newest.balance_after, first.occurred_at, \
     newest.occurred_at, newest.stream_version \
     FROM search_transactions AS first, search_transactions AS newest \
     WHERE first.position = (SELECT rowid FROM search_keys \
         WHERE search_keys MATCH ?1 ORDER BY rowid ASC LIMIT 1) \
     AND newest.position = (SELECT rowid FROM search_keys \
         WHERE search_keys MATCH ?1 ORDER BY rowid DESC LIMIT 1)";

/// The wallet's state as of its newest row, its owner and creation time as
/// of its first; `None` when the index holds no row of it.
pub(super) fn wallet_source(
    connection: &Connection,
    wallet_id: &WalletId,
) -> rusqlite::Result<Option<WalletSource>> {
    connection
        .prepare_cached(WALLET_SQL)?
        .query_row([Key::Wallet.word(wallet_id.as_str())], |row| {
            Ok(WalletSource {
                id: wallet_id.to_string(),
                owner_id: row.get(0)?,
                balance: row.get(1)?,
                created_at: timestamp_column(row, 2)?,
                updated_at: timestamp_column(row, 3)?,
                version: unsigned_column(row, 4)?,
            })
        })
        .optional()
}

/// What the writer knows of a wallet the index holds rows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KnownWallet {
    pub identity: WalletIdentity,
    /// The stream version of its newest row.
    pub version: u64,
}

impl KnownWallet {
    fn of(source: &WalletSource) -> Result<(WalletId, Self), SearchIndexError> {
        let (wallet_id, identity) = source.identity()?;
        Ok((
            wallet_id,
            KnownWallet {
                identity,
                version: source.version,
            },
        ))
    }
}

/// The writer's memory of wallets: only committed rows are ever in it, since
/// [`KnownWallets::remember`] is called once a batch has committed. Another
/// process may write the file too (`replay-dead-letters` beside a running
/// server), so a remembered version may be behind the file's; it only
/// decides [`crate::IndexOutcome`]'s counts. A wallet's owner and creation,
/// which the rows are written with, never change.
#[derive(Debug, Default)]
pub(super) struct KnownWallets {
    wallets: HashMap<WalletId, KnownWallet>,
}

impl KnownWallets {
    /// What the index holds of each wallet: from memory, or looked up.
    /// `Ok(Err(_))` when a row cannot be read back (a corrupt file).
    pub fn of(
        &mut self,
        connection: &Connection,
        wallet_ids: impl IntoIterator<Item = WalletId>,
    ) -> rusqlite::Result<Result<HashMap<WalletId, KnownWallet>, SearchIndexError>> {
        let mut found = HashMap::new();
        for wallet_id in wallet_ids {
            if let Some(known) = self.wallets.get(&wallet_id) {
                found.insert(wallet_id, known.clone());
                continue;
            }
            let Some(source) = wallet_source(connection, &wallet_id)? else {
                continue;
            };
            match KnownWallet::of(&source) {
                Ok((wallet_id, known)) => {
                    self.insert(wallet_id.clone(), known.clone());
                    found.insert(wallet_id, known);
                }
                Err(corrupt) => return Ok(Err(corrupt)),
            }
        }
        Ok(Ok(found))
    }

    /// Records a committed batch's newest row of each wallet.
    pub fn remember(&mut self, written: impl IntoIterator<Item = (WalletId, KnownWallet)>) {
        for (wallet_id, known) in written {
            match self.wallets.get_mut(&wallet_id) {
                Some(held) => held.version = held.version.max(known.version),
                None => self.insert(wallet_id, known),
            }
        }
    }

    fn insert(&mut self, wallet_id: WalletId, known: KnownWallet) {
        if self.wallets.len() >= KNOWN_WALLETS_MAX {
            self.wallets.clear();
        }
        self.wallets.insert(wallet_id, known);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use wallet_domain::OwnerId;

    use super::*;

    fn known(version: u64) -> KnownWallet {
        KnownWallet {
            identity: WalletIdentity {
                owner_id: OwnerId::parse("o").expect("owner"),
                created_at: Utc.timestamp_opt(0, 0).single().expect("instant"),
            },
            version,
        }
    }

    fn wallet(index: usize) -> WalletId {
        WalletId::parse(&format!("w{index}")).expect("wallet id")
    }

    fn migrated() -> Connection {
        let connection = Connection::open_in_memory().expect("in memory");
        for migration in super::super::MIGRATIONS {
            connection.execute_batch(migration).expect("migration");
        }
        connection
    }

    /// Both rows are found by the wallet's word: no scan of the rows, however
    /// many there are.
    #[test]
    fn a_wallet_is_read_through_its_word() {
        let connection = migrated();
        let plan: Vec<String> = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {WALLET_SQL}"))
            .expect("plan")
            .query_map([Key::Wallet.word("w1")], |row| row.get(3))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        let plan = plan.join("\n");
        assert!(!plan.contains("SCAN search_transactions"), "{plan}");
        assert!(plan.contains("SCAN search_keys VIRTUAL TABLE"), "{plan}");
    }

    /// A wallet whose rows an earlier version wrote, with its own wallet row,
    /// reads the same from its rows once the table is gone.
    #[test]
    fn a_wallet_of_an_earlier_version_reads_the_same_from_its_rows() {
        let connection = Connection::open_in_memory().expect("in memory");
        let migrations = super::super::MIGRATIONS;
        for migration in &migrations[..migrations.len() - 1] {
            connection.execute_batch(migration).expect("migration");
        }
        for (position, version, kind, after, at) in [
            (
                3,
                1,
                "WalletCreated",
                "10.00",
                "2026-12-01T00:00:00.000000001Z",
            ),
            (8, 2, "WalletCredited", "12.50", "2026-12-02T00:00:00Z"),
        ] {
            connection
                .execute(
                    "INSERT INTO search_transactions (position, event_id, wallet_id, owner_id, \
                     transaction_type, amount, amount_cents, balance_after, occurred_at, \
                     occurred_at_ms, stream_version) \
                     VALUES (?1, ?2, 'w1', 'o1', ?3, '0.00', 0, ?4, ?5, 0, ?6)",
                    rusqlite::params![position, format!("e{position}"), kind, after, at, version],
                )
                .expect("row");
            connection
                .execute(
                    "INSERT INTO search_keys (rowid, keys) VALUES (?1, ?2)",
                    rusqlite::params![position, Key::Wallet.word("w1")],
                )
                .expect("words");
        }
        connection
            .execute(
                "INSERT INTO search_wallets VALUES ('w1', 'o1', '12.50', \
                 '2026-12-01T00:00:00.000000001Z', '2026-12-02T00:00:00Z', 2)",
                [],
            )
            .expect("wallet row");
        let stored = |connection: &Connection| {
            connection
                .query_row(
                    "SELECT wallet_id, owner_id, balance, created_at, updated_at, version \
                     FROM search_wallets",
                    [],
                    |row| {
                        Ok(WalletSource {
                            id: row.get(0)?,
                            owner_id: row.get(1)?,
                            balance: row.get(2)?,
                            created_at: timestamp_column(row, 3)?,
                            updated_at: timestamp_column(row, 4)?,
                            version: unsigned_column(row, 5)?,
                        })
                    },
                )
                .expect("the wallet row")
        };
        let before = stored(&connection);
        connection
            .execute_batch(migrations[migrations.len() - 1])
            .expect("the table dropped");
        let derived = wallet_source(&connection, &wallet(1)).expect("read");
        assert_eq!(derived, Some(before));
        assert_eq!(wallet_source(&connection, &wallet(2)).expect("read"), None);
    }

    #[test]
    fn a_wallet_only_moves_to_a_newer_version() {
        let mut wallets = KnownWallets::default();
        wallets.remember([(wallet(1), known(5))]);
        wallets.remember([(wallet(1), known(3))]);
        assert_eq!(wallets.wallets[&wallet(1)].version, 5);
        wallets.remember([(wallet(1), known(6))]);
        assert_eq!(wallets.wallets[&wallet(1)].version, 6);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut wallets = KnownWallets::default();
        wallets.remember((0..=KNOWN_WALLETS_MAX).map(|index| (wallet(index), known(1))));
        assert!(wallets.wallets.len() <= KNOWN_WALLETS_MAX);
        assert!(wallets.wallets.contains_key(&wallet(KNOWN_WALLETS_MAX)));
    }
}
