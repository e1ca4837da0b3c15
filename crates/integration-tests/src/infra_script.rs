//! `scripts/infra.sh` for the tests that inject server faults (the fault
//! suite, the Kafka stall): they stop, kill and start servers through the
//! same subcommands a human runs, and so only the servers that script
//! started in this checkout, which its `.infra/env` names.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::infra_required;

/// The repository's `scripts/infra.sh`.
fn infra_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/infra.sh")
}

/// Whether the `.infra/env` that `scripts/infra.sh up` wrote in this
/// checkout names `variable=value`: the server at `value` is one the script
/// started, which a test may stop. Otherwise says `skipped: <needs> of
/// scripts/infra.sh up in this checkout` (`needs`: "this test needs the
/// Kafka") and returns false.
///
/// # Panics
/// When it does not and [`infra_required`]: the servers were meant to be there.
pub fn started_by_infra_script(needs: &str, variable: &str, value: &str) -> bool {
    let env_file = infra_script()
        .parent()
        .and_then(|scripts| scripts.parent())
        .map(|root| root.join(".infra/env"))
        .expect("the repository's root");
    let written = std::fs::read_to_string(&env_file).unwrap_or_default();
    let ours = written.contains(&format!("{variable}={value}\n"));
    if !ours {
        assert!(
            !infra_required(),
            "{needs} of scripts/infra.sh up in this checkout ({} does not name {variable}={value})",
            env_file.display()
        );
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "skipped: {needs} of scripts/infra.sh up in this checkout"
        );
    }
    ours
}

/// Runs `scripts/infra.sh <arguments>` in the test's environment, with
/// `environment` set over it.
///
/// # Panics
/// When it exits non-zero: a server did not come back.
pub async fn run_infra_script(arguments: &[&str], environment: &[(&'static str, &'static str)]) {
    let arguments: Vec<String> = arguments
        .iter()
        .map(|argument| (*argument).to_owned())
        .collect();
    let environment = environment.to_vec();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(infra_script())
            .args(&arguments)
            .envs(environment)
            .status()
            .map(|status| (arguments, status))
    })
    .await
    .expect("the infra.sh task ran")
    .expect("scripts/infra.sh runs");
    assert!(
        status.1.success(),
        "scripts/infra.sh {:?} failed: {}",
        status.0,
        status.1
    );
}
