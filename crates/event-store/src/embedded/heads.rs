//! The heads of the streams the writer has appended to or looked at, so that
//! an append checks its expected version against memory instead of a lookup
//! through the stream's word (about 70 µs each with the segments a busy log
//! has, against 12 µs for the B-tree it replaced; `bench/README.md`).
//!
//! Only committed heads are remembered: a group's heads are kept aside
//! ([`GroupHeads`]) until its transaction commits, an append's until its
//! savepoint is released. Whatever another connection commits to the file
//! (another store opened on the same folder, a test removing an event as a
//! lost commit would) makes the writer forget them all before its next
//! group: SQLite's `PRAGMA data_version` changes for exactly those commits.

use std::collections::HashMap;

use rusqlite::Connection;
use wallet_domain::WalletId;

use super::stream_head;
use crate::stream_head::StreamHead;

/// Stream heads remembered at most; past it the memory is cleared and
/// filled again by lookups. At about 100 bytes a stream, 10 MB.
const STREAM_HEADS_MAX: usize = 100_000;

/// The committed heads the writer remembers, as of the file's
/// `data_version` they were read or written at.
#[derive(Debug, Default)]
pub(super) struct StreamHeads {
    committed: HashMap<WalletId, StreamHead>,
    data_version: Option<i64>,
}

impl StreamHeads {
    /// A group's view: these heads, forgotten first if another connection
    /// has committed since the last group, and the group's appends over
    /// them. `connection` is the writer's, in the group's transaction.
    pub fn group(&mut self, connection: &Connection) -> rusqlite::Result<GroupHeads<'_>> {
        let data_version: i64 =
            connection.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        if self.data_version != Some(data_version) {
            self.committed.clear();
            self.data_version = Some(data_version);
        }
        Ok(GroupHeads {
            heads: self,
            written: HashMap::new(),
        })
    }

    /// Forgets everything: after a commit whose outcome is unknown, the
    /// file is the only authority.
    pub fn forget(&mut self) {
        self.committed.clear();
    }

    fn remember(&mut self, wallet_id: WalletId, head: StreamHead) {
        if self.committed.len() >= STREAM_HEADS_MAX && !self.committed.contains_key(&wallet_id) {
            self.committed.clear();
        }
        self.committed.insert(wallet_id, head);
    }
}

/// The heads as one group's transaction sees them: its appends so far over
/// the committed ones.
pub(super) struct GroupHeads<'a> {
    heads: &'a mut StreamHeads,
    written: HashMap<WalletId, StreamHead>,
}

impl GroupHeads<'_> {
    /// The head an append to `wallet_id` is checked against: the group's,
    /// the remembered committed one, or the file's (then remembered).
    pub fn head(
        &mut self,
        connection: &Connection,
        wallet_id: &WalletId,
    ) -> rusqlite::Result<StreamHead> {
        if let Some(head) = self
            .written
            .get(wallet_id)
            .or_else(|| self.heads.committed.get(wallet_id))
        {
            return Ok(*head);
        }
        // Not written by this group, so the transaction sees the committed head.
        let head = stream_head(connection, wallet_id)?;
        self.heads.remember(wallet_id.clone(), head);
        Ok(head)
    }

    /// An append's heads, once its savepoint is released.
    pub fn appended(&mut self, heads: impl IntoIterator<Item = (WalletId, StreamHead)>) {
        self.written.extend(heads);
    }

    /// The group committed: its heads are the committed ones now.
    pub fn committed(self) {
        for (wallet_id, head) in self.written {
            self.heads.remember(wallet_id, head);
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn head(version: u64) -> StreamHead {
        StreamHead {
            version,
            last_event_id: Some(Uuid::now_v7()),
        }
    }

    fn wallet(index: usize) -> WalletId {
        WalletId::parse(&format!("w{index}")).expect("wallet id")
    }

    fn connection() -> Connection {
        let mut connection = Connection::open_in_memory().expect("in memory");
        embedded_sqlite::migrate(&mut connection, super::super::MIGRATIONS).expect("migrations");
        connection
    }

    #[test]
    fn a_group_s_heads_are_remembered_only_once_committed() {
        let connection = connection();
        let mut heads = StreamHeads::default();
        let mut group = heads.group(&connection).expect("group");
        group.appended([(wallet(1), head(3))]);
        drop(group);
        assert!(heads.committed.is_empty(), "a group that did not commit");
        let mut group = heads.group(&connection).expect("group");
        group.appended([(wallet(1), head(3))]);
        assert_eq!(
            group.head(&connection, &wallet(1)).expect("head").version,
            3
        );
        group.committed();
        assert_eq!(heads.committed[&wallet(1)].version, 3);
        heads.forget();
        assert!(heads.committed.is_empty());
    }

    /// A commit by another connection to the same file makes the writer
    /// read every head from the file again.
    #[test]
    fn another_connection_s_commit_forgets_every_head() {
        let folder = tempfile::tempdir().expect("folder");
        let path = folder.path().join("events.db");
        let mut writer = Connection::open(&path).expect("writer");
        embedded_sqlite::migrate(&mut writer, super::super::MIGRATIONS).expect("migrations");
        let mut heads = StreamHeads::default();
        heads.group(&writer).expect("group").committed();
        heads.remember(wallet(1), head(7));
        heads.group(&writer).expect("group").committed();
        assert!(
            heads.committed.contains_key(&wallet(1)),
            "nothing else wrote"
        );
        let other = Connection::open(&path).expect("another connection");
        other
            .execute(
                "INSERT INTO events (event_id, stream_id, version, event_type, payload, \
                 recorded_at) VALUES (?1, 'w2', 1, 'WalletCreated', '{}', '')",
                [Uuid::now_v7().to_string()],
            )
            .expect("an event written beside the writer");
        let mut group = heads.group(&writer).expect("group");
        assert_eq!(
            group.head(&writer, &wallet(1)).expect("head"),
            StreamHead::default(),
            "read from the file again"
        );
        assert_eq!(group.head(&writer, &wallet(2)).expect("head").version, 1);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut heads = StreamHeads::default();
        for index in 0..=STREAM_HEADS_MAX {
            heads.remember(wallet(index), head(1));
        }
        assert!(heads.committed.len() <= STREAM_HEADS_MAX);
        assert!(heads.committed.contains_key(&wallet(STREAM_HEADS_MAX)));
    }
}
