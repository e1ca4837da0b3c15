//! Two command-api replicas (two `WalletService`s, each with its own cache,
//! lock and PostgreSQL store instance) on one PostgreSQL database: neither
//! decides, nor refuses, on a state the store does not hold
//! (`command_api::wallets::replicas`, the scenarios the embedded store passes
//! in command-api's unit tests). Each test runs in a database of its own.

use std::sync::Arc;

use command_api::wallets::replicas;
use event_store::{EventStore, PostgresEventStore};
use integration_tests::{in_migrated_database, require_env};
use sqlx::PgPool;
use wallet_domain::WalletId;
use wallet_lock::{RedisLockConfig, RedisWalletLock, WalletLock};

/// Connections of each replica's pool.
const REPLICA_POOL_CONNECTIONS_MAX: u32 = 2;

/// A second process's store on the same database: its own pool and writer.
async fn another_process(pool: &PgPool) -> Arc<dyn EventStore> {
    let options = pool.connect_options().as_ref().clone();
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(REPLICA_POOL_CONNECTIONS_MAX)
        .connect_with(options)
        .await
        .expect("a second pool");
    Arc::new(PostgresEventStore::connect(own).await.expect("store B"))
}

async fn stores(pool: &PgPool) -> (Arc<dyn EventStore>, Arc<dyn EventStore>) {
    let a: Arc<dyn EventStore> = Arc::new(
        PostgresEventStore::connect(pool.clone())
            .await
            .expect("store A"),
    );
    (a, another_process(pool).await)
}

/// Deletes one event, as an immediate shutdown with `synchronous_commit=off`
/// (or a failover to an asynchronous replica) loses an acknowledged commit.
fn losing(pool: PgPool) -> impl FnOnce(WalletId, u64) -> futures::future::BoxFuture<'static, ()> {
    move |wallet_id, version| {
        Box::pin(async move {
            let deleted = sqlx::query("DELETE FROM events WHERE stream_id = $1 AND version = $2")
                .bind(wallet_id.as_str().to_owned())
                .bind(i64::try_from(version).expect("small version"))
                .execute(&pool)
                .await
                .expect("delete the event");
            assert_eq!(deleted.rows_affected(), 1);
        })
    }
}

#[tokio::test]
async fn a_replica_catches_up_on_what_the_lock_says_another_wrote() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    in_migrated_database(|pool| async move {
        let (a, b) = stores(&pool).await;
        let lock = |url: &str| -> Arc<dyn WalletLock> {
            Arc::new(RedisWalletLock::connect(RedisLockConfig::new(url)).expect("lock"))
        };
        replicas::a_replica_catches_up_on_what_the_lock_says_another_wrote(
            a,
            b,
            lock(&url),
            lock(&url),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_replica_does_not_refuse_on_what_another_changed() {
    in_migrated_database(|pool| async move {
        let (a, b) = stores(&pool).await;
        replicas::a_replica_does_not_refuse_on_what_another_changed(a, b).await;
    })
    .await;
}

#[tokio::test]
async fn a_replicas_recent_events_are_the_stores() {
    in_migrated_database(|pool| async move {
        let (a, b) = stores(&pool).await;
        replicas::a_replicas_recent_events_are_the_stores(a, b).await;
    })
    .await;
}

#[tokio::test]
async fn a_replica_never_decides_on_an_event_the_store_lost() {
    in_migrated_database(|pool| async move {
        let (a, b) = stores(&pool).await;
        replicas::a_replica_never_decides_on_an_event_the_store_lost(a, b, losing(pool)).await;
    })
    .await;
}

#[tokio::test]
async fn an_append_on_a_lost_event_is_refused_and_decided_again() {
    in_migrated_database(|pool| async move {
        let (a, b) = stores(&pool).await;
        replicas::an_append_on_a_lost_event_is_refused_and_decided_again(a, b, losing(pool)).await;
    })
    .await;
}
