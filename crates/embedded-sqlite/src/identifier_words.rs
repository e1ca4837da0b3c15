//! Identifiers as FTS5 words, for the projections' lookup tables
//! (`search_keys` in `search_index.db`, `ledger_keys` in `ledger.db`).
//!
//! Why: a B-tree index ordered by wallet puts each event's key on that
//! wallet's page, so with events spread over many wallets every event dirties
//! a page of its own, written whole to the WAL and again at the checkpoint
//! (issue 13, `bench/README.md`). An FTS5 table is log-structured instead:
//! each commit appends one segment holding every word of the transaction, and
//! segments are merged as they accumulate. It still answers "which rows hold
//! this word" newest first (`ORDER BY rowid DESC`, no sort) and honours a
//! rowid range, which is all a lookup by identifier needs.
//!
//! The tables are contentless, keep no positions or sizes, and use the
//! `ascii` tokenizer:
//!
//! ```sql
//! CREATE VIRTUAL TABLE …_keys USING fts5 (
//!     keys, content = '', detail = none, columnsize = 0, tokenize = 'ascii');
//! ```
//!
//! A word is a one-letter kind and the identifier's UTF-8 bytes in
//! lower-case hexadecimal ([`identifier_word`]): letters and digits only, so
//! the tokenizer keeps it whole and FTS5's query syntax (upper-case
//! operators, quotes, `*`, `:`) never reads it. Migrations make the same word
//! in SQL as `'<kind>' || lower(hex(<column>))`.

/// The word for `identifier` of the kind `kind` (a lower-case ASCII letter):
/// `identifier_word('w', "w-1")` is `"w772d31"`.
///
/// # Panics
/// When `kind` is not a lower-case ASCII letter: a word must start with one
/// so that it is never an FTS5 operator or a number.
pub fn identifier_word(kind: char, identifier: &str) -> String {
    assert!(
        kind.is_ascii_lowercase(),
        "kind {kind:?} of an identifier word"
    );
    let mut word = String::with_capacity(1 + 2 * identifier.len());
    word.push(kind);
    word.push_str(&hex::encode(identifier));
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn a_word_is_the_kind_and_the_bytes_in_hexadecimal() {
        assert_eq!(identifier_word('w', "w-1"), "w772d31");
        assert_eq!(identifier_word('o', "Zoë"), "o5a6fc3ab");
        assert_eq!(identifier_word('h', "h 1\"OR"), "h682031224f52");
    }

    /// The SQL form the migrations use makes the same word, and the word
    /// finds exactly its row, whatever the identifier holds.
    #[test]
    fn sql_makes_the_same_word_and_finds_only_its_row() {
        let connection = Connection::open_in_memory().expect("in memory");
        connection
            .execute_batch(
                "CREATE VIRTUAL TABLE k USING fts5 (keys, content = '', detail = none, \
                 columnsize = 0, tokenize = 'ascii');",
            )
            .expect("table");
        let identifiers = ["w-1", "w-1 OR w-2", "w-2", "\"*:NEAR(", "Zoë", ""];
        for (rowid, identifier) in (1i64..).zip(identifiers) {
            let in_sql: String = connection
                .query_row("SELECT 'w' || lower(hex(?1))", [identifier], |row| {
                    row.get(0)
                })
                .expect("sql word");
            assert_eq!(in_sql, identifier_word('w', identifier));
            connection
                .execute(
                    "INSERT INTO k (rowid, keys) VALUES (?1, ?2)",
                    rusqlite::params![rowid, in_sql],
                )
                .expect("insert");
        }
        for (rowid, identifier) in (1i64..).zip(identifiers) {
            let found: Vec<i64> = connection
                .prepare("SELECT rowid FROM k WHERE k MATCH ?1")
                .expect("query")
                .query_map([identifier_word('w', identifier)], |row| row.get(0))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("rowids");
            assert_eq!(found, vec![rowid], "{identifier:?}");
        }
    }
}
