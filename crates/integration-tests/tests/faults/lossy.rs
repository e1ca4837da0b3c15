//! The second scenario: PostgreSQL that loses acknowledged commits.
//!
//! PostgreSQL runs with `fsync` and `synchronous_commit` off and is shut down
//! in immediate mode under load, a few times: commits it acknowledged but had
//! not yet written are gone when it comes back, as after a failover to an
//! asynchronous replica. Acknowledged operations CAN be lost here, by design,
//! and the scenario does not count them as failures (it reports them). What it
//! asserts is that what remains is consistent: every stream continues itself
//! event after event (no decision was made on a state whose last event the
//! store lost, which is what a command-api that sees the head go backwards and
//! drops its cache guarantees), money is conserved over the surviving events
//! (a transfer survives with both legs or not at all), no operation is applied
//! twice and no refused one applied, and every replica serves writes again
//! after each restart.
//!
//! The consumers' own tables live in that PostgreSQL too, and so do their
//! consumer offsets, moved in the transaction that applies a batch: a lost
//! commit of the ledger or the read model loses its offsets too, and the
//! consumer reads those messages again. So once the faults are over, without
//! a rebuild, the scenario asserts that every event the store holds reaches
//! both: the ledger has posted each one, and no wallet of the read model is
//! behind its stream (waiting on a version gap for an event the store has).
//!
//! What only a rebuild removes: events the relay published and the store then
//! lost (phantoms, as after a failover to an asynchronous replica). The
//! consumers took them, and the store may have given their positions and
//! versions to other events since. The ledger keeps one transaction per
//! position, so of a phantom and a stored event at one position it posts the
//! first it receives and dead-letters the other; either way that wallet's
//! later events are parked behind the letter until the rebuild. The way back is what an operator does
//! after a failover that lost data: stop the consumers, `rebuild` the ledger
//! and the read model from the event store, start them again. The scenario
//! does that and then asserts `/ledger/verify` 200; it reports what the
//! ledger said before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::client::{run_load, Answer, Api, Book, Outcome, OPENING_BALANCE};
use integration_tests::system::{Servers, System, LEDGER_CONSUMER, PROJECTION_CONSUMER};
use integration_tests::unique_name;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use wallet_domain::{continues, evolve, WalletEvent, WalletState};

use crate::audit::{dead_letters, read_events, DeadLetter, Tally};
use crate::say;
use crate::schedule::infra_with_durability;

const REPLICAS: usize = 2;
const WALLETS: usize = 10;
const LOAD_WORKERS: usize = 8;
const OPERATIONS_MAX: usize = 1_000_000;
/// Immediate shutdowns of PostgreSQL during the load.
const IMMEDIATE_RESTARTS: usize = 3;
/// Load before each immediate shutdown.
const LOAD_BEFORE_RESTART: Duration = Duration::from_secs(6);
/// Bound on a replica serving a write again after PostgreSQL is back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
const RECOVERY_POLL: Duration = Duration::from_millis(250);
/// How much of a `/ledger/verify` body the output shows, in characters.
const VERDICT_SHOWN_CHARS_MAX: usize = 300;
/// Bound on the consumers taking every event the store holds once the faults are over.
const CONSUMERS_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// What a command-api logs when it sees the store's head below one it saw.
const WENT_BACKWARDS_LOG: &str = "head went backwards";

/// Runs the scenario on `servers` (those of `scripts/infra.sh up`). Returns what failed.
pub async fn postgres_losing_commits(servers: &Servers, seed: u64) -> Vec<String> {
    say("lossy scenario: postgres with fsync and synchronous_commit off, immediate shutdowns");
    infra_with_durability(&["restart", "postgres", "fast"], "fast").await;
    let mut system = System::start_replicated(servers, REPLICAS).await;
    let api = Api::replicated(system.api_urls());
    let owner = unique_name("lossy");
    let book = Book::open(&api, &owner, WALLETS).await;

    let keep_going = Arc::new(AtomicBool::new(true));
    let load = {
        let (api, book, keep_going) = (api.clone(), book.clone(), keep_going.clone());
        tokio::spawn(async move {
            run_load(&api, &book, LOAD_WORKERS, OPERATIONS_MAX, seed, keep_going).await;
        })
    };
    let mut failures = Vec::new();
    for restart in 1..=IMMEDIATE_RESTARTS {
        tokio::time::sleep(LOAD_BEFORE_RESTART).await;
        book.set_phase(restart);
        say(&format!(
            "lossy {restart}/{IMMEDIATE_RESTARTS}: postgres immediate shutdown ({} acknowledged so far)",
            book.acknowledged()
        ));
        infra_with_durability(&["restart", "postgres", "immediate"], "fast").await;
        for (replica, url) in system.api_urls().into_iter().enumerate() {
            let probe = format!("{owner}_probe-{restart}-{}", replica + 1);
            if let Err(failure) = replica_writes(url, &probe, &owner).await {
                failures.push(format!(
                    "after immediate shutdown {restart}, replica {}: {failure}",
                    replica + 1
                ));
            }
        }
    }
    keep_going.store(false, Ordering::Relaxed);
    if let Err(failure) = load.await {
        failures.push(format!("the load failed: {failure}"));
    }

    failures.extend(audit(&api, &system, &book).await);
    failures.extend(consumers_caught_up(&system, &book.wallets).await);
    say(&format!(
        "lossy: the ledger before its rebuild: {}",
        shown(api.get_answer("/ledger/verify").await)
    ));
    failures.extend(rebuild_consumers(&mut system).await);
    let verdict = ledger_verdict(&api).await;
    if verdict != "ok" {
        failures.push(format!(
            "after the rebuild, GET /ledger/verify is {verdict}"
        ));
    }
    if !failures.is_empty() {
        failures.push(system.logs());
    }
    system.stop().await;
    failures
}

/// Waits, within [`CONSUMERS_CATCH_UP_TIMEOUT`], until the consumers have taken
/// every event the store holds of `wallets`, without a rebuild: the ledger has
/// posted each one, and no wallet of the read model is behind its stream. Says
/// what is still missing when the time is up.
async fn consumers_caught_up(system: &System, wallets: &[String]) -> Vec<String> {
    let started = Instant::now();
    loop {
        let letters: Vec<_> = dead_letters(&system.kafka_brokers, &system.dead_letter_topic)
            .into_iter()
            .filter(|letter| letter.handler == ledger_consumer::HANDLER_NAME)
            .collect();
        let missing = consumers_missing(system.database_url(), wallets, &letters).await;
        if missing.is_empty() {
            say(&format!(
                "lossy: the consumers hold every stored event {:.1}s after the faults, without a rebuild",
                started.elapsed().as_secs_f64()
            ));
            return missing;
        }
        if started.elapsed() > CONSUMERS_CATCH_UP_TIMEOUT {
            return missing;
        }
        tokio::time::sleep(RECOVERY_POLL).await;
    }
}

/// Stored events of `wallets` the ledger has not posted, and wallets the read
/// model holds at a version below their stream's (or not at all).
/// `ledger_letters` are the ledger's dead letters.
async fn consumers_missing(
    database_url: &str,
    wallets: &[String],
    ledger_letters: &[DeadLetter],
) -> Vec<String> {
    let mut connection = PgConnection::connect(database_url)
        .await
        .expect("connect to the consumers' database");
    // Where the ledger met a phantom (an event the relay published and the
    // store no longer has), a wallet's events from there on wait for the
    // rebuild, as the module says: a stored event whose position the ledger
    // gave to a phantom is dead-lettered, and so is a phantom whose position
    // a stored event took first; the wallet's later events are parked behind
    // either letter. Any other unposted event is a failure.
    let (letter_wallets, letter_versions, letter_ids): (Vec<_>, Vec<_>, Vec<_>) = ledger_letters
        .iter()
        .map(|letter| {
            (
                letter.wallet_id.clone(),
                letter.stream_version,
                letter.event_id.clone(),
            )
        })
        .collect();
    let (unposted, behind_phantoms): (i64, i64) = sqlx::query_as(
        "WITH unposted AS ( \
             SELECT e.stream_id, e.version, EXISTS ( \
                 SELECT 1 FROM ledger_transactions phantom \
                 WHERE phantom.position = e.position AND phantom.transaction_id <> e.event_id \
                   AND NOT EXISTS (SELECT 1 FROM events s WHERE s.event_id = phantom.transaction_id) \
             ) AS on_phantom \
             FROM events e \
             WHERE e.stream_id = ANY($1) AND NOT EXISTS \
             (SELECT 1 FROM ledger_processed_events p WHERE p.event_id = e.event_id)), \
         phantom_letters AS ( \
             SELECT l.stream_id, l.version \
             FROM unnest($2::text[], $3::bigint[], $4::text[]) AS l(stream_id, version, event_id) \
             WHERE NOT EXISTS (SELECT 1 FROM events s WHERE s.event_id::text = l.event_id)), \
         first_on_phantom AS ( \
             SELECT stream_id, min(version) AS version FROM ( \
                 SELECT stream_id, version FROM unposted WHERE on_phantom \
                 UNION ALL SELECT stream_id, version FROM phantom_letters) AS met \
             GROUP BY stream_id) \
         SELECT count(*) FILTER (WHERE f.version IS NULL OR u.version < f.version), \
                count(*) FILTER (WHERE u.version >= f.version) \
         FROM unposted u LEFT JOIN first_on_phantom f ON f.stream_id = u.stream_id",
    )
    .bind(wallets)
    .bind(&letter_wallets)
    .bind(&letter_versions)
    .bind(&letter_ids)
    .fetch_one(&mut connection)
    .await
    .expect("count the stored events the ledger has not posted");
    if unposted == 0 && behind_phantoms > 0 {
        say(&format!(
            "lossy: {behind_phantoms} stored events wait for the rebuild: the ledger met a \
             phantom (an event the store lost after the relay published it) at or before each \
             in its wallet, posted at its position or dead-lettered"
        ));
    }
    let behind: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT e.stream_id, max(e.version), r.version FROM events e \
         LEFT JOIN wallet_read_model r ON r.wallet_id = e.stream_id \
         WHERE e.stream_id = ANY($1) GROUP BY e.stream_id, r.version \
         HAVING r.version IS NULL OR r.version < max(e.version)",
    )
    .bind(wallets)
    .fetch_all(&mut connection)
    .await
    .expect("find the wallets the read model holds behind their stream");
    let _ = connection.close().await;
    let mut missing = Vec::new();
    if unposted > 0 {
        missing.push(format!(
            "without a rebuild, the ledger has not posted {unposted} stored events \
             (the ledger's dead letters: {ledger_letters:?})"
        ));
    }
    for (wallet, stored, projected) in behind {
        missing.push(format!(
            "without a rebuild, the read model holds {wallet} at version {projected:?} while the store has {stored}: stuck on a gap"
        ));
    }
    missing
}

/// Creates wallet `probe` through the replica at `url` until it answers 201,
/// within [`RECOVERY_TIMEOUT`].
async fn replica_writes(url: String, probe: &str, owner: &str) -> Result<(), String> {
    let api = Api::new(url);
    let started = Instant::now();
    let body = json!({"walletId": probe, "ownerId": owner, "initialBalance": 1});
    loop {
        match api.post("/wallets", &body).await {
            Answer::Created => return Ok(()),
            // An earlier attempt was stored and answered after all.
            Answer::Refused { status: 409, .. } => return Ok(()),
            refused if started.elapsed() > RECOVERY_TIMEOUT => {
                return Err(format!(
                    "no write in {}s: {refused:?}",
                    RECOVERY_TIMEOUT.as_secs()
                ))
            }
            _ => tokio::time::sleep(RECOVERY_POLL).await,
        }
    }
}

/// Stops each consumer, rebuilds its tables from the event store and starts
/// it again; says which rebuild failed.
async fn rebuild_consumers(system: &mut System) -> Vec<String> {
    let mut failures = Vec::new();
    for consumer in [LEDGER_CONSUMER, PROJECTION_CONSUMER] {
        system.kill(consumer);
        if !system.run_command(consumer, &["rebuild"]).await {
            failures.push(format!("{consumer} rebuild failed"));
        }
        system.restart(consumer).await;
    }
    failures
}

/// `ok` once `GET /ledger/verify` answers 200, or what it answered last
/// within [`RECOVERY_TIMEOUT`].
async fn ledger_verdict(api: &Api) -> String {
    let started = Instant::now();
    loop {
        let verdict = api.get_answer("/ledger/verify").await;
        if verdict.0 == 200 || started.elapsed() > RECOVERY_TIMEOUT {
            return shown(verdict);
        }
        tokio::time::sleep(RECOVERY_POLL).await;
    }
}

/// `ok` for a 200, else the status and the start of the body.
fn shown((status, body): (u16, String)) -> String {
    if status == 200 {
        return "ok".to_owned();
    }
    let start: String = body.chars().take(VERDICT_SHOWN_CHARS_MAX).collect();
    format!("{status}: {start}")
}

/// What remains after the lost commits, checked; prints what was lost.
async fn audit(api: &Api, system: &System, book: &Book) -> Vec<String> {
    let mut failures = streams_continue_themselves(system.database_url(), &book.wallets).await;
    let stored = read_events(system.database_url()).await;
    failures.extend(stored.broken.iter().cloned());
    let mut tally = Tally::default();
    let mut surviving_change = Decimal::ZERO;
    for operation in book.history() {
        let mut counted = Tally::default();
        let found = stored.legs_found(&operation);
        if let Some(failure) = stored.tally(&operation, &mut counted) {
            // A lost acknowledged operation is what this scenario allows.
            if counted.lost == 0 {
                failures.push(failure);
            }
        }
        tally.acknowledged += counted.acknowledged;
        tally.lost += counted.lost;
        tally.doubled += counted.doubled;
        tally.refused_applied += counted.refused_applied;
        if found.iter().any(|count| *count > 0) && found.contains(&0) {
            failures.push(format!(
                "only some legs of {operation:?} survived (found {found:?})"
            ));
        }
        if operation.outcome == Outcome::Acknowledged && !found.contains(&0) {
            surviving_change += operation
                .moves
                .iter()
                .map(|(_, change)| *change)
                .sum::<Decimal>();
        }
    }
    let stored_total: Decimal = book
        .wallets
        .iter()
        .filter_map(|wallet| stored.final_balances.get(wallet))
        .sum();
    let expected_total =
        Decimal::from(OPENING_BALANCE) * Decimal::from(WALLETS as u64) + surviving_change;
    if stored_total != expected_total {
        failures.push(format!(
            "money not conserved over the surviving events: the wallets hold {stored_total}, their surviving operations make {expected_total}"
        ));
    }
    let non_503: Vec<_> = api
        .server_errors()
        .into_iter()
        .filter(|error| error.status != 503)
        .collect();
    if !non_503.is_empty() {
        failures.push(format!("5xx other than 503: {non_503:?}"));
    }
    say(&format!(
        "lossy: {} acknowledged, {} lost (allowed: fsync off), {} doubled, {} refused-applied; \
         {} 5xx (all 503 unless reported); a replica saw the head go backwards {} times",
        tally.acknowledged,
        tally.lost,
        tally.doubled,
        tally.refused_applied,
        api.server_errors().len(),
        system.log_count(WENT_BACKWARDS_LOG)
    ));
    failures
}

/// Every event of `wallets`' streams, folded in order: each must continue the
/// state before it (version, balance, holds), or a decision was made on a
/// state the store does not hold.
async fn streams_continue_themselves(database_url: &str, wallets: &[String]) -> Vec<String> {
    let mut connection = PgConnection::connect(database_url)
        .await
        .expect("connect to the event store's database");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT stream_id, version, payload FROM events WHERE stream_id = ANY($1) \
         ORDER BY stream_id, version",
    )
    .bind(wallets)
    .fetch_all(&mut connection)
    .await
    .expect("read the streams");
    let _ = connection.close().await;
    let mut failures = Vec::new();
    let mut current: Option<(String, WalletState)> = None;
    for (stream, version, payload) in rows {
        let event = WalletEvent::from_json(&payload).expect("a stored event decodes");
        let state = match current.take() {
            Some((name, state)) if name == stream => state,
            _ => WalletState::default(),
        };
        if !continues(&state, &event) {
            failures.push(format!(
                "{stream}: version {version} does not continue its stream ({payload})"
            ));
        }
        current = Some((stream, evolve(state, &event)));
    }
    failures
}
