//! The transfer journal's scenarios and the transfer process on KurrentDB
//! (`KURRENTDB_URL`), each in a stream namespace of its own. Without
//! `KURRENTDB_URL` each test says in one line that it skipped and why: no
//! package registry ships a KurrentDB server, so it is a skip even under
//! `WALLEX_REQUIRE_INFRA=1` (as in tests/event_store_contract.rs). The same
//! scenarios run on the embedded store in `cargo test -p transfer-process`.

use std::io::Write;
use std::sync::{Arc, Once};

use event_store::EventStore;
use event_store_kurrentdb::{KurrentDbEventStore, StreamNames};
use integration_tests::unique_name;
use transfer_process::{conformance, TransferJournal};

/// Says once per test run why the cases did not run.
static SKIP_NOTICE: Once = Once::new();

/// A store and its journal in a fresh namespace, or `None` (and one line
/// saying why) without `KURRENTDB_URL`.
async fn kurrentdb() -> Option<(Arc<dyn EventStore>, Arc<dyn TransferJournal>)> {
    let Some(url) = std::env::var("KURRENTDB_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        SKIP_NOTICE.call_once(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "skipped: the transfer process cases on KurrentDB need KURRENTDB_URL (no \
                 KurrentDB server can be installed here: no registry ships one and there is no \
                 Docker; e.g. KURRENTDB_URL=kurrentdb://127.0.0.1:2113?tls=false)"
            );
        });
        return None;
    };
    let names = StreamNames::namespaced(&unique_name("transfers"));
    let store = KurrentDbEventStore::connect_with_names(&url, names)
        .await
        .expect("connect to the KurrentDB of KURRENTDB_URL");
    assert!(!store.appends_streams_atomically());
    let journal: Arc<dyn TransferJournal> = Arc::new(store.transfer_journal());
    Some((Arc::new(store), journal))
}

#[tokio::test]
async fn journal_records_append_in_order_and_a_stale_count_conflicts() {
    let Some((_, journal)) = kurrentdb().await else {
        return;
    };
    conformance::journal_records_append_in_order_and_a_stale_count_conflicts(&*journal).await;
}

#[tokio::test]
async fn journal_lists_open_transfers_oldest_first_until_they_finish() {
    let Some((_, journal)) = kurrentdb().await else {
        return;
    };
    conformance::journal_lists_open_transfers_oldest_first_until_they_finish(&*journal).await;
}

#[tokio::test]
async fn a_transfer_runs_to_its_end_and_its_key_replays_it() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::a_transfer_runs_to_its_end_and_its_key_replays_it(store, journal).await;
}

#[tokio::test]
async fn an_intent_left_by_a_crash_is_finished_by_the_resumption() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::an_intent_left_by_a_crash_is_finished_by_the_resumption(store, journal).await;
}

#[tokio::test]
async fn a_credit_the_payee_cannot_take_is_reversed() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::a_credit_the_payee_cannot_take_is_reversed(store, journal).await;
}
