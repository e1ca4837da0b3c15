use std::process::ExitCode;

use outbox_relay::{Application, Config};

fn main() -> ExitCode {
    let config = Config::from_env();
    observability::init_tracing(config.log_format);
    observability::run_main("outbox-relay", run(config))
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
