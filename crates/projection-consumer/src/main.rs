use std::process::ExitCode;

use projection_consumer::{build, rebuild, Command, Config, HANDLER_NAME};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    observability::exit_code("projection-consumer", run(config).await)
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match config.command.clone() {
        Some(Command::ReplayDlq(replay)) => {
            replay.run(&config.settings, HANDLER_NAME).await?;
        }
        Some(Command::Rebuild(args)) => {
            let outcome = rebuild(&config, &args).await?;
            tracing::info!(?outcome, "read model and search index rebuilt");
        }
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
