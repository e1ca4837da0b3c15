//! PostgreSQL for the distributed mode: one pool per process, sized and timed
//! out by configuration, and the schema in `migrations/postgres`, applied at
//! start-up (sqlx takes an advisory lock, so replicas may start together).

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

static MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections one process holds at most, unless configured otherwise.
pub const POOL_CONNECTIONS_MAX_DEFAULT: u32 = 16;
/// How long a caller waits for a pooled connection.
pub const POOL_ACQUIRE_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the PostgreSQL schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects and brings the schema up to date.
pub async fn connect(url: &str, connections_max: u32) -> Result<PgPool, PostgresError> {
    let pool = PgPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS))
        .connect(url)
        .await
        .map_err(PostgresError::Connect)?;
    MIGRATIONS.run(&pool).await?;
    tracing::info!("PostgreSQL schema up to date");
    Ok(pool)
}

/// The embedded migrations, for tools that report or apply them.
pub fn migrator() -> &'static Migrator {
    &MIGRATIONS
}
