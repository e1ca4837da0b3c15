//! The outbox relay against real PostgreSQL and Kafka: every stored event is published
//! once, in per-wallet order; of two replicas only the elected leader publishes; when the
//! leader dies the standby takes over and nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_store::{AppendRequest, EventStore, PostgresEventStore, RecordedEvent, StreamAppend};
use integration_tests::proxy::PausableProxy;
use integration_tests::{
    continue_history, create_topic, require_env, unique_name, TestDatabase, REQUEST_TIMEOUT,
};
use outbox_relay::{Application, Config, Leadership};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;
use wallet_domain::{WalletEvent, WalletId};

/// Bound on any wait (catching up, a takeover, reading the topic back).
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// After the expected messages arrived, how long the reader keeps watching for more.
const QUIET_PERIOD: Duration = Duration::from_secs(2);
/// How long the standby is watched to make sure it does not lead beside the leader.
const STANDBY_WATCH: Duration = Duration::from_secs(3);
/// A standby must take over within this after the leader's connection dies.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC_PARTITIONS: i32 = 6;
const POOL_CONNECTIONS_MAX: u32 = 4;
/// Events per append request in the throughput test (one wallet's history).
const THROUGHPUT_EVENTS_PER_WALLET: usize = 100;
const THROUGHPUT_WALLETS: usize = 200;

// --- helpers ---------------------------------------------------------------------------

/// A fresh database with the project's migrations and an event store on it.
struct RelayDatabase {
    database: TestDatabase,
    url: String,
    pool: PgPool,
    store: Arc<PostgresEventStore>,
}

impl RelayDatabase {
    async fn create(server_url: &str) -> Self {
        let database = TestDatabase::create(server_url).await;
        let url = database.url.clone();
        let pool = postgres_support::connect(&url, POOL_CONNECTIONS_MAX)
            .await
            .expect("connect and migrate the test database");
        let store = Arc::new(
            PostgresEventStore::connect(pool.clone())
                .await
                .expect("open the event store"),
        );
        Self {
            database,
            url,
            pool,
            store,
        }
    }

    async fn drop_all(self) {
        self.pool.close().await;
        self.database.drop_database().await;
    }

    /// Appends `histories` to the store, one event of each wallet in turn, so that the
    /// wallets interleave in the log.
    async fn append_interleaved(&self, histories: &[(WalletId, Vec<WalletEvent>)], already: u64) {
        let length = histories
            .iter()
            .map(|(_, events)| events.len())
            .max()
            .unwrap_or(0);
        for index in 0..length {
            for (wallet, events) in histories {
                let Some(event) = events.get(index) else {
                    continue;
                };
                self.append(wallet, already + index as u64, vec![event.clone()])
                    .await;
            }
        }
    }

    async fn append(&self, wallet: &WalletId, expected_version: u64, events: Vec<WalletEvent>) {
        self.store
            .append(AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: wallet.clone(),
                    expected_version,
                    expected_last_event_id: None,
                    events,
                }],
                idempotent_response: None,
            })
            .await
            .expect("the append is stored");
    }

    async fn head(&self) -> u64 {
        self.store.head_position().await.expect("head position")
    }
}

/// New wallets (named after `run`), `length` events each: `(wallet, its events)`.
fn histories(run: &str, wallets: usize, length: usize) -> Vec<(WalletId, Vec<WalletEvent>)> {
    (0..wallets)
        .map(|index| {
            let wallet = WalletId::parse(&format!("w{index}-{run}")).expect("wallet id");
            let events = continue_history(&wallet, &[], length);
            (wallet, events)
        })
        .collect()
}

struct Replica {
    port: u16,
    leadership: watch::Receiver<Leadership>,
    progress: watch::Receiver<u64>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Replica {
    async fn start(database_url: &str, brokers: &str, topic: &str) -> Self {
        Self::start_with(Config::for_test(database_url, brokers, topic)).await
    }

    async fn start_with(config: Config) -> Self {
        let application = Application::build(config).await.expect("the relay starts");
        Self {
            port: application.port(),
            leadership: application.leadership(),
            progress: application.progress(),
            task: tokio::spawn(application.run_until_stopped()),
        }
    }

    fn leads(&self) -> bool {
        self.leadership.borrow().leader
    }

    fn published(&self) -> u64 {
        *self.progress.borrow()
    }

    async fn health(&self) -> (u16, serde_json::Value) {
        self.probe("/health").await
    }

    /// The status and JSON body of the probe at `path`.
    async fn probe(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("the health endpoint answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON health body"))
    }

    async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/metrics", self.port))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .expect("the metrics endpoint answers")
            .text()
            .await
            .expect("a metrics body")
    }
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Every event on `topic` (read from the start by a fresh group) until `distinct`
/// different events came, then for a quiet period; in arrival order, duplicates kept.
async fn read_events(brokers: &str, topic: &str, distinct: usize) -> Vec<RecordedEvent> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("wallex_it_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("an rdkafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut events = Vec::with_capacity(distinct);
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        let received =
            if seen.len() < distinct {
                let waited = tokio::time::timeout_at(deadline, consumer.recv()).await;
                Some(waited.unwrap_or_else(|_| {
                    panic!("read {} of {distinct} events of {topic}", seen.len())
                }))
            } else {
                tokio::time::timeout(QUIET_PERIOD, consumer.recv())
                    .await
                    .ok()
            };
        let Some(message) = received else {
            return events;
        };
        let message = message.expect("a message");
        let value = std::str::from_utf8(message.payload().expect("a value")).expect("UTF-8");
        let event = RecordedEvent::from_json(value).expect("the value is an envelope");
        assert_eq!(
            message.key(),
            Some(event.event.wallet_id.as_str().as_bytes()),
            "the key is the wallet id"
        );
        seen.insert(event.event.event_id);
        events.push(event);
    }
}

/// Per wallet, the versions in the order they first arrived (duplicates dropped).
fn first_arrivals(events: &[RecordedEvent]) -> BTreeMap<String, Vec<u64>> {
    let mut seen = BTreeSet::new();
    let mut by_wallet: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in events {
        if seen.insert(event.event.event_id) {
            by_wallet
                .entry(event.event.wallet_id.as_str().to_owned())
                .or_default()
                .push(event.stream_version);
        }
    }
    by_wallet
}

/// The backend that holds the relay's leader lock in this database, if any.
async fn lock_holder(database: &RelayDatabase) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(outbox_relay::RELAY_LEADER_LOCK_KEY)
    .fetch_optional(&database.pool)
    .await
    .expect("read pg_locks")
}

// --- tests -----------------------------------------------------------------------------

#[tokio::test]
async fn the_relay_publishes_every_event_once_in_per_wallet_order() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_relay", TOPIC_PARTITIONS).await;
    let run = unique_name("run");
    let histories = histories(&run, 10, 20);
    database.append_interleaved(&histories, 0).await;
    let head = database.head().await;
    assert_eq!(head, 200);

    let replica = Replica::start(&database.url, &brokers, &topic).await;
    wait_until(
        "the relay has published the whole log",
        WAIT_TIMEOUT,
        || replica.published() >= head,
    )
    .await;
    let (status, health) = replica.health().await;
    assert_eq!(status, 200, "healthy: {health}");
    assert_eq!(health["leader"], true);
    assert_eq!(health["checkpoint"], 200);
    assert_eq!(health["headPosition"], 200);
    assert_eq!(health["lag"], 0);
    let metrics = replica.metrics().await;
    assert!(
        metrics.contains("wallex_relay_events_published_total 200"),
        "metrics: {metrics}"
    );

    let events = read_events(&brokers, &topic, 200).await;
    assert_eq!(events.len(), 200, "each event once");
    let in_order: Vec<u64> = (1..=20).collect();
    let by_wallet = first_arrivals(&events);
    assert_eq!(by_wallet.len(), 10);
    for (wallet, versions) in by_wallet {
        assert_eq!(versions, in_order, "{wallet}'s events in order");
    }

    replica.task.abort();
    database.drop_all().await;
}

#[tokio::test]
async fn a_relay_whose_kafka_does_not_answer_is_unhealthy_but_alive() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    // Nothing listens on the discard port: every Kafka request fails.
    let replica = Replica::start(&database.url, "127.0.0.1:9", "wallex_it_relay_nowhere").await;
    let (status, health) = replica.health().await;
    assert_eq!(
        (status, &health["kafka"]),
        (503, &serde_json::json!("down")),
        "{health}"
    );
    // Readiness says no; liveness says the process serves, so an
    // orchestrator does not restart a relay that only waits for Kafka.
    let (status, live) = replica.probe("/health/live").await;
    assert_eq!(
        (status, &live["status"]),
        (200, &serde_json::json!("alive")),
        "{live}"
    );
    replica.task.abort();
    database.drop_all().await;
}

/// Makes every write to `relay_checkpoints` fail as a read-only server's
/// would (SQLSTATE 25006) while reads still pass, or lifts that.
async fn refuse_checkpoints(database: &RelayDatabase, refuse: bool) {
    let statements: &[&str] = if refuse {
        &[
            "CREATE FUNCTION wallex_it_refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'read-only for the test' USING ERRCODE = '25006'; END $$",
            "CREATE TRIGGER wallex_it_refuse BEFORE INSERT OR UPDATE ON relay_checkpoints \
             FOR EACH ROW EXECUTE FUNCTION wallex_it_refuse()",
        ]
    } else {
        &[
            "DROP TRIGGER wallex_it_refuse ON relay_checkpoints",
            "DROP FUNCTION wallex_it_refuse()",
        ]
    };
    for statement in statements {
        sqlx::query(statement)
            .execute(&database.pool)
            .await
            .expect("change the checkpoint's trigger");
    }
}

/// Kafka and PostgreSQL both answer `/health`'s probes while every batch
/// fails (its checkpoint refused): the relay says so, `degraded` and 200,
/// until a batch passes again.
#[tokio::test]
async fn health_shows_batches_that_keep_failing_while_the_servers_answer() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_relay_health", TOPIC_PARTITIONS).await;
    let run = unique_name("run");
    let wallets = histories(&run, 2, 10);
    let (first, later) = (&wallets[..1], &wallets[1..]);
    database.append_interleaved(first, 0).await;
    let replica = Replica::start(&database.url, &brokers, &topic).await;
    wait_until("the relay has published the log", WAIT_TIMEOUT, || {
        replica.published() >= 10
    })
    .await;
    let (status, health) = replica.health().await;
    assert_eq!((status, &health["status"]), (200, &"ok".into()), "{health}");
    assert_eq!(health["publishing"], "ok");

    refuse_checkpoints(&database, true).await;
    database.append_interleaved(later, 0).await;
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    let health = loop {
        let (status, health) = replica.health().await;
        assert_eq!(status, 200, "the servers answer: {health}");
        if health["status"] == "degraded" {
            break health;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never degraded: {health}"
        );
        tokio::time::sleep(WAIT_POLL).await;
    };
    assert_eq!(health["publishing"]["status"], "failing", "{health}");
    assert!(health["publishing"]["failures"]["failures"].as_u64() >= Some(1));
    assert!(
        health["publishing"]["failures"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("read-only for the test")),
        "{health}"
    );
    assert_eq!(health["lag"], 10, "{health}");

    refuse_checkpoints(&database, false).await;
    wait_until("the relay publishes again", WAIT_TIMEOUT, || {
        replica.published() >= 20
    })
    .await;
    let (status, health) = replica.health().await;
    assert_eq!((status, &health["status"]), (200, &"ok".into()), "{health}");
    assert_eq!(health["publishing"], "ok");
    replica.task.abort();
    database.drop_all().await;
}

#[tokio::test]
async fn one_leader_publishes_and_a_standby_takes_over_without_loss() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_failover", TOPIC_PARTITIONS).await;
    let run = unique_name("run");
    let wallets = 5;
    let mut all = histories(&run, wallets, 10);
    database.append_interleaved(&all, 0).await;

    // Two replicas: the first leads, the second stands by and publishes nothing.
    let first = Replica::start(&database.url, &brokers, &topic).await;
    wait_until("the first replica leads", WAIT_TIMEOUT, || first.leads()).await;
    let second = Replica::start(&database.url, &brokers, &topic).await;
    let head = database.head().await;
    wait_until("the leader has published the log", WAIT_TIMEOUT, || {
        first.published() >= head
    })
    .await;
    let watched_until = Instant::now() + STANDBY_WATCH;
    while Instant::now() < watched_until {
        assert!(first.leads() && !second.leads(), "exactly one leader");
        tokio::time::sleep(WAIT_POLL).await;
    }
    assert_eq!(second.published(), 0, "the standby published nothing");
    let (status, health) = second.health().await;
    assert_eq!(status, 200, "a standby is healthy: {health}");
    assert_eq!(health["leader"], false);

    // The leader's connection dies: the standby takes over and publishes what follows.
    let holder = lock_holder(&database)
        .await
        .expect("the leader holds the lock");
    assert_eq!(Some(holder), first.leadership.borrow().lock_backend_pid);
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holder)
        .fetch_one(&database.pool)
        .await
        .expect("terminate the leader's lock connection");
    assert!(terminated);
    wait_until("the standby takes over", TAKEOVER_TIMEOUT, || {
        second.leads()
    })
    .await;
    wait_until("the deposed leader stops leading", TAKEOVER_TIMEOUT, || {
        !first.leads()
    })
    .await;
    let more: Vec<(WalletId, Vec<WalletEvent>)> = all
        .iter()
        .map(|(wallet, events)| (wallet.clone(), continue_history(wallet, events, 5)))
        .collect();
    database.append_interleaved(&more, 10).await;
    for ((_, events), (_, added)) in all.iter_mut().zip(&more) {
        events.extend_from_slice(added);
    }
    let head = database.head().await;
    wait_until(
        "the new leader has published the new events",
        WAIT_TIMEOUT,
        || second.published() >= head,
    )
    .await;

    // The new leader's process dies (its task and connection go): the first takes over.
    second.task.abort();
    wait_until("the first replica leads again", TAKEOVER_TIMEOUT, || {
        first.leads()
    })
    .await;
    let last: Vec<(WalletId, Vec<WalletEvent>)> = all
        .iter()
        .map(|(wallet, events)| (wallet.clone(), continue_history(wallet, events, 5)))
        .collect();
    database.append_interleaved(&last, 15).await;
    let head = database.head().await;
    wait_until(
        "the first replica has published everything",
        WAIT_TIMEOUT,
        || first.published() >= head,
    )
    .await;

    let total = wallets * 20;
    assert_eq!(head, total as u64);
    let events = read_events(&brokers, &topic, total).await;
    let distinct: BTreeSet<Uuid> = events.iter().map(|event| event.event.event_id).collect();
    assert_eq!(distinct.len(), total, "nothing is lost");
    let in_order: Vec<u64> = (1..=20).collect();
    for (wallet, versions) in first_arrivals(&events) {
        assert_eq!(versions, in_order, "{wallet}'s events in order");
    }
    eprintln!(
        "failover: {} messages for {total} events ({} republished)",
        events.len(),
        events.len() - total
    );

    first.task.abort();
    database.drop_all().await;
}

/// A standby whose lock connection went silent in its try for the lock (a
/// middlebox that lost its state, while new connections pass) gives that
/// try up after `LEADER_CHECK_TIMEOUT_MS` and asks again on a new
/// connection, so it still takes over when the leader goes: it waited in
/// the try for good, and no replica published (tester h86).
#[tokio::test]
async fn a_standby_silent_in_its_try_for_the_lock_still_takes_over() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_silent_standby", TOPIC_PARTITIONS).await;
    let first = Replica::start(&database.url, &brokers, &topic).await;
    wait_until("the first replica leads", WAIT_TIMEOUT, || first.leads()).await;

    let options: sqlx::postgres::PgConnectOptions = database.url.parse().expect("a PostgreSQL URL");
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    assert!(
        database.url.contains(&upstream),
        "{} names {upstream}",
        database.url
    );
    let proxy = PausableProxy::start((options.get_host().to_owned(), options.get_port())).await;
    let through_proxy = database
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    // The standby's lock connection passes its first try, then nothing more.
    proxy.freeze_after("pg_try_advisory_lock");
    let second = Replica::start(&through_proxy, &brokers, &topic).await;
    tokio::time::sleep(STANDBY_WATCH).await;
    assert!(!second.leads(), "the leader still holds the lock");

    // The leader goes, its session with it.
    first.task.abort();
    wait_until("the standby takes over", TAKEOVER_TIMEOUT, || {
        second.leads()
    })
    .await;
    second.task.abort();
    database.drop_all().await;
}

/// A leader whose batches keep failing while its lock connection answers
/// (here its Kafka does not answer; a pool whose path went silent fails the
/// same way) steps down, and a standby that can publish takes over and
/// publishes everything.
#[tokio::test]
async fn a_leader_that_cannot_publish_steps_down_for_a_standby_that_can() {
    const STUCK_MESSAGE_TIMEOUT_MS: u64 = 1_000;
    const STUCK_STEP_DOWN_AFTER_MS: u64 = 2_500;
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_step_down", TOPIC_PARTITIONS).await;
    let run = unique_name("run");
    database.append_interleaved(&histories(&run, 5, 4), 0).await;
    let head = database.head().await;

    // Nothing listens on the discard port: every batch of this one fails.
    let mut stuck_config = Config::for_test(&database.url, "127.0.0.1:9", &topic);
    stuck_config.kafka_message_timeout_ms = STUCK_MESSAGE_TIMEOUT_MS;
    stuck_config.relay_step_down_after_failing_ms = STUCK_STEP_DOWN_AFTER_MS;
    let stuck = Replica::start_with(stuck_config).await;
    wait_until("the stuck replica leads", WAIT_TIMEOUT, || stuck.leads()).await;
    let working = Replica::start(&database.url, &brokers, &topic).await;
    wait_until("the working replica leads", WAIT_TIMEOUT, || {
        working.leads()
    })
    .await;
    assert!(!stuck.leads(), "one leader at a time");
    wait_until(
        "the working replica published the log",
        WAIT_TIMEOUT,
        || working.published() >= head,
    )
    .await;
    let events = read_events(&brokers, &topic, head as usize).await;
    assert_eq!(
        first_arrivals(&events)
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        head as usize
    );
    tokio::time::sleep(Duration::from_millis(outbox_relay::STEP_DOWN_SIT_OUT_MS)).await;
    assert!(
        working.leads() && !stuck.leads(),
        "the replica that stepped down stands by once its sit-out is over"
    );
    stuck.task.abort();
    working.task.abort();
    database.drop_all().await;
}

/// A leader that stops running with its socket open (paused with SIGSTOP,
/// stuck) answers nothing, and its kernel still answers keepalives: the
/// server ends its lock session once idle past the lease, so a standby
/// takes over instead of no one publishing for as long as it is stopped.
#[tokio::test]
async fn a_lock_session_left_idle_past_its_lease_loses_the_lock() {
    let Some(url) = require_env("DATABASE_URL") else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let options: sqlx::postgres::PgConnectOptions = database.url.parse().expect("a PostgreSQL URL");
    let mut stopped = outbox_relay::open_lock_connection(&options)
        .await
        .expect("a lock connection");
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(outbox_relay::RELAY_LEADER_LOCK_KEY)
        .fetch_one(&mut stopped)
        .await
        .expect("take the lock");
    assert!(taken);
    assert!(lock_holder(&database).await.is_some());
    let lease = Duration::from_millis(outbox_relay::LOCK_IDLE_SESSION_TIMEOUT_MS);
    tokio::time::sleep(lease / 2).await;
    assert!(
        lock_holder(&database).await.is_some(),
        "held within the lease"
    );
    let deadline = Instant::now() + lease;
    while lock_holder(&database).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the server ended the session idle past {lease:?}"
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
    drop(stopped);
    database.drop_all().await;
}

#[tokio::test]
async fn relay_throughput_is_measured() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let database = RelayDatabase::create(&url).await;
    let topic = create_topic(&brokers, "wallex_it_throughput", TOPIC_PARTITIONS).await;
    let run = unique_name("run");
    for (wallet, events) in histories(&run, THROUGHPUT_WALLETS, THROUGHPUT_EVENTS_PER_WALLET) {
        database.append(&wallet, 0, events).await;
    }
    let head = database.head().await;
    let total = (THROUGHPUT_WALLETS * THROUGHPUT_EVENTS_PER_WALLET) as u64;
    assert_eq!(head, total);

    let started = Instant::now();
    let replica = Replica::start(&database.url, &brokers, &topic).await;
    wait_until(
        "the relay has published the whole log",
        WAIT_TIMEOUT,
        || replica.published() >= head,
    )
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "relay throughput: {total} events in {:.2} s = {:.0} events/s (batch 500, debug build)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    replica.task.abort();
    database.drop_all().await;
}
