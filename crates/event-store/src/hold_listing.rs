//! A wallet's holds listed from the hold directory ([`crate::EventStore::hold_page`]):
//! the directory keeps, per hold, when it was placed, the versions of its
//! `HoldPlaced` and of the event that settled it, and what it became, so a
//! page of a wallet's holds in any status is two index reads and two stream
//! events per hold listed, however long the wallet's stream (issue 13:
//! `GET /wallets/{id}/holds?status=CAPTURED` folded the whole stream, 1.11 s
//! at 152,740 events).

use chrono::{DateTime, Utc};
use wallet_domain::{HoldId, HoldStatus};

use crate::{HoldVersions, StoreError};

/// Which page of a wallet's holds to list, and as of when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldPageQuery {
    /// Only holds in this status as they stand at `clock` (a pending hold
    /// whose expiry is at or before it is `EXPIRED`); all without one.
    pub status: Option<HoldStatus>,
    pub clock: DateTime<Utc>,
    /// Holds skipped, in listing order.
    pub offset: u64,
    /// Holds listed at most.
    pub limit: u64,
}

/// One hold of a page: its id and where its life lies in its wallet's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedHold {
    pub hold_id: HoldId,
    pub versions: HoldVersions,
}

/// A page of a wallet's holds, oldest first (by `createdAt`, then hold id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HoldPage {
    /// Every hold of the wallet that matches the query's status.
    pub count: u64,
    pub holds: Vec<ListedHold>,
}

/// The status the SQL stores' listing filters on: its name, or `None` for
/// any (a parameter the statement compares, so one statement serves all).
pub(crate) fn status_parameter(query: &HoldPageQuery) -> Option<&'static str> {
    query.status.map(HoldStatus::as_str)
}

/// The condition on a `hold_directory` row that it matches the status
/// parameter `status` as of the clock parameter `clock` (parameters in the
/// store's own spelling, `?2` or `$2`): a settled hold by what it became, a
/// pending one by its expiry.
pub(crate) fn status_condition(status: &str, clock: &str) -> String {
    format!(
        "({status} IS NULL \
         OR (settled_version IS NULL AND ((expires_at IS NOT NULL AND expires_at <= {clock}) \
             = ({status} = 'EXPIRED')) AND {status} IN ('PENDING', 'EXPIRED')) \
         OR settled_as = {status})"
    )
}

/// One listed row as a store read it back: a hold id and its versions.
pub(crate) fn listed_hold(
    hold_id: &str,
    placed: Option<i64>,
    settled: Option<i64>,
) -> Result<ListedHold, StoreError> {
    let bad = |what: String| {
        StoreError::Unavailable(format!("the hold directory holds a bad row: {what}"))
    };
    let hold_id = HoldId::parse(hold_id).map_err(|error| bad(error.to_string()))?;
    let versions = crate::hold_versions(Some((placed, settled)))
        .ok_or_else(|| bad(format!("hold {hold_id} has no placed version")))?;
    Ok(ListedHold { hold_id, versions })
}
