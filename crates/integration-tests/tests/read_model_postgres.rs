//! The PostgreSQL read model against a real server: every conformance
//! scenario (`read_model::conformance`, the same the embedded read model
//! passes), each in a database of its own that is dropped afterwards.

use std::sync::Arc;

use integration_tests::in_migrated_database;
use read_model::conformance::Scenario;
use read_model::PostgresReadModel;

/// Runs a scenario against a fresh read model in a new database, then drops it,
/// also when the scenario fails.
async fn with_postgres_read_model(scenario: Scenario) {
    in_migrated_database(|pool| scenario(Arc::new(PostgresReadModel::new(pool)))).await;
}

read_model::read_model_conformance_tests!(with_postgres_read_model);
