use std::process::ExitCode;

use ledger_consumer::{build, rebuild, Command, Config, HANDLER_NAME};

fn main() -> ExitCode {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    observability::run_main("ledger-consumer", run(config))
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match config.command {
        Some(Command::Rebuild(ref args)) => {
            let outcome = rebuild(&config.settings, &args.event_store, args.batch_size).await?;
            tracing::info!(?outcome, "ledger rebuilt from the event store");
        }
        Some(Command::ReplayDlq(ref replay)) => {
            let group = config.settings.kafka_group_id.as_str();
            replay
                .run(&config.settings, &[(group, HANDLER_NAME)])
                .await?;
        }
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
