//! The outbox relay: the event log, read in position order, is published to
//! Kafka by exactly one elected replica at a time.
//!
//! The log is PostgreSQL's events table, polled with `read_all`, or KurrentDB's
//! `$all`, read through a catch-up subscription filtered on the wallet
//! streams (`EventStore::subscribe_all`). Either way `event_relay::run_relay`
//! starts from the checkpoint in PostgreSQL, publishes batches of at most
//! `RELAY_BATCH_SIZE`, stores the checkpoint only after Kafka acknowledged a
//! batch, and after any failure (or on a new leader) starts again from that
//! checkpoint: at least once, in global order. The subscription path is tested
//! without a server in `event-relay`, and against KurrentDB only where
//! `KURRENTDB_URL` is set.
//!
//! `main` reads [`Config`], builds the [`Application`] and runs it; the rest
//! is here so that tests can run several replicas in one process.

mod config;
mod http;
mod leader;
mod metrics;
mod startup;

pub use config::{Config, RELAY_STEP_DOWN_AFTER_FAILING_MS_DEFAULT};
pub use event_store_choice::{EventStoreArgs, EventStoreKind};
pub use leader::{
    open_lock_connection, run_elected_relay, Leadership, LEADER_CHECK_INTERVAL_MS,
    LEADER_CHECK_TIMEOUT_MS, LOCK_CONNECT_TIMEOUT_MS, LOCK_IDLE_SESSION_TIMEOUT_MS,
    RELAY_LEADER_LOCK_KEY, STANDBY_RETRY_INTERVAL_MS, STEP_DOWN_SIT_OUT_MS,
};
pub use metrics::Metrics;
pub use startup::{Application, StartupError, HEALTH_KAFKA_TIMEOUT_MS, RELAY_STOP_WAIT_MS};
