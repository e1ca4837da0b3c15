//! A wallet's state as one JSON text, so a long stream need not be replayed:
//! a snapshot at version `n` plus the events after `n` fold to the same state
//! as the whole stream (property-tested in `tests/properties.rs`).
//!
//! The encoding is the serde form of [`Wallet`] inside a versioned envelope.
//! A snapshot written under another [`SNAPSHOT_SCHEMA_VERSION`] is not an
//! error but absent ([`decode_snapshot`] answers `Ok(None)`): its reader
//! replays the stream instead and writes a new one, so changing the state's
//! shape only needs the version raised.

use serde::{Deserialize, Serialize};

use crate::wallet::Wallet;

/// Version of the snapshot encoding; raise it when [`Wallet`]'s serde form
/// changes in a way older snapshots cannot be read as.
pub const SNAPSHOT_SCHEMA_VERSION: u16 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotOut<'a> {
    schema_version: u16,
    wallet: &'a Wallet,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotIn {
    schema_version: u16,
    wallet: Box<serde_json::value::RawValue>,
}

/// A stored snapshot that cannot be read back under its own schema version.
#[derive(Debug, thiserror::Error)]
#[error("wallet snapshot cannot be decoded: {0}")]
pub struct SnapshotDecodeError(#[from] serde_json::Error);

/// The snapshot text of `wallet` (money as exact JSON numbers).
pub fn encode_snapshot(wallet: &Wallet) -> Result<String, serde_json::Error> {
    serde_json::to_string(&SnapshotOut {
        schema_version: SNAPSHOT_SCHEMA_VERSION,
        wallet,
    })
}

/// The wallet a snapshot holds; `Ok(None)` when it was written under another
/// schema version (replay instead); an error when it is not a snapshot.
pub fn decode_snapshot(text: &str) -> Result<Option<Wallet>, SnapshotDecodeError> {
    let envelope: SnapshotIn = serde_json::from_str(text)?;
    if envelope.schema_version != SNAPSHOT_SCHEMA_VERSION {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(envelope.wallet.get())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_schema_version_is_absent_and_garbage_is_an_error() {
        let other = r#"{"schemaVersion":999,"wallet":{"whatever":1}}"#;
        assert!(decode_snapshot(other).expect("an envelope").is_none());
        assert!(decode_snapshot("not json").is_err());
        assert!(decode_snapshot(r#"{"schemaVersion":1,"wallet":{"id":"w"}}"#).is_err());
    }
}
