//! What every Kafka consumer binary of Wallex shares, written once.
//!
//! A consumer binary (ledger-consumer, projection-consumer) brings its
//! [`event_sink::EventSink`]s, one per consumer group ([`GroupSink`]), the stores `/health` should check and its own
//! counters; this crate brings the rest: the settings every consumer reads
//! ([`Settings`], with per-binary defaults from a [`Profile`]), the consumer
//! task, the HTTP server with `/health` and `/metrics`, graceful shutdown on
//! SIGTERM/SIGINT ([`Application::run_until_stopped`]) and the dead-letter
//! replay ([`replay_dead_letters`]) and a bounded wait at start-up for a
//! store that is not up yet ([`StartupWait`]).
//!
//! Error policy: start-up failures are [`HostError`], a consumer that stops on
//! its own is a [`RunError`]; both keep their cause and nothing here panics on
//! I/O or input.

mod application;
mod health;
mod http;
mod metrics;
mod settings;

pub use actix_web::dev::ServerHandle;
pub use application::{
    listen, replay_dead_letters, Application, GroupSink, HostError, RunError, Service,
    CONSUMER_STOP_WAIT_MS,
};
pub use health::{
    dependency, furthest_position, partial_dependency, Dependency, Unhealthy,
    HEALTH_CHECK_TIMEOUT_MS,
};
pub use metrics::{count, Metrics};
pub use observability::Listening;
pub use postgres_support::{StartupWait, STARTUP_RETRY_PAUSE_MS, STARTUP_WAIT_SECONDS_MAX};
pub use settings::{
    parse, try_parse_from, Profile, ReplayDlqArgs, Settings, DLQ_REPLAY_LIMIT_DEFAULT,
};
