//! The words of `search_keys` (migration `search_index_0006.sql`): each
//! identifier a transaction is found by, as one full-text word.
//!
//! A word is the identifier's kind (one letter) followed by its UTF-8 bytes in
//! lower-case hexadecimal: `w` + hex("w-1") = `w772d31`. Letters and digits
//! only, so FTS5's `ascii` tokenizer keeps it whole and a query never reads
//! it as syntax (FTS5's operators are upper case). The migration makes the
//! same words in SQL (`'w' || lower(hex(wallet_id))`) for the rows indexed
//! before it.

use std::fmt::Write;

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

    /// The word for `identifier` of this kind.
    pub(super) fn word(self, identifier: &str) -> String {
        let mut word = String::with_capacity(1 + 2 * identifier.len());
        word.push(self.letter());
        for byte in identifier.bytes() {
            // Writing to a String cannot fail.
            let _ = write!(word, "{byte:02x}");
        }
        word
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_the_kind_and_the_bytes_in_hexadecimal() {
        assert_eq!(Key::Wallet.word("w-1"), "w772d31");
        assert_eq!(Key::Owner.word("Zoë"), "o5a6fc3ab");
        assert_eq!(Key::Hold.word("h 1\"OR"), "h682031224f52");
    }
}
