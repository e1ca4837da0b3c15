use clap::Parser;
use outbox_relay::{Application, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    observability::init_tracing(config.log_format);
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
