//! The PostgreSQL ledger against a real server: every conformance scenario
//! (`ledger::conformance`, the same the embedded ledger passes), each in a
//! database of its own that is dropped afterwards.

use std::str::FromStr;
use std::sync::Arc;

use integration_tests::{require_env, unique_name};
use ledger::conformance::Scenario;
use ledger::PostgresLedger;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Connections of a scenario's pool: scenarios run one statement at a time.
const POOL_CONNECTIONS_MAX: u32 = 4;

/// Runs a scenario against a fresh ledger in a new database, then drops it,
/// also when the scenario fails.
async fn with_postgres_ledger(scenario: Scenario) {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let admin_options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
    let database = unique_name("wallex_test");
    let mut admin = admin_options
        .connect()
        .await
        .expect("connect to the PostgreSQL of DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("create a database for this test (the user needs CREATEDB)");

    let test_url = admin_options
        .clone()
        .database(&database)
        .to_url_lossy()
        .to_string();
    let pool = postgres_support::connect(&test_url, POOL_CONNECTIONS_MAX)
        .await
        .expect("connect and migrate the test database");
    let outcome = tokio::spawn(scenario(Arc::new(PostgresLedger::new(pool.clone())))).await;
    pool.close().await;

    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the database of this test");
    admin.close().await.expect("close the admin connection");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

ledger::ledger_conformance_tests!(with_postgres_ledger);
