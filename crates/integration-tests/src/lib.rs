//! Tests of Wallex's infrastructure clients against real servers.
//!
//! The tests live in `tests/`; each one talks to a real PostgreSQL, Redis, Kafka or
//! Elasticsearch-compatible server found through `DATABASE_URL`, `REDIS_URL`,
//! `KAFKA_BROKERS` and `ELASTICSEARCH_URL` (`scripts/infra.sh up` starts them all and
//! `scripts/infra.sh env` prints the variables). A test whose variable is unset prints
//! one `skipped: ...` line and passes, unless `WALLEX_REQUIRE_INFRA=1` is set (as in
//! `scripts/ci-integration.sh`), where a missing variable fails the test.
//!
//! This library holds the helpers those tests share: fresh resources on the
//! servers, and for the tests of the whole system (`end_to_end`, `faults`) the
//! four binaries as processes ([`system`]), a client that resends until a
//! definitive answer and keeps a book and a history ([`client`]), the
//! check that every downstream system agrees with that book ([`convergence`]),
//! and, for the tests that stop and start servers (`faults`, `kafka_stall`),
//! `scripts/infra.sh` ([`run_infra_script`], [`started_by_infra_script`]).

pub mod client;
pub mod convergence;
mod infra_script;
pub mod proxy;
mod servers;
pub mod system;

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

pub use infra_script::{run_infra_script, started_by_infra_script};
pub use servers::{
    create_named_topic, create_topic, in_migrated_database, produce, produce_raw,
    produce_raw_with_headers, TestDatabase,
};
pub use wallet_domain::testing::continue_history;

/// Set to `1` to make a missing server variable a test failure instead of a skip.
pub const REQUIRE_INFRA_VARIABLE: &str = "WALLEX_REQUIRE_INFRA";

/// Bound on connecting to a server and on one request to it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `WALLEX_REQUIRE_INFRA=1` (or `true`) is set.
pub fn infra_required() -> bool {
    matches!(
        std::env::var(REQUIRE_INFRA_VARIABLE).as_deref(),
        Ok("1") | Ok("true")
    )
}

/// The value of the environment variable `name`, which locates a server.
///
/// When it is unset or empty, prints `skipped: <test> needs <name> (start servers with
/// scripts/infra.sh up)` and returns `None`, so the test returns early and passes.
///
/// # Panics
/// When it is unset or empty and [`infra_required`]: the servers were meant to be there.
#[track_caller]
pub fn require_env(name: &str) -> Option<String> {
    let value = std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty());
    if value.is_none() {
        let test = current_test_name();
        assert!(
            !infra_required(),
            "{test} needs {name}, which is unset while {REQUIRE_INFRA_VARIABLE}=1 \
             (source the output of scripts/infra.sh env)"
        );
        // Straight to the stderr handle: the test harness hides what println! prints in a
        // passing test, and this line is meant to be seen.
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "skipped: {test} needs {name} (start servers with scripts/infra.sh up)"
        );
    }
    value
}

/// `KURRENTDB_URL`, or `None` after saying (once per `notice`) that `cases`
/// were skipped and why. Unlike the other servers, an unset `KURRENTDB_URL`
/// is a skip even under `WALLEX_REQUIRE_INFRA=1`: no package registry ships
/// a KurrentDB server, so CI machines cannot start one.
pub fn kurrentdb_url(notice: &Once, cases: &str) -> Option<String> {
    let url = std::env::var("KURRENTDB_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    if url.is_none() {
        notice.call_once(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "skipped: {cases} need KURRENTDB_URL (no KurrentDB server can be installed \
                 here: no registry ships one and there is no Docker; \
                 e.g. KURRENTDB_URL=kurrentdb://127.0.0.1:2113?tls=false)"
            );
        });
    }
    url
}

/// The name of the running test: the test harness names each test's thread after it.
fn current_test_name() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.rsplit("::").next().unwrap_or(name).to_owned(),
        _ => "test".to_owned(),
    }
}

/// A name no earlier run has used, for databases, keys, indices and consumer groups, so
/// that reruns against the same servers start clean: `prefix_<uuid v7, simple form>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let first = unique_name("wallex_it");
        let second = unique_name("wallex_it");
        assert_ne!(first, second);
        assert!(first.starts_with("wallex_it_"));
        assert!(first
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '_'));
    }

    #[test]
    fn a_set_variable_is_returned() {
        // PATH is set in every environment the tests run in.
        assert!(require_env("PATH").is_some());
    }
}
