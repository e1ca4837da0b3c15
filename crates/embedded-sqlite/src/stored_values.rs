//! A column read as it is stored, for rows a reader must not trust: a cache
//! row or a projection's row that someone or something may have changed.
//!
//! SQLite keeps whatever type a value was written with, whatever the
//! column's declared type. `row.get::<_, i64>` on a TEXT value is an error
//! that a caller would take for the store being unavailable, and rusqlite's
//! `types::Value` panics on TEXT that is not UTF-8. These read the value's
//! own type instead: anything but the expected one is `None`, which the
//! caller treats as a row no build writes.

use rusqlite::types::ValueRef;
use rusqlite::Row;

/// The column's value when it is stored as an INTEGER; `None` for any other
/// storage class (TEXT, REAL, BLOB, NULL).
///
/// # Errors
/// rusqlite's, for a column index the statement does not have.
pub fn integer_as_stored(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(column)? {
        ValueRef::Integer(value) => Some(value),
        _ => None,
    })
}

/// The column's value when it is stored as TEXT that is UTF-8; `None` for any
/// other storage class, or TEXT that is not UTF-8.
///
/// # Errors
/// rusqlite's, for a column index the statement does not have.
pub fn text_as_stored(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(column)? {
        ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn only_the_expected_storage_class_reads() {
        let connection = Connection::open_in_memory().expect("in memory");
        let read = |sql: &str| {
            connection
                .query_row(sql, [], |row| {
                    Ok((integer_as_stored(row, 0)?, text_as_stored(row, 0)?))
                })
                .expect(sql)
        };
        assert_eq!(read("SELECT 7"), (Some(7), None));
        assert_eq!(read("SELECT 'seven'"), (None, Some("seven".to_owned())));
        assert_eq!(read("SELECT 7.5"), (None, None));
        assert_eq!(read("SELECT x'37'"), (None, None));
        assert_eq!(read("SELECT NULL"), (None, None));
        assert_eq!(read("SELECT CAST(x'7b22ff80' AS TEXT)"), (None, None));
    }
}
