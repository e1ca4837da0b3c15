use projection_consumer::{build, Command, Config, HANDLER_NAME};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    match config.command {
        Some(Command::ReplayDlq(replay)) => {
            replay.run(&config.settings, HANDLER_NAME).await?;
        }
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
