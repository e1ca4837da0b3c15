//! The log filter every binary reads from `RUST_LOG`.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// The log target left out unless `RUST_LOG` asks for it (see [`log_filter`]): actix-http
/// logs every malformed request it answers 400 (a missing `Host`, a header
/// over its limit, both `Content-Length` and `Transfer-Encoding`) at ERROR, so
/// any client, authenticated or not, could flood the error log with its own
/// mistakes.
pub const QUIET_UNLESS_NAMED: &str = "actix_http::h1::dispatcher";

/// The level logged when `RUST_LOG` is absent, empty, or cannot be read.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// The names a directive of a level alone may have (`tracing`'s, any case).
const LEVEL_NAMES: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A filter and what the operator should be told of its `RUST_LOG`, to log
/// once the subscriber is installed.
pub struct LogFilter {
    /// The filter to install.
    pub filter: EnvFilter,
    /// Why the value was not taken as written (empty when it was).
    pub warnings: Vec<String>,
}

/// The log filter of `rust_log` (the `RUST_LOG` value), with
/// [`QUIET_UNLESS_NAMED`] off unless it names `actix_http` or asks for
/// `debug` or `trace` somewhere (someone investigating wants all).
///
/// White space around each comma-separated directive is dropped (`info `
/// read as a target named `info ` turned every line off, tester h157 F2);
/// a value with no directive left logs at `info`, as an absent one; one
/// `tracing-subscriber` cannot parse logs at `info` with a warning naming
/// the error; a directive of one word that is no level (`infoo`) is a
/// target, as `tracing-subscriber` reads it, which turns off every other
/// target: kept, with a warning saying so.
pub fn log_filter(rust_log: Option<&str>) -> LogFilter {
    let directives = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let mut warnings = Vec::new();
    let filter = match EnvFilter::builder()
        .with_default_directive(DEFAULT_LEVEL.into())
        .with_regex(false)
        .parse(&directives)
    {
        Ok(filter) => filter,
        Err(error) => {
            warnings.push(format!(
                "RUST_LOG {directives:?} cannot be read ({error}); logging at {DEFAULT_LEVEL}: write levels (error, warn, info, debug, trace, off) and target=level pairs, comma-separated"
            ));
            EnvFilter::new(DEFAULT_LEVEL.to_string())
        }
    };
    let lone_targets: Vec<&str> = directives
        .split(',')
        .filter(|directive| {
            !directive.is_empty()
                && !directive.contains(['=', '['])
                && !LEVEL_NAMES.contains(&directive.to_ascii_lowercase().as_str())
        })
        .collect();
    if !lone_targets.is_empty() && warnings.is_empty() {
        warnings.push(format!(
            "RUST_LOG names {lone_targets:?} without a level: each is read as a target logged at every level, and a target it does not name logs nothing unless a level alone is given too (such as `info,{}`)",
            lone_targets.join(",")
        ));
    }
    let wants_everything = ["actix_http", "debug", "trace"]
        .iter()
        .any(|word| directives.to_ascii_lowercase().contains(word));
    let filter = if wants_everything {
        filter
    } else {
        match format!("{QUIET_UNLESS_NAMED}=off").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        }
    };
    LogFilter { filter, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(rust_log: Option<&str>) -> String {
        log_filter(rust_log).filter.to_string()
    }

    /// Whether `filter` holds the directive `level` alone (the order of its
    /// directives as shown is not the order they were given in).
    fn logs_at(filter: &EnvFilter, level: &str) -> bool {
        filter
            .to_string()
            .split(',')
            .any(|directive| directive == level)
    }

    #[test]
    fn actix_http_s_malformed_request_errors_are_off_unless_rust_log_names_it() {
        let quiet = format!("{QUIET_UNLESS_NAMED}=off");
        assert!(shown(None).contains(&quiet));
        assert!(shown(Some("warn")).contains(&quiet));
        assert!(shown(Some("not a filter ===")).contains(&quiet));
        let named = shown(Some("info,actix_http=debug"));
        assert!(!named.contains(&quiet), "{named}");
        assert!(named.contains("actix_http=debug"), "{named}");
        assert!(!shown(Some("debug")).contains(&quiet));
    }

    #[test]
    fn an_empty_or_padded_value_logs_as_its_words_say() {
        for empty in [None, Some(""), Some("  "), Some(",")] {
            let read = log_filter(empty);
            assert!(logs_at(&read.filter, "info"), "{empty:?}");
            assert!(read.warnings.is_empty(), "{empty:?}");
        }
        for (padded, level) in [("info ", "info"), (" warn", "warn"), ("debug ,", "debug")] {
            let read = log_filter(Some(padded));
            assert!(logs_at(&read.filter, level), "{padded:?}: {}", read.filter);
            assert!(read.warnings.is_empty(), "{padded:?}");
        }
    }

    #[test]
    fn a_value_that_cannot_be_read_logs_at_info_and_says_why() {
        let read = log_filter(Some("info,a=b=c"));
        assert!(logs_at(&read.filter, "info"), "{}", read.filter);
        assert!(
            read.warnings[0].contains("cannot be read"),
            "{:?}",
            read.warnings
        );
    }

    #[test]
    fn a_lone_word_that_is_no_level_is_a_target_and_said_to_be() {
        let read = log_filter(Some("infoo"));
        assert!(read.filter.to_string().contains("infoo"));
        assert!(
            read.warnings[0].contains("without a level"),
            "{:?}",
            read.warnings
        );
        assert!(log_filter(Some("INFO,command_api=debug"))
            .warnings
            .is_empty());
    }
}
