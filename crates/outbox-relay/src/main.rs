use std::process::ExitCode;

use clap::Parser;
use outbox_relay::{Application, Config};

/// mimalloc, not glibc's allocator: −11 % of the server's CPU per operation on
/// issue 13's benchmark (`bench/README.md`, 2026-12-06); SQLite and librdkafka
/// keep glibc's (replacing theirs too gained nothing).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = Config::parse();
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
