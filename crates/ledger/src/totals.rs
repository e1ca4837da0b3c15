//! A wallet's totals kept along its history, so that its summary (now or as
//! of a moment) sums a bounded number of transactions however long the
//! wallet's history (issue 13: 108 ms on a wallet of 108,000 events).
//!
//! A checkpoint holds a wallet's [`Totals`] through one of its transactions
//! (its log position and time): every transaction of the wallet at or
//! before that position, netted over its two accounts. A summary starts from
//! the newest checkpoint at or before its moment and sums the wallet's
//! transactions after it up to the moment; one that sums
//! [`TOTALS_CHECKPOINT_TRANSACTIONS`] or more writes a checkpoint every that
//! many along the way, so a long history is summed once and never again.
//!
//! Checkpoints are a cache of the entries, written by readers. They hold
//! because a wallet's transactions are posted in its log order (the relay
//! and the consumers keep each wallet's events in order; a wallet with dead
//! letters parks its later events behind them), so no transaction of a
//! wallet is posted below one of its checkpoints later; and only a wallet's
//! own events post to its two accounts ([`crate::posting`]); and a wallet's
//! events never go back in time ([`wallet_domain::decide`]), so the newest
//! checkpoint at or before a time is the nearest one, and a summary as of a
//! time stops at the wallet's first transaction past it (SQLite streams
//! them in ledger order; PostgreSQL reads no further than the wallet's
//! oldest checkpoint past the moment).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::stored::{checked_sum, Totals};
use crate::LedgerError;

/// Transactions of a wallet between two checkpoints of its totals: the most
/// a summary sums once they are written.
pub const TOTALS_CHECKPOINT_TRANSACTIONS: u64 = 200;

/// Checkpoint rows a summary reads at most, newest first, for one it can
/// use: a cache row that is not (edited, or damaged) is passed for the one
/// before it, and deleted ([`CheckpointLookup::passed`]), so a summary
/// clears up to this many at once (tester h167 F3: 5,000 damaged rows,
/// passed four at a time, left about 1,200 summaries summing from the first
/// transaction). Past it, the summary sums from the wallet's first
/// transaction.
pub(crate) const TOTALS_CHECKPOINT_ROWS_READ_MAX: i64 = 10_000;
/// The first read of a PostgreSQL summary's lookup, in rows: the newest
/// is almost always usable; later reads take [`TOTALS_CHECKPOINT_ROWS_PAGE`].
pub(crate) const TOTALS_CHECKPOINT_FIRST_ROWS: i64 = 4;
/// Rows of each later read of a PostgreSQL summary's lookup.
pub(crate) const TOTALS_CHECKPOINT_ROWS_PAGE: i64 = 1_000;

/// A wallet's totals through its transaction at `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TotalsCheckpoint {
    /// The log position of the wallet's last transaction counted.
    pub position: i64,
    /// When that transaction occurred.
    pub occurred_at: DateTime<Utc>,
    pub totals: Totals,
}

impl TotalsCheckpoint {
    /// The SHA-256 (lower-case hex) of `wallet_id`'s checkpoint: its
    /// position, its time in microseconds, both totals without trailing
    /// zeros and its count, one a line. Stored with the row and compared
    /// when it is read, so an edit of the row's values that does not also
    /// recompute it is found (tester h167 F2: a believable forged total was
    /// summed on, and carried into newer checkpoints); as the snapshots'
    /// digest, it does not stop one that does.
    pub fn digest(&self, wallet_id: &str) -> String {
        let text = format!(
            "{wallet_id}\n{}\n{}\n{}\n{}\n{}",
            self.position,
            self.occurred_at.timestamp_micros(),
            self.totals.credits.normalize(),
            self.totals.debits.normalize(),
            self.totals.count,
        );
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// A checkpoint's columns as a store read them back, each `None` when it
/// does not read as the store writes it.
pub(crate) struct StoredCheckpoint {
    /// Whether the ledger holds its transaction, of its wallet at its time.
    pub held: bool,
    /// Its [`TotalsCheckpoint::digest`] as stored.
    pub digest: Option<String>,
    pub position: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub credits: Option<Decimal>,
    pub debits: Option<Decimal>,
    pub count: Option<u64>,
}

impl StoredCheckpoint {
    /// The checkpoint of `wallet_id` these columns hold when its transaction
    /// is held, every column reads, neither total is negative, it counts no
    /// more transactions than the log held up to its position (tester h166
    /// N1) and its digest is its values' (tester h167 F2); else `None`: a
    /// cache row that is passed, never taken for damage of the ledger (tester
    /// h165 F2, F3), and logged with the others a summary passed
    /// ([`CheckpointLookup::logged`]).
    pub fn usable(self, wallet_id: &str) -> Option<TotalsCheckpoint> {
        let total = |total: Option<Decimal>| total.filter(|total| !total.is_sign_negative());
        let possible = self
            .position
            .and_then(|position| u64::try_from(position).ok());
        let count = self
            .count
            .filter(|count| possible.is_some_and(|possible| *count <= possible));
        if let (true, Some(position), Some(occurred_at), Some(credits), Some(debits), Some(count)) = (
            self.held,
            self.position,
            self.occurred_at,
            total(self.credits),
            total(self.debits),
            count,
        ) {
            let checkpoint = TotalsCheckpoint {
                position,
                occurred_at,
                totals: Totals {
                    credits,
                    debits,
                    count,
                },
            };
            if self.digest.as_deref() == Some(checkpoint.digest(wallet_id).as_str()) {
                return Some(checkpoint);
            }
        }
        None
    }
}

/// What a summary found among a wallet's checkpoints at or before its
/// moment, read newest first (at most [`TOTALS_CHECKPOINT_ROWS_READ_MAX`]).
#[derive(Debug, Default)]
pub(crate) struct CheckpointLookup {
    /// The newest usable one: where the sum starts.
    pub base: Option<TotalsCheckpoint>,
    /// The positions of the rows passed on the way: the summary's writer
    /// deletes them, and every row of the wallet its ledger does not hold,
    /// so a damaged or forged row is read past once, not at every summary
    /// (tester h166 N2: 50,000 forged rows cost each summary 9–14 ms, for
    /// good).
    pub passed: Vec<i64>,
}

impl CheckpointLookup {
    /// The lookup, the rows it passed logged in one line (tester h168 N2:
    /// a line a row, 10,000 lines from one summary).
    pub fn logged(self, wallet_id: &str) -> Self {
        if let (Some(newest), Some(oldest)) = (self.passed.first(), self.passed.last()) {
            tracing::warn!(
                wallet_id,
                passed = self.passed.len(),
                newest,
                oldest,
                "ledger totals checkpoints not used (they do not read as the ledger writes them); deleting them"
            );
        }
        self
    }

    /// Takes the next row, newest first; `false` once a usable one is found
    /// or [`TOTALS_CHECKPOINT_ROWS_READ_MAX`] rows are read: the reader stops.
    pub fn offer(&mut self, wallet_id: &str, row: StoredCheckpoint) -> bool {
        let position = row.position;
        match row.usable(wallet_id) {
            Some(checkpoint) => {
                self.base = Some(checkpoint);
                false
            }
            None => {
                // A position that does not read is deleted with the
                // wallet's rows the ledger does not hold.
                self.passed.push(position.unwrap_or(-1));
                // Every row read before a usable one is passed.
                i64::try_from(self.passed.len()).unwrap_or(i64::MAX)
                    < TOTALS_CHECKPOINT_ROWS_READ_MAX
            }
        }
    }
}

/// Sums a wallet's entries on its two accounts in ledger order (by position,
/// then line) from a checkpoint on, netting each transaction, and marks a
/// checkpoint every [`TOTALS_CHECKPOINT_TRANSACTIONS`] transactions.
#[derive(Debug, Default)]
pub(crate) struct TotalsFold {
    totals: Totals,
    /// The transaction being summed: its position, time and net so far.
    current: Option<(i64, DateTime<Utc>, Decimal)>,
    since_checkpoint: u64,
    checkpoints: Vec<TotalsCheckpoint>,
    /// The position of the last transaction counted, the base's included.
    through: Option<i64>,
}

/// What a [`TotalsFold`] summed.
#[derive(Debug)]
pub(crate) struct Summed {
    pub totals: Totals,
    /// The checkpoints marked on the way, oldest first.
    pub checkpoints: Vec<TotalsCheckpoint>,
    /// The position of the wallet's last transaction counted (`None` when
    /// none was): where its newest entry is.
    pub through: Option<i64>,
}

impl TotalsFold {
    /// A fold from `base` (the wallet's first transaction when `None`).
    pub fn from(base: Option<TotalsCheckpoint>) -> Self {
        Self {
            through: base.as_ref().map(|base| base.position),
            totals: base.map(|base| base.totals).unwrap_or_default(),
            ..Self::default()
        }
    }

    /// One entry, after every entry before it in ledger order.
    pub fn entry(
        &mut self,
        position: i64,
        occurred_at: DateTime<Utc>,
        amount: Decimal,
    ) -> Result<(), LedgerError> {
        self.current = Some(match self.current.take() {
            Some((current, at, net)) if current == position => {
                (current, at, checked_sum(net, amount)?)
            }
            Some(finished) => {
                self.close(finished)?;
                (position, occurred_at, amount)
            }
            None => (position, occurred_at, amount),
        });
        Ok(())
    }

    /// The totals through the last entry.
    pub fn finish(mut self) -> Result<Summed, LedgerError> {
        if let Some(finished) = self.current.take() {
            self.close(finished)?;
        }
        Ok(Summed {
            totals: self.totals,
            checkpoints: self.checkpoints,
            through: self.through,
        })
    }

    fn close(
        &mut self,
        (position, occurred_at, net): (i64, DateTime<Utc>, Decimal),
    ) -> Result<(), LedgerError> {
        self.totals.add(net)?;
        self.through = Some(position);
        self.since_checkpoint += 1;
        if self.since_checkpoint == TOTALS_CHECKPOINT_TRANSACTIONS {
            self.since_checkpoint = 0;
            self.checkpoints.push(TotalsCheckpoint {
                position,
                occurred_at,
                totals: self.totals.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of wallet `w` as a store reads back what it wrote, digest and
    /// all: `count` transactions through `position`, 10.00 in and `debits` out.
    fn written(position: i64, count: u64, debits: &str) -> StoredCheckpoint {
        let checkpoint = TotalsCheckpoint {
            position,
            occurred_at: Utc::now(),
            totals: Totals {
                credits: money("10.00"),
                debits: money(debits),
                count,
            },
        };
        StoredCheckpoint {
            held: true,
            digest: Some(checkpoint.digest("w")),
            position: Some(position),
            occurred_at: Some(checkpoint.occurred_at),
            credits: Some(checkpoint.totals.credits),
            debits: Some(checkpoint.totals.debits),
            count: Some(count),
        }
    }

    #[test]
    fn a_checkpoint_read_back_is_used_only_when_it_could_have_been_written() {
        assert!(written(617, 617, "1.00").usable("w").is_some());
        // More transactions than the log held up to its position (h166 N1).
        assert!(written(617, 618, "1.00").usable("w").is_none());
        assert!(written(617, u64::MAX, "1.00").usable("w").is_none());
        assert!(written(617, 5, "-1.00").usable("w").is_none());
        let not_held = StoredCheckpoint {
            held: false,
            ..written(617, 617, "1.00")
        };
        assert!(not_held.usable("w").is_none());
        // Another wallet's, or a value edited without its digest (h167 F2).
        assert!(written(617, 617, "1.00").usable("v").is_none());
        let edited = StoredCheckpoint {
            credits: Some(money("12345.00")),
            ..written(617, 617, "1.00")
        };
        assert!(edited.usable("w").is_none());
        let undigested = StoredCheckpoint {
            digest: None,
            ..written(617, 617, "1.00")
        };
        assert!(undigested.usable("w").is_none());
        // The digest is of the values, not of their spelling.
        let spelled = StoredCheckpoint {
            credits: Some(money("10.0000")),
            ..written(617, 617, "1.00")
        };
        assert!(spelled.usable("w").is_some());
    }

    #[test]
    fn a_lookup_starts_from_the_newest_usable_row_and_names_those_it_passed() {
        let row = |held, position: Option<i64>| StoredCheckpoint {
            held,
            position,
            ..written(position.unwrap_or(1), 3, "1.00")
        };
        let mut lookup = CheckpointLookup::default();
        assert!(lookup.offer("w", row(false, Some(900))));
        assert!(lookup.offer("w", row(true, None)));
        assert!(!lookup.offer("w", row(true, Some(700))));
        assert_eq!(lookup.base.map(|base| base.position), Some(700));
        assert_eq!(lookup.passed, [900, -1]);
        let mut first = CheckpointLookup::default();
        assert!(!first.offer("w", row(true, Some(5))));
        assert!(first.passed.is_empty());
        // The reader stops at the bound, every row passed named.
        let mut damaged = CheckpointLookup::default();
        let offered = (1..=TOTALS_CHECKPOINT_ROWS_READ_MAX + 5)
            .take_while(|position| damaged.offer("w", row(false, Some(*position))))
            .count();
        assert_eq!(
            i64::try_from(offered).expect("count"),
            TOTALS_CHECKPOINT_ROWS_READ_MAX - 1
        );
        assert_eq!(
            i64::try_from(damaged.passed.len()).expect("count"),
            TOTALS_CHECKPOINT_ROWS_READ_MAX
        );
        assert!(damaged.base.is_none());
    }

    fn money(text: &str) -> Decimal {
        text.parse().expect("decimal")
    }

    #[test]
    fn a_fold_nets_each_transaction_and_marks_a_checkpoint_every_interval() {
        let at = Utc::now();
        let mut fold = TotalsFold::from(None);
        let transactions = i64::try_from(2 * TOTALS_CHECKPOINT_TRANSACTIONS + 3).expect("count");
        for position in 1..=transactions {
            // A credit of 1.00; every tenth a hold's two legs, netting zero.
            if position % 10 == 0 {
                fold.entry(position, at, money("-5.00")).expect("entry");
                fold.entry(position, at, money("5.00")).expect("entry");
            } else {
                fold.entry(position, at, money("1.00")).expect("entry");
            }
        }
        let Summed {
            totals,
            checkpoints,
            through,
        } = fold.finish().expect("finished");
        assert_eq!(through, Some(transactions));
        let credited = transactions - transactions / 10;
        assert_eq!(totals.credits, Decimal::from(credited));
        assert_eq!(totals.count, u64::try_from(credited).expect("count"));
        let interval = i64::try_from(TOTALS_CHECKPOINT_TRANSACTIONS).expect("interval");
        let marked: Vec<i64> = checkpoints.iter().map(|each| each.position).collect();
        assert_eq!(marked, vec![interval, 2 * interval]);
        assert_eq!(
            checkpoints[0].totals.credits,
            Decimal::from(interval - interval / 10)
        );
        // From a checkpoint on: its totals and the rest give the same sums.
        let mut rest = TotalsFold::from(Some(checkpoints[1].clone()));
        for position in 2 * interval + 1..=transactions {
            rest.entry(position, at, money("1.00")).expect("entry");
        }
        assert_eq!(rest.finish().expect("finished").totals, totals);
    }
}
