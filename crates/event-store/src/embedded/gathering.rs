//! How the log's writer gathers the jobs of one group commit.
//!
//! The writer takes every job already waiting. When the group before was a
//! busy one (at least [`COMMIT_DELAY_SIBLINGS_MIN`] appends), it then pauses
//! once for [`COMMIT_DELAY_US`] and takes what arrived meanwhile: a commit
//! delay, as PostgreSQL's `commit_delay` with `commit_siblings` (its
//! documentation, "WAL Configuration"). Each commit writes some pages
//! whatever it carries (the log's newest leaf again, page 1, its B-trees'
//! parents, and the WAL's last 4 KiB page, written again after the sync
//! before), so fewer, fuller groups write fewer bytes and sync less often per
//! append. A lone caller, or a few, never waits: their group before was
//! small.

use std::time::Duration;

use tokio::sync::mpsc::{self, error::TryRecvError};

/// The pause before a busy group's commit, in microseconds. On the
/// benchmark's mix (20 connections) 300 µs halved the log's syncs per
/// operation (0.18 → 0.09) and took 0.4-0.5 KiB off the bytes written per
/// operation, with the rate and the p99 within the machine's noise; 150 µs
/// took 0.3-0.4 KiB off (bench/README.md).
pub const COMMIT_DELAY_US: u64 = 300;
/// Appends the group before must have held for the next to pause: fewer,
/// and the callers are too few for a pause to gather more of them.
pub const COMMIT_DELAY_SIBLINGS_MIN: usize = 4;

/// The pause before the next group's commit, given the appends the group
/// before held: [`COMMIT_DELAY_US`] after a busy group, none otherwise.
pub(super) fn commit_delay(previous_appends: usize) -> Option<Duration> {
    (previous_appends >= COMMIT_DELAY_SIBLINGS_MIN).then(|| Duration::from_micros(COMMIT_DELAY_US))
}

/// Hands `take` the jobs waiting in `queue`, one at a time, while it says to
/// go on and fewer than `room` were taken; when the queue is found empty the
/// first time, sleeps for `delay` (if any) and looks again. Never blocks
/// beyond that one pause: a group is committed with what it has.
pub(super) fn gather<T>(
    queue: &mut mpsc::Receiver<T>,
    room: usize,
    mut delay: Option<Duration>,
    mut take: impl FnMut(T) -> bool,
) {
    for _ in 0..room {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Empty) => match delay.take() {
                Some(pause) => {
                    std::thread::sleep(pause);
                    match queue.try_recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
                None => return,
            },
            Err(TryRecvError::Disconnected) => return,
        };
        if !take(job) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A pause far longer than the senders' steps, so that what a test
    /// expects does not hang on the scheduler.
    const TEST_PAUSE: Duration = Duration::from_millis(200);

    fn gathered(
        queue: &mut mpsc::Receiver<u32>,
        room: usize,
        delay: Option<Duration>,
        stop_at: Option<u32>,
    ) -> Vec<u32> {
        let mut taken = Vec::new();
        gather(queue, room, delay, |job| {
            taken.push(job);
            Some(job) != stop_at
        });
        taken
    }

    /// Sends `job` after `after` from a thread of its own.
    fn send_later(
        sender: &mpsc::Sender<u32>,
        job: u32,
        after: Duration,
    ) -> std::thread::JoinHandle<()> {
        let sender = sender.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            sender.blocking_send(job).expect("queue open");
        })
    }

    #[test]
    fn a_busy_group_pauses_and_a_quiet_one_does_not() {
        assert_eq!(commit_delay(0), None);
        assert_eq!(commit_delay(COMMIT_DELAY_SIBLINGS_MIN - 1), None);
        assert_eq!(
            commit_delay(COMMIT_DELAY_SIBLINGS_MIN),
            Some(Duration::from_micros(COMMIT_DELAY_US))
        );
        assert_eq!(
            commit_delay(512),
            Some(Duration::from_micros(COMMIT_DELAY_US))
        );
    }

    #[test]
    fn without_a_pause_only_the_jobs_waiting_are_taken() {
        let (sender, mut queue) = mpsc::channel(16);
        for job in 1..=3 {
            sender.try_send(job).expect("room");
        }
        let late = send_later(&sender, 4, TEST_PAUSE);
        let started = Instant::now();
        assert_eq!(gathered(&mut queue, 16, None, None), vec![1, 2, 3]);
        assert!(started.elapsed() < TEST_PAUSE);
        late.join().expect("sender");
    }

    #[test]
    fn a_pause_takes_what_arrives_meanwhile_once() {
        let (sender, mut queue) = mpsc::channel(16);
        sender.try_send(1).expect("room");
        let during = send_later(&sender, 2, Duration::from_millis(20));
        let after = send_later(&sender, 3, TEST_PAUSE + Duration::from_millis(300));
        assert_eq!(gathered(&mut queue, 16, Some(TEST_PAUSE), None), vec![1, 2]);
        during.join().expect("sender");
        after.join().expect("sender");
        assert_eq!(queue.try_recv(), Ok(3), "left for the next group");
    }

    #[test]
    fn a_full_group_or_a_refusal_ends_the_gathering_without_a_pause() {
        let (sender, mut queue) = mpsc::channel(16);
        for job in 1..=5 {
            sender.try_send(job).expect("room");
        }
        let started = Instant::now();
        assert_eq!(gathered(&mut queue, 2, Some(TEST_PAUSE), None), vec![1, 2]);
        assert_eq!(gathered(&mut queue, 16, Some(TEST_PAUSE), Some(3)), vec![3]);
        assert!(started.elapsed() < TEST_PAUSE);
        assert_eq!(queue.try_recv(), Ok(4));
    }

    #[test]
    fn a_closed_queue_is_not_waited_for() {
        let (sender, mut queue) = mpsc::channel::<u32>(16);
        drop(sender);
        let started = Instant::now();
        assert!(gathered(&mut queue, 16, Some(TEST_PAUSE), None).is_empty());
        assert!(started.elapsed() < TEST_PAUSE);
    }
}
