//! Errors of the KurrentDB adapter.
//!
//! Policy: [`KurrentDbError`] names every way this adapter fails; at the port
//! boundary it becomes a [`StoreError`] (the port has no variant per backend),
//! except a stale expected revision, which is the port's
//! [`AppendError::VersionConflict`] (see [`append_error`]).

use event_store::{AppendError, StoreError};
use kurrentdb::{CurrentRevision, StreamState};
use wallet_domain::{EventDecodeError, WalletId};

#[derive(Debug, thiserror::Error)]
pub enum KurrentDbError {
    #[error("KURRENTDB_URL is not a KurrentDB connection string: {0}")]
    InvalidUrl(#[from] kurrentdb::ClientSettingsParseError),
    #[error("the KurrentDB client cannot be created: {0}")]
    ClientInit(String),
    #[error("KurrentDB: {0}")]
    Client(#[from] kurrentdb::Error),
    /// Two or more streams (wallets) in one append: this client cannot write
    /// them atomically, so nothing is written.
    #[error(
        "an append to {streams} streams must be atomic, and the KurrentDB client in use has no \
         multi-stream append (KurrentDB 25.1 MultiStreamAppend); nothing was written"
    )]
    MultiStreamAppendUnsupported { streams: usize },
    /// An idempotent response with no event to carry it.
    #[error("an idempotent response can only be stored with at least one event")]
    IdempotentResponseWithoutEvents,
    #[error(
        "event at commit position {commit} has prepare position {prepare}: not an implicitly \
         committed record, so it has no single position"
    )]
    PositionNotImplicitlyCommitted { commit: u64, prepare: u64 },
    #[error("event in stream {stream:?} at revision {revision} has no log position")]
    PositionUnknown { stream: String, revision: u64 },
    #[error("stored event at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: u64,
        #[source]
        source: EventDecodeError,
    },
    #[error("event {event_id} cannot be encoded: {source}")]
    Encode {
        event_id: uuid::Uuid,
        #[source]
        source: serde_json::Error,
    },
    #[error("snapshot in stream {stream:?} cannot be read or written: {source}")]
    MalformedSnapshot {
        stream: String,
        #[source]
        source: serde_json::Error,
    },
    /// `key` names the record's claim: an idempotency key or a hold id.
    #[error("the record of {key} is malformed: {reason}")]
    MalformedIdempotencyRecord { key: String, reason: String },
    /// `claim` names what the pointers claim: an idempotency key or a hold id.
    #[error("{claim} has more than {limit} reservations")]
    TooManyReservations { claim: String, limit: usize },
    #[error("{claim} stayed contended after {attempts} attempts")]
    ReservationContended { claim: String, attempts: usize },
}

impl From<KurrentDbError> for StoreError {
    fn from(error: KurrentDbError) -> Self {
        match error {
            KurrentDbError::Corrupt { position, source } => {
                StoreError::Corrupt { position, source }
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<KurrentDbError> for AppendError {
    fn from(error: KurrentDbError) -> Self {
        AppendError::Store(error.into())
    }
}

/// The port's version of a stream whose KurrentDB state is `current`.
pub fn version_of_current(current: CurrentRevision) -> u64 {
    match current {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(revision) => revision.saturating_add(1),
    }
}

/// Maps the failure of a one-stream append: a stale expected revision is the
/// port's version conflict; anything else leaves the outcome unknown.
pub fn append_error(wallet_id: &WalletId, expected: u64, error: kurrentdb::Error) -> AppendError {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => AppendError::VersionConflict {
            wallet_id: wallet_id.clone(),
            expected,
            actual: version_of_current(current),
        },
        other => KurrentDbError::Client(other).into(),
    }
}

/// Whether `error` says the expected state of an append did not hold.
pub fn is_wrong_expected_version(error: &kurrentdb::Error) -> bool {
    matches!(error, kurrentdb::Error::WrongExpectedVersion { .. })
}

/// The state a stream must be in for an append expecting `expected_version`.
pub fn expected_state(expected_version: u64) -> StreamState {
    match expected_version {
        0 => StreamState::NoStream,
        version => StreamState::StreamRevision(version - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet() -> WalletId {
        WalletId::parse("w1").expect("valid id")
    }

    #[test]
    fn a_wrong_expected_version_is_a_conflict_with_the_port_version() {
        let error = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::NoStream,
            current: CurrentRevision::Current(0),
        };
        let mapped = append_error(&wallet(), 0, error);
        assert!(
            matches!(
                &mapped,
                AppendError::VersionConflict { wallet_id, expected: 0, actual: 1 } if *wallet_id == wallet()
            ),
            "{mapped:?}"
        );
        let missing = kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(4),
            current: CurrentRevision::NoStream,
        };
        assert!(matches!(
            append_error(&wallet(), 5, missing),
            AppendError::VersionConflict {
                expected: 5,
                actual: 0,
                ..
            }
        ));
    }

    #[test]
    fn other_client_errors_leave_the_outcome_unknown() {
        for error in [
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::ResourceDeleted,
            kurrentdb::Error::ServerError("boom".into()),
        ] {
            let mapped = append_error(&wallet(), 1, error);
            assert!(
                matches!(mapped, AppendError::Store(StoreError::Unavailable(_))),
                "{mapped:?}"
            );
        }
    }

    #[test]
    fn the_multi_stream_refusal_says_nothing_was_written() {
        let mapped: AppendError =
            KurrentDbError::MultiStreamAppendUnsupported { streams: 2 }.into();
        let AppendError::Store(StoreError::Unavailable(message)) = mapped else {
            panic!("refused as unavailable");
        };
        assert!(message.contains("2 streams"), "{message}");
        assert!(message.contains("nothing was written"), "{message}");
    }

    #[test]
    fn a_corrupt_event_stays_corrupt_at_the_port() {
        let source = wallet_domain::WalletEvent::from_json("{}").expect_err("not an event");
        let mapped: StoreError = KurrentDbError::Corrupt {
            position: 42,
            source,
        }
        .into();
        assert!(matches!(mapped, StoreError::Corrupt { position: 42, .. }));
    }

    #[test]
    fn expected_versions_map_to_stream_states() {
        assert_eq!(expected_state(0), StreamState::NoStream);
        assert_eq!(expected_state(1), StreamState::StreamRevision(0));
        assert_eq!(expected_state(7), StreamState::StreamRevision(6));
        assert_eq!(version_of_current(CurrentRevision::NoStream), 0);
        assert_eq!(version_of_current(CurrentRevision::Current(6)), 7);
    }
}
