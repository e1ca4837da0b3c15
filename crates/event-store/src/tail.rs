//! Reading a wallet from its newest snapshot on, so the cost of loading it
//! stays flat however long its stream grows.
//!
//! A reader takes the stored snapshot (if any), checks it against the
//! stream's event at its version (same event id, same balance), and reads
//! only the events after it. A snapshot that disagrees, or cannot be read, is
//! never used: it is logged as an error and the stream is read from its first
//! event, the truth the snapshot only caches (as Axon Framework's event store
//! does with a snapshot it cannot read: it logs and reconstructs the aggregate
//! from its entire stream), so one bad cache row costs reads, not the wallet.
//! That reader then writes a snapshot of what it folded over the unusable
//! one, whatever version the unusable one claims
//! ([`SnapshotReplace::Unusable`]), so it is read past once. Writers keep a
//! snapshot every [`SNAPSHOT_INTERVAL_EVENTS`] events ([`snapshot_due`]),
//! and a reader that folded a tail at least that long writes one too
//! ([`StreamTail::snapshot_to_save`]), so a tail stays under that bound
//! whoever wrote the events. A store that keeps no snapshots (the trait's
//! default) gives the whole stream as the tail.
//!
//! A read as of a moment (a version, or a time) starts the same way from the
//! snapshot nearest before it ([`snapshot_state_as_of`]): the SQL stores keep
//! every snapshot a stream had, so such a read folds at most about one
//! interval of events however far back the moment is. A stream's events
//! never go back in time ([`wallet_domain::decide`]), so the snapshot whose
//! event is the latest at or before a time is the nearest before it.

use uuid::Uuid;
use wallet_domain::{
    continues, decode_snapshot, encode_snapshot, evolve, within_as_of, AsOf, Wallet, WalletId,
    WalletState,
};

use crate::{EventStore, RecordedEvent, SnapshotReplace, StoreError, StreamSnapshot};

/// Events between two snapshots of a stream: the longest tail a load reads.
pub const SNAPSHOT_INTERVAL_EVENTS: u64 = 100;
/// Events one store read of [`fold_stream_as_of`] returns at most: what a
/// wallet read as of an older moment than its newest snapshot holds in
/// memory (about 1 KiB an event), however long the stream. Whole-stream
/// reads held about 60 MB per request on a wallet of 60,000 events
/// (tester h116).
pub const AS_OF_READ_PAGE_EVENTS: u64 = 1_000;

/// Stored snapshots a read as of a moment tries, nearest first, before it
/// folds the stream from its first event: an unusable one (logged) is passed
/// for the one before it, so a damaged row costs one event read, not the
/// history before it (tester h164 F1).
pub const AS_OF_SNAPSHOT_TRIES: usize = 4;

/// A stream as a starting state and the events after it.
#[derive(Debug, Clone, Default)]
pub struct StreamTail {
    /// The snapshot's state, or absent when the tail is the whole stream.
    pub base: WalletState,
    /// The id of the event `base` was folded up to (`None` when absent).
    pub base_last_event_id: Option<Uuid>,
    /// The stream's events after `base`, in version order.
    pub events: Vec<RecordedEvent>,
    /// When the store's newest snapshot of the stream was read past (it
    /// cannot be read, disagrees with its stream, or was written under an
    /// older encoding), the version it claims (0 when that cannot be read):
    /// the tail is the whole stream.
    pub unusable_snapshot_version: Option<u64>,
}

impl StreamTail {
    /// Whether the reader of this tail should store a snapshot of the state
    /// it folds ([`save_snapshot_of`]), and over which stored one: over an
    /// unusable one always, however short the stream, so that it is read
    /// past once and not at every load; otherwise when the tail is
    /// [`SNAPSHOT_INTERVAL_EVENTS`] long or more, over an older one.
    pub fn snapshot_to_save(&self) -> Option<SnapshotReplace> {
        if let Some(version) = self.unusable_snapshot_version {
            Some(SnapshotReplace::Unusable { version })
        } else if u64::try_from(self.events.len()).unwrap_or(u64::MAX) >= SNAPSHOT_INTERVAL_EVENTS {
            Some(SnapshotReplace::OlderOrSame)
        } else {
            None
        }
    }
}

/// What a reader made of a stream's stored snapshot.
enum SnapshotRead {
    /// Usable: its state and the stream's events after it.
    Usable(Box<StreamTail>),
    /// None stored.
    NotUsed,
    /// One stored that is read past, at the version it claims (see
    /// [`StreamTail::unusable_snapshot_version`]).
    Unusable(u64),
}

/// The stream of `wallet_id` from its newest snapshot on, the snapshot checked
/// against the stream's event at its version (the whole stream when it
/// disagrees, cannot be read, or there is none).
pub async fn read_tail(
    store: &dyn EventStore,
    wallet_id: &WalletId,
) -> Result<StreamTail, StoreError> {
    let unusable_snapshot_version = match read_newest_snapshot(store, wallet_id).await? {
        SnapshotRead::Usable(tail) => return Ok(*tail),
        SnapshotRead::NotUsed => None,
        SnapshotRead::Unusable(version) => Some(version),
    };
    Ok(StreamTail {
        events: store.read_stream(wallet_id, 0).await?,
        unusable_snapshot_version,
        ..StreamTail::default()
    })
}

/// The newest stored snapshot of `wallet_id` checked against its stream,
/// with the events after it when it is usable.
async fn read_newest_snapshot(
    store: &dyn EventStore,
    wallet_id: &WalletId,
) -> Result<SnapshotRead, StoreError> {
    let snapshot = match stored(wallet_id, store.read_snapshot(wallet_id).await)? {
        Stored::Found(snapshot) => snapshot,
        Stored::NoneKept => return Ok(SnapshotRead::NotUsed),
        Stored::Unreadable { version } => return Ok(SnapshotRead::Unusable(version)),
    };
    // From the snapshot's own event on: it must be the one the state ends with.
    let mut events = store
        .read_stream_until(wallet_id, snapshot.version.saturating_sub(1), u64::MAX)
        .await?;
    let Some(wallet) = checked(wallet_id, &snapshot, events.first()) else {
        return Ok(SnapshotRead::Unusable(snapshot.version));
    };
    events.remove(0);
    Ok(SnapshotRead::Usable(Box::new(StreamTail {
        base: WalletState::Open(wallet),
        base_last_event_id: Some(snapshot.last_event_id),
        events,
        unusable_snapshot_version: None,
    })))
}

/// Where a read of `wallet_id` as of `as_of` starts folding
/// ([`fold_stream_as_of`]): the state of its stored snapshot nearest before
/// the moment ([`EventStore::read_snapshot_as_of`]; the newest, from a store
/// that keeps no older ones), checked against the stream's event at its
/// version, which for a time must have occurred at or before it; one stream
/// event read a snapshot tried, at most [`AS_OF_SNAPSHOT_TRIES`] of them.
/// [`WalletState::Absent`] when no usable snapshot is that early: the read
/// folds from the first event.
pub async fn snapshot_state_as_of(
    store: &dyn EventStore,
    wallet_id: &WalletId,
    as_of: AsOf,
) -> Result<WalletState, StoreError> {
    let mut wanted = as_of;
    for _ in 0..AS_OF_SNAPSHOT_TRIES {
        let (snapshot, nearest) = match stored(
            wallet_id,
            store.read_snapshot_as_of(wallet_id, wanted).await,
        )? {
            Stored::Found(snapshot) => (snapshot, true),
            Stored::Unreadable { version } if version > 1 => {
                wanted = AsOf::Version(version - 1);
                continue;
            }
            Stored::Unreadable { .. } => break,
            // No older ones kept: the newest, if it is early enough.
            Stored::NoneKept => match stored(wallet_id, store.read_snapshot(wallet_id).await)? {
                Stored::Found(snapshot) => (snapshot, false),
                Stored::NoneKept | Stored::Unreadable { .. } => break,
            },
        };
        if let Some(wallet) = usable_as_of(store, wallet_id, &snapshot, as_of, nearest).await? {
            return Ok(WalletState::Open(wallet));
        }
        if !nearest || snapshot.version <= 1 {
            break;
        }
        wanted = AsOf::Version(snapshot.version - 1);
    }
    Ok(WalletState::Absent)
}

/// The state of `snapshot` of `wallet_id` when it is usable ([`checked`])
/// and not past `as_of`, by the stream's own time; `nearest` when the store
/// gave it as the nearest before the moment, where one past it is a row
/// that disagrees with its stream (logged).
async fn usable_as_of(
    store: &dyn EventStore,
    wallet_id: &WalletId,
    snapshot: &StreamSnapshot,
    as_of: AsOf,
    nearest: bool,
) -> Result<Option<Wallet>, StoreError> {
    if let AsOf::Version(version) = as_of {
        if snapshot.version > version {
            if nearest {
                unusable(
                    wallet_id,
                    snapshot.version,
                    "past the version it was found for",
                );
            }
            return Ok(None);
        }
    }
    let at_version = store
        .read_stream_until(
            wallet_id,
            snapshot.version.saturating_sub(1),
            snapshot.version,
        )
        .await?;
    let Some(wallet) = checked(wallet_id, snapshot, at_version.first()) else {
        return Ok(None);
    };
    let within = at_version
        .first()
        .is_some_and(|recorded| within_as_of(&WalletState::Absent, &recorded.event, as_of));
    if !within && nearest {
        unusable(
            wallet_id,
            snapshot.version,
            "past the time it was found for",
        );
    }
    Ok(within.then_some(wallet))
}

/// A stored snapshot as a store's read gave it.
enum Stored {
    Found(StreamSnapshot),
    NoneKept,
    /// One the store holds but cannot read (logged), at the version it
    /// claims (0 when that cannot be read either).
    Unreadable {
        version: u64,
    },
}

/// What `read`, a store's read of a snapshot of `wallet_id`, found.
fn stored(
    wallet_id: &WalletId,
    read: Result<Option<StreamSnapshot>, StoreError>,
) -> Result<Stored, StoreError> {
    match read {
        Ok(Some(snapshot)) => Ok(Stored::Found(snapshot)),
        Ok(None) => Ok(Stored::NoneKept),
        Err(StoreError::CorruptSnapshot { version, .. }) => {
            unusable(wallet_id, version, "cannot be read");
            Ok(Stored::Unreadable { version })
        }
        Err(error) => Err(error),
    }
}

/// The state `snapshot` holds when it is usable: it decodes, and
/// `at_version`, the stream's event at its version, is the one its state ends
/// with (same version, event id, balance and time). `None` otherwise, logged
/// unless it was written under an older encoding (then replayed, and a new
/// one replaces it).
fn checked(
    wallet_id: &WalletId,
    snapshot: &StreamSnapshot,
    at_version: Option<&RecordedEvent>,
) -> Option<Wallet> {
    let wallet = match decode_snapshot(&snapshot.state) {
        Ok(Some(wallet)) => wallet,
        Ok(None) => return None,
        Err(error) => {
            unusable(wallet_id, snapshot.version, &error.to_string());
            return None;
        }
    };
    let agrees = at_version.is_some_and(|at_version| {
        at_version.stream_version == snapshot.version
            && at_version.event.event_id == snapshot.last_event_id
            && at_version.event.balance_after == wallet.balance
            && snapshot
                .occurred_at
                .is_none_or(|occurred_at| occurred_at == at_version.event.occurred_at)
            && wallet.version == snapshot.version
            && wallet.id == *wallet_id
    });
    if !agrees {
        unusable(wallet_id, snapshot.version, "disagrees with its stream");
        return None;
    }
    Some(wallet)
}

/// `state` after `recorded`, an event of `wallet_id`'s stream, checked to
/// continue it: the next version, and an event that can follow the state
/// ([`wallet_domain::continues`]: its wallet, its balance after, its hold).
/// A stream that does not hold together is never decided on.
///
/// # Errors
/// [`StoreError::BrokenStream`] at the first event that does not continue
/// the state (an edited or damaged log: 503 for an operator).
pub fn evolve_checked(
    wallet_id: &WalletId,
    state: WalletState,
    recorded: &RecordedEvent,
) -> Result<WalletState, StoreError> {
    if recorded.stream_version != state.version() + 1 || !continues(&state, &recorded.event) {
        return Err(StoreError::BrokenStream {
            wallet_id: wallet_id.clone(),
            version: recorded.stream_version,
        });
    }
    Ok(evolve(state, &recorded.event))
}

/// `state` with the events of `wallet_id`'s stream in `events` (the ones
/// after it) that are part of it as of `as_of` ([`within_as_of`], the rule
/// of [`wallet_domain::fold_as_of`]), each checked as [`evolve_checked`]
/// checks it: a read of the past over a stream that does not hold together
/// answered 200 where a read of now answered 503 (tester h135 F2).
///
/// # Errors
/// [`StoreError::BrokenStream`] at the first event folded that does not
/// continue the state.
pub fn fold_as_of_checked(
    wallet_id: &WalletId,
    mut state: WalletState,
    events: &[RecordedEvent],
    as_of: AsOf,
) -> Result<WalletState, StoreError> {
    for recorded in events {
        if !within_as_of(&state, &recorded.event, as_of) {
            break;
        }
        state = evolve_checked(wallet_id, state, recorded)?;
    }
    Ok(state)
}

/// The stream of `wallet_id` folded from `base` (its state at a version,
/// [`snapshot_state_as_of`], or [`WalletState::Absent`] for its first
/// event) up to `as_of` ([`fold_as_of_checked`]) and to `up_to_version` at
/// most, read `page_events` events at a time (at least one;
/// [`AS_OF_READ_PAGE_EVENTS`] outside tests), the first read no longer than
/// [`SNAPSHOT_INTERVAL_EVENTS`] (from the snapshot nearest before the moment,
/// the moment is within it), and no further than the fold goes: what it
/// holds in memory is one page, however long the stream.
pub async fn fold_stream_as_of(
    store: &dyn EventStore,
    wallet_id: &WalletId,
    base: WalletState,
    up_to_version: u64,
    as_of: AsOf,
    page_events: u64,
) -> Result<WalletState, StoreError> {
    let page_events = page_events.max(1);
    let mut read_events = page_events.min(SNAPSHOT_INTERVAL_EVENTS);
    let mut state = base;
    while state.version() < up_to_version {
        let after = state.version();
        let until = up_to_version.min(after.saturating_add(read_events));
        let page = store.read_stream_until(wallet_id, after, until).await?;
        let Some(last) = page.last().map(|recorded| recorded.stream_version) else {
            break;
        };
        state = fold_as_of_checked(wallet_id, state, &page, as_of)?;
        // The fold stopped inside the page (the moment is passed), or the
        // stream ends before the bound.
        if state.version() < last || last < until {
            break;
        }
        read_events = page_events;
    }
    Ok(state)
}

/// The version of `wallet_id`'s event `event_id`, searched for in its stream
/// [`AS_OF_READ_PAGE_EVENTS`] events at a time from the first: memory bounded
/// by a page, time by the stream's length. For a store, or an id, that no
/// index of event ids covers ([`EventStore::version_of_event`]).
pub async fn version_in_stream<S: EventStore + ?Sized>(
    store: &S,
    wallet_id: &WalletId,
    event_id: Uuid,
) -> Result<Option<u64>, StoreError> {
    let mut after: u64 = 0;
    loop {
        let until = after.saturating_add(AS_OF_READ_PAGE_EVENTS);
        let page = store.read_stream_until(wallet_id, after, until).await?;
        if let Some(found) = page
            .iter()
            .find(|recorded| recorded.event.event_id == event_id)
        {
            return Ok(Some(found.stream_version));
        }
        // A stream's versions have no gaps: a page that ends short of its
        // bound ends the stream, and the next page starts past this one.
        match page.last() {
            Some(last) if last.stream_version == until && until > after => after = until,
            _ => return Ok(None),
        }
    }
}

/// Logs a stored snapshot that is not used: a cache row that is not the
/// stream's state (a bug in the fold that wrote it, or a damaged file).
fn unusable(wallet_id: &WalletId, version: u64, why: &str) {
    tracing::error!(
        %wallet_id,
        version,
        why,
        "stored snapshot not used: an older one, or the stream from its first event, is read instead"
    );
}

/// True when a write that took a stream from `version_before` to
/// `version_after` crossed a multiple of [`SNAPSHOT_INTERVAL_EVENTS`]: its
/// writer stores a snapshot of the state it left.
pub fn snapshot_due(version_before: u64, version_after: u64) -> bool {
    version_after / SNAPSHOT_INTERVAL_EVENTS > version_before / SNAPSHOT_INTERVAL_EVENTS
}

/// Stores a snapshot of `wallet`, folded from stored events only, the last of
/// them `last_event_id`, over the stored one `replace` names. A snapshot
/// only saves reads: one that fails is logged, and the stream stays whole
/// and readable.
pub async fn save_snapshot_of(
    store: &dyn EventStore,
    wallet: &Wallet,
    last_event_id: Uuid,
    replace: SnapshotReplace,
) {
    let state = match encode_snapshot(wallet) {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(wallet_id = %wallet.id, %error, "wallet snapshot not encoded");
            return;
        }
    };
    let snapshot = StreamSnapshot {
        wallet_id: wallet.id.clone(),
        version: wallet.version,
        last_event_id,
        occurred_at: Some(wallet.updated_at),
        state,
    };
    if let Err(error) = store.save_snapshot(snapshot, replace).await {
        tracing::warn!(wallet_id = %wallet.id, %error, "wallet snapshot not stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_when_a_write_crosses_a_multiple_of_the_interval() {
        let interval = SNAPSHOT_INTERVAL_EVENTS;
        assert!(!snapshot_due(0, 1));
        assert!(!snapshot_due(interval - 2, interval - 1));
        assert!(snapshot_due(interval - 1, interval));
        assert!(snapshot_due(interval - 1, interval + 1));
        assert!(!snapshot_due(interval, interval + 1));
        assert!(snapshot_due(2 * interval - 1, 2 * interval));
    }
}
