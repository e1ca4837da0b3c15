//! The embedded read model against a real SQLite file: every conformance
//! scenario (`read_model::conformance`).

use std::sync::Arc;

use read_model::conformance::Scenario;
use read_model::EmbeddedReadModel;
use tempfile::TempDir;

/// Runs a scenario against a fresh read model in a temporary directory.
async fn with_embedded_read_model(scenario: Scenario) {
    let directory = TempDir::new().expect("tempdir");
    let read_model = EmbeddedReadModel::open(directory.path()).expect("read model opens");
    scenario(Arc::new(read_model)).await;
}

read_model::read_model_conformance_tests!(with_embedded_read_model);
