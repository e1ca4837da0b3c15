//! The words of `search_keys` (migration `search_index_0006.sql`): each
//! identifier a transaction is found by, as one full-text word
//! ([`identifier_word`]: its kind's letter, then its bytes in hexadecimal).
//! The migration makes the same words in SQL for the rows indexed before it.

use embedded_sqlite::identifier_word;

use crate::documents::TransactionSource;

/// The kinds of identifier kept in `search_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Wallet,
    Owner,
    Counterparty,
    Transfer,
    Hold,
}

/// The kinds a search's free text is compared with, whole and exact (the
/// event id, the remaining one, is a column with a unique index).
pub(super) const TEXT_KEYS: [Key; 4] = [Key::Wallet, Key::Counterparty, Key::Transfer, Key::Hold];

impl Key {
    fn letter(self) -> char {
        match self {
            Key::Wallet => 'w',
            Key::Owner => 'o',
            Key::Counterparty => 'c',
            Key::Transfer => 't',
            Key::Hold => 'h',
        }
    }

    /// Whether the server writes identifiers of this kind (a transfer's id, a
    /// UUID), rather than a client choosing them (a wallet's, a hold's).
    pub(super) fn server_written(self) -> bool {
        self == Key::Transfer
    }

    /// The word for `identifier` of this kind.
    pub(super) fn word(self, identifier: &str) -> String {
        identifier_word(self.letter(), identifier)
    }
}

/// The words of one transaction row, separated by spaces: its wallet and
/// owner always, its counterparty, transfer and hold when it has them.
pub(super) fn words_of(source: &TransactionSource) -> String {
    let transfer_id = source.transfer_id.map(|id| id.to_string());
    [
        (Key::Wallet, Some(source.wallet_id.as_str())),
        (Key::Owner, Some(source.owner_id.as_str())),
        (Key::Counterparty, source.counterparty_wallet_id.as_deref()),
        (Key::Transfer, transfer_id.as_deref()),
        (Key::Hold, source.hold_id.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, identifier)| identifier.map(|identifier| key.word(identifier)))
    .collect::<Vec<_>>()
    .join(" ")
}
