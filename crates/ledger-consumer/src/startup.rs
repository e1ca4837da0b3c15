//! Builds the consumer from configuration: the ledger, its handler, and the
//! shared host around them.

use std::sync::Arc;

use consumer_host::{dependency, Application, GroupSink, HostError, Service};
use event_bus::ParkedWallets;
use ledger::{Ledger, PostgresLedger};

use crate::config::{Config, PROFILE};
use crate::handler::LedgerHandler;
use crate::metrics::Metrics;

/// Connects (and migrates) PostgreSQL and starts consuming.
pub async fn build(config: &Config) -> Result<Application, HostError> {
    let pool = config.settings.connect_postgres().await?;
    let parked = ParkedWallets::new(pool.clone());
    build_with(config, Arc::new(PostgresLedger::new(pool)), parked)
}

/// Starts on a ledger already opened, its parked wallets in `parked`.
pub fn build_with(
    config: &Config,
    ledger: Arc<dyn Ledger>,
    parked: ParkedWallets,
) -> Result<Application, HostError> {
    let metrics = Metrics::new()?;
    let handler = Arc::new(LedgerHandler::new(Arc::clone(&ledger), metrics.clone()));
    // The ledger's PostgreSQL answers with the checkpoint.
    let postgres = dependency("postgres", move || {
        let ledger = Arc::clone(&ledger);
        async move { Ok(Some(ledger.checkpoint().await?)) }
    });
    let service = Service {
        name: PROFILE.name,
        consumers: vec![GroupSink {
            group_id: config.settings.kafka_group_id.clone(),
            sink: handler,
        }],
        dependencies: vec![postgres],
        metrics: metrics.host,
        parked,
    };
    Application::start(&config.settings, service)
}
