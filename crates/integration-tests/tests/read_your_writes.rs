//! Reading your own writes on the full stack: the four binaries as
//! processes of their own on real PostgreSQL, Redis, Kafka and OpenSearch,
//! as in `tests/end_to_end`. A test binary of its own, so that it runs alone:
//! what it asserts (no read gives up its bounded wait) is about the
//! projections' lag, which systems started beside it would stretch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::client::{decimal, spawn_load, Answer, Api, Book};
use integration_tests::convergence::projections_difference;
use integration_tests::system::{Servers, System};
use integration_tests::unique_name;
use serde_json::json;

/// Wallets the other clients write to.
const WALLETS: usize = 12;
/// Writes each followed at once by the reads of every projection.
const READ_YOUR_WRITES_ROUNDS: usize = 10;
/// Other clients writing meanwhile.
const BACKGROUND_WRITERS: usize = 4;
/// Seed of the other clients' choices.
const LOAD_SEED: u64 = 0;
/// Bound on the projections catching up once the writes stop.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

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
    // The consumers have joined their groups and taken the openings: what
    // the rounds measure is the wait for a write, not a cold start.
    groups_catch_up_in_health(&api).await;
    let keep_going = Arc::new(AtomicBool::new(true));
    let load = spawn_load(&api, &others, BACKGROUND_WRITERS, LOAD_SEED, &keep_going);

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
/// counts what it has yet to apply, which reaches 0 (and each projection's
/// position the event store's head) once the writes stop.
async fn groups_catch_up_in_health(api: &Api) {
    let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let health = api.get("/health").await.expect("/health answers 200");
        let head = health["eventStore"]["headPosition"]
            .as_u64()
            .expect("a head");
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
            let position = health[projection]["position"].as_u64().expect("a position");
            behind += head.saturating_sub(position);
        }
        if behind == 0 {
            for projection in ["ledger", "readModel"] {
                assert_eq!(
                    health[projection]["consumerGroup"]["storedOffsets"], true,
                    "{projection}: {health}"
                );
            }
            // The publisher's probe of Kafka (1 s at most) may time out once on a
            // loaded machine, and make one answer "degraded": the next is asked.
            if health["status"] == "ok" {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projections are still behind (messages and log positions: {behind}), or /health is not ok: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
