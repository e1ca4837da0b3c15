//! Every knob of the producer and the consumer loop, with a named default,
//! passed to librdkafka explicitly rather than left to its silent defaults.

use rdkafka::config::ClientConfig;

use crate::parked::ParkedWallets;

/// The topic the relay publishes to and the consumers read.
pub const TOPIC_DEFAULT: &str = "wallet-events";
/// Where messages no handler could take are parked.
pub const DLQ_TOPIC_DEFAULT: &str = "wallet-events-dlq";
/// The row of `relay_checkpoints` the Kafka publisher owns.
pub const PUBLISHER_CHECKPOINT_NAME_DEFAULT: &str = "kafka";

/// How long librdkafka may try (retries included) to deliver one message.
pub const PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// How long the producer waits to fill a request: small, batches are ours.
pub const PRODUCER_LINGER_MS_DEFAULT: u64 = 5;
/// Messages the producer queues at most; a relay batch must fit.
pub const PRODUCER_QUEUE_MESSAGES_MAX_DEFAULT: usize = 100_000;
/// Bound on one metadata or offsets request (health probe, commits, watermarks).
pub const KAFKA_REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Messages handed to a handler at most at once.
pub const CONSUMER_BATCH_SIZE_MAX_DEFAULT: usize = 500;
/// How long a batch keeps filling after its first message. Each batch costs
/// one transaction (and, for the projection, a search bulk and a lookup):
/// 50 ms used less CPU in all than 20 or 100 on the full-stack benchmark,
/// with the lag p99 within 500 ms (bench/README.md).
pub const CONSUMER_BATCH_WAIT_MS_DEFAULT: u64 = 50;
/// The most a broker holds a fetch back to gather [`CONSUMER_FETCH_MIN_BYTES_DEFAULT`]
/// (librdkafka's `fetch.wait.max.ms`): under load a fetch returns full, when
/// quiet it returns after this long, so it bounds the lag a fetch adds.
pub const CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT: u64 = 100;
/// Bytes a broker gathers before it answers a fetch (librdkafka's
/// `fetch.min.bytes`; its own default is 1, one fetch request per handful of
/// events under a steady load, each charged to the broker's CPU).
pub const CONSUMER_FETCH_MIN_BYTES_DEFAULT: u32 = 64 * 1024;
/// A member silent this long is removed from the group and its partitions move.
/// It also bounds the wait after a broker restart: a member whose session
/// lapsed during the outage rejoins under a new member id, and the restarted
/// coordinator holds the rebalance until the old id's session expires.
pub const CONSUMER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// How long a group member may go without polling before librdkafka takes it
/// out of its group, in ms (`max.poll.interval.ms`, librdkafka's own
/// default, set here so the stall watch's bounds can name it). It is also
/// the rebalance timeout: how long the coordinator holds a rebalance for a
/// member that has not rejoined, such as one busy retrying a batch (the loop
/// does not poll meanwhile).
pub const CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// The most a client waits between two attempts to reach a broker that is
/// away. librdkafka doubles its pause after each failed attempt up to this
/// cap (its own default is 10 s): with a 10 s cap a relay or consumer could
/// sit out up to 10 s after the broker is back before it even tried again,
/// and the consumer's rejoin (then the coordinator's wait for its old
/// session) came only after that. One second keeps a restarted broker's
/// recovery short while a broker that stays down sees one attempt a second
/// per client, which is cheap.
pub const RECONNECT_BACKOFF_MAX_MS_DEFAULT: u64 = 1_000;
/// How often a group member's client reports its statistics, in ms: how
/// soon the loop sees its join state change (`crate::stall`).
pub const MEMBER_STATISTICS_INTERVAL_MS: u64 = 5_000;
/// Attempts of one batch (and later of one message) before giving up on it.
pub const HANDLER_ATTEMPTS_MAX_DEFAULT: u32 = 5;
/// Pause before the first retry; it doubles with each further one.
pub const HANDLER_BACKOFF_INITIAL_MS_DEFAULT: u64 = 100;
/// The pause between retries never exceeds this.
pub const HANDLER_BACKOFF_MAX_MS_DEFAULT: u64 = 5_000;
/// How long one call of the handler (a batch's writes) may take before it
/// counts as a transient failure and is retried, in ms. A store that hangs
/// without refusing (a network that drops packets, a server stopped) would
/// otherwise hold the partitions until the kernel gives the connection up,
/// minutes later. The sinks are idempotent and the stored offsets checked,
/// so a call cut short and handed again changes nothing twice (a commit
/// whose answer was lost is found by `stored_by_earlier_attempt`). A
/// batch's writes take milliseconds; a minute leaves room for a slow disk.
pub const HANDLER_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// The Kafka publisher (the relay's side).
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub brokers: String,
    pub topic: String,
    /// Row of `relay_checkpoints` this publisher reads and writes.
    pub checkpoint_name: String,
    pub message_timeout_ms: u64,
    pub linger_ms: u64,
    pub queue_messages_max: usize,
    pub request_timeout_ms: u64,
}

impl PublisherConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: TOPIC_DEFAULT.to_owned(),
            checkpoint_name: PUBLISHER_CHECKPOINT_NAME_DEFAULT.to_owned(),
            message_timeout_ms: PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT,
            linger_ms: PRODUCER_LINGER_MS_DEFAULT,
            queue_messages_max: PRODUCER_QUEUE_MESSAGES_MAX_DEFAULT,
            request_timeout_ms: KAFKA_REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        producer_client_config(
            &self.brokers,
            self.message_timeout_ms,
            self.linger_ms,
            self.queue_messages_max,
        )
    }
}

/// One consumer group's loop (the consumers' side), and the DLQ it feeds.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// This member's static id in the group (`group.instance.id`, KIP-345),
    /// stable across restarts of the same replica (a pod's name). A member
    /// that comes back under its id within the session timeout takes its
    /// partitions back at once, without a rebalance; without one, a
    /// restarted consumer waits out the old member's session
    /// ([`CONSUMER_SESSION_TIMEOUT_MS_DEFAULT`]) before its partitions move.
    /// The cost: a static member does not leave the group when it stops, so
    /// a replica removed for good hands its partitions on only after that
    /// timeout. Two live members must never share an id (the broker fences
    /// the older one). `None`: dynamic membership.
    pub group_instance_id: Option<String>,
    pub batch_size_max: usize,
    pub batch_wait_ms: u64,
    /// `fetch.wait.max.ms`, milliseconds (see [`CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT`]).
    pub fetch_wait_max_ms: u64,
    /// `fetch.min.bytes` (see [`CONSUMER_FETCH_MIN_BYTES_DEFAULT`]).
    pub fetch_min_bytes: u32,
    pub session_timeout_ms: u64,
    pub handler_attempts_max: u32,
    pub handler_backoff_initial_ms: u64,
    pub handler_backoff_max_ms: u64,
    /// Bound on one handler call, in ms (see [`HANDLER_TIMEOUT_MS_DEFAULT`]).
    pub handler_timeout_ms: u64,
    /// For the DLQ producer (and the replay's republishing).
    pub message_timeout_ms: u64,
    pub linger_ms: u64,
    pub request_timeout_ms: u64,
    /// Where the wallets with dead letters are kept, so their later events
    /// are parked behind them; `None`: no such order is kept.
    pub parked: Option<ParkedWallets>,
    /// librdkafka's `debug` contexts for the group member's client (such as
    /// `cgrp`: its join states, assignments and commits), logged at debug
    /// level under the target `librdkafka`; `None`: off.
    pub client_debug: Option<String>,
}

impl ConsumerConfig {
    pub fn new(brokers: impl Into<String>, group_id: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: TOPIC_DEFAULT.to_owned(),
            dlq_topic: DLQ_TOPIC_DEFAULT.to_owned(),
            group_id: group_id.into(),
            group_instance_id: None,
            batch_size_max: CONSUMER_BATCH_SIZE_MAX_DEFAULT,
            batch_wait_ms: CONSUMER_BATCH_WAIT_MS_DEFAULT,
            fetch_wait_max_ms: CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT,
            fetch_min_bytes: CONSUMER_FETCH_MIN_BYTES_DEFAULT,
            session_timeout_ms: CONSUMER_SESSION_TIMEOUT_MS_DEFAULT,
            handler_attempts_max: HANDLER_ATTEMPTS_MAX_DEFAULT,
            handler_backoff_initial_ms: HANDLER_BACKOFF_INITIAL_MS_DEFAULT,
            handler_backoff_max_ms: HANDLER_BACKOFF_MAX_MS_DEFAULT,
            handler_timeout_ms: HANDLER_TIMEOUT_MS_DEFAULT,
            message_timeout_ms: PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT,
            linger_ms: PRODUCER_LINGER_MS_DEFAULT,
            request_timeout_ms: KAFKA_REQUEST_TIMEOUT_MS_DEFAULT,
            parked: None,
            client_debug: None,
        }
    }

    /// The group that replays this group's dead letters.
    pub fn dlq_replay_group_id(&self) -> String {
        format!("{}-dlq-replay", self.group_id)
    }

    /// The client of this group's member: [`Self::consumer_client_config`]
    /// with the static id, when there is one. The dead-letter replay's group
    /// never takes it (its own group, and a second live member under the
    /// same id would fence this one).
    pub(crate) fn member_client_config(&self) -> ClientConfig {
        let mut config = self.consumer_client_config(&self.group_id);
        // What the loop reads its group state from (`KafkaLog`).
        config.set(
            "statistics.interval.ms",
            MEMBER_STATISTICS_INTERVAL_MS.to_string(),
        );
        if let Some(instance_id) = &self.group_instance_id {
            config.set("group.instance.id", instance_id);
        }
        if let Some(contexts) = &self.client_debug {
            config.set("debug", contexts);
        }
        config
    }

    pub(crate) fn consumer_client_config(&self, group_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "max.poll.interval.ms",
                CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT.to_string(),
            )
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string())
            .set("fetch.min.bytes", self.fetch_min_bytes.to_string())
            .set(
                "reconnect.backoff.max.ms",
                RECONNECT_BACKOFF_MAX_MS_DEFAULT.to_string(),
            )
            .set("enable.partition.eof", "false");
        config
    }

    pub(crate) fn producer_client_config(&self) -> ClientConfig {
        producer_client_config(
            &self.brokers,
            self.message_timeout_ms,
            self.linger_ms,
            PRODUCER_QUEUE_MESSAGES_MAX_DEFAULT,
        )
    }

    /// The pause before retry number `retry` (1-based): doubling, capped.
    pub(crate) fn backoff_ms(&self, retry: u32) -> u64 {
        let doublings = retry.saturating_sub(1).min(32);
        self.handler_backoff_initial_ms
            .saturating_mul(1_u64 << doublings)
            .min(self.handler_backoff_max_ms)
    }
}

/// An idempotent producer: no duplicates from its own retries and each
/// partition's order kept, acknowledged by every in-sync replica.
fn producer_client_config(
    brokers: &str,
    message_timeout_ms: u64,
    linger_ms: u64,
    queue_messages_max: usize,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", message_timeout_ms.to_string())
        .set("linger.ms", linger_ms.to_string())
        .set(
            "reconnect.backoff.max.ms",
            RECONNECT_BACKOFF_MAX_MS_DEFAULT.to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            queue_messages_max.to_string(),
        );
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut config = ConsumerConfig::new("localhost:9092", "group");
        config.handler_backoff_initial_ms = 100;
        config.handler_backoff_max_ms = 1_000;
        let pauses: Vec<u64> = (1..=6).map(|retry| config.backoff_ms(retry)).collect();
        assert_eq!(pauses, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(config.backoff_ms(u32::MAX), 1_000);
    }

    #[test]
    fn the_replay_group_is_derived_from_the_group() {
        let config = ConsumerConfig::new("localhost:9092", "ledger");
        assert_eq!(config.dlq_replay_group_id(), "ledger-dlq-replay");
    }

    #[test]
    fn only_the_member_takes_the_static_id() {
        let mut config = ConsumerConfig::new("localhost:9092", "ledger");
        assert_eq!(config.member_client_config().get("group.instance.id"), None);
        config.group_instance_id = Some("ledger-consumer-0".to_owned());
        assert_eq!(
            config.member_client_config().get("group.instance.id"),
            Some("ledger-consumer-0")
        );
        let replay = config.consumer_client_config(&config.dlq_replay_group_id());
        assert_eq!(replay.get("group.instance.id"), None);
    }

    #[test]
    fn only_the_member_takes_the_debug_contexts_asked_for() {
        let mut config = ConsumerConfig::new("localhost:9092", "ledger");
        assert_eq!(config.member_client_config().get("debug"), None);
        config.client_debug = Some("cgrp".to_owned());
        assert_eq!(config.member_client_config().get("debug"), Some("cgrp"));
        let replay = config.consumer_client_config(&config.dlq_replay_group_id());
        assert_eq!(replay.get("debug"), None);
    }

    #[test]
    fn every_client_of_a_group_fetches_in_batches() {
        let mut config = ConsumerConfig::new("localhost:9092", "ledger");
        let member = config.member_client_config();
        let min_bytes = CONSUMER_FETCH_MIN_BYTES_DEFAULT.to_string();
        let wait_max_ms = CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT.to_string();
        assert_eq!(member.get("fetch.min.bytes"), Some(min_bytes.as_str()));
        assert_eq!(member.get("fetch.wait.max.ms"), Some(wait_max_ms.as_str()));
        config.fetch_min_bytes = 1;
        config.fetch_wait_max_ms = 500;
        let replay = config.consumer_client_config(&config.dlq_replay_group_id());
        assert_eq!(replay.get("fetch.min.bytes"), Some("1"));
        assert_eq!(replay.get("fetch.wait.max.ms"), Some("500"));
    }
}
