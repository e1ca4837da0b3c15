//! `command-api migrate` against a PostgreSQL that does not answer yet: it
//! waits for it as every binary does at start-up (`StartupWait`), not the
//! pool's 5 s (tester h168 N1: exit 1 after 5 s, "pool timed out").
//! Runs the built binary.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longer than the pool's own wait for a connection, which ended the
/// command before.
const STILL_WAITING_AFTER: Duration = Duration::from_secs(7);

#[test]
fn migrate_waits_for_a_server_that_does_not_answer_yet() {
    let mut migrate = Command::new(env!("CARGO_BIN_EXE_command-api"))
        .arg("migrate")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RUST_LOG", "info")
        // Port 1: nothing listens, every connection is refused.
        .env(
            "DATABASE_URL",
            "postgres://wallex:secret@127.0.0.1:1/wallex",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    std::thread::sleep(STILL_WAITING_AFTER);
    let exited = migrate.try_wait().expect("its state");
    migrate.kill().expect("killed");
    migrate.wait().expect("reaped");
    let mut log = String::new();
    migrate
        .stdout
        .take()
        .expect("its log")
        .read_to_string(&mut log)
        .expect("read");
    assert_eq!(exited, None, "migrate gave up early: {log}");
    assert!(log.contains("trying again"), "{log}");
}
