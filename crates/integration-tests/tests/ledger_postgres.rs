//! The PostgreSQL ledger against a real server: every conformance scenario
//! (`ledger::conformance`, the same the embedded ledger passes), each in a
//! database of its own that is dropped afterwards.

use std::sync::Arc;

use integration_tests::in_migrated_database;
use ledger::conformance::{a_checkpointed_wallet_beside_another, Scenario};
use ledger::{Ledger, PostgresLedger};
use wallet_domain::WalletId;

/// Runs a scenario against a fresh ledger in a new database, then drops it,
/// also when the scenario fails.
async fn with_postgres_ledger(scenario: Scenario) {
    in_migrated_database(|pool| scenario(Arc::new(PostgresLedger::new(pool)))).await;
}

ledger::ledger_conformance_tests!(with_postgres_ledger);

/// Rows of a wallet's totals that name no transaction of its (past the
/// head, or another wallet's) are deleted by the first summary that passes
/// one, as on the embedded ledger (tester h166 N2: such rows were read past
/// at every summary, for good).
#[tokio::test]
async fn a_summary_deletes_the_checkpoint_rows_the_ledger_does_not_hold() {
    in_migrated_database(|pool| async move {
        const FORGED: i64 = 2_000;
        let ledger = PostgresLedger::new(pool.clone());
        const ABOVE: i64 = 20;
        let summed = a_checkpointed_wallet_beside_another(&ledger, ABOVE.unsigned_abs()).await;
        let long = WalletId::parse("w-long").expect("id");
        let count = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM ledger_wallet_totals WHERE wallet_id = 'w-long'",
            )
            .fetch_one(&pool)
            .await
            .expect("count")
        };
        assert_eq!(count().await, 1);
        // Believable totals, edited without the row's digest: passed, and
        // the row summed again (tester h167 F2).
        sqlx::query("UPDATE ledger_wallet_totals SET credits = 12345.00, entry_count = 5")
            .execute(&pool)
            .await
            .expect("edited");
        let edited = ledger.wallet_summary(&long, None).await.expect("summary");
        assert_eq!(edited, summed);
        let credits: String = sqlx::query_scalar(
            "SELECT credits::text FROM ledger_wallet_totals WHERE wallet_id = 'w-long'",
        )
        .fetch_one(&pool)
        .await
        .expect("the row written again");
        assert_ne!(credits, "12345.00");
        sqlx::query(
            "INSERT INTO ledger_wallet_totals \
             (wallet_id, position, occurred_at, credits, debits, entry_count) \
             SELECT 'w-long', 1000000 + n, now() - interval '1 day', 1.00, 0.00, 1 \
             FROM generate_series(1, $1) AS n",
        )
        .bind(FORGED)
        .execute(&pool)
        .await
        .expect("forged past the head");
        sqlx::query(
            "INSERT INTO ledger_wallet_totals \
             (wallet_id, position, occurred_at, credits, debits, entry_count) \
             SELECT 'w-long', position, occurred_at, 1.00, 0.00, 1 \
             FROM ledger_transactions WHERE wallet_id = 'w-other'",
        )
        .execute(&pool)
        .await
        .expect("forged at another wallet's transaction");
        // Damaged (a negative total) at every one of w-long's own
        // transactions but the checkpoint's: more above it than the
        // lookup's first read (tester h167 F3).
        let damaged = sqlx::query(
            "INSERT INTO ledger_wallet_totals \
             (wallet_id, position, occurred_at, credits, debits, entry_count) \
             SELECT 'w-long', position, occurred_at, 1.00, -1.00, 1 \
             FROM ledger_transactions WHERE wallet_id = 'w-long' ON CONFLICT DO NOTHING",
        )
        .execute(&pool)
        .await
        .expect("damaged at the wallet's own transactions")
        .rows_affected();
        let damaged = i64::try_from(damaged).expect("count");
        assert_eq!(count().await, FORGED + 2 + damaged);

        let again = ledger.wallet_summary(&long, None).await.expect("summary");
        assert_eq!(again, summed);
        assert_eq!(
            count().await,
            1 + damaged - ABOVE,
            "the forged rows and the damaged ones above the checkpoint are deleted"
        );
    })
    .await;
}
