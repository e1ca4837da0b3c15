//! Snapshots as the stores keep them: a wallet's state at a version of its
//! stream, with the time of the event at that version, so that a read as
//! of a version or of a time starts from the nearest one before it.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wallet_domain::{AsOf, WalletId};

/// A wallet's state as folded up to `version` of its stream, kept beside the
/// stream so a read starts there instead of at the first event (see
/// [`crate::read_tail`]). It is a cache of the stream, never the truth: it is
/// checked against the stream's event at `version` before it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSnapshot {
    pub wallet_id: WalletId,
    /// The stream version the state was folded up to (1 or more).
    pub version: u64,
    /// The id of the stream's event at `version`.
    pub last_event_id: Uuid,
    /// When the stream's event at `version` occurred (the state's
    /// `updated_at`): what a read as of a time finds the snapshot by. `None`
    /// for one stored before the stores kept it, found by version only.
    pub occurred_at: Option<DateTime<Utc>>,
    /// [`wallet_domain::encode_snapshot`] of the state.
    pub state: String,
}

/// Which stored snapshot of its stream a saved one replaces
/// ([`crate::EventStore::save_snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotReplace {
    /// One at the same version; a newer one stays the newest (two writers
    /// that race keep the newer state), and an older one stays in the
    /// stream's history.
    OlderOrSame,
    /// Every one the store holds of the stream: its reader found the newest
    /// unusable (it cannot be read, or disagrees with its stream), and such
    /// a row may claim any version, one past the stream's head included
    /// (tester h132 F1). The history before it goes too: reads as of those
    /// moments fold the stream from its first event until snapshots are
    /// written again.
    Unusable,
}

/// Which row of a stream's snapshots a SQL store reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SnapshotRow {
    /// The one at the highest version.
    Newest,
    /// The one at the highest version at or below this one.
    AtOrBelowVersion(i64),
    /// The latest whose event occurred at or before this time, in
    /// [`time_ns`].
    AtOrBeforeTime(i64),
}

impl SnapshotRow {
    /// The row for a read as of `as_of`.
    pub(crate) fn as_of(as_of: AsOf) -> Self {
        match as_of {
            AsOf::Version(version) => {
                Self::AtOrBelowVersion(i64::try_from(version).unwrap_or(i64::MAX))
            }
            AsOf::Time(at) => Self::AtOrBeforeTime(time_ns(at)),
        }
    }
}

/// A time as the SQL stores keep a snapshot's: nanoseconds since the Unix
/// epoch, a time past what an `i64` holds (before 1677, after 2262) as the
/// nearest end.
pub(crate) fn time_ns(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The time [`time_ns`] kept.
pub(crate) fn from_time_ns(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_kept_to_the_nanosecond_and_clamped_past_an_i64() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T19:39:02.123456789Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(from_time_ns(time_ns(at)), at);
        assert_eq!(time_ns(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(time_ns(DateTime::<Utc>::MIN_UTC), i64::MIN);
    }
}
