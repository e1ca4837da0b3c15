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

use integration_tests::client::{decimal, run_load, Answer, Api, Book};
use integration_tests::convergence::{assert_converges, projections_difference};
use integration_tests::system::{Servers, System, BINARIES};
use integration_tests::unique_name;
use serde_json::json;

const WALLETS: usize = 12;
const LOAD_WORKERS: usize = 8;
const OPERATIONS: usize = 400;
/// Bound on a background load's operations: it runs until told to stop.
const CRASH_OPERATIONS_MAX: usize = 1_000_000;
/// Rounds of killing each binary in turn.
const CRASH_ROUNDS: usize = 2;
/// Load time between two crashes.
const CRASH_INTERVAL: Duration = Duration::from_millis(1_500);
/// Bound on the downstream systems catching up with the event store.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
/// Seed of the load's choices.
const LOAD_SEED: u64 = 0;
/// Writes each followed at once by the reads of every projection.
const READ_YOUR_WRITES_ROUNDS: usize = 10;
/// Other clients writing meanwhile.
const BACKGROUND_WRITERS: usize = 4;

/// `workers` clients moving money between `book`'s wallets until
/// `keep_going` turns false (or [`CRASH_OPERATIONS_MAX`] operations).
fn spawn_load(
    api: &Api,
    book: &Book,
    workers: usize,
    keep_going: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (api, book, keep_going) = (api.clone(), book.clone(), keep_going.clone());
    tokio::spawn(async move {
        run_load(
            &api,
            &book,
            workers,
            CRASH_OPERATIONS_MAX,
            LOAD_SEED,
            keep_going,
        )
        .await;
    })
}

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
    let load = spawn_load(&api, &book, LOAD_WORKERS, &keep_going);
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

/// As on the embedded default, a read of a projection right after a write
/// shows it: the ledger's summary, the read model's listing and the history
/// from the search index, each read once, with no wait on the client's side
/// (command-api waits for the consumer groups: `command_api::catch_up`).
/// Other clients write all along, and no read gives up waiting: a read waits
/// for the writes acknowledged before it, not for those that keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_read_shows_the_writes_acknowledged_before_it() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let system = System::start(&servers).await;
    let api = Api::new(system.api_url());
    let owner = unique_name("owner");
    let book = Book::open(&api, &owner, 1).await;
    let wallet = &book.wallets[0];
    let others = Book::open(&api, &unique_name("others"), WALLETS).await;
    let keep_going = Arc::new(AtomicBool::new(true));
    let load = spawn_load(&api, &others, BACKGROUND_WRITERS, &keep_going);

    for round in 1..=READ_YOUR_WRITES_ROUNDS {
        let credited = api
            .post(
                &format!("/wallets/{wallet}/credit"),
                &json!({"amount": 1.25}),
            )
            .await;
        assert!(
            matches!(credited, Answer::Created),
            "credit {round}: {credited:?}"
        );
        let current = api
            .get(&format!("/wallets/{wallet}"))
            .await
            .expect("the wallet reads");
        let balance = decimal(&current["balance"]).expect("a balance");
        let listed = api
            .get(&format!("/wallets?ownerId={owner}"))
            .await
            .expect("the wallets list");
        let difference =
            projections_difference(&api, wallet, balance, current["version"].as_u64(), &listed)
                .await;
        assert!(
            difference.is_none(),
            "round {round}, right after the credit: {difference:?}\n{}",
            system.logs()
        );
    }
    keep_going.store(false, Ordering::Relaxed);
    load.await.expect("the other clients ran without a panic");
    assert!(
        others.acknowledged() > 0,
        "the other clients wrote meanwhile"
    );
    assert_eq!(
        system.log_count("is behind the event store"),
        0,
        "no read gave up waiting\n{}",
        system.logs()
    );
    groups_catch_up_in_health(&api).await;
    system.stop().await;
}

/// `/health` names the consumer group each projection read waits for and
/// counts what it has yet to apply, which reaches 0 once the writes stop.
async fn groups_catch_up_in_health(api: &Api) {
    let deadline = tokio::time::Instant::now() + CONVERGENCE_TIMEOUT;
    loop {
        let health = api.get("/health").await.expect("/health answers 200");
        let mut behind = 0;
        for (projection, binary) in [
            ("ledger", "ledger-consumer"),
            ("readModel", "projection-consumer"),
        ] {
            let group = &health[projection]["consumerGroup"];
            assert!(
                group["group"]
                    .as_str()
                    .is_some_and(|name| name.ends_with(&format!("_{binary}"))),
                "{projection}: {health}"
            );
            behind += group["messagesBehind"].as_u64().expect("a count");
        }
        if behind == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the groups are still {behind} messages behind: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
