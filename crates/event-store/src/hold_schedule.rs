//! The due holds of a store that keeps no hold directory table (KurrentDB,
//! which appends one stream at a time and has no secondary index): the
//! pending holds with an expiry, folded in memory from the wallet log.
//!
//! Each call to [`HoldSchedule::catch_up`] reads the log from where the last
//! one stopped, at most [`HOLD_SCHEDULE_BATCHES_MAX`] batches of
//! [`READ_ALL_BATCH_MAX`] events, so the first sweep after a start-up reads
//! the log in bounded steps, a sweep at a time. A hold the schedule has not
//! read yet is simply not listed: the expiry sweeper finds it on a later
//! round, and until then the next command on its wallet expires it anyway
//! (expiry is decided from the log and the command's clock). The memory is
//! one entry per pending hold with an expiry.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use wallet_domain::{HoldId, WalletId};

use crate::{
    directory_change, DirectoryChange, DueHold, EventStore, RecordedEvent, StoreError,
    READ_ALL_BATCH_MAX,
};

/// Batches of the log one catch-up reads at most.
pub const HOLD_SCHEDULE_BATCHES_MAX: usize = 100;

/// Pending holds with an expiry, from the log up to a position.
#[derive(Debug, Default)]
pub struct HoldSchedule {
    /// The log position of the last event folded in.
    read_through: u64,
    /// (expiry, hold) of every pending hold with an expiry, soonest first.
    by_expiry: BTreeSet<(DateTime<Utc>, HoldId)>,
    /// Each such hold's wallet and expiry, to find and drop it when settled.
    holds: HashMap<HoldId, (WalletId, DateTime<Utc>)>,
}

impl HoldSchedule {
    /// Folds the events appended since the last call, in log order.
    /// Errors: the store's, when it cannot be read (what was folded stays).
    pub async fn catch_up(&mut self, store: &dyn EventStore) -> Result<(), StoreError> {
        for _ in 0..HOLD_SCHEDULE_BATCHES_MAX {
            let batch = store
                .read_all(self.read_through, READ_ALL_BATCH_MAX)
                .await?;
            for recorded in &batch {
                self.apply(recorded);
            }
            if batch.len() < READ_ALL_BATCH_MAX {
                break;
            }
        }
        Ok(())
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        self.read_through = self.read_through.max(recorded.position);
        match directory_change(&recorded.event) {
            Some(DirectoryChange::Enter {
                hold_id,
                expires_at: Some(expires_at),
                ..
            }) => {
                self.by_expiry.insert((expires_at, hold_id.clone()));
                self.holds.insert(
                    hold_id.clone(),
                    (recorded.event.wallet_id.clone(), expires_at),
                );
            }
            Some(DirectoryChange::Settle { hold_id, .. }) => {
                if let Some((_, expires_at)) = self.holds.remove(hold_id) {
                    self.by_expiry.remove(&(expires_at, hold_id.clone()));
                }
            }
            Some(DirectoryChange::Enter {
                expires_at: None, ..
            })
            | None => {}
        }
    }

    /// At most `limit` holds due at `clock` (expiry at or before it), soonest first.
    pub fn due(&self, clock: DateTime<Utc>, limit: usize) -> Vec<DueHold> {
        self.by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= clock)
            .filter_map(|(_, hold_id)| {
                let (wallet_id, _) = self.holds.get(hold_id)?;
                Some(DueHold {
                    hold_id: hold_id.clone(),
                    wallet_id: wallet_id.clone(),
                })
            })
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::Duration;
    use rust_decimal::Decimal;
    use uuid::Uuid;
    use wallet_domain::{
        decide, evolve, Amount, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletState,
    };

    use super::*;
    use crate::{AppendRequest, EmbeddedEventStore, StreamAppend};

    /// Decides `kind` on `state` at `clock` and appends it.
    async fn execute(
        store: &dyn EventStore,
        state: WalletState,
        wallet: &str,
        kind: CommandKind,
        clock: DateTime<Utc>,
    ) -> WalletState {
        let command = Command {
            wallet_id: WalletId::parse(wallet).expect("wallet id"),
            kind,
            event_id: Uuid::now_v7(),
            issued_at: clock,
            metadata: EventMetadata::default(),
        };
        let events = decide(&state, &command).expect("allowed");
        store
            .append(AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: command.wallet_id.clone(),
                    expected_version: state.version(),
                    expected_last_event_id: None,
                    events: events.clone(),
                }],
                idempotent_response: None,
            })
            .await
            .expect("append");
        events.iter().fold(state, evolve)
    }

    fn place(hold: &str, expires_at: Option<DateTime<Utc>>) -> CommandKind {
        CommandKind::PlaceHold {
            hold_id: HoldId::parse(hold).expect("hold id"),
            amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
            expires_at,
            description: None,
        }
    }

    #[tokio::test]
    async fn due_holds_are_folded_from_the_log_until_they_are_settled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedEventStore::open(dir.path()).expect("store");
        let now = Utc::now();
        let create = CommandKind::Create {
            owner_id: OwnerId::parse("o").expect("owner"),
            initial_balance: Balance::try_from(Decimal::from_str("10").expect("ten"))
                .expect("balance"),
            overdraft_limit: Balance::ZERO,
        };
        let wallet = execute(&store, WalletState::Absent, "w1", create, now).await;
        let (soon, later) = (now + Duration::minutes(1), now + Duration::minutes(2));
        let wallet = execute(&store, wallet, "w1", place("h-later", Some(later)), now).await;
        let wallet = execute(&store, wallet, "w1", place("h-soon", Some(soon)), now).await;
        // Due from the millisecond each expiry is kept at (rounded up).
        let (soon, later) = (
            wallet_domain::kept_expiry(soon),
            wallet_domain::kept_expiry(later),
        );
        let wallet = execute(&store, wallet, "w1", place("h-never", None), now).await;

        let mut schedule = HoldSchedule::default();
        schedule.catch_up(&store).await.expect("catch up");
        assert!(schedule.due(now, 10).is_empty());
        let ids = |due: Vec<DueHold>| -> Vec<String> {
            due.into_iter()
                .map(|hold| format!("{}@{}", hold.hold_id, hold.wallet_id))
                .collect()
        };
        assert_eq!(ids(schedule.due(soon, 10)), ["h-soon@w1"]);
        assert_eq!(ids(schedule.due(later, 10)), ["h-soon@w1", "h-later@w1"]);
        assert_eq!(ids(schedule.due(later, 1)), ["h-soon@w1"]);

        let void = CommandKind::VoidHold {
            hold_id: HoldId::parse("h-soon").expect("hold id"),
        };
        execute(&store, wallet, "w1", void, now).await;
        schedule.catch_up(&store).await.expect("catch up");
        assert_eq!(ids(schedule.due(later, 10)), ["h-later@w1"]);
    }
}
