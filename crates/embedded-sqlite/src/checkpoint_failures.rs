//! Which files' WAL checkpoints are failing, for `/health` to show.
//!
//! A checkpoint that fails leaves every later commit in the WAL, which then
//! grows without end while reads and writes still pass (a database file
//! made read-only or immutable under the server: the WAL took 84 MB before
//! anyone could tell, hostile test h110). Each [`crate::checkpointer`]
//! keeps a [`FailureStreak`] of its rounds and registers it here under its
//! file's path; the registry holds them weakly, so a file whose checkpointer
//! stopped leaves it. A report asks for one data folder's files: a process
//! may run servers on several folders (as the tests do).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use observability::{FailureStreak, Failures};
use serde::Serialize;

/// A file whose WAL checkpoints fail, as `/health` shows it:
/// `{file, since, failures, error}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingCheckpoints {
    /// The database file's name within the data folder (`events.db`, …).
    pub file: String,
    /// The rounds failed since the last that passed.
    #[serde(flatten)]
    pub failures: Failures,
}

/// A running checkpointer's file path and streak.
type Registered = (PathBuf, Weak<FailureStreak>);

/// The streak of every running checkpointer, by file path.
static STREAKS: LazyLock<Mutex<Vec<Registered>>> = LazyLock::new(Mutex::default);

/// A new streak for the checkpoints of the file at `file`, registered
/// until dropped.
pub(crate) fn register(file: PathBuf) -> Arc<FailureStreak> {
    let streak = Arc::new(FailureStreak::default());
    let mut streaks = STREAKS.lock().unwrap_or_else(PoisonError::into_inner);
    streaks.retain(|(_, streak)| streak.strong_count() > 0);
    streaks.push((file, Arc::downgrade(&streak)));
    streak
}

/// The files in `folder` whose WAL checkpoints failed since their last
/// round that passed (within [`observability::FAILURE_REPORT_MS`] of the
/// last failure), by file name; empty while they work.
pub fn failing_checkpoints(folder: &Path) -> Vec<FailingCheckpoints> {
    let streaks = STREAKS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut failing: Vec<FailingCheckpoints> = streaks
        .iter()
        .filter(|(file, _)| file.parent() == Some(folder))
        .filter_map(|(file, streak)| {
            let failures = streak.upgrade()?.failures()?;
            Some(FailingCheckpoints {
                file: file.file_name()?.to_string_lossy().into_owned(),
                failures,
            })
        })
        .collect();
    failing.sort_by(|one, other| one.file.cmp(&other.file));
    failing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_streak_is_listed_in_its_folder_until_a_round_passes_or_its_checkpointer_stops() {
        let folder = Path::new("/a_failing_streak_test");
        let listed = || {
            failing_checkpoints(folder)
                .into_iter()
                .filter(|failing| failing.file == "events.db")
                .count()
        };
        let streak = register(folder.join("events.db"));
        assert_eq!(listed(), 0, "nothing failed yet");
        streak.failed(&"attempt to write a readonly database");
        assert_eq!(listed(), 1);
        assert!(
            failing_checkpoints(Path::new("/another_folder")).is_empty(),
            "another folder's report"
        );
        streak.passed();
        assert_eq!(listed(), 0, "a round passed");
        streak.failed(&"attempt to write a readonly database");
        drop(streak);
        assert_eq!(listed(), 0, "its checkpointer stopped");
    }
}
