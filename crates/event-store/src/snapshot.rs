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
    /// The newest, which its reader found unusable (it cannot be read, or
    /// disagrees with its stream), at `version` (0 when its version cannot
    /// be read), and every one above it: such a row may claim any version,
    /// one past the stream's head included (tester h132 F1). The history
    /// below it stays (tester h164 F1: dropping it made every read of an
    /// older moment fold from the first event for good).
    Unusable { version: u64 },
}

impl SnapshotReplace {
    /// The version from which a store that keeps every snapshot drops the
    /// stream's stored ones before it keeps one at `saved`: the unusable
    /// one's, or `saved` when that is lower or cannot be read (0); `None`
    /// over a usable one.
    pub fn drops_from(self, saved: u64) -> Option<u64> {
        match self {
            Self::OlderOrSame => None,
            Self::Unusable { version: 0 } => Some(saved),
            Self::Unusable { version } => Some(version.min(saved)),
        }
    }
}

/// Bytes of snapshot history a store keeps per event of a stream, at most:
/// a snapshot stays in the history once a newer one is kept only when the
/// events since the one before it pay for its size at this rate. A wallet
/// of a few pending holds (a state of about 300 bytes) keeps one every
/// [`crate::SNAPSHOT_INTERVAL_EVENTS`] events; one with 1,000 (about 143
/// KB) one every 2,300 or so, not every 100 (tester h164 F2: 1.75 KB of
/// history per event), and its reads as of a moment fold that much more.
pub const SNAPSHOT_HISTORY_BYTES_PER_EVENT: u64 = 64;

/// Whether a stored snapshot at `version` of `state_bytes`, below a newer
/// one, leaves the history: the one before it is at `previous`.
pub(crate) fn thinned_out(version: u64, state_bytes: u64, previous: u64) -> bool {
    version
        .saturating_sub(previous)
        .saturating_mul(SNAPSHOT_HISTORY_BYTES_PER_EVENT)
        < state_bytes
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

impl SnapshotRow {
    /// What picks the row in a SQL store's `SELECT … FROM snapshots WHERE
    /// stream_id = <stream> <filter> LIMIT 1`, its bound's parameter written
    /// `parameter` (`?2`, `$2`), and the bound's value.
    pub(crate) fn filter(self, parameter: &str) -> (String, Option<i64>) {
        match self {
            Self::Newest => ("ORDER BY version DESC".to_owned(), None),
            Self::AtOrBelowVersion(version) => (
                format!("AND version <= {parameter} ORDER BY version DESC"),
                Some(version),
            ),
            Self::AtOrBeforeTime(at) => (
                format!(
                    "AND occurred_at_ns <= {parameter} ORDER BY occurred_at_ns DESC, version DESC"
                ),
                Some(at),
            ),
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
    fn a_large_state_stays_in_the_history_only_as_far_from_the_one_before_as_it_costs() {
        // 300 bytes every 100 events: kept.
        assert!(!thinned_out(200, 300, 100));
        // 143 KB: kept once 2,235 events or more lie behind it.
        assert!(thinned_out(2_300, 143_000, 100));
        assert!(!thinned_out(2_400, 143_000, 100));
    }

    #[test]
    fn over_an_unusable_one_the_rows_from_it_or_from_the_saved_one_go() {
        assert_eq!(SnapshotReplace::OlderOrSame.drops_from(300), None);
        // Past the head: from the one saved at the head.
        assert_eq!(
            SnapshotReplace::Unusable { version: 900 }.drops_from(300),
            Some(300)
        );
        // Below the head: from the unusable one, the newest, up.
        assert_eq!(
            SnapshotReplace::Unusable { version: 250 }.drops_from(300),
            Some(250)
        );
        assert_eq!(
            SnapshotReplace::Unusable { version: 0 }.drops_from(300),
            Some(300)
        );
    }

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
