//! The read model in its own SQLite file, `read_model.db`.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use embedded_sqlite::{
    integer_as_stored, text_as_stored, Durability, ReadPool, SharedWriter, SqliteError,
};
use event_store::RecordedEvent;
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use wallet_domain::{Balance, OwnerId, WalletId, WalletStatus};

use crate::projection::{plan, to_i64, touched_wallets, Creation, Plan, WalletChange};
use crate::{
    release_due, ApplyOutcome, ReadModel, ReadModelError, WalletListQuery, WalletView,
    LIST_LIMIT_MAX,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/embedded/read_model_0001.sql"),
    include_str!("../../../migrations/embedded/read_model_0002.sql"),
    include_str!("../../../migrations/embedded/read_model_0003.sql"),
    include_str!("../../../migrations/embedded/read_model_0004.sql"),
    include_str!("../../../migrations/embedded/read_model_0005.sql"),
];

/// The read model's file in the data folder.
pub const DATABASE_FILE: &str = "read_model.db";

pub struct EmbeddedReadModel {
    writer: SharedWriter,
    readers: ReadPool,
}

impl From<SqliteError> for ReadModelError {
    fn from(error: SqliteError) -> Self {
        match error {
            SqliteError::Damaged { .. } => ReadModelError::Damaged(error.to_string()),
            // Refused again on every retry: parked, as on PostgreSQL.
            _ if error.refuses_the_input() => ReadModelError::Refused(error.to_string()),
            _ => ReadModelError::Unavailable(error.to_string()),
        }
    }
}

impl EmbeddedReadModel {
    pub fn open(data_dir: &Path) -> Result<Self, ReadModelError> {
        let path = data_dir.join(DATABASE_FILE);
        let writer = SharedWriter::open(&path, MIGRATIONS, Durability::Replayable)?;
        let readers = ReadPool::open(&path)?;
        Ok(Self { writer, readers })
    }

    /// `error` as the damage it is when a row of the file does not read back
    /// as this build writes it (`Corrupt`: a value, or a column type, no
    /// build writes). The file is marked damaged
    /// ([`embedded_sqlite::FilePlace::mark_damaged`]): its routes answer 503
    /// naming it, `/health` reports it, and the projection waits, nothing
    /// dead-lettered, until the file is moved out and rebuilt from the log.
    fn damage_if_corrupt(&self, error: ReadModelError) -> ReadModelError {
        match error {
            ReadModelError::Corrupt(detail) => self.writer.place().mark_damaged(detail).into(),
            other => other,
        }
    }

    /// [`ReadModel::apply`] of a batch the in-process relay read from the
    /// log, which brings every wallet's events in order from the checkpoint
    /// on: a gap (a wallet's row missing, or behind the checkpoint) means
    /// the file lost or rewrote a row, and marks it damaged as
    /// [`Self::damage_if_corrupt`] does. Taken as passing, it stopped the
    /// projection for good with `/health` ok (tester h133 F4).
    async fn apply_from_log(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<ApplyOutcome, ReadModelError> {
        match self.apply(events, checkpoint).await {
            Err(gap @ ReadModelError::Gap { .. }) => Err(self
                .writer
                .place()
                .mark_damaged(format!("{gap}: a row of the file is missing or behind"))
                .into()),
            applied => applied,
        }
    }
}

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An expiry as `expiring_holds` keeps it: every digit, fixed width, so text
/// order is time order.
fn expiry(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Keeps the expiring holds the batch places, then drops those it settles.
fn write_expiring_holds(connection: &Connection, plan: &Plan) -> rusqlite::Result<()> {
    for hold in &plan.expiring_placed {
        connection
            .prepare_cached(
                "INSERT OR IGNORE INTO expiring_holds (wallet_id, hold_id, amount, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                hold.wallet_id.as_str(),
                hold.hold_id.as_str(),
                hold.amount.value().to_string(),
                expiry(&hold.expires_at)
            ])?;
    }
    for (wallet_id, hold_id) in &plan.settled {
        connection
            .prepare_cached("DELETE FROM expiring_holds WHERE wallet_id = ?1 AND hold_id = ?2")?
            .execute([wallet_id.as_str(), hold_id.as_str()])?;
    }
    Ok(())
}

/// What a wallet's balances row holds when a batch starts: the version the
/// projection reached and the held balance, exact (the column is text:
/// SQLite's own arithmetic would go through a float). A wallet without a
/// row is at version 0 with nothing held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StoredBalances {
    version: u64,
    held: Decimal,
}

/// The wallet's [`StoredBalances`], in one lookup of its row; `Corrupt`
/// when the row holds a version or held balance no build writes.
fn stored_balances(
    connection: &Connection,
    wallet_id: &WalletId,
) -> rusqlite::Result<Result<StoredBalances, ReadModelError>> {
    let row: Option<(Option<i64>, Option<String>, bool)> = connection
        .prepare_cached(
            "SELECT b.version, b.held_balance, w.wallet_id IS NOT NULL FROM wallet_balances b \
             LEFT JOIN wallets w ON w.wallet_id = b.wallet_id WHERE b.wallet_id = ?1",
        )?
        .query_row([wallet_id.as_str()], |row| {
            // As stored: another column type is `None`, not an error that
            // would stop every wallet's batches.
            Ok((
                integer_as_stored(row, 0)?,
                text_as_stored(row, 1)?,
                row.get(2)?,
            ))
        })
        .optional()?;
    let Some((version, held, listed)) = row else {
        return Ok(Ok(StoredBalances::default()));
    };
    let corrupt = |what: &str| ReadModelError::Corrupt(format!("wallet {wallet_id}: {what}"));
    // Its `wallets` row gone, the list left the wallet out for good with
    // every batch applied (tester h134).
    if !listed {
        return Ok(Err(corrupt("balances without a wallets row")));
    }
    let Some(version) = version.and_then(|version| u64::try_from(version).ok()) else {
        return Ok(Err(corrupt("version")));
    };
    let Some(held) = held
        .and_then(|held| Balance::from_stored(&held))
        .map(Balance::value)
        .filter(|held| *held >= Decimal::ZERO)
    else {
        return Ok(Err(corrupt("held balance")));
    };
    Ok(Ok(StoredBalances { version, held }))
}

/// The held balance after the batch's change, at the money scale.
fn held_after(stored: Decimal, change: &WalletChange) -> String {
    let mut held = stored + change.held_change;
    held.rescale(wallet_domain::money::MONEY_SCALE);
    held.to_string()
}

/// A new wallet's balances row: `?1` wallet id, `?2` balance, `?3` held
/// balance, `?4` update time, `?5` version.
const INSERT_BALANCES: &str = "INSERT INTO wallet_balances \
     (wallet_id, balance, held_balance, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5)";
/// [`INSERT_BALANCES`]'s values written over a wallet's balances row.
const UPDATE_BALANCES: &str = "UPDATE wallet_balances \
     SET balance = ?2, held_balance = ?3, updated_at = ?4, version = ?5 WHERE wallet_id = ?1";

/// Inserts the rows of a wallet the batch creates; for the others, updates
/// the balances' row, and the wallet's own row only when the batch changed
/// its overdraft limit or status (`read_model_0005.sql`: that row's page is
/// not written for a credit).
fn write_change(
    connection: &Connection,
    change: &WalletChange,
    held_before: Decimal,
) -> rusqlite::Result<()> {
    let held_balance = held_after(held_before, change);
    let overdraft_limit = change.overdraft_limit.map(|limit| limit.to_string());
    let status = change.status.map(WalletStatus::as_str);
    if let Some(Creation {
        owner_id,
        created_at,
    }) = &change.created
    {
        connection
            .prepare_cached(
                "INSERT INTO wallets (wallet_id, owner_id, created_at, overdraft_limit, status) \
                 VALUES (?1, ?2, ?3, COALESCE(?4, '0.00'), COALESCE(?5, 'ACTIVE'))",
            )?
            .execute(params![
                change.wallet_id.as_str(),
                owner_id.as_str(),
                timestamp(created_at),
                overdraft_limit,
                status,
            ])?;
    }
    let balances = match change.created {
        Some(_) => INSERT_BALANCES,
        None => UPDATE_BALANCES,
    };
    let written = connection.prepare_cached(balances)?.execute(params![
        change.wallet_id.as_str(),
        change.balance.to_string(),
        held_balance,
        timestamp(&change.updated_at),
        to_i64(change.version),
    ])?;
    if change.created.is_none() && written == 1 && (overdraft_limit.is_some() || status.is_some()) {
        connection
            .prepare_cached(
                "UPDATE wallets SET overdraft_limit = COALESCE(?2, overdraft_limit), \
                 status = COALESCE(?3, status) WHERE wallet_id = ?1",
            )?
            .execute(params![change.wallet_id.as_str(), overdraft_limit, status])?;
    }
    Ok(())
}

type ApplyResult = Result<ApplyOutcome, ReadModelError>;

fn apply_batch(
    connection: &mut Connection,
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
) -> rusqlite::Result<ApplyResult> {
    let transaction = connection.transaction()?;
    let mut versions = HashMap::new();
    let mut held = HashMap::new();
    for wallet_id in touched_wallets(events) {
        // Dropping the transaction rolls it back: nothing of the batch is kept.
        let stored = match stored_balances(&transaction, &wallet_id)? {
            Ok(stored) => stored,
            Err(corrupt) => return Ok(Err(corrupt)),
        };
        versions.insert(wallet_id.clone(), stored.version);
        held.insert(wallet_id, stored.held);
    }
    let plan = match plan(events, &versions) {
        Ok(plan) => plan,
        Err(gap) => return Ok(Err(gap)),
    };
    for change in &plan.changes {
        let held_before = held.get(&change.wallet_id).copied().unwrap_or_default();
        write_change(&transaction, change, held_before)?;
    }
    write_expiring_holds(&transaction, &plan)?;
    // Never backwards: a late redelivery of an older batch must not make the
    // relay read again what is already projected.
    if let Some(position) = checkpoint {
        transaction
            .prepare_cached(
                "INSERT INTO projection_checkpoint (id, position) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET position = MAX(position, excluded.position)",
            )?
            .execute([to_i64(position)])?;
    }
    transaction.commit()?;
    Ok(Ok(plan.outcome))
}

type WalletRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
);

fn wallet_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WalletRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn to_view(row: WalletRow) -> Result<WalletView, ReadModelError> {
    let (id, owner, balance, created_at, updated_at, version, overdraft_limit, status, held) = row;
    let corrupt = |what: &str| ReadModelError::Corrupt(format!("wallet {id}: {what}"));
    let parse_time = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| corrupt("timestamp"))
    };
    Ok(WalletView {
        id: WalletId::parse(&id).map_err(|_| corrupt("id"))?,
        owner_id: OwnerId::parse(&owner).map_err(|_| corrupt("owner"))?,
        balance: Balance::from_stored(&balance).ok_or_else(|| corrupt("balance"))?,
        held_balance: Balance::from_stored(&held).ok_or_else(|| corrupt("held balance"))?,
        overdraft_limit: Balance::from_stored(&overdraft_limit)
            .ok_or_else(|| corrupt("overdraft limit"))?,
        status: status.parse().map_err(|_| corrupt("status"))?,
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
            .map_err(|error| self.damage_if_corrupt(error))
    }

    async fn checkpoint(&self) -> Result<u64, ReadModelError> {
        let position: Option<i64> = self
            .readers
            .read_in_place(|connection| {
                connection
                    .query_row(
                        "SELECT position FROM projection_checkpoint WHERE id = 1",
                        [],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await?;
        // A position below zero no build writes (h133 F8: it was taken as 0).
        position.map_or(Ok(0), |position| {
            u64::try_from(position).map_err(|_| {
                self.damage_if_corrupt(ReadModelError::Corrupt(format!(
                    "checkpoint position {position}"
                )))
            })
        })
    }

    async fn list_wallets(
        &self,
        query: WalletListQuery,
    ) -> Result<Vec<WalletView>, ReadModelError> {
        let limit = to_i64(query.limit.min(LIST_LIMIT_MAX) as u64);
        let owner = query.owner_id.map(String::from);
        let after = query.after.map(String::from).unwrap_or_default();
        let seen_at = query.seen_at.as_ref().map(expiry);
        let (rows, due) = self
            .readers
            .read(move |connection| {
                // One snapshot for the page and its due holds: a hold settled
                // between two reads would otherwise be taken out twice.
                let snapshot = connection.unchecked_transaction()?;
                let rows = snapshot
                    .prepare_cached(
                        "SELECT w.wallet_id, w.owner_id, b.balance, w.created_at, b.updated_at, \
                         b.version, w.overdraft_limit, w.status, b.held_balance \
                         FROM wallets w JOIN wallet_balances b ON b.wallet_id = w.wallet_id \
                         WHERE (?1 IS NULL OR w.owner_id = ?1) AND w.wallet_id > ?2 \
                         ORDER BY w.wallet_id LIMIT ?3",
                    )?
                    .query_map(params![owner, after, limit], wallet_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let due = match (seen_at, rows.first(), rows.last()) {
                    (Some(seen_at), Some(first), Some(last)) => snapshot
                        .prepare_cached(
                            "SELECT wallet_id, amount FROM expiring_holds \
                             WHERE wallet_id >= ?1 AND wallet_id <= ?2 AND expires_at <= ?3",
                        )?
                        .query_map(params![first.0, last.0, seen_at], |row| {
                            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    _ => Vec::new(),
                };
                Ok((rows, due))
            })
            .await?;
        let mut views = rows
            .into_iter()
            .map(to_view)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.damage_if_corrupt(error))?;
        due.into_iter()
            .map(|(wallet_id, amount)| match Balance::from_stored(&amount) {
                Some(amount) => Ok((wallet_id, amount.value())),
                None => Err(ReadModelError::Corrupt(format!(
                    "an expiring hold of {wallet_id}: amount {amount:?}"
                ))),
            })
            .collect::<Result<Vec<_>, ReadModelError>>()
            .and_then(|due| release_due(&mut views, due))
            .map_err(|error| self.damage_if_corrupt(error))?;
        Ok(views)
    }
}

event_sink::checkpointed_sink!(
    EmbeddedReadModel,
    name: crate::SINK_NAME,
    checkpoint: crate::ReadModel::checkpoint,
    apply: EmbeddedReadModel::apply_from_log,
);
