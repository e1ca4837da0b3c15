use clap::Parser;
use projection_consumer::{replay_dead_letters, Application, Command, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    observability::init_tracing(config.log_format);
    match config.command {
        Some(Command::ReplayDlq { limit }) => {
            let replayed = replay_dead_letters(&config, limit).await?;
            tracing::info!(replayed, "dead letters replayed");
        }
        None => {
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?
        }
    }
    Ok(())
}
