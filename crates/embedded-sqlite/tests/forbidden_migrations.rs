//! A tool that runs beside a live server (`forbid_migrations`) opens the
//! folder's files as they are: one of an older schema is refused, not
//! migrated under the server; other folders are migrated as before.

use embedded_sqlite::{forbid_migrations, migrate, SqliteError};
use rusqlite::Connection;

#[test]
fn an_older_file_is_refused_unchanged_once_migrations_are_forbidden() {
    let migrations = ["CREATE TABLE a (x);", "CREATE TABLE b (x);"];
    let served = tempfile::tempdir().expect("a folder a server holds");
    let other = tempfile::tempdir().expect("another folder");
    let open = |folder: &tempfile::TempDir, name: &str| {
        Connection::open(folder.path().join(name)).expect("a file")
    };
    let mut older = open(&served, "older.db");
    migrate(&mut older, &migrations[..1]).expect("the older schema");
    let mut current = open(&served, "current.db");
    migrate(&mut current, &migrations).expect("the current schema");
    let mut elsewhere = open(&other, "older.db");
    migrate(&mut elsewhere, &migrations[..1]).expect("the older schema");

    forbid_migrations(served.path());
    let refused = migrate(&mut older, &migrations);
    assert!(
        matches!(
            refused,
            Err(SqliteError::SchemaBehind { ref file, found: 1, known: 2 }) if file.ends_with("older.db")
        ),
        "{refused:?}"
    );
    let version: usize = older
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, 1, "left as it was");
    migrate(&mut current, &migrations).expect("a file of this build's schema opens");
    migrate(&mut open(&served, "new.db"), &migrations).expect("a file not made yet is made");
    migrate(&mut elsewhere, &migrations).expect("another folder is migrated");
}
