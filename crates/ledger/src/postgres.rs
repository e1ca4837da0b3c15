//! The ledger in PostgreSQL (`migrations/postgres/0002_ledger.sql`).
//!
//! Each `post` is one transaction: the events' ids go into
//! `ledger_processed_events` with `ON CONFLICT DO NOTHING`, and only the ids
//! that statement inserted are posted, in the same transaction. A redelivered
//! event (Kafka delivers at least once) therefore posts nothing, even when two
//! consumers post it at the same moment: the second insert of the same key
//! waits for the first transaction and then does nothing.
//!
//! A batch is written with array parameters (`UNNEST`), three statements per
//! chunk of at most [`POST_CHUNK_EVENTS_MAX`] events, so a batch of a few
//! hundred events costs a handful of round trips. Amounts are `NUMERIC`,
//! exact, so sums may be taken in SQL.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_sink::{ConsumerOffsets, OffsetsMoved, StoredOffsets};
use event_store::RecordedEvent;
use postgres_support::{consumer_offsets, Within, BATCH_WAIT_MS_MAX, READ_WAIT_MS_MAX};
use rust_decimal::Decimal;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;
use wallet_domain::WalletId;

use crate::posting::{Account, CLEARING_TRANSFERS};
use crate::stored::{
    checked_sum, judged, page, posted, prepare_batch, PreparedBatch, PreparedTransaction,
    StoredEntry,
};
use crate::totals::{
    CheckpointLookup, StoredCheckpoint, TotalsCheckpoint, TotalsFold, TOTALS_CHECKPOINT_FIRST_ROWS,
    TOTALS_CHECKPOINT_ROWS_PAGE,
};
use crate::{
    EntryFilter, EntryId, EntryList, Ledger, LedgerEntry, LedgerError, LedgerVerification,
    PostOutcome, PostedThrough, TransactionsQuery, WalletEntriesQuery, WalletSummary,
};

/// Events one set of array statements carries at most; a larger batch is
/// written in several chunks, still in one transaction.
pub const POST_CHUNK_EVENTS_MAX: usize = 1_000;

/// Transactions one read of a wallet summary's sum returns at most: what a
/// summary past its wallet's newest checkpoint holds in memory at once
/// (about 100 bytes each), however long that stretch.
const SUMMARY_PAGE_TRANSACTIONS: i64 = 10_000;

pub struct PostgresLedger {
    pool: PgPool,
}

impl PostgresLedger {
    /// A ledger on a pool whose schema is up to date
    /// (`postgres_support::connect` applies the migrations).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Deletes every transaction, entry and processed event id and sets the
    /// checkpoint back to 0, in one transaction: the first step of rebuilding
    /// the ledger from the event log. Waits for posts in progress (TRUNCATE
    /// takes the tables' exclusive lock).
    pub async fn clear(&self) -> Result<(), LedgerError> {
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        sqlx::query(
            "TRUNCATE ledger_entries, ledger_transactions, ledger_processed_events, \
             ledger_wallet_totals",
        )
        .execute(&mut *transaction)
        .await
        .map_err(storage)?;
        sqlx::query("UPDATE ledger_checkpoint SET position = 0 WHERE id = 1")
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        transaction.commit().await.map_err(storage)
    }
}

/// A checkpoint row as the lookup reads it: position, time, both totals as
/// text, count, whether the ledger holds its transaction, digest.
type CheckpointRow = (
    i64,
    DateTime<Utc>,
    String,
    String,
    i64,
    bool,
    Option<String>,
);

impl PostgresLedger {
    /// The newest usable checkpoint of `wallet_id`'s totals at or before
    /// `at` (any, without it), and the rows passed on the way
    /// ([`CheckpointLookup`]), read newest first: the
    /// [`TOTALS_CHECKPOINT_FIRST_ROWS`] newest, then pages of
    /// [`TOTALS_CHECKPOINT_ROWS_PAGE`] while none is usable. A usable one's
    /// transaction the ledger holds, of this wallet and at its time, and
    /// neither total is negative. A cache row that is not is passed, logged
    /// (tester h165 F2).
    async fn totals_checkpoint(
        &self,
        wallet_id: &WalletId,
        at: Option<DateTime<Utc>>,
    ) -> Result<CheckpointLookup, LedgerError> {
        let mut lookup = CheckpointLookup::default();
        let mut below = i64::MAX;
        let mut rows = TOTALS_CHECKPOINT_FIRST_ROWS;
        loop {
            let candidates: Vec<CheckpointRow> = sqlx::query_as(
                "SELECT c.position, c.occurred_at, c.credits::text, c.debits::text, \
                     c.entry_count, t.wallet_id IS NOT DISTINCT FROM c.wallet_id \
                     AND t.occurred_at IS NOT DISTINCT FROM c.occurred_at, c.digest \
                     FROM ledger_wallet_totals c \
                     LEFT JOIN ledger_transactions t ON t.position = c.position \
                     WHERE c.wallet_id = $1 AND c.position < $2 \
                     AND ($3::timestamptz IS NULL OR c.occurred_at <= $3) \
                     ORDER BY c.position DESC LIMIT $4",
            )
            .bind(wallet_id.as_str())
            .bind(below)
            .bind(at)
            .bind(rows)
            .fetch_all(&self.pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(storage)?;
            let full = i64::try_from(candidates.len()).unwrap_or(i64::MAX) == rows;
            for (position, occurred_at, credits, debits, count, held, digest) in candidates {
                below = position;
                let stored = StoredCheckpoint {
                    held,
                    digest,
                    position: Some(position),
                    occurred_at: Some(occurred_at),
                    credits: Decimal::from_str(&credits).ok(),
                    debits: Decimal::from_str(&debits).ok(),
                    count: u64::try_from(count).ok(),
                };
                if !lookup.offer(wallet_id.as_str(), stored) {
                    return Ok(lookup.logged(wallet_id.as_str()));
                }
            }
            if !full {
                return Ok(lookup.logged(wallet_id.as_str()));
            }
            rows = TOTALS_CHECKPOINT_ROWS_PAGE;
        }
    }

    /// Keeps `checkpoints` of `wallet_id`'s totals in one transaction, over
    /// any at their positions (summed again from the entries, so a damaged
    /// row is mended), each only while the ledger holds its transaction (a
    /// rebuild may have cleared it since it was summed); when a summary
    /// `passed` rows, deletes them and every row of the wallet whose
    /// transaction the ledger does not hold ([`CheckpointLookup::passed`]).
    async fn keep_totals(
        &self,
        wallet_id: &WalletId,
        checkpoints: &[TotalsCheckpoint],
        passed: &[i64],
    ) -> Result<(), sqlx::Error> {
        if checkpoints.is_empty() && passed.is_empty() {
            return Ok(());
        }
        async {
            let mut transaction = self.pool.begin().await?;
            if !passed.is_empty() {
                sqlx::query(
                    "DELETE FROM ledger_wallet_totals c WHERE c.wallet_id = $1 \
                     AND (c.position = ANY($2) OR NOT EXISTS (SELECT 1 FROM ledger_transactions t \
                     WHERE t.position = c.position AND t.wallet_id = $1 \
                     AND t.occurred_at = c.occurred_at))",
                )
                .bind(wallet_id.as_str())
                .bind(passed)
                .execute(&mut *transaction)
                .await?;
            }
            for checkpoint in checkpoints {
                sqlx::query(
                    "INSERT INTO ledger_wallet_totals \
                     (wallet_id, position, occurred_at, credits, debits, entry_count, digest) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM ledger_transactions \
                     WHERE position = $2 AND wallet_id = $1) \
                     ON CONFLICT (wallet_id, position) DO UPDATE SET \
                     occurred_at = excluded.occurred_at, credits = excluded.credits, \
                     debits = excluded.debits, entry_count = excluded.entry_count, \
                     digest = excluded.digest",
                )
                .bind(wallet_id.as_str())
                .bind(checkpoint.position)
                .bind(checkpoint.occurred_at)
                .bind(checkpoint.totals.credits)
                .bind(checkpoint.totals.debits)
                .bind(i64::try_from(checkpoint.totals.count).unwrap_or(i64::MAX))
                .bind(checkpoint.digest(wallet_id.as_str()))
                .execute(&mut *transaction)
                .await?;
            }
            transaction.commit().await
        }
        .within(READ_WAIT_MS_MAX)
        .await
    }
}

/// Values that do not read back are corrupt data; anything else is storage.
fn storage(error: sqlx::Error) -> LedgerError {
    match error {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            LedgerError::Corrupt(error.to_string())
        }
        other => LedgerError::Postgres(other),
    }
}

/// A sum in SQL that does not fit a `Decimal` left the exact range.
fn sum_failed(error: sqlx::Error) -> LedgerError {
    match error {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => LedgerError::Overflow,
        other => LedgerError::Postgres(other),
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> LedgerError {
    LedgerError::Corrupt(format!("{what}: {error}"))
}

/// The first occurrence of each event of the batch, and how many repeats were left out.
fn first_occurrences(prepared: &[PreparedTransaction]) -> (Vec<&PreparedTransaction>, usize) {
    let mut seen = HashSet::with_capacity(prepared.len());
    let unique: Vec<&PreparedTransaction> = prepared
        .iter()
        .filter(|candidate| seen.insert(candidate.transaction.id))
        .collect();
    let repeats = prepared.len() - unique.len();
    (unique, repeats)
}

/// Marks the chunk's events processed and returns the ids this call marked:
/// the events no earlier transaction posted.
async fn mark_processed(
    connection: &mut sqlx::PgConnection,
    chunk: &[&PreparedTransaction],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = chunk.iter().map(|row| row.transaction.id).collect();
    let positions: Vec<i64> = chunk.iter().map(|row| row.position).collect();
    let marked: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO ledger_processed_events (event_id, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) \
         ON CONFLICT (event_id) DO NOTHING \
         RETURNING event_id",
    )
    .bind(&ids)
    .bind(&positions)
    .fetch_all(connection)
    .await?;
    Ok(marked.into_iter().collect())
}

async fn insert_transactions(
    connection: &mut sqlx::PgConnection,
    new: &[&PreparedTransaction],
) -> Result<(), sqlx::Error> {
    let mut ids = Vec::with_capacity(new.len());
    let mut positions = Vec::with_capacity(new.len());
    let mut references = Vec::with_capacity(new.len());
    let mut types = Vec::with_capacity(new.len());
    let mut wallets = Vec::with_capacity(new.len());
    let mut times = Vec::with_capacity(new.len());
    let mut descriptions = Vec::with_capacity(new.len());
    for row in new {
        let posted = &row.transaction;
        ids.push(posted.id);
        positions.push(row.position);
        references.push(posted.reference_id);
        types.push(posted.transaction_type.as_str());
        wallets.push(posted.wallet_id.as_str());
        times.push(posted.occurred_at);
        descriptions.push(posted.description.as_str());
    }
    sqlx::query(
        "INSERT INTO ledger_transactions (transaction_id, position, reference_id, \
         transaction_type, wallet_id, occurred_at, description) \
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], \
         $6::timestamptz[], $7::text[])",
    )
    .bind(&ids)
    .bind(&positions)
    .bind(&references)
    .bind(&types)
    .bind(&wallets)
    .bind(&times)
    .bind(&descriptions)
    .execute(connection)
    .await?;
    Ok(())
}

async fn insert_entries(
    connection: &mut sqlx::PgConnection,
    new: &[&PreparedTransaction],
) -> Result<(), sqlx::Error> {
    let mut ids = Vec::new();
    let mut lines = Vec::new();
    let mut accounts = Vec::new();
    let mut amounts = Vec::new();
    let mut positions = Vec::new();
    for row in new {
        for (line, posting) in (1i32..).zip(&row.transaction.entries) {
            ids.push(row.transaction.id);
            lines.push(line);
            accounts.push(posting.account.to_string());
            amounts.push(posting.amount);
            positions.push(row.position);
        }
    }
    if ids.is_empty() {
        // Only creations with nothing in them: no entries to write.
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO ledger_entries (transaction_id, line, account, amount, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::numeric[], $5::bigint[])",
    )
    .bind(&ids)
    .bind(&lines)
    .bind(&accounts)
    .bind(&amounts)
    .bind(&positions)
    .execute(connection)
    .await?;
    Ok(())
}

/// Posts `batch` in one transaction, moving `offsets` first when given;
/// `Ok(None)`, posting nothing, when they are not the expected ones.
async fn post_batch(
    pool: &PgPool,
    batch: &PreparedBatch,
    offsets: Option<&ConsumerOffsets>,
) -> Result<Option<PostOutcome>, sqlx::Error> {
    let (unique, repeats) = first_occurrences(&batch.transactions);
    let mut outcome = PostOutcome {
        posted: 0,
        skipped: repeats,
    };
    let mut transaction = pool.begin().await?;
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
        .await?;
        if !moved {
            return Ok(None);
        }
    }
    for chunk in unique.chunks(POST_CHUNK_EVENTS_MAX) {
        let marked = mark_processed(&mut transaction, chunk).await?;
        let new: Vec<&PreparedTransaction> = chunk
            .iter()
            .copied()
            .filter(|row| marked.contains(&row.transaction.id))
            .collect();
        outcome.posted += new.len();
        outcome.skipped += chunk.len() - new.len();
        if new.is_empty() {
            continue;
        }
        insert_transactions(&mut transaction, &new).await?;
        insert_entries(&mut transaction, &new).await?;
    }
    if let Some(checkpoint) = batch.checkpoint {
        // Never backwards: a late redelivery of an older batch must not make
        // the relay read again what is already posted.
        sqlx::query("UPDATE ledger_checkpoint SET position = GREATEST(position, $1) WHERE id = 1")
            .bind(checkpoint)
            .execute(&mut *transaction)
            .await?;
    }
    transaction.commit().await?;
    Ok(Some(outcome))
}

/// An entry row as the query returns it, before its text columns are parsed.
#[derive(sqlx::FromRow)]
struct EntryRow {
    transaction_id: Uuid,
    line: i32,
    account: String,
    amount: Decimal,
    reference_id: Uuid,
    transaction_type: String,
    wallet_id: String,
    occurred_at: DateTime<Utc>,
    description: String,
}

impl TryFrom<EntryRow> for LedgerEntry {
    type Error = LedgerError;

    fn try_from(row: EntryRow) -> Result<Self, LedgerError> {
        let stored = StoredEntry {
            transaction_id: row.transaction_id,
            line: u32::try_from(row.line).map_err(|error| corrupt("entry line", error))?,
            account: row
                .account
                .parse()
                .map_err(|error| corrupt("entry account", error))?,
            amount: row.amount,
            reference_id: row.reference_id,
            transaction_type: row
                .transaction_type
                .parse()
                .map_err(|error| corrupt("transaction type", error))?,
            wallet_id: WalletId::parse(&row.wallet_id)
                .map_err(|error| corrupt("transaction wallet", error))?,
            occurred_at: row.occurred_at,
            description: row.description,
        };
        Ok(stored.into())
    }
}

/// Builds an entry query from the conditions it has, in ledger order.
struct Selection {
    builder: QueryBuilder<'static, Postgres>,
    conditions: usize,
}

impl Selection {
    fn new() -> Self {
        Self {
            builder: QueryBuilder::new(
                "SELECT e.transaction_id, e.line, e.account, e.amount, t.reference_id, \
                 t.transaction_type, t.wallet_id, t.occurred_at, t.description \
                 FROM ledger_entries e \
                 JOIN ledger_transactions t ON t.transaction_id = e.transaction_id",
            ),
            conditions: 0,
        }
    }

    fn with<T>(mut self, condition: &'static str, value: T) -> Self
    where
        T: 'static + Send + sqlx::Encode<'static, Postgres> + sqlx::Type<Postgres>,
    {
        self.builder.push(if self.conditions == 0 {
            " WHERE "
        } else {
            " AND "
        });
        self.builder.push(condition);
        self.builder.push_bind(value);
        self.conditions += 1;
        self
    }

    /// Closes the parenthesis the last condition opened.
    fn closed(mut self) -> Self {
        self.builder.push(")");
        self
    }

    fn filtered(mut self, filter: &EntryFilter) -> Self {
        if let Some(transaction_type) = filter.transaction_type {
            self = self.with("t.transaction_type = ", transaction_type.as_str());
        }
        if let Some(start) = filter.start_date {
            self = self.with("t.occurred_at >= ", crate::microsecond_ceiling(start));
        }
        if let Some(end) = filter.end_date {
            self = self.with("t.occurred_at <= ", end);
        }
        if let Some(after) = filter.after {
            // Newest first, a transaction's lines in order: after (P, L) is a
            // lower position, or P with a later line. `position <= P` bounds
            // the index scan, so a deep page costs what the first one does.
            self = self.with(
                "e.position <= (SELECT position FROM ledger_transactions WHERE transaction_id = ",
                after.transaction_id,
            );
            self.builder
                .push(
                    ") AND (e.position < (SELECT position FROM ledger_transactions \
                       WHERE transaction_id = ",
                )
                .push_bind(after.transaction_id)
                .push(") OR e.line > ")
                .push_bind(i64::from(after.line))
                .push(")");
        }
        self.ordered(Some(page(filter)))
    }

    /// A selection without a page is bounded by its conditions.
    fn ordered(mut self, page: Option<(i64, i64)>) -> Self {
        // Newest first, as the seed listed them; a transaction's lines in order.
        self.builder.push(" ORDER BY e.position DESC, e.line");
        if let Some((limit, offset)) = page {
            self.builder.push(" LIMIT ");
            self.builder.push_bind(limit);
            self.builder.push(" OFFSET ");
            self.builder.push_bind(offset);
        }
        self
    }

    async fn select(mut self, pool: &PgPool) -> Result<Vec<LedgerEntry>, LedgerError> {
        let rows: Vec<EntryRow> = self
            .builder
            .build_query_as()
            .fetch_all(pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(storage)?;
        rows.into_iter().map(LedgerEntry::try_from).collect()
    }
}

/// Every count and sum of [`Ledger::verify`], taken in SQL from one snapshot.
async fn verify_ledger(pool: &PgPool) -> Result<LedgerVerification, LedgerError> {
    let mut snapshot = pool.begin().await.map_err(storage)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await
        .map_err(storage)?;
    let (events_posted, transactions_checked): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM ledger_processed_events), \
                (SELECT COUNT(*) FROM ledger_transactions)",
    )
    .fetch_one(&mut *snapshot)
    .await
    .map_err(storage)?;
    let unbalanced_transactions: Vec<Uuid> = sqlx::query_scalar(
        "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id \
         HAVING SUM(amount) <> 0 ORDER BY MIN(position)",
    )
    .fetch_all(&mut *snapshot)
    .await
    .map_err(storage)?;
    // Wallets created with nothing have no entries and still have a balance: zero.
    let account_sums: Vec<(String, Decimal)> = sqlx::query_as(
        "SELECT account, SUM(amount) FROM ledger_entries GROUP BY account \
         UNION ALL \
         SELECT 'wallet:' || wallet_id, 0 FROM ledger_transactions \
         WHERE transaction_type = 'WALLET_CREATED'",
    )
    .fetch_all(&mut *snapshot)
    .await
    .map_err(sum_failed)?;
    // Transfers whose clearing entries do not net to zero, in id order.
    let transfers_missing_half: Vec<Uuid> = sqlx::query_scalar(
        "SELECT t.reference_id FROM ledger_entries e \
         JOIN ledger_transactions t ON t.transaction_id = e.transaction_id \
         WHERE e.account = $1 GROUP BY t.reference_id \
         HAVING SUM(e.amount) <> 0 ORDER BY t.reference_id",
    )
    .bind(CLEARING_TRANSFERS)
    .fetch_all(&mut *snapshot)
    .await
    .map_err(storage)?;
    let wallets_posted: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT wallet_id, MAX(position), COUNT(*) FROM ledger_transactions GROUP BY wallet_id",
    )
    .fetch_all(&mut *snapshot)
    .await
    .map_err(storage)?;
    let checkpoint: i64 = sqlx::query_scalar("SELECT position FROM ledger_checkpoint WHERE id = 1")
        .fetch_one(&mut *snapshot)
        .await
        .map_err(storage)?;
    snapshot.commit().await.map_err(storage)?;

    let position = |value: i64| u64::try_from(value).map_err(|error| corrupt("position", error));
    let wallets_posted = wallets_posted
        .into_iter()
        .map(|(wallet_id, at, events)| {
            let wallet_id =
                WalletId::parse(&wallet_id).map_err(|error| corrupt("wallet id", error))?;
            let posted = PostedThrough {
                position: position(at)?,
                events: position(events)?,
            };
            Ok((wallet_id, posted))
        })
        .collect::<Result<BTreeMap<_, _>, LedgerError>>()?;
    let mut wallet_balances = BTreeMap::new();
    let mut held_balances = BTreeMap::new();
    let mut settlement_balance = Decimal::ZERO;
    let mut clearing_balance = Decimal::ZERO;
    for (account, sum) in account_sums {
        match account
            .parse::<Account>()
            .map_err(|error| corrupt("entry account", error))?
        {
            Account::Wallet(wallet_id) => {
                let balance: &mut Decimal = wallet_balances.entry(wallet_id).or_default();
                *balance = checked_sum(*balance, sum)?;
            }
            Account::Held(wallet_id) => {
                let held: &mut Decimal = held_balances.entry(wallet_id.clone()).or_default();
                *held = checked_sum(*held, sum)?;
                let balance: &mut Decimal = wallet_balances.entry(wallet_id).or_default();
                *balance = checked_sum(*balance, sum)?;
            }
            Account::ExternalSettlement => {
                settlement_balance = checked_sum(settlement_balance, sum)?
            }
            Account::ClearingTransfers => clearing_balance = checked_sum(clearing_balance, sum)?,
        }
    }
    let count = |value: i64| u64::try_from(value).map_err(|error| corrupt("count", error));
    Ok(judged(LedgerVerification {
        ok: false,
        events_posted: count(events_posted)?,
        transactions_checked: count(transactions_checked)?,
        unbalanced_transactions,
        wallet_balances,
        held_balances,
        settlement_balance,
        clearing_balance,
        transfers_missing_half,
        checkpoint: position(checkpoint)?,
        wallets_posted,
    }))
}

#[async_trait]
impl Ledger for PostgresLedger {
    async fn post(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<PostOutcome, LedgerError> {
        let batch = prepare_batch(events, checkpoint)?;
        let outcome = post_batch(&self.pool, &batch, None)
            .within(BATCH_WAIT_MS_MAX)
            .await
            .map_err(storage)?
            .unwrap_or_default();
        Ok(posted(outcome, batch.checkpoint))
    }

    async fn post_consumed(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
        offsets: &ConsumerOffsets,
    ) -> Result<PostOutcome, LedgerError> {
        let batch = prepare_batch(events, checkpoint)?;
        let outcome = post_batch(&self.pool, &batch, Some(offsets))
            .within(BATCH_WAIT_MS_MAX)
            .await
            .map_err(storage)?
            .ok_or_else(|| OffsetsMoved::of(offsets))?;
        Ok(posted(outcome, batch.checkpoint))
    }

    async fn consumer_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, LedgerError> {
        consumer_offsets::stored(&self.pool, group, topic)
            .await
            .map(Some)
            .map_err(storage)
    }

    async fn checkpoint(&self) -> Result<u64, LedgerError> {
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM ledger_checkpoint WHERE id = 1")
                .fetch_one(&self.pool)
                .within(READ_WAIT_MS_MAX)
                .await
                .map_err(storage)?;
        u64::try_from(position).map_err(|error| corrupt("checkpoint", error))
    }

    async fn wallet_entries(
        &self,
        query: WalletEntriesQuery,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        Selection::new()
            .with(
                "e.account = ANY(",
                Account::names_of_wallet(&query.wallet_id).to_vec(),
            )
            .closed()
            .filtered(&query.filter)
            .select(&self.pool)
            .await
    }

    async fn reference_entries(&self, reference_id: &str) -> Result<Vec<LedgerEntry>, LedgerError> {
        let Ok(reference_id) = Uuid::parse_str(reference_id) else {
            return Ok(Vec::new());
        };
        // One transfer or operation has at most two transactions of two
        // entries each: the result is bounded without a limit.
        Selection::new()
            .with("t.reference_id = ", reference_id)
            .ordered(None)
            .select(&self.pool)
            .await
    }

    async fn holds_entry(&self, entry: EntryId, list: EntryList<'_>) -> Result<bool, LedgerError> {
        let [wallet, held] = list
            .accounts()
            .map_or([None, None], |[wallet, held]| [Some(wallet), Some(held)]);
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM ledger_transactions t \
             JOIN ledger_entries e USING (transaction_id) \
             WHERE t.transaction_id = $1 AND e.line = $2 \
             AND ($3::text IS NULL OR t.wallet_id = $3) \
             AND ($4::text IS NULL OR e.account IN ($4, $5)))",
        )
        .bind(entry.transaction_id)
        .bind(i64::from(entry.line))
        .bind(list.wallet().map(WalletId::as_str))
        .bind(wallet)
        .bind(held)
        .fetch_one(&self.pool)
        .within(READ_WAIT_MS_MAX)
        .await
        .map_err(storage)
    }

    async fn transactions(
        &self,
        query: TransactionsQuery,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut selection = Selection::new();
        if let Some(wallet_id) = query.wallet_id {
            selection = selection.with("t.wallet_id = ", String::from(wallet_id));
        }
        selection.filtered(&query.filter).select(&self.pool).await
    }

    /// From the newest checkpoint at or before `at` ([`crate::totals`]):
    /// the wallet's transactions after it, each netted over its two accounts
    /// by the server, read in ledger order.
    async fn wallet_summary(
        &self,
        wallet_id: &WalletId,
        at: Option<DateTime<Utc>>,
    ) -> Result<WalletSummary, LedgerError> {
        let CheckpointLookup { base, passed } = self.totals_checkpoint(wallet_id, at).await?;
        // The wallet's transactions never go back in time: none at or
        // before the moment lies past its oldest checkpoint after it.
        let until: Option<i64> = match at {
            Some(at) => sqlx::query_scalar(
                "SELECT c.position FROM ledger_wallet_totals c \
                 JOIN ledger_transactions t ON t.position = c.position \
                 WHERE c.wallet_id = $1 AND c.occurred_at > $2 \
                 AND t.wallet_id = c.wallet_id AND t.occurred_at = c.occurred_at \
                 ORDER BY c.position LIMIT 1",
            )
            .bind(wallet_id.as_str())
            .bind(at)
            .fetch_optional(&self.pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(storage)?,
            None => None,
        };
        let mut after = base.as_ref().map_or(-1, |base| base.position);
        let mut fold = TotalsFold::from(base);
        'pages: loop {
            let nets: Vec<(i64, DateTime<Utc>, Decimal)> = sqlx::query_as(
                "SELECT e.position, t.occurred_at, SUM(e.amount) \
                 FROM ledger_entries e JOIN ledger_transactions t USING (transaction_id) \
                 WHERE e.account IN ($1, $2) AND e.position > $3 AND e.position <= $4 \
                 GROUP BY e.position, t.occurred_at ORDER BY e.position LIMIT $5",
            )
            .bind(Account::Wallet(wallet_id.clone()).to_string())
            .bind(Account::Held(wallet_id.clone()).to_string())
            .bind(after)
            .bind(until.unwrap_or(i64::MAX))
            .bind(SUMMARY_PAGE_TRANSACTIONS)
            .fetch_all(&self.pool)
            .within(READ_WAIT_MS_MAX)
            .await
            .map_err(sum_failed)?;
            let full = nets.len() == usize::try_from(SUMMARY_PAGE_TRANSACTIONS).unwrap_or(0);
            for (position, occurred_at, net) in nets {
                // The first past the moment ends it.
                if at.is_some_and(|at| occurred_at > at) {
                    break 'pages;
                }
                fold.entry(position, occurred_at, net)?;
                after = position;
            }
            if !full {
                break;
            }
        }
        let summed = fold.finish()?;
        if let Err(error) = self
            .keep_totals(wallet_id, &summed.checkpoints, &passed)
            .await
        {
            // A cache: the summary stands without it, and the next one sums again.
            tracing::warn!(%wallet_id, %error, "ledger totals checkpoint not kept");
        }
        let newest = match summed.through {
            // The first line on the wallet's accounts of its newest transaction counted.
            Some(position) => Selection::new()
                .with("e.position = ", position)
                .with(
                    "e.account = ANY(",
                    Account::names_of_wallet(wallet_id).to_vec(),
                )
                .closed()
                .ordered(Some((1, 0)))
                .select(&self.pool)
                .await?
                .into_iter()
                .next(),
            None => None,
        };
        summed.totals.summary(wallet_id, newest)
    }

    async fn verify(&self) -> Result<LedgerVerification, LedgerError> {
        verify_ledger(&self.pool).await
    }
}

event_sink::checkpointed_sink!(
    PostgresLedger,
    name: crate::SINK_NAME,
    checkpoint: crate::Ledger::checkpoint,
    apply: crate::Ledger::post,
);
