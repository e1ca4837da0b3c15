//! The embedded ledger: its own SQLite file, `ledger.db`.
//!
//! Writes go through one shared writer connection, each `post` in one
//! IMMEDIATE transaction that holds the transactions, their entries and the
//! checkpoint together: a crash leaves all of a batch or none of it. A
//! transaction is keyed by its event's id, so a redelivered event is skipped
//! by that key; transactions are stored in log order (by position) and their
//! entries by (position, line), so a batch appends to the end of both. A
//! transaction's wallet and its entries' accounts are words of `ledger_keys`
//! (an FTS5 table, `embedded_sqlite::identifier_word`), which the lookups by
//! wallet and by account read newest first: no B-tree keyed by wallet or
//! account, whose pages each event would dirty one by one.
//! Reads use a pool of connections that read concurrently with the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use embedded_sqlite::{
    identifier_word, integer_as_stored, text_as_stored, Durability, ReadPool, SharedWriter,
};
use event_store::RecordedEvent;
use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, Row, TransactionBehavior};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{Balance, WalletId, MONEY_SCALE};

use crate::posting::{Account, LedgerTransaction};
use crate::stored::{
    checked_sum, judged, page, posted, prepare_batch, PreparedBatch, PreparedTransaction,
    StoredEntry,
};
use crate::totals::{
    CheckpointLookup, StoredCheckpoint, Summed, TotalsCheckpoint, TotalsFold,
    TOTALS_CHECKPOINT_ROWS_READ_MAX,
};
use crate::{
    EntryFilter, EntryId, EntryList, Ledger, LedgerEntry, LedgerError, LedgerVerification,
    PostOutcome, PostedThrough, TransactionsQuery, WalletEntriesQuery, WalletSummary,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/embedded/ledger_0001.sql"),
    include_str!("../../../migrations/embedded/ledger_0002.sql"),
    include_str!("../../../migrations/embedded/ledger_0003.sql"),
    include_str!("../../../migrations/embedded/ledger_0004.sql"),
    include_str!("../../../migrations/embedded/ledger_0005.sql"),
    include_str!("../../../migrations/embedded/ledger_0006.sql"),
    include_str!("../../../migrations/embedded/ledger_0007.sql"),
    include_str!("../../../migrations/embedded/ledger_0008.sql"),
];
/// The ledger's file in the data folder.
pub const DATABASE_FILE: &str = "ledger.db";

pub struct EmbeddedLedger {
    writer: SharedWriter,
    readers: ReadPool,
}

impl EmbeddedLedger {
    /// Opens (or creates) `ledger.db` in `data_dir`, which must exist, and
    /// brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, LedgerError> {
        let path = data_dir.join(DATABASE_FILE);
        // The writer creates the file and migrates it before any reader opens it.
        let writer = SharedWriter::open(&path, MIGRATIONS, Durability::Replayable)?;
        Ok(Self {
            writer,
            readers: ReadPool::open(&path)?,
        })
    }
}

/// Kind letter of a transaction's wallet in `ledger_keys`.
const WALLET_WORD: char = 'w';
/// Kind letter of an account posted to in `ledger_keys`.
const ACCOUNT_WORD: char = 'a';

/// The words of one transaction in `ledger_keys`: its wallet, then each
/// account its entries post to, once each (the migration `ledger_0005.sql`
/// makes the same words for the rows posted before it).
fn words_of(posted: &LedgerTransaction) -> String {
    let accounts: BTreeSet<String> = posted
        .entries
        .iter()
        .map(|posting| posting.account.to_string())
        .collect();
    std::iter::once(identifier_word(WALLET_WORD, posted.wallet_id.as_str()))
        .chain(
            accounts
                .iter()
                .map(|account| identifier_word(ACCOUNT_WORD, account)),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// The FTS5 query for the transactions that post to either of a wallet's
/// two accounts.
fn wallet_accounts_query(accounts: &[String; 2]) -> String {
    format!(
        "{} OR {}",
        identifier_word(ACCOUNT_WORD, &accounts[0]),
        identifier_word(ACCOUNT_WORD, &accounts[1])
    )
}

fn insert_batch(
    connection: &mut Connection,
    batch: &PreparedBatch,
) -> rusqlite::Result<PostOutcome> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcome = PostOutcome::default();
    {
        // The event id deduplicates: a redelivered event inserts nothing.
        let mut insert_transaction = transaction.prepare_cached(
            "INSERT INTO ledger_transactions (transaction_id, position, reference_id, \
             transaction_type, wallet_id, occurred_at_us, description) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (transaction_id) DO NOTHING",
        )?;
        let mut insert_entry = transaction.prepare_cached(
            "INSERT INTO ledger_entries (position, line, account, amount) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut insert_words =
            transaction.prepare_cached("INSERT INTO ledger_keys (rowid, keys) VALUES (?1, ?2)")?;
        for PreparedTransaction {
            position,
            transaction: posted,
        } in &batch.transactions
        {
            let inserted = insert_transaction.execute(params![
                posted.id.to_string(),
                position,
                posted.reference_id.to_string(),
                posted.transaction_type.as_str(),
                posted.wallet_id.as_str(),
                posted.occurred_at.timestamp_micros(),
                posted.description,
            ])?;
            if inserted == 0 {
                outcome.skipped += 1;
                continue;
            }
            for (line, posting) in (1i64..).zip(&posted.entries) {
                insert_entry.execute(params![
                    position,
                    line,
                    posting.account.to_string(),
                    posting.amount.to_string(),
                ])?;
            }
            insert_words.execute(params![position, words_of(posted)])?;
            outcome.posted += 1;
        }
    }
    if let Some(checkpoint) = batch.checkpoint {
        // Never backwards: a late redelivery of an older batch must not make
        // the relay read again what is already posted.
        transaction.execute(
            "UPDATE ledger_checkpoint SET position = MAX(position, ?1) WHERE id = 1",
            [checkpoint],
        )?;
    }
    transaction.commit()?;
    Ok(outcome)
}

#[derive(Debug, thiserror::Error)]
#[error("timestamp of {0} microseconds is out of range")]
struct TimestampOutOfRange(i64);

#[derive(Debug, thiserror::Error)]
#[error("amount {0:?} is not money as the ledger writes it")]
struct NotStoredMoney(String);

fn conversion_failure(
    column: usize,
    column_type: Type,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, column_type, Box::new(error))
}

fn parsed<T>(row: &Row<'_>, column: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(column)?;
    text.parse()
        .map_err(|error| conversion_failure(column, Type::Text, error))
}

/// An entry's amount, as [`wallet_domain::Balance::from_stored`] reads it:
/// the spelling the ledger writes and no other.
fn money_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Decimal> {
    let text: String = row.get(column)?;
    Balance::from_stored(&text)
        .map(Balance::value)
        .ok_or_else(|| conversion_failure(column, Type::Text, NotStoredMoney(text)))
}

fn wallet_id_column(row: &Row<'_>, column: usize) -> rusqlite::Result<WalletId> {
    let text: String = row.get(column)?;
    WalletId::parse(&text).map_err(|error| conversion_failure(column, Type::Text, error))
}

fn timestamp_column(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = row.get(column)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| conversion_failure(column, Type::Integer, TimestampOutOfRange(micros)))
}

fn unsigned_column(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|error| conversion_failure(column, Type::Integer, error))
}

/// The transactions whose reference is `reference_id`: an operation whose
/// reference is its own id through the transaction id's index, a transfer's
/// halves or a hold's transactions through the reference index, which holds
/// only references that are not the transaction's id (`ledger_0006.sql`).
/// A transfer half's own id finds nothing, as on PostgreSQL.
fn by_reference(reference_id: Uuid) -> Selection {
    let reference_id = reference_id.to_string();
    Selection::default().with_values(
        "((t.transaction_id = ? AND t.reference_id = t.transaction_id) \
         OR (t.reference_id = ? AND t.reference_id <> t.transaction_id))",
        [Value::Text(reference_id.clone()), Value::Text(reference_id)],
    )
}

const ENTRY_COLUMNS: &str = "SELECT t.transaction_id, e.line, e.account, e.amount, \
     t.reference_id, t.transaction_type, t.wallet_id, t.occurred_at_us, t.description \
     FROM ledger_entries e JOIN ledger_transactions t ON t.position = e.position";

fn entry_row(row: &Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let stored = StoredEntry {
        transaction_id: parsed(row, 0)?,
        line: row.get(1)?,
        account: parsed(row, 2)?,
        amount: money_column(row, 3)?,
        reference_id: parsed(row, 4)?,
        transaction_type: parsed(row, 5)?,
        wallet_id: wallet_id_column(row, 6)?,
        occurred_at: timestamp_column(row, 7)?,
        description: row.get(8)?,
    };
    Ok(stored.into())
}

/// A `WHERE` clause built from the conditions a query has, with its values
/// in order; with `words`, only the transactions holding them in
/// `ledger_keys`, read newest first from there.
#[derive(Default)]
struct Selection {
    /// An FTS5 query over `ledger_keys`.
    words: Option<String>,
    conditions: Vec<&'static str>,
    values: Vec<Value>,
    /// The transaction of the keyset cursor (`after`), when there is one: the
    /// words are read from its position down.
    after_transaction: Option<String>,
    /// `(limit, offset)`; a selection without one is bounded by its conditions.
    page: Option<(i64, i64)>,
}

impl Selection {
    fn holding(words: String) -> Self {
        Self {
            words: Some(words),
            ..Self::default()
        }
    }

    fn with(self, condition: &'static str, value: Value) -> Self {
        self.with_values(condition, [value])
    }

    /// A condition with as many `?` as `values`, in order.
    fn with_values(
        mut self,
        condition: &'static str,
        values: impl IntoIterator<Item = Value>,
    ) -> Self {
        self.conditions.push(condition);
        self.values.extend(values);
        self
    }

    fn filtered(mut self, filter: &EntryFilter) -> Self {
        if let Some(transaction_type) = filter.transaction_type {
            self = self.with(
                "t.transaction_type = ?",
                Value::Text(transaction_type.as_str().to_owned()),
            );
        }
        if let Some(start) = filter.start_date {
            self = self.with(
                "t.occurred_at_us >= ?",
                Value::Integer(crate::microsecond_ceiling(start).timestamp_micros()),
            );
        }
        if let Some(end) = filter.end_date {
            self = self.with(
                "t.occurred_at_us <= ?",
                Value::Integer(end.timestamp_micros()),
            );
        }
        // After (P, L) in ledger order: a lower position, or P with a later
        // line; `position <= P` bounds the index scan whatever the depth.
        if let Some(after) = filter.after {
            let transaction_id = after.transaction_id.to_string();
            self.after_transaction = Some(transaction_id.clone());
            self = self.with_values(
                "e.position <= (SELECT position FROM ledger_transactions WHERE transaction_id = ?) \
                 AND (e.position < (SELECT position FROM ledger_transactions \
                 WHERE transaction_id = ?) OR e.line > ?)",
                [
                    Value::Text(transaction_id.clone()),
                    Value::Text(transaction_id),
                    Value::Integer(i64::from(after.line)),
                ],
            );
        }
        self.page = Some(page(filter));
        self
    }

    /// `WITH picked …`: the positions of the transactions holding `words`
    /// that have an entry the conditions keep, newest first, from the cursor
    /// down, and no more than a page can use (each gives at least one entry).
    fn picked(&self, words: &str, values: &mut Vec<Value>) -> String {
        let mut sql = String::from(
            "WITH picked (position) AS (SELECT k.rowid FROM ledger_keys k \
             JOIN ledger_transactions t ON t.position = k.rowid WHERE ledger_keys MATCH ?",
        );
        values.push(Value::Text(words.to_owned()));
        if let Some(transaction_id) = &self.after_transaction {
            sql.push_str(
                " AND k.rowid <= (SELECT position FROM ledger_transactions \
                 WHERE transaction_id = ?)",
            );
            values.push(Value::Text(transaction_id.clone()));
        }
        sql.push_str(" AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.position = k.rowid");
        for condition in &self.conditions {
            sql.push_str(" AND ");
            sql.push_str(condition);
        }
        values.extend(self.values.iter().cloned());
        sql.push_str(") ORDER BY k.rowid DESC");
        if let Some((limit, offset)) = self.page {
            sql.push_str(" LIMIT ?");
            values.push(Value::Integer(limit.saturating_add(offset)));
        }
        sql.push_str(") ");
        sql
    }

    /// The whole statement, `WITH picked …` first when there are words,
    /// and its values in order.
    fn sql(self) -> (String, Vec<Value>) {
        let mut values = Vec::new();
        let mut sql = String::new();
        let mut conditions = self.conditions.clone();
        if let Some(words) = &self.words {
            sql.push_str(&self.picked(words, &mut values));
            conditions.insert(0, "e.position IN picked");
        }
        sql.push_str(ENTRY_COLUMNS);
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        values.extend(self.values);
        // Newest first, as the seed listed them; a transaction's lines in order.
        sql.push_str(" ORDER BY e.position DESC, e.line");
        if let Some((limit, offset)) = self.page {
            sql.push_str(" LIMIT ? OFFSET ?");
            values.push(Value::Integer(limit));
            values.push(Value::Integer(offset));
        }
        (sql, values)
    }

    fn select(self, connection: &Connection) -> rusqlite::Result<Vec<LedgerEntry>> {
        let (sql, values) = self.sql();
        let mut statement = connection.prepare_cached(&sql)?;
        let entries = statement
            .query_map(params_from_iter(values), entry_row)?
            .collect();
        entries
    }
}

/// A wallet's entries on its two accounts after a position, in ledger
/// order (a transaction's in any order of their lines: their net is what
/// counts), streamed from its words (no sort): `?1` the words' query, `?2` the
/// position, `?3` and `?4` the accounts.
const WALLET_TAIL_SQL: &str = "SELECT e.position, t.occurred_at_us, e.amount FROM ledger_keys k \
     JOIN ledger_entries e ON e.position = k.rowid \
     JOIN ledger_transactions t ON t.position = e.position \
     WHERE ledger_keys MATCH ?1 AND k.rowid > ?2 AND e.account IN (?3, ?4) \
     ORDER BY k.rowid";

/// What [`wallet_totals`] read: the sum, the wallet's newest entry among
/// those counted, and the checkpoint rows passed ([`CheckpointLookup::passed`]).
type WalletTotals = (Summed, Option<LedgerEntry>, Vec<i64>);

/// Totals of one wallet (its account and its held sub-account, netted per
/// transaction) over its transactions up to the first that occurred after
/// `until_us`: from its newest usable checkpoint at or before then
/// ([`crate::totals`]), with the checkpoints to write that the sum marked on
/// the way, the wallet's newest entry among those counted and the
/// checkpoint rows passed.
fn wallet_totals(
    connection: &Connection,
    wallet_id: &str,
    accounts: &[String; 2],
    until_us: i64,
) -> rusqlite::Result<Result<WalletTotals, LedgerError>> {
    let CheckpointLookup { base, passed } = totals_checkpoint(connection, wallet_id, until_us)?;
    let after = base.as_ref().map_or(-1, |base| base.position);
    let mut fold = TotalsFold::from(base);
    let mut statement = connection.prepare_cached(WALLET_TAIL_SQL)?;
    let mut rows = statement.query(params![
        wallet_accounts_query(accounts),
        after,
        accounts[0],
        accounts[1]
    ])?;
    while let Some(row) = rows.next()? {
        let occurred_at = timestamp_column(row, 1)?;
        // A wallet's transactions never go back in time: the first past
        // the moment ends it, and nothing after it is read.
        if occurred_at.timestamp_micros() > until_us {
            break;
        }
        if let Err(error) = fold.entry(row.get(0)?, occurred_at, money_column(row, 2)?) {
            return Ok(Err(error));
        }
    }
    let summed = match fold.finish() {
        Ok(summed) => summed,
        Err(error) => return Ok(Err(error)),
    };
    let newest = match summed.through {
        Some(position) => newest_entry(connection, accounts, position)?,
        None => None,
    };
    Ok(Ok((summed, newest, passed)))
}

/// The newest usable checkpoint of `wallet_id`'s totals at or before
/// `until_us`, and the rows passed on the way ([`CheckpointLookup`]), read
/// newest first and lazily (no row after the usable one is read): a usable
/// one's transaction the ledger holds, of this wallet and at its time, and
/// its columns read as this store writes them (money as it spells it,
/// neither total negative). A cache row that is not is passed, logged,
/// never taken for damage of the ledger (tester h165 F2, F3).
fn totals_checkpoint(
    connection: &Connection,
    wallet_id: &str,
    until_us: i64,
) -> rusqlite::Result<CheckpointLookup> {
    let mut statement = connection.prepare_cached(
        "SELECT c.position, c.occurred_at_us, c.credits, c.debits, c.entry_count, \
         t.wallet_id IS c.wallet_id AND t.occurred_at_us IS c.occurred_at_us, c.digest \
         FROM ledger_wallet_totals c LEFT JOIN ledger_transactions t ON t.position = c.position \
         WHERE c.wallet_id = ?1 AND c.occurred_at_us <= ?2 \
         ORDER BY c.position DESC LIMIT ?3",
    )?;
    let mut rows = statement.query(params![
        wallet_id,
        until_us,
        TOTALS_CHECKPOINT_ROWS_READ_MAX
    ])?;
    let mut lookup = CheckpointLookup::default();
    while let Some(row) = rows.next()? {
        let money = |column| {
            text_as_stored(row, column).map(|text| {
                text.and_then(|text| Balance::from_stored(&text))
                    .map(Balance::value)
            })
        };
        let stored = StoredCheckpoint {
            held: row.get(5)?,
            digest: text_as_stored(row, 6)?,
            position: integer_as_stored(row, 0)?,
            occurred_at: integer_as_stored(row, 1)?.and_then(DateTime::from_timestamp_micros),
            credits: money(2)?,
            debits: money(3)?,
            count: integer_as_stored(row, 4)?.and_then(|count| u64::try_from(count).ok()),
        };
        if !lookup.offer(wallet_id, stored) {
            break;
        }
    }
    Ok(lookup.logged(wallet_id))
}

/// The newest entry on `accounts` in the transaction at `position`: its
/// first such line, as a newest-first page lists it.
fn newest_entry(
    connection: &Connection,
    accounts: &[String; 2],
    position: i64,
) -> rusqlite::Result<Option<LedgerEntry>> {
    let [wallet, held] = accounts.clone();
    let first = EntryFilter {
        limit: Some(1),
        ..EntryFilter::default()
    };
    Ok(Selection::default()
        .with("e.position = ?", Value::Integer(position))
        .with_values(
            "e.account IN (?, ?)",
            [Value::Text(wallet), Value::Text(held)],
        )
        .filtered(&first)
        .select(connection)?
        .into_iter()
        .next())
}

/// `total` spelled as the file keeps money ([`Balance::from_stored`]): its
/// places padded to [`MONEY_SCALE`]; `None` for one with more (a sum of
/// amounts never has them), never rounded.
fn stored_money(total: Decimal) -> Option<String> {
    let mut padded = total;
    if padded.scale() > MONEY_SCALE {
        return None;
    }
    padded.rescale(MONEY_SCALE);
    Some(padded.to_string())
}

/// Keeps `checkpoints` of `wallet_id`'s totals over any at their positions
/// (summed again from the entries, so a damaged row is mended), each only
/// while the ledger holds its transaction (a rebuild may have cleared it
/// since it was summed); when a summary `passed` rows, deletes them and
/// every row of the wallet whose transaction the ledger does not hold
/// ([`CheckpointLookup::passed`]).
fn keep_totals(
    connection: &mut Connection,
    wallet_id: &str,
    checkpoints: &[TotalsCheckpoint],
    passed: &[i64],
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !passed.is_empty() {
        transaction.execute(
            "DELETE FROM ledger_wallet_totals AS c WHERE c.wallet_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM ledger_transactions t WHERE t.position = c.position \
             AND t.wallet_id = ?1 AND t.occurred_at_us = c.occurred_at_us)",
            [wallet_id],
        )?;
        let mut delete = transaction.prepare_cached(
            "DELETE FROM ledger_wallet_totals WHERE wallet_id = ?1 AND position = ?2",
        )?;
        for position in passed {
            delete.execute(params![wallet_id, position])?;
        }
    }
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO ledger_wallet_totals \
             (wallet_id, position, occurred_at_us, credits, debits, entry_count, digest) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
             WHERE EXISTS (SELECT 1 FROM ledger_transactions WHERE position = ?2 AND wallet_id = ?1) \
             ON CONFLICT (wallet_id, position) DO UPDATE SET occurred_at_us = excluded.occurred_at_us, \
             credits = excluded.credits, debits = excluded.debits, entry_count = excluded.entry_count, \
             digest = excluded.digest",
        )?;
        for checkpoint in checkpoints {
            let totals = &checkpoint.totals;
            let (Some(credits), Some(debits)) =
                (stored_money(totals.credits), stored_money(totals.debits))
            else {
                continue;
            };
            insert.execute(params![
                wallet_id,
                checkpoint.position,
                checkpoint.occurred_at.timestamp_micros(),
                credits,
                debits,
                i64::try_from(totals.count).unwrap_or(i64::MAX),
                checkpoint.digest(wallet_id),
            ])?;
        }
    }
    transaction.commit()
}

/// Folds the whole ledger, transaction by transaction in ledger order.
#[derive(Default)]
struct Verifier {
    current: Option<(Uuid, Decimal)>,
    transactions_checked: u64,
    unbalanced: Vec<Uuid>,
    wallet_balances: BTreeMap<WalletId, Decimal>,
    held_balances: BTreeMap<WalletId, Decimal>,
    wallets_posted: BTreeMap<WalletId, PostedThrough>,
    settlement: Decimal,
    clearing: Decimal,
    /// Clearing sums of transfers that do not net to zero yet: only open
    /// transfers are held, so memory follows them, not the ledger's size.
    open_transfers: BTreeMap<Uuid, Decimal>,
}

impl Verifier {
    /// Called for every row; rows come in ledger (log) order, so the last
    /// transaction of a wallet is its furthest.
    fn transaction(&mut self, transaction_id: Uuid, wallet_id: WalletId, position: u64) {
        if self.current.map(|(current, _)| current) == Some(transaction_id) {
            return;
        }
        let posted = self.wallets_posted.entry(wallet_id).or_default();
        posted.position = position;
        posted.events += 1;
        self.close_transaction();
        self.current = Some((transaction_id, Decimal::ZERO));
        self.transactions_checked += 1;
    }

    fn close_transaction(&mut self) {
        if let Some((transaction_id, sum)) = self.current.take() {
            if !sum.is_zero() {
                self.unbalanced.push(transaction_id);
            }
        }
    }

    fn entry(
        &mut self,
        reference_id: Uuid,
        account: Account,
        amount: Decimal,
    ) -> Result<(), LedgerError> {
        if let Some((_, sum)) = self.current.as_mut() {
            *sum = checked_sum(*sum, amount)?;
        }
        match account {
            Account::Wallet(wallet_id) => {
                let balance = self.wallet_balances.entry(wallet_id).or_default();
                *balance = checked_sum(*balance, amount)?;
            }
            Account::Held(wallet_id) => {
                let held = self.held_balances.entry(wallet_id.clone()).or_default();
                *held = checked_sum(*held, amount)?;
                let balance = self.wallet_balances.entry(wallet_id).or_default();
                *balance = checked_sum(*balance, amount)?;
            }
            Account::ExternalSettlement => self.settlement = checked_sum(self.settlement, amount)?,
            Account::ClearingTransfers => {
                self.clearing = checked_sum(self.clearing, amount)?;
                let open = self.open_transfers.entry(reference_id).or_default();
                *open = checked_sum(*open, amount)?;
                if open.is_zero() {
                    self.open_transfers.remove(&reference_id);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, events_posted: u64, checkpoint: u64) -> LedgerVerification {
        self.close_transaction();
        judged(LedgerVerification {
            ok: false,
            events_posted,
            transactions_checked: self.transactions_checked,
            unbalanced_transactions: self.unbalanced,
            wallet_balances: self.wallet_balances,
            held_balances: self.held_balances,
            settlement_balance: self.settlement,
            clearing_balance: self.clearing,
            transfers_missing_half: self.open_transfers.into_keys().collect(),
            checkpoint,
            wallets_posted: self.wallets_posted,
        })
    }
}

fn verify_ledger(
    connection: &Connection,
) -> rusqlite::Result<Result<LedgerVerification, LedgerError>> {
    // One read transaction: every count and sum comes from the same snapshot.
    let snapshot = connection.unchecked_transaction()?;
    // Every posted event is one transaction row.
    let events_posted =
        snapshot.query_row("SELECT COUNT(*) FROM ledger_transactions", [], |row| {
            unsigned_column(row, 0)
        })?;
    let checkpoint = snapshot.query_row(
        "SELECT position FROM ledger_checkpoint WHERE id = 1",
        [],
        |row| unsigned_column(row, 0),
    )?;
    let mut verifier = Verifier::default();
    {
        // Wallets created with nothing have no entries and still have a balance: zero.
        let mut created = snapshot.prepare(
            "SELECT wallet_id FROM ledger_transactions WHERE transaction_type = 'WALLET_CREATED'",
        )?;
        let mut rows = created.query([])?;
        while let Some(row) = rows.next()? {
            verifier
                .wallet_balances
                .insert(wallet_id_column(row, 0)?, Decimal::ZERO);
        }
        let mut scan = snapshot.prepare(
            "SELECT t.transaction_id, t.reference_id, e.account, e.amount, t.wallet_id, \
                    t.position \
             FROM ledger_transactions t \
             LEFT JOIN ledger_entries e ON e.position = t.position \
             ORDER BY t.position, e.line",
        )?;
        let mut rows = scan.query([])?;
        while let Some(row) = rows.next()? {
            verifier.transaction(
                parsed(row, 0)?,
                wallet_id_column(row, 4)?,
                unsigned_column(row, 5)?,
            );
            let Some(account) = row.get::<_, Option<String>>(2)? else {
                continue;
            };
            let account: Account = account
                .parse()
                .map_err(|error| conversion_failure(2, Type::Text, error))?;
            let amount = money_column(row, 3)?;
            if let Err(error) = verifier.entry(parsed(row, 1)?, account, amount) {
                return Ok(Err(error));
            }
        }
    }
    snapshot.finish()?;
    Ok(Ok(verifier.finish(events_posted, checkpoint)))
}

#[async_trait]
impl Ledger for EmbeddedLedger {
    async fn post(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<PostOutcome, LedgerError> {
        let batch = prepare_batch(events, checkpoint)?;
        let checkpoint = batch.checkpoint;
        let outcome = self
            .writer
            .write(move |connection| insert_batch(connection, &batch))
            .await?;
        Ok(posted(outcome, checkpoint))
    }

    async fn checkpoint(&self) -> Result<u64, LedgerError> {
        self.readers
            .read_in_place(|connection| {
                connection.query_row(
                    "SELECT position FROM ledger_checkpoint WHERE id = 1",
                    [],
                    |row| unsigned_column(row, 0),
                )
            })
            .await
            .map_err(LedgerError::from)
    }

    async fn wallet_entries(
        &self,
        query: WalletEntriesQuery,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let accounts = Account::names_of_wallet(&query.wallet_id);
        let [wallet, held] = accounts.clone();
        let selection = Selection::holding(wallet_accounts_query(&accounts))
            .with_values(
                "e.account IN (?, ?)",
                [Value::Text(wallet), Value::Text(held)],
            )
            .filtered(&query.filter);
        self.readers
            .read(move |connection| selection.select(connection))
            .await
            .map_err(LedgerError::from)
    }

    async fn reference_entries(&self, reference_id: &str) -> Result<Vec<LedgerEntry>, LedgerError> {
        let Ok(reference_id) = Uuid::parse_str(reference_id) else {
            return Ok(Vec::new());
        };
        // One transfer or operation has at most two transactions of two
        // entries each: the result is bounded without a limit.
        let selection = by_reference(reference_id);
        self.readers
            .read(move |connection| selection.select(connection))
            .await
            .map_err(LedgerError::from)
    }

    async fn holds_entry(&self, entry: EntryId, list: EntryList<'_>) -> Result<bool, LedgerError> {
        let transaction_id = entry.transaction_id.to_string();
        let line = i64::from(entry.line);
        let wallet_id = list.wallet().map(WalletId::to_string);
        let [wallet, held] = list
            .accounts()
            .map_or([None, None], |[wallet, held]| [Some(wallet), Some(held)]);
        self.readers
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT 1 FROM ledger_transactions t \
                         JOIN ledger_entries e ON e.position = t.position \
                         WHERE t.transaction_id = ?1 AND e.line = ?2 \
                         AND (?3 IS NULL OR t.wallet_id = ?3) \
                         AND (?4 IS NULL OR e.account IN (?4, ?5))",
                    )?
                    .exists(rusqlite::params![
                        transaction_id,
                        line,
                        wallet_id,
                        wallet,
                        held
                    ])
            })
            .await
            .map_err(LedgerError::from)
    }

    async fn transactions(
        &self,
        query: TransactionsQuery,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let selection = match query.wallet_id {
            Some(wallet_id) => Selection::holding(identifier_word(WALLET_WORD, wallet_id.as_str()))
                .with("t.wallet_id = ?", Value::Text(wallet_id.to_string())),
            None => Selection::default(),
        };
        let selection = selection.filtered(&query.filter);
        self.readers
            .read(move |connection| selection.select(connection))
            .await
            .map_err(LedgerError::from)
    }

    async fn wallet_summary(
        &self,
        wallet_id: &WalletId,
        at: Option<DateTime<Utc>>,
    ) -> Result<WalletSummary, LedgerError> {
        let accounts = Account::names_of_wallet(wallet_id);
        let until_us = at.map_or(i64::MAX, |at| at.timestamp_micros());
        let wallet = wallet_id.as_str().to_owned();
        let (summed, newest, passed) = self
            .readers
            .read(move |connection| wallet_totals(connection, &wallet, &accounts, until_us))
            .await??;
        let Summed {
            totals,
            checkpoints,
            ..
        } = summed;
        if !checkpoints.is_empty() || !passed.is_empty() {
            let wallet = wallet_id.as_str().to_owned();
            let kept = self
                .writer
                .write(move |connection| keep_totals(connection, &wallet, &checkpoints, &passed))
                .await;
            // A cache: the summary stands without it, and the next one sums again.
            if let Err(error) = kept {
                tracing::warn!(%wallet_id, %error, "ledger totals checkpoint not kept");
            }
        }
        totals.summary(wallet_id, newest)
    }

    async fn verify(&self) -> Result<LedgerVerification, LedgerError> {
        self.readers.read(verify_ledger).await?
    }
}

event_sink::checkpointed_sink!(
    EmbeddedLedger,
    name: crate::SINK_NAME,
    checkpoint: crate::Ledger::checkpoint,
    apply: crate::Ledger::post,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionType;

    /// SQLite's plan of the statement `selection` runs, one step a line.
    fn plan(selection: Selection) -> String {
        let mut connection = Connection::open_in_memory().expect("in memory");
        embedded_sqlite::migrate(&mut connection, MIGRATIONS).expect("schema");
        let (sql, values) = selection.sql();
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let plan: Vec<String> = statement
            .query_map(params_from_iter(values), |row| row.get(3))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        plan.join("\n")
    }

    /// A summary's tail is streamed in ledger order from the wallet's words
    /// after its checkpoint: no sort holds it whole before the first row, so
    /// a summary as of a moment stops there (issue 13: 40 ms as of the
    /// middle of 106,000 events, when a filter by time read to the end).
    #[test]
    fn a_summary_tail_is_streamed_from_the_words_unsorted() {
        let mut connection = Connection::open_in_memory().expect("in memory");
        embedded_sqlite::migrate(&mut connection, MIGRATIONS).expect("schema");
        let accounts = Account::names_of_wallet(&WalletId::parse("w-1").expect("wallet id"));
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {WALLET_TAIL_SQL}"))
            .expect("plan");
        let plan: Vec<String> = statement
            .query_map(
                params![
                    wallet_accounts_query(&accounts),
                    7,
                    accounts[0],
                    accounts[1]
                ],
                |row| row.get(3),
            )
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        let plan = plan.join("\n");
        assert!(plan.contains("SCAN k VIRTUAL TABLE INDEX"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert!(
            !plan.contains("SCAN e") && !plan.contains("SCAN t"),
            "{plan}"
        );
    }

    /// A reference's entries are read through the transaction id's index
    /// and the partial reference index, never a table whole.
    #[test]
    fn a_reference_is_read_through_both_indexes() {
        let plan = plan(by_reference(Uuid::now_v7()));
        assert!(
            plan.contains("sqlite_autoindex_ledger_transactions_1"),
            "{plan}"
        );
        assert!(plan.contains("ledger_transactions_by_reference"), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
    }

    /// A wallet's page reads the wallet's words newest first from the cursor
    /// down, each transaction and its entries by position: no table is read
    /// whole and the words need no sort.
    #[test]
    fn a_wallet_page_is_read_from_its_words() {
        let wallet_id = WalletId::parse("w-1").expect("wallet id");
        let accounts = Account::names_of_wallet(&wallet_id);
        let filter = EntryFilter {
            transaction_type: Some(TransactionType::Credit),
            after: Some(crate::EntryId {
                transaction_id: Uuid::now_v7(),
                line: 1,
            }),
            ..EntryFilter::default()
        };
        let plan = plan(
            Selection::holding(wallet_accounts_query(&accounts))
                .with_values("e.account IN (?, ?)", accounts.clone().map(Value::Text))
                .filtered(&filter),
        );
        assert!(plan.contains("SCAN k VIRTUAL TABLE INDEX"), "{plan}");
        assert!(
            !plan.contains("SCAN e") && !plan.contains("SCAN t"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN ledger_entries"), "{plan}");
    }
}
