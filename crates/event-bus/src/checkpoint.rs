//! `relay_checkpoints`: how far a relay has durably published the log.

use sqlx::PgPool;

/// The position stored under `name`, 0 when none is.
pub async fn read_checkpoint(pool: &PgPool, name: &str) -> Result<u64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(position.map_or(0, |position| u64::try_from(position).unwrap_or(0)))
}

/// Moves the checkpoint `name` to `position`; never backwards, so a deposed
/// leader finishing a stale batch cannot undo its successor's progress.
pub async fn store_checkpoint(pool: &PgPool, name: &str, position: u64) -> Result<(), sqlx::Error> {
    let position = i64::try_from(position)
        .map_err(|_| sqlx::Error::Protocol(format!("position {position} exceeds BIGINT")))?;
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE \
         SET position = GREATEST(relay_checkpoints.position, EXCLUDED.position), \
             updated_at = now()",
    )
    .bind(name)
    .bind(position)
    .execute(pool)
    .await?;
    Ok(())
}
