//! Builds the consumer from configuration: the ledger, its handler, and the
//! shared host around them.

use std::sync::Arc;

use consumer_host::{dependency, Application, GroupSink, HostError, Listening, Service};
use event_bus::ParkedWallets;
use ledger::{Ledger, PostgresLedger};

use crate::config::{Config, PROFILE};
use crate::handler::LedgerHandler;
use crate::metrics::Metrics;

/// Binds the health and metrics port, connects (and migrates) PostgreSQL
/// and starts consuming.
pub async fn build(config: &Config) -> Result<Application, HostError> {
    let listening = consumer_host::listen(&config.settings)?;
    let pool = config.settings.connect_postgres().await?;
    let parked = ParkedWallets::new(pool.clone());
    build_on(
        listening,
        config,
        Arc::new(PostgresLedger::new(pool)),
        parked,
    )
}

/// Starts on a ledger already opened, its parked wallets in `parked`.
pub fn build_with(
    config: &Config,
    ledger: Arc<dyn Ledger>,
    parked: ParkedWallets,
) -> Result<Application, HostError> {
    build_on(
        consumer_host::listen(&config.settings)?,
        config,
        ledger,
        parked,
    )
}

/// [`build_with`] on a port bound before.
fn build_on(
    listening: Listening,
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
    Application::start_on(listening, &config.settings, service)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use consumer_host::Settings;

    use super::*;

    #[tokio::test]
    async fn a_port_in_use_is_refused_before_postgresql_is_waited_for() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port");
        let port = taken.local_addr().expect("its address").port();
        // Nothing listens there: the start would wait for it 120 s.
        let mut settings =
            Settings::for_test("postgres://u:p@127.0.0.1:1/db", "127.0.0.1:1", "t", "g");
        settings.port = port;
        let config = Config {
            command: None,
            settings,
        };
        let refused = tokio::time::timeout(Duration::from_secs(10), build(&config))
            .await
            .expect("refused at once, not after the wait")
            .map(|_| ())
            .expect_err("the port is taken");
        assert!(matches!(refused, HostError::Listen(_)), "{refused}");
        assert!(refused.to_string().contains(&port.to_string()), "{refused}");
    }
}
