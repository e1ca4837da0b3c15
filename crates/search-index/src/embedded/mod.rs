//! [`SearchIndex`] on SQLite for the embedded default: its own file,
//! `search_index.db`, fed in-process by the relay as an [`EventSink`].
//!
//! Same documents and semantics as the Elasticsearch index (the documents are
//! built by the same pure code in `documents.rs`, queries checked by the same
//! `query::check_search`): each event one transaction row keyed by its event
//! id. A wallet is not a row of its own: it is read from its first and newest
//! transaction rows (`wallets.rs`), so it only moves to a greater version as
//! Elasticsearch's wallet documents do. A batch and the checkpoint are written
//! in one transaction, so a crash leaves all of a batch or none of it. Unlike
//! Elasticsearch, what is written is searchable as soon as the write returns.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use embedded_sqlite::{Durability, ReadPool, SharedWriter, SqliteError};
use event_sink::{DeliveryError, EventSink};
use event_store::RecordedEvent;
use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;
use wallet_domain::WalletId;

mod keys;
mod wallets;

use keys::{words_of, Key, TEXT_KEYS};
use wallets::{wallet_source, KnownWallet, KnownWallets};

use crate::documents::{
    batch_documents, cents_ceiling, cents_floor, millisecond_ceiling, TransactionSource,
};
use crate::query::{check_search, stored_position, IdentifierText, Page};
use crate::{
    IndexOutcome, IndexedWallet, SearchIndex, SearchIndexError, Transaction, TransactionPage,
    TransactionSearch,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../../migrations/embedded/search_index_0001.sql"),
    include_str!("../../../../migrations/embedded/search_index_0002.sql"),
    include_str!("../../../../migrations/embedded/search_index_0003.sql"),
    include_str!("../../../../migrations/embedded/search_index_0004.sql"),
    include_str!("../../../../migrations/embedded/search_index_0005.sql"),
    include_str!("../../../../migrations/embedded/search_index_0006.sql"),
    include_str!("../../../../migrations/embedded/search_index_0007.sql"),
    include_str!("../../../../migrations/embedded/search_index_0008.sql"),
];
/// Rows given their description's words per transaction when a file written
/// before `search_description_words` is opened.
const DESCRIPTION_WORDS_FILL_ROWS_MAX: usize = 1_000;
/// The search index's file in the data folder.
pub const DATABASE_FILE: &str = "search_index.db";
/// The name the relay logs this sink under.
pub const SINK_NAME: &str = "search-index";

const TRANSACTION_COLUMNS: &str = "event_id, wallet_id, owner_id, transaction_type, amount, \
     amount_cents, balance_after, counterparty_wallet_id, transfer_id, description, occurred_at, \
     position, stream_version, principal, hold_id";

pub struct EmbeddedSearchIndex {
    writer: SharedWriter,
    readers: ReadPool,
    /// Used by the writer only, under its connection's lock.
    known: Arc<Mutex<KnownWallets>>,
}

impl From<SqliteError> for SearchIndexError {
    fn from(error: SqliteError) -> Self {
        match error {
            SqliteError::Damaged { .. } => SearchIndexError::Damaged(error.to_string()),
            _ => SearchIndexError::Unavailable(error.to_string()),
        }
    }
}

impl EmbeddedSearchIndex {
    /// Opens (or creates) `search_index.db` in `data_dir`, which must exist,
    /// and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, SearchIndexError> {
        let path = data_dir.join(DATABASE_FILE);
        // The writer creates the file and migrates it before any reader opens it.
        let writer = SharedWriter::open(&path, MIGRATIONS, Durability::Replayable)?;
        // A value no build writes, met by the fill, is damage named as such.
        writer.write_at_start(fill_description_words)?;
        Ok(Self {
            writer,
            readers: ReadPool::open(&path)?,
            known: Arc::default(),
        })
    }

    /// Indexes a batch and, when given, moves the checkpoint to `checkpoint`,
    /// in one transaction. The relay's batches are bounded
    /// (`RelayLimits::batch_size_max`), so one transaction per batch is too.
    async fn index(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<IndexOutcome, SearchIndexError> {
        let events = events.to_vec();
        let known = Arc::clone(&self.known);
        self.writer
            .write(move |connection| {
                let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
                index_events(connection, &mut known, &events, checkpoint)
            })
            .await?
    }

    async fn page(
        &self,
        filter: SqlFilter,
        page: Page,
    ) -> Result<TransactionPage, SearchIndexError> {
        let (total, sources) = self
            .readers
            .read(move |connection| filter.select(connection, page))
            .await?;
        let items = sources
            .into_iter()
            .map(Transaction::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.damage_if_corrupt(error))?;
        Ok(TransactionPage { items, total })
    }

    /// `error`, with the file marked damaged when it is a row that does not
    /// read back as this build writes it (`Corrupt`), as a column of another
    /// type is (see [`embedded_sqlite::is_damage`]): its routes answer 503
    /// naming the file, and the projection waits, until it is moved out and
    /// rebuilt from the log.
    fn damage_if_corrupt(&self, error: SearchIndexError) -> SearchIndexError {
        match error {
            SearchIndexError::Corrupt(detail) => self.readers.place().mark_damaged(detail).into(),
            other => other,
        }
    }
}

fn timestamp(at: &DateTime<Utc>) -> String {
    // Every digit the event has: the row must give back the instant it got.
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn to_sql_integer(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

fn conversion_failure(
    column: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(error))
}

fn timestamp_column(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(column)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| conversion_failure(column, error))
}

fn unsigned_column(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|error| conversion_failure(column, error))
}

fn uuid_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Uuid>> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| Uuid::parse_str(&text).map_err(|error| conversion_failure(column, error)))
        .transpose()
}

fn transaction_row(row: &Row<'_>) -> rusqlite::Result<TransactionSource> {
    let id = uuid_column(row, 0)?.ok_or(rusqlite::Error::InvalidColumnType(
        0,
        "event_id".into(),
        Type::Null,
    ))?;
    Ok(TransactionSource {
        id,
        wallet_id: row.get(1)?,
        owner_id: row.get(2)?,
        transaction_type: row.get(3)?,
        amount: row.get(4)?,
        amount_cents: row.get(5)?,
        balance_after: row.get(6)?,
        counterparty_wallet_id: row.get(7)?,
        transfer_id: uuid_column(row, 8)?,
        description: row.get(9)?,
        occurred_at: timestamp_column(row, 10)?,
        position: unsigned_column(row, 11)?,
        stream_version: unsigned_column(row, 12)?,
        principal: row.get(13)?,
        hold_id: row.get(14)?,
    })
}

/// Gives every row its description's words as [`crate::words`] makes them
/// now: when the words in the file were made by another
/// [`crate::words::WORDS_VERSION`] (or by none: a file written before
/// `search_index_0007.sql`), they are all dropped and made again,
/// [`DESCRIPTION_WORDS_FILL_ROWS_MAX`] rows per transaction, going on from
/// where an interrupted fill stopped. Does nothing once every row has them.
/// Runs before the index writes anything else.
fn fill_description_words(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: Option<i64> = connection
        .query_row(
            "SELECT version FROM search_description_words_version WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if version != Some(crate::words::WORDS_VERSION) {
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO search_description_words (search_description_words) VALUES ('delete-all')",
            [],
        )?;
        transaction.execute(
            "INSERT INTO search_description_words_fill (id, after_position) VALUES (1, -1) \
             ON CONFLICT (id) DO UPDATE SET after_position = -1",
            [],
        )?;
        transaction.execute(
            "INSERT INTO search_description_words_version (id, version) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            [crate::words::WORDS_VERSION],
        )?;
        transaction.commit()?;
    }
    let mut filled = 0_usize;
    loop {
        let transaction = connection.transaction()?;
        let after: Option<i64> = transaction
            .query_row(
                "SELECT after_position FROM search_description_words_fill WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let Some(after) = after else {
            if filled > 0 {
                tracing::info!(
                    rows = filled,
                    "search index: descriptions given their words"
                );
            }
            return Ok(());
        };
        let rows = transaction
            .prepare(
                "SELECT position, description FROM search_transactions \
                 WHERE position > ?1 AND description IS NOT NULL ORDER BY position LIMIT ?2",
            )?
            .query_map(
                params![
                    after,
                    to_sql_integer(DESCRIPTION_WORDS_FILL_ROWS_MAX as u64)?
                ],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (position, description) in &rows {
            write_description_words(&transaction, *position, description)?;
        }
        match rows.last() {
            Some((last, _)) => transaction.execute(
                "UPDATE search_description_words_fill SET after_position = ?1 WHERE id = 1",
                [last],
            )?,
            None => transaction.execute("DELETE FROM search_description_words_fill", [])?,
        };
        transaction.commit()?;
        filled += rows.len();
    }
}

/// Indexes the words of the description of the row at `position`, if it has any.
fn write_description_words(
    connection: &Connection,
    position: i64,
    description: &str,
) -> rusqlite::Result<()> {
    if let Some(words) = crate::words::indexed(description) {
        connection
            .prepare_cached("INSERT INTO search_description_words (rowid, words) VALUES (?1, ?2)")?
            .execute(params![position, words])?;
    }
    Ok(())
}

/// Writes one transaction row with the words of its description and of its
/// identifiers (`search_keys`), unless the row is there already: an event
/// never changes, so a redelivered one has nothing new to write.
fn write_transaction(connection: &Connection, source: &TransactionSource) -> rusqlite::Result<()> {
    let position = to_sql_integer(source.position)?;
    let inserted = connection
        .prepare_cached(
            "INSERT INTO search_transactions (position, event_id, wallet_id, owner_id, \
             transaction_type, amount, amount_cents, balance_after, counterparty_wallet_id, \
             transfer_id, description, occurred_at, occurred_at_ms, stream_version, principal, \
             hold_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            position,
            source.id.to_string(),
            source.wallet_id,
            source.owner_id,
            source.transaction_type,
            source.amount,
            source.amount_cents,
            source.balance_after,
            source.counterparty_wallet_id,
            source.transfer_id.map(|id| id.to_string()),
            source.description,
            timestamp(&source.occurred_at),
            source.occurred_at.timestamp_millis(),
            to_sql_integer(source.stream_version)?,
            source.principal,
            source.hold_id,
        ])?;
    if inserted == 0 {
        return Ok(());
    }
    if let Some(description) = &source.description {
        write_description_words(connection, position, description)?;
    }
    connection
        .prepare_cached("INSERT INTO search_keys (rowid, keys) VALUES (?1, ?2)")?
        .execute(params![position, words_of(source)])?;
    Ok(())
}

type IndexResult = Result<IndexOutcome, SearchIndexError>;

/// Writes a batch's rows and moves the checkpoint, in one transaction. A
/// wallet counts as updated when the batch holds a newer version of it than
/// the index did, as an Elasticsearch wallet document with external
/// versioning would be.
fn index_events(
    connection: &mut Connection,
    known: &mut KnownWallets,
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
) -> rusqlite::Result<IndexResult> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut wallet_ids: Vec<WalletId> = events
        .iter()
        .map(|recorded| recorded.event.wallet_id.clone())
        .collect();
    wallet_ids.sort();
    wallet_ids.dedup();
    let before = match known.of(&transaction, wallet_ids)? {
        Ok(before) => before,
        Err(corrupt) => return Ok(Err(corrupt)),
    };
    let looked_up = before
        .iter()
        .map(|(wallet_id, known)| (wallet_id.clone(), known.identity.clone()))
        .collect();
    let documents = match batch_documents(events, &looked_up) {
        Ok(documents) => documents,
        // Dropping the transaction rolls it back: nothing of the batch is kept.
        Err(refused) => return Ok(Err(refused)),
    };
    let mut outcome = IndexOutcome::default();
    for source in &documents.transactions {
        write_transaction(&transaction, source)?;
        outcome.transactions += 1;
    }
    let mut after = Vec::with_capacity(documents.wallets.len());
    for wallet in &documents.wallets {
        let (wallet_id, identity) = match wallet.source.identity() {
            Ok(identity) => identity,
            Err(corrupt) => return Ok(Err(corrupt)),
        };
        let newer = before
            .get(&wallet_id)
            .is_none_or(|held| wallet.version > held.version);
        if newer {
            outcome.wallets_updated += 1;
        } else {
            outcome.wallets_already_newer += 1;
        }
        after.push((
            wallet_id,
            KnownWallet {
                identity,
                version: wallet.version,
            },
        ));
    }
    // Never backwards: a late redelivery of an older batch must not make the
    // relay read again what is already indexed.
    if let Some(position) = checkpoint {
        transaction
            .prepare_cached(
                "UPDATE search_checkpoint SET position = MAX(position, ?1) WHERE id = 1",
            )?
            .execute([to_sql_integer(position)?])?;
    }
    transaction.commit()?;
    known.remember(after);
    Ok(Ok(outcome))
}

/// The free text as an FTS5 query: each of its words (`crate::words`) a
/// quoted string (so nothing of it is query syntax; a word holds no quote),
/// all of them required in any order, as Elasticsearch's `match` with
/// `operator: and`. `None` when the text has no word, which matches no
/// description (as a `match` with no terms). A word repeated is asked once:
/// FTS5 would read its list once per time it is written (h150: forty times
/// `soak` in a `q` of 200 characters took 0.4 s, the word once 0.02 s).
fn description_query(text: &str) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let words: Vec<String> = crate::words::words(text)
        .into_iter()
        .filter(|word| seen.insert(word.clone()))
        .map(|word| format!("\"{word}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A transaction query: the identifiers' words every row must hold, a keyset
/// cursor, further conditions on `search_transactions` with their
/// parameters, in order, and the free text to match.
///
/// Without text, the query is driven by `search_keys` when it has words: FTS5
/// yields the rows of a word newest first (`ORDER BY rowid DESC`) and honours
/// the cursor as a rowid range, so a page reads its rows and stops; without
/// words, by the table's own position order. With text, see
/// [`SqlFilter::select_text`].
#[derive(Debug, Default)]
struct SqlFilter {
    words: Vec<String>,
    before_position: Option<i64>,
    conditions: Vec<String>,
    values: Vec<Value>,
    /// The time window's bounds in milliseconds, also among `conditions`:
    /// a text search narrows its positions by them ([`SqlFilter::bounds`]).
    occurred_from_ms: Option<i64>,
    occurred_to_ms: Option<i64>,
    text: Option<TextMatch>,
}

/// The free text of a search as the embedded index matches it: a row whose
/// description holds every word, or that holds the text as one of its
/// identifiers.
#[derive(Debug)]
struct TextMatch {
    /// The FTS5 query of `search_description_words`, when the text has words.
    description: Option<String>,
    /// The FTS5 query of `search_keys`: any of the identifiers' words.
    identifiers: String,
    /// The spellings the event id is compared with.
    event_ids: Vec<String>,
}

/// Rows of the time index a text search reads to learn the positions its
/// time window spans ([`SqlFilter::bounds`]). A window holding more rows is
/// not read for it (about a millisecond per 10,000 rows, paid by every search
/// with a window): its rows are then filtered one by one.
#[cfg(not(test))]
const TIME_WINDOW_ROWS_MAX: i64 = 10_000;
/// Small in unit tests, so that their windows take both paths.
#[cfg(test)]
const TIME_WINDOW_ROWS_MAX: i64 = 50;

/// The positions a text search can find rows at: below the cursor, and within
/// the positions its time window spans. A range of rowids, which FTS5 seeks to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PositionBounds {
    below: Option<i64>,
    lowest: Option<i64>,
    highest: Option<i64>,
}

impl PositionBounds {
    /// `AND column < ? …` for these bounds, and their parameters.
    fn sql(&self, column: &str) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        for (operator, bound) in [("<", self.below), (">=", self.lowest), ("<=", self.highest)] {
            if let Some(bound) = bound {
                sql.push_str(&format!(" AND {column} {operator} ?"));
                values.push(Value::Integer(bound));
            }
        }
        (sql, values)
    }
}

impl SqlFilter {
    fn with(mut self, condition: &str, values: impl IntoIterator<Item = Value>) -> Self {
        self.conditions.push(condition.to_owned());
        self.values.extend(values);
        self
    }

    fn holding(mut self, word: String) -> Self {
        self.words.push(word);
        self
    }

    /// A wallet's transactions, those below `before_position` only when
    /// given.
    fn of_wallet(wallet_id: &WalletId, before_position: Option<u64>) -> Self {
        Self {
            before_position: before_position.map(stored_position),
            ..Self::default()
        }
        .holding(Key::Wallet.word(wallet_id.as_str()))
    }

    fn of_search(search: &TransactionSearch, text: Option<&str>) -> Self {
        let mut filter = Self {
            before_position: search.before_position.map(stored_position),
            ..Self::default()
        };
        if let Some(owner_id) = &search.owner_id {
            filter = filter.holding(Key::Owner.word(owner_id.as_str()));
        }
        if let Some(wallet_id) = &search.wallet_id {
            filter = filter.holding(Key::Wallet.word(wallet_id.as_str()));
        }
        if let Some(from) = search.from {
            let from_ms = millisecond_ceiling(from).timestamp_millis();
            filter.occurred_from_ms = Some(from_ms);
            filter = filter.with("occurred_at_ms >= ?", [Value::Integer(from_ms)]);
        }
        if let Some(to) = search.to {
            let to_ms = to.timestamp_millis();
            filter.occurred_to_ms = Some(to_ms);
            filter = filter.with("occurred_at_ms <= ?", [Value::Integer(to_ms)]);
        }
        if let Some(min) = search.min_amount {
            filter = filter.with("amount_cents >= ?", [Value::Integer(cents_ceiling(min))]);
        }
        if let Some(max) = search.max_amount {
            filter = filter.with("amount_cents <= ?", [Value::Integer(cents_floor(max))]);
        }
        if let Some(text) = text {
            filter = filter.matching_text(text);
        }
        filter
    }

    /// The description holds every word, or the text is exactly one of the
    /// identifiers ([`IdentifierText`]): the event id (a unique index) or
    /// one of [`TEXT_KEYS`]. Read by [`SqlFilter::select_text`].
    fn matching_text(mut self, text: &str) -> Self {
        let identifier = IdentifierText::of(text);
        let server_ids = identifier.server_id_spellings();
        let identifiers = TEXT_KEYS
            .iter()
            .flat_map(|key| {
                if key.server_written() {
                    server_ids
                        .iter()
                        .map(|spelling| key.word(spelling))
                        .collect()
                } else {
                    vec![key.word(identifier.written)]
                }
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        self.text = Some(TextMatch {
            description: description_query(text),
            identifiers,
            event_ids: server_ids.into_iter().map(str::to_owned).collect(),
        });
        self
    }

    /// `FROM … WHERE …` of the query, the column that orders it, and the
    /// parameters in order. `count` leaves out the table of rows when no
    /// condition needs it: the words alone say how many rows hold them.
    fn source_sql(&self, count: bool) -> (String, &'static str, Vec<Value>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        let (from, position) = if self.words.is_empty() {
            ("search_transactions", "position")
        } else {
            clauses.push("search_keys MATCH ?".to_owned());
            values.push(Value::Text(self.words.join(" AND ")));
            if count && self.conditions.is_empty() {
                ("search_keys", "search_keys.rowid")
            } else {
                (
                    "search_keys JOIN search_transactions ON position = search_keys.rowid",
                    "search_keys.rowid",
                )
            }
        };
        if let Some(before) = self.before_position {
            clauses.push(format!("{position} < ?"));
            values.push(Value::Integer(before));
        }
        clauses.extend(self.conditions.iter().cloned());
        values.extend(self.values.iter().cloned());
        let where_clause = if clauses.is_empty() {
            "1".to_owned()
        } else {
            clauses.join(" AND ")
        };
        (
            format!("FROM {from} WHERE {where_clause}"),
            position,
            values,
        )
    }

    /// How many rows match in all, and one page of them, newest first, from
    /// one snapshot of the file.
    fn select(
        &self,
        connection: &Connection,
        page: Page,
    ) -> rusqlite::Result<(u64, Vec<TransactionSource>)> {
        let snapshot = connection.unchecked_transaction()?;
        let (total, rows) = match &self.text {
            Some(text) => self.select_text(&snapshot, text, page)?,
            None => self.select_rows(&snapshot, page)?,
        };
        snapshot.finish()?;
        let total = u64::try_from(total).map_err(|error| conversion_failure(0, error))?;
        Ok((total, rows))
    }

    /// A query without free text: one `COUNT(*)` and one page, both driven
    /// as [`SqlFilter::source_sql`] says.
    fn select_rows(
        &self,
        connection: &Connection,
        page: Page,
    ) -> rusqlite::Result<(i64, Vec<TransactionSource>)> {
        let (source_sql, _, values) = self.source_sql(true);
        let total: i64 = connection
            .prepare_cached(&format!("SELECT COUNT(*) {source_sql}"))?
            .query_row(params_from_iter(values.iter()), |row| row.get(0))?;
        let (source_sql, position, mut values) = self.source_sql(false);
        values.push(Value::Integer(to_sql_integer(page.limit as u64)?));
        values.push(Value::Integer(to_sql_integer(page.offset as u64)?));
        let rows = connection
            .prepare_cached(&format!(
                "SELECT {TRANSACTION_COLUMNS} {source_sql} ORDER BY {position} DESC LIMIT ? OFFSET ?"
            ))?
            .query_map(params_from_iter(values.iter()), transaction_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((total, rows))
    }

    /// A query with free text, read as ordered lists of positions merged as
    /// they come, so that its cost follows the page and the lists it reads,
    /// not how many rows of the whole history hold a common word.
    ///
    /// Testing each row against the words and the identifiers
    /// (`position IN (SELECT rowid … MATCH ?) OR …`, as before) made SQLite
    /// build the set of every row holding the text, sort all of it for the
    /// page and count it again (tester h146, F1: half a second for five rows
    /// of a word 320,000 rows hold, slowing every other route). Instead, each
    /// list is yielded newest first without a sort (FTS5 returns a MATCH's
    /// rowids `ORDER BY rowid DESC`; an event id is one row), and a compound
    /// SELECT ordered the same way merges its arms as they come (SQLite's
    /// `MERGE (UNION)`, `MERGE (INTERSECT)`, `MERGE (EXCEPT)`):
    ///
    /// ```text
    /// text  = description UNION identifiers UNION event id (one arm per spelling)
    /// page  = text [INTERSECT keys] ORDER BY 1 DESC LIMIT ? OFFSET ?   -- positions
    ///         then each row of the page by its position
    /// count = count(description [INTERSECT keys])
    ///       + count(identifiers UNION event id [INTERSECT keys] EXCEPT description)
    /// ```
    ///
    /// `keys` is the owner's and the wallet's words in `search_keys`, when
    /// given. The conditions on the row (time, amount) join the keys arm to
    /// its rows when there is one, else each arm of the text; every arm is
    /// read within the [`PositionBounds`]. So a page reads its lists only
    /// until it is full, and the count reads each list once, in order: a
    /// word's rowids alone when nothing else is asked, never a sort.
    fn select_text(
        &self,
        connection: &Connection,
        text: &TextMatch,
        page: Page,
    ) -> rusqlite::Result<(i64, Vec<TransactionSource>)> {
        let Some(bounds) = self.bounds(connection)? else {
            // No row in the time window: none can match.
            return Ok((0, Vec::new()));
        };
        let (page_sql, mut values) = self.text_page_sql(text, bounds);
        values.push(Value::Integer(to_sql_integer(page.limit as u64)?));
        values.push(Value::Integer(to_sql_integer(page.offset as u64)?));
        let positions = connection
            .prepare_cached(&page_sql)?
            .query_map(params_from_iter(values.iter()), |row| row.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut row_at = connection.prepare_cached(&format!(
            "SELECT {TRANSACTION_COLUMNS} FROM search_transactions WHERE position = ?1"
        ))?;
        let rows = positions
            .iter()
            .map(|position| row_at.query_row([position], transaction_row))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut total = 0_i64;
        for (count_sql, values) in self.text_count_sql(text, bounds) {
            total += connection
                .prepare_cached(&count_sql)?
                .query_row(params_from_iter(values.iter()), |row| row.get::<_, i64>(0))?;
        }
        Ok((total, rows))
    }

    /// The positions a text search can find rows at ([`PositionBounds`]);
    /// `None` when its time window holds no row at all.
    ///
    /// A narrow window (at most [`TIME_WINDOW_ROWS_MAX`] rows) is read from
    /// the time index, which holds each row's position, for the lowest and
    /// highest position in it: the lists of the text are then read only
    /// between them (a word's rows of one second, not of the whole history).
    /// Whatever order positions and times are in, every row of the window
    /// lies between them; rows between them need not be in the window, so its
    /// own condition still tests each row.
    fn bounds(&self, connection: &Connection) -> rusqlite::Result<Option<PositionBounds>> {
        let mut bounds = PositionBounds {
            below: self.before_position,
            ..PositionBounds::default()
        };
        if self.occurred_from_ms.is_none() && self.occurred_to_ms.is_none() {
            return Ok(Some(bounds));
        }
        let (rows, lowest, highest) = connection
            .prepare_cached(
                "SELECT count(*), min(position), max(position) FROM ( \
                 SELECT position FROM search_transactions INDEXED BY search_transactions_by_time \
                 WHERE occurred_at_ms >= ?1 AND occurred_at_ms <= ?2 LIMIT ?3)",
            )?
            .query_row(
                params![
                    self.occurred_from_ms.unwrap_or(i64::MIN),
                    self.occurred_to_ms.unwrap_or(i64::MAX),
                    TIME_WINDOW_ROWS_MAX + 1
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                    ))
                },
            )?;
        if rows == 0 {
            return Ok(None);
        }
        if rows <= TIME_WINDOW_ROWS_MAX {
            bounds.lowest = lowest;
            bounds.highest = highest;
        }
        Ok(Some(bounds))
    }

    /// `SELECT <rowid> FROM <table> … WHERE <table> MATCH ?` within `bounds`,
    /// joined to its rows and meeting the conditions when `conditions`:
    /// one arm of a text search's compound SELECT, newest first.
    fn match_arm(
        &self,
        table: &str,
        query: &str,
        bounds: PositionBounds,
        conditions: bool,
    ) -> (String, Vec<Value>) {
        let mut values = vec![Value::Text(query.to_owned())];
        let (bounds_sql, bounds_values) = bounds.sql("matched.rowid");
        values.extend(bounds_values);
        let mut sql = format!("SELECT matched.rowid FROM {table} AS matched");
        if conditions && !self.conditions.is_empty() {
            sql.push_str(" CROSS JOIN search_transactions ON position = matched.rowid");
        }
        sql.push_str(&format!(" WHERE {table} MATCH ?{bounds_sql}"));
        if conditions {
            self.push_conditions(&mut sql, &mut values);
        }
        (sql, values)
    }

    fn push_conditions(&self, sql: &mut String, values: &mut Vec<Value>) {
        for condition in &self.conditions {
            sql.push_str(&format!(" AND {condition}"));
        }
        values.extend(self.values.iter().cloned());
    }

    /// The owner's and the wallet's words, as an arm to intersect with.
    fn keys_arm(&self, bounds: PositionBounds) -> Option<(String, Vec<Value>)> {
        (!self.words.is_empty())
            .then(|| self.match_arm("search_keys", &self.words.join(" AND "), bounds, true))
    }

    /// The rows holding the text as an identifier: its words in `search_keys`,
    /// then the event id, one arm per spelling (a unique index: one row each,
    /// so no sort).
    fn identifier_arms(
        &self,
        text: &TextMatch,
        bounds: PositionBounds,
        conditions: bool,
    ) -> Compound {
        let mut arms = Compound::default().then(
            "UNION",
            self.match_arm("search_keys", &text.identifiers, bounds, conditions),
        );
        for event_id in &text.event_ids {
            let (bounds_sql, bounds_values) = bounds.sql("position");
            let mut sql =
                format!("SELECT position FROM search_transactions WHERE event_id = ?{bounds_sql}");
            let mut values = vec![Value::Text(event_id.clone())];
            values.extend(bounds_values);
            if conditions {
                self.push_conditions(&mut sql, &mut values);
            }
            arms = arms.then("UNION", (sql, values));
        }
        arms
    }

    /// The positions of one page, newest first, without its `LIMIT ? OFFSET ?`
    /// values: see [`SqlFilter::select_text`].
    fn text_page_sql(&self, text: &TextMatch, bounds: PositionBounds) -> (String, Vec<Value>) {
        let keys = self.keys_arm(bounds);
        let conditions = keys.is_none();
        let mut matched = Compound::default();
        if let Some(words) = &text.description {
            matched = matched.then(
                "UNION",
                self.match_arm("search_description_words", words, bounds, conditions),
            );
        }
        matched = matched.then_all("UNION", self.identifier_arms(text, bounds, conditions));
        if let Some(keys) = keys {
            matched = matched.then("INTERSECT", keys);
        }
        (
            format!("{} ORDER BY 1 DESC LIMIT ? OFFSET ?", matched.sql),
            matched.values,
        )
    }

    /// The queries whose counts add up to the text search's total: the rows
    /// the description matches, and those only an identifier matches. See
    /// [`SqlFilter::select_text`].
    ///
    /// A compound in a subquery keeps its `ORDER BY`, and so is merged, only
    /// with a `LIMIT` (SQLite drops the `ORDER BY` of a subquery without one,
    /// and then builds the compound in a temporary B-tree): `LIMIT -1` is
    /// none.
    fn text_count_sql(
        &self,
        text: &TextMatch,
        bounds: PositionBounds,
    ) -> Vec<(String, Vec<Value>)> {
        let keys = self.keys_arm(bounds);
        let conditions = keys.is_none();
        let merged = |compound: Compound| {
            (
                format!(
                    "SELECT count(*) FROM ({} ORDER BY 1 DESC LIMIT -1)",
                    compound.sql
                ),
                compound.values,
            )
        };
        let mut counts = Vec::new();
        let mut identified = self.identifier_arms(text, bounds, conditions);
        if let Some(keys) = &keys {
            identified = identified.then("INTERSECT", keys.clone());
        }
        if let Some(words) = &text.description {
            let described = self.match_arm("search_description_words", words, bounds, conditions);
            counts.push(match &keys {
                // A word's rowids alone when nothing else is asked.
                None => (
                    format!("SELECT count(*) FROM ({})", described.0),
                    described.1,
                ),
                Some(keys) => merged(
                    Compound::default()
                        .then("UNION", described)
                        .then("INTERSECT", keys.clone()),
                ),
            });
            identified = identified.then(
                "EXCEPT",
                self.match_arm("search_description_words", words, bounds, false),
            );
        }
        counts.push(merged(identified));
        counts
    }
}

/// A compound SELECT being built: its text and its parameters, in order.
#[derive(Debug, Default, Clone)]
struct Compound {
    sql: String,
    values: Vec<Value>,
}

impl Compound {
    /// This compound, then `operator` and `arm` (just `arm` when empty).
    /// SQLite reads compound operators left to right, none before another.
    fn then(mut self, operator: &str, (sql, values): (String, Vec<Value>)) -> Self {
        if self.sql.is_empty() {
            self.sql = sql;
        } else {
            self.sql = format!("{} {operator} {sql}", self.sql);
        }
        self.values.extend(values);
        self
    }

    fn then_all(self, operator: &str, other: Compound) -> Self {
        self.then(operator, (other.sql, other.values))
    }
}

#[async_trait]
impl SearchIndex for EmbeddedSearchIndex {
    /// The schema is made when the file is opened; nothing is left to create.
    async fn ensure_indices(&self) -> Result<(), SearchIndexError> {
        Ok(())
    }

    async fn index_batch(
        &self,
        events: &[RecordedEvent],
    ) -> Result<IndexOutcome, SearchIndexError> {
        self.index(events, None).await
    }

    async fn wallet_transactions(
        &self,
        wallet_id: &WalletId,
        before_position: Option<u64>,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<TransactionPage, SearchIndexError> {
        let page = Page::parse(limit, offset)?;
        self.page(SqlFilter::of_wallet(wallet_id, before_position), page)
            .await
    }

    async fn search_transactions(
        &self,
        search: &TransactionSearch,
    ) -> Result<TransactionPage, SearchIndexError> {
        let checked = check_search(search)?;
        let filter = SqlFilter::of_search(search, checked.text);
        self.page(filter, checked.page).await
    }

    async fn wallet(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<IndexedWallet>, SearchIndexError> {
        let wallet_id = wallet_id.clone();
        let source = self
            .readers
            .read(move |connection| wallet_source(connection, &wallet_id))
            .await?;
        source
            .map(IndexedWallet::try_from)
            .transpose()
            .map_err(|error| self.damage_if_corrupt(error))
    }

    /// Written is searchable here: nothing to do.
    async fn make_searchable(&self) -> Result<(), SearchIndexError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), SearchIndexError> {
        self.readers
            .read_in_place(|connection| {
                connection.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl EventSink for EmbeddedSearchIndex {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        let position = self
            .readers
            .read_in_place(|connection| {
                connection.query_row(
                    "SELECT position FROM search_checkpoint WHERE id = 1",
                    [],
                    |row| unsigned_column(row, 0),
                )
            })
            .await
            // The file could not be read now: the relay asks again.
            .map_err(|error| DeliveryError::transient(SINK_NAME, error))?;
        Ok(position)
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let last = batch.last().map(|recorded| recorded.position);
        self.index(batch, last)
            .await
            .map(drop)
            .map_err(|error| DeliveryError::of(SINK_NAME, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_becomes_quoted_phrases() {
        assert_eq!(
            description_query("rent  March").as_deref(),
            Some("\"rent\" \"march\"")
        );
        assert_eq!(
            description_query("say \"hi\" OR multi-agent").as_deref(),
            Some("\"say\" \"hi\" \"or\" \"multi\" \"agent\"")
        );
        assert_eq!(description_query("-- * ()"), None);
        assert_eq!(
            description_query("rent RENT march rent").as_deref(),
            Some("\"rent\" \"march\""),
            "a word repeated is asked once"
        );
    }

    fn migrated(migrations: &[&str]) -> Connection {
        let connection = Connection::open_in_memory().expect("in memory");
        for migration in migrations {
            connection.execute_batch(migration).expect("migration");
        }
        connection
    }

    fn plan(connection: &mut Connection, filter: &SqlFilter) -> String {
        let (source_sql, position, values) = filter.source_sql(false);
        let transaction = connection.transaction().expect("transaction");
        explained(
            &transaction,
            &format!("SELECT {TRANSACTION_COLUMNS} {source_sql} ORDER BY {position} DESC LIMIT 20"),
            &values,
        )
    }

    fn explained(connection: &Connection, sql: &str, values: &[Value]) -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        let plan: Vec<String> = statement
            .query_map(params_from_iter(values.iter()), |row| row.get(3))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("plan rows");
        plan.join("\n")
    }

    /// Every query a text search runs, with its plan.
    fn text_plans(connection: &Connection, filter: &SqlFilter) -> Vec<(String, String)> {
        let text = filter.text.as_ref().expect("a text search");
        let bounds = PositionBounds {
            lowest: filter.occurred_from_ms.map(|_| 1),
            highest: filter.occurred_to_ms.map(|_| 1_000),
            ..PositionBounds::default()
        };
        let (page_sql, mut values) = filter.text_page_sql(text, bounds);
        values.extend([Value::Integer(5), Value::Integer(0)]);
        std::iter::once((page_sql, values))
            .chain(filter.text_count_sql(text, bounds))
            .map(|(sql, values)| {
                let plan = explained(connection, &sql, &values);
                (sql, plan)
            })
            .collect()
    }

    fn searched(configure: impl FnOnce(&mut TransactionSearch)) -> SqlFilter {
        let mut search = TransactionSearch::default();
        configure(&mut search);
        let text = search.q.clone();
        SqlFilter::of_search(&search, text.as_deref())
    }

    /// A text search reads its lists newest first and merges them: the
    /// rows of a common word are never gathered, sorted nor looked up beyond
    /// the page (tester h146, F1), and the whole table is never read.
    #[test]
    fn a_text_search_merges_its_lists_without_a_sort() {
        let connection = migrated(MIGRATIONS);
        let wallet = WalletId::parse("w-1").expect("wallet id");
        let filters = [
            searched(|search| search.q = Some("rent".into())),
            searched(|search| search.q = Some("-".into())),
            searched(|search| search.q = Some(Uuid::now_v7().simple().to_string())),
            searched(|search| {
                search.q = Some("rent march".into());
                search.wallet_id = Some(wallet.clone());
            }),
            searched(|search| {
                search.q = Some("rent".into());
                search.from = Some(Utc::now());
                search.to = Some(Utc::now());
                search.min_amount = Some(rust_decimal::Decimal::ONE);
            }),
        ];
        for filter in &filters {
            for (sql, plan) in text_plans(&connection, filter) {
                assert!(!plan.contains("TEMP B-TREE"), "{sql}\n{plan}");
                assert!(!plan.contains("SCAN search_transactions"), "{sql}\n{plan}");
            }
        }
        // A word alone: its page merges the lists as they come, its count
        // reads the word's rowids alone.
        let plans = text_plans(&connection, &filters[0]);
        assert!(plans[0].1.contains("MERGE (UNION)"), "{}", plans[0].1);
        assert_eq!(
            plans[1].1, "SCAN matched VIRTUAL TABLE INDEX 0:M1",
            "{}",
            plans[1].0
        );
        assert!(plans[2].1.contains("MERGE (EXCEPT)"), "{}", plans[2].1);
    }

    /// A search the way every version before the merged lists read it: one
    /// condition per row over the whole table, newest first (the oracle of
    /// [`a_text_search_finds_what_the_row_by_row_search_found`]).
    fn searched_row_by_row(connection: &Connection, filter: &SqlFilter) -> Vec<i64> {
        let text = filter.text.as_ref().expect("a text search");
        let mut clauses = filter.conditions.clone();
        let mut values = filter.values.clone();
        if !filter.words.is_empty() {
            clauses.push(
                "position IN (SELECT rowid FROM search_keys WHERE search_keys MATCH ?)".into(),
            );
            values.push(Value::Text(filter.words.join(" AND ")));
        }
        let mut text_clauses = vec![
            "position IN (SELECT rowid FROM search_keys WHERE search_keys MATCH ?)".to_owned(),
            format!(
                "event_id IN ({})",
                vec!["?"; text.event_ids.len()].join(", ")
            ),
        ];
        values.push(Value::Text(text.identifiers.clone()));
        values.extend(text.event_ids.iter().cloned().map(Value::Text));
        if let Some(words) = &text.description {
            text_clauses.push(
                "position IN (SELECT rowid FROM search_description_words \
                 WHERE search_description_words MATCH ?)"
                    .into(),
            );
            values.push(Value::Text(words.clone()));
        }
        clauses.push(format!("({})", text_clauses.join(" OR ")));
        connection
            .prepare(&format!(
                "SELECT position FROM search_transactions WHERE {} ORDER BY position DESC",
                clauses.join(" AND ")
            ))
            .expect("query")
            .query_map(params_from_iter(values.iter()), |row| row.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("positions")
    }

    /// Rows of six wallets of three owners, described from a few words (one
    /// of them a wallet's and a hold's id), some transfers and holds, their
    /// times a little out of position order.
    fn varied_rows(connection: &Connection, transfers: &[Uuid]) -> Vec<Uuid> {
        let descriptions = [
            Some("rent"),
            Some("Coffee, March"),
            Some("w1 rent"),
            Some("march"),
            None,
            Some("rent coffee"),
        ];
        let base = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut event_ids = Vec::new();
        let mut seed: u64 = 7;
        for position in 1..=400_u64 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let random = seed >> 33;
            let wallet = random % 6;
            let id = Uuid::now_v7();
            event_ids.push(id);
            let jitter_ms = i64::try_from(random % 7_000).expect("small") - 3_500;
            let source = TransactionSource {
                id,
                wallet_id: format!("w{wallet}"),
                owner_id: format!("o{}", wallet % 3),
                transaction_type: "WalletCredited".into(),
                amount: "1.00".into(),
                amount_cents: i64::try_from(random % 50).expect("small") * 100,
                balance_after: "1.00".into(),
                counterparty_wallet_id: random
                    .is_multiple_of(5)
                    .then(|| format!("w{}", (wallet + 1) % 6)),
                transfer_id: random
                    .is_multiple_of(4)
                    .then(|| transfers[usize::try_from(random % 3).expect("small")]),
                description: descriptions[usize::try_from((random >> 3) % 6).expect("small")]
                    .map(str::to_owned),
                occurred_at: base
                    + chrono::Duration::milliseconds(
                        i64::try_from(position).expect("small") * 1_000 + jitter_ms,
                    ),
                position,
                stream_version: position,
                principal: None,
                hold_id: random
                    .is_multiple_of(9)
                    .then(|| ["h0", "w1"][usize::from(random.is_multiple_of(2))].to_owned()),
            };
            write_transaction(connection, &source).expect("row");
        }
        event_ids
    }

    /// Every combination of filters and paging finds the rows, in the order
    /// and the count, that testing each row found (the search before the
    /// merged lists).
    #[test]
    fn a_text_search_finds_what_the_row_by_row_search_found() {
        let connection = migrated(MIGRATIONS);
        let transfers = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let event_ids = varied_rows(&connection, &transfers);
        let at = |second: i64| {
            DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .expect("time")
                .with_timezone(&Utc)
                + chrono::Duration::milliseconds(second * 1_000 + 1)
        };
        let texts = [
            "rent".to_owned(),
            "coffee march".to_owned(),
            "w1".to_owned(),
            "h0".to_owned(),
            "-".to_owned(),
            "nothing".to_owned(),
            transfers[0].to_string(),
            transfers[1].simple().to_string().to_uppercase(),
            event_ids[41].to_string().to_uppercase(),
            event_ids[42].to_string(),
        ];
        let windows = [
            (None, None),
            (Some(at(100)), Some(at(120))),
            (Some(at(100)), Some(at(100))),
            (Some(at(300)), None),
            (None, Some(at(30))),
            (Some(at(900)), None),
        ];
        let wallets = [None, Some("w1"), Some("w2")];
        let owners = [None, Some("o1")];
        let amounts = [None, Some((10, 30))];
        let (mut compared, mut found, mut many) = (0, 0, 0);
        for text in &texts {
            for wallet in wallets {
                for owner in owners {
                    for window in windows {
                        for amount in amounts {
                            let filter = searched(|search| {
                                search.q = Some(text.clone());
                                search.wallet_id =
                                    wallet.map(|id| WalletId::parse(id).expect("id"));
                                search.owner_id = owner
                                    .map(|id| wallet_domain::OwnerId::parse(id).expect("owner id"));
                                (search.from, search.to) = window;
                                if let Some((min, max)) = amount {
                                    search.min_amount = Some(rust_decimal::Decimal::from(min));
                                    search.max_amount = Some(rust_decimal::Decimal::from(max));
                                }
                            });
                            let expected = searched_row_by_row(&connection, &filter);
                            found += usize::from(!expected.is_empty());
                            many += usize::from(expected.len() > 20);
                            for (limit, offset) in [(500, 0), (5, 0), (7, 3), (3, 100)] {
                                let page = Page { limit, offset };
                                let (total, rows) =
                                    filter.select(&connection, page).expect("search");
                                let positions: Vec<i64> = rows
                                    .iter()
                                    .map(|row| i64::try_from(row.position).expect("position"))
                                    .collect();
                                let context = format!("{filter:?} {page:?}");
                                assert_eq!(total, expected.len() as u64, "{context}");
                                let end = (offset + limit).min(expected.len());
                                assert_eq!(positions, expected[offset.min(end)..end], "{context}");
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 10 * 3 * 2 * 6 * 2 * 4);
        // Enough of them find rows, some more than a page.
        assert!(found > 100 && many > 20, "{found} found, {many} many");
    }

    /// A wallet's page is read newest first from the words of `search_keys`
    /// (no sort), from the cursor on, each row by its position.
    #[test]
    fn a_wallet_page_is_driven_by_its_word_without_a_sort() {
        let mut connection = migrated(MIGRATIONS);
        let wallet = WalletId::parse("w-1").expect("wallet id");
        let filter =
            SqlFilter::of_wallet(&wallet, Some(100)).with("amount_cents >= ?", [Value::Integer(5)]);
        let plan = plan(&mut connection, &filter);
        assert!(plan.contains("SCAN search_keys VIRTUAL TABLE"), "{plan}");
        assert!(
            plan.contains("SEARCH search_transactions USING INTEGER PRIMARY KEY"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    /// A file indexed before the identifiers became words gets the words of
    /// every row it holds when opened, the same words new rows get.
    #[test]
    fn rows_indexed_before_the_words_are_found_by_every_identifier() {
        // search_index_0006.sql, which made the identifiers words.
        let before = 5;
        let connection = migrated(&MIGRATIONS[..before]);
        let transfer = Uuid::now_v7();
        connection
            .execute(
                "INSERT INTO search_transactions (position, event_id, wallet_id, owner_id, \
                 transaction_type, amount, amount_cents, balance_after, counterparty_wallet_id, \
                 transfer_id, occurred_at, occurred_at_ms, stream_version, hold_id) \
                 VALUES (7, ?1, 'wallet é/1', 'Zoë', 'TRANSFER_OUT', '1.00', 100, '0.00', \
                 'w \"2', ?2, '2026-12-02T00:00:00Z', 0, 3, 'hold-1')",
                params![Uuid::now_v7().to_string(), transfer.to_string()],
            )
            .expect("row before the words");
        connection
            .execute_batch(MIGRATIONS[before])
            .expect("the migration to words");
        let source = connection
            .query_row(
                &format!("SELECT {TRANSACTION_COLUMNS} FROM search_transactions"),
                [],
                transaction_row,
            )
            .expect("the row");
        let migrated_words: String = connection
            .query_row(
                "SELECT count(*) FROM search_keys WHERE search_keys MATCH ?1",
                [words_of(&source).replace(' ', " AND ")],
                |row| row.get::<_, i64>(0).map(|count| count.to_string()),
            )
            .expect("words");
        assert_eq!(migrated_words, "1");
        for word in [
            Key::Wallet.word("wallet é/1"),
            Key::Owner.word("Zoë"),
            Key::Counterparty.word("w \"2"),
            Key::Transfer.word(&transfer.to_string()),
            Key::Hold.word("hold-1"),
        ] {
            let position: i64 = connection
                .query_row(
                    "SELECT rowid FROM search_keys WHERE search_keys MATCH ?1",
                    [&word],
                    |row| row.get(0),
                )
                .unwrap_or_else(|error| panic!("{word}: {error}"));
            assert_eq!(position, 7, "{word}");
        }
    }

    /// A file as a version before the folded words left it: migrated to
    /// just before `search_index_0007.sql`, with three rows, two of them
    /// described.
    fn indexed_before_the_folded_words(connection: &Connection) {
        for (position, description) in [
            (3, Some("ΣΟΦΟΣ, cafe\u{301}")),
            (4, None),
            (9, Some("Rent")),
        ] {
            connection
                .execute(
                    "INSERT INTO search_transactions (position, event_id, wallet_id, owner_id, \
                     transaction_type, amount, amount_cents, balance_after, description, \
                     occurred_at, occurred_at_ms, stream_version) \
                     VALUES (?1, ?2, 'w', 'o', 'CREDIT', '1.00', 100, '1.00', ?3, \
                     '2026-12-02T00:00:00Z', 0, ?1)",
                    params![position, Uuid::now_v7().to_string(), description],
                )
                .expect("row before the folded words");
        }
    }

    /// Before `search_index_0007.sql`.
    const BEFORE_THE_FOLDED_WORDS: usize = 6;

    /// A file indexed before the folded words gets them for every row with
    /// a description when opened, and the fill is done once.
    #[test]
    fn rows_indexed_before_the_folded_words_are_found_by_them() {
        let mut connection = migrated(&MIGRATIONS[..BEFORE_THE_FOLDED_WORDS]);
        indexed_before_the_folded_words(&connection);
        connection
            .execute_batch(MIGRATIONS[BEFORE_THE_FOLDED_WORDS])
            .expect("the migration to folded words");
        fill_description_words(&mut connection).expect("fill");
        let found = |connection: &Connection, words: &str| -> Vec<i64> {
            connection
                .prepare("SELECT rowid FROM search_description_words WHERE search_description_words MATCH ?1")
                .expect("query")
                .query_map([description_query(words).expect("words")], |row| row.get(0))
                .expect("rows")
                .collect::<rusqlite::Result<_>>()
                .expect("positions")
        };
        assert_eq!(found(&connection, "σοφος CAFÉ"), [3]);
        assert_eq!(found(&connection, "rent"), [9]);
        let fills: i64 = connection
            .query_row(
                "SELECT count(*) FROM search_description_words_fill",
                [],
                |row| row.get(0),
            )
            .expect("fill row");
        assert_eq!(fills, 0, "the fill is done");
        fill_description_words(&mut connection).expect("a second open");
        assert_eq!(found(&connection, "rent"), [9]);
        // Words another version of the rules made are made again.
        connection
            .execute(
                "UPDATE search_description_words_version SET version = 0",
                [],
            )
            .expect("an older version");
        fill_description_words(&mut connection).expect("an open by a newer version");
        // Once each: the words of the older version were dropped.
        assert_eq!(found(&connection, "rent"), [9]);
        assert_eq!(found(&connection, "σοφος"), [3]);
    }

    /// The same through [`EmbeddedSearchIndex::open`], as a server starts
    /// on a data folder of an earlier version: old rows are found by words.
    #[tokio::test]
    async fn a_file_of_an_earlier_version_is_searchable_by_words_once_opened() {
        let folder = tempfile::tempdir().expect("temporary folder");
        {
            let connection = Connection::open(folder.path().join(DATABASE_FILE)).expect("file");
            for migration in &MIGRATIONS[..BEFORE_THE_FOLDED_WORDS] {
                connection.execute_batch(migration).expect("migration");
            }
            connection
                .pragma_update(None, "user_version", BEFORE_THE_FOLDED_WORDS)
                .expect("schema version");
            indexed_before_the_folded_words(&connection);
        }
        let index = EmbeddedSearchIndex::open(folder.path()).expect("opened");
        let found = |q: &str| {
            let search = TransactionSearch {
                q: Some(q.to_owned()),
                ..TransactionSearch::default()
            };
            let index = &index;
            async move { index.search_transactions(&search).await.expect("search") }
        };
        let page = found("σοφος CAFÉ").await;
        assert_eq!(page.total, 1);
        assert_eq!(page.items[0].position, 3);
        assert_eq!(found("rent").await.total, 1);
    }
}
