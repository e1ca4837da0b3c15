use std::process::ExitCode;

use command_api::config::Command;
use command_api::{Application, Config};

/// mimalloc, not glibc's allocator: −11 % of the server's CPU per operation on
/// issue 13's benchmark, for about twice the resident memory under it
/// (`bench/README.md`, 2026-12-06). SQLite keeps glibc's (replacing it too
/// gained nothing). The other three binaries keep glibc's: their CPU is
/// librdkafka's, and mimalloc tripled their memory for no gain.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The messages, not the Debug form: they name what to set.
    let config =
        Config::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit());
    observability::run_main("command-api", run(config))
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    observability::init_tracing(config.log_format);
    match &config.command {
        Some(Command::Migrate) => {
            let url = config
                .database_url
                .as_deref()
                .ok_or_else(|| observability::SettingRefused::new("migrate needs DATABASE_URL"))?;
            // One connection: connecting applies the migrations under sqlx's
            // advisory lock. A server that does not answer yet is waited for,
            // as every binary waits for it (tester h168 N1: 5 s, then exit 1).
            postgres_support::StartupWait::default()
                .until_ready(
                    "postgres",
                    postgres_support::PostgresError::is_transient,
                    || postgres_support::connect(url, 1),
                )
                .await?;
            return Ok(());
        }
        Some(Command::ReplayDeadLetters(args)) => {
            for (sink, outcome) in command_api::dead_letters::replay(&config, args).await? {
                println!(
                    "{sink}: {} replayed, {} still parked",
                    outcome.replayed, outcome.still_parked
                );
            }
            return Ok(());
        }
        Some(Command::Token(args)) => {
            let token = command_api::token::mint(&config.auth, args)
                .map_err(command_api::token::TokenError::into_exit_error)?;
            println!("{token}");
            return Ok(());
        }
        None => {}
    }
    Application::build(config)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
