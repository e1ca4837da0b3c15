//! The transfer journal's scenarios and the transfer process on KurrentDB
//! (`KURRENTDB_URL`), each in a stream namespace of its own; without it one
//! line says they were skipped and why ([`kurrentdb_url`]). The same
//! scenarios, all of them, run on the embedded store in
//! `cargo test -p transfer-process`.

use std::sync::{Arc, Once};

use event_store::EventStore;
use event_store_kurrentdb::{KurrentDbEventStore, StreamNames};
use integration_tests::{kurrentdb_url, unique_name};
use transfer_process::{conformance, TransferJournal};

/// Says once per test run why the cases did not run.
static SKIP_NOTICE: Once = Once::new();

/// Runs `scenario` on a store and its journal in a fresh namespace, or says
/// once why it did not (no `KURRENTDB_URL`).
async fn on_kurrentdb(scenario: conformance::Scenario) {
    let Some(url) = kurrentdb_url(&SKIP_NOTICE, "the transfer process cases on KurrentDB") else {
        return;
    };
    let names = StreamNames::namespaced(&unique_name("transfers"));
    let store = KurrentDbEventStore::connect_with_names(&url, names)
        .await
        .expect("connect to the KurrentDB of KURRENTDB_URL");
    assert!(!store.appends_streams_atomically());
    let journal: Arc<dyn TransferJournal> = Arc::new(store.transfer_journal());
    let store: Arc<dyn EventStore> = Arc::new(store);
    scenario(store, journal).await;
}

transfer_process::transfer_process_conformance_tests!(on_kurrentdb);
