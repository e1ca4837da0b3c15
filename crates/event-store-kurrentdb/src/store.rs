//! [`KurrentDbEventStore`]: the port's operations as KurrentDB calls.
//!
//! # Transfers: one stream per append, so a process
//! A transfer moves money between two wallet streams, all or nothing. This
//! adapter appends one stream at a time ([`EventStore::appends_streams_atomically`]
//! is false) and still refuses an append to more than one stream with
//! [`KurrentDbError::MultiStreamAppendUnsupported`], writing nothing: writing
//! the two streams one after the other here would lose a half to a crash
//! between them.
//!
//! 1. **Not used: the atomic multi-stream append.** KurrentDB 25.1+ appends
//!    to several streams atomically (`MultiStreamAppend` of the v2 streams
//!    protocol), each with its expected revision. The Rust client 1.2 does not
//!    expose it. When a 1.x release does, `append` can send every
//!    `StreamAppend` in one such request (a per-stream revision failure
//!    becoming `VersionConflict` of that wallet), answer true to
//!    `appends_streams_atomically`, and need a 25.1 server; an older server
//!    (the client's `UnsupportedFeature`) must then stay a refusal, never a
//!    fallback to stream-by-stream writes.
//! 2. **Built: the transfer process** (crate `transfer-process`). command-api
//!    sees `appends_streams_atomically() == false` and runs each transfer as
//!    single-stream appends: the intent in the journal stream `transfer-<id>`
//!    ([`crate::KurrentDbTransferJournal`]), `TransferSent` on the payer,
//!    `TransferReceived` on the payee (or `TransferReversed` on the payer when
//!    the payee refuses), the end with its reply in the journal. Wallet events
//!    carry ids derived from the transfer id and are appended after the
//!    wallet's stream was searched for them, at the revision read, so a step
//!    replayed after a crash is never applied twice; start-up finishes every
//!    transfer left open. The request is answered when the transfer has ended.
//!
//! # The relay: a catch-up subscription, from the sink's checkpoint
//! [`EventStore::subscribe_all`] is a catch-up subscription to `$all`,
//! filtered on the wallet prefix on the server, from the relay's checkpoint
//! (see the `subscription` module). `event-relay` uses it in place of polling:
//! events arrive as they are stored (polling would see other processes'
//! appends only every poll interval, as `appended()` sees only this one's),
//! in batches of at most the relay's batch size, and the sink's checkpoint
//! (PostgreSQL for outbox-relay) is still stored only after the sink took a
//! batch. The subscription is pulled, not pushed into a buffer: a slow sink
//! stops the relay pulling, and HTTP/2 flow control stops the server. After
//! any error the relay drops the subscription, pauses and subscribes again
//! from the sink's checkpoint, so it resumes exactly there, also after a crash
//! or a lost leadership. The subscription requires the leader, as `read_all`
//! does, so it sees only committed records in log order. `read_all` stays for
//! bounded reads (`relay_once`, `drain`, the contract tests).
//!
//! What is tested where: the relay's side (batches, linger, back-pressure,
//! resubscription from the checkpoint, shutdown) in `event-relay`'s tests on
//! an in-process feed; here, without a server, that non-event messages carry
//! nothing and that a feed which cannot subscribe yields its error and ends.
//! The subscription against a real server is
//! `integration-tests/tests/kurrentdb_subscription.rs`, which runs only when
//! `KURRENTDB_URL` is set and has not run on this project's machines (no
//! KurrentDB server can be installed there).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_store::{
    AppendError, AppendOutcome, AppendRequest, DueHold, EventFeed, EventStore, HoldSchedule,
    IdempotentResponse, RecordedEvent, SnapshotReplace, StoreError, StoredEvent, StreamAppend,
    StreamSnapshot, READ_ALL_BATCH_MAX,
};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStream,
    ReadStreamOptions, StreamPosition, SubscribeToAllOptions, SubscriptionFilter,
};
use tokio::sync::watch;
use wallet_domain::{HoldId, WalletId};

use crate::error::{append_error, expected_state, is_wrong_expected_version};
use crate::holds::{claimed_slots, wallet_placing, HOLD_CLAIM_EVENT_TYPE};
use crate::idempotency::{
    decide_reservation, response_in, response_metadata, slot_of, Reservation, Slot, SlotState,
    RESERVATIONS_MAX, RESERVATION_EVENT_TYPE, RESERVE_ATTEMPTS_MAX,
};
use crate::mapping::{
    append_position, event_data, is_system_event, read_all_start, read_stream_start,
    recorded_event, stored_event, strictly_after, StoredRecord,
};
use crate::snapshot;
use crate::subscription::wallet_feed;
use crate::{KurrentDbError, KurrentDbTransferJournal, StreamNames};

/// Bound on one call to KurrentDB (an append, or one whole read).
pub const OPERATION_DEADLINE_MS: u64 = 10_000;

pub struct KurrentDbEventStore {
    client: Client,
    names: StreamNames,
    head: watch::Sender<u64>,
    /// The due holds, folded from the wallet log (see [`crate::holds`]).
    schedule: tokio::sync::Mutex<HoldSchedule>,
}

/// What a pointer stream claims for a wallet append: an idempotency key's
/// response slot, or a hold id's `HoldPlaced` (see [`crate::idempotency`]
/// and [`crate::holds`]).
#[derive(Clone, Copy)]
enum Claim<'a> {
    Key(&'a str),
    Hold(&'a HoldId),
}

/// What a claimed slot's event answers.
enum Answer {
    Response(IdempotentResponse),
    Wallet(WalletId),
}

impl Claim<'_> {
    fn stream(self, names: &StreamNames) -> String {
        match self {
            Claim::Key(key) => names.idempotency_stream(key),
            Claim::Hold(hold_id) => names.hold_stream(hold_id),
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            Claim::Key(_) => RESERVATION_EVENT_TYPE,
            Claim::Hold(_) => HOLD_CLAIM_EVENT_TYPE,
        }
    }

    /// How errors name it.
    fn label(self) -> String {
        match self {
            Claim::Key(key) => format!("idempotency key {key:?}"),
            Claim::Hold(hold_id) => format!("hold id {:?}", hold_id.as_str()),
        }
    }

    fn taken(self) -> AppendError {
        match self {
            Claim::Key(key) => AppendError::IdempotencyKeyTaken(key.to_owned()),
            Claim::Hold(hold_id) => AppendError::HoldIdTaken(hold_id.clone()),
        }
    }

    /// What the event at a claimed slot answers: the key's response when
    /// it carries it, the hold's wallet when it places the hold.
    fn answer(self, record: &kurrentdb::RecordedEvent) -> Result<Option<Answer>, KurrentDbError> {
        Ok(match self {
            Claim::Key(key) => response_in(key, &record.custom_metadata)?.map(Answer::Response),
            Claim::Hold(hold_id) => {
                let recorded = recorded_event(StoredRecord::from(record))?;
                wallet_placing(hold_id, &recorded.event).map(Answer::Wallet)
            }
        })
    }
}

impl KurrentDbEventStore {
    /// Connects to the KurrentDB of `url` (a `kurrentdb://` or `esdb://`
    /// connection string, e.g. `kurrentdb://127.0.0.1:2113?tls=false`) with
    /// the default stream names (`wallet-<id>`, `idempotency-<key>`), and
    /// reads the head of the wallet log, so a wrong URL fails here.
    /// Must be called inside a Tokio runtime.
    ///
    /// Errors: [`KurrentDbError::InvalidUrl`], [`KurrentDbError::ClientInit`],
    /// and [`KurrentDbError::Client`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, KurrentDbError> {
        Self::connect_with_names(url, StreamNames::default()).await
    }

    /// [`Self::connect`] with other stream names (one namespace per tenant or test).
    pub async fn connect_with_names(url: &str, names: StreamNames) -> Result<Self, KurrentDbError> {
        let settings: ClientSettings = url.parse()?;
        let client =
            Client::new(settings).map_err(|error| KurrentDbError::ClientInit(error.to_string()))?;
        let mut store = Self {
            client,
            names,
            head: watch::Sender::new(0),
            schedule: tokio::sync::Mutex::new(HoldSchedule::default()),
        };
        let head = store.read_head().await?;
        store.head = watch::Sender::new(head);
        Ok(store)
    }

    fn wallet_filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(self.names.wallet_prefix())
    }

    /// The transfer journal on this store's server, with its stream names.
    pub fn transfer_journal(&self) -> KurrentDbTransferJournal {
        KurrentDbTransferJournal::new(self.client.clone(), self.names.clone())
    }

    async fn read_head(&self) -> Result<u64, KurrentDbError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .filter(self.wallet_filter())
            .max_count(1)
            .requires_leader(true)
            .deadline(deadline());
        let mut read = self.client.read_all(&options).await?;
        let events = collect(&mut read, 1).await?;
        Ok(events.last().map_or(0, |event| event.position))
    }

    async fn append_one(
        &self,
        stream: &StreamAppend,
        response: Option<&IdempotentResponse>,
    ) -> Result<AppendOutcome, AppendError> {
        let mut events = stream
            .events
            .iter()
            .map(event_data)
            .collect::<Result<Vec<EventData>, KurrentDbError>>()?;
        if let Some(response) = response {
            // The response rides on the slot: the append's first event.
            let (Some(first), Some(first_event)) = (events.first_mut(), stream.events.first())
            else {
                return Err(KurrentDbError::IdempotentResponseWithoutEvents.into());
            };
            let carried = first
                .clone()
                .metadata_as_json(&response_metadata(response))
                .map_err(|source| KurrentDbError::Encode {
                    event_id: first_event.event_id,
                    source,
                })?;
            *first = carried;
        }
        let options = AppendToStreamOptions::default()
            .stream_state(expected_state(stream.expected_version))
            .deadline(deadline());
        let name = self.names.wallet_stream(&stream.wallet_id);
        let written = self
            .client
            .append_to_stream(name, &options, events)
            .await
            .map_err(|error| append_error(&stream.wallet_id, stream.expected_version, error))?;
        let last_position = append_position(written.position);
        self.head.send_if_modified(|head| {
            let advanced = last_position > *head;
            if advanced {
                *head = last_position;
            }
            advanced
        });
        Ok(AppendOutcome { last_position })
    }

    /// The claim's pointers in order, with the pointer stream's last revision.
    async fn reservations(
        &self,
        claim: Claim<'_>,
    ) -> Result<(Vec<Slot>, Option<u64>), KurrentDbError> {
        let stream = claim.stream(&self.names);
        let label = claim.label();
        let records = read_records(
            &self.client,
            &stream,
            StreamPosition::Start,
            RESERVATIONS_MAX + 1,
            |record| Ok((record.revision, slot_of(&label, &record.data)?)),
        )
        .await?;
        if records.len() > RESERVATIONS_MAX {
            return Err(KurrentDbError::TooManyReservations {
                claim: label,
                limit: RESERVATIONS_MAX,
            });
        }
        let last_revision = records.last().map(|(revision, _)| *revision);
        Ok((
            records.into_iter().map(|(_, slot)| slot).collect(),
            last_revision,
        ))
    }

    async fn slot_state(
        &self,
        claim: Claim<'_>,
        slot: &Slot,
    ) -> Result<SlotState<Answer>, KurrentDbError> {
        let Some(revision) = slot.version.checked_sub(1) else {
            return Ok(SlotState::Empty);
        };
        let found = read_records(
            &self.client,
            &slot.stream,
            StreamPosition::Position(revision),
            1,
            |record| {
                if record.revision != revision {
                    return Ok(None);
                }
                Ok(Some(claim.answer(record)?))
            },
        )
        .await?;
        Ok(match found.into_iter().flatten().next() {
            Some(answer) => SlotState::Filled(answer),
            None => SlotState::Empty,
        })
    }

    async fn pointer_states(
        &self,
        claim: Claim<'_>,
        slots: Vec<Slot>,
    ) -> Result<Vec<(Slot, SlotState<Answer>)>, KurrentDbError> {
        let mut states = Vec::with_capacity(slots.len());
        for slot in slots {
            let state = self.slot_state(claim, &slot).await?;
            states.push((slot, state));
        }
        Ok(states)
    }

    /// The first answer of the claim's pointers (a slot whose event
    /// certifies it), or `None`.
    async fn answer(&self, claim: Claim<'_>) -> Result<Option<Answer>, KurrentDbError> {
        let (slots, _) = self.reservations(claim).await?;
        for slot in slots {
            if let SlotState::Filled(Some(answer)) = self.slot_state(claim, &slot).await? {
                return Ok(Some(answer));
            }
        }
        Ok(None)
    }

    /// Records `mine` as the slot of `claim` (see [`crate::idempotency`]),
    /// or refuses it: [`AppendError::IdempotencyKeyTaken`] for a key,
    /// [`AppendError::HoldIdTaken`] for a hold id.
    async fn reserve(&self, claim: Claim<'_>, mine: Slot) -> Result<(), AppendError> {
        for _ in 0..RESERVE_ATTEMPTS_MAX {
            let (slots, last_revision) = self.reservations(claim).await?;
            let pointers = self.pointer_states(claim, slots).await?;
            let expected = match decide_reservation(&pointers, &mine, last_revision) {
                Reservation::Taken => return Err(claim.taken()),
                Reservation::Reuse => return Ok(()),
                Reservation::Add(expected) => expected,
            };
            let pointer = EventData::json(claim.event_type(), &mine)
                .map_err(|source| KurrentDbError::Encode {
                    event_id: uuid::Uuid::nil(),
                    source,
                })?
                .id(uuid::Uuid::new_v4());
            let options = AppendToStreamOptions::default()
                .stream_state(expected)
                .deadline(deadline());
            match self
                .client
                .append_to_stream(claim.stream(&self.names), &options, pointer)
                .await
            {
                Ok(_) => return Ok(()),
                // Another writer of this claim added a pointer: look again.
                Err(error) if is_wrong_expected_version(&error) => continue,
                Err(error) => return Err(KurrentDbError::Client(error).into()),
            }
        }
        Err(KurrentDbError::ReservationContended {
            claim: claim.label(),
            attempts: RESERVE_ATTEMPTS_MAX,
        }
        .into())
    }
}

/// Bound of one call, given to every request.
pub(crate) fn deadline() -> Duration {
    Duration::from_millis(OPERATION_DEADLINE_MS)
}

/// Events of `stream` from `start`, at most `limit`, decoded by `decode`;
/// a stream that does not exist has none.
pub(crate) async fn read_records<T>(
    client: &Client,
    stream: &str,
    start: StreamPosition<u64>,
    limit: usize,
    mut decode: impl FnMut(&kurrentdb::RecordedEvent) -> Result<T, KurrentDbError>,
) -> Result<Vec<T>, KurrentDbError> {
    let options = ReadStreamOptions::default()
        .position(start)
        .forwards()
        .max_count(limit)
        .requires_leader(true)
        .deadline(deadline());
    let mut read = client.read_stream(stream, &options).await?;
    let mut decoded = Vec::new();
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                let record = resolved.get_original_event();
                if !is_system_event(&record.event_type) {
                    decoded.push(decode(record)?);
                }
            }
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(decoded),
            Err(error) => return Err(error.into()),
        }
    }
}

/// Every wallet event of a read as stored, at most `limit` of them.
async fn collect(read: &mut ReadStream, limit: usize) -> Result<Vec<StoredEvent>, KurrentDbError> {
    let mut events = Vec::new();
    while events.len() < limit {
        let Some(resolved) = read.next().await? else {
            break;
        };
        let record = resolved.get_original_event();
        if is_system_event(&record.event_type) {
            continue;
        }
        events.push(stored_event(StoredRecord::from(record))?);
    }
    Ok(events)
}

#[async_trait]
impl EventStore for KurrentDbEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let [stream] = request.streams.as_slice() else {
            return match request.streams.len() {
                0 if request.idempotent_response.is_some() => {
                    Err(KurrentDbError::IdempotentResponseWithoutEvents.into())
                }
                0 => Ok(AppendOutcome { last_position: 0 }),
                streams => Err(KurrentDbError::MultiStreamAppendUnsupported { streams }.into()),
            };
        };
        if stream.events.is_empty() {
            return match request.idempotent_response {
                Some(_) => Err(KurrentDbError::IdempotentResponseWithoutEvents.into()),
                None => Ok(AppendOutcome { last_position: 0 }),
            };
        }
        let wallet_stream = self.names.wallet_stream(&stream.wallet_id);
        for (hold_id, mine) in claimed_slots(&wallet_stream, stream) {
            self.reserve(Claim::Hold(&hold_id), mine).await?;
        }
        if let Some(response) = &request.idempotent_response {
            let mine = Slot {
                stream: wallet_stream,
                version: stream.expected_version + 1,
            };
            self.reserve(Claim::Key(&response.key), mine).await?;
        }
        self.append_one(stream, request.idempotent_response.as_ref())
            .await
    }

    async fn read_stream(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_until(wallet_id, after_version, u64::MAX)
            .await
    }

    async fn read_stream_until(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
        up_to_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = self.names.wallet_stream(wallet_id);
        let count =
            usize::try_from(up_to_version.saturating_sub(after_version)).unwrap_or(usize::MAX);
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut events = read_records(
            &self.client,
            &stream,
            read_stream_start(after_version),
            count,
            |record| recorded_event(StoredRecord::from(record)),
        )
        .await?;
        events.retain(|recorded| recorded.stream_version <= up_to_version);
        Ok(events)
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_stored(after_position, limit)
            .await?
            .iter()
            .map(StoredEvent::decode)
            .collect()
    }

    /// The wallet log as stored: records are not decoded, so an event of a
    /// schema version this build does not know is read like any other.
    async fn read_all_stored(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(READ_ALL_BATCH_MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One more than asked: the read includes the event at `after_position`.
        let options = ReadAllOptions::default()
            .position(read_all_start(after_position))
            .forwards()
            .filter(self.wallet_filter())
            .max_count(limit + 1)
            .requires_leader(true)
            .deadline(deadline());
        let mut read = self
            .client
            .read_all(&options)
            .await
            .map_err(KurrentDbError::from)?;
        let events = collect(&mut read, limit + 1).await?;
        Ok(strictly_after(events, after_position, limit))
    }

    /// A catch-up subscription to `$all` from `after_position`, wallet
    /// streams only; the event at exactly `after_position` is dropped.
    async fn subscribe_all(&self, after_position: u64) -> Option<EventFeed> {
        // No deadline: a subscription lives until it is dropped. No client
        // retry: the reader resubscribes from its own checkpoint.
        let options = SubscribeToAllOptions::default()
            .position(read_all_start(after_position))
            .filter(self.wallet_filter())
            .requires_leader(true);
        let subscription = self.client.subscribe_to_all(&options).await;
        Some(wallet_feed(subscription, after_position))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.read_head().await?)
    }

    async fn read_snapshot(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        match snapshot::newest(&self.client, &self.names, wallet_id).await {
            Ok(newest) => Ok(newest.map(|(_, snapshot)| snapshot)),
            // Its version is in the record that cannot be read: the reader
            // goes to the stream's first event (see `event_store::read_tail`).
            Err(KurrentDbError::MalformedSnapshot { .. }) => Err(StoreError::CorruptSnapshot {
                wallet_id: wallet_id.clone(),
                version: 0,
            }),
            Err(error) => Err(error.into()),
        }
    }

    async fn save_snapshot(
        &self,
        snapshot: StreamSnapshot,
        replace: SnapshotReplace,
    ) -> Result<(), StoreError> {
        Ok(snapshot::save(&self.client, &self.names, snapshot, replace).await?)
    }

    async fn find_idempotent_response(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        Ok(match self.answer(Claim::Key(key)).await? {
            Some(Answer::Response(response)) => Some(response),
            _ => None,
        })
    }

    /// The wallet whose `HoldPlaced` certifies a claim of the hold id (see
    /// [`crate::holds`]).
    async fn find_hold_wallet(&self, hold_id: &HoldId) -> Result<Option<WalletId>, StoreError> {
        Ok(match self.answer(Claim::Hold(hold_id)).await? {
            Some(Answer::Wallet(wallet_id)) => Some(wallet_id),
            _ => None,
        })
    }

    /// From the wallet log folded in this process's memory, caught up first
    /// (see [`crate::holds`]).
    async fn due_holds(
        &self,
        clock: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueHold>, StoreError> {
        let mut schedule = self.schedule.lock().await;
        schedule.catch_up(self).await?;
        Ok(schedule.due(clock, limit))
    }

    /// One stream per append: a transfer goes through the transfer process.
    fn appends_streams_atomically(&self) -> bool {
        false
    }

    /// Advanced after each append of this process; relays learn of other
    /// processes' appends from [`EventStore::subscribe_all`].
    fn appended(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn kind(&self) -> &'static str {
        "kurrentdb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_that_is_no_connection_string_is_refused() {
        let error = KurrentDbEventStore::connect("postgres://localhost:5432/wallex")
            .await
            .err()
            .expect("not a KurrentDB URL");
        assert!(matches!(error, KurrentDbError::InvalidUrl(_)), "{error:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_at_connect() {
        // Port 1 on the loopback refuses at once; one discovery attempt keeps it short.
        let url = "kurrentdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10";
        let error = KurrentDbEventStore::connect(url)
            .await
            .err()
            .expect("no server there");
        assert!(matches!(error, KurrentDbError::Client(_)), "{error:?}");
        let port: StoreError = error.into();
        assert!(matches!(port, StoreError::Unavailable(_)));
    }
}
