//! The faults and their seeded schedule: which fault comes when, and how long
//! each one lasts. Server faults go through `scripts/infra.sh` (the same
//! subcommands a human runs); binary faults through the [`System`].

use std::time::Duration;

use integration_tests::client::{Answer, Api};
use integration_tests::run_infra_script;
use integration_tests::system::{
    replica_name, System, LEDGER_CONSUMER, OUTBOX_RELAY, PROJECTION_CONSUMER,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::{create_probe, listed};

/// How long OpenSearch stays stopped (SIGSTOP) before SIGCONT.
const OPENSEARCH_PAUSE: Duration = Duration::from_secs(10);
/// How long Kafka stays stopped (SIGSTOP) before SIGCONT: well past the consumers'
/// 10 s session timeout, so every member loses its group (after such a stall
/// members were seen to wait for their unassignment for good, their group's
/// derived data frozen, until replaced).
const KAFKA_PAUSE: Duration = Duration::from_secs(45);
/// How long PostgreSQL stays stopped (SIGSTOP) before SIGCONT: past the
/// pools' acquire timeouts, so writes answer 503 and the consumers and the
/// relay retry against a server that neither answers nor refuses.
const POSTGRES_PAUSE: Duration = Duration::from_secs(20);
/// How long Redis stays stopped (SIGSTOP) before SIGCONT: past the wallet
/// lock's timeout, so commands go on without the lock meanwhile.
const REDIS_PAUSE: Duration = Duration::from_secs(15);
/// Bounds of how long a killed binary or server stays down before it is started again, in ms.
const DOWN_MS_MIN: u64 = 200;
const DOWN_MS_MAX: u64 = 3_000;
/// Bounds of the load's time between a fault's convergence and the next fault, in ms.
const GAP_MS_MIN: u64 = 500;
const GAP_MS_MAX: u64 = 3_000;

/// One fault of the schedule.
#[derive(Clone, Debug)]
pub enum Fault {
    /// kill -9 of a binary (or of one command-api replica), then a start.
    KillBinary(String),
    /// `infra.sh restart postgres <mode>`: fast or immediate shutdown, then a start.
    RestartPostgres(&'static str),
    /// kill -9 of a server's process group (`infra.sh kill`), then `infra.sh start`.
    KillServer(&'static str),
    /// SIGSTOP of a server (`infra.sh pause`) for as long as given, then
    /// SIGCONT (`infra.sh resume`): a server that neither answers nor refuses.
    Pause(&'static str, Duration),
}

impl Fault {
    /// Its name in the table.
    pub fn label(&self) -> String {
        match self {
            Self::KillBinary(name) => format!("kill -9 {name}"),
            Self::RestartPostgres(mode) => format!("postgres {mode} restart"),
            Self::KillServer(server) => format!("{server} kill -9"),
            Self::Pause(server, paused) => format!("{server} SIGSTOP {}s", paused.as_secs()),
        }
    }
}

/// One step of the schedule: the load's gap before the fault, the fault, and
/// how long what it killed stays down.
pub struct Step {
    pub gap: Duration,
    pub fault: Fault,
    pub down: Duration,
}

/// Every fault once, in an order and with durations drawn from `seed`.
pub fn schedule(seed: u64, replicas: usize) -> Vec<Step> {
    let mut faults = vec![
        Fault::KillBinary(OUTBOX_RELAY.to_owned()),
        Fault::KillBinary(LEDGER_CONSUMER.to_owned()),
        Fault::KillBinary(PROJECTION_CONSUMER.to_owned()),
        Fault::RestartPostgres("fast"),
        Fault::RestartPostgres("immediate"),
        Fault::KillServer("kafka"),
        Fault::KillServer("opensearch"),
        Fault::Pause("opensearch", OPENSEARCH_PAUSE),
        Fault::Pause("kafka", KAFKA_PAUSE),
        Fault::Pause("postgres", POSTGRES_PAUSE),
        Fault::Pause("redis", REDIS_PAUSE),
        Fault::KillServer("redis"),
    ];
    faults.extend((1..=replicas).map(|replica| Fault::KillBinary(replica_name(replica))));
    let mut random = StdRng::seed_from_u64(seed);
    faults.shuffle(&mut random);
    faults
        .into_iter()
        .map(|fault| Step {
            gap: Duration::from_millis(random.random_range(GAP_MS_MIN..=GAP_MS_MAX)),
            fault,
            down: Duration::from_millis(random.random_range(DOWN_MS_MIN..=DOWN_MS_MAX)),
        })
        .collect()
}

/// Brings the fault about and heals it; returns when what it hit answers
/// again. While the search server is away (killed or stopped), a new wallet
/// `probe` of `owner` must reach the read model all the same: the failure
/// when it does not.
pub async fn inject_and_heal(
    system: &mut System,
    step: &Step,
    api: &Api,
    probe: &str,
    owner: &str,
) -> Result<(), String> {
    let mut flowed = Ok(());
    match &step.fault {
        Fault::KillBinary(name) => {
            system.kill(name);
            tokio::time::sleep(step.down).await;
            system.restart(name).await;
        }
        Fault::RestartPostgres(mode) => infra(&["restart", "postgres", mode]).await,
        Fault::KillServer(server) => {
            infra(&["kill", server]).await;
            if *server == "kafka" {
                health_answers_promptly(system).await;
            }
            if *server == "opensearch" {
                flowed = read_model_flows(api, probe, owner).await;
            }
            tokio::time::sleep(step.down).await;
            infra(&["start", server]).await;
        }
        Fault::Pause(server, pause) => {
            infra(&["pause", server]).await;
            let paused = Instant::now();
            if *server == "opensearch" {
                flowed = read_model_flows(api, probe, owner).await;
            }
            tokio::time::sleep(pause.saturating_sub(paused.elapsed())).await;
            infra(&["resume", server]).await;
        }
    }
    flowed
}

/// Bound on a write reaching the read model while the search server is
/// away: the read model's consumer group does not wait for the search
/// index's (it held it back for as long as the outage lasted before).
const READ_MODEL_WHILE_SEARCH_AWAY: Duration = Duration::from_secs(8);
/// Pause between two reads of the wallet list.
const READ_MODEL_POLL: Duration = Duration::from_millis(200);

/// Creates wallet `probe` of `owner` and waits until `GET /wallets` lists
/// it, at most [`READ_MODEL_WHILE_SEARCH_AWAY`].
async fn read_model_flows(api: &Api, probe: &str, owner: &str) -> Result<(), String> {
    let created = create_probe(api, probe, owner).await;
    if !matches!(created, Answer::Created) {
        return Err(format!(
            "probe {probe} with the search server away: {created:?}"
        ));
    }
    let started = Instant::now();
    while started.elapsed() < READ_MODEL_WHILE_SEARCH_AWAY {
        if listed(api, owner, probe).await {
            return Ok(());
        }
        tokio::time::sleep(READ_MODEL_POLL).await;
    }
    Err(format!(
        "with the search server away, wallet {probe} did not reach the read model in {}s",
        READ_MODEL_WHILE_SEARCH_AWAY.as_secs()
    ))
}

/// Within the readiness probe's timeout of `k8s/` (2 s), in ms.
const HEALTH_ANSWER_MS_MAX: u64 = 2_000;

/// Every command-api replica's `/health` answers within
/// [`HEALTH_ANSWER_MS_MAX`] while Kafka is down: writes need only the event
/// store, so a broker away must not take the replicas out of service.
async fn health_answers_promptly(system: &System) {
    let client = reqwest::Client::new();
    for url in system.api_urls() {
        let asked = client
            .get(format!("{url}/health"))
            .timeout(Duration::from_millis(HEALTH_ANSWER_MS_MAX))
            .send()
            .await;
        let answer = asked.unwrap_or_else(|error| {
            panic!("{url}/health gave no answer within {HEALTH_ANSWER_MS_MAX} ms with Kafka down: {error}")
        });
        assert_eq!(
            answer.status().as_u16(),
            200,
            "{url}/health with Kafka down"
        );
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let publisher = &body["publisher"];
        if publisher["producerConnected"] == false {
            let error = publisher["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("Kafka"),
                "{url}/health says the producer is not connected and not why: {publisher}"
            );
            // Stored commands reach no projection meanwhile (h137).
            assert_eq!(body["status"], "degraded", "{url}/health with Kafka down");
        }
    }
}

/// Runs `scripts/infra.sh <arguments>` with PostgreSQL kept durable.
///
/// # Panics
/// When it exits non-zero: a server did not come back.
pub async fn infra(arguments: &[&str]) {
    infra_with_durability(arguments, "durable").await;
}

/// Runs `scripts/infra.sh <arguments>` with `WALLEX_POSTGRES_DURABILITY` set
/// to `durability` (`durable`, or `fast`: fsync and synchronous_commit off).
///
/// # Panics
/// When it exits non-zero: a server did not come back.
pub async fn infra_with_durability(arguments: &[&str], durability: &'static str) {
    run_infra_script(arguments, &[("WALLEX_POSTGRES_DURABILITY", durability)]).await;
}
