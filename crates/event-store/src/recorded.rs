use serde_json::json;
use wallet_domain::{EventDecodeError, WalletEvent};

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
