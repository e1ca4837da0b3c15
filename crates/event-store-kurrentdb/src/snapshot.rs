//! Wallet snapshots on KurrentDB: the stream `snapshot-<wallet id>` (see
//! [`StreamNames::snapshot_stream`]) holds the newest snapshot as its last
//! event, so a load reads one event backwards from the end and then the
//! wallet stream from the snapshot's version on, never the whole stream.
//!
//! The stream's `$maxCount` is [`SNAPSHOTS_KEPT`], set before its first
//! snapshot is appended (so a crash between the two leaves no stream without
//! it), and the server scavenges older snapshots. A snapshot is only ever
//! appended after the newest one, at the revision read (two writers racing:
//! the loser's append fails its expected revision and is dropped, as a
//! snapshot is a cache); one at a lower version is not written. A snapshot
//! over one its writer found unusable ([`SnapshotReplace::Unusable`]) is
//! appended whatever the stream holds, without reading it: the newest record
//! may not decode, or may claim a version past the wallet's head.
//! Snapshot streams are outside the wallet prefix, so the relay never sees
//! them.

use chrono::{DateTime, Utc};
use kurrentdb::{
    AppendToStreamOptions, Client, EventData, ReadStreamOptions, StreamMetadata, StreamPosition,
    StreamState,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wallet_domain::WalletId;

use event_store::{SnapshotReplace, StreamSnapshot};

use crate::store::deadline;
use crate::{KurrentDbError, StreamNames};

/// Snapshots a snapshot stream keeps (older ones are scavenged): the newest
/// and the one before it, for a reader that read the stream while a newer
/// one was written.
pub const SNAPSHOTS_KEPT: u64 = 2;

/// The event type of a snapshot record.
pub const SNAPSHOT_EVENT_TYPE: &str = "WalletSnapshot";

/// A snapshot as stored: the port's [`StreamSnapshot`] without its wallet id
/// (the stream names it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotRecord {
    version: u64,
    last_event_id: Uuid,
    /// Absent from a record written before it was kept.
    #[serde(default)]
    occurred_at: Option<DateTime<Utc>>,
    state: String,
}

/// The newest snapshot of `wallet_id` with its revision in the snapshot
/// stream; `None` when none was written.
pub(crate) async fn newest(
    client: &Client,
    names: &StreamNames,
    wallet_id: &WalletId,
) -> Result<Option<(u64, StreamSnapshot)>, KurrentDbError> {
    let stream = names.snapshot_stream(wallet_id);
    let options = ReadStreamOptions::default()
        .position(StreamPosition::End)
        .backwards()
        .max_count(1)
        .requires_leader(true)
        .deadline(deadline());
    let mut read = client.read_stream(stream.as_str(), &options).await?;
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                let event = resolved.get_original_event();
                if event.event_type != SNAPSHOT_EVENT_TYPE {
                    continue;
                }
                let record: SnapshotRecord =
                    event
                        .as_json()
                        .map_err(|source| KurrentDbError::MalformedSnapshot {
                            stream: stream.clone(),
                            source,
                        })?;
                return Ok(Some((
                    event.revision,
                    StreamSnapshot {
                        wallet_id: wallet_id.clone(),
                        version: record.version,
                        last_event_id: record.last_event_id,
                        occurred_at: record.occurred_at,
                        state: record.state,
                    },
                )));
            }
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(None),
            Err(error) => return Err(error.into()),
        }
    }
}

/// Appends `snapshot` after the newest one unless `replace` keeps that one
/// (it is at a later version). A writer that lost a race to another is not
/// an error.
pub(crate) async fn save(
    client: &Client,
    names: &StreamNames,
    snapshot: StreamSnapshot,
    replace: SnapshotReplace,
) -> Result<(), KurrentDbError> {
    let stream = names.snapshot_stream(&snapshot.wallet_id);
    let expected = match replace {
        SnapshotReplace::Unusable { .. } => {
            set_max_count(client, &stream).await?;
            StreamState::Any
        }
        SnapshotReplace::OlderOrSame => match newest(client, names, &snapshot.wallet_id).await? {
            Some((_, stored)) if stored.version > snapshot.version => return Ok(()),
            Some((revision, _)) => StreamState::StreamRevision(revision),
            None => {
                set_max_count(client, &stream).await?;
                StreamState::NoStream
            }
        },
    };
    let record = SnapshotRecord {
        version: snapshot.version,
        last_event_id: snapshot.last_event_id,
        occurred_at: snapshot.occurred_at,
        state: snapshot.state,
    };
    let event = EventData::json(SNAPSHOT_EVENT_TYPE, &record)
        .map_err(|source| KurrentDbError::MalformedSnapshot {
            stream: stream.clone(),
            source,
        })?
        .id(Uuid::new_v4());
    let options = AppendToStreamOptions::default()
        .stream_state(expected)
        .deadline(deadline());
    match client
        .append_to_stream(stream.as_str(), &options, event)
        .await
    {
        Ok(_) | Err(kurrentdb::Error::WrongExpectedVersion { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Sets the snapshot stream's `$maxCount` to [`SNAPSHOTS_KEPT`] (again, when
/// it was set: the same metadata).
async fn set_max_count(client: &Client, stream: &str) -> Result<(), KurrentDbError> {
    let metadata = StreamMetadata::builder().max_count(SNAPSHOTS_KEPT).build();
    let options = AppendToStreamOptions::default().deadline(deadline());
    client
        .set_stream_metadata(stream, &options, &metadata)
        .await?;
    Ok(())
}
