//! PostgreSQL through sqlx: a query, and the project's migrations applied to a fresh database.

use std::path::PathBuf;
use std::str::FromStr;

use integration_tests::{require_env, unique_name, REQUEST_TIMEOUT};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Connection;

/// Connections per test pool: the tests run one statement at a time.
const POOL_CONNECTIONS_MAX: u32 = 2;

/// Overrides the migrations folder (default: `migrations/postgres` at the repository root).
const MIGRATIONS_DIR_VARIABLE: &str = "WALLEX_MIGRATIONS_DIR";

async fn pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(POOL_CONNECTIONS_MAX)
        .acquire_timeout(REQUEST_TIMEOUT)
        .connect_with(options)
        .await
        .expect("connect to the PostgreSQL of DATABASE_URL")
}

fn migrations_dir() -> PathBuf {
    match std::env::var_os(MIGRATIONS_DIR_VARIABLE) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres"),
    }
}

#[tokio::test]
async fn select_one_answers() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let pool = pool(options).await;

    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&pool)
        .await
        .expect("select 1");
    assert_eq!(one, 1);

    let greeting: String = sqlx::query_scalar("select $1::text || ' ' || $2::text")
        .bind("hello")
        .bind("wallex")
        .fetch_one(&pool)
        .await
        .expect("select with bound parameters");
    assert_eq!(greeting, "hello wallex");
    pool.close().await;
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let dir = migrations_dir();
    assert!(
        dir.is_dir(),
        "no migrations folder at {} (set {MIGRATIONS_DIR_VARIABLE} to use another)",
        dir.display()
    );
    let migrator = Migrator::new(dir.clone())
        .await
        .expect("read the migrations folder");

    // A database of its own, so that reruns and other tests start from nothing.
    let admin_options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let database = unique_name("wallex_it");
    let mut admin = sqlx::PgConnection::connect_with(&admin_options)
        .await
        .expect("connect to the PostgreSQL of DATABASE_URL");
    sqlx::query(&format!("create database {database}"))
        .execute(&mut admin)
        .await
        .expect("create a database for this run (the user needs CREATEDB)");

    let pool = pool(admin_options.clone().database(&database)).await;
    let outcome = migrator.run(&pool).await;
    let applied: Vec<(i64, bool)> = if outcome.is_ok() {
        sqlx::query_as("select version, success from _sqlx_migrations order by version")
            .fetch_all(&pool)
            .await
            .expect("read _sqlx_migrations")
    } else {
        Vec::new()
    };
    pool.close().await;
    let dropped = sqlx::query(&format!("drop database if exists {database} with (force)"))
        .execute(&mut admin)
        .await;

    outcome.expect("apply every migration of the folder");
    dropped.expect("drop the database of this run");
    let expected: Vec<i64> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .collect();
    let recorded: Vec<i64> = applied.iter().map(|(version, _)| *version).collect();
    assert_eq!(recorded, expected, "every migration is recorded once");
    assert!(
        applied.iter().all(|(_, success)| *success),
        "every migration succeeded: {applied:?}"
    );
}

/// A connection string that asks for TLS (`sslmode=require`) cannot be
/// served by this build (sqlx without TLS): a permanent error, so a consumer
/// starting on it exits at once instead of waiting for the server.
#[tokio::test]
async fn a_connection_asking_for_tls_fails_for_good() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let error = postgres_support::connect(&format!("{url}{separator}sslmode=require"), 1)
        .await
        .expect_err("this build has no TLS");
    assert!(
        !error.is_transient(),
        "TLS asked of a build without it does not pass by itself: {error}"
    );
}

/// A write refused by a read-only server (a failover's standby, or
/// `default_transaction_read_only`) passes once the primary is back: a
/// consumer retries it instead of dead-lettering valid events.
#[tokio::test]
async fn a_write_a_read_only_server_refuses_is_transient() {
    integration_tests::in_migrated_database(|pool| async move {
        let mut connection = pool.acquire().await.expect("a connection");
        sqlx::query("SET default_transaction_read_only = on")
            .execute(&mut *connection)
            .await
            .expect("the session is read-only");
        let refused = sqlx::query("INSERT INTO consumer_group_seeds VALUES ('g', 't', 'f')")
            .execute(&mut *connection)
            .await
            .expect_err("a read-only session refuses writes");
        assert!(postgres_support::is_transient(&refused), "{refused}");
        sqlx::query("SET default_transaction_read_only = off")
            .execute(&mut *connection)
            .await
            .expect("writable again");
    })
    .await;
}

/// A release's migration Job runs before its pods; an older pod restarting
/// meanwhile (or a rollback) starts on the schema with a migration it does
/// not know.
#[tokio::test]
async fn a_build_starts_on_a_schema_a_newer_release_migrated() {
    integration_tests::in_migrated_database(|pool| async move {
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, installed_on, success, checksum, execution_time) \
             VALUES (999999, 'a newer release', now(), true, '\\x00', 1)",
        )
        .execute(&pool)
        .await
        .expect("a newer release's migration recorded");
        postgres_support::migrator()
            .run(&pool)
            .await
            .expect("the schema is taken as up to date for this build");
    })
    .await;
}

/// A session of a pool that writes (`postgres_support::connect`) gone
/// silent inside its transaction (its client paused, partitioned, behind a
/// hung proxy) is ended by the server, and its locks with it, instead of
/// holding the other replicas up until the server notices the dead socket.
#[tokio::test]
async fn a_session_silent_inside_its_transaction_loses_its_locks() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let silent = postgres_support::connect(&url, 1)
        .await
        .expect("a pool that writes");
    let key: i64 = rand::random();
    let mut held = silent.acquire().await.expect("a connection");
    sqlx::query("BEGIN")
        .execute(&mut *held)
        .await
        .expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *held)
        .await
        .expect("a lock, then silence");
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let other = pool(options).await;
    let holders = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = $1",
        )
        .bind(key)
        .fetch_one(&other)
        .await
        .expect("read pg_locks")
    };
    assert_eq!(holders().await, 1, "held while the session is young");
    let lease = std::time::Duration::from_millis(postgres_support::IDLE_IN_TRANSACTION_MS);
    let deadline = std::time::Instant::now() + lease * 2;
    while holders().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server ended the silent session within {:?}",
            lease * 2
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(held);
    silent.close().await;
    other.close().await;
}

/// A pooled connection the server closed while it sat idle is replaced
/// before it is handed out: the caller never sees it. (sqlx's check before
/// each acquire, a round trip, is what does it; turning it off for
/// connections used within the last second cost nothing measurable and
/// turned every pooled connection into a 503 after a server restart.)
#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_before_use() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let admin = pool(options).await;
    let wallex = postgres_support::connect(&url, 1)
        .await
        .expect("a pool of one connection");
    let backend_of = |pool: &PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i32>("select pg_backend_pid()")
                .fetch_one(&pool)
                .await
        }
    };
    let first = backend_of(&wallex).await.expect("the first connection");
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&admin)
        .await
        .expect("terminate the pooled connection's session");
    assert!(terminated);
    // The session ends on its own time after the signal.
    let gone_by = std::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        let alive: bool =
            sqlx::query_scalar("select exists (select 1 from pg_stat_activity where pid = $1)")
                .bind(first)
                .fetch_one(&admin)
                .await
                .expect("the sessions");
        if !alive {
            break;
        }
        assert!(std::time::Instant::now() < gone_by, "the session ends");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = backend_of(&wallex)
        .await
        .expect("the closed connection is checked and replaced");
    assert_ne!(second, first);
    wallex.close().await;
    admin.close().await;
}
