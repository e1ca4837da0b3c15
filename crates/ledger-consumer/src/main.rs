use ledger_consumer::{build, rebuild, Command, Config, HANDLER_NAME};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    match config.command {
        Some(Command::Rebuild(args)) => {
            match rebuild(&config.settings, &args.event_store, args.batch_size).await {
                Ok(outcome) => tracing::info!(?outcome, "ledger rebuilt from the event store"),
                Err(error) => {
                    eprintln!("ledger-consumer rebuild: {error}");
                    std::process::exit(1);
                }
            }
        }
        Some(Command::ReplayDlq(replay)) => {
            replay.run(&config.settings, HANDLER_NAME).await?;
        }
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
