//! The Kafka consumers' offsets in PostgreSQL (`migrations/postgres/0016_consumer_offsets.sql`),
//! moved by a sink in the transaction that applies a batch.

use std::collections::BTreeMap;

use sqlx::postgres::PgPool;
use sqlx::PgConnection;

/// One partition's move: `(partition, expected next offset or None when no
/// row is expected, new next offset)`.
pub type PartitionMove = (i32, Option<i64>, i64);

/// Moves every partition of consumer `group` on `topic` from its expected
/// next offset to its new one, on `connection` (the sink's open
/// transaction). `Ok(false)` when a partition does not hold its expected
/// offset (or already has a row where none was expected): the caller rolls
/// the transaction back.
pub async fn advance(
    connection: &mut PgConnection,
    group: &str,
    topic: &str,
    moves: impl IntoIterator<Item = PartitionMove>,
) -> Result<bool, sqlx::Error> {
    for (partition, expected, next) in moves {
        let written =
            match expected {
                Some(expected) => {
                    sqlx::query(
                        "UPDATE consumer_offsets SET next_offset = $4 \
                     WHERE consumer_group = $1 AND topic = $2 AND partition = $3 \
                     AND next_offset = $5",
                    )
                    .bind(group)
                    .bind(topic)
                    .bind(partition)
                    .bind(next)
                    .bind(expected)
                    .execute(&mut *connection)
                    .await?
                }
                None => sqlx::query(
                    "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(group)
                .bind(topic)
                .bind(partition)
                .bind(next)
                .execute(&mut *connection)
                .await?,
            };
        if written.rows_affected() != 1 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The next offsets stored for `group` on `topic`, by partition (empty: none yet).
pub async fn stored(
    pool: &PgPool,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM consumer_offsets \
         WHERE consumer_group = $1 AND topic = $2",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// On the first call ever for `to` on `topic`, gives consumer group `to` the
/// next offsets `from` has stored on it (none when `from` has none, as on a
/// new deployment), and records that it did (`consumer_group_seeds`); every
/// later call changes nothing. Returns the partitions given.
///
/// For a group that takes over part of another's work from its offsets, as
/// the search index's group took over from the projection group, which
/// stored its offsets only once both views held a batch. Called before the
/// new group consumes, so its first batch finds the seeded offsets.
pub async fn seed_once(
    pool: &PgPool,
    from: &str,
    to: &str,
    topic: &str,
) -> Result<u64, sqlx::Error> {
    let mut transaction = pool.begin().await?;
    let first = sqlx::query(
        "INSERT INTO consumer_group_seeds (consumer_group, topic, seeded_from) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(to)
    .bind(topic)
    .bind(from)
    .execute(&mut *transaction)
    .await?
    .rows_affected()
        == 1;
    let seeded = if first {
        sqlx::query(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) \
             SELECT $2, topic, partition, next_offset FROM consumer_offsets \
             WHERE consumer_group = $1 AND topic = $3 \
             ON CONFLICT DO NOTHING",
        )
        .bind(from)
        .bind(to)
        .bind(topic)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
    } else {
        0
    };
    transaction.commit().await?;
    Ok(seeded)
}
