//! The embedded read model against a real SQLite file: every conformance
//! scenario (`read_model::conformance`).

use std::sync::Arc;

use read_model::conformance::Scenario;
use read_model::EmbeddedReadModel;
use tempfile::TempDir;

/// Runs a scenario against a fresh read model in a temporary directory.
async fn with_embedded_read_model(scenario: Scenario) {
    let directory = TempDir::new().expect("tempdir");
    let read_model = EmbeddedReadModel::open(directory.path()).expect("read model opens");
    scenario(Arc::new(read_model)).await;
}

read_model::read_model_conformance_tests!(with_embedded_read_model);

/// The migrations of a file written before the balances moved to a table
/// of their own (`read_model_0005.sql`).
const MIGRATIONS_BEFORE_BALANCE_ROWS: &[&str] = &[
    include_str!("../../../migrations/embedded/read_model_0001.sql"),
    include_str!("../../../migrations/embedded/read_model_0002.sql"),
    include_str!("../../../migrations/embedded/read_model_0003.sql"),
    include_str!("../../../migrations/embedded/read_model_0004.sql"),
];

/// A file of the schema before `read_model_0005.sql` lists, once opened, the
/// same wallets with the same values, and keeps its checkpoint.
#[tokio::test]
async fn a_read_model_file_from_before_the_balance_rows_lists_the_same_wallets() {
    use chrono::{DateTime, Utc};
    use read_model::{ReadModel, WalletListQuery, WalletView};
    use rust_decimal::Decimal;
    use wallet_domain::{Balance, OwnerId, WalletId, WalletStatus};

    let directory = TempDir::new().expect("tempdir");
    {
        let mut connection =
            rusqlite::Connection::open(directory.path().join("read_model.db")).expect("open");
        embedded_sqlite::migrate(&mut connection, MIGRATIONS_BEFORE_BALANCE_ROWS)
            .expect("old schema");
        connection
            .execute_batch(
                "INSERT INTO wallets (wallet_id, owner_id, balance, created_at, updated_at, \
                 version, overdraft_limit, status, held_balance) VALUES \
                 ('a-1', 'alice', '10.50', '2026-01-02T03:04:05.006Z', \
                  '2026-02-03T04:05:06.007Z', 7, '0.00', 'ACTIVE', '2.25'), \
                 ('b-1', 'bob', '-5.00', '2026-01-02T03:04:05.000Z', \
                  '2026-01-02T03:04:05.000Z', 3, '20.00', 'FROZEN', '0.00'), \
                 ('a-2', 'alice', '0.00', '2026-03-01T00:00:00.999Z', \
                  '2026-03-02T00:00:00.001Z', 2, '0.00', 'CLOSED', '0.00'); \
                 INSERT INTO projection_checkpoint (id, position) VALUES (1, 41);",
            )
            .expect("old rows");
    }
    let read_model = EmbeddedReadModel::open(directory.path()).expect("migrated");

    let time = |text: &str| text.parse::<DateTime<Utc>>().expect("time");
    let balance =
        |text: &str| Balance::try_from(text.parse::<Decimal>().expect("decimal")).expect("balance");
    let view =
        |id: &str, owner: &str, money: [&str; 3], status, at: [&str; 2], version| WalletView {
            id: WalletId::parse(id).expect("id"),
            owner_id: OwnerId::parse(owner).expect("owner"),
            balance: balance(money[0]),
            held_balance: balance(money[1]),
            overdraft_limit: balance(money[2]),
            status,
            created_at: time(at[0]),
            updated_at: time(at[1]),
            version,
        };
    let alice = [
        view(
            "a-1",
            "alice",
            ["10.50", "2.25", "0.00"],
            WalletStatus::Active,
            ["2026-01-02T03:04:05.006Z", "2026-02-03T04:05:06.007Z"],
            7,
        ),
        view(
            "a-2",
            "alice",
            ["0.00", "0.00", "0.00"],
            WalletStatus::Closed,
            ["2026-03-01T00:00:00.999Z", "2026-03-02T00:00:00.001Z"],
            2,
        ),
    ];
    let bob = view(
        "b-1",
        "bob",
        ["-5.00", "0.00", "20.00"],
        WalletStatus::Frozen,
        ["2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.000Z"],
        3,
    );
    let list = |owner: Option<&str>| WalletListQuery {
        owner_id: owner.map(|owner| OwnerId::parse(owner).expect("owner")),
        limit: 10,
        ..WalletListQuery::default()
    };
    assert_eq!(
        read_model.list_wallets(list(None)).await.expect("all"),
        vec![alice[0].clone(), alice[1].clone(), bob.clone()]
    );
    assert_eq!(
        read_model
            .list_wallets(list(Some("alice")))
            .await
            .expect("alice's"),
        alice.to_vec()
    );
    assert_eq!(read_model.checkpoint().await.expect("checkpoint"), 41);
}

/// A balances row holding what no build writes (h131 F1, F2: a held balance
/// that is not a number or below zero, a version below zero or of another
/// type) marks the file damaged at the next batch on its wallet: nothing of
/// the batch is kept, the row is not taken as zero and written over, no
/// other wallet's batches are stopped by an error that would retry forever,
/// and the list answers `Damaged` (503 naming the file) rather than 500.
#[tokio::test]
async fn a_balances_row_no_build_writes_marks_the_file_damaged_and_keeps_nothing() {
    use read_model::conformance::Streams;
    use read_model::{ReadModel, ReadModelError};

    for (edit, what) in [
        ("held_balance = 'two fifty'", "held balance"),
        ("held_balance = '-5.00'", "held balance"),
        ("held_balance = x'00'", "held balance"),
        ("version = -1", "version"),
        ("version = 'x'", "version"),
    ] {
        let directory = TempDir::new().expect("tempdir");
        let file = directory.path().join("read_model.db");
        let read_model = EmbeddedReadModel::open(directory.path()).expect("read model opens");
        let mut streams = Streams::default();
        let created = [
            streams.create("w-1", "alice", 1_000),
            streams.hold_placed("w-1", "h-1", 250),
        ];
        read_model.apply(&created, Some(2)).await.expect("created");
        let row = |connection: &rusqlite::Connection| -> (String, String) {
            connection
                .query_row(
                    "SELECT balance, quote(held_balance) || ' ' || quote(version) \
                     FROM wallet_balances WHERE wallet_id = 'w-1'",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .expect("row")
        };
        let editor = rusqlite::Connection::open(&file).expect("open");
        editor
            .execute(
                &format!("UPDATE wallet_balances SET {edit} WHERE wallet_id = 'w-1'"),
                [],
            )
            .expect("row edited");
        let edited = row(&editor);

        let credit = [streams.credit("w-1", 500)];
        let refused = read_model.apply(&credit, Some(3)).await;
        assert!(
            matches!(&refused, Err(ReadModelError::Damaged(reason))
                if reason.contains(what) && reason.contains("read_model.db")),
            "{edit}: {refused:?}"
        );
        assert_eq!(row(&editor), edited, "{edit}: the row as it was");
        let checkpoint: i64 = editor
            .query_row("SELECT position FROM projection_checkpoint", [], |row| {
                row.get(0)
            })
            .expect("checkpoint");
        assert_eq!(checkpoint, 2, "{edit}");
        assert_list_damaged(&read_model, edit).await;
    }
}

/// h133 F4: a wallet's balances row deleted made the next event of that
/// wallet a gap, retried without end: the projection stopped for every
/// wallet, the list answered stale, and `/health` said ok. From the log (the
/// in-process relay, which brings each wallet's events in order from the
/// checkpoint on) a gap is a row the file lost: it marks the file damaged,
/// and nothing of the batch is kept.
#[tokio::test]
async fn a_row_missing_under_a_batch_from_the_log_marks_the_file_damaged() {
    use event_sink::EventSink;
    use read_model::conformance::Streams;

    // h134: its `wallets` row deleted instead, the list left it out for good.
    for table in ["wallet_balances", "wallets"] {
        let directory = TempDir::new().expect("tempdir");
        let read_model = EmbeddedReadModel::open(directory.path()).expect("read model opens");
        let mut streams = Streams::default();
        let created = [streams.create("w-1", "alice", 1_000)];
        read_model.deliver(&created).await.expect("created");
        rusqlite::Connection::open(directory.path().join("read_model.db"))
            .expect("open")
            .execute(&format!("DELETE FROM {table} WHERE wallet_id = 'w-1'"), [])
            .expect("row deleted");

        let credit = [streams.credit("w-1", 500)];
        let refused = read_model.deliver(&credit).await.expect_err("refused");
        assert!(
            refused.to_string().contains("read_model.db is damaged"),
            "{table}: {refused}"
        );
        assert_eq!(EventSink::checkpoint(&read_model).await.ok(), None);
        assert_list_damaged(&read_model, table).await;
    }
}

/// h133 F8: a checkpoint below zero was taken as 0; like the ledger's and
/// the search index's, it is damage.
#[tokio::test]
async fn a_checkpoint_below_zero_is_damage() {
    use read_model::{ReadModel, ReadModelError};

    let directory = TempDir::new().expect("tempdir");
    let read_model = EmbeddedReadModel::open(directory.path()).expect("read model opens");
    assert_eq!(ReadModel::checkpoint(&read_model).await.expect("read"), 0);
    rusqlite::Connection::open(directory.path().join("read_model.db"))
        .expect("open")
        .execute(
            "INSERT OR REPLACE INTO projection_checkpoint (id, position) VALUES (1, -3)",
            [],
        )
        .expect("edited");
    let read = ReadModel::checkpoint(&read_model).await;
    assert!(
        matches!(&read, Err(ReadModelError::Damaged(reason)) if reason.contains("checkpoint position -3")),
        "{read:?}"
    );
}

/// The list answers `Damaged`: the file was marked (`case` names the edit).
async fn assert_list_damaged(read_model: &EmbeddedReadModel, case: &str) {
    use read_model::{ReadModel, ReadModelError, WalletListQuery};

    let listed = read_model
        .list_wallets(WalletListQuery {
            limit: 10,
            ..WalletListQuery::default()
        })
        .await;
    assert!(
        matches!(&listed, Err(ReadModelError::Damaged(_))),
        "{case}: {listed:?}"
    );
}
