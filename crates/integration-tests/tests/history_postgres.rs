//! A wallet with a long history on PostgreSQL, then a fresh command-api
//! replica (as after a restart): its commands, its reads as of a version and
//! its reads of a settled hold read the snapshot and a bounded tail (or a
//! bounded page back from it), not the whole stream (`command_api::wallets::replicas`, the scenario
//! the embedded store passes in command-api's unit tests). In a database of
//! its own.

use std::sync::Arc;

use command_api::wallets::replicas;
use event_store::{EventStore, PostgresEventStore};
use integration_tests::in_migrated_database;

#[tokio::test]
async fn a_fresh_replica_reads_a_bounded_tail_of_a_long_stream() {
    in_migrated_database(|pool| async move {
        let store: Arc<dyn EventStore> =
            Arc::new(PostgresEventStore::connect(pool).await.expect("store"));
        replicas::a_fresh_replica_reads_a_bounded_tail_of_a_long_stream(store).await;
    })
    .await;
}

#[tokio::test]
async fn a_settled_hold_is_read_back_no_further_than_its_placement() {
    in_migrated_database(|pool| async move {
        let store: Arc<dyn EventStore> =
            Arc::new(PostgresEventStore::connect(pool).await.expect("store"));
        replicas::a_settled_hold_is_read_back_no_further_than_its_placement(store).await;
    })
    .await;
}
