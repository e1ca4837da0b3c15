//! The outbox relay: the event log in PostgreSQL, read in position order, is
//! published to Kafka by exactly one elected replica at a time.
//!
//! `main` reads [`Config`], builds the [`Application`] and runs it; the rest
//! is here so that tests can run several replicas in one process.

mod config;
mod http;
mod leader;
mod metrics;
mod startup;

pub use config::{Config, EventStoreKind};
pub use leader::{
    run_elected_relay, Leadership, LEADER_CHECK_INTERVAL_MS, LEADER_CHECK_TIMEOUT_MS,
    LOCK_CONNECT_TIMEOUT_MS, RELAY_LEADER_LOCK_KEY, STANDBY_RETRY_INTERVAL_MS,
};
pub use metrics::Metrics;
pub use startup::{Application, StartupError, HEALTH_KAFKA_TIMEOUT_MS, RELAY_STOP_WAIT_MS};
