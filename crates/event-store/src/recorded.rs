use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;
use wallet_domain::{EventDecodeError, WalletEvent};

use crate::StoreError;

/// An event as stored: its global position and its version in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream_version: u64,
    pub event: WalletEvent,
}

impl RecordedEvent {
    /// The envelope published on the bus: position and version beside the event.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let envelope = json!({
            "position": self.position,
            "streamVersion": self.stream_version,
            "event": self.event.to_json_value()?,
        });
        serde_json::to_string(&envelope)
    }

    pub fn from_json(text: &str) -> Result<Self, EventDecodeError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Envelope {
            position: u64,
            stream_version: u64,
            event: Box<serde_json::value::RawValue>,
        }
        let envelope: Envelope = serde_json::from_str(text)?;
        Ok(Self {
            position: envelope.position,
            stream_version: envelope.stream_version,
            event: WalletEvent::from_json(envelope.event.get())?,
        })
    }
}

/// An event as the store holds it, not decoded: its global position, its
/// version in its stream and its JSON (`WalletEvent::to_json` of the
/// version that wrote it) exactly as stored.
///
/// What a relay moves: it reads only the [`EventHeader`] every schema
/// version keeps, so an event of a schema version this build cannot decode
/// (written by a newer build during a rolling upgrade) is carried like any
/// other, and its readers decide what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: u64,
    pub stream_version: u64,
    /// The event's JSON as stored.
    pub payload: String,
}

/// The fields every schema version of an event keeps: what routes it (the
/// bus's key and headers) without decoding it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventHeader {
    /// The event's type name (`TransferSent`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u16,
    pub event_id: Uuid,
    /// The wallet whose stream holds it, as stored (not checked).
    pub wallet_id: String,
}

/// The bus's envelope around a stored event, its JSON carried as it is.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredEnvelope<'a> {
    position: u64,
    stream_version: u64,
    event: &'a RawValue,
}

impl StoredEvent {
    /// The stored form of a decoded event (for stores whose reads decode).
    ///
    /// # Errors
    /// When the event cannot be encoded.
    pub fn from_recorded(recorded: &RecordedEvent) -> Result<Self, serde_json::Error> {
        Ok(Self {
            position: recorded.position,
            stream_version: recorded.stream_version,
            payload: recorded.event.to_json()?,
        })
    }

    /// The envelope fields of the payload, without decoding the rest.
    ///
    /// # Errors
    /// When the payload is not a JSON object holding them.
    pub fn header(&self) -> Result<EventHeader, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The event decoded by this build.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when this build cannot decode it (bad JSON, an
    /// unknown type or schema version).
    pub fn decode(&self) -> Result<RecordedEvent, StoreError> {
        let event =
            WalletEvent::from_json(&self.payload).map_err(|source| StoreError::Corrupt {
                position: self.position,
                source,
            })?;
        Ok(RecordedEvent {
            position: self.position,
            stream_version: self.stream_version,
            event,
        })
    }

    /// The envelope published on the bus, the same shape as
    /// [`RecordedEvent::to_json`] (which [`RecordedEvent::from_json`] reads),
    /// with the payload's bytes inside it unchanged.
    ///
    /// # Errors
    /// When the payload is not JSON.
    pub fn to_envelope_json(&self) -> Result<String, serde_json::Error> {
        let event: &RawValue = serde_json::from_str(&self.payload)?;
        serde_json::to_string(&StoredEnvelope {
            position: self.position,
            stream_version: self.stream_version,
            event,
        })
    }
}
