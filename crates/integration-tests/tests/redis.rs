//! Redis through deadpool-redis: SET/GET, and a lock with an expiry released by its owner only.

use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::{Config, Connection, Pool, Runtime};
use integration_tests::{require_env, unique_name, REQUEST_TIMEOUT};

/// Lifetime of a lock in the tests that do not wait for it to expire.
const LOCK_TTL_MS: u64 = 10_000;
/// Lifetime of the lock that the expiry test waits out.
const SHORT_LOCK_TTL_MS: u64 = 200;
/// How long the expiry test waits in all for the short lock to vanish.
const EXPIRY_WAIT_MAX: Duration = Duration::from_secs(5);
const EXPIRY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Deletes the key only while it still holds the caller's token: a holder whose lock
/// expired and was taken by another cannot release the other's lock.
const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
else
    return 0
end
"#;

fn pool(url: &str) -> Pool {
    let mut config = Config::from_url(url);
    let pool_config = config.pool.get_or_insert_with(Default::default);
    pool_config.max_size = 4;
    pool_config.timeouts.wait = Some(REQUEST_TIMEOUT);
    pool_config.timeouts.create = Some(REQUEST_TIMEOUT);
    pool_config.timeouts.recycle = Some(REQUEST_TIMEOUT);
    config
        .create_pool(Some(Runtime::Tokio1))
        .expect("a pool from REDIS_URL")
}

async fn connection(pool: &Pool) -> Connection {
    pool.get()
        .await
        .expect("a connection to the Redis of REDIS_URL")
}

/// SET key token NX PX ttl: true when this caller now holds the lock.
async fn try_lock(connection: &mut Connection, key: &str, token: &str, ttl_ms: u64) -> bool {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(connection)
        .await
        .expect("SET NX PX");
    reply.as_deref() == Some("OK")
}

/// True when the lock was held by this token and is now released.
async fn release(connection: &mut Connection, key: &str, token: &str) -> bool {
    // EVAL script 1 KEY TOKEN: one round trip, atomic on the server.
    let deleted: i64 = redis::cmd("EVAL")
        .arg(RELEASE_SCRIPT)
        .arg(1)
        .arg(key)
        .arg(token)
        .query_async(connection)
        .await
        .expect("run the release script");
    deleted == 1
}

#[tokio::test]
async fn set_then_get_returns_the_value() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let pool = pool(&url);
    let mut connection = connection(&pool).await;
    let key = unique_name("wallex_it_value");

    let () = redis::cmd("SET")
        .arg(&key)
        .arg("balance=42")
        .arg("PX")
        .arg(LOCK_TTL_MS)
        .query_async(&mut connection)
        .await
        .expect("SET");
    let value: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("GET");
    assert_eq!(value.as_deref(), Some("balance=42"));

    let missing: Option<String> = redis::cmd("GET")
        .arg(unique_name("wallex_it_missing"))
        .query_async(&mut connection)
        .await
        .expect("GET of a missing key");
    assert_eq!(missing, None);
}

#[tokio::test]
async fn lock_is_exclusive_and_released_only_by_its_owner() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let pool = pool(&url);
    let mut connection = connection(&pool).await;
    let key = unique_name("wallex_it_lock");
    let owner = unique_name("owner");
    let other = unique_name("other");

    assert!(try_lock(&mut connection, &key, &owner, LOCK_TTL_MS).await);
    assert!(
        !try_lock(&mut connection, &key, &other, LOCK_TTL_MS).await,
        "a held lock is not granted twice"
    );
    assert!(
        !release(&mut connection, &key, &other).await,
        "a stranger's token does not release the lock"
    );
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("PTTL");
    assert!(
        ttl_ms > 0 && ttl_ms <= i64::try_from(LOCK_TTL_MS).expect("small"),
        "the lock expires: {ttl_ms}"
    );
    assert!(release(&mut connection, &key, &owner).await);
    assert!(
        !release(&mut connection, &key, &owner).await,
        "a released lock is not released twice"
    );
    assert!(try_lock(&mut connection, &key, &other, LOCK_TTL_MS).await);
    assert!(release(&mut connection, &key, &other).await);
}

#[tokio::test]
async fn an_expired_lock_can_be_taken_by_another() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let pool = pool(&url);
    let mut connection = connection(&pool).await;
    let key = unique_name("wallex_it_lock");
    let first = unique_name("first");
    let second = unique_name("second");

    assert!(try_lock(&mut connection, &key, &first, SHORT_LOCK_TTL_MS).await);
    let deadline = tokio::time::Instant::now() + EXPIRY_WAIT_MAX;
    let mut taken = false;
    while !taken && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(EXPIRY_POLL_INTERVAL).await;
        taken = try_lock(&mut connection, &key, &second, LOCK_TTL_MS).await;
    }
    assert!(taken, "the lock expired within {EXPIRY_WAIT_MAX:?}");
    assert!(
        !release(&mut connection, &key, &first).await,
        "the first holder cannot release the lock it lost"
    );
    assert!(release(&mut connection, &key, &second).await);
}
