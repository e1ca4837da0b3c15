//! The PostgreSQL ledger against a real server: every conformance scenario
//! (`ledger::conformance`, the same the embedded ledger passes), each in a
//! database of its own that is dropped afterwards.

use std::sync::Arc;

use integration_tests::in_migrated_database;
use ledger::conformance::Scenario;
use ledger::PostgresLedger;

/// Runs a scenario against a fresh ledger in a new database, then drops it,
/// also when the scenario fails.
async fn with_postgres_ledger(scenario: Scenario) {
    in_migrated_database(|pool| scenario(Arc::new(PostgresLedger::new(pool)))).await;
}

ledger::ledger_conformance_tests!(with_postgres_ledger);
