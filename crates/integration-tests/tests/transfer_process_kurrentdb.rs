//! The transfer journal's scenarios and the transfer process on KurrentDB
//! (`KURRENTDB_URL`), each in a stream namespace of its own; without it one
//! line says they were skipped and why ([`kurrentdb_url`]). The same
//! scenarios run on the embedded store in `cargo test -p transfer-process`.

use std::sync::{Arc, Once};

use event_store::EventStore;
use event_store_kurrentdb::{KurrentDbEventStore, StreamNames};
use integration_tests::{kurrentdb_url, unique_name};
use transfer_process::{conformance, TransferJournal};

/// Says once per test run why the cases did not run.
static SKIP_NOTICE: Once = Once::new();

/// A store and its journal in a fresh namespace, or `None` (and one line
/// saying why) without `KURRENTDB_URL`.
async fn kurrentdb() -> Option<(Arc<dyn EventStore>, Arc<dyn TransferJournal>)> {
    let url = kurrentdb_url(&SKIP_NOTICE, "the transfer process cases on KurrentDB")?;
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

#[tokio::test]
async fn a_capture_to_another_wallet_runs_as_a_transfer_and_its_key_replays_it() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::a_capture_to_another_wallet_runs_as_a_transfer_and_its_key_replays_it(
        store, journal,
    )
    .await;
}

#[tokio::test]
async fn a_capture_stopped_between_its_halves_is_finished_by_the_resumption() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::a_capture_stopped_between_its_halves_is_finished_by_the_resumption(store, journal)
        .await;
}

#[tokio::test]
async fn a_capture_the_payee_refuses_is_reversed_and_the_hold_stays_captured() {
    let Some((store, journal)) = kurrentdb().await else {
        return;
    };
    conformance::a_capture_the_payee_refuses_is_reversed_and_the_hold_stays_captured(
        store, journal,
    )
    .await;
}
