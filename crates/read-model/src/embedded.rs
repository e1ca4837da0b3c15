//! The read model in its own SQLite file, `read_model.db`.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use embedded_sqlite::{ReadPool, SharedWriter, SqliteError};
use event_relay::{EventSink, SinkError};
use event_store::RecordedEvent;
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use wallet_domain::{Balance, EventKind, OwnerId, WalletId};

use crate::{ApplyOutcome, ReadModel, ReadModelError, WalletListQuery, WalletView, LIST_LIMIT_MAX};

const MIGRATIONS: &[&str] = &[include_str!(
    "../../../migrations/embedded/read_model_0001.sql"
)];

pub struct EmbeddedReadModel {
    writer: SharedWriter,
    readers: ReadPool,
}

impl From<SqliteError> for ReadModelError {
    fn from(error: SqliteError) -> Self {
        ReadModelError::Unavailable(error.to_string())
    }
}

impl EmbeddedReadModel {
    pub fn open(data_dir: &Path) -> Result<Self, ReadModelError> {
        let path = data_dir.join("read_model.db");
        let writer = SharedWriter::open(&path, MIGRATIONS)?;
        let readers = ReadPool::open(&path)?;
        Ok(Self { writer, readers })
    }
}

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn stored_version(connection: &Connection, wallet_id: &WalletId) -> rusqlite::Result<u64> {
    let version: Option<i64> = connection
        .prepare_cached("SELECT version FROM wallets WHERE wallet_id = ?1")?
        .query_row([wallet_id.as_str()], |row| row.get(0))
        .optional()?;
    Ok(version.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

enum Step {
    Applied,
    Skipped,
    Gap { stored: u64 },
}

fn apply_one(connection: &Connection, recorded: &RecordedEvent) -> rusqlite::Result<Step> {
    let event = &recorded.event;
    let stored = stored_version(connection, &event.wallet_id)?;
    if recorded.stream_version <= stored {
        return Ok(Step::Skipped);
    }
    if recorded.stream_version != stored + 1 {
        return Ok(Step::Gap { stored });
    }
    let at = timestamp(&event.occurred_at);
    let balance = event.balance_after.value().to_string();
    match &event.kind {
        EventKind::WalletCreated { owner_id } => {
            connection
                .prepare_cached(
                    "INSERT INTO wallets (wallet_id, owner_id, balance, created_at, updated_at, version) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                )?
                .execute(params![
                    event.wallet_id.as_str(),
                    owner_id.as_str(),
                    balance,
                    at,
                    to_i64(recorded.stream_version)
                ])?;
        }
        _ => {
            connection
                .prepare_cached(
                    "UPDATE wallets SET balance = ?2, updated_at = ?3, version = ?4 WHERE wallet_id = ?1",
                )?
                .execute(params![
                    event.wallet_id.as_str(),
                    balance,
                    at,
                    to_i64(recorded.stream_version)
                ])?;
        }
    }
    Ok(Step::Applied)
}

type ApplyResult = Result<ApplyOutcome, ReadModelError>;

fn apply_batch(
    connection: &mut Connection,
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
) -> rusqlite::Result<ApplyResult> {
    let transaction = connection.transaction()?;
    let mut outcome = ApplyOutcome::default();
    for recorded in events {
        match apply_one(&transaction, recorded)? {
            Step::Applied => outcome.applied += 1,
            Step::Skipped => outcome.skipped += 1,
            Step::Gap { stored } => {
                return Ok(Err(ReadModelError::Gap {
                    wallet_id: recorded.event.wallet_id.clone(),
                    stored,
                    arrived: recorded.stream_version,
                }))
            }
        }
    }
    if let Some(position) = checkpoint {
        transaction
            .prepare_cached(
                "INSERT INTO projection_checkpoint (id, position) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET position = excluded.position",
            )?
            .execute([to_i64(position)])?;
    }
    transaction.commit()?;
    Ok(Ok(outcome))
}

type WalletRow = (String, String, String, String, String, i64);

fn wallet_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WalletRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_view(row: WalletRow) -> Result<WalletView, ReadModelError> {
    let (id, owner, balance, created_at, updated_at, version) = row;
    let corrupt = |what: &str| ReadModelError::Corrupt(format!("wallet {id}: {what}"));
    let parse_time = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| corrupt("timestamp"))
    };
    Ok(WalletView {
        id: WalletId::parse(&id).map_err(|_| corrupt("id"))?,
        owner_id: OwnerId::parse(&owner).map_err(|_| corrupt("owner"))?,
        balance: Decimal::from_str(&balance)
            .ok()
            .and_then(|value| Balance::try_from(value).ok())
            .ok_or_else(|| corrupt("balance"))?,
        created_at: parse_time(&created_at)?,
        updated_at: parse_time(&updated_at)?,
        version: u64::try_from(version).map_err(|_| corrupt("version"))?,
    })
}

#[async_trait]
impl ReadModel for EmbeddedReadModel {
    async fn apply(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<ApplyOutcome, ReadModelError> {
        let events = events.to_vec();
        self.writer
            .write(move |connection| apply_batch(connection, &events, checkpoint))
            .await?
    }

    async fn checkpoint(&self) -> Result<u64, ReadModelError> {
        let position: Option<i64> = self
            .readers
            .read(|connection| {
                connection
                    .query_row(
                        "SELECT position FROM projection_checkpoint WHERE id = 1",
                        [],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await?;
        Ok(position.and_then(|p| u64::try_from(p).ok()).unwrap_or(0))
    }

    async fn list_wallets(
        &self,
        query: WalletListQuery,
    ) -> Result<Vec<WalletView>, ReadModelError> {
        let limit = to_i64(query.limit.min(LIST_LIMIT_MAX) as u64);
        let owner = query.owner_id.map(String::from);
        let after = query.after.map(String::from).unwrap_or_default();
        let rows = self
            .readers
            .read(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT wallet_id, owner_id, balance, created_at, updated_at, version FROM wallets \
                     WHERE (?1 IS NULL OR owner_id = ?1) AND wallet_id > ?2 \
                     ORDER BY wallet_id LIMIT ?3",
                )?;
                let rows = statement.query_map(params![owner, after, limit], wallet_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(to_view).collect()
    }
}

#[async_trait]
impl EventSink for EmbeddedReadModel {
    fn name(&self) -> &'static str {
        "read-model"
    }

    async fn checkpoint(&self) -> Result<u64, SinkError> {
        ReadModel::checkpoint(self)
            .await
            .map_err(|error| SinkError::new("read-model", error))
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), SinkError> {
        let last = batch.last().map(|event| event.position);
        self.apply(batch, last)
            .await
            .map(|_| ())
            .map_err(|error| SinkError::new("read-model", error))
    }
}
