//! How a binary ends on an error: one line on stderr naming what failed and
//! why, never the `Debug` dump `fn main() -> Result` prints.

use std::error::Error;
use std::process::ExitCode;

/// `ExitCode::SUCCESS` for `Ok`; for `Err` prints `<binary>: <message>:
/// <cause>: …` on stderr (see [`with_causes`]) and answers
/// `ExitCode::FAILURE` (1).
pub fn exit_code(binary: &str, outcome: Result<(), Box<dyn Error>>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{binary}: {}", with_causes(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error's message followed by each cause's (`: `-separated), skipping a
/// cause whose message the text already holds (many errors print their
/// cause in their own message and keep it as their source too).
pub fn with_causes(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let message = inner.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to PostgreSQL")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("password authentication failed for user \"wallex\"")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start: {0}")]
    struct Repeating(#[source] Inner);

    #[test]
    fn every_cause_is_named_once_on_one_line() {
        assert_eq!(
            with_causes(&Outer(Inner)),
            "cannot connect to PostgreSQL: password authentication failed for user \"wallex\""
        );
        assert_eq!(
            with_causes(&Repeating(Inner)),
            "cannot start: password authentication failed for user \"wallex\""
        );
    }

    #[test]
    fn only_an_error_fails_the_process() {
        assert_eq!(exit_code("test", Ok(())), ExitCode::SUCCESS);
        assert_eq!(
            exit_code("test", Err(Box::new(Outer(Inner)))),
            ExitCode::FAILURE
        );
    }
}
