//! A group commit in a fixed number of statements, whatever its size.
//!
//! Holding the allocator lock, the writer reads the head of every stream the
//! group appends to (one statement), decides each append in order on those
//! heads ([`plan_group`]), and writes the admitted appends ([`write`]): their
//! idempotent responses and placed holds (a statement each, with arrays), then
//! positions for their events (one statement), the events and the settled
//! holds. No other writer can move a head while the lock is held, since every
//! append takes it first, so the decisions stand; the unique constraints stay
//! as the backstop.
//!
//! A unique constraint refusing a row — an idempotency key or a hold id
//! already taken, perhaps by an earlier append of the same group, or an event
//! id already stored — fails the whole statement and so the whole batch. The
//! caller then commits the group again, writing each admitted append the same
//! way in a savepoint of its own, which finds the append to refuse (see
//! [`super::commit_in_savepoints`]).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;
use wallet_domain::WalletId;

use super::{begin_group, commit, to_i64, to_u64, AppendJob, GroupFailure};
use crate::stream_head::{plan_group, StreamHead};
use crate::{directory_change, AppendError, AppendOutcome, DirectoryChange};

/// Commits `jobs` as one batch: an outcome per job, in order.
pub(super) async fn commit_batch(
    connection: &mut PgConnection,
    jobs: &[AppendJob],
) -> Result<Vec<Result<AppendOutcome, AppendError>>, GroupFailure> {
    let mut transaction = begin_group(connection).await?;
    let heads = read_heads(&mut transaction, jobs).await?;
    let plan = plan_group(heads, jobs.iter().map(|job| &job.request));
    let outcomes = write(&mut transaction, jobs, plan).await?;
    commit(transaction).await?;
    Ok(outcomes)
}

/// Writes the appends of `jobs` that `plan` admits, in order; an outcome per
/// job, the plan's refusal for the others. The rows a unique constraint may
/// refuse go first, so that a refused batch takes no position.
pub(super) async fn write(
    connection: &mut PgConnection,
    jobs: &[AppendJob],
    plan: Vec<Result<(), AppendError>>,
) -> Result<Vec<Result<AppendOutcome, AppendError>>, sqlx::Error> {
    let rows = Rows::of(jobs, &plan);
    rows.insert_claims(connection).await?;
    let positions = take_positions(connection, rows.event_ids.len()).await?;
    rows.insert_events(connection, &positions).await?;
    Ok(plan
        .into_iter()
        .zip(&rows.last_event_of_job)
        .map(|(planned, last)| {
            planned.map(|()| AppendOutcome {
                last_position: last.map_or(0, |index| to_u64(positions[index])),
            })
        })
        .collect())
}

/// The newest event of each stream the group appends to; a stream with no
/// event has no entry. One index probe per stream, newest first.
pub(super) async fn read_heads(
    connection: &mut PgConnection,
    jobs: &[AppendJob],
) -> Result<HashMap<WalletId, StreamHead>, sqlx::Error> {
    let streams: BTreeSet<&str> = jobs
        .iter()
        .flat_map(|job| &job.request.streams)
        .map(|stream| stream.wallet_id.as_str())
        .collect();
    let streams: Vec<&str> = streams.into_iter().collect();
    let rows = sqlx::query(
        "SELECT s.stream_id, e.version, e.event_id \
         FROM UNNEST($1::text[]) AS s (stream_id) \
         CROSS JOIN LATERAL (SELECT version, event_id FROM events \
             WHERE events.stream_id = s.stream_id ORDER BY version DESC LIMIT 1) AS e",
    )
    .bind(&streams)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stream_id: String = row.try_get("stream_id")?;
            let wallet_id = WalletId::parse(&stream_id)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            let version: i64 = row.try_get("version")?;
            let last_event_id: Uuid = row.try_get("event_id")?;
            Ok((
                wallet_id,
                StreamHead {
                    version: to_u64(version),
                    last_event_id: Some(last_event_id),
                },
            ))
        })
        .collect()
}

/// `count` new positions, ascending. Only group commits call `nextval`, and
/// they hold the allocator lock, so no reader sees them out of order.
async fn take_positions(
    connection: &mut PgConnection,
    count: usize,
) -> Result<Vec<i64>, sqlx::Error> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut positions: Vec<i64> =
        sqlx::query_scalar("SELECT nextval('event_positions') FROM generate_series(1, $1::bigint)")
            .bind(to_i64(count as u64))
            .fetch_all(connection)
            .await?;
    positions.sort_unstable();
    assert_eq!(
        positions.len(),
        count,
        "the sequence gave fewer positions than asked"
    );
    Ok(positions)
}

/// The rows of the admitted appends, as columns to bind as arrays; the
/// events in the order they take positions.
#[derive(Default)]
struct Rows<'a> {
    event_ids: Vec<Uuid>,
    stream_ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_types: Vec<&'a str>,
    payloads: Vec<&'a str>,
    /// Per job, the index of its last event among the rows (`None` for a
    /// refused job or one with no event).
    last_event_of_job: Vec<Option<usize>>,
    keys: Vec<&'a str>,
    fingerprints: Vec<&'a str>,
    statuses: Vec<i32>,
    bodies: Vec<&'a str>,
    entered_holds: Vec<&'a str>,
    entered_wallets: Vec<&'a str>,
    entered_expiries: Vec<Option<DateTime<Utc>>>,
    /// Stream version of each entered hold's `HoldPlaced`.
    entered_versions: Vec<i64>,
    /// When each entered hold was placed.
    entered_times: Vec<DateTime<Utc>>,
    settled_holds: Vec<&'a str>,
    /// Stream version of each settled hold's settling event.
    settled_versions: Vec<i64>,
    /// What each settled hold became.
    settled_as: Vec<&'static str>,
}

impl<'a> Rows<'a> {
    fn of(jobs: &'a [AppendJob], plan: &[Result<(), AppendError>]) -> Self {
        let mut rows = Rows::default();
        for (job, planned) in jobs.iter().zip(plan) {
            if planned.is_err() {
                rows.last_event_of_job.push(None);
                continue;
            }
            let request = &job.request;
            let first_event = rows.event_ids.len();
            for (stream, payloads) in request.streams.iter().zip(&job.payloads) {
                for ((offset, event), payload) in (1u64..).zip(&stream.events).zip(payloads) {
                    let version = to_i64(stream.expected_version + offset);
                    rows.event_ids.push(event.event_id);
                    rows.stream_ids.push(stream.wallet_id.as_str());
                    rows.versions.push(version);
                    rows.event_types.push(event.type_name());
                    rows.payloads.push(payload);
                    match directory_change(event) {
                        Some(DirectoryChange::Enter {
                            hold_id,
                            expires_at,
                            placed_at,
                        }) => {
                            rows.entered_holds.push(hold_id.as_str());
                            rows.entered_wallets.push(stream.wallet_id.as_str());
                            rows.entered_expiries.push(expires_at);
                            rows.entered_versions.push(version);
                            rows.entered_times.push(placed_at);
                        }
                        Some(DirectoryChange::Settle { hold_id, status }) => {
                            rows.settled_holds.push(hold_id.as_str());
                            rows.settled_versions.push(version);
                            rows.settled_as.push(status.as_str());
                        }
                        None => {}
                    }
                }
            }
            let events = rows.event_ids.len();
            rows.last_event_of_job
                .push((events > first_event).then(|| events - 1));
            if let Some(response) = &request.idempotent_response {
                rows.keys.push(&response.key);
                rows.fingerprints.push(&response.request_fingerprint);
                rows.statuses.push(i32::from(response.status));
                rows.bodies.push(&response.body);
            }
        }
        rows
    }

    /// Inserts the idempotent responses and the placed holds: the rows
    /// whose unique constraints refuse an append (`23505`).
    async fn insert_claims(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.keys.is_empty() {
            sqlx::query(
                "INSERT INTO idempotency_keys \
                 (idempotency_key, request_fingerprint, response_status, response_body) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::integer[], $4::text[])",
            )
            .bind(&self.keys)
            .bind(&self.fingerprints)
            .bind(&self.statuses)
            .bind(&self.bodies)
            .execute(&mut *connection)
            .await?;
        }
        if !self.entered_holds.is_empty() {
            sqlx::query(
                "INSERT INTO hold_directory \
                 (hold_id, wallet_id, expires_at, placed_version, placed_at) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], \
                     $5::timestamptz[])",
            )
            .bind(&self.entered_holds)
            .bind(&self.entered_wallets)
            .bind(&self.entered_expiries)
            .bind(&self.entered_versions)
            .bind(&self.entered_times)
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }

    /// Inserts the events at `positions` (one per event, ascending) and
    /// settles the holds they settle.
    async fn insert_events(
        &self,
        connection: &mut PgConnection,
        positions: &[i64],
    ) -> Result<(), sqlx::Error> {
        if !self.event_ids.is_empty() {
            sqlx::query(
                "INSERT INTO events (position, event_id, stream_id, version, event_type, payload) \
                 SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], \
                     $5::text[], $6::text[])",
            )
            .bind(positions)
            .bind(&self.event_ids)
            .bind(&self.stream_ids)
            .bind(&self.versions)
            .bind(&self.event_types)
            .bind(&self.payloads)
            .execute(&mut *connection)
            .await?;
        }
        // After the entries: a hold placed and settled in one group is
        // entered first.
        if !self.settled_holds.is_empty() {
            sqlx::query(
                "UPDATE hold_directory AS entry \
                 SET expires_at = NULL, settled_version = settled.version, \
                     settled_as = settled.status \
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[]) \
                     AS settled (hold_id, version, status) \
                 WHERE entry.hold_id = settled.hold_id",
            )
            .bind(&self.settled_holds)
            .bind(&self.settled_versions)
            .bind(&self.settled_as)
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }
}
