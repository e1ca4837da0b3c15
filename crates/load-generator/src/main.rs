use std::process::ExitCode;

use clap::Parser;
use load_generator::cli::Args;
use load_generator::report::render_text;
use load_generator::runner::run;

/// Exit codes: 0 passed, 1 errors or conservation failed, 2 the run could not be made.
const EXIT_FAILED: u8 = 1;
const EXIT_UNRUNNABLE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let report = match run(&args).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("wallex-load: {error}");
            return ExitCode::from(EXIT_UNRUNNABLE);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("wallex-load: Failed to serialize the report: {error}");
                return ExitCode::from(EXIT_UNRUNNABLE);
            }
        }
    } else {
        print!("{}", render_text(&report));
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}
