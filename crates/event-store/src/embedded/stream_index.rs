//! Where each stream's events lie in the log, written a stream at a time.
//!
//! A B-tree keyed by `(stream, version)` puts each new event in the leaf of its
//! own stream, so a group commit of appends to different wallets wrote one
//! random 1 KiB leaf per event: 59 % of `events.db`'s WAL frames on the
//! benchmark's mix (bench/README.md, "The stream index written a stream at a
//! time"). The writer instead keeps the newest entries of each stream in
//! memory ([`Unindexed`]) and writes them to `stream_index` together, in the
//! transaction of a group commit, once the stream holds
//! [`STREAM_INDEX_FLUSH_EVENTS`] of them or once its oldest lies
//! [`UNINDEXED_POSITIONS_MAX`] positions behind the head.
//!
//! `stream_index_through` holds a position at or below which every event is in
//! the table; the writer reads the entries of the events after it back into
//! memory when it opens the file ([`unindexed_in_file`]), so a crash loses no
//! entry. A stream is read from the table, from the entries held in memory
//! and from the log after the position they are complete through (another
//! store opened on the file may have written there); versions stay unique
//! because the single writer admits an append only on its stream's head
//! ([`crate::stream_head::StreamHead`]), read here ([`stream_head`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;
use wallet_domain::WalletId;

use super::{to_i64, to_u64};
use crate::stream_head::StreamHead;

/// A stream's unindexed entries are written to `stream_index` together once
/// it has this many (events): one or two leaf writes for them instead of one
/// each. 64 rather than 16 wrote 8 % fewer bytes per operation on the
/// benchmark's mix (each flush dirties a random leaf, copied again at the
/// next checkpoint); 256 gave 1 % more on top (bench/README.md).
pub const STREAM_INDEX_FLUSH_EVENTS: usize = 64;
/// The most log positions an unindexed entry may lie behind the head: a
/// stream whose oldest one lies further back is written out whatever its
/// count. Bounds the memory the entries take and the events the writer
/// reads back when it opens the file.
pub const UNINDEXED_POSITIONS_MAX: u64 = 65_536;
/// `stream_index_through` is rewritten once it can move up by this many
/// positions (not at every commit: a page write each); opening the file
/// reads at most [`UNINDEXED_POSITIONS_MAX`] plus this many events back.
pub const THROUGH_WRITE_STEP_POSITIONS: u64 = 4_096;

/// Where one event lies: its stream's version, its log position, its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub version: u64,
    pub position: u64,
    pub event_id: Uuid,
}

impl IndexEntry {
    fn head(&self) -> StreamHead {
        StreamHead {
            version: self.version,
            last_event_id: Some(self.event_id),
        }
    }
}

/// The committed events not yet in `stream_index`, by stream in version
/// order: every event after the table's mark is in it or here. Shared by the
/// writer, which alone changes it, and the readers.
#[derive(Debug, Default)]
pub(crate) struct Unindexed {
    streams: HashMap<WalletId, Vec<IndexEntry>>,
    /// Each stream held here, by the position of its oldest entry.
    oldest: BTreeMap<u64, WalletId>,
    /// Every event at or below this position is here or in the table; one
    /// after it may be in neither (committed since, by another store opened
    /// on the file), and a reader looks for it in the log itself.
    complete_through: u64,
}

impl Unindexed {
    /// The versions and positions of `stream`'s entries with a version in
    /// `(after_version, up_to_version]`, and the position through which
    /// they are complete.
    pub fn positions(
        &self,
        stream: &WalletId,
        after_version: u64,
        up_to_version: u64,
    ) -> (Vec<(u64, u64)>, u64) {
        let positions = self.streams.get(stream).map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .filter(|entry| entry.version > after_version && entry.version <= up_to_version)
                .map(|entry| (entry.version, entry.position))
                .collect()
        });
        (positions, self.complete_through)
    }

    fn newest(&self, stream: &WalletId) -> Option<IndexEntry> {
        self.streams
            .get(stream)
            .and_then(|entries| entries.last())
            .copied()
    }

    fn count(&self, stream: &WalletId) -> usize {
        self.streams.get(stream).map_or(0, Vec::len)
    }

    fn entries(&self, stream: &WalletId) -> &[IndexEntry] {
        self.streams.get(stream).map_or(&[], Vec::as_slice)
    }

    fn remove(&mut self, stream: &WalletId) {
        if let Some(entries) = self.streams.remove(stream) {
            if let Some(first) = entries.first() {
                self.oldest.remove(&first.position);
            }
        }
    }

    /// After the commit of a group: its entries are held, but for the
    /// streams written to the table, whose entries all leave.
    pub fn committed(&mut self, group: GroupEntries, flushed: &HashSet<WalletId>) {
        for stream in flushed {
            self.remove(stream);
        }
        for (stream, entry, _) in group.entries {
            self.complete_through = self.complete_through.max(entry.position);
            if flushed.contains(&stream) {
                continue;
            }
            let entries = self.streams.entry(stream.clone()).or_default();
            assert!(
                entries
                    .last()
                    .is_none_or(|last| last.version + 1 == entry.version),
                "stream {stream}: unindexed version {} does not follow the one before",
                entry.version
            );
            if entries.is_empty() {
                self.oldest.insert(entry.position, stream);
            }
            entries.push(entry);
        }
    }
}

/// The entries a group commit writes, in the order its appends stored them,
/// with each stream's newest. An append refused in its savepoint takes its
/// entries back ([`GroupEntries::roll_back_to`]).
#[derive(Debug, Default)]
pub(crate) struct GroupEntries {
    /// Each entry with the index of its stream's entry before it in the group.
    entries: Vec<(WalletId, IndexEntry, Option<usize>)>,
    newest: HashMap<WalletId, usize>,
}

impl GroupEntries {
    pub fn push(&mut self, stream: &WalletId, entry: IndexEntry) {
        let before = self.newest.insert(stream.clone(), self.entries.len());
        self.entries.push((stream.clone(), entry, before));
    }

    /// A point to roll back to: the number of entries so far.
    pub fn mark(&self) -> usize {
        self.entries.len()
    }

    /// Takes back the entries pushed after `mark`.
    pub fn roll_back_to(&mut self, mark: usize) {
        while self.entries.len() > mark {
            let Some((stream, _, before)) = self.entries.pop() else {
                break;
            };
            match before {
                Some(index) => self.newest.insert(stream, index),
                None => self.newest.remove(&stream),
            };
        }
    }

    fn newest(&self, stream: &WalletId) -> Option<IndexEntry> {
        self.newest
            .get(stream)
            .and_then(|&index| self.entries.get(index))
            .map(|(_, entry, _)| *entry)
    }

    /// `stream`'s entries in the group, newest first (each links to the one before).
    fn newest_first(&self, stream: &WalletId) -> impl Iterator<Item = IndexEntry> + '_ {
        let mut next = self.newest.get(stream).copied();
        std::iter::from_fn(move || {
            let (_, entry, before) = self.entries.get(next?)?;
            next = *before;
            Some(*entry)
        })
    }

    fn count(&self, stream: &WalletId) -> usize {
        self.newest_first(stream).count()
    }

    /// `stream`'s entries in the group, in version order.
    fn of(&self, stream: &WalletId) -> Vec<IndexEntry> {
        let mut entries: Vec<IndexEntry> = self.newest_first(stream).collect();
        entries.reverse();
        entries
    }

    /// The newest position the group stored.
    pub fn last_position(&self) -> Option<u64> {
        self.entries.last().map(|(_, entry, _)| entry.position)
    }
}

/// The newest event of `stream` as the writer's transaction sees it: from
/// the group, then from memory, then from the table. A table row whose
/// event the file no longer holds is deleted on the way.
///
/// An entry in memory is taken without reading the log: only this writer
/// changes the file while it holds it, and it reads its entries from the
/// file again after another connection's commit (`PRAGMA data_version`) or
/// a commit of its own whose outcome it did not learn
/// (`WriterIndex::refreshed`). Reading the entry's event back cost a page
/// from outside the writer's cache for most appends, 13.5 % of the writer
/// thread's samples on the benchmark's mix (bench/README.md); debug builds,
/// and so the tests, still check it.
pub(crate) fn stream_head(
    transaction: &Connection,
    unindexed: &std::sync::Mutex<Unindexed>,
    group: &GroupEntries,
    stream: &WalletId,
) -> rusqlite::Result<StreamHead> {
    if let Some(entry) = group.newest(stream) {
        return Ok(entry.head());
    }
    let newest = lock(unindexed).newest(stream);
    if let Some(entry) = newest {
        debug_assert_eq!(
            event_id_at(transaction, stream, entry.version, entry.position).ok(),
            Some(Some(entry.event_id)),
            "the writer's entry for {stream} at version {} names the log's event",
            entry.version
        );
        return Ok(entry.head());
    }
    loop {
        let newest: Option<(i64, i64)> = transaction
            .prepare_cached(
                "SELECT version, position FROM stream_index WHERE stream_id = ?1 \
                 ORDER BY version DESC LIMIT 1",
            )?
            .query_row([stream.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let Some((version, position)) = newest else {
            return Ok(StreamHead::default());
        };
        let (version, position) = (to_u64(version), to_u64(position));
        if let Some(event_id) = event_id_at(transaction, stream, version, position)? {
            return Ok(StreamHead {
                version,
                last_event_id: Some(event_id),
            });
        }
        transaction
            .prepare_cached("DELETE FROM stream_index WHERE stream_id = ?1 AND version = ?2")?
            .execute(params![stream.as_str(), to_i64(version)])?;
    }
}

/// The id of the event at `position` when it is `stream`'s at `version`.
fn event_id_at(
    connection: &Connection,
    stream: &WalletId,
    version: u64,
    position: u64,
) -> rusqlite::Result<Option<Uuid>> {
    let event_id: Option<String> = connection
        .prepare_cached(
            "SELECT event_id FROM events WHERE position = ?1 AND stream_id = ?2 AND version = ?3",
        )?
        .query_row(
            params![to_i64(position), stream.as_str(), to_i64(version)],
            |row| row.get(0),
        )
        .optional()?;
    event_id.map(|raw| parse_event_id(0, &raw)).transpose()
}

/// An event id read from column `column` as the text it is stored as.
fn parse_event_id(column: usize, raw: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(raw).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, error.into())
    })
}

/// Writes to `stream_index`, in the group's transaction, every stream the
/// group brought to [`STREAM_INDEX_FLUSH_EVENTS`] entries and every stream
/// whose oldest entry lies [`UNINDEXED_POSITIONS_MAX`] behind `head` (the
/// newest position once the group commits), then moves the table's mark up
/// when it can go [`THROUGH_WRITE_STEP_POSITIONS`] further. Returns the
/// streams whose entries all went, for [`Unindexed::committed`].
pub(crate) fn flush(
    transaction: &Connection,
    unindexed: &Unindexed,
    group: &GroupEntries,
    head: u64,
    written_through: &mut u64,
) -> rusqlite::Result<HashSet<WalletId>> {
    let mut streams: HashSet<WalletId> = group
        .newest
        .keys()
        .filter(|stream| unindexed.count(stream) + group.count(stream) >= STREAM_INDEX_FLUSH_EVENTS)
        .cloned()
        .collect();
    let too_old = head.saturating_sub(UNINDEXED_POSITIONS_MAX);
    streams.extend(
        unindexed
            .oldest
            .range(..=too_old)
            .map(|(_, stream)| stream.clone()),
    );
    let mut ordered: Vec<&WalletId> = streams.iter().collect();
    ordered.sort();
    // The log is the truth: an entry the table holds already (left by a
    // commit whose outcome the writer did not learn, or pointing at an event
    // the file lost) takes the position of the event the log holds, instead
    // of failing this and every later group.
    let mut insert = transaction.prepare_cached(
        "INSERT INTO stream_index (stream_id, version, position) VALUES (?1, ?2, ?3) \
         ON CONFLICT (stream_id, version) DO UPDATE SET position = excluded.position",
    )?;
    for stream in ordered {
        for entry in unindexed
            .entries(stream)
            .iter()
            .copied()
            .chain(group.of(stream))
        {
            insert.execute(params![
                stream.as_str(),
                to_i64(entry.version),
                to_i64(entry.position)
            ])?;
        }
    }
    let held_oldest = unindexed
        .oldest
        .iter()
        .find(|(_, stream)| !streams.contains(*stream))
        .map(|(position, _)| *position)
        .or_else(|| {
            group
                .entries
                .iter()
                .find(|(stream, ..)| !streams.contains(stream) && unindexed.count(stream) == 0)
                .map(|(_, entry, _)| entry.position)
        });
    let through = held_oldest.map_or(head, |position| position - 1);
    if through >= written_through.saturating_add(THROUGH_WRITE_STEP_POSITIONS) {
        write_through(transaction, through)?;
        *written_through = through;
    }
    Ok(streams)
}

fn write_through(connection: &Connection, through: u64) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE stream_index_through SET position = ?1 WHERE only = 1")?
        .execute([to_i64(through)])?;
    Ok(())
}

/// An event after the mark that does not continue its stream: two events at
/// one version, or a version skipped. The file does not hold together.
#[derive(Debug, thiserror::Error)]
#[error(
    "events.db: the event at position {position} is version {version} of stream {stream}, \
     which does not follow that stream's events before it"
)]
pub(crate) struct BrokenStreamIndex {
    stream: String,
    version: u64,
    position: u64,
}

/// `PRAGMA data_version`: changes when another connection commits.
pub(crate) fn data_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA data_version", [], |row| row.get(0))
}

/// The mark of `stream_index` as the file holds it.
pub(crate) fn written_through(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .query_row(
            "SELECT position FROM stream_index_through WHERE only = 1",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(to_u64)
}

/// The entries of the events after `through` that are not in `stream_index`,
/// read from the file without writing to it (a server that then refuses to
/// start leaves the file as it was). Run when the writer opens the file, and
/// after a commit whose outcome it did not learn.
pub(crate) fn unindexed_in_file(
    connection: &Connection,
    through: u64,
) -> rusqlite::Result<Result<Unindexed, BrokenStreamIndex>> {
    let mut statement = connection.prepare(
        "SELECT e.stream_id, e.version, e.position, e.event_id, i.position FROM events e \
         LEFT JOIN stream_index i ON i.stream_id = e.stream_id AND i.version = e.version \
         WHERE e.position > ?1 ORDER BY e.position",
    )?;
    let mut rows = statement.query([to_i64(through)])?;
    let mut found = GroupEntries::default();
    let mut read_through = through;
    while let Some(row) = rows.next()? {
        let (stream, version, position): (String, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let (version, position) = (to_u64(version), to_u64(position));
        let broken = || BrokenStreamIndex {
            stream: stream.clone(),
            version,
            position,
        };
        read_through = read_through.max(position);
        let indexed_at: Option<i64> = row.get(4)?;
        if let Some(indexed_at) = indexed_at {
            if to_u64(indexed_at) != position {
                return Ok(Err(broken()));
            }
            continue;
        }
        let wallet = WalletId::parse(&stream).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, error.into())
        })?;
        if found
            .newest(&wallet)
            .is_some_and(|newest| newest.version + 1 != version)
        {
            return Ok(Err(broken()));
        }
        let event_id = parse_event_id(3, &row.get::<_, String>(3)?)?;
        found.push(
            &wallet,
            IndexEntry {
                version,
                position,
                event_id,
            },
        );
    }
    let mut unindexed = Unindexed {
        complete_through: read_through,
        ..Unindexed::default()
    };
    unindexed.committed(found, &HashSet::new());
    Ok(Ok(unindexed))
}

/// The entries, taken over after a panic while they were held (only a broken
/// invariant panics, and the writer's panic stops the process).
pub(crate) fn lock(
    unindexed: &std::sync::Mutex<Unindexed>,
) -> std::sync::MutexGuard<'_, Unindexed> {
    unindexed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(raw: &str) -> WalletId {
        WalletId::parse(raw).expect("wallet id")
    }

    fn entry(version: u64, position: u64) -> IndexEntry {
        IndexEntry {
            version,
            position,
            event_id: Uuid::now_v7(),
        }
    }

    fn table() -> Connection {
        let connection = Connection::open_in_memory().expect("in memory");
        connection
            .execute_batch(
                "CREATE TABLE stream_index (stream_id TEXT NOT NULL, version INTEGER NOT NULL, \
                 position INTEGER NOT NULL, PRIMARY KEY (stream_id, version)) WITHOUT ROWID; \
                 CREATE TABLE stream_index_through (only INTEGER PRIMARY KEY, position INTEGER NOT NULL); \
                 INSERT INTO stream_index_through VALUES (1, 0);",
            )
            .expect("schema");
        connection
    }

    fn indexed(connection: &Connection, stream: &WalletId) -> Vec<(i64, i64)> {
        connection
            .prepare(
                "SELECT version, position FROM stream_index WHERE stream_id = ?1 ORDER BY version",
            )
            .expect("prepare")
            .query_map([stream.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    fn through(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT position FROM stream_index_through", [], |row| {
                row.get(0)
            })
            .expect("mark")
    }

    #[test]
    fn a_refused_append_takes_back_its_entries_and_the_newest_before_them() {
        let (a, b) = (stream("a"), stream("b"));
        let mut group = GroupEntries::default();
        group.push(&a, entry(1, 1));
        let mark = group.mark();
        group.push(&a, entry(2, 2));
        group.push(&b, entry(1, 3));
        group.roll_back_to(mark);
        assert_eq!(group.newest(&a).map(|entry| entry.version), Some(1));
        assert_eq!(group.newest(&b), None);
        assert_eq!(group.count(&a), 1);
        assert_eq!(group.last_position(), Some(1));
    }

    #[test]
    fn a_stream_goes_to_the_table_whole_once_it_holds_the_flush_count() {
        let connection = table();
        let (a, b) = (stream("a"), stream("b"));
        let mut unindexed = Unindexed::default();
        let mut held = GroupEntries::default();
        let below = STREAM_INDEX_FLUSH_EVENTS as u64 - 1;
        for version in 1..=below {
            held.push(&a, entry(version, version));
        }
        held.push(&b, entry(1, below + 1));
        let mut written_through = 0;
        let flushed = flush(
            &connection,
            &unindexed,
            &held,
            below + 1,
            &mut written_through,
        )
        .expect("flush");
        assert!(flushed.is_empty(), "{:?}", flushed);
        unindexed.committed(held, &flushed);
        assert!(indexed(&connection, &a).is_empty());

        let mut group = GroupEntries::default();
        group.push(&a, entry(below + 1, below + 2));
        let flushed = flush(
            &connection,
            &unindexed,
            &group,
            below + 2,
            &mut written_through,
        )
        .expect("flush");
        assert_eq!(flushed, HashSet::from([a.clone()]));
        unindexed.committed(group, &flushed);
        let rows = indexed(&connection, &a);
        assert_eq!(rows.len(), STREAM_INDEX_FLUSH_EVENTS);
        assert_eq!(rows.last(), Some(&(to_i64(below + 1), to_i64(below + 2))));
        assert!(unindexed.positions(&a, 0, u64::MAX).0.is_empty());
        assert_eq!(
            unindexed.positions(&b, 0, u64::MAX),
            (vec![(1, below + 1)], below + 2),
            "complete through the group's newest position"
        );
        assert!(indexed(&connection, &b).is_empty());
    }

    #[test]
    fn an_entry_the_table_holds_already_takes_the_logs_position() {
        let connection = table();
        let a = stream("a");
        connection
            .execute("INSERT INTO stream_index VALUES ('a', 1, 99)", [])
            .expect("a stale entry");
        let mut group = GroupEntries::default();
        for version in 1..=STREAM_INDEX_FLUSH_EVENTS as u64 {
            group.push(&a, entry(version, version));
        }
        let mut written_through = 0;
        flush(
            &connection,
            &Unindexed::default(),
            &group,
            16,
            &mut written_through,
        )
        .expect("flushed over the stale entry");
        assert_eq!(indexed(&connection, &a).first(), Some(&(1, 1)));
    }

    #[test]
    fn a_quiet_stream_goes_to_the_table_once_its_oldest_lies_the_bound_behind() {
        let connection = table();
        let (quiet, busy) = (stream("quiet"), stream("busy"));
        let mut unindexed = Unindexed::default();
        let mut group = GroupEntries::default();
        group.push(&quiet, entry(1, 1));
        let mut written_through = 0;
        let flushed =
            flush(&connection, &unindexed, &group, 1, &mut written_through).expect("flush");
        unindexed.committed(group, &flushed);

        let mut group = GroupEntries::default();
        group.push(&busy, entry(1, UNINDEXED_POSITIONS_MAX));
        let flushed = flush(
            &connection,
            &unindexed,
            &group,
            UNINDEXED_POSITIONS_MAX,
            &mut written_through,
        )
        .expect("flush");
        assert!(flushed.is_empty(), "one position short of the bound");
        unindexed.committed(group, &flushed);
        assert_eq!(
            through(&connection),
            0,
            "nothing moved: the quiet stream's entry holds the mark"
        );

        let mut group = GroupEntries::default();
        group.push(&busy, entry(2, UNINDEXED_POSITIONS_MAX + 1));
        let flushed = flush(
            &connection,
            &unindexed,
            &group,
            UNINDEXED_POSITIONS_MAX + 1,
            &mut written_through,
        )
        .expect("flush");
        assert_eq!(flushed, HashSet::from([quiet.clone()]));
        assert_eq!(indexed(&connection, &quiet), vec![(1, 1)]);
        // The busy stream's first entry now holds the mark.
        assert_eq!(through(&connection), to_i64(UNINDEXED_POSITIONS_MAX - 1));
        assert_eq!(written_through, UNINDEXED_POSITIONS_MAX - 1);
    }

    #[test]
    fn the_mark_is_written_only_once_it_moves_a_whole_step() {
        let connection = table();
        let a = stream("a");
        let unindexed = Unindexed::default();
        let mut written_through = 0;
        let mut group = GroupEntries::default();
        for version in 1..=STREAM_INDEX_FLUSH_EVENTS as u64 {
            group.push(&a, entry(version, version));
        }
        let head = THROUGH_WRITE_STEP_POSITIONS - 1;
        flush(&connection, &unindexed, &group, head, &mut written_through).expect("flush");
        assert_eq!((through(&connection), written_through), (0, 0));
        let head = THROUGH_WRITE_STEP_POSITIONS;
        flush(
            &connection,
            &unindexed,
            &GroupEntries::default(),
            head,
            &mut written_through,
        )
        .expect("flush");
        assert_eq!(through(&connection), to_i64(head));
        assert_eq!(written_through, head);
    }
}
