use std::process::ExitCode;

use projection_consumer::{build, rebuild, Command, Config, HANDLER_NAME, SEARCH_HANDLER_NAME};

fn main() -> ExitCode {
    let config = Config::from_env();
    observability::init_tracing(config.settings.log_format);
    observability::run_main("projection-consumer", run(config))
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match config.command.clone() {
        Some(Command::ReplayDlq(replay)) => {
            let search_group = config.search_group_id();
            let consumers = [
                (config.settings.kafka_group_id.as_str(), HANDLER_NAME),
                (search_group.as_str(), SEARCH_HANDLER_NAME),
            ];
            replay.run(&config.settings, &consumers).await?;
        }
        Some(Command::Rebuild(args)) => {
            let outcome = rebuild(&config, &args).await?;
            tracing::info!(?outcome, "read model and search index rebuilt");
        }
        None => build(&config).await?.run_until_stopped().await?,
    }
    Ok(())
}
