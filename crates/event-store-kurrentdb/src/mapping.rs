//! Pure mappings between the port and KurrentDB: stream names, positions,
//! events. No I/O, so they are unit-tested without a server.

use event_store::{RecordedEvent, StoredEvent};
use kurrentdb::{EventData, Position, StreamPosition};
use serde_json::value::RawValue;
use wallet_domain::{HoldId, WalletEvent, WalletId};

use crate::KurrentDbError;

/// The stream prefix of wallets in a store with the default names.
pub const WALLET_STREAM_PREFIX: &str = "wallet-";
/// The stream prefix of idempotency keys in a store with the default names.
pub const IDEMPOTENCY_STREAM_PREFIX: &str = "idempotency-";
/// The stream prefix of hold id claims in a store with the default names.
pub const HOLD_STREAM_PREFIX: &str = "hold-";
/// The stream prefix of transfer journals in a store with the default names.
pub const TRANSFER_STREAM_PREFIX: &str = "transfer-";
/// The stream of the transfer journal's resumption checkpoint: outside the
/// transfer prefix, so the scan of `transfer-` streams does not see it.
pub const TRANSFER_CHECKPOINT_STREAM: &str = "transfers-checkpoint";
/// Prefix of a wallet's snapshot stream: `snapshot-<wallet id>`.
pub const SNAPSHOT_STREAM_PREFIX: &str = "snapshot-";

/// How the store names its streams. Every wallet stream starts with
/// [`StreamNames::wallet_prefix`], which is also the server-side filter of
/// `read_all`, so other streams in the same database (idempotency pointers,
/// system streams, other applications) never reach the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNames {
    wallet_prefix: String,
    idempotency_prefix: String,
    hold_prefix: String,
    transfer_prefix: String,
    transfer_checkpoint: String,
    snapshot_prefix: String,
}

impl Default for StreamNames {
    /// `wallet-<id>`, `idempotency-<key>`, `hold-<id>`, `transfer-<id>`,
    /// `transfers-checkpoint` and `snapshot-<wallet id>`.
    fn default() -> Self {
        Self {
            wallet_prefix: WALLET_STREAM_PREFIX.to_owned(),
            idempotency_prefix: IDEMPOTENCY_STREAM_PREFIX.to_owned(),
            hold_prefix: HOLD_STREAM_PREFIX.to_owned(),
            transfer_prefix: TRANSFER_STREAM_PREFIX.to_owned(),
            transfer_checkpoint: TRANSFER_CHECKPOINT_STREAM.to_owned(),
            snapshot_prefix: SNAPSHOT_STREAM_PREFIX.to_owned(),
        }
    }
}

impl StreamNames {
    /// `<namespace>-wallet-<id>` and `<namespace>-idempotency-<key>`: stores
    /// with different namespaces share a database and see nothing of each
    /// other (tests use one per case, as KurrentDB cannot be emptied).
    ///
    /// # Panics
    /// When `namespace` is empty or starts with `$` (KurrentDB's system
    /// streams): a programming error, not an operating one.
    pub fn namespaced(namespace: &str) -> Self {
        assert!(
            !namespace.is_empty() && !namespace.starts_with('$'),
            "a stream namespace is non-empty and not a system prefix: {namespace:?}"
        );
        Self {
            wallet_prefix: format!("{namespace}-{WALLET_STREAM_PREFIX}"),
            idempotency_prefix: format!("{namespace}-{IDEMPOTENCY_STREAM_PREFIX}"),
            hold_prefix: format!("{namespace}-{HOLD_STREAM_PREFIX}"),
            transfer_prefix: format!("{namespace}-{TRANSFER_STREAM_PREFIX}"),
            transfer_checkpoint: format!("{namespace}-{TRANSFER_CHECKPOINT_STREAM}"),
            snapshot_prefix: format!("{namespace}-{SNAPSHOT_STREAM_PREFIX}"),
        }
    }

    pub fn wallet_prefix(&self) -> &str {
        &self.wallet_prefix
    }

    pub fn wallet_stream(&self, wallet_id: &WalletId) -> String {
        format!("{}{}", self.wallet_prefix, wallet_id.as_str())
    }

    pub fn idempotency_stream(&self, key: &str) -> String {
        format!("{}{key}", self.idempotency_prefix)
    }

    /// The stream of `wallet_id`'s snapshots (see [`crate::snapshot`]).
    pub fn snapshot_stream(&self, wallet_id: &WalletId) -> String {
        format!("{}{}", self.snapshot_prefix, wallet_id.as_str())
    }

    /// The pointer stream of a hold id's claims (see [`crate::holds`]).
    pub fn hold_stream(&self, hold_id: &HoldId) -> String {
        format!("{}{}", self.hold_prefix, hold_id.as_str())
    }

    pub fn transfer_prefix(&self) -> &str {
        &self.transfer_prefix
    }

    pub fn transfer_stream(&self, transfer_id: uuid::Uuid) -> String {
        format!("{}{transfer_id}", self.transfer_prefix)
    }

    /// The transfer id of a `transfer-<id>` stream; `None` for another stream.
    pub fn transfer_of_stream(&self, stream: &str) -> Option<uuid::Uuid> {
        let id = stream.strip_prefix(&self.transfer_prefix)?;
        uuid::Uuid::parse_str(id).ok()
    }

    pub fn transfer_checkpoint_stream(&self) -> &str {
        &self.transfer_checkpoint
    }
}

/// The port's position of an event at KurrentDB `position` (see the crate
/// documentation). A read of a single stream may carry no commit position
/// (`u64::MAX`); the prepare position, the record's own offset, is the same
/// number for an implicitly committed event.
pub fn port_position(
    stream: &str,
    revision: u64,
    position: Position,
) -> Result<u64, KurrentDbError> {
    let Position { commit, prepare } = position;
    match (commit, prepare) {
        (_, u64::MAX) => Err(KurrentDbError::PositionUnknown {
            stream: stream.to_owned(),
            revision,
        }),
        (u64::MAX, prepare) => Ok(prepare),
        (commit, prepare) if commit == prepare => Ok(commit),
        (commit, prepare) => {
            Err(KurrentDbError::PositionNotImplicitlyCommitted { commit, prepare })
        }
    }
}

/// The port position of an append's last event from the position KurrentDB
/// answers the append with. For an implicitly committed append the server
/// reports its last record, whose commit and prepare positions agree; the
/// larger of the two is taken so that a server reporting the transaction's
/// start as its commit position still yields the last record. `0` when the
/// server reported no position.
pub fn append_position(position: Position) -> u64 {
    position.commit.max(position.prepare)
}

/// Where a forward read of `$all` starts to see every event after the port
/// position `after` (and the event at `after` itself, which the caller drops).
pub fn read_all_start(after_position: u64) -> StreamPosition<Position> {
    match after_position {
        0 => StreamPosition::Start,
        after => StreamPosition::Position(Position {
            commit: after,
            prepare: after,
        }),
    }
}

/// Where a forward read of a stream starts to see the versions after
/// `after_version`: version `n` is revision `n - 1`, so revision `after_version`.
pub fn read_stream_start(after_version: u64) -> StreamPosition<u64> {
    match after_version {
        0 => StreamPosition::Start,
        after => StreamPosition::Position(after),
    }
}

/// The port's stream version of KurrentDB `revision`.
pub fn stream_version(revision: u64) -> u64 {
    revision.saturating_add(1)
}

/// KurrentDB's system events (tombstones, metadata) start with `$`; they are
/// not wallet events and are stepped over.
pub fn is_system_event(event_type: &str) -> bool {
    event_type.starts_with('$')
}

/// The record to append for `event`: its JSON as is (no re-encoding, so
/// exact decimals stay exact), its type name, and its own id as the KurrentDB
/// event id (so a retried append of the very same event is recognised).
pub fn event_data(event: &WalletEvent) -> Result<EventData, KurrentDbError> {
    let encode = |source| KurrentDbError::Encode {
        event_id: event.event_id,
        source,
    };
    let json = event.to_json().map_err(encode)?;
    let raw = RawValue::from_string(json).map_err(encode)?;
    let data = EventData::json(event.type_name(), &raw).map_err(encode)?;
    Ok(data.id(event.event_id))
}

/// The parts of a KurrentDB record the port needs (the client's own record
/// type cannot be built outside it, so this keeps the mapping testable).
#[derive(Debug, Clone, Copy)]
pub struct StoredRecord<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub position: Position,
    pub data: &'a [u8],
}

impl<'a> From<&'a kurrentdb::RecordedEvent> for StoredRecord<'a> {
    fn from(record: &'a kurrentdb::RecordedEvent) -> Self {
        Self {
            stream: record.stream_id(),
            revision: record.revision,
            position: record.position,
            data: &record.data,
        }
    }
}

/// The port's stored form of a record: its position, version and JSON as
/// stored, not decoded, so a relay can move an event of a schema version this
/// build does not know. Data that is not UTF-8 is corrupt at its position.
pub fn stored_event(record: StoredRecord<'_>) -> Result<StoredEvent, KurrentDbError> {
    let position = port_position(record.stream, record.revision, record.position)?;
    let payload = std::str::from_utf8(record.data).map_err(|error| KurrentDbError::Corrupt {
        position,
        source: wallet_domain::EventDecodeError::Json(utf8_error(error)),
    })?;
    Ok(StoredEvent {
        position,
        stream_version: stream_version(record.revision),
        payload: payload.to_owned(),
    })
}

/// The port's event of a stored record, decoded by this build.
pub fn recorded_event(record: StoredRecord<'_>) -> Result<RecordedEvent, KurrentDbError> {
    let stored = stored_event(record)?;
    let event =
        WalletEvent::from_json(&stored.payload).map_err(|source| KurrentDbError::Corrupt {
            position: stored.position,
            source,
        })?;
    Ok(RecordedEvent {
        position: stored.position,
        stream_version: stored.stream_version,
        event,
    })
}

/// Invalid UTF-8 said as the JSON error it is to the decoder.
fn utf8_error(error: std::str::Utf8Error) -> serde_json::Error {
    serde::de::Error::custom(format!("event data is not UTF-8: {error}"))
}

/// The events of a forward `$all` read from `read_all_start(after)`: those
/// strictly after `after`, at most `limit`.
pub fn strictly_after(
    events: impl IntoIterator<Item = StoredEvent>,
    after: u64,
    limit: usize,
) -> Vec<StoredEvent> {
    events
        .into_iter()
        .filter(|event| event.position > after)
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;
    use uuid::Uuid;
    use wallet_domain::{
        decide, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletState,
    };

    use super::*;

    fn creation() -> WalletEvent {
        let command = Command {
            wallet_id: WalletId::parse("w-1").expect("wallet id"),
            kind: CommandKind::Create {
                owner_id: OwnerId::parse("owner").expect("owner id"),
                initial_balance: Balance::opening("initialBalance", Decimal::new(10_01, 2))
                    .expect("balance"),
                overdraft_limit: Balance::ZERO,
            },
            event_id: Uuid::new_v4(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        decide(&WalletState::default(), &command)
            .expect("decide")
            .remove(0)
    }

    fn at(position: u64) -> Position {
        Position {
            commit: position,
            prepare: position,
        }
    }

    #[test]
    fn default_and_namespaced_stream_names() {
        let wallet = WalletId::parse("wallet-123").expect("wallet id");
        let names = StreamNames::default();
        assert_eq!(names.wallet_stream(&wallet), "wallet-wallet-123");
        assert_eq!(names.idempotency_stream("k 1"), "idempotency-k 1");
        assert_eq!(names.wallet_prefix(), "wallet-");
        let test = StreamNames::namespaced("t42");
        assert_eq!(test.wallet_stream(&wallet), "t42-wallet-wallet-123");
        assert_eq!(test.idempotency_stream("k"), "t42-idempotency-k");
        assert_eq!(test.snapshot_stream(&wallet), "t42-snapshot-wallet-123");
        assert!(
            !names
                .snapshot_stream(&wallet)
                .starts_with(names.wallet_prefix()),
            "snapshot streams stay out of the wallet filter"
        );
        assert!(
            !test
                .idempotency_stream("k")
                .starts_with(test.wallet_prefix()),
            "idempotency streams stay out of the wallet filter"
        );
    }

    #[test]
    #[should_panic(expected = "system prefix")]
    fn a_system_namespace_is_a_programming_error() {
        let _ = StreamNames::namespaced("$ce");
    }

    #[test]
    fn an_implicitly_committed_position_is_its_log_position() {
        assert_eq!(port_position("s", 0, at(4_242)).ok(), Some(4_242));
    }

    #[test]
    fn positions_without_a_commit_use_the_prepare_position() {
        let position = Position {
            commit: u64::MAX,
            prepare: 77,
        };
        assert_eq!(port_position("s", 3, position).ok(), Some(77));
    }

    #[test]
    fn positions_that_cannot_be_one_number_are_refused() {
        let split = Position {
            commit: 100,
            prepare: 90,
        };
        assert!(matches!(
            port_position("s", 0, split),
            Err(KurrentDbError::PositionNotImplicitlyCommitted {
                commit: 100,
                prepare: 90
            })
        ));
        assert!(matches!(
            port_position("s", 5, Position::end()),
            Err(KurrentDbError::PositionUnknown { revision: 5, .. })
        ));
    }

    #[test]
    fn reads_start_where_the_port_asks() {
        assert_eq!(read_all_start(0), StreamPosition::Start);
        assert_eq!(read_all_start(9), StreamPosition::Position(at(9)));
        assert_eq!(read_stream_start(0), StreamPosition::Start);
        assert_eq!(read_stream_start(2), StreamPosition::Position(2));
        assert_eq!(stream_version(0), 1);
    }

    #[test]
    fn an_append_is_at_its_last_record() {
        assert_eq!(append_position(at(300)), 300);
        let split = Position {
            commit: 100,
            prepare: 300,
        };
        assert_eq!(append_position(split), 300);
        assert_eq!(append_position(Position::start()), 0);
    }

    #[test]
    fn an_event_round_trips_through_a_record() {
        let event = creation();
        let data = event.to_json().expect("encode");
        let record = StoredRecord {
            stream: "wallet-w-1",
            revision: 0,
            position: at(1_000),
            data: data.as_bytes(),
        };
        let recorded = recorded_event(record).expect("decode");
        assert_eq!(recorded.position, 1_000);
        assert_eq!(recorded.stream_version, 1);
        assert_eq!(recorded.event, event);
        // The record to append builds, with the event's type and id.
        assert!(event_data(&event).is_ok());
    }

    #[test]
    fn undecodable_records_are_corrupt_at_their_position() {
        for data in [&b"{\"not\":\"an event\"}"[..], &[0xff, 0xfe][..]] {
            let record = StoredRecord {
                stream: "wallet-w-1",
                revision: 3,
                position: at(55),
                data,
            };
            assert!(matches!(
                recorded_event(record),
                Err(KurrentDbError::Corrupt { position: 55, .. })
            ));
        }
    }

    #[test]
    fn system_events_are_recognised() {
        assert!(is_system_event("$streamDeleted"));
        assert!(!is_system_event("WalletCreated"));
    }

    #[test]
    fn a_record_of_a_schema_version_this_build_does_not_know_is_moved_as_stored() {
        let data = r#"{"type":"WalletTeleported","schemaVersion":2,"eventId":"0195f3c2-0000-7000-8000-000000000001","walletId":"w-1"}"#;
        let record = StoredRecord {
            stream: "wallet-w-1",
            revision: 6,
            position: at(700),
            data: data.as_bytes(),
        };
        let stored = stored_event(record).expect("stored as it is");
        assert_eq!((stored.position, stored.stream_version), (700, 7));
        assert_eq!(stored.payload, data);
        assert_eq!(stored.header().expect("header").schema_version, 2);
        assert!(matches!(
            recorded_event(record),
            Err(KurrentDbError::Corrupt { position: 700, .. })
        ));
    }

    #[test]
    fn a_read_from_a_position_keeps_what_is_strictly_after_it() {
        let payload = creation().to_json().expect("encode");
        let at_position = |position| StoredEvent {
            position,
            stream_version: 1,
            payload: payload.clone(),
        };
        let read = vec![
            at_position(10),
            at_position(20),
            at_position(30),
            at_position(40),
        ];
        let kept: Vec<u64> = strictly_after(read.clone(), 10, 2)
            .iter()
            .map(|event| event.position)
            .collect();
        assert_eq!(kept, vec![20, 30]);
        assert!(strictly_after(read, 10, 0).is_empty());
    }
}
