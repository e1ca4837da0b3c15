//! [`KurrentDbTransferJournal`]: the transfer journal on KurrentDB, so the
//! transfer process needs no other server than the event store.
//!
//! Transfer `<id>` is the stream `transfer-<id>`; its record `n` is revision
//! `n - 1`, appended with that expected revision, so the journal's conflicts
//! are KurrentDB's wrong-expected-version answers. Record ids are random:
//! KurrentDB's idempotent-write check (same id, same place) must not make a
//! different record at the same place look stored.
//!
//! # Finding unfinished transfers
//! KurrentDB cannot update an index of open transfers in the same write as a
//! record, so the journal scans `$all`, filtered on the `transfer-` prefix on
//! the server, from a **low-water mark**: a log position before which every
//! transfer has finished. The scan folds intents (open) and ends (closed) in
//! windows of [`SCAN_WINDOW_EVENTS`], then moves the mark to the last record
//! before the oldest transfer still open (or to the end of the scan when none
//! is) and stores it in the stream `transfers-checkpoint` (which keeps its
//! last few marks: `$maxCount`). So each start-up or sweep reads the
//! transfers since the oldest unfinished one, not the whole history. One call
//! reads at most [`SCAN_WINDOWS_MAX`] windows: behind a larger backlog it
//! answers what it found, and the next call (the periodic sweep) goes on from
//! the mark it stored. Two replicas moving the mark at once write two correct
//! marks: a finished transfer never reopens.

use std::collections::HashMap;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, EventData, ReadAllOptions, ReadStreamOptions, StreamMetadata,
    StreamPosition, StreamState, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use transfer_process::{JournalError, JournalRecord, TransferJournal, STREAM_RECORDS_MAX};
use uuid::Uuid;

use crate::error::{expected_state, is_wrong_expected_version};
use crate::mapping::{is_system_event, port_position, read_all_start};
use crate::store::{deadline, read_records};
use crate::{KurrentDbError, StreamNames};

/// Transfer records read from `$all` per window of the scan.
pub const SCAN_WINDOW_EVENTS: usize = 1_000;
/// Windows one call of `unfinished` reads at most; the next call goes on
/// from the mark this one stored.
pub const SCAN_WINDOWS_MAX: usize = 100;
const CHECKPOINT_EVENT_TYPE: &str = "TransferScanCheckpoint";
/// Marks the checkpoint stream keeps (`$maxCount`); only the last is read.
const CHECKPOINTS_KEPT: u64 = 16;

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    /// Every transfer with an intent at or before this position has finished.
    position: u64,
}

pub struct KurrentDbTransferJournal {
    client: Client,
    names: StreamNames,
}

impl From<KurrentDbError> for JournalError {
    fn from(error: KurrentDbError) -> Self {
        match error {
            KurrentDbError::Corrupt { .. } => JournalError::Corrupt(error.to_string()),
            other => JournalError::Unavailable(other.to_string()),
        }
    }
}

fn unavailable(error: kurrentdb::Error) -> JournalError {
    KurrentDbError::Client(error).into()
}

impl KurrentDbTransferJournal {
    /// The journal beside a store of the same `client` and `names`.
    pub fn new(client: Client, names: StreamNames) -> Self {
        Self { client, names }
    }

    async fn checkpoint(&self) -> Result<u64, JournalError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .max_count(1)
            .requires_leader(true)
            .deadline(deadline());
        let mut read = self
            .client
            .read_stream(self.names.transfer_checkpoint_stream(), &options)
            .await
            .map_err(unavailable)?;
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    let record = resolved.get_original_event();
                    if is_system_event(&record.event_type) {
                        continue;
                    }
                    let checkpoint: Checkpoint = serde_json::from_slice(&record.data)
                        .map_err(|error| JournalError::Corrupt(format!("checkpoint: {error}")))?;
                    return Ok(checkpoint.position);
                }
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(0),
                Err(error) => return Err(unavailable(error)),
            }
        }
    }

    async fn store_checkpoint(&self, position: u64) -> Result<(), JournalError> {
        let data = EventData::json(CHECKPOINT_EVENT_TYPE, &Checkpoint { position })
            .map_err(|error| JournalError::Corrupt(error.to_string()))?
            .id(Uuid::new_v4());
        let options = AppendToStreamOptions::default()
            .stream_state(StreamState::Any)
            .deadline(deadline());
        let stream = self.names.transfer_checkpoint_stream();
        let written = self
            .client
            .append_to_stream(stream, &options, data)
            .await
            .map_err(unavailable)?;
        // Only the last mark is ever read: on the stream's first write, let
        // KurrentDB scavenge the older ones.
        if written.next_expected_version == 0 {
            let metadata = StreamMetadata::builder()
                .max_count(CHECKPOINTS_KEPT)
                .build();
            self.client
                .set_stream_metadata(
                    stream,
                    &AppendToStreamOptions::default().deadline(deadline()),
                    &metadata,
                )
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// One window of transfer records strictly after `after`: each as
    /// (position, transfer id, opens or closes).
    async fn window(&self, after: u64) -> Result<Vec<ScannedRecord>, JournalError> {
        let options = ReadAllOptions::default()
            .position(read_all_start(after))
            .forwards()
            .filter(SubscriptionFilter::on_stream_name().add_prefix(self.names.transfer_prefix()))
            // One more: the read includes the record at `after`.
            .max_count(SCAN_WINDOW_EVENTS + 1)
            .requires_leader(true)
            .deadline(deadline());
        let mut read = self.client.read_all(&options).await.map_err(unavailable)?;
        let mut scanned = Vec::new();
        while let Some(resolved) = read.next().await.map_err(unavailable)? {
            let record = resolved.get_original_event();
            if is_system_event(&record.event_type) {
                continue;
            }
            let position = port_position(record.stream_id(), record.revision, record.position)?;
            let Some(transfer_id) = self.names.transfer_of_stream(record.stream_id()) else {
                continue;
            };
            if position <= after {
                continue;
            }
            let opens = JournalRecord::from_json(transfer_id, &record.data)?.opens_or_closes();
            scanned.push(ScannedRecord {
                position,
                transfer_id,
                opens,
            });
        }
        Ok(scanned)
    }
}

/// One transfer record seen by the scan.
#[derive(Debug, Clone, Copy)]
struct ScannedRecord {
    position: u64,
    transfer_id: Uuid,
    opens: Option<bool>,
}

/// The fold of a scan: the transfers open in it, in the order of their
/// intents, and the low-water mark it allows.
#[derive(Debug)]
struct OpenTransfers {
    /// Transfer id → (position of its intent, position of the record before it).
    open: HashMap<Uuid, (u64, u64)>,
    last_position: u64,
}

impl OpenTransfers {
    fn from(mark: u64) -> Self {
        Self {
            open: HashMap::new(),
            last_position: mark,
        }
    }

    fn observe(&mut self, record: ScannedRecord) {
        match record.opens {
            Some(true) => {
                self.open
                    .insert(record.transfer_id, (record.position, self.last_position));
            }
            Some(false) => {
                self.open.remove(&record.transfer_id);
            }
            None => {}
        }
        self.last_position = record.position;
    }

    /// The position before the oldest open intent, or the end of the scan.
    fn mark(&self) -> u64 {
        self.open
            .values()
            .min()
            .map_or(self.last_position, |(_, before)| *before)
    }

    fn oldest_first(&self, limit: usize) -> Vec<Uuid> {
        let mut open: Vec<(u64, Uuid)> = self
            .open
            .iter()
            .map(|(transfer_id, (position, _))| (*position, *transfer_id))
            .collect();
        open.sort_unstable();
        open.into_iter().take(limit).map(|(_, id)| id).collect()
    }
}

#[async_trait]
impl TransferJournal for KurrentDbTransferJournal {
    async fn append(
        &self,
        transfer_id: Uuid,
        expected_records: u64,
        record: &JournalRecord,
        // Kept in the same store as the wallet events, the journal is
        // restored with them: never ahead of the log (see `log_position`).
        _log_position: u64,
    ) -> Result<(), JournalError> {
        let data = EventData::json(record.type_name(), record)
            .map_err(|error| JournalError::Corrupt(error.to_string()))?
            .id(Uuid::new_v4());
        let options = AppendToStreamOptions::default()
            .stream_state(expected_state(expected_records))
            .deadline(deadline());
        match self
            .client
            .append_to_stream(self.names.transfer_stream(transfer_id), &options, data)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_wrong_expected_version(&error) => Err(JournalError::Conflict {
                transfer_id,
                expected: expected_records,
            }),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn read(&self, transfer_id: Uuid) -> Result<Vec<JournalRecord>, JournalError> {
        let records = read_records(
            &self.client,
            &self.names.transfer_stream(transfer_id),
            StreamPosition::Start,
            STREAM_RECORDS_MAX + 1,
            |record| Ok(record.data.clone()),
        )
        .await?;
        JournalRecord::decode_all(transfer_id, &records)
    }

    /// Never: the journal's streams are KurrentDB's, whose health the event
    /// store's report gives.
    fn damage(&self) -> Option<String> {
        None
    }

    /// Always 0: the journal's streams live beside the wallets' in the same
    /// KurrentDB, so a restore brings back both as of the same moment.
    async fn log_position(&self) -> Result<u64, JournalError> {
        Ok(0)
    }

    async fn unfinished(&self, limit: usize) -> Result<Vec<Uuid>, JournalError> {
        let start = self.checkpoint().await?;
        let mut scan = OpenTransfers::from(start);
        for _ in 0..SCAN_WINDOWS_MAX {
            let window = self.window(scan.last_position).await?;
            let full = window.len() >= SCAN_WINDOW_EVENTS;
            window.into_iter().for_each(|record| scan.observe(record));
            if !full || scan.open.len() >= limit {
                break;
            }
        }
        let mark = scan.mark();
        if mark > start {
            self.store_checkpoint(mark).await?;
        }
        Ok(scan.oldest_first(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(position: u64, transfer_id: Uuid, opens: Option<bool>) -> ScannedRecord {
        ScannedRecord {
            position,
            transfer_id,
            opens,
        }
    }

    #[test]
    fn the_mark_stays_before_the_oldest_open_transfer() {
        let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut scan = OpenTransfers::from(100);
        scan.observe(record(110, first, Some(true)));
        scan.observe(record(120, second, Some(true)));
        scan.observe(record(130, first, None));
        scan.observe(record(140, first, Some(false)));
        scan.observe(record(150, third, Some(true)));
        assert_eq!(scan.oldest_first(10), vec![second, third]);
        assert_eq!(scan.oldest_first(1), vec![second]);
        // The record before `second`'s intent: `first`'s, which is finished
        // only later, so the next scan sees `first` close again (harmless).
        assert_eq!(scan.mark(), 110);
        scan.observe(record(160, second, Some(false)));
        assert_eq!(scan.mark(), 140);
        scan.observe(record(170, third, Some(false)));
        assert_eq!(scan.mark(), 170);
    }

    #[test]
    fn a_scan_with_nothing_new_keeps_the_mark() {
        let scan = OpenTransfers::from(42);
        assert_eq!(scan.mark(), 42);
        assert!(scan.oldest_first(10).is_empty());
    }
}
