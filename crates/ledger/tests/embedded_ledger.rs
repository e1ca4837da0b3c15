//! The embedded ledger against a real SQLite file: every conformance scenario
//! (`ledger::conformance`), then what only a file-backed ledger has.

use std::collections::BTreeSet;
use std::sync::Arc;

use event_sink::EventSink;
use event_store::{AppendRequest, EmbeddedEventStore, EventStore, StreamAppend};
use ledger::conformance::{everything, standard_log, Scenario};
use ledger::{EmbeddedLedger, Ledger, TransactionsQuery, WalletEntriesQuery};
use tempfile::TempDir;
use wallet_domain::WalletId;

fn open(directory: &TempDir) -> EmbeddedLedger {
    EmbeddedLedger::open(directory.path()).expect("ledger opens")
}

/// Runs a scenario against a fresh ledger in a temporary directory.
async fn with_embedded_ledger(scenario: Scenario) {
    let directory = TempDir::new().expect("tempdir");
    scenario(Arc::new(open(&directory))).await;
}

ledger::ledger_conformance_tests!(with_embedded_ledger);

#[tokio::test]
async fn reopening_the_file_keeps_everything() {
    let directory = TempDir::new().expect("tempdir");
    let log = standard_log();
    let before = {
        let ledger = open(&directory);
        ledger.deliver(&log.recorded).await.expect("deliver");
        ledger.transactions(everything()).await.expect("entries")
    };

    let ledger = open(&directory);
    assert_eq!(Ledger::checkpoint(&ledger).await.expect("checkpoint"), 6);
    assert_eq!(
        ledger.transactions(everything()).await.expect("entries"),
        before
    );
    let again = ledger.post(&log.recorded, Some(6)).await.expect("post");
    assert_eq!(again.posted, 0);
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 6);
}

#[tokio::test]
async fn the_relay_drains_the_event_store_into_the_ledger() {
    let directory = TempDir::new().expect("tempdir");
    let store = EmbeddedEventStore::open(directory.path()).expect("store");
    let ledger = open(&directory);
    let log = standard_log();
    for recorded in &log.recorded {
        let event = &recorded.event;
        store
            .append(AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: event.wallet_id.clone(),
                    expected_version: recorded.stream_version - 1,
                    expected_last_event_id: None,
                    events: vec![event.clone()],
                }],
                idempotent_response: None,
            })
            .await
            .expect("append");
    }

    let batch_size_max = 4;
    let batches_max = 10;
    let last = event_relay::drain(&store, &ledger, batch_size_max, batches_max)
        .await
        .expect("drain");
    assert_eq!(last, 6);
    assert_eq!(Ledger::checkpoint(&ledger).await.expect("checkpoint"), 6);
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 6);
}

/// The schema versions before transactions were keyed by position
/// (`ledger_0004.sql`): a data dir written by them.
const MIGRATIONS_BEFORE_POSITION_KEYS: &[&str] = &[
    include_str!("../../../migrations/embedded/ledger_0001.sql"),
    include_str!("../../../migrations/embedded/ledger_0002.sql"),
    include_str!("../../../migrations/embedded/ledger_0003.sql"),
];

#[tokio::test]
async fn a_ledger_file_from_before_the_position_keys_keeps_everything_when_opened() {
    // The standard log as the current schema posts it: what must be read back.
    let current = TempDir::new().expect("tempdir");
    let log = standard_log();
    let expected = {
        let ledger = open(&current);
        ledger.deliver(&log.recorded).await.expect("deliver");
        ledger.transactions(everything()).await.expect("entries")
    };
    // The same rows in a file at schema version 3, with its processed-event marks.
    let previous = TempDir::new().expect("tempdir");
    {
        let mut connection =
            rusqlite::Connection::open(previous.path().join("ledger.db")).expect("open");
        embedded_sqlite::migrate(&mut connection, MIGRATIONS_BEFORE_POSITION_KEYS)
            .expect("old schema");
        connection
            .execute(
                "ATTACH DATABASE ?1 AS current",
                [current
                    .path()
                    .join("ledger.db")
                    .to_str()
                    .expect("utf-8 path")],
            )
            .expect("attach");
        connection
            .execute_batch(
                "INSERT INTO ledger_transactions (transaction_id, position, reference_id, \
                 transaction_type, wallet_id, occurred_at_us, description) \
                 SELECT transaction_id, position, reference_id, transaction_type, wallet_id, \
                 occurred_at_us, description FROM current.ledger_transactions;
                 INSERT INTO ledger_entries (transaction_id, line, account, amount, position) \
                 SELECT t.transaction_id, e.line, e.account, e.amount, e.position \
                 FROM current.ledger_entries e \
                 JOIN current.ledger_transactions t ON t.position = e.position;
                 INSERT INTO ledger_processed_events (event_id, position) \
                 SELECT transaction_id, position FROM current.ledger_transactions;
                 UPDATE ledger_checkpoint SET position = \
                 (SELECT position FROM current.ledger_checkpoint WHERE id = 1);",
            )
            .expect("old rows");
    }
    assert!(!expected.is_empty());

    let ledger = open(&previous);
    assert_eq!(Ledger::checkpoint(&ledger).await.expect("checkpoint"), 6);
    assert_eq!(
        ledger.transactions(everything()).await.expect("entries"),
        expected
    );
    // The lookups by wallet and by account read words the migrations made
    // (`ledger_0005.sql`): they find what the current schema's do.
    let reference = open(&current);
    let wallets: BTreeSet<WalletId> = expected
        .iter()
        .map(|entry| entry.wallet_id.clone())
        .collect();
    assert!(wallets.len() >= 2, "{wallets:?}");
    for wallet_id in wallets {
        let entries = WalletEntriesQuery {
            wallet_id: wallet_id.clone(),
            filter: everything().filter,
        };
        let found = ledger
            .wallet_entries(entries.clone())
            .await
            .expect("wallet entries");
        assert!(!found.is_empty(), "{wallet_id}");
        assert_eq!(
            found,
            reference.wallet_entries(entries).await.expect("reference")
        );
        let transactions = TransactionsQuery {
            wallet_id: Some(wallet_id.clone()),
            ..everything()
        };
        assert_eq!(
            ledger
                .transactions(transactions.clone())
                .await
                .expect("wallet transactions"),
            reference
                .transactions(transactions)
                .await
                .expect("reference")
        );
        assert_eq!(
            ledger
                .wallet_summary(&wallet_id, None)
                .await
                .expect("summary"),
            reference
                .wallet_summary(&wallet_id, None)
                .await
                .expect("reference")
        );
    }
    // Lookups by reference read the index `ledger_0006.sql` made partial,
    // and the transaction id's for an operation's own reference.
    let references: BTreeSet<String> = expected
        .iter()
        .map(|entry| entry.reference_id.to_string())
        .collect();
    let transactions: BTreeSet<String> = expected
        .iter()
        .map(|entry| entry.transaction_id.to_string())
        .collect();
    assert!(
        references.len() < transactions.len(),
        "a transfer's halves share one"
    );
    for reference_id in references {
        let found = ledger
            .reference_entries(&reference_id)
            .await
            .expect("reference entries");
        assert!(!found.is_empty(), "{reference_id}");
        assert_eq!(
            found,
            reference
                .reference_entries(&reference_id)
                .await
                .expect("reference")
        );
    }
    let again = ledger.post(&log.recorded, Some(6)).await.expect("post");
    assert_eq!(again.posted, 0);
    assert_eq!(again.skipped, 6);
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 6);
}

/// h133 F6: an entry's amount in another spelling than the ledger writes
/// (`2_00`, `1e2`, `+100.00`, `100.000`) was read as a value: a wallet's
/// summary showed 200.00 for `2_00`, and only `/ledger/verify` found it.
/// Such text is damage: the file is marked, and every read answers so.
#[tokio::test]
async fn an_amount_in_another_spelling_than_the_ledger_writes_is_damage() {
    for spelling in ["2_00", "1e2", "+100.00", "100.000", "100"] {
        let directory = TempDir::new().expect("tempdir");
        let ledger = open(&directory);
        ledger
            .deliver(&standard_log().recorded)
            .await
            .expect("deliver");
        assert!(!ledger
            .transactions(everything())
            .await
            .expect("entries")
            .is_empty());
        rusqlite::Connection::open(directory.path().join("ledger.db"))
            .expect("opened")
            .execute("UPDATE ledger_entries SET amount = ?1", [spelling])
            .expect("edited");
        let read = ledger
            .transactions(everything())
            .await
            .expect_err("not read");
        assert!(
            read.to_string().contains("ledger.db is damaged")
                && read.to_string().contains(spelling),
            "{spelling}: {read}"
        );
    }
}

#[tokio::test]
async fn a_constraint_the_file_holds_refuses_the_events_for_good_not_for_a_while() {
    // h142 F3: a UNIQUE index an operator added refused a batch, which was
    // retried without end, never parked, with `/health` ok.
    let directory = TempDir::new().expect("tempdir");
    let log = standard_log();
    drop(open(&directory));
    let file = rusqlite::Connection::open(directory.path().join(ledger::EMBEDDED_FILE))
        .expect("the ledger's file");
    file.execute_batch("CREATE UNIQUE INDEX one_transaction_ever ON ledger_transactions((1));")
        .expect("an index no build makes");
    drop(file);

    let ledger = open(&directory);
    let refused = ledger
        .deliver(&log.recorded)
        .await
        .expect_err("the second transaction breaks the index");
    assert!(!refused.is_transient(), "{refused}");
    assert!(refused.to_string().contains("UNIQUE"), "{refused}");
}

/// A summary that sums past its wallet's newest checkpoint keeps one every
/// `TOTALS_CHECKPOINT_TRANSACTIONS` transactions, and the next starts there
/// (it sums only the transactions after it) when the row is one the ledger
/// wrote.
#[tokio::test]
async fn a_summary_keeps_checkpoints_of_the_totals_and_the_next_starts_there() {
    let directory = TempDir::new().expect("tempdir");
    let ledger = open(&directory);
    let interval = usize::try_from(ledger::TOTALS_CHECKPOINT_TRANSACTIONS).expect("interval");
    let mut log = ledger::conformance::EventLog::default();
    log.create("w-long", "0.00");
    for _ in 0..2 * interval + 5 {
        log.credit("w-long", "1.00");
    }
    for chunk in log.recorded.chunks(ledger::conformance::LARGE_BATCH_EVENTS) {
        ledger.post(chunk, None).await.expect("post");
    }
    let long = WalletId::parse("w-long").expect("id");
    let summed = ledger.wallet_summary(&long, None).await.expect("summary");
    assert_eq!(
        summed.entry_count,
        u64::try_from(2 * interval + 5).expect("count")
    );

    let file =
        rusqlite::Connection::open(directory.path().join(ledger::EMBEDDED_FILE)).expect("the file");
    let rows_of_the_wallet = |file: &rusqlite::Connection| -> Vec<(i64, String)> {
        file.prepare(
            "SELECT entry_count, credits FROM ledger_wallet_totals \
             WHERE wallet_id = 'w-long' ORDER BY position",
        )
        .expect("statement")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read")
    };
    let kept = rows_of_the_wallet(&file);
    let interval_count = i64::try_from(interval).expect("interval");
    // The creation of 0.00 moves no money: its transaction has no entries.
    assert_eq!(
        kept,
        vec![
            (interval_count, format!("{interval_count}.00")),
            (2 * interval_count, format!("{}.00", 2 * interval_count)),
        ]
    );

    // A row that does not read as the ledger writes it, names a transaction
    // the ledger does not hold as its wallet's at its time, or whose values
    // are not those its digest was taken of, is passed for the one before
    // it: never taken for the ledger's damage (tester h165 F2, F3), nor
    // summed on (tester h167 F2); and deleted, the summary writing the one
    // it summed again in its place (tester h166 N2).
    for edit in [
        "UPDATE ledger_wallet_totals SET credits = '1000000.00' WHERE entry_count = ?1",
        "UPDATE ledger_wallet_totals SET digest = NULL WHERE entry_count = ?1",
        "UPDATE ledger_wallet_totals SET credits = 'abc' WHERE entry_count = ?1",
        "UPDATE ledger_wallet_totals SET debits = '-5.00' WHERE entry_count = ?1",
        "UPDATE ledger_wallet_totals SET occurred_at_us = occurred_at_us - 1 WHERE entry_count = ?1",
        "UPDATE ledger_wallet_totals SET position = 99999999 WHERE entry_count = ?1",
    ] {
        file.execute(
            "UPDATE ledger_wallet_totals SET credits = ?2 WHERE entry_count = ?1",
            rusqlite::params![2 * interval_count, format!("{}.00", 2 * interval_count)],
        )
        .expect("restored");
        file.execute(edit, [2 * interval_count]).expect(edit);
        let passed = ledger.wallet_summary(&long, None).await.expect(edit);
        assert_eq!(passed, summed, "{edit}");
        assert_eq!(rows_of_the_wallet(&file), kept, "{edit}");
    }

    // It starts there: with every entry up to the newest checkpoint gone
    // from the file, the summary is still the whole history's.
    file.execute(
        "DELETE FROM ledger_entries WHERE position <= \
         (SELECT max(position) FROM ledger_wallet_totals WHERE wallet_id = 'w-long')",
        [],
    )
    .expect("entries deleted");
    let next = ledger.wallet_summary(&long, None).await.expect("summary");
    assert_eq!(next, summed);
}

/// Rows of a wallet's totals that name no transaction of its (past the
/// head, or another wallet's) are deleted by the first summary that passes
/// one: later summaries do not read past them again (tester h166 N2: 50,000
/// such rows cost every summary 9–14 ms).
#[tokio::test]
async fn a_summary_deletes_the_checkpoint_rows_the_ledger_does_not_hold() {
    const FORGED: i64 = 2_000;
    const ABOVE: u64 = 20;
    let directory = TempDir::new().expect("tempdir");
    let ledger = open(&directory);
    let summed = ledger::conformance::a_checkpointed_wallet_beside_another(&ledger, ABOVE).await;
    let long = WalletId::parse("w-long").expect("id");

    let file =
        rusqlite::Connection::open(directory.path().join(ledger::EMBEDDED_FILE)).expect("the file");
    let count = |file: &rusqlite::Connection| -> i64 {
        file.query_row(
            "SELECT count(*) FROM ledger_wallet_totals WHERE wallet_id = 'w-long'",
            [],
            |row| row.get(0),
        )
        .expect("count")
    };
    assert_eq!(count(&file), 1);
    // Past the head, at w-other's transaction, and damaged rows at every
    // one of w-long's own transactions but the checkpoint's: more above it
    // than a lookup once read (tester h167 F3).
    file.execute(
        "INSERT INTO ledger_wallet_totals \
         (wallet_id, position, occurred_at_us, credits, debits, entry_count) \
         WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < ?1) \
         SELECT 'w-long', 1000000 + value, 0, '1.00', '0.00', 1 FROM n",
        [FORGED],
    )
    .expect("forged past the head");
    file.execute(
        "INSERT INTO ledger_wallet_totals \
         (wallet_id, position, occurred_at_us, credits, debits, entry_count) \
         SELECT 'w-long', position, occurred_at_us, '1.00', '0.00', 1 \
         FROM ledger_transactions WHERE wallet_id = 'w-other'",
        [],
    )
    .expect("forged at another wallet's transaction");
    let damaged = file
        .execute(
            "INSERT OR IGNORE INTO ledger_wallet_totals \
             (wallet_id, position, occurred_at_us, credits, debits, entry_count) \
             SELECT 'w-long', position, occurred_at_us, 'junk', '0.00', 1 \
             FROM ledger_transactions WHERE wallet_id = 'w-long'",
            [],
        )
        .expect("damaged at the wallet's own transactions");
    let damaged = i64::try_from(damaged).expect("count");
    assert_eq!(count(&file), FORGED + 2 + damaged);

    assert_eq!(
        ledger.wallet_summary(&long, None).await.expect("summary"),
        summed
    );
    let below = damaged - i64::try_from(ABOVE).expect("count");
    assert_eq!(
        count(&file),
        1 + below,
        "the forged rows and the damaged ones above the checkpoint are deleted"
    );
    assert_eq!(
        ledger.wallet_summary(&long, None).await.expect("summary"),
        summed
    );
    // As of a moment before the checkpoint: every damaged row below it is
    // passed and deleted by one summary, which sums from the first
    // transaction, as a ledger without checkpoints does.
    let before: i64 = file
        .query_row(
            "SELECT occurred_at_us - 1 FROM ledger_wallet_totals c WHERE wallet_id = 'w-long' \
             AND credits <> 'junk'",
            [],
            |row| row.get(0),
        )
        .expect("the checkpoint's time");
    let at = chrono::DateTime::from_timestamp_micros(before).expect("a time");
    let as_of = ledger
        .wallet_summary(&long, Some(at))
        .await
        .expect("summary");
    assert_eq!(count(&file), 1, "the damaged rows below are deleted");
    file.execute("DELETE FROM ledger_wallet_totals", [])
        .expect("every checkpoint deleted");
    assert_eq!(
        ledger
            .wallet_summary(&long, Some(at))
            .await
            .expect("summary"),
        as_of,
        "the summary from the entries alone"
    );
}
