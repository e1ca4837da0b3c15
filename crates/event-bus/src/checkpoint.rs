//! `relay_checkpoints`: how far a relay has durably published the log, and
//! `relay_published_offsets`: where that left each partition of its topic.

use std::collections::BTreeMap;

use sqlx::PgPool;

/// The next offset of each partition a batch published to: one past its
/// last message there.
pub type PublishedOffsets = BTreeMap<i32, i64>;

/// The position stored under `name`, 0 when none is.
pub async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<u64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
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
    .await?;
    Ok(())
}

/// Whether consumer `group` has applied every message relay `name` published
/// to `topic` for the log up to `head`: the relay's checkpoint is at or past
/// `head`, and on every partition the group's stored next offset
/// (`consumer_offsets`, moved in the consumer's own transaction) is at or
/// past the relay's. One statement, so both are read from one snapshot.
///
/// Offsets the relay published after `head` are waited for too: the relay
/// keeps only its latest offsets, so this answers "caught up with at least
/// `head`", never "not yet" for good while the consumer keeps up.
pub async fn group_reached(
    pool: &PgPool,
    name: &str,
    topic: &str,
    group: &str,
    head: u64,
) -> Result<bool, sqlx::Error> {
    let head = i64::try_from(head)
        .map_err(|_| sqlx::Error::Protocol(format!("position {head} exceeds BIGINT")))?;
    sqlx::query_scalar(
        "SELECT COALESCE((SELECT position FROM relay_checkpoints WHERE name = $1), 0) >= $4 \
         AND NOT EXISTS ( \
             SELECT 1 FROM relay_published_offsets AS published \
             LEFT JOIN consumer_offsets AS applied \
               ON applied.consumer_group = $3 AND applied.topic = published.topic \
              AND applied.partition = published.partition \
             WHERE published.name = $1 AND published.topic = $2 \
               AND COALESCE(applied.next_offset, 0) < published.next_offset)",
    )
    .bind(name)
    .bind(topic)
    .bind(group)
    .bind(head)
    .fetch_one(pool)
    .await
}
