//! The fault suite: a Jepsen-style bank test of the four binaries, command-api
//! as two replicas, on real PostgreSQL (with production durability), Kafka,
//! OpenSearch and Redis.
//!
//! Clients move money among wallets, resending each request with its
//! `Idempotency-Key` until a definitive answer, and keep the history of every
//! operation and its answer. Meanwhile a seeded schedule ([`schedule`]) kills
//! each binary and one replica at a time with `kill -9`, restarts PostgreSQL
//! (fast and immediate shutdown), kills the Kafka broker and Redis, and stops
//! (SIGSTOP) OpenSearch, Kafka, PostgreSQL and Redis for 10 to 45 s, each
//! healed before the next; while OpenSearch is away,
//! a new wallet must still reach the read model. After each fault a probe
//! (a new wallet) measures how long a write takes to reach the ledger, the read
//! model and the search index. Then: money conserved, no acknowledged
//! operation lost, none applied twice, no refused one applied, no negative
//! balance, `/ledger/verify` 200, read model and search index equal to the
//! event store within 60 s, the dead-letter topic empty, and every 5xx seen a
//! 503. A table shows each fault's operations acknowledged, lost, doubled and
//! its seconds to converge.
//!
//! A second scenario ([`lossy`]) runs PostgreSQL without fsync and shuts it
//! down in immediate mode under load: acknowledged commits are lost by design,
//! and what remains must be consistent.
//!
//! The seed is printed; `WALLEX_FAULT_SEED=N` replays a schedule. The faults
//! go through `scripts/infra.sh`, so the suite runs only on the servers that
//! script started in this checkout (`.infra/env`), and skips otherwise.

mod audit;
mod lossy;
mod schedule;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::client::{decimal, run_load, Answer, Api, Book, OPENING_BALANCE};
use integration_tests::convergence::assert_converges;
use integration_tests::system::{Servers, System};
use integration_tests::{started_by_infra_script, unique_name};
use rust_decimal::Decimal;
use search_index::{ElasticsearchIndex, SearchIndex};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use wallet_domain::WalletId;

use audit::{read_events, topic_depth, Tally};
use schedule::{infra, inject_and_heal, schedule, Step};

/// command-api replicas behind the clients, taking turns.
const REPLICAS: usize = 2;
const WALLETS: usize = 20;
const LOAD_WORKERS: usize = 8;
/// Bound on the load: it runs until the schedule is done.
const OPERATIONS_MAX: usize = 1_000_000;
/// Load before the first fault.
const WARM_UP: Duration = Duration::from_secs(3);
/// Bound on a probe's write reaching the ledger, the read model and the search index after a
/// fault: a member left silent by a Kafka stall is replaced once messages waited a minute
/// without reaching it (`event_bus::MEMBER_STALL_MAX_MS`, `event_bus::MEMBER_OUT_OF_GROUP_MAX_MS`),
/// then joins and catches up.
const PROBE_CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(90);
const PROBE_POLL: Duration = Duration::from_millis(250);
/// Bound on every system agreeing with the book once the load stopped.
const FINAL_CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// What the whole suite should take (set-up, warm-up, the schedule, convergence, audit); a
/// longer run is reported, to keep `.ci/run` within its budget.
const SUITE_BUDGET: Duration = Duration::from_secs(8 * 60);
/// Variable replaying a schedule.
const SEED_VARIABLE: &str = "WALLEX_FAULT_SEED";

/// Held by each scenario: both restart the same servers, so they take turns.
static SERVERS_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bank_survives_the_faults_of_a_production_week() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    if !servers_are_from_infra_script(&servers) {
        return;
    }
    let _servers_in_use = SERVERS_IN_USE.lock().await;
    let suite_started = Instant::now();
    let seed = seed();
    say(&format!(
        "fault suite seed {seed} (replay: {SEED_VARIABLE}={seed} cargo test -p integration-tests --test faults)"
    ));
    make_postgres_durable(&servers.database_url).await;

    let mut system = System::start_replicated(&servers, REPLICAS).await;
    let api = Api::replicated(system.api_urls());
    let owner = unique_name("owner");
    let probe_owner = format!("{owner}_probe");
    let book = Book::open(&api, &owner, WALLETS).await;
    let search = ElasticsearchIndex::connect(&system.elasticsearch_url, &system.index_prefix)
        .expect("a search index client");

    let keep_going = Arc::new(AtomicBool::new(true));
    let load = {
        let (api, book, keep_going) = (api.clone(), book.clone(), keep_going.clone());
        tokio::spawn(async move {
            run_load(&api, &book, LOAD_WORKERS, OPERATIONS_MAX, seed, keep_going).await;
        })
    };
    tokio::time::sleep(WARM_UP).await;

    let steps = schedule(seed, REPLICAS);
    let mut convergence: Vec<Result<Duration, String>> = Vec::with_capacity(steps.len());
    let mut outage_failures = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        tokio::time::sleep(step.gap).await;
        let phase = index + 1;
        book.set_phase(phase);
        say(&format!(
            "fault {phase}/{}: {} ({} operations acknowledged so far)",
            steps.len(),
            step.fault.label(),
            book.acknowledged()
        ));
        let during = format!("{probe_owner}-{phase}-during");
        if let Err(failure) = inject_and_heal(&mut system, step, &api, &during, &probe_owner).await
        {
            outage_failures.push(format!("{}: {failure}", step.fault.label()));
        }
        let probe = format!("{probe_owner}-{phase}");
        convergence.push(probe_converges(&api, &search, &probe, &probe_owner).await);
    }
    book.set_phase(steps.len() + 1);
    keep_going.store(false, Ordering::Relaxed);
    if let Err(failure) = load.await {
        panic!(
            "the load failed (seed {seed}): {failure}\n{}",
            system.logs()
        );
    }

    let final_convergence =
        assert_converges(&api, &system, &book, &owner, FINAL_CONVERGENCE_TIMEOUT).await;
    let mut verdict = audit(&api, &system, &book, &steps, &convergence).await;
    verdict.extend(outage_failures);
    say(&format!(
        "final convergence {:.1}s; suite {:.0}s (budget {}s)",
        final_convergence.as_secs_f64(),
        suite_started.elapsed().as_secs_f64(),
        SUITE_BUDGET.as_secs()
    ));
    if suite_started.elapsed() > SUITE_BUDGET {
        say("the fault suite ran over its budget");
    }
    assert!(
        verdict.is_empty(),
        "seed {seed} ({SEED_VARIABLE}={seed} replays it):\n{}\n{}",
        verdict.join("\n"),
        system.logs()
    );
    system.stop().await;
}

/// PostgreSQL without fsync loses acknowledged commits in immediate
/// shutdowns; what remains must be consistent (see [`lossy`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_survives_a_postgres_that_loses_acknowledged_commits_is_consistent() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    if !servers_are_from_infra_script(&servers) {
        return;
    }
    let _servers_in_use = SERVERS_IN_USE.lock().await;
    let seed = seed();
    say(&format!(
        "lossy scenario seed {seed} (replay: {SEED_VARIABLE}={seed} cargo test -p integration-tests --test faults what_survives)"
    ));
    let started = Instant::now();
    let failures = lossy::postgres_losing_commits(&servers, seed).await;
    say(&format!(
        "lossy scenario {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    assert!(
        failures.is_empty(),
        "seed {seed} ({SEED_VARIABLE}={seed} replays it):\n{}",
        failures.join("\n")
    );
}

/// Every check of the history, the store, the dead letters and the answers;
/// prints the table. Returns what failed.
async fn audit(
    api: &Api,
    system: &System,
    book: &Book,
    steps: &[Step],
    convergence: &[Result<Duration, String>],
) -> Vec<String> {
    let stored = read_events(system.database_url()).await;
    let mut failures = stored.broken.clone();
    let mut tallies = vec![Tally::default(); steps.len() + 2];
    for operation in book.history() {
        if let Some(failure) = stored.tally(&operation, &mut tallies[operation.phase]) {
            failures.push(failure);
        }
    }
    print_table(steps, &tallies, convergence);

    let expected_total = Decimal::from(OPENING_BALANCE) * Decimal::from(WALLETS as u64)
        + book
            .history()
            .iter()
            .filter(|operation| {
                operation.outcome == integration_tests::client::Outcome::Acknowledged
            })
            .flat_map(|operation| operation.moves.iter().map(|(_, change)| *change))
            .sum::<Decimal>();
    let stored_total: Decimal = book
        .wallets
        .iter()
        .map(|wallet| {
            stored
                .final_balances
                .get(wallet)
                .copied()
                .unwrap_or_default()
        })
        .sum();
    if stored_total != expected_total {
        failures.push(format!(
            "money not conserved: the wallets hold {stored_total}, the acknowledged operations make {expected_total}"
        ));
    }
    for (step, converged) in steps.iter().zip(convergence) {
        if let Err(missing) = converged {
            failures.push(format!(
                "after {} a write did not reach the ledger, read model and search index in {}s (found {missing})",
                step.fault.label(),
                PROBE_CONVERGENCE_TIMEOUT.as_secs()
            ));
        }
    }
    let dead_letters = topic_depth(&system.kafka_brokers, &system.dead_letter_topic);
    if dead_letters != 0 {
        failures.push(format!("{dead_letters} messages on the dead-letter topic"));
    }
    let server_errors = api.server_errors();
    say(&format!(
        "5xx answers seen: {} ({} of them 503)",
        server_errors.len(),
        server_errors
            .iter()
            .filter(|error| error.status == 503)
            .count()
    ));
    for error in server_errors {
        if error.status != 503 {
            failures.push(format!("a 5xx other than 503: {error:?}"));
        }
    }
    match api.get("/ledger/verify").await {
        Some(verdict) if verdict["ok"] == true => {}
        verdict => failures.push(format!("GET /ledger/verify is not 200 ok: {verdict:?}")),
    }
    failures
}

/// Creates the wallet `probe` (opening balance 1) and waits until the ledger,
/// the read model and the search index show it; how long that took from the
/// heal, or, past [`PROBE_CONVERGENCE_TIMEOUT`], which of them showed it.
async fn probe_converges(
    api: &Api,
    search: &ElasticsearchIndex,
    probe: &str,
    owner: &str,
) -> Result<Duration, String> {
    let started = Instant::now();
    let answer = create_probe(api, probe, owner).await;
    assert!(
        matches!(answer, Answer::Created),
        "probe {probe}: {answer:?}"
    );
    let id = WalletId::parse(probe).expect("a valid probe id");
    let mut missing = String::from("nothing read yet");
    while started.elapsed() < PROBE_CONVERGENCE_TIMEOUT {
        let ledger = api
            .get(&format!("/ledger/wallet/{probe}/summary"))
            .await
            .is_some_and(|summary| decimal(&summary["balance"]) == Some(Decimal::ONE));
        let listed = listed(api, owner, probe).await;
        let indexed = search.wallet(&id).await.ok().flatten().is_some();
        if ledger && listed && indexed {
            return Ok(started.elapsed());
        }
        missing = format!("in the ledger: {ledger}, read model: {listed}, search index: {indexed}");
        tokio::time::sleep(PROBE_POLL).await;
    }
    Err(missing)
}

/// Creates wallet `probe` of `owner` with an opening balance of 1.
async fn create_probe(api: &Api, probe: &str, owner: &str) -> Answer {
    api.post(
        "/wallets",
        &json!({"walletId": probe, "ownerId": owner, "initialBalance": 1}),
    )
    .await
}

/// Whether the read model lists wallet `probe` among `owner`'s (`GET /wallets`).
async fn listed(api: &Api, owner: &str, probe: &str) -> bool {
    api.get(&format!("/wallets?ownerId={owner}&limit=100"))
        .await
        .is_some_and(|wallets| {
            wallets
                .as_array()
                .is_some_and(|wallets| wallets.iter().any(|wallet| wallet["id"] == probe))
        })
}

fn print_table(steps: &[Step], tallies: &[Tally], convergence: &[Result<Duration, String>]) {
    let mut lines = vec![format!(
        "{:<32} {:>12} {:>6} {:>8} {:>16} {:>10}",
        "fault", "acknowledged", "lost", "doubled", "refused-applied", "converged"
    )];
    let row = |name: &str, tally: &Tally, converged: String| {
        format!(
            "{name:<32} {:>12} {:>6} {:>8} {:>16} {converged:>10}",
            tally.acknowledged, tally.lost, tally.doubled, tally.refused_applied
        )
    };
    lines.push(row("(warm-up, no fault)", &tallies[0], "-".into()));
    for (index, step) in steps.iter().enumerate() {
        let converged = match convergence.get(index) {
            Some(Ok(took)) => format!("{:.1}s", took.as_secs_f64()),
            _ => "never".into(),
        };
        lines.push(row(&step.fault.label(), &tallies[index + 1], converged));
    }
    let total = tallies.iter().fold(Tally::default(), |sum, tally| Tally {
        acknowledged: sum.acknowledged + tally.acknowledged,
        lost: sum.lost + tally.lost,
        doubled: sum.doubled + tally.doubled,
        refused_applied: sum.refused_applied + tally.refused_applied,
    });
    lines.push(row("total", &total, "-".into()));
    say(&lines.join("\n"));
}

/// `WALLEX_FAULT_SEED`, or a new seed from the clock.
fn seed() -> u64 {
    match std::env::var(SEED_VARIABLE) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VARIABLE} is an unsigned integer, not {text:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default(),
    }
}

/// Whether the servers are those `scripts/infra.sh up` started in this
/// checkout, which the suite can kill and start again. Says why not (and
/// fails under `WALLEX_REQUIRE_INFRA=1`) otherwise.
fn servers_are_from_infra_script(servers: &Servers) -> bool {
    started_by_infra_script(
        "the fault suite needs the servers",
        "DATABASE_URL",
        &servers.database_url,
    )
}

/// Restarts PostgreSQL with fsync and synchronous_commit on unless they are:
/// a crash must not lose an acknowledged commit.
async fn make_postgres_durable(database_url: &str) {
    if postgres_is_durable(database_url).await {
        return;
    }
    say("restarting postgres with production durability (fsync, synchronous_commit on)");
    infra(&["restart", "postgres", "fast"]).await;
    assert!(
        postgres_is_durable(database_url).await,
        "postgres still runs without fsync or synchronous_commit"
    );
}

async fn postgres_is_durable(database_url: &str) -> bool {
    let mut connection = PgConnection::connect(database_url)
        .await
        .expect("connect to postgres");
    let mut durable = true;
    for setting in ["fsync", "synchronous_commit"] {
        let (value,): (String,) = sqlx::query_as(&format!("SHOW {setting}"))
            .fetch_one(&mut connection)
            .await
            .expect("SHOW a setting");
        durable &= value == "on";
    }
    let _ = connection.close().await;
    durable
}

/// A line on the test's stderr, past the harness's capture: the seed and the
/// table are meant to be seen in every run.
fn say(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
