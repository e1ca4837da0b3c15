//! `relay_checkpoints`: how far a relay has durably published the log, and
//! `relay_published_offsets`: where that left each partition of its topic.

use std::collections::BTreeMap;

use postgres_support::{Within, READ_WAIT_MS_MAX};
use sqlx::PgPool;

/// The next offset of each partition a batch published to: one past its
/// last message there.
pub type PublishedOffsets = BTreeMap<i32, i64>;

/// The position stored under `name`, 0 when none is. Both statements here
/// wait [`READ_WAIT_MS_MAX`] at most for the server on the client (a
/// connection gone silent must not hold the relay's batch for good: past
/// it, the batch fails as a lost connection does and is retried).
pub async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<u64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .within(READ_WAIT_MS_MAX)
            .await?;
    Ok(position.map_or(0, |position| u64::try_from(position).unwrap_or(0)))
}

/// Moves the checkpoint `name` to `position` and the published offsets of
/// `topic` to `offsets`, in one statement (so one commit); neither ever
/// moves backwards, so a deposed leader finishing a stale batch cannot undo
/// its successor's progress. A reader that sees the checkpoint at a
/// position sees offsets that cover every message up to it.
pub async fn store_checkpoint(
    pool: &PgPool,
    name: &str,
    position: u64,
    topic: &str,
    offsets: &PublishedOffsets,
) -> Result<(), sqlx::Error> {
    let position = i64::try_from(position)
        .map_err(|_| sqlx::Error::Protocol(format!("position {position} exceeds BIGINT")))?;
    let (partitions, next_offsets): (Vec<i32>, Vec<i64>) = offsets.iter().unzip();
    sqlx::query(
        "WITH published AS ( \
             INSERT INTO relay_published_offsets (name, topic, partition, next_offset) \
             SELECT $1, $3, partition, next_offset \
             FROM UNNEST($4::INTEGER[], $5::BIGINT[]) AS batch (partition, next_offset) \
             ON CONFLICT (name, topic, partition) DO UPDATE \
             SET next_offset = GREATEST(relay_published_offsets.next_offset, EXCLUDED.next_offset)) \
         INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE \
         SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position), \
             updated_at = now()",
    )
    .bind(name)
    .bind(position)
    .bind(topic)
    .bind(partitions)
    .bind(next_offsets)
    .execute(pool)
    .within(READ_WAIT_MS_MAX)
    .await?;
    Ok(())
}

/// What one read of relay `name`'s progress on `topic` and consumer
/// `group`'s shows, all from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProgress {
    /// The relay's checkpoint: every event up to it is published.
    pub checkpoint: u64,
    /// By partition, the offset after the relay's last message there, as of
    /// `checkpoint`.
    pub published: PublishedOffsets,
    /// By partition, the group's stored next offset (`consumer_offsets`,
    /// moved in the consumer's own transaction): everything below is applied.
    pub applied: PublishedOffsets,
}

impl GroupProgress {
    /// Whether the group has applied every message of `published`.
    pub fn applied_all_of(&self, published: &PublishedOffsets) -> bool {
        offsets_reach(&self.applied, published)
    }
}

/// Whether offsets `seen` are at or past `wanted` on every partition of
/// `wanted` (a partition missing from `seen` is not).
pub fn offsets_reach(seen: &PublishedOffsets, wanted: &PublishedOffsets) -> bool {
    wanted
        .iter()
        .all(|(partition, next)| seen.get(partition).is_some_and(|seen| seen >= next))
}

/// Relay `name`'s checkpoint and published offsets on `topic`, and consumer
/// `group`'s stored offsets there, in one statement. A reader waiting for
/// the group to reach log position `head` takes `published` from the first
/// answer whose `checkpoint` is at or past `head`, then waits until
/// [`GroupProgress::applied_all_of`] it.
pub async fn group_progress(
    pool: &PgPool,
    name: &str,
    topic: &str,
    group: &str,
) -> Result<GroupProgress, sqlx::Error> {
    let (checkpoint, published_partitions, published_offsets, applied_partitions, applied_offsets): (
        i64,
        Vec<i32>,
        Vec<i64>,
        Vec<i32>,
        Vec<i64>,
    ) = sqlx::query_as(
        "SELECT COALESCE((SELECT position FROM relay_checkpoints WHERE name = $1), 0), \
         ARRAY(SELECT partition FROM relay_published_offsets \
               WHERE name = $1 AND topic = $2 ORDER BY partition), \
         ARRAY(SELECT next_offset FROM relay_published_offsets \
               WHERE name = $1 AND topic = $2 ORDER BY partition), \
         ARRAY(SELECT partition FROM consumer_offsets \
               WHERE consumer_group = $3 AND topic = $2 ORDER BY partition), \
         ARRAY(SELECT next_offset FROM consumer_offsets \
               WHERE consumer_group = $3 AND topic = $2 ORDER BY partition)",
    )
    .bind(name)
    .bind(topic)
    .bind(group)
    .fetch_one(pool)
    .await?;
    Ok(GroupProgress {
        checkpoint: u64::try_from(checkpoint).unwrap_or(0),
        published: published_partitions
            .into_iter()
            .zip(published_offsets)
            .collect(),
        applied: applied_partitions
            .into_iter()
            .zip(applied_offsets)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pairs: &[(i32, i64)]) -> PublishedOffsets {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_group_has_applied_a_publication_only_on_every_partition_of_it() {
        let progress = GroupProgress {
            checkpoint: 9,
            published: offsets(&[]),
            applied: offsets(&[(0, 5), (1, 7)]),
        };
        assert!(progress.applied_all_of(&offsets(&[(0, 5), (1, 6)])));
        assert!(progress.applied_all_of(&offsets(&[])));
        assert!(
            !progress.applied_all_of(&offsets(&[(0, 6)])),
            "a partition behind"
        );
        assert!(
            !progress.applied_all_of(&offsets(&[(2, 1)])),
            "a partition never stored"
        );
    }
}
