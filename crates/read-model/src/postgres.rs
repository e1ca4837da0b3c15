//! The read model in PostgreSQL (`migrations/postgres/0003_read_model.sql`).
//!
//! Each `apply` is one transaction: the stored versions of the batch's
//! wallets are read and locked (`FOR UPDATE`, so two consumers of the same
//! wallet take turns), the pure projection rule decides, and the changed rows
//! and the checkpoint are written with array parameters: a batch costs a
//! handful of round trips whatever its size.
//!
//! No `processed_events` table: the stream version is the deduplication. An
//! event at or below its wallet's stored version was applied already and is
//! skipped, in the same transaction that would have applied it.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_sink::{ConsumerOffsets, OffsetsMoved, StoredOffsets};
use event_store::RecordedEvent;
use postgres_support::{consumer_offsets, Within, BATCH_WAIT_MS_MAX, READ_WAIT_MS_MAX};
use rust_decimal::Decimal;
use sqlx::postgres::PgPool;
use sqlx::PgConnection;
use wallet_domain::{Balance, OwnerId, WalletId, WalletStatus};

use crate::projection::{plan, to_i64, touched_wallets, Plan, WalletChange};
use crate::{
    release_due, ApplyOutcome, ReadModel, ReadModelError, WalletListQuery, WalletView,
    LIST_LIMIT_MAX,
};

pub struct PostgresReadModel {
    pool: PgPool,
}

impl PostgresReadModel {
    /// A read model on a pool whose schema is up to date
    /// (`postgres_support::connect` applies the migrations).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unavailable(error: sqlx::Error) -> ReadModelError {
    match error {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            ReadModelError::Corrupt(error.to_string())
        }
        other if postgres_support::is_transient(&other) => {
            ReadModelError::Unavailable(other.to_string())
        }
        other => ReadModelError::Refused(other.to_string()),
    }
}

/// The stored versions of the wallets, locked until the transaction ends.
async fn lock_versions(
    connection: &mut PgConnection,
    wallets: Vec<String>,
) -> Result<HashMap<WalletId, u64>, ReadModelError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT wallet_id, version FROM wallet_read_model \
         WHERE wallet_id = ANY($1::text[]) ORDER BY wallet_id FOR UPDATE",
    )
    .bind(wallets)
    .fetch_all(connection)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|(id, version)| {
            let corrupt = || ReadModelError::Corrupt(format!("wallet {id}: id or version"));
            let wallet_id = WalletId::parse(&id).map_err(|_| corrupt())?;
            let version = u64::try_from(version).map_err(|_| corrupt())?;
            Ok((wallet_id, version))
        })
        .collect()
}

/// Columns of the changed rows, one array each.
#[derive(Default)]
struct Columns {
    wallet_ids: Vec<String>,
    owner_ids: Vec<String>,
    balances: Vec<Decimal>,
    held_changes: Vec<Decimal>,
    /// `None` where the batch leaves the stored value as it is.
    overdraft_limits: Vec<Option<Decimal>>,
    statuses: Vec<Option<&'static str>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    versions: Vec<i64>,
}

impl Columns {
    fn push(&mut self, change: &WalletChange) {
        self.wallet_ids.push(change.wallet_id.to_string());
        if let Some(creation) = &change.created {
            self.owner_ids.push(creation.owner_id.to_string());
            self.created_at.push(creation.created_at);
        }
        self.balances.push(change.balance);
        self.held_changes.push(change.held_change);
        self.overdraft_limits.push(change.overdraft_limit);
        self.statuses.push(change.status.map(WalletStatus::as_str));
        self.updated_at.push(change.updated_at);
        self.versions.push(to_i64(change.version));
    }
}

async fn write_changes(
    connection: &mut PgConnection,
    changes: &[WalletChange],
) -> Result<(), sqlx::Error> {
    let mut inserted = Columns::default();
    let mut updated = Columns::default();
    for change in changes {
        match change.created {
            Some(_) => inserted.push(change),
            None => updated.push(change),
        }
    }
    if !inserted.wallet_ids.is_empty() {
        sqlx::query(
            "INSERT INTO wallet_read_model \
             (wallet_id, owner_id, balance, created_at, updated_at, version, overdraft_limit, status, \
             held_balance) \
             SELECT i.wallet_id, i.owner_id, i.balance, i.created_at, i.updated_at, i.version, \
             COALESCE(i.overdraft_limit, 0), COALESCE(i.status, 'ACTIVE'), i.held_change \
             FROM UNNEST($1::text[], $2::text[], $3::numeric[], \
             $4::timestamptz[], $5::timestamptz[], $6::bigint[], $7::numeric[], $8::text[], \
             $9::numeric[]) \
             AS i (wallet_id, owner_id, balance, created_at, updated_at, version, overdraft_limit, status, \
             held_change)",
        )
        .bind(inserted.wallet_ids)
        .bind(inserted.owner_ids)
        .bind(inserted.balances)
        .bind(inserted.created_at)
        .bind(inserted.updated_at)
        .bind(inserted.versions)
        .bind(inserted.overdraft_limits)
        .bind(inserted.statuses)
        .bind(inserted.held_changes)
        .execute(&mut *connection)
        .await?;
    }
    if !updated.wallet_ids.is_empty() {
        sqlx::query(
            "UPDATE wallet_read_model AS w \
             SET balance = u.balance, updated_at = u.updated_at, version = u.version, \
             overdraft_limit = COALESCE(u.overdraft_limit, w.overdraft_limit), \
             status = COALESCE(u.status, w.status), \
             held_balance = w.held_balance + u.held_change \
             FROM UNNEST($1::text[], $2::numeric[], $3::timestamptz[], $4::bigint[], \
             $5::numeric[], $6::text[], $7::numeric[]) \
             AS u (wallet_id, balance, updated_at, version, overdraft_limit, status, held_change) \
             WHERE w.wallet_id = u.wallet_id",
        )
        .bind(updated.wallet_ids)
        .bind(updated.balances)
        .bind(updated.updated_at)
        .bind(updated.versions)
        .bind(updated.overdraft_limits)
        .bind(updated.statuses)
        .bind(updated.held_changes)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Keeps the expiring holds the batch places, then drops those it settles.
async fn write_expiring_holds(
    connection: &mut PgConnection,
    plan: &Plan,
) -> Result<(), sqlx::Error> {
    if !plan.expiring_placed.is_empty() {
        let holds = &plan.expiring_placed;
        sqlx::query(
            "INSERT INTO read_model_expiring_holds (wallet_id, hold_id, amount, expires_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::numeric[], $4::timestamptz[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(
            holds
                .iter()
                .map(|hold| hold.wallet_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|hold| hold.hold_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|hold| hold.amount.value())
                .collect::<Vec<_>>(),
        )
        .bind(holds.iter().map(|hold| hold.expires_at).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
    }
    if !plan.settled.is_empty() {
        sqlx::query(
            "DELETE FROM read_model_expiring_holds AS h \
             USING UNNEST($1::text[], $2::text[]) AS s (wallet_id, hold_id) \
             WHERE h.wallet_id = s.wallet_id AND h.hold_id = s.hold_id",
        )
        .bind(
            plan.settled
                .iter()
                .map(|(wallet_id, _)| wallet_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.settled
                .iter()
                .map(|(_, hold_id)| hold_id.to_string())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct WalletRow {
    wallet_id: String,
    owner_id: String,
    balance: Decimal,
    held_balance: Decimal,
    overdraft_limit: Decimal,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl TryFrom<WalletRow> for WalletView {
    type Error = ReadModelError;

    fn try_from(row: WalletRow) -> Result<Self, ReadModelError> {
        let corrupt =
            |what: &str| ReadModelError::Corrupt(format!("wallet {}: {what}", row.wallet_id));
        Ok(WalletView {
            id: WalletId::parse(&row.wallet_id).map_err(|_| corrupt("id"))?,
            owner_id: OwnerId::parse(&row.owner_id).map_err(|_| corrupt("owner"))?,
            balance: Balance::try_from(row.balance).map_err(|_| corrupt("balance"))?,
            held_balance: Balance::try_from(row.held_balance)
                .map_err(|_| corrupt("held balance"))?,
            overdraft_limit: Balance::try_from(row.overdraft_limit)
                .map_err(|_| corrupt("overdraft limit"))?,
            status: row.status.parse().map_err(|_| corrupt("status"))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: u64::try_from(row.version).map_err(|_| corrupt("version"))?,
        })
    }
}

/// [`apply_batch`] within [`BATCH_WAIT_MS_MAX`] on the client: past it the
/// batch fails as a lost connection does, and the server ends the silent
/// session (`idle_in_transaction_session_timeout`) with its row locks.
async fn apply_bounded(
    pool: &PgPool,
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
    offsets: Option<&ConsumerOffsets>,
) -> Result<ApplyOutcome, ReadModelError> {
    postgres_support::bounded(
        BATCH_WAIT_MS_MAX,
        apply_batch(pool, events, checkpoint, offsets),
    )
    .await
    .unwrap_or_else(|| Err(unavailable(postgres_support::no_answer(BATCH_WAIT_MS_MAX))))
}

/// Applies `events` in one transaction, moving `offsets` first when given
/// ([`ReadModelError::OffsetsMoved`], applying nothing, when they are not the
/// expected ones) and the checkpoint last.
async fn apply_batch(
    pool: &PgPool,
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
    offsets: Option<&ConsumerOffsets>,
) -> Result<ApplyOutcome, ReadModelError> {
    let mut transaction = pool.begin().await.map_err(unavailable)?;
    if let Some(offsets) = offsets {
        // First, so that a member racing for the same partitions waits on
        // their rows and then finds them moved. Dropping the transaction
        // rolls it back.
        let moved = consumer_offsets::advance(
            &mut transaction,
            &offsets.group,
            &offsets.topic,
            offsets.moves(),
        )
        .await
        .map_err(unavailable)?;
        if !moved {
            return Err(OffsetsMoved::of(offsets).into());
        }
    }
    let wallets = touched_wallets(events)
        .into_iter()
        .map(String::from)
        .collect();
    let stored = lock_versions(&mut transaction, wallets).await?;
    // On a gap the transaction is dropped, which rolls it back.
    let plan = plan(events, &stored)?;
    write_changes(&mut transaction, &plan.changes)
        .await
        .map_err(unavailable)?;
    write_expiring_holds(&mut transaction, &plan)
        .await
        .map_err(unavailable)?;
    if let Some(position) = checkpoint {
        // Never backwards: a late redelivery of an older batch must not
        // make the relay read again what is already projected.
        sqlx::query(
            "UPDATE read_model_checkpoint SET position = GREATEST(position, $1) WHERE id = 1",
        )
        .bind(to_i64(position))
        .execute(&mut *transaction)
        .await
        .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(plan.outcome)
}

#[async_trait]
impl ReadModel for PostgresReadModel {
    async fn apply(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<ApplyOutcome, ReadModelError> {
        apply_bounded(&self.pool, events, checkpoint, None).await
    }

    async fn apply_consumed(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
        offsets: &ConsumerOffsets,
    ) -> Result<ApplyOutcome, ReadModelError> {
        apply_bounded(&self.pool, events, checkpoint, Some(offsets)).await
    }

    async fn consumer_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, ReadModelError> {
        consumer_offsets::stored(&self.pool, group, topic)
            .await
            .map(Some)
            .map_err(unavailable)
    }

    async fn checkpoint(&self) -> Result<u64, ReadModelError> {
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM read_model_checkpoint WHERE id = 1")
                .fetch_one(&self.pool)
                .within(READ_WAIT_MS_MAX)
                .await
                .map_err(unavailable)?;
        u64::try_from(position)
            .map_err(|_| ReadModelError::Corrupt(format!("checkpoint {position}")))
    }

    async fn list_wallets(
        &self,
        query: WalletListQuery,
    ) -> Result<Vec<WalletView>, ReadModelError> {
        let limit = to_i64(query.limit.min(LIST_LIMIT_MAX) as u64);
        // One snapshot for the page and its due holds: a hold settled between
        // two reads would otherwise be taken out twice.
        let mut transaction = self
            .pool
            .begin()
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(unavailable)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *transaction)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(unavailable)?;
        let rows: Vec<WalletRow> = sqlx::query_as(
            "SELECT wallet_id, owner_id, balance, held_balance, overdraft_limit, status, created_at, \
             updated_at, version FROM wallet_read_model \
             WHERE ($1::text IS NULL OR owner_id = $1) AND ($2::text IS NULL OR wallet_id > $2) \
             ORDER BY wallet_id LIMIT $3",
        )
        .bind(query.owner_id.map(String::from))
        .bind(query.after.map(String::from))
        .bind(limit)
        .fetch_all(&mut *transaction)
        .within(READ_WAIT_MS_MAX)
        .await
        .map_err(unavailable)?;
        let due: Vec<(String, Decimal)> = match (query.seen_at, rows.first(), rows.last()) {
            (Some(seen_at), Some(first), Some(last)) => sqlx::query_as(
                "SELECT wallet_id, amount FROM read_model_expiring_holds \
                 WHERE wallet_id >= $1 AND wallet_id <= $2 AND expires_at <= $3",
            )
            .bind(&first.wallet_id)
            .bind(&last.wallet_id)
            .bind(seen_at)
            .fetch_all(&mut *transaction)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(unavailable)?,
            _ => Vec::new(),
        };
        transaction
            .commit()
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(unavailable)?;
        let mut views = rows
            .into_iter()
            .map(WalletView::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        release_due(&mut views, due)?;
        Ok(views)
    }
}

event_sink::checkpointed_sink!(
    PostgresReadModel,
    name: crate::SINK_NAME,
    checkpoint: crate::ReadModel::checkpoint,
    apply: crate::ReadModel::apply,
);
