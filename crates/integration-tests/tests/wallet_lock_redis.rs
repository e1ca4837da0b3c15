//! The Redis wallet lock against a real Redis: replicas exclude each other,
//! locks expire, and a Redis that is down is reported as unavailable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use integration_tests::proxy::PausableProxy;
use integration_tests::require_env;
use wallet_domain::WalletId;
use wallet_lock::{
    LockError, RedisLockConfig, RedisWalletLock, WalletLock, LOCK_KEY_PREFIX_DEFAULT,
    WRITTEN_SUFFIX, WRITTEN_TTL_MS,
};

fn wallet(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("wallet id")
}

fn unique(prefix: &str) -> WalletId {
    wallet(&format!("{prefix}-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test]
async fn two_replicas_never_hold_one_wallet_at_once() {
    const TASKS_PER_REPLICA: usize = 20;
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let replicas = [
        Arc::new(RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool")),
        Arc::new(RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool")),
    ];
    let hot = unique("hot");
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for replica in &replicas {
        for _ in 0..TASKS_PER_REPLICA {
            let (lock, hot, inside, overlaps) = (
                replica.clone(),
                hot.clone(),
                inside.clone(),
                overlaps.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let lease = lock.acquire(&[&hot]).await.expect("lock taken");
                if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(lease);
            }));
        }
    }
    for task in tasks {
        task.await.expect("join");
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}

/// The seed's single-wallet load test sends 50 requests at once to one
/// wallet; each waits its turn, in order, instead of racing the others for
/// every release until some run out of time.
#[tokio::test]
async fn a_replicas_waiters_on_one_wallet_are_served_in_the_order_they_came() {
    const WAITERS: usize = 50;
    const HOLD_MS: u64 = 20;
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let lock = Arc::new(RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool"));
    let hot = unique("queued");
    let served = Arc::new(std::sync::Mutex::new(Vec::with_capacity(WAITERS)));
    let mut tasks = Vec::with_capacity(WAITERS);
    for arrival in 0..WAITERS {
        let (lock, hot, served) = (lock.clone(), hot.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let lease = lock.acquire(&[&hot]).await.expect("served within the wait");
            served.lock().expect("order").push(arrival);
            tokio::time::sleep(Duration::from_millis(HOLD_MS)).await;
            drop(lease);
        }));
        // Each waiter queued before the next arrives.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        task.await.expect("join");
    }
    let served = served.lock().expect("order").clone();
    assert_eq!(served, (0..WAITERS).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_lock_never_released_expires() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let mut config = RedisLockConfig::new(&url);
    config.ttl_ms = 200;
    config.wait_max_ms = 2_000;
    let crashed = RedisWalletLock::connect(config.clone()).expect("pool");
    let survivor = RedisWalletLock::connect(config).expect("pool");
    let id = unique("crashed");
    let lease = crashed.acquire(&[&id]).await.expect("first");
    std::mem::forget(lease); // a replica that died without releasing
    let started = std::time::Instant::now();
    let _second = survivor.acquire(&[&id]).await.expect("taken after expiry");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited for the expiry"
    );
}

/// Two deployments sharing one Redis, each with its key prefix: the same
/// wallet id in both takes two locks (h112 F1: one waited its whole bound
/// on the other's); one deployment's replicas still share theirs.
#[tokio::test]
async fn deployments_with_their_own_key_prefix_do_not_wait_on_each_other() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let deployment = |prefix: &str| {
        let mut config = RedisLockConfig::new(&url);
        config.key_prefix = format!("{prefix}-{}:", uuid::Uuid::new_v4().simple());
        config.wait_max_ms = 300;
        config
    };
    let staging = deployment("staging");
    let id = unique("shared-id");
    let staging_replica = RedisWalletLock::connect(staging.clone()).expect("pool");
    let _held = staging_replica
        .acquire(&[&id])
        .await
        .expect("staging takes it");
    let production = RedisWalletLock::connect(deployment("production")).expect("pool");
    let _taken = production
        .acquire(&[&id])
        .await
        .expect("another deployment's lock is another key");
    let other_staging_replica = RedisWalletLock::connect(staging).expect("pool");
    assert!(
        matches!(
            other_staging_replica.acquire(&[&id]).await,
            Err(LockError::TimedOut(_))
        ),
        "a replica of the same deployment waits"
    );
}

#[tokio::test]
async fn transfers_in_opposite_directions_do_not_deadlock() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let lock = Arc::new(RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool"));
    let (a, b) = (unique("a"), unique("b"));
    let forward = {
        let (lock, a, b) = (lock.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                let _lease = lock.acquire(&[&a, &b]).await.expect("lock");
            }
        })
    };
    for _ in 0..50 {
        let _lease = lock.acquire(&[&b, &a]).await.expect("lock");
    }
    forward.await.expect("join");
}

#[tokio::test]
async fn an_uncontended_transfer_takes_both_locks_in_one_round_trip() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let lock = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let (a, b) = (unique("payer"), unique("payee"));
    let lease = lock.acquire(&[&a, &b]).await.expect("lock");
    assert_eq!(
        lock.round_trips(),
        1,
        "both wallets taken by one script call"
    );
    drop(lease);
    let released_by = std::time::Instant::now() + Duration::from_secs(5);
    while lock.round_trips() < 2 && std::time::Instant::now() < released_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(lock.round_trips(), 2, "both given back by one script call");
    let _again = lock.acquire(&[&b, &a]).await.expect("free again");
    assert_eq!(lock.round_trips(), 3, "the released pair is free at once");
}

/// A proxy in front of the Redis of `url` (`redis://host:port[/db]`), and
/// the URL of that Redis through it.
async fn proxied(url: &str) -> (PausableProxy, String) {
    let (server, database) = url
        .trim_start_matches("redis://")
        .split_once('/')
        .unwrap_or((url.trim_start_matches("redis://"), ""));
    let (host, port) = server.rsplit_once(':').expect("REDIS_URL names a port");
    let proxy = PausableProxy::start((host.to_owned(), port.parse().expect("a port number"))).await;
    let through = format!("redis://{host}:{}/{database}", proxy.port);
    (proxy, through)
}

/// A connection that goes silent (a lost NAT entry, a hung proxy) is given
/// up after the request it left unanswered: the next request, once the
/// lock asks Redis again, goes down a new connection and takes its lock.
/// Meanwhile the probe reports the failure, though Redis answers a PING.
#[tokio::test]
async fn a_connection_gone_silent_is_replaced() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let (proxy, through_proxy) = proxied(&url).await;
    let mut config = RedisLockConfig::new(through_proxy);
    config.command_timeout_ms = 200;
    let lock = RedisWalletLock::connect(config).expect("lock");
    drop(lock.acquire(&[&unique("first")]).await.expect("lock"));

    // The next lock request passes; the one after it gets no answer.
    proxy.freeze_after("EVALSHA");
    drop(lock.acquire(&[&unique("marks")]).await.expect("lock"));
    let unanswered = lock.acquire(&[&unique("unanswered")]).await.err();
    assert!(
        matches!(unanswered, Some(LockError::Unavailable(_))),
        "{unanswered:?}"
    );
    let probed = lock.probe().await;
    assert!(
        matches!(&probed, Err(LockError::Unavailable(why)) if why.contains("lock request failed")),
        "{probed:?}"
    );

    tokio::time::sleep(Duration::from_millis(
        wallet_lock::AWAY_RETRY_INTERVAL_MS + 100,
    ))
    .await;
    let again = unique("again");
    let lease = lock
        .acquire(&[&again])
        .await
        .expect("taken on a new connection");
    lock.probe().await.expect("answered again");
    let mut config = RedisLockConfig::new(&url);
    config.wait_max_ms = 100;
    let other_waits = RedisWalletLock::connect(config).expect("lock");
    assert!(
        matches!(
            other_waits.acquire(&[&again]).await.err(),
            Some(LockError::TimedOut(_))
        ),
        "the lock is held in Redis"
    );
    drop(lease);
}

/// A release whose connection was dropped under it (a Redis that closed its
/// clients, a failover) is sent again on a new connection: the wallet is free
/// at once, not after its lock's time to live.
#[tokio::test]
async fn a_release_on_a_dropped_connection_is_sent_again() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let (proxy, through_proxy) = proxied(&url).await;
    let lock = RedisWalletLock::connect(RedisLockConfig::new(through_proxy)).expect("lock");
    let wallet = unique("released");
    let lease = lock.acquire(&[&wallet]).await.expect("lock");
    proxy.close_connections();
    drop(lease);

    let mut config = RedisLockConfig::new(&url);
    config.wait_max_ms = 1_000;
    let other = RedisWalletLock::connect(config).expect("lock");
    let started = std::time::Instant::now();
    let _taken = other
        .acquire(&[&wallet])
        .await
        .expect("given back, not left to expire");
    assert!(
        started.elapsed() < Duration::from_millis(wallet_lock::LOCK_TTL_MS_DEFAULT / 2),
        "free within {:?}",
        started.elapsed()
    );
}

/// What the lock counts as its round trips is all it sends: no connection
/// check (a pool's `PING`) before each script call.
#[tokio::test]
async fn a_lock_request_is_the_only_request_sent() {
    const ACQUIRES: u64 = 10;
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let (proxy, through_proxy) = proxied(&url).await;
    let lock = RedisWalletLock::connect(RedisLockConfig::new(through_proxy)).expect("lock");
    // The first request connects and has Redis learn the script.
    drop(lock.acquire(&[&unique("first")]).await.expect("lock"));
    let (writes, round_trips) = (proxy.client_writes(), lock.round_trips());
    for _ in 0..ACQUIRES {
        drop(lock.acquire(&[&unique("next")]).await.expect("lock"));
    }
    assert!(lock.round_trips() - round_trips >= ACQUIRES);
    assert_eq!(
        proxy.client_writes() - writes,
        lock.round_trips() - round_trips,
        "one request per round trip counted"
    );
}

/// A dropped lease is given back by the replica's next lock request, in the
/// same script call: a command costs one round trip, its release none; the
/// last lease, which no request follows, by the release task.
#[tokio::test]
async fn a_lock_request_gives_back_the_leases_dropped_before_it() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    const WALLETS: u64 = 20;
    let lock = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let other = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let wallets: Vec<_> = (0..WALLETS).map(|_| unique("carried")).collect();
    for wallet in &wallets {
        drop(lock.acquire(&[wallet]).await.expect("lock"));
        // The same wallet again: its release rides on this request, which
        // then finds it free at the first try.
        drop(lock.acquire(&[wallet]).await.expect("free again"));
    }
    assert_eq!(
        lock.round_trips(),
        2 * WALLETS,
        "one round trip per lock request, none for the releases they carried"
    );
    let released_by = std::time::Instant::now() + Duration::from_secs(5);
    while lock.round_trips() == 2 * WALLETS && std::time::Instant::now() < released_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        lock.round_trips(),
        2 * WALLETS + 1,
        "the last lease given back by the release task"
    );
    for wallet in &wallets {
        drop(
            other
                .acquire(&[wallet])
                .await
                .expect("free for another replica"),
        );
    }
    assert_eq!(
        other.round_trips(),
        WALLETS,
        "another replica takes every wallet at the first try"
    );
}

#[tokio::test]
async fn leases_dropped_together_are_given_back_in_one_round_trip() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    const LEASES: usize = 40;
    const DRAWS_MAX: usize = 4 * LEASES;
    let mut config = RedisLockConfig::new(&url);
    config.wait_max_ms = 100;
    let lock = RedisWalletLock::connect(config).expect("pool");
    // The replica's queue is striped: a wallet sharing a stripe with one held
    // waits in the queue (about one draw in a hundred here) and is drawn
    // again; it never reaches Redis, so it costs no round trip.
    let mut wallets = Vec::with_capacity(LEASES);
    let mut leases = Vec::with_capacity(LEASES);
    for _ in 0..DRAWS_MAX {
        if leases.len() == LEASES {
            break;
        }
        let wallet = unique("batched");
        match lock.acquire(&[&wallet]).await {
            Ok(lease) => {
                leases.push(lease);
                wallets.push(wallet);
            }
            Err(LockError::TimedOut(_)) => continue,
            Err(error) => panic!("lock: {error}"),
        }
    }
    assert_eq!(leases.len(), LEASES, "{LEASES} wallets on distinct stripes");
    let taken = lock.round_trips();
    assert_eq!(taken, LEASES as u64, "one round trip per uncontended lease");
    // Dropped on this (single-threaded) test runtime before the releaser runs:
    // it finds all of them queued at once.
    drop(leases);
    let released_by = std::time::Instant::now() + Duration::from_secs(5);
    while lock.round_trips() == taken && std::time::Instant::now() < released_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        lock.round_trips(),
        taken + 1,
        "every lease given back by one call"
    );
    let mut again = Vec::with_capacity(LEASES);
    for wallet in &wallets {
        again.push(lock.acquire(&[wallet]).await.expect("free again"));
    }
    assert_eq!(
        lock.round_trips(),
        taken + 1 + LEASES as u64,
        "each wallet was free at the first try: its release went through"
    );
}

#[tokio::test]
async fn a_pair_with_one_wallet_held_takes_neither_and_names_the_held_one() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let mut config = RedisLockConfig::new(&url);
    config.wait_max_ms = 100;
    let lock = RedisWalletLock::connect(config).expect("pool");
    let (free, held) = (unique("free"), unique("held"));
    let _holder = lock.acquire(&[&held]).await.expect("held");
    let error = lock
        .acquire(&[&free, &held])
        .await
        .err()
        .expect("the pair waits out its limit");
    assert!(
        matches!(&error, LockError::TimedOut(wallet) if wallet == &held),
        "{error}"
    );
    let before = lock.round_trips();
    let _free = lock
        .acquire(&[&free])
        .await
        .expect("the free wallet was not taken");
    assert_eq!(lock.round_trips(), before + 1, "taken at the first try");
}

#[tokio::test]
async fn a_redis_that_is_down_is_unavailable_not_a_hang() {
    let mut config = RedisLockConfig::new("redis://127.0.0.1:1");
    config.command_timeout_ms = 200;
    let lock = RedisWalletLock::connect(config).expect("pool is lazy");
    let id = wallet("w");
    let error = tokio::time::timeout(Duration::from_secs(5), lock.acquire(&[&id]))
        .await
        .expect("answers quickly")
        .err()
        .expect("refused");
    assert!(matches!(error, LockError::Unavailable(_)), "{error}");
    let probed = tokio::time::timeout(Duration::from_secs(5), lock.probe())
        .await
        .expect("answers quickly");
    assert!(
        matches!(probed, Err(LockError::Unavailable(_))),
        "{probed:?}"
    );
}

#[tokio::test]
async fn a_redis_that_answers_passes_the_probe() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let lock = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    lock.probe().await.expect("Redis answers a PING");
}

/// A connection of its own to the lock's Redis, to read and write its keys.
async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// What a holder wrote is passed on to the wallet's next holder, on any
/// replica, whether its release rode on a lock request or was sent by the
/// release task: the highest version recorded, never lowered by a holder
/// that wrote nothing or less, and kept for [`WRITTEN_TTL_MS`] beside the
/// lock's key (h147 F1).
#[tokio::test]
async fn a_lock_passes_on_the_version_its_last_holder_wrote() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let a = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let b = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let (wallet, other) = (unique("written"), unique("written-other"));

    let lease = a.acquire(&[&wallet, &other]).await.expect("lock");
    assert_eq!(
        lease.last_written(&wallet),
        None,
        "a new wallet: none known"
    );
    lease.wrote(&wallet, 7);
    drop(lease);
    // B polls until the release task gave A's lease back.
    let lease = b.acquire(&[&wallet]).await.expect("lock");
    assert_eq!(lease.last_written(&wallet), Some(7));
    drop(lease);
    let lease = b.acquire(&[&other]).await.expect("lock");
    assert_eq!(lease.last_written(&other), None, "A wrote nothing to it");
    drop(lease);

    // B's lease rides on B's next request; a lower version is not kept.
    let lease = b.acquire(&[&wallet]).await.expect("lock");
    lease.wrote(&wallet, 5);
    drop(lease);
    let lease = b.acquire(&[&wallet]).await.expect("lock");
    assert_eq!(lease.last_written(&wallet), Some(7), "never lowered");
    lease.wrote(&wallet, 9);
    drop(lease);
    let lease = a.acquire(&[&wallet]).await.expect("lock");
    assert_eq!(lease.last_written(&wallet), Some(9));
    drop(lease);

    let mut connection = raw_connection(&url).await;
    let key = format!("{LOCK_KEY_PREFIX_DEFAULT}{wallet}{WRITTEN_SUFFIX}");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("PTTL");
    assert!(
        ttl_ms > 0 && ttl_ms <= i64::try_from(WRITTEN_TTL_MS).expect("small"),
        "{key} expires: {ttl_ms} ms"
    );
}

/// A value beside a lock that is no version, or no string (written by
/// another program), counts as none: the lock is still taken, at once, and
/// the next version written replaces it (h149 F1: a hash there failed the
/// script after it had taken the lock, which then waited out its expiry).
#[tokio::test]
async fn a_written_value_that_is_no_version_counts_as_none() {
    let Some(url) = require_env("REDIS_URL") else {
        return;
    };
    let lock = RedisWalletLock::connect(RedisLockConfig::new(&url)).expect("pool");
    let mut connection = raw_connection(&url).await;
    for garbage in ["garbage", "-5", "1e300", "2.5", "", "a hash"] {
        let wallet = unique("garbage");
        let key = format!("{LOCK_KEY_PREFIX_DEFAULT}{wallet}{WRITTEN_SUFFIX}");
        let written = if garbage == "a hash" {
            redis::cmd("HSET").arg(&key).arg("x").arg(1).clone()
        } else {
            redis::cmd("SET").arg(&key).arg(garbage).clone()
        };
        let () = written
            .query_async(&mut connection)
            .await
            .map(|_: redis::Value| ())
            .expect("written");
        let lease = lock.acquire(&[&wallet]).await.expect("taken all the same");
        assert_eq!(lease.last_written(&wallet), None, "{garbage:?}");
        lease.wrote(&wallet, 3);
        drop(lease);
        let round_trips = lock.round_trips();
        let lease = lock.acquire(&[&wallet]).await.expect("lock");
        assert_eq!(lease.last_written(&wallet), Some(3), "{garbage:?} replaced");
        assert_eq!(
            lock.round_trips() - round_trips,
            1,
            "{garbage:?}: free at once"
        );
    }
}
