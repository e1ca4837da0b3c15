//! The relay moves events as stored: on the embedded store, an event of a
//! schema version this build cannot decode (written raw, as a newer build
//! would during a rolling upgrade) reaches a sink that moves bytes unchanged,
//! and the events after it keep flowing; a sink that decodes stops at it.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use event_relay::{drain, relay_once};
use event_sink::{DeliveryError, EventSink};
use event_store::{
    AppendRequest, EmbeddedEventStore, EventStore, RecordedEvent, StoredEvent, StreamAppend,
};
use uuid::Uuid;
use wallet_domain::testing::continue_history;
use wallet_domain::{WalletEvent, WalletId};

const BATCH_SIZE_MAX: usize = 2;
const BATCHES_MAX: usize = 10;

/// A sink that keeps what it is handed, as stored (as the Kafka publisher does).
#[derive(Default)]
struct BytesSink {
    taken: Mutex<Vec<StoredEvent>>,
}

#[async_trait]
impl EventSink for BytesSink {
    fn name(&self) -> &'static str {
        "bytes"
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        let taken = self.taken.lock().expect("a test lock is never poisoned");
        Ok(taken.last().map_or(0, |event| event.position))
    }

    async fn deliver(&self, _batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        Err(DeliveryError::transient(
            "bytes",
            "the relay hands stored events",
        ))
    }

    async fn deliver_stored(&self, batch: &[StoredEvent]) -> Result<(), DeliveryError> {
        let mut taken = self.taken.lock().expect("a test lock is never poisoned");
        taken.extend_from_slice(batch);
        Ok(())
    }
}

/// A sink that applies decoded events and keeps no checkpoint of its own.
struct DecodingSink;

#[async_trait]
impl EventSink for DecodingSink {
    fn name(&self) -> &'static str {
        "decoding"
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(0)
    }

    async fn deliver(&self, _batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        Ok(())
    }
}

async fn append(store: &EmbeddedEventStore, events: Vec<WalletEvent>, expected_version: u64) {
    let wallet_id = events[0].wallet_id.clone();
    store
        .append(AppendRequest {
            streams: vec![StreamAppend {
                wallet_id,
                expected_version,
                expected_last_event_id: None,
                events,
            }],
            idempotent_response: None,
        })
        .await
        .expect("append");
}

/// An event of schema version 2, with a field version 1 does not have.
fn newer_event_json(event_id: Uuid) -> String {
    format!(
        r#"{{"type":"WalletCreated","schemaVersion":2,"eventId":"{event_id}","walletId":"w-newer","occurredAt":"2026-11-30T12:00:00Z","amount":"5.00","balanceAfter":"5.00","currency":"EUR","metadata":{{}}}}"#
    )
}

/// Stores `payload` as the next event of the log, as a newer build would.
fn write_raw(data_dir: &Path, event_id: Uuid, payload: &str) {
    let connection = rusqlite::Connection::open(data_dir.join("events.db")).expect("open the log");
    connection
        .execute(
            "INSERT INTO events (event_id, stream_id, version, event_type, payload, recorded_at) \
             VALUES (?1, 'w-newer', 1, 'WalletCreated', ?2, '2026-11-30T12:00:00Z')",
            rusqlite::params![event_id.to_string(), payload],
        )
        .expect("write the newer event");
}

#[tokio::test]
async fn an_event_of_a_newer_schema_version_is_relayed_as_stored_and_later_events_follow() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedEventStore::open(data_dir.path()).expect("open the store");
    let wallet = WalletId::parse("w-1").expect("wallet id");
    let before = continue_history(&wallet, &[], 2);
    append(&store, before.clone(), 0).await;
    let newer_id = Uuid::now_v7();
    let newer = newer_event_json(newer_id);
    write_raw(data_dir.path(), newer_id, &newer);
    append(&store, continue_history(&wallet, &before, 1), 2).await;

    let sink = BytesSink::default();
    let last = drain(&store, &sink, BATCH_SIZE_MAX, BATCHES_MAX)
        .await
        .expect("the relay moves every stored event");

    let taken = sink
        .taken
        .into_inner()
        .expect("a test lock is never poisoned");
    assert_eq!(last, 4);
    assert_eq!(
        taken.iter().map(|event| event.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        taken[2].payload, newer,
        "the newer event's bytes, unchanged"
    );
    let header = taken[2].header().expect("its envelope fields");
    assert_eq!(
        (
            header.schema_version,
            header.event_id,
            header.wallet_id.as_str()
        ),
        (2, newer_id, "w-newer")
    );
    assert!(taken[2].decode().is_err(), "this build cannot decode it");
    let after = taken[3].decode().expect("the event after it decodes");
    assert_eq!((after.event.wallet_id, after.stream_version), (wallet, 3));
}

#[tokio::test]
async fn a_sink_that_decodes_refuses_a_batch_with_an_event_it_cannot_read() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedEventStore::open(data_dir.path()).expect("open the store");
    let newer_id = Uuid::now_v7();
    write_raw(data_dir.path(), newer_id, &newer_event_json(newer_id));

    let refused = relay_once(&store, &DecodingSink, BATCH_SIZE_MAX).await;

    let error = refused
        .expect_err("the batch is refused, not skipped")
        .to_string();
    assert!(error.contains("schema version 2"), "says why: {error}");
}
