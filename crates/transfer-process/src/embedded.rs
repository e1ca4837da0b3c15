//! The journal in a SQLite file (`transfers.db`) beside the embedded event
//! store: records and the open transfers change in one transaction. Its
//! writer commits the appends of concurrent transfers together (a
//! [`GroupedWriter`]): one fsync for every append waiting, instead of one
//! each.

use std::path::Path;

use async_trait::async_trait;
use embedded_sqlite::{Durability, GroupedWriter, SqliteError};
use rusqlite::params;
use uuid::Uuid;

use crate::journal::{JournalError, JournalRecord, TransferJournal, STREAM_RECORDS_MAX};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/embedded/transfers_0001.sql"),
    include_str!("../../../migrations/embedded/transfers_0002.sql"),
];

/// The journal's file in the data folder.
pub const JOURNAL_FILE: &str = "transfers.db";

pub struct EmbeddedTransferJournal {
    writer: GroupedWriter,
}

impl From<SqliteError> for JournalError {
    fn from(error: SqliteError) -> Self {
        match &error {
            SqliteError::Sqlite(failure) if embedded_sqlite::is_refused_commit(failure) => {
                JournalError::Refused(error.to_string())
            }
            SqliteError::Moved { .. } => JournalError::Moved(error.to_string()),
            SqliteError::Damaged { .. } => JournalError::Damaged(error.to_string()),
            _ => JournalError::Unavailable(error.to_string()),
        }
    }
}

/// What one append found, decided inside its transaction.
enum Appended {
    Stored,
    Conflict,
}

impl EmbeddedTransferJournal {
    /// Opens (or creates) `transfers.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, JournalError> {
        let writer = GroupedWriter::open(
            &data_dir.join(JOURNAL_FILE),
            MIGRATIONS,
            Durability::Durable,
        )?;
        Ok(Self { writer })
    }
}

impl EmbeddedTransferJournal {
    /// Whether `data_dir` has a journal file, without making one.
    pub fn kept_in(data_dir: &Path) -> bool {
        data_dir.join(JOURNAL_FILE).exists()
    }

    /// Whether the journal records any transfer, finished or not.
    pub async fn holds_transfers(&self) -> Result<bool, JournalError> {
        let held = self
            .writer
            .read(|connection| {
                connection.query_row(
                    "SELECT EXISTS (SELECT 1 FROM transfer_records)",
                    [],
                    |row| row.get::<_, bool>(0),
                )
            })
            .await?;
        Ok(held)
    }
}

#[async_trait]
impl TransferJournal for EmbeddedTransferJournal {
    async fn append(
        &self,
        transfer_id: Uuid,
        expected_records: u64,
        record: &JournalRecord,
        log_position: u64,
    ) -> Result<(), JournalError> {
        let text = record.to_json()?;
        let id = transfer_id.to_string();
        let opens = record.opens_or_closes();
        let sequence = i64::try_from(expected_records + 1)
            .map_err(|_| JournalError::Corrupt(format!("record count {expected_records}")))?;
        let log_position = i64::try_from(log_position)
            .map_err(|_| JournalError::Corrupt(format!("log position {log_position}")))?;
        let appended = self
            .writer
            .write(move |connection| {
                // The group's transaction is immediate: the count and the
                // insert see the same state, also against another process
                // on the same file. Cached statements: every append runs them.
                let stored: i64 = connection
                    .prepare_cached("SELECT COUNT(*) FROM transfer_records WHERE transfer_id = ?1")?
                    .query_row(params![id], |row| row.get(0))?;
                if stored != sequence - 1 {
                    return Ok(Appended::Conflict);
                }
                connection
                    .prepare_cached(
                        "INSERT INTO transfer_records (transfer_id, sequence, record) \
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![id, sequence, text])?;
                match opens {
                    Some(true) => connection
                        .prepare_cached("INSERT INTO open_transfers (transfer_id) VALUES (?1)")?
                        .execute(params![id])?,
                    Some(false) => connection
                        .prepare_cached("DELETE FROM open_transfers WHERE transfer_id = ?1")?
                        .execute(params![id])?,
                    None => 0,
                };
                if log_position > 0 {
                    connection
                        .prepare_cached("UPDATE log_position SET position = MAX(position, ?1)")?
                        .execute(params![log_position])?;
                }
                Ok(Appended::Stored)
            })
            .await?;
        match appended {
            Appended::Stored => Ok(()),
            Appended::Conflict => Err(JournalError::Conflict {
                transfer_id,
                expected: expected_records,
            }),
        }
    }

    async fn read(&self, transfer_id: Uuid) -> Result<Vec<JournalRecord>, JournalError> {
        let id = transfer_id.to_string();
        let limit = i64::try_from(STREAM_RECORDS_MAX + 1).unwrap_or(i64::MAX);
        let texts = self
            .writer
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT record FROM transfer_records WHERE transfer_id = ?1 \
                     ORDER BY sequence LIMIT ?2",
                )?;
                let rows =
                    statement.query_map(params![id, limit], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        JournalRecord::decode_all(transfer_id, &texts)
    }

    fn damage(&self) -> Option<String> {
        self.writer
            .place()
            .check()
            .err()
            .map(|found| found.to_string())
    }

    async fn log_position(&self) -> Result<u64, JournalError> {
        let position = self
            .writer
            .read(|connection| {
                connection.query_row("SELECT position FROM log_position", [], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .await?;
        u64::try_from(position)
            .map_err(|_| JournalError::Corrupt(format!("log position {position}")))
    }

    async fn unfinished(&self, limit: usize) -> Result<Vec<Uuid>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = self
            .writer
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT transfer_id FROM open_transfers ORDER BY opened LIMIT ?1",
                )?;
                let rows = statement.query_map(params![limit], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        ids.iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|error| {
                    JournalError::Corrupt(format!("open transfer {id:?}: {error}"))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Ending;

    #[tokio::test]
    async fn the_journal_keeps_the_greatest_log_position_its_records_follow() {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = EmbeddedTransferJournal::open(dir.path()).expect("journal");
        assert_eq!(journal.log_position().await.expect("read"), 0);
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        journal
            .append(first, 1, &JournalRecord::Debited, 7)
            .await
            .expect_err("no intent: a conflict, nothing recorded");
        assert_eq!(journal.log_position().await.expect("read"), 0);
        let finished = JournalRecord::Finished(Ending::Completed {
            status: 201,
            body: "{}".into(),
        });
        for (transfer_id, expected, record, position) in [
            (first, 0, &JournalRecord::Debited, 7),
            (second, 0, &JournalRecord::Debited, 3),
            (first, 1, &finished, 0),
        ] {
            journal
                .append(transfer_id, expected, record, position)
                .await
                .expect("appended");
        }
        assert_eq!(journal.log_position().await.expect("read"), 7);
        drop(journal);
        let reopened = EmbeddedTransferJournal::open(dir.path()).expect("journal");
        assert_eq!(reopened.log_position().await.expect("read"), 7);
    }
}
