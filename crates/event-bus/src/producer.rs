//! Wallex's Kafka producer: librdkafka's producer, its delivery reports
//! answered as futures, served by a thread of its own.
//!
//! Why not rdkafka's `FutureProducer`: its serving thread calls
//! `BaseProducer::poll` with 100 ms, and that call loops until its deadline
//! while handing librdkafka the time left in whole milliseconds, rounded
//! down. The last millisecond of every 100 is therefore spent polling with a
//! zero timeout: about 1 % of a core per producer, idle or not (an idle
//! ledger-consumer used 10 ticks of CPU in 10 s, all of them on that
//! thread; the same rounding as librdkafka's own issue #4684). Each process
//! of the production layout has one or two producers, and on the full-stack
//! benchmark the spin was several µs of CPU per operation. Here the thread
//! polls in cycles of [`POLL_CYCLE_MS`], so that tail is a thousandth of the
//! thread's time, and a delivery report is still answered as soon as it
//! comes (the poll returns each event at once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer, ProducerContext,
};
use tokio::sync::oneshot;

use crate::client_log::KafkaLog;

/// How long one poll of the serving thread lasts, in ms: the thread stops at
/// most this long after the last handle is dropped, and spends the last
/// (sub-)millisecond of each cycle polling without waiting (above).
pub const POLL_CYCLE_MS: u64 = 1_000;
/// How long [`KafkaProducer::send`] waits before it offers a message again
/// to a full producer queue, in ms.
pub const QUEUE_FULL_RETRY_MS: u64 = 100;
/// The serving thread's name (at most 15 bytes: Linux's thread names).
const POLL_THREAD_NAME: &str = "kafka-producer";

/// Where Kafka stored a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// A message's delivery report: where it was stored, or why it was not.
pub type DeliveryReport = Result<Delivered, KafkaError>;

/// Answers when Kafka acknowledged or refused the message; `Err` when the
/// producer was destroyed without reporting it.
pub type DeliveryFuture = oneshot::Receiver<DeliveryReport>;

impl ProducerContext for KafkaLog {
    type DeliveryOpaque = Box<oneshot::Sender<DeliveryReport>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let report = match result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((error, _message)) => Err(error.clone()),
        };
        // A sender that stopped waiting (its batch timed out) takes no report.
        let _ = reply.send(report);
    }
}

/// A producer of Wallex's, with [`KafkaLog`]. Clones share one librdkafka
/// client; when the last is dropped the serving thread stops within
/// [`POLL_CYCLE_MS`] and destroys the client there (librdkafka purges what
/// is unsent and reports it as failed), so a drop never blocks its caller.
#[derive(Clone)]
pub(crate) struct KafkaProducer {
    served: Arc<Served>,
}

/// The client and the flag that stops its serving thread.
struct Served {
    producer: Arc<BaseProducer<KafkaLog>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl FromClientConfigAndContext<KafkaLog> for KafkaProducer {
    fn from_config_and_context(
        config: &ClientConfig,
        context: KafkaLog,
    ) -> Result<Self, KafkaError> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let served = {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&stop);
            move || serve(&producer, &stop)
        };
        std::thread::Builder::new()
            .name(POLL_THREAD_NAME.to_owned())
            .spawn(served)
            .map_err(|error| {
                KafkaError::ClientCreation(format!("no thread to serve the producer: {error}"))
            })?;
        Ok(Self {
            served: Arc::new(Served { producer, stop }),
        })
    }
}

/// The serving thread: delivery reports, errors and logs until `stop`.
fn serve(producer: &BaseProducer<KafkaLog>, stop: &AtomicBool) {
    let cycle = Duration::from_millis(POLL_CYCLE_MS);
    while !stop.load(Ordering::Acquire) {
        producer.poll(cycle);
    }
}

impl KafkaProducer {
    /// The librdkafka client (metadata requests).
    pub(crate) fn client(&self) -> &Client<KafkaLog> {
        self.served.producer.client()
    }

    /// Enqueues `record` and answers its delivery report's future; refused
    /// at once when the producer's queue is full or the record invalid.
    pub(crate) fn send_result<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
    ) -> Result<DeliveryFuture, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (reply, report) = oneshot::channel();
        self.served
            .producer
            .send(base_record(record, Box::new(reply)))
            .map(|()| report)
            .map_err(|(error, _record)| error)
    }

    /// Sends `record` and waits for its delivery report, offering it again
    /// every [`QUEUE_FULL_RETRY_MS`] while the producer's queue is full, for
    /// at most `queue_timeout`.
    pub(crate) async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> DeliveryReport
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        let (reply, report) = oneshot::channel();
        let mut record = base_record(record, Box::new(reply));
        loop {
            match self.served.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                    if started.elapsed() < queue_timeout =>
                {
                    record = refused;
                    tokio::time::sleep(Duration::from_millis(QUEUE_FULL_RETRY_MS)).await;
                }
                Err((error, _record)) => return Err(error),
            }
        }
        report.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

/// `record` for librdkafka, its report to go to `reply`.
fn base_record<'a, K, P>(
    record: FutureRecord<'a, K, P>,
    reply: Box<oneshot::Sender<DeliveryReport>>,
) -> BaseRecord<'a, K, P, Box<oneshot::Sender<DeliveryReport>>>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let mut base = BaseRecord::with_opaque_to(record.topic, reply);
    base.partition = record.partition;
    base.payload = record.payload;
    base.key = record.key;
    base.timestamp = record.timestamp;
    base.headers = record.headers;
    base
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::client_log;

    /// A broker that takes connections and never answers: the kernel
    /// completes each handshake into the listener's backlog, and a client
    /// waits for its first answer (librdkafka's `api.version.request.timeout.ms`,
    /// 10 s) without an error to report meanwhile. Open while it is held.
    fn silent_broker() -> std::net::TcpListener {
        match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(error) => panic!("a loopback listener: {error}"),
        }
    }

    /// A producer whose broker never answers, so every message times out
    /// after `message.timeout.ms`.
    fn unconnected_producer(broker: &std::net::TcpListener) -> KafkaProducer {
        let address = match broker.local_addr() {
            Ok(address) => address,
            Err(error) => panic!("the listener's address: {error}"),
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", address.to_string())
            .set("message.timeout.ms", "300")
            .set("log_level", "0");
        match client_log::create::<KafkaProducer>(&config) {
            Ok(producer) => producer,
            Err(error) => panic!("a producer is created without a broker: {error}"),
        }
    }

    /// CPU time of each of this process's threads named `name`, in ns, by
    /// thread id (`/proc/self/task/*/schedstat`, first field).
    fn thread_cpu_ns(name: &str) -> HashMap<String, u64> {
        let mut threads = HashMap::new();
        for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
            let Ok(task) = task else { continue };
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let schedstat =
                std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let cpu_ns = schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
            threads.insert(task.file_name().to_string_lossy().into_owned(), cpu_ns);
        }
        threads
    }

    #[tokio::test]
    async fn a_message_no_broker_takes_is_reported_as_failed_by_the_serving_thread() {
        let broker = silent_broker();
        let producer = unconnected_producer(&broker);
        let record: FutureRecord<'_, str, str> = FutureRecord::to("t").key("k").payload("v");
        let report = tokio::time::timeout(
            Duration::from_secs(10),
            producer.send(record, Duration::from_secs(1)),
        )
        .await;
        match report {
            Ok(Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))) => {}
            other => panic!("expected a timed-out delivery report, got {other:?}"),
        }
    }

    #[test]
    fn an_idle_producer_does_not_spin() {
        /// How long the new thread may take to name itself (it does so
        /// once running), in ms, and how often it is looked for.
        const NAMED_WAIT_MS: u64 = 1_000;
        const NAMED_POLL_MS: u64 = 10;
        const SETTLE_MS: u64 = 300;
        let others = thread_cpu_ns(POLL_THREAD_NAME);
        // A broker that refused connections would have the thread report
        // each failed attempt (5-8 ms in 2 s of a debug build): this one is
        // silent, so the thread has nothing to serve.
        let broker = silent_broker();
        let _producer = unconnected_producer(&broker);
        let own = || -> HashMap<String, u64> {
            thread_cpu_ns(POLL_THREAD_NAME)
                .into_iter()
                .filter(|(thread, _)| !others.contains_key(thread))
                .collect()
        };
        let mut started = own();
        for _ in 0..NAMED_WAIT_MS / NAMED_POLL_MS {
            if !started.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(NAMED_POLL_MS));
            started = own();
        }
        assert!(
            !started.is_empty(),
            "no serving thread named {POLL_THREAD_NAME}"
        );
        // Counted once the thread and its client have settled: what a
        // start costs is not idling.
        std::thread::sleep(Duration::from_millis(SETTLE_MS));
        let before = own();
        std::thread::sleep(Duration::from_secs(2));
        let after = thread_cpu_ns(POLL_THREAD_NAME);
        // rdkafka's own serving thread spent about 1 % of its time (20 ms in
        // 2 s) polling with a zero timeout; this one about a thousandth (2 ms
        // in a debug build), held to half the spin's cost so that a busy
        // machine does not fail it. Other tests' producers may start beside
        // this one, busy with their messages or already gone: of the threads
        // that started with it and still run, the least busy is held to it,
        // as a spinning producer spins whatever it serves.
        let least = before
            .iter()
            .filter_map(|(thread, cpu_ns)| Some(after.get(thread)?.saturating_sub(*cpu_ns)))
            .min();
        match least {
            Some(least) => assert!(
                least < 10_000_000,
                "the idle serving thread used {least} ns of CPU in 2 s"
            ),
            None => panic!("the serving thread stopped while its producer was held"),
        }
    }
}
