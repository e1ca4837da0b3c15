//! Dead letters in `dead_letters.db`, in the embedded data folder.

use std::collections::HashSet;
use std::path::Path;

use async_trait::async_trait;
use embedded_sqlite::{Durability, SharedWriter};
use event_store::StoredEvent;
use rusqlite::{params, OptionalExtension};

use super::{DeadLetter, DeadLetterError, DeadLetterStore, SinkDeadLetters};

/// The dead letters' file in the data folder.
pub const DATABASE_FILE: &str = "dead_letters.db";
const MIGRATIONS: &[&str] = &[include_str!(
    "../../../../migrations/embedded/dead_letters_0001.sql"
)];

/// The embedded default's dead-letter store: one SQLite file, committed with
/// `synchronous=FULL`, so a dead letter is on disk before the relay reads past it.
#[derive(Clone)]
pub struct EmbeddedDeadLetters {
    writer: SharedWriter,
}

impl EmbeddedDeadLetters {
    /// Opens (or creates) `dead_letters.db` in `data_dir`, which must exist.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub fn open(data_dir: &Path) -> Result<Self, DeadLetterError> {
        let path = data_dir.join(DATABASE_FILE);
        Ok(Self {
            writer: SharedWriter::open(&path, MIGRATIONS, Durability::Durable)?,
        })
    }
}

/// SQLite keeps integers signed; positions and counts never reach 2^63.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

#[async_trait]
impl DeadLetterStore for EmbeddedDeadLetters {
    async fn park(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let letter = letter.clone();
        self.writer
            .write(move |connection| {
                let transaction = connection.transaction()?;
                let inserted = transaction.execute(
                    "INSERT OR IGNORE INTO dead_letters (sink, position, stream_version, \
                     wallet_id, event_type, payload, error, parked_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    params![
                        letter.sink,
                        to_i64(letter.event.position),
                        to_i64(letter.event.stream_version),
                        letter.wallet_id,
                        letter.event_type,
                        letter.event.payload,
                        letter.error,
                    ],
                )?;
                transaction.execute(
                    "INSERT INTO dead_letter_marks (sink, position, parked_total) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (sink) DO UPDATE SET \
                     position = MAX(position, excluded.position), \
                     parked_total = parked_total + excluded.parked_total",
                    params![letter.sink, to_i64(letter.event.position), inserted],
                )?;
                transaction.commit()
            })
            .await?;
        Ok(())
    }

    async fn parked_wallets(&self, sink: &str) -> Result<HashSet<String>, DeadLetterError> {
        let sink = sink.to_owned();
        let wallets = self
            .writer
            .write(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT DISTINCT wallet_id FROM dead_letters WHERE sink = ?1 AND wallet_id <> ''",
                )?;
                let wallets = statement
                    .query_map([sink], |row| row.get(0))?
                    .collect::<rusqlite::Result<HashSet<String>>>()?;
                Ok(wallets)
            })
            .await?;
        Ok(wallets)
    }

    async fn parked_through(&self, sink: &str) -> Result<u64, DeadLetterError> {
        let sink = sink.to_owned();
        let position: Option<i64> = self
            .writer
            .write(move |connection| {
                connection
                    .query_row(
                        "SELECT position FROM dead_letter_marks WHERE sink = ?1",
                        [sink],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await?;
        Ok(position.map_or(0, to_u64))
    }

    async fn list(
        &self,
        sink: &str,
        letters_max: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let sink = sink.to_owned();
        let letters = self
            .writer
            .write(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT sink, position, stream_version, wallet_id, event_type, payload, error \
                     FROM dead_letters WHERE sink = ?1 ORDER BY position LIMIT ?2",
                )?;
                let letters = statement
                    .query_map(params![sink, to_i64(letters_max as u64)], |row| {
                        Ok(DeadLetter {
                            sink: row.get(0)?,
                            event: StoredEvent {
                                position: to_u64(row.get(1)?),
                                stream_version: to_u64(row.get(2)?),
                                payload: row.get(5)?,
                            },
                            wallet_id: row.get(3)?,
                            event_type: row.get(4)?,
                            error: row.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(letters)
            })
            .await?;
        Ok(letters)
    }

    async fn remove(&self, sink: &str, position: u64) -> Result<(), DeadLetterError> {
        let sink = sink.to_owned();
        self.writer
            .write(move |connection| {
                connection.execute(
                    "DELETE FROM dead_letters WHERE sink = ?1 AND position = ?2",
                    params![sink, to_i64(position)],
                )
            })
            .await?;
        Ok(())
    }

    async fn counts(&self) -> Result<Vec<SinkDeadLetters>, DeadLetterError> {
        let counts = self
            .writer
            .write(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT marks.sink, \
                     (SELECT COUNT(*) FROM dead_letters WHERE dead_letters.sink = marks.sink), \
                     marks.parked_total \
                     FROM dead_letter_marks AS marks ORDER BY marks.sink",
                )?;
                let counts = statement
                    .query_map([], |row| {
                        Ok(SinkDeadLetters {
                            sink: row.get(0)?,
                            parked: to_u64(row.get(1)?),
                            parked_total: to_u64(row.get(2)?),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(counts)
            })
            .await?;
        Ok(counts)
    }
}
