//! The watch on a member that does not consume while its group has messages
//! waiting, whatever librdkafka's state.
//!
//! librdkafka recovers from a broker that was away by itself, except in
//! cases it leaves a member silent for good: an assigned partition whose
//! committed offset is never fetched again (confluentinc/librdkafka#5586,
//! which the loop also catches by its `NOT_COORDINATOR` error), a member
//! waiting for its unassignment after a minute's broker stop, and (the fault
//! suite's kept log of 2026-12-05) a member that lost its session while the
//! broker was stopped and then consumed nothing, logged nothing and held no
//! assignment for 18 minutes. Rather than one check per state seen, the
//! watch looks at the symptom, read from outside the member:
//!
//! - the lag refresh reads the group's backlog through a client of its own
//!   (the group's committed offsets and every partition's high watermark),
//!   so it does not depend on the member's client answering; a new one
//!   after each failed read, since any client can stay stuck that way;
//! - the loop tells which partitions librdkafka assigned the member (its
//!   rebalance callbacks), when it last received a message of each and how
//!   far, and when it was busy handling a batch.
//!
//! A new member takes the place of this one when, for its bound, counted on
//! the loop's *idle* clock (time spent handling a batch, a transient failure
//! retried included, does not count: the loop takes nothing meanwhile):
//!
//! - an assigned partition has had messages waiting past the group's
//!   committed offset, seen by every refresh, and none of its messages came
//!   ([`MEMBER_STALL_MAX_MS`]), whether or not other partitions flow (a
//!   member that received up to the high watermark and could not commit is
//!   not stalled: it has nothing to receive);
//! - the member holds no partition at all while a partition of the group has
//!   messages waiting that nobody commits past ([`MEMBER_OUT_OF_GROUP_MAX_MS`],
//!   or [`MEMBER_REBALANCE_WAIT_MAX_MS`] while librdkafka says it waits for
//!   the coordinator to complete a rebalance, which may legitimately wait for
//!   another member for the whole rebalance timeout).
//!
//! A refresh that cannot reach the broker (no watermarks) forgets what it
//! saw: a member is not replaced for a broker that is away (its replacement
//! could do no better), and the count starts again once the broker answers.
//! A new member (a new `subscribe`) joins and fetches again at once; at
//! worst it hands a batch again, which every handler takes at least once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backlog::PartitionBacklog;
use crate::config::CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT;

/// How long, in ms of the loop's idle time, an assigned partition may have
/// messages waiting past the group's committed offset, seen by every lag
/// refresh, while none of its messages is received, before a new member
/// takes this one's place. Far above a fetch's wait (`fetch.wait.max.ms`,
/// 100 ms), a batch's fill (50 ms) and a few lag refreshes (5 s each), so a
/// message produced just before a refresh is received long before this.
pub const MEMBER_STALL_MAX_MS: u64 = 60_000;

/// How long, in ms of the loop's idle time, a member may hold no partition
/// while a partition of its group has messages waiting that nobody commits
/// past, before a new member takes its place, when librdkafka does not say
/// it waits for a rebalance (join states `init`, `wait-metadata`,
/// `wait-unassign-*`, `wait-assign-call`, or none reported lately): each of
/// those ends within a request timeout (5 s) or the loop's next poll (1 s)
/// in a healthy client. A minute leaves room for a coordinator that moved
/// and a session timeout (10 s) the broker waits out after a restart.
pub const MEMBER_OUT_OF_GROUP_MAX_MS: u64 = 60_000;

/// Grace librdkafka adds to the rebalance timeout for a JoinGroup request
/// (its `rd_kafka_JoinGroupRequest`), in ms.
const JOIN_GROUP_GRACE_MS: u64 = 3_000;

/// [`MEMBER_OUT_OF_GROUP_MAX_MS`] for a member librdkafka says waits for
/// the coordinator to complete a rebalance (join states `wait-join`,
/// `wait-sync`), in ms: the coordinator holds a JoinGroup until every known
/// member rejoined or the rebalance timeout passed, and the rebalance timeout
/// is `max.poll.interval.ms` ([`CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT`], 5
/// minutes): a healthy group waits that long for a member busy retrying a
/// batch. Past it, plus librdkafka's grace and the out-of-group bound, no
/// healthy rebalance is still waiting.
pub const MEMBER_REBALANCE_WAIT_MAX_MS: u64 =
    CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT + JOIN_GROUP_GRACE_MS + MEMBER_OUT_OF_GROUP_MAX_MS;

/// librdkafka's join states (`cgrp.join_state` in its statistics) of a
/// member whose JoinGroup or SyncGroup the coordinator holds for a rebalance.
const REBALANCE_JOIN_STATES: [&str; 2] = ["wait-join", "wait-sync"];

/// Why the watch gives a member up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stall {
    /// An assigned partition had messages waiting and none of them came.
    Partition { partition: i32, waited: Duration },
    /// The member held no partition while messages of its group waited.
    OutOfGroup {
        /// librdkafka's last join state, `None` when none was reported lately.
        join_state: Option<String>,
        waited: Duration,
    },
}

/// Shared by the lag refresh task (the group's backlog) and the loop (the
/// member's assignment, receipts and busy time); times are read on the
/// loop's idle clock (see the module's header).
#[derive(Debug)]
pub(crate) struct StallWatch {
    state: Mutex<State>,
}

/// A point of the idle clock: idle time since the watch began.
type Idle = Duration;

#[derive(Debug)]
struct State {
    origin: Instant,
    /// Busy time of the batches finished so far.
    busy_total: Duration,
    /// When the batch being handled began.
    busy_since: Option<Instant>,
    /// Partitions with messages waiting, since when and at which committed offset.
    waiting: BTreeMap<i32, Waiting>,
    /// When a message of each partition last came, and the offset after it.
    received: BTreeMap<i32, Received>,
    /// The member's partitions, each since when.
    assigned: BTreeMap<i32, Idle>,
    /// Since when the member has held no partition (`None` while it holds some).
    unassigned_since: Option<Idle>,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    since: Idle,
    /// The group's next offset, as last read (`None`: never read).
    next: Option<i64>,
    /// The high watermark, as last read.
    high: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Received {
    at: Idle,
    /// The offset after the last message received.
    next: i64,
}

impl StallWatch {
    /// A watch of a member that begins at `origin`, holding no partition.
    pub(crate) fn new(origin: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                origin,
                busy_total: Duration::ZERO,
                busy_since: None,
                waiting: BTreeMap::new(),
                received: BTreeMap::new(),
                assigned: BTreeMap::new(),
                unassigned_since: Some(Duration::ZERO),
            }),
        }
    }

    /// The loop began handling a batch at `at`.
    pub(crate) fn busy_from(&self, at: Instant) {
        let mut state = self.lock();
        state.busy_since.get_or_insert(at);
    }

    /// The loop finished its batch at `at`.
    pub(crate) fn busy_until(&self, at: Instant) {
        let mut state = self.lock();
        if let Some(since) = state.busy_since.take() {
            state.busy_total += at.saturating_duration_since(since);
        }
    }

    /// Messages came at `at`: each message's partition and offset, in the
    /// order received (a partition's last one tells how far it came, also
    /// after a seek back).
    pub(crate) fn received(&self, messages: impl IntoIterator<Item = (i32, i64)>, at: Instant) {
        let mut state = self.lock();
        let idle = state.idle_at(at);
        for (partition, offset) in messages {
            state.received.insert(
                partition,
                Received {
                    at: idle,
                    next: offset + 1,
                },
            );
        }
    }

    /// librdkafka has assigned the member `partitions`, as seen at `at`.
    pub(crate) fn assignment_seen(&self, partitions: &BTreeSet<i32>, at: Instant) {
        let mut state = self.lock();
        let idle = state.idle_at(at);
        state
            .assigned
            .retain(|partition, _| partitions.contains(partition));
        for partition in partitions {
            state.assigned.entry(*partition).or_insert(idle);
        }
        if partitions.is_empty() {
            state.unassigned_since.get_or_insert(idle);
        } else {
            state.unassigned_since = None;
        }
    }

    /// A lag refresh read the group's `backlog` at `at`: every partition of
    /// the topic. A partition whose committed offset moved starts its count
    /// again (someone consumes it); one with nothing waiting is forgotten.
    pub(crate) fn backlog_read(&self, backlog: &[PartitionBacklog], at: Instant) {
        let mut state = self.lock();
        let idle = state.idle_at(at);
        let mut waiting = BTreeMap::new();
        for partition in backlog.iter().filter(|partition| partition.waiting() > 0) {
            let kept = state
                .waiting
                .get(&partition.partition)
                .filter(|seen| {
                    // Progress is a committed offset that moved; one read
                    // or not read before is none.
                    partition.next.is_none() || seen.next.is_none() || seen.next == partition.next
                })
                .map_or(idle, |seen| seen.since);
            waiting.insert(
                partition.partition,
                Waiting {
                    since: kept,
                    high: partition.high,
                    next: partition.next.or_else(|| {
                        state
                            .waiting
                            .get(&partition.partition)
                            .and_then(|seen| seen.next)
                    }),
                },
            );
        }
        state.waiting = waiting;
    }

    /// A lag refresh could not read the group's backlog (the broker is
    /// away): nothing is known to wait until one can.
    pub(crate) fn backlog_unreadable(&self) {
        self.lock().waiting.clear();
    }

    /// Whether the member is to be given up at `now`, librdkafka's last
    /// join state being `join_state` (`None`: none reported lately).
    pub(crate) fn stalled(&self, join_state: Option<&str>, now: Instant) -> Option<Stall> {
        let state = self.lock();
        let idle = state.idle_at(now);
        state
            .partition_stalled(idle)
            .or_else(|| state.out_of_group(join_state, idle))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is whole whatever panicked while it was held: each
        // method writes it in steps that each leave it consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// The idle clock at `at`: time since `origin` less the busy time.
    fn idle_at(&self, at: Instant) -> Idle {
        let busy_now = self
            .busy_since
            .map_or(Duration::ZERO, |since| at.saturating_duration_since(since));
        at.saturating_duration_since(self.origin)
            .saturating_sub(self.busy_total + busy_now)
    }

    /// The first assigned partition whose messages waited unreceived past
    /// [`MEMBER_STALL_MAX_MS`].
    fn partition_stalled(&self, idle: Idle) -> Option<Stall> {
        let bound = Duration::from_millis(MEMBER_STALL_MAX_MS);
        self.assigned.iter().find_map(|(partition, assigned)| {
            let waiting = self.waiting.get(partition)?;
            let received = self.received.get(partition).copied().unwrap_or_default();
            if received.next >= waiting.high {
                // Received up to the high watermark, only not committed.
                return None;
            }
            let since = waiting.since.max(*assigned).max(received.at);
            let waited = idle.saturating_sub(since);
            (waited >= bound).then_some(Stall::Partition {
                partition: *partition,
                waited,
            })
        })
    }

    /// Whether the member held no partition, while a partition had messages
    /// waiting, for the bound of `join_state`.
    fn out_of_group(&self, join_state: Option<&str>, idle: Idle) -> Option<Stall> {
        let unassigned = self.unassigned_since?;
        let first_waiting = self.waiting.values().map(|waiting| waiting.since).min()?;
        let waited = idle.saturating_sub(unassigned.max(first_waiting));
        let rebalancing = join_state.is_some_and(|state| REBALANCE_JOIN_STATES.contains(&state));
        let bound = Duration::from_millis(if rebalancing {
            MEMBER_REBALANCE_WAIT_MAX_MS
        } else {
            MEMBER_OUT_OF_GROUP_MAX_MS
        });
        (waited >= bound).then(|| Stall::OutOfGroup {
            join_state: join_state.map(str::to_owned),
            waited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(MEMBER_STALL_MAX_MS);
    const OUT: Duration = Duration::from_millis(MEMBER_OUT_OF_GROUP_MAX_MS);
    const REBALANCE: Duration = Duration::from_millis(MEMBER_REBALANCE_WAIT_MAX_MS);
    const REFRESH: Duration = Duration::from_secs(5);

    fn partitions(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    /// Partition `partition`: 100 messages, the group's next offset `next`.
    fn backlog(partition: i32, next: Option<i64>) -> PartitionBacklog {
        PartitionBacklog {
            partition,
            low: 0,
            high: 100,
            next,
        }
    }

    /// Refreshes every [`REFRESH`] from `from` until `until`, each reading `read`.
    fn refreshes(watch: &StallWatch, read: &[PartitionBacklog], from: Instant, until: Instant) {
        let mut at = from;
        while at <= until {
            watch.backlog_read(read, at);
            at += REFRESH;
        }
    }

    #[test]
    fn an_assigned_partition_whose_messages_never_come_is_a_stall() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0, 1]), start);
        let read = [backlog(0, Some(90)), backlog(1, Some(100))];
        refreshes(&watch, &read, start, start + STALL);
        assert_eq!(watch.stalled(Some("steady"), start + STALL / 2), None);
        assert_eq!(
            watch.stalled(Some("steady"), start + STALL),
            Some(Stall::Partition {
                partition: 0,
                waited: STALL
            })
        );
    }

    #[test]
    fn a_partition_stuck_while_another_flows_is_a_stall() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0, 1]), start);
        let mut at = start;
        while at < start + STALL {
            // Partition 1 flows: its messages come, its commit moves.
            let next = 10 + (at - start).as_secs() as i64;
            watch.received([(1, next)], at);
            watch.backlog_read(&[backlog(0, Some(50)), backlog(1, Some(next))], at);
            at += REFRESH;
        }
        assert_eq!(
            watch.stalled(Some("steady"), start + STALL),
            Some(Stall::Partition {
                partition: 0,
                waited: STALL
            }),
            "partition 0 waited the whole time"
        );
    }

    #[test]
    fn a_partition_whose_messages_come_is_no_stall() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        refreshes(&watch, &[backlog(0, Some(90))], start, start + STALL);
        watch.received([(0, 95)], start + STALL / 2);
        assert_eq!(watch.stalled(Some("steady"), start + STALL), None);
        assert!(watch
            .stalled(Some("steady"), start + STALL / 2 + STALL)
            .is_some());
    }

    #[test]
    fn a_partition_received_to_its_end_but_not_committed_is_no_stall() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        watch.received([(0, 98), (0, 99)], start);
        refreshes(&watch, &[backlog(0, Some(90))], start, start + STALL * 2);
        assert_eq!(watch.stalled(Some("steady"), start + STALL * 2), None);
    }

    #[test]
    fn time_spent_handling_a_batch_does_not_count() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        refreshes(&watch, &[backlog(0, Some(90))], start, start + STALL * 3);
        // A batch retried for two bounds: the loop took nothing meanwhile.
        watch.busy_from(start + STALL / 2);
        assert_eq!(
            watch.stalled(Some("steady"), start + STALL),
            None,
            "busy now"
        );
        watch.busy_until(start + STALL / 2 + STALL * 2);
        assert_eq!(watch.stalled(Some("steady"), start + STALL * 2), None);
        assert_eq!(
            watch.stalled(Some("steady"), start + STALL * 3),
            Some(Stall::Partition {
                partition: 0,
                waited: STALL
            }),
            "half a bound idle before the batch, half after"
        );
    }

    #[test]
    fn a_member_with_no_partition_while_messages_wait_unconsumed_is_replaced() {
        for join_state in [None, Some("init"), Some("wait-unassign-to-complete")] {
            let start = Instant::now();
            let watch = StallWatch::new(start);
            watch.assignment_seen(&partitions(&[0]), start);
            watch.assignment_seen(&partitions(&[]), start + REFRESH);
            refreshes(&watch, &[backlog(3, Some(10))], start, start + OUT * 2);
            assert_eq!(watch.stalled(join_state, start + OUT), None);
            assert_eq!(
                watch.stalled(join_state, start + REFRESH + OUT),
                Some(Stall::OutOfGroup {
                    join_state: join_state.map(str::to_owned),
                    waited: OUT
                }),
                "{join_state:?}"
            );
        }
    }

    #[test]
    fn a_member_waiting_for_a_rebalance_is_given_the_rebalance_timeout() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        refreshes(&watch, &[backlog(3, Some(10))], start, start + REBALANCE);
        assert_eq!(watch.stalled(Some("wait-join"), start + OUT * 4), None);
        assert_eq!(watch.stalled(Some("wait-sync"), start + OUT * 4), None);
        assert!(watch
            .stalled(Some("wait-join"), start + REBALANCE)
            .is_some());
        assert!(
            watch.stalled(Some("init"), start + OUT).is_some(),
            "out of the rebalance, the short bound"
        );
    }

    #[test]
    fn messages_someone_commits_past_are_not_waiting_on_this_member() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        let mut at = start;
        let mut next = 10;
        while at <= start + OUT * 2 {
            watch.backlog_read(&[backlog(3, Some(next))], at);
            next += 1;
            at += REFRESH;
        }
        assert_eq!(watch.stalled(Some("steady"), start + OUT * 2), None);
    }

    #[test]
    fn a_broker_that_cannot_be_read_starts_the_count_again() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        refreshes(&watch, &[backlog(0, Some(90))], start, start + STALL / 2);
        watch.backlog_unreadable();
        let back = start + STALL;
        refreshes(&watch, &[backlog(0, Some(90))], back, back + STALL);
        assert_eq!(watch.stalled(Some("steady"), back + STALL / 2), None);
        assert!(watch.stalled(Some("steady"), back + STALL).is_some());
    }

    #[test]
    fn unreadable_commits_count_as_waiting_and_not_as_progress() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        watch.backlog_read(&[backlog(0, Some(90))], start);
        watch.backlog_read(&[backlog(0, None)], start + STALL / 2);
        watch.backlog_read(&[backlog(0, Some(90))], start + STALL);
        assert!(watch.stalled(Some("steady"), start + STALL).is_some());
        let empty = PartitionBacklog {
            partition: 0,
            low: 100,
            high: 100,
            next: None,
        };
        assert_eq!(empty.waiting(), 0, "an empty partition waits for nothing");
    }

    #[test]
    fn a_partition_newly_assigned_is_given_the_bound_from_its_assignment() {
        let start = Instant::now();
        let watch = StallWatch::new(start);
        watch.assignment_seen(&partitions(&[0]), start);
        refreshes(&watch, &[backlog(1, Some(0))], start, start + STALL * 2);
        let assigned = start + STALL;
        watch.assignment_seen(&partitions(&[0, 1]), assigned);
        assert_eq!(watch.stalled(Some("steady"), assigned + STALL / 2), None);
        assert!(watch.stalled(Some("steady"), assigned + STALL).is_some());
    }
}
