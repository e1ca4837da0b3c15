//! Idempotent responses on KurrentDB, atomic with the events without a
//! multi-stream append.
//!
//! # Where the response lives
//! The response rides in the custom metadata of the **first event** of the
//! wallet append that it answers (the "slot": that event's stream and
//! version). The events and the response are therefore one atomic append to
//! one stream: both are stored or neither, crash or not. The slot's event
//! certifies itself: it says which key it answers.
//!
//! # How a key finds its slot
//! Before the wallet append, the writer records the slot it is about to fill
//! in the key's pointer stream `idempotency-<key>` (a `IdempotencySlotReserved`
//! event). Every event that could carry the key is thus preceded by a pointer
//! to its slot, so `find_idempotent_response` reads the pointers and looks at
//! each slot: the key is taken exactly when some slot's event carries it.
//! A pointer whose wallet append never happened (refused, or the writer
//! crashed) points at a slot that is empty or holds another event: it answers
//! nothing, and "a refused append does not keep its key" holds.
//!
//! # Two writers, one key
//! [`decide_reservation`] lets a new writer through only when no pointer can
//! still become the key's answer anywhere but in the writer's own slot: a
//! pointer to an empty slot elsewhere may belong to a writer still in flight,
//! so the key is reported taken. A retry after a crash targets the same slot
//! (nothing moved the wallet meanwhile) and competes for it; KurrentDB's
//! expected revision lets one of them in. Pointer appends use the pointer
//! stream's expected revision too, so two writers never both believe they
//! added the last pointer.
//!
//! # Cost and limits
//! A keyed append costs two more calls than a plain one (read the pointers,
//! add one); a lookup reads the pointers and one event per pointer. A
//! pointer to a slot *ahead* of its stream (an expected version greater than
//! the stream's, which command-api never sends: versions only grow) stays
//! open until the stream gets there, and holds the key as taken until then.
//! Pointer streams are never deleted; a `$maxAge` on the `idempotency-`
//! streams could expire them once keys are meant to expire.

use event_store::IdempotentResponse;
use kurrentdb::StreamState;
use serde::{Deserialize, Serialize};

use crate::KurrentDbError;

/// Event type of a pointer in `idempotency-<key>`.
pub const RESERVATION_EVENT_TYPE: &str = "IdempotencySlotReserved";
/// Pointers one key may have: each is one attempt that lost its slot (a
/// version conflict), which the command retry bounds well below this.
pub const RESERVATIONS_MAX: usize = 64;
/// Rounds of read-pointers-then-append when another writer of the same key
/// keeps moving the pointer stream.
pub const RESERVE_ATTEMPTS_MAX: usize = 4;

/// The first event of one wallet append: its stream and its port version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slot {
    pub stream: String,
    pub version: u64,
}

/// The idempotent response as it rides in the slot event's custom metadata.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseMetadata {
    idempotency_key: String,
    request_fingerprint: String,
    response_status: u16,
    response_body: String,
}

const KEY_FIELD: &str = "idempotencyKey";

/// The custom metadata to put on the slot's event.
pub fn response_metadata(response: &IdempotentResponse) -> serde_json::Value {
    serde_json::json!({
        KEY_FIELD: response.key,
        "requestFingerprint": response.request_fingerprint,
        "responseStatus": response.status,
        "responseBody": response.body,
    })
}

/// The response to `key` if `metadata` (a slot event's custom metadata)
/// carries it. Metadata of other shapes (none, or another key) answers nothing.
pub fn response_in(
    key: &str,
    metadata: &[u8],
) -> Result<Option<IdempotentResponse>, KurrentDbError> {
    if metadata.is_empty() {
        return Ok(None);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(metadata) else {
        return Ok(None);
    };
    if value.get(KEY_FIELD).and_then(serde_json::Value::as_str) != Some(key) {
        return Ok(None);
    }
    let stored: ResponseMetadata = serde_json::from_value(value).map_err(|error| {
        KurrentDbError::MalformedIdempotencyRecord {
            key: format!("idempotency key {key:?}"),
            reason: error.to_string(),
        }
    })?;
    Ok(Some(IdempotentResponse {
        key: stored.idempotency_key,
        request_fingerprint: stored.request_fingerprint,
        status: stored.response_status,
        body: stored.response_body,
    }))
}

/// A pointer event's slot.
/// `key` names the pointer stream's claim in the error (`idempotency key
/// "k"`, `hold id "h"`).
pub fn slot_of(key: &str, data: &[u8]) -> Result<Slot, KurrentDbError> {
    serde_json::from_slice(data).map_err(|error| KurrentDbError::MalformedIdempotencyRecord {
        key: key.to_owned(),
        reason: error.to_string(),
    })
}

/// What a pointer's slot holds now. `T` is what the slot's event answers:
/// the key's response, or a hold's wallet for a hold id's claim (see
/// [`crate::holds`], which uses the same pointers and decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState<T> {
    /// No event at that version yet.
    Empty,
    /// An event, with what it answers if it is the one the pointer names.
    Filled(Option<T>),
}

/// What a writer of the key (or hold id) does before its wallet append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key answers another append already, or may (a writer in flight).
    Taken,
    /// A pointer to the writer's own slot exists: append, and let the wallet
    /// stream's expected version pick one writer.
    Reuse,
    /// Add a pointer to the writer's slot, with this expected state of the
    /// pointer stream.
    Add(StreamState),
}

/// The decision for a writer about to fill `mine`, given the key's pointers
/// (in order, with their slots' states) and the pointer stream's last revision.
pub fn decide_reservation<T>(
    pointers: &[(Slot, SlotState<T>)],
    mine: &Slot,
    last_revision: Option<u64>,
) -> Reservation {
    let mut reuse = false;
    for (slot, state) in pointers {
        match state {
            SlotState::Filled(Some(_)) => return Reservation::Taken,
            SlotState::Filled(None) => {}
            SlotState::Empty if slot == mine => reuse = true,
            SlotState::Empty => return Reservation::Taken,
        }
    }
    if reuse {
        return Reservation::Reuse;
    }
    Reservation::Add(match last_revision {
        None => StreamState::NoStream,
        Some(revision) => StreamState::StreamRevision(revision),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> IdempotentResponse {
        IdempotentResponse {
            key: "key-1".into(),
            request_fingerprint: "POST /wallets sha256:abc".into(),
            status: 201,
            body: r#"{"id":"w1","balance":100.00}"#.into(),
        }
    }

    fn slot(stream: &str, version: u64) -> Slot {
        Slot {
            stream: stream.into(),
            version,
        }
    }

    #[test]
    fn a_response_round_trips_through_event_metadata() {
        let metadata = serde_json::to_vec(&response_metadata(&response())).expect("encode");
        assert_eq!(
            response_in("key-1", &metadata).expect("decode"),
            Some(response())
        );
        assert_eq!(response_in("key-2", &metadata).expect("decode"), None);
    }

    #[test]
    fn events_without_our_metadata_answer_nothing() {
        assert_eq!(response_in("key-1", b"").expect("empty"), None);
        assert_eq!(response_in("key-1", b"not json").expect("other"), None);
        assert_eq!(
            response_in("key-1", br#"{"$correlationId":"x"}"#).expect("other"),
            None
        );
        assert!(matches!(
            response_in(
                "key-1",
                br#"{"idempotencyKey":"key-1","responseStatus":"x"}"#
            ),
            Err(KurrentDbError::MalformedIdempotencyRecord { .. })
        ));
    }

    #[test]
    fn a_pointer_round_trips() {
        let data = serde_json::to_vec(&slot("wallet-w1", 3)).expect("encode");
        assert_eq!(slot_of("k", &data).expect("decode"), slot("wallet-w1", 3));
        assert!(slot_of("k", b"{}").is_err());
    }

    #[test]
    fn a_fresh_key_adds_the_first_pointer() {
        assert_eq!(
            decide_reservation::<IdempotentResponse>(&[], &slot("wallet-w1", 1), None),
            Reservation::Add(StreamState::NoStream)
        );
    }

    #[test]
    fn a_key_that_answered_an_append_is_taken() {
        let pointers = [(slot("wallet-w1", 1), SlotState::Filled(Some(response())))];
        assert_eq!(
            decide_reservation(&pointers, &slot("wallet-w2", 1), Some(0)),
            Reservation::Taken
        );
    }

    #[test]
    fn pointers_whose_slot_went_to_another_event_are_dead() {
        let pointers: [(Slot, SlotState<IdempotentResponse>); 2] = [
            (slot("wallet-w1", 1), SlotState::Filled(None)),
            (slot("wallet-w1", 2), SlotState::Filled(None)),
        ];
        assert_eq!(
            decide_reservation(&pointers, &slot("wallet-w1", 3), Some(1)),
            Reservation::Add(StreamState::StreamRevision(1))
        );
    }

    #[test]
    fn an_open_pointer_is_shared_only_by_the_same_slot() {
        let pointers: [(Slot, SlotState<IdempotentResponse>); 1] =
            [(slot("wallet-w1", 4), SlotState::Empty)];
        assert_eq!(
            decide_reservation(&pointers, &slot("wallet-w1", 4), Some(0)),
            Reservation::Reuse,
            "a retry after a crash competes for the same slot"
        );
        assert_eq!(
            decide_reservation(&pointers, &slot("wallet-w9", 1), Some(0)),
            Reservation::Taken,
            "another slot could let the key answer twice"
        );
    }
}
