//! The whole system as it runs in production: the four binaries as separate
//! processes on real PostgreSQL, Redis, Kafka and OpenSearch, driven only
//! through command-api's HTTP API.
//!
//! Every check compares the sum of acknowledged operations (the client's
//! book) with what each downstream system shows: the event store (through
//! `GET /wallets/{id}`), the ledger, the read model and the search index
//! (directly and through `GET /wallets/{id}/transactions`).
//! A lost event leaves a balance short; a doubled posting shows in the
//! ledger's balance and entry count.
//!
//! The binaries are the ones `cargo build --bins` put in this test's target
//! folder (or those in `WALLEX_BIN_DIR`); `scripts/ci-integration.sh` builds them.
//! The fault suite (`tests/faults`) runs the same system under faults of the servers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::client::{run_load, spawn_load, Api, Book};
use integration_tests::convergence::assert_converges;
use integration_tests::system::{Servers, System, BINARIES};
use integration_tests::unique_name;
use serde_json::json;

const WALLETS: usize = 12;
const LOAD_WORKERS: usize = 8;
const OPERATIONS: usize = 400;
/// Rounds of killing each binary in turn.
const CRASH_ROUNDS: usize = 2;
/// Load time between two crashes.
const CRASH_INTERVAL: Duration = Duration::from_millis(1_500);
/// Bound on the downstream systems catching up with the event store.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// Seed of the load's choices.
const LOAD_SEED: u64 = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_flows_through_all_four_binaries() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let system = System::start(&servers).await;
    let api = Api::new(system.api_url());
    let owner = unique_name("owner");
    let opening = json!({"walletId": "anonymous", "ownerId": owner, "initialBalance": 5});
    assert_eq!(
        api.post_anonymously("/wallets", &opening).await,
        401,
        "authentication is on"
    );
    let book = Book::open(&api, &owner, WALLETS).await;

    run_load(
        &api,
        &book,
        LOAD_WORKERS,
        OPERATIONS,
        LOAD_SEED,
        Arc::new(AtomicBool::new(true)),
    )
    .await;

    assert!(
        book.acknowledged() > OPERATIONS / 2,
        "most operations succeed"
    );
    assert_converges(&api, &system, &book, &owner, CONVERGENCE_TIMEOUT).await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_of_any_binary_loses_and_doubles_nothing() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let mut system = System::start(&servers).await;
    let api = Api::new(system.api_url());
    let owner = unique_name("owner");
    let book = Book::open(&api, &owner, WALLETS).await;

    let keep_going = Arc::new(AtomicBool::new(true));
    let load = spawn_load(&api, &book, LOAD_WORKERS, LOAD_SEED, &keep_going);
    for _ in 0..CRASH_ROUNDS {
        for binary in BINARIES {
            tokio::time::sleep(CRASH_INTERVAL).await;
            let before = book.acknowledged();
            system.crash_and_restart(binary).await;
            eprintln!("killed -9 and restarted {binary} ({before} operations acknowledged before)");
        }
    }
    tokio::time::sleep(CRASH_INTERVAL).await;
    keep_going.store(false, Ordering::Relaxed);
    load.await.expect("the load ran without a panic");

    eprintln!(
        "{} operations acknowledged across the crashes",
        book.acknowledged()
    );
    assert!(book.acknowledged() > 0, "the load got answers");
    assert_converges(&api, &system, &book, &owner, CONVERGENCE_TIMEOUT).await;
    system.stop().await;
}
