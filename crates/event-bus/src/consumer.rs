//! The consumers' loop: bounded batches from a consumer group to a handler,
//! offsets committed after the handler succeeded, transient failures retried
//! without end, and only deterministic ones (undecodable, refused for what
//! they hold) parked on the dead-letter topic.
//!
//! A handler that stores the group's offsets with its writes
//! ([`EventSink::stored_offsets`] answers `Some`) is their authority: each
//! batch is handed with the offsets it moves, in the handler's transaction,
//! and the loop skips, takes or seeks back to what the handler stored (see
//! `stored_offsets`). Kafka's commits then only feed lag gauges and tools.
//!
//! While a transient failure is retried the loop takes nothing more: every
//! partition of this member waits, and nothing is committed. A retry longer
//! than Kafka's `max.poll.interval.ms` (5 minutes) hands the partitions to
//! another member, which starts from the last commit: at least once still.
//!
//! The loop never waits on the broker for anything but messages. Errors
//! are logged and passed over at once, commits are queued asynchronously and
//! the lag gauges are refreshed by a task of their own. During a Kafka outage
//! librdkafka queues an error for each failed attempt to reach the broker,
//! ahead of the messages fetched once it is back: a pause per error (it was
//! 500 ms) left that backlog draining for up to a minute after the broker
//! returned, and a synchronous commit or watermark request held the loop
//! until then. A commit lost to an outage only means messages come again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets};
use event_store::RecordedEvent;
use observability::LogThrottle;
use prometheus::IntGaugeVec;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::time::Instant;
use wallet_domain::EventDecodeError;

use crate::backlog::{self, Backlog, PartitionBacklog};
use crate::client_log::{self, KafkaConsumer};
use crate::config::ConsumerConfig;
use crate::dlq;
use crate::headers::{
    self, DLQ_HEADERS, ERROR_HEADER_BYTES_MAX, HEADER_ERROR, HEADER_HANDLER, HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC,
};
use crate::metrics::ConsumerMetrics;
use crate::producer::KafkaProducer;
use crate::stall::{Stall, StallWatch};
use crate::stored_offsets::{GapCounters, StoredPositions};
use crate::BusError;

/// How long an idle loop waits for a message before it looks at the shutdown flag again.
const IDLE_WAKE_MS: u64 = 1_000;
/// How often the lag gauge is refreshed (one watermark request per partition).
const LAG_REFRESH_INTERVAL_MS: u64 = 5_000;

/// [`run_consumer_with_metrics`] with metrics no registry exports.
pub async fn run_consumer(
    config: ConsumerConfig,
    handler: Arc<dyn EventSink>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    run_consumer_with_metrics(config, handler, ConsumerMetrics::unregistered()?, shutdown).await
}

/// Consumes `config.topic` in group `config.group_id` until `shutdown` turns
/// true (or its sender goes away). The batch in hand is finished and
/// committed first; a batch interrupted while retrying is left uncommitted
/// and comes again. Returns an error only when a dead letter cannot be
/// written, so nothing is committed that was neither handled nor parked.
///
/// A member that librdkafka declares dead (a fatal error, such as being
/// fenced under its static id after a broker restart) is replaced by a new
/// one after [`FATAL_RESTART_PAUSE_MS`], from the stored offsets, as at
/// start: a dead member never consumes again, and the group would wait on it.
pub async fn run_consumer_with_metrics(
    config: ConsumerConfig,
    handler: Arc<dyn EventSink>,
    metrics: ConsumerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    loop {
        let end = run_member(
            config.clone(),
            Arc::clone(&handler),
            metrics.clone(),
            shutdown.clone(),
        )
        .await?;
        if end == MemberEnd::Stopped {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(FATAL_RESTART_PAUSE_MS)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Pause before a member that hit a fatal error is replaced, in milliseconds.
pub const FATAL_RESTART_PAUSE_MS: u64 = 1_000;

/// Sets the member's in-group gauge from its client's last statistics,
/// tells `watch` the partitions its rebalances assigned it, and says whether
/// the watch gives it up ([`crate::stall`]).
fn watched(
    consumer: &KafkaConsumer,
    watch: &StallWatch,
    metrics: &ConsumerMetrics,
    handler: &str,
) -> Option<Stall> {
    let client = consumer.context();
    metrics
        .in_group
        .with_label_values(&[handler])
        .set(i64::from(client.in_group()));
    let now = std::time::Instant::now();
    watch.assignment_seen(&client.assigned(), now);
    watch.stalled(client.join_state(now).as_deref(), now)
}

/// How one member's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberEnd {
    /// Shutdown was asked.
    Stopped,
    /// librdkafka declared the member dead, the coordinator refused it, or
    /// it received nothing while messages of its group waited
    /// ([`crate::stall`]): a new one must take its place.
    Fatal,
}

/// Why a member is given up for a new one ([`MemberEnd::Fatal`]).
#[derive(Debug, thiserror::Error)]
enum Replaced {
    #[error("librdkafka declared the consumer dead ({0})")]
    Fatal(String),
    #[error("the group coordinator refused it (NotCoordinator)")]
    NotCoordinator,
    #[error(
        "messages of its partition {partition} waited past the group's committed offset for {} ms of its idle time and none came",
        .waited.as_millis()
    )]
    PartitionStalled { partition: i32, waited: Duration },
    #[error(
        "it held no partition for {} ms of its idle time while messages of its group waited unconsumed (join state {join_state})",
        .waited.as_millis()
    )]
    OutOfGroup {
        join_state: String,
        waited: Duration,
    },
}

impl From<Stall> for Replaced {
    fn from(stall: Stall) -> Self {
        match stall {
            Stall::Partition { partition, waited } => Self::PartitionStalled { partition, waited },
            Stall::OutOfGroup { join_state, waited } => Self::OutOfGroup {
                join_state: join_state.unwrap_or_else(|| "not reported lately".to_owned()),
                waited,
            },
        }
    }
}

impl Replaced {
    /// The `reason` label of `consumer_members_replaced_total`.
    fn label(&self) -> &'static str {
        match self {
            Self::Fatal(_) => "fatal",
            Self::NotCoordinator => "not_coordinator",
            Self::PartitionStalled { .. } => "partition_stalled",
            Self::OutOfGroup { .. } => "out_of_group",
        }
    }

    /// Logs and counts why the member ends; its end.
    fn logged(self, group: &str, handler: &str, metrics: &ConsumerMetrics) -> MemberEnd {
        metrics
            .members_replaced
            .with_label_values(&[handler, self.label()])
            .inc();
        tracing::error!(group, handler, reason = %self, "a new consumer member takes the place of this one");
        MemberEnd::Fatal
    }
}

/// One member of the group, from joining until shutdown or a fatal error.
async fn run_member(
    config: ConsumerConfig,
    handler: Arc<dyn EventSink>,
    metrics: ConsumerMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<MemberEnd, BusError> {
    let consumer: Arc<KafkaConsumer> =
        Arc::new(client_log::create(&config.member_client_config())?);
    let dlq: KafkaProducer = client_log::create(&config.producer_client_config())?;
    let worker = Worker {
        config: &config,
        handler: handler.as_ref(),
        dlq: &dlq,
        metrics: &metrics,
    };
    let mut positions = match worker.stored_offsets(&mut shutdown).await {
        Ok(Some(Some(stored))) => {
            start_from_stored(&config, &stored).await;
            let counters = GapCounters {
                seeks: metrics
                    .stored_offset_seeks
                    .with_label_values(&[handler.name()]),
                missed: metrics
                    .missed_to_retention
                    .with_label_values(&[handler.name()]),
                restarts: metrics
                    .partition_restarts
                    .with_label_values(&[handler.name()]),
            };
            Some(StoredPositions::new(
                &config.group_id,
                &config.topic,
                stored,
                Duration::from_millis(config.request_timeout_ms),
                counters,
            ))
        }
        Ok(Some(None)) => None,
        Ok(None) => return Ok(MemberEnd::Stopped),
        Err(error) => return Err(error),
    };
    consumer.subscribe(&[config.topic.as_str()])?;
    tracing::info!(group = %config.group_id, topic = %config.topic, handler = handler.name(), "consumer started");
    let stall = Arc::new(StallWatch::new(std::time::Instant::now()));
    let lag_refresh = LagRefresh::start(&consumer, &config, handler.name(), &metrics, &stall)?;
    let mut receive_errors = ReceiveErrors::default();
    let outcome = loop {
        stall.busy_until(std::time::Instant::now());
        if *shutdown.borrow() {
            break Ok(MemberEnd::Stopped);
        }
        let dead = consumer
            .client()
            .fatal_error()
            .map(|(code, reason)| Replaced::Fatal(format!("{code:?}: {reason}")))
            .or_else(|| watched(&consumer, &stall, &metrics, handler.name()).map(Replaced::from));
        if let Some(why) = dead {
            break Ok(why.logged(&config.group_id, handler.name(), &metrics));
        }
        if let Some(positions) = positions.as_mut() {
            positions.retry_seeks(&consumer).await;
        }
        let Some(mut messages) =
            next_batch(&consumer, &config, &mut receive_errors, &mut shutdown).await
        else {
            break Ok(MemberEnd::Stopped);
        };
        if receive_errors.take_not_coordinator() {
            break Ok(Replaced::NotCoordinator.logged(&config.group_id, handler.name(), &metrics));
        }
        if messages.is_empty() {
            continue;
        }
        let received = std::time::Instant::now();
        stall.received(
            messages
                .iter()
                .map(|message| (message.partition(), message.offset())),
            received,
        );
        // Handling the batch: what the loop does until its next turn takes
        // nothing, and is not held against the fetcher.
        stall.busy_from(received);
        let to_handle = match positions.as_mut() {
            Some(positions) => {
                let sorted = positions.sort(&consumer, messages.clone()).await;
                messages.retain(|message| !sorted.sought.contains(&message.partition()));
                sorted.to_handle
            }
            None => messages.clone(),
        };
        let processed = worker
            .process(&to_handle, positions.as_mut(), &mut shutdown)
            .await;
        match processed {
            Ok(Processed::Done) => {}
            Ok(Processed::Interrupted) => break Ok(MemberEnd::Stopped),
            Ok(Processed::OffsetsMoved(refused)) => {
                let Some(positions) = positions.as_mut() else {
                    continue;
                };
                match worker.stored_offsets(&mut shutdown).await {
                    Ok(Some(Some(stored))) => positions.moved(&consumer, &refused, stored).await,
                    Ok(Some(None)) => {}
                    Ok(None) => break Ok(MemberEnd::Stopped),
                    Err(error) => break Err(error),
                }
                // The offsets did not move (at most idempotent writes were
                // made, which the batch's next delivery repeats): nothing to commit.
                continue;
            }
            Err(error) => break Err(error),
        }
        if messages.is_empty() {
            continue;
        }
        match commit(&consumer, &messages) {
            Ok(()) => lag_refresh.committed(),
            Err(error) => {
                // The commit could not even be queued (partitions moved in a
                // rebalance): their owner starts from the last commit, so these
                // messages come again (at least once).
                metrics
                    .commit_failures
                    .with_label_values(&[handler.name()])
                    .inc();
                tracing::warn!(%error, handler = handler.name(), "offset commit refused");
            }
        }
    };
    lag_refresh.finish().await;
    // Leaving the group blocks until the broker has been told (and the queued
    // commits were answered): off the runtime. A dead member's close is not
    // waited for: its replacement must not wait on a broker that fenced it.
    if matches!(outcome, Ok(MemberEnd::Fatal)) {
        crate::closing::close_detached(consumer);
    } else if let Err(error) = tokio::task::spawn_blocking(move || drop(consumer)).await {
        tracing::warn!(%error, "consumer did not close cleanly");
    }
    tracing::info!(group = %config.group_id, handler = handler.name(), "consumer stopped");
    outcome
}

enum Processed {
    Done,
    /// Shutdown came while a batch was being retried: do not commit it.
    Interrupted,
    /// The handler refused these offsets because the stored ones moved:
    /// nothing of them was written, and the loop seeks to the stored ones.
    OffsetsMoved(ConsumerOffsets),
}

pub(crate) enum Attempts {
    Handled,
    Interrupted,
    OffsetsMoved(ConsumerOffsets),
    Failed(DeliveryError),
}

pub(crate) struct Worker<'a> {
    pub(crate) config: &'a ConsumerConfig,
    pub(crate) handler: &'a dyn EventSink,
    dlq: &'a KafkaProducer,
    metrics: &'a ConsumerMetrics,
}

impl Worker<'_> {
    /// The handler's stored offsets for this group and topic, asked until it
    /// answers (a transient failure retried with capped backoff): `Some(None)`
    /// when it keeps none, `None` when shutdown came first.
    async fn stored_offsets(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Option<StoredOffsets>>, BusError> {
        let mut attempt: u32 = 0;
        loop {
            match self
                .handler
                .stored_offsets(&self.config.group_id, &self.config.topic)
                .await
            {
                Ok(stored) => return Ok(Some(stored)),
                Err(error) if error.is_transient() => {
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(handler = self.handler.name(), %error, attempt, "cannot read the stored consumer offsets; retrying");
                }
                Err(error) => return Err(BusError::Sink(error)),
            }
            let pause = Duration::from_millis(self.config.backoff_ms(attempt));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return Ok(None),
            }
        }
    }

    async fn process(
        &self,
        messages: &[OwnedMessage],
        mut positions: Option<&mut StoredPositions>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Processed, BusError> {
        let Some(mut parking) = self.parking(messages, shutdown).await else {
            return Ok(Processed::Interrupted);
        };
        let mut events = Vec::with_capacity(messages.len());
        let mut sources = Vec::with_capacity(messages.len());
        for message in messages {
            if self.replayed_for_another(message) {
                continue;
            }
            match decode(message) {
                Ok(event) => {
                    events.push(event);
                    sources.push(message);
                }
                Err(undecodable) => {
                    self.park(message, &undecodable.reason).await?;
                    parking.parked_from(message);
                    if undecodable.unknown_schema_version {
                        self.metrics
                            .unknown_schema_parked
                            .with_label_values(&[self.handler.name()])
                            .inc();
                    }
                }
            }
        }
        let routed = self
            .route_parked(events, sources, &mut parking, shutdown)
            .await?;
        let Some((events, sources)) = routed else {
            return Ok(Processed::Interrupted);
        };
        if events.is_empty() && positions.is_none() {
            return Ok(Processed::Done);
        }
        // The stored offsets move past every message of the batch, the parked
        // and replayed ones too (with nothing else to write when all were):
        // otherwise the next batch would start above them, and the loop would
        // seek back and park them again.
        let every: Vec<&OwnedMessage> = messages.iter().collect();
        let failure = match self
            .handle_with_retries(&events, &every, positions.as_deref_mut(), shutdown)
            .await
        {
            Attempts::Handled => {
                self.count_processed(&events);
                return Ok(Processed::Done);
            }
            Attempts::Interrupted => return Ok(Processed::Interrupted),
            Attempts::OffsetsMoved(refused) => return Ok(Processed::OffsetsMoved(refused)),
            Attempts::Failed(error) => error,
        };
        if let ([_single], [source]) = (events.as_slice(), sources.as_slice()) {
            self.park(source, &failure.to_string()).await?;
            return self.store_past(&every, positions, shutdown).await;
        }
        tracing::warn!(
            handler = self.handler.name(),
            error = %failure,
            size = events.len(),
            "batch failed after its retries; handling its messages one by one"
        );
        for (event, source) in events.iter().zip(sources) {
            if parking.is_parked(source) {
                self.park_behind(source).await?;
                continue;
            }
            match self
                .handle_with_retries(
                    std::slice::from_ref(event),
                    &[source],
                    positions.as_deref_mut(),
                    shutdown,
                )
                .await
            {
                Attempts::Handled => self.count_processed(std::slice::from_ref(event)),
                Attempts::Interrupted => return Ok(Processed::Interrupted),
                Attempts::OffsetsMoved(refused) => return Ok(Processed::OffsetsMoved(refused)),
                Attempts::Failed(error) => {
                    self.park(source, &error.to_string()).await?;
                    parking.parked_from(source);
                }
            }
        }
        self.store_past(&every, positions, shutdown).await
    }

    /// After messages of the batch were parked one by one: moves the stored
    /// offsets (when the sink keeps them) past every message of the batch,
    /// with nothing to write. The messages handled on their own moved them
    /// only as far as the last of them in each partition; a partition whose
    /// last messages were parked would otherwise start the next batch below
    /// them, and the loop would seek back and park them a second time.
    async fn store_past(
        &self,
        every: &[&OwnedMessage],
        positions: Option<&mut StoredPositions>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Processed, BusError> {
        if positions.is_none() {
            return Ok(Processed::Done);
        }
        match self
            .handle_with_retries(&[], every, positions, shutdown)
            .await
        {
            Attempts::Handled => Ok(Processed::Done),
            Attempts::Interrupted => Ok(Processed::Interrupted),
            Attempts::OffsetsMoved(refused) => Ok(Processed::OffsetsMoved(refused)),
            Attempts::Failed(error) => Err(BusError::Sink(error)),
        }
    }

    /// Hands `events` to the handler until it takes them: a transient
    /// failure is retried without end (capped backoff, the consumer's other
    /// partitions waiting too, nothing committed, `/health` degraded), a
    /// permanent one `handler_attempts_max` times. With `positions`, the
    /// events go with the offsets their `sources` move, and a refusal of
    /// those offsets is returned at once.
    pub(crate) async fn handle_with_retries(
        &self,
        events: &[RecordedEvent],
        sources: &[&OwnedMessage],
        mut positions: Option<&mut StoredPositions>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Attempts {
        let name = self.handler.name();
        let attempts_max = self.config.handler_attempts_max.max(1);
        let retrying = self.metrics.retrying.with_label_values(&[name]);
        let mut permanent_attempts = 0;
        let mut transient_attempts: u32 = 0;
        let mut offsets = positions
            .as_deref()
            .map(|positions| positions.moves_of(sources));
        // Offsets an earlier attempt of this batch stored: believed once the
        // batch is handled again without offsets.
        let mut stored_before: Option<ConsumerOffsets> = None;
        let call_timeout = Duration::from_millis(self.config.handler_timeout_ms);
        loop {
            let delivering = async {
                match &offsets {
                    Some(offsets) => self.handler.deliver_consumed(events, offsets).await,
                    None => self.handler.deliver(events).await,
                }
            };
            let delivered = tokio::time::timeout(call_timeout, delivering)
                .await
                .unwrap_or_else(|_| {
                    Err(DeliveryError::transient(
                        name,
                        HandlerTimedOut(self.config.handler_timeout_ms),
                    ))
                });
            let error = match delivered {
                Ok(()) => {
                    retrying.set(0);
                    let stored = offsets.as_ref().or(stored_before.as_ref());
                    if let (Some(positions), Some(stored)) = (positions.as_deref_mut(), stored) {
                        positions.stored(stored);
                    }
                    return Attempts::Handled;
                }
                Err(error) => error,
            };
            if let (true, Some(moved)) = (error.is_offsets_moved(), &offsets) {
                if self.stored_by_earlier_attempt(moved).await {
                    tracing::info!(handler = name, "an earlier attempt of this batch stored its offsets (its reply was lost, or a later step of the sink failed); handing the batch again without offsets");
                    stored_before = offsets.take();
                    continue;
                }
                retrying.set(0);
                tracing::warn!(handler = name, %error, "stored consumer offsets moved");
                return Attempts::OffsetsMoved(moved.clone());
            }
            let retry = if error.is_transient() {
                transient_attempts = transient_attempts.saturating_add(1);
                retrying.set(1);
                tracing::warn!(handler = name, %error, attempt = transient_attempts, "transient handler failure; retrying until it passes");
                transient_attempts
            } else {
                permanent_attempts += 1;
                if permanent_attempts >= attempts_max {
                    retrying.set(0);
                    return Attempts::Failed(error);
                }
                tracing::debug!(handler = name, %error, attempt = permanent_attempts, "handler failed; retrying");
                permanent_attempts
            };
            self.metrics.retries.with_label_values(&[name]).inc();
            let pause = Duration::from_millis(self.config.backoff_ms(retry));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {
                    retrying.set(0);
                    return Attempts::Interrupted;
                }
            }
        }
    }

    /// Whether the sink's stored offsets are exactly where `offsets` move
    /// every partition: an earlier attempt of this very batch stored them,
    /// and either its reply was lost (a database restart during COMMIT) or a
    /// step of a sink after the offsets failed. Seeking past the batch
    /// would then leave that later step without it; handing the batch again
    /// without offsets completes it, since every sink skips what it already
    /// took. A failure to read the offsets answers false: the caller seeks
    /// to them as for any move.
    async fn stored_by_earlier_attempt(&self, offsets: &ConsumerOffsets) -> bool {
        let stored = self
            .handler
            .stored_offsets(&offsets.group, &offsets.topic)
            .await;
        match stored {
            Ok(Some(stored)) => offsets
                .partitions
                .iter()
                .all(|moved| stored.get(&moved.partition) == Some(&moved.next)),
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(handler = self.handler.name(), %error, "cannot read the stored consumer offsets");
                false
            }
        }
    }

    /// Parks `message` on the DLQ with why and where from; waits for the
    /// broker's acknowledgement, since the offset is committed next.
    pub(crate) async fn dead_letter(
        &self,
        message: &OwnedMessage,
        error: &str,
    ) -> Result<(), BusError> {
        let mut dlq_headers = headers::copy_without(message.headers(), &DLQ_HEADERS);
        for (name, value) in [
            (
                HEADER_ERROR,
                headers::truncated(error, ERROR_HEADER_BYTES_MAX),
            ),
            (HEADER_SOURCE_TOPIC, message.topic()),
            (HEADER_SOURCE_PARTITION, &message.partition().to_string()),
            (HEADER_SOURCE_OFFSET, &message.offset().to_string()),
            (HEADER_HANDLER, self.handler.name()),
        ] {
            dlq_headers = headers::with(dlq_headers, name, value);
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.config.dlq_topic).headers(dlq_headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        let queue_timeout = Duration::from_millis(self.config.message_timeout_ms);
        self.dlq
            .send(record, queue_timeout)
            .await
            .map_err(BusError::Kafka)?;
        self.metrics
            .dead_lettered
            .with_label_values(&[self.handler.name()])
            .inc();
        tracing::warn!(
            handler = self.handler.name(),
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            error,
            "message sent to the dead-letter topic"
        );
        Ok(())
    }

    pub(crate) fn count_processed(&self, events: &[RecordedEvent]) {
        let name = self.handler.name();
        self.metrics
            .processed
            .with_label_values(&[name])
            .inc_by(events.len() as u64);
        observability::observe_event_lag(
            &self.metrics.event_lag_seconds.with_label_values(&[name]),
            chrono::Utc::now(),
            events.iter().map(|recorded| recorded.event.occurred_at),
        );
    }
}

/// The errors `recv` answered in a row (librdkafka queues one for every
/// failed attempt to reach a broker that is away, several a second): logged
/// once, then once a [`client_log::KAFKA_LOG_REPEAT_INTERVAL_MS`] with how
/// many were held back, and once when a message comes again.
///
/// It also notes a `NotCoordinator` answer: librdkafka leaves the
/// partitions whose committed offsets it was fetching waiting for good after
/// a request-level `NOT_COORDINATOR` (confluentinc/librdkafka#5586, open;
/// seen here after a 45 s SIGSTOP of Kafka: the member received nothing
/// until its connections were reset), and a new consumer recovers at once.
struct ReceiveErrors {
    log: LogThrottle,
    not_coordinator: bool,
}

impl Default for ReceiveErrors {
    fn default() -> Self {
        Self {
            log: LogThrottle::every(Duration::from_millis(
                client_log::KAFKA_LOG_REPEAT_INTERVAL_MS,
            )),
            not_coordinator: false,
        }
    }
}

impl ReceiveErrors {
    /// Whether a `NotCoordinator` came since the last call.
    fn take_not_coordinator(&mut self) -> bool {
        std::mem::take(&mut self.not_coordinator)
    }

    /// Counts `error`; says whether it was logged.
    fn failed(&mut self, error: &KafkaError, group: &str) -> bool {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NotCoordinator) {
            self.not_coordinator = true;
        }
        let Some(line) = self.log.occurred(std::time::Instant::now()) else {
            return false;
        };
        tracing::warn!(
            %error,
            group,
            held_back = line.held_back,
            in_a_row = line.in_a_row,
            "consumer error"
        );
        true
    }

    /// A message came: says whether that ended a run of errors (and was logged).
    fn received(&mut self, group: &str) -> bool {
        let Some(errors) = self.log.recovered() else {
            return false;
        };
        tracing::info!(group, errors, "the consumer receives again");
        true
    }
}

/// The next batch: waits up to [`IDLE_WAKE_MS`] for a first message (an empty
/// batch if none came), then takes what arrives within `batch_wait_ms`, up
/// to `batch_size_max`. `None` when shutdown was asked.
async fn next_batch(
    consumer: &KafkaConsumer,
    config: &ConsumerConfig,
    errors: &mut ReceiveErrors,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Vec<OwnedMessage>> {
    let first = tokio::select! {
        received = consumer.recv() => received,
        _ = shutdown.changed() => return None,
        _ = tokio::time::sleep(Duration::from_millis(IDLE_WAKE_MS)) => return Some(Vec::new()),
    };
    let first = match first {
        Ok(message) => {
            errors.received(&config.group_id);
            message.detach()
        }
        Err(error) => {
            // No pause here: librdkafka queues an error for every failed
            // attempt to reach a broker that is away (several a second) and
            // recovers by itself, and the messages fetched once it is back
            // wait behind those errors. A pause per error (it was 500 ms)
            // left a Kafka outage's backlog of errors draining for a minute
            // after the broker was back. `recv` waits for the next event, so
            // no pause is needed to keep this loop from spinning.
            errors.failed(&error, &config.group_id);
            return Some(Vec::new());
        }
    };
    let batch_size_max = config.batch_size_max.max(1);
    let mut messages = Vec::with_capacity(batch_size_max);
    messages.push(first);
    let deadline = Instant::now() + Duration::from_millis(config.batch_wait_ms);
    while messages.len() < batch_size_max {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => messages.push(message.detach()),
            Ok(Err(error)) => {
                errors.failed(&error, &config.group_id);
                break;
            }
            Err(_elapsed) => break,
        }
    }
    Some(messages)
}

/// Why a message is not an event this build can hand to its handler.
struct Undecodable {
    reason: String,
    /// A well-formed event of a schema version this build does not read (a
    /// newer writer during a rolling upgrade): parked like any dead letter,
    /// so its partition goes on, and counted apart, to be replayed once this
    /// consumer is upgraded.
    unknown_schema_version: bool,
}

fn decode(message: &OwnedMessage) -> Result<RecordedEvent, Undecodable> {
    let malformed = |reason: String| Undecodable {
        reason,
        unknown_schema_version: false,
    };
    let payload = message
        .payload()
        .ok_or_else(|| malformed("undecodable: the message has no value".to_owned()))?;
    let text = std::str::from_utf8(payload)
        .map_err(|error| malformed(format!("undecodable: the value is not UTF-8: {error}")))?;
    RecordedEvent::from_json(text).map_err(|error| Undecodable {
        unknown_schema_version: matches!(error, EventDecodeError::UnsupportedSchemaVersion(_)),
        reason: format!("undecodable: {error}"),
    })
}

/// The offset after the last message of each partition in `messages`.
fn next_offsets(messages: &[OwnedMessage]) -> BTreeMap<(String, i32), i64> {
    let mut next = BTreeMap::new();
    for message in messages {
        let entry = next
            .entry((message.topic().to_owned(), message.partition()))
            .or_insert(0_i64);
        *entry = (*entry).max(message.offset() + 1);
    }
    next
}

/// Queues the commit of the batch's offsets and returns at once: the
/// broker's answer is not awaited (see the module's header), and librdkafka
/// sends a member's commits in order.
fn commit(consumer: &KafkaConsumer, messages: &[OwnedMessage]) -> Result<(), BusError> {
    let next = next_offsets(messages);
    let mut offsets = TopicPartitionList::with_capacity(next.len());
    for ((topic, partition), offset) in &next {
        offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    consumer.commit(&offsets, CommitMode::Async)?;
    Ok(())
}

/// Before joining the group, commits the handler's stored offsets to Kafka,
/// so that the partitions this member (or another) is assigned start there
/// even when Kafka had committed more (PostgreSQL lost transactions while
/// the consumer was down) and no new message comes to reveal it. Kafka
/// refuses the commit while the group has active members; the stored
/// offsets then still rule each partition's next batch (skip or seek back).
///
/// The commit goes through a client of its own without the member's static
/// id: a commit under a static id by a client that has not joined yet is
/// fenced by the broker (`FencedInstanceId`), and fencing is fatal to that
/// client, which would then never consume.
async fn start_from_stored(config: &ConsumerConfig, stored: &StoredOffsets) {
    if stored.is_empty() {
        return;
    }
    let consumer: Arc<KafkaConsumer> = match client_log::create(
        &config.consumer_client_config(&config.group_id),
    ) {
        Ok(consumer) => Arc::new(consumer),
        Err(error) => {
            tracing::warn!(%error, group = %config.group_id, "no client to commit the stored offsets before joining; the first batches check them");
            return;
        }
    };
    let mut offsets = TopicPartitionList::with_capacity(stored.len());
    for (partition, next) in stored {
        if let Err(error) =
            offsets.add_partition_offset(&config.topic, *partition, Offset::Offset(*next))
        {
            tracing::warn!(%error, partition, "cannot name a stored offset");
            return;
        }
    }
    let committed = blocking(&consumer, move |consumer| {
        consumer.commit(&offsets, CommitMode::Sync)?;
        Ok(())
    })
    .await;
    if let Err(error) = committed {
        tracing::info!(%error, group = %config.group_id, "stored offsets not committed to Kafka before joining; the first batches check them");
    }
}

/// The lag gauges' refresh: a task of its own, so that watermark requests
/// to a broker that is away never hold the consumer loop. It refreshes after
/// a commit unless it did within [`LAG_REFRESH_INTERVAL_MS`], and once an
/// interval whatever comes, so the gauges move while the loop is held (a
/// batch retried without end: its lag grows, and shows) and reach the truth
/// after the last commit of a burst. Each refresh also tells the stall
/// watch what the group has waiting ([`crate::stall`]).
struct LagRefresh {
    stop: watch::Sender<bool>,
    committed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl LagRefresh {
    fn start(
        consumer: &Arc<KafkaConsumer>,
        config: &ConsumerConfig,
        handler: &'static str,
        metrics: &ConsumerMetrics,
        stall: &Arc<StallWatch>,
    ) -> Result<Self, BusError> {
        let mut readers = Readers::open(config)?;
        let (stop, mut stopping) = watch::channel(false);
        let committed = Arc::new(tokio::sync::Notify::new());
        let (consumer, metrics, stall) = (Arc::clone(consumer), metrics.clone(), Arc::clone(stall));
        let on_commit = Arc::clone(&committed);
        let task = tokio::spawn(async move {
            let interval = Duration::from_millis(LAG_REFRESH_INTERVAL_MS);
            let mut refreshed_at: Option<Instant> = None;
            let mut unread = LogThrottle::every(Duration::from_millis(
                client_log::KAFKA_LOG_REPEAT_INTERVAL_MS,
            ));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = on_commit.notified() => {
                        if refreshed_at.is_some_and(|at| at.elapsed() < interval) {
                            continue;
                        }
                    }
                    _ = stopping.changed() => break,
                }
                let read = readers.read().await;
                readers.renew_after(&read);
                refresh_lag(&consumer, read, handler, &metrics, &stall, &mut unread);
                refreshed_at = Some(Instant::now());
            }
            readers.close().await;
        });
        Ok(Self {
            stop,
            committed,
            task,
        })
    }

    /// A batch's offsets were committed: refresh unless done recently.
    fn committed(&self) {
        self.committed.notify_one();
    }

    /// Stops the refresh and waits for it (each of its requests is bounded
    /// by `request_timeout_ms`), so that it holds no handle on the consumer
    /// when the consumer closes: the member leaves the group only when the
    /// last handle goes, and a member that has not left keeps the group from
    /// taking the next member's starting offsets.
    async fn finish(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the lag refresh did not end cleanly");
        }
    }
}

/// The clients the lag refresh reads through, neither of them subscribed.
/// A client whose read failed is replaced by a new one for the next read:
/// a librdkafka client was seen to stay stuck after the broker came back
/// from a stop (no connection attempted again), and the stall watch must
/// not go blind with it.
struct Readers {
    /// In the member's group: its backlog on `topic`; made from `group_config`.
    group: Arc<KafkaConsumer>,
    group_config: ClientConfig,
    topic: String,
    /// In the dead-letter replay's group: what waits on `dlq_topic`; made
    /// from `replay_config`.
    replay_group: Arc<KafkaConsumer>,
    replay_config: ClientConfig,
    dlq_topic: String,
    /// Bound on each request.
    timeout: Duration,
}

/// What one refresh read: the group's backlog, and the dead letters waiting.
struct Read {
    backlog: Result<Backlog, BusError>,
    dead_letters: Result<i64, BusError>,
}

impl Readers {
    /// A client in the member's group, reading the group's committed
    /// offsets and the topic's watermarks whatever state the member's own
    /// client is in; one in the dead-letter replay's group, reading that
    /// group's committed offsets for the dead-letter gauge.
    fn open(config: &ConsumerConfig) -> Result<Self, BusError> {
        let group_config = config.consumer_client_config(&config.group_id);
        let replay_config = config.consumer_client_config(&config.dlq_replay_group_id());
        Ok(Self {
            group: Arc::new(client_log::create(&group_config)?),
            group_config,
            topic: config.topic.clone(),
            replay_group: Arc::new(client_log::create(&replay_config)?),
            replay_config,
            dlq_topic: config.dlq_topic.clone(),
            timeout: Duration::from_millis(config.request_timeout_ms),
        })
    }

    /// Reads the group's backlog and the dead letters waiting, off the runtime.
    async fn read(&self) -> Read {
        let (topic, timeout) = (self.topic.clone(), self.timeout);
        let backlog = blocking(&self.group, move |group| {
            backlog::read(group, &topic, timeout)
        })
        .await;
        let dlq_topic = self.dlq_topic.clone();
        let dead_letters = blocking(&self.replay_group, move |replay_group| {
            dlq::dead_letters_waiting(replay_group, &dlq_topic, timeout)
        })
        .await;
        Read {
            backlog,
            dead_letters,
        }
    }

    /// Replaces each client whose part of `read` failed.
    fn renew_after(&mut self, read: &Read) {
        let backlog_failed = read
            .backlog
            .as_ref()
            .map_or(true, |backlog| backlog.commits_unread.is_some());
        if backlog_failed {
            renew(&mut self.group, &self.group_config);
        }
        if read.dead_letters.is_err() {
            renew(&mut self.replay_group, &self.replay_config);
        }
    }

    /// Closes both clients off the runtime (rdkafka's close blocks).
    async fn close(self) {
        let clients = [self.group, self.replay_group];
        if let Err(error) = tokio::task::spawn_blocking(move || drop(clients)).await {
            tracing::warn!(%error, "the lag refresh's clients did not close cleanly");
        }
    }
}

/// Puts a new client made from `config` in `client`'s place, closing the
/// old one off the runtime without waiting for it (a stuck client's close
/// may block); keeps the old one when no new one can be made.
fn renew(client: &mut Arc<KafkaConsumer>, config: &ClientConfig) {
    match client_log::create(config) {
        Ok(fresh) => {
            let old = std::mem::replace(client, Arc::new(fresh));
            crate::closing::close_detached(old);
        }
        Err(error) => {
            tracing::debug!(%error, "no new client for the lag refresh; the old one reads again")
        }
    }
}

/// Tells `stall` what the group has waiting, and sets the lag gauge of every
/// partition this member holds (from its high watermark and the group's
/// committed offset, the low watermark where the group committed none) and
/// the dead-letter gauge, from `read`. A failure to read the group's commits
/// is logged at most once per [`client_log::KAFKA_LOG_REPEAT_INTERVAL_MS`]
/// (`unread`): its partitions count as waiting.
fn refresh_lag(
    consumer: &KafkaConsumer,
    read: Read,
    handler: &'static str,
    metrics: &ConsumerMetrics,
    stall: &StallWatch,
    unread: &mut LogThrottle,
) {
    let now = std::time::Instant::now();
    match read.backlog {
        Ok(backlog) => {
            match &backlog.commits_unread {
                Some(error) => {
                    if let Some(line) = unread.occurred(now) {
                        tracing::warn!(%error, handler, held_back = line.held_back, "cannot read the group's committed offsets; its messages count as waiting");
                    }
                }
                None => {
                    if let Some(failures) = unread.recovered() {
                        tracing::info!(
                            handler,
                            failures,
                            "the group's committed offsets are read again"
                        );
                    }
                }
            }
            stall.backlog_read(&backlog.partitions, now);
            let assigned = consumer.context().assigned();
            set_lag_gauges(&metrics.lag, handler, &backlog.partitions, &assigned);
        }
        Err(error) => {
            // The broker is away: nothing is known to wait, and a member is
            // not replaced for it (a new one could do no better).
            stall.backlog_unreadable();
            tracing::debug!(%error, "cannot read the group's backlog for the lag gauges");
        }
    }
    match read.dead_letters {
        Ok(waiting) => metrics
            .dead_letter_depth
            .with_label_values(&[handler])
            .set(waiting),
        Err(error) => tracing::debug!(%error, "cannot read the dead letters waiting"),
    }
}

/// Sets the lag gauge of each of `partitions` this member holds (`assigned`)
/// whose group offset was read, and removes the gauge of each it does not
/// hold: a partition given to another member after a rebalance is that
/// member's to report, and a gauge left at its last value summed with the
/// new holder's showed lag for good after every rebalance (tester h137 F1).
fn set_lag_gauges(
    lag: &IntGaugeVec,
    handler: &'static str,
    partitions: &[PartitionBacklog],
    assigned: &BTreeSet<i32>,
) {
    for partition in partitions {
        let label = partition.partition.to_string();
        if !assigned.contains(&partition.partition) {
            // Absent already unless it was held before: nothing to remove.
            if lag.remove_label_values(&[handler, &label]).is_ok() {
                tracing::debug!(
                    handler,
                    partition = partition.partition,
                    "lag gauge of a partition no longer held removed"
                );
            }
        } else if partition.next.is_some() {
            lag.with_label_values(&[handler, &label])
                .set(partition.waiting());
        }
    }
}

/// A handler call that gave no answer within the bound, in ms (see
/// `HANDLER_TIMEOUT_MS_DEFAULT`): transient, the batch is handed again.
#[derive(Debug, thiserror::Error)]
#[error("the handler gave no answer within {0} ms")]
struct HandlerTimedOut(u64);

/// Runs a blocking librdkafka call (commit, offsets, watermarks) off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    consumer: &Arc<KafkaConsumer>,
    call: impl FnOnce(&KafkaConsumer) -> Result<T, BusError> + Send + 'static,
) -> Result<T, BusError> {
    let consumer = Arc::clone(consumer);
    tokio::task::spawn_blocking(move || call(&consumer)).await?
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn a_run_of_receive_errors_is_logged_once_then_its_end() {
        let mut errors = ReceiveErrors::default();
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert!(errors.failed(&down, "g"), "the first error is logged");
        assert!(
            (0..80).all(|_| !errors.failed(&down, "g")),
            "the next ones, within the interval, are held back"
        );
        assert!(errors.received("g"), "the end of the run is logged");
        assert!(!errors.received("g"), "a message after a message is not");
        assert!(errors.failed(&down, "g"), "a new run is logged at once");
        assert!(!errors.take_not_coordinator());
    }

    /// h137 F1: a partition given to another member after a rebalance kept
    /// its last lag in this member's gauge for good.
    #[test]
    fn the_lag_gauge_of_a_partition_no_longer_held_is_removed() {
        let lag = IntGaugeVec::new(
            prometheus::Opts::new("lag", "lag"),
            &["handler", "partition"],
        )
        .expect("a gauge");
        let partition = |partition, next| PartitionBacklog {
            partition,
            low: 0,
            high: 10,
            next,
        };
        let gauges = |lag: &IntGaugeVec| {
            prometheus::core::Collector::collect(lag)
                .iter()
                .flat_map(|family| family.get_metric().to_vec())
                .map(|metric| {
                    let label = metric.get_label()[1].value().to_owned();
                    (label, metric.get_gauge().get_value() as i64)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let backlog = [
            partition(0, Some(4)),
            partition(1, Some(7)),
            partition(2, None),
        ];
        set_lag_gauges(&lag, "ledger", &backlog, &BTreeSet::from([0, 1, 2]));
        assert_eq!(
            gauges(&lag),
            BTreeMap::from([("0".into(), 6), ("1".into(), 3)])
        );
        // Partition 0 went to another member: its gauge goes, the others stay.
        set_lag_gauges(&lag, "ledger", &backlog, &BTreeSet::from([1, 2]));
        assert_eq!(gauges(&lag), BTreeMap::from([("1".into(), 3)]));
        set_lag_gauges(&lag, "ledger", &backlog, &BTreeSet::new());
        assert_eq!(gauges(&lag), BTreeMap::new());
    }

    #[tokio::test]
    async fn a_lag_reader_whose_read_failed_is_replaced_and_one_that_read_is_kept() {
        let config = ConsumerConfig::new("127.0.0.1:1", "g");
        let mut readers = Readers::open(&config).expect("clients are made without a broker");
        let first = (
            Arc::as_ptr(&readers.group),
            Arc::as_ptr(&readers.replay_group),
        );
        readers.renew_after(&Read {
            backlog: Ok(Backlog {
                partitions: Vec::new(),
                commits_unread: None,
            }),
            dead_letters: Ok(0),
        });
        assert_eq!(
            (
                Arc::as_ptr(&readers.group),
                Arc::as_ptr(&readers.replay_group)
            ),
            first,
            "both read: both kept"
        );
        readers.renew_after(&Read {
            backlog: Ok(Backlog {
                partitions: Vec::new(),
                commits_unread: Some(KafkaError::NoMessageReceived),
            }),
            dead_letters: Ok(0),
        });
        assert_ne!(Arc::as_ptr(&readers.group), first.0, "commits unread");
        assert_eq!(Arc::as_ptr(&readers.replay_group), first.1);
        let second = Arc::as_ptr(&readers.group);
        readers.renew_after(&Read {
            backlog: Err(BusError::Invalid("the broker is away".to_owned())),
            dead_letters: Err(BusError::Invalid("the broker is away".to_owned())),
        });
        assert_ne!(Arc::as_ptr(&readers.group), second);
        assert_ne!(Arc::as_ptr(&readers.replay_group), first.1);
        readers.close().await;
    }

    #[test]
    fn a_not_coordinator_answer_is_noted_once() {
        let mut errors = ReceiveErrors::default();
        let refused = KafkaError::MessageConsumption(RDKafkaErrorCode::NotCoordinator);
        errors.failed(&refused, "g");
        assert!(errors.take_not_coordinator());
        assert!(!errors.take_not_coordinator(), "taken");
    }
}
