use projection_consumer::{build, rebuild, Command, Config, HANDLER_NAME};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    match config.command.clone() {
        Some(Command::ReplayDlq(replay)) => {
            replay.run(&config.settings, HANDLER_NAME).await?;
        }
        Some(Command::Rebuild(args)) => match rebuild(&config, &args).await {
            Ok(outcome) => tracing::info!(?outcome, "read model and search index rebuilt"),
            Err(error) => {
                eprintln!("projection-consumer rebuild: {error}");
                std::process::exit(1);
            }
        },
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
