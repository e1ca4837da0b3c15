//! The three phases of a run against a live server: create wallets, run the operations,
//! verify conservation. Each phase spreads its items over `--workers` tokio tasks that claim
//! the next index from a shared counter.
//!
//! Every request gets its own `Idempotency-Key` here, and the client resends it with that key
//! until a definitive answer comes or its window closes ([`crate::client`]). A request whose
//! window closed with its outcome unknown is kept with its key and resent once more, for one
//! more window, when its phase is over ([`resolve_in_doubt`]): a server back by then answers
//! it, replaying it if it had been applied, so its money is counted as it really went. Only
//! what stays unknown after that is an error whose money effect is unknown, and then a
//! difference in the conservation check is reported as unknown, not as the server's fault.
//!
//! A window that closes without any answer means the server has been unreachable for that
//! long: the run stops sending ([`RunContext::server_lost`]) and counts each request it did not
//! send as an error, so a run against a server gone for good still ends within a few windows.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rust_decimal::Decimal;
use tokio::task::{JoinError, JoinSet};
use uuid::Uuid;

use crate::cli::Args;
use crate::client::{
    AmountRequest, Attempted, CreateWalletRequest, Outcome, TransferRequest, WalletClient,
};
use crate::lag;
use crate::report::{
    check_conservation, operations_per_second, passed, Conservation, LatencySummary, MoneyFlow,
    Report, Tally,
};
use crate::workload::{owner_id, plan_operations, wallet_id, Operation};

/// Latencies above this are recorded as this (60 s, far past the request timeout).
pub const LATENCY_MICROSECONDS_MAX: u64 = 60_000_000;
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// The read side may lag the writes: re-read all balances up to this many times.
pub const CONSERVATION_ATTEMPTS_MAX: u32 = 10;
pub const CONSERVATION_RETRY_INTERVAL_MS: u64 = 500;
pub const RUN_ID_LENGTH: usize = 8;
pub const OPERATION_DESCRIPTION: &str = "wallex-load";
/// The error kind of a request not sent because the server was lost.
pub const NOT_SENT_KIND: &str = "not sent: server unreachable";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    HttpClient(#[from] crate::client::ClientError),
    #[error("Failed to mint a token from AUTH_JWT_SECRET: {0}")]
    Token(#[from] identity::MintError),
    #[error("Failed to create a latency histogram: {0}")]
    Histogram(String),
    #[error("A worker task failed: {0}")]
    Worker(#[from] JoinError),
    #[error("Failed to read a consumer's metrics: {0}")]
    Metrics(String),
}

/// Everything the workers share: read-only but for `server_lost`.
struct RunContext {
    client: WalletClient,
    wallet_ids: Vec<String>,
    owner_ids: Vec<String>,
    initial_balance: Decimal,
    plan: Vec<Operation>,
    /// Set, for the rest of the run, once a request's window closed without a definitive
    /// answer: from then on no new request is sent (each counts as a [`NOT_SENT_KIND`] error).
    server_lost: AtomicBool,
}

pub async fn run(args: &Args) -> Result<Report, LoadError> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let run_id = args.run_id.clone().unwrap_or_else(random_run_id);
    let mut rng = StdRng::seed_from_u64(seed);
    let context = Arc::new(RunContext {
        client: WalletClient::new(&args.url, args.workers, args.bearer_token()?.as_deref())?,
        wallet_ids: (0..args.wallets).map(|n| wallet_id(&run_id, n)).collect(),
        owner_ids: (0..args.wallets).map(|n| owner_id(&run_id, n)).collect(),
        initial_balance: args.initial_balance,
        plan: plan_operations(&mut rng, args.wallets, args.operations),
        server_lost: AtomicBool::new(false),
    });

    let lag_before = lag::snapshot(&args.lag_metrics).await?;
    eprintln!(
        "phase 1: creating {} wallets (run id {run_id}, seed {seed})",
        args.wallets
    );
    let creation_start = Instant::now();
    let creation = create_wallets(&context, args.workers).await?;
    let wallet_creation_seconds = creation_start.elapsed().as_secs_f64();

    let operations_start = Instant::now();
    let operations = if creation.created.is_empty() {
        eprintln!("phase 2: skipped, no wallet was created");
        OperationsResult::new()?
    } else {
        eprintln!(
            "phase 2: {} operations on {} workers",
            args.operations, args.workers
        );
        run_operations(&context, args.workers).await?
    };
    let duration_seconds = operations_start.elapsed().as_secs_f64();

    let mut money = creation.money;
    money.merge(&operations.money);
    eprintln!(
        "phase 3: verifying conservation over {} wallets",
        creation.created.len()
    );
    let unknown_outcomes = creation.tally.unknown_outcomes + operations.tally.unknown_outcomes;
    let conservation = verify_conservation(
        &context,
        &creation.created,
        &money,
        unknown_outcomes,
        args.workers,
    )
    .await?;

    if !args.lag_metrics.is_empty() {
        eprintln!("phase 4: waiting for the consumers to go quiet, for their lag");
    }
    let lag = lag::summarize(&args.lag_metrics, &lag_before).await?;

    let mut operations_by_kind = BTreeMap::new();
    for operation in &context.plan {
        *operations_by_kind
            .entry(operation.kind_name().to_owned())
            .or_insert(0u64) += 1;
    }
    Ok(Report {
        url: args.url.clone(),
        run_id,
        seed,
        workers: args.workers,
        wallets_requested: args.wallets,
        wallet_creation_seconds,
        operations_requested: args.operations,
        operations_by_kind,
        success_rate_percent: operations.tally.success_rate_percent(),
        duration_seconds,
        operations_per_second: operations_per_second(operations.tally.sent(), duration_seconds),
        latency: LatencySummary::from_histogram_microseconds(&operations.latency_microseconds),
        money,
        passed: passed(&creation.tally, &operations.tally, &conservation),
        wallet_creation: creation.tally,
        operations: operations.tally,
        conservation,
        lag,
    })
}

fn random_run_id() -> String {
    Uuid::new_v4().simple().to_string()[..RUN_ID_LENGTH].to_owned()
}

/// Claims the next unprocessed index, or `None` when all `count` items are taken.
fn claim(next: &AtomicUsize, count: usize) -> Option<usize> {
    let index = next.fetch_add(1, Ordering::Relaxed);
    (index < count).then_some(index)
}

/// Spawns `workers` tasks built by `make_worker` and collects their results.
async fn run_workers<R, Fut>(
    workers: usize,
    make_worker: impl Fn() -> Fut,
) -> Result<Vec<R>, LoadError>
where
    R: Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut set = JoinSet::new();
    for _ in 0..workers {
        set.spawn(make_worker());
    }
    let mut results = Vec::with_capacity(workers);
    while let Some(result) = set.join_next().await {
        results.push(result?);
    }
    Ok(results)
}

/// A request whose outcome was still unknown when its window closed, kept with its key to be
/// resent once its phase is over.
struct InDoubt {
    /// The request's index in its phase (a wallet's, or an operation's in the plan).
    index: usize,
    idempotency_key: Uuid,
    retries: u32,
}

/// What becomes of a request's end in a worker.
enum Sorted {
    /// Its outcome is known (or it is not worth resending): count it now.
    Settled(Attempted),
    /// Its outcome is unknown: resend it after the phase.
    InDoubt(InDoubt),
}

/// Sorts a request's end, and marks the server lost when its window closed without an answer.
fn sort_end(
    context: &RunContext,
    index: usize,
    idempotency_key: Uuid,
    attempted: Attempted,
) -> Sorted {
    if attempted.outcome.is_unanswered() && !context.server_lost.swap(true, Ordering::Relaxed) {
        eprintln!(
            "  no answer from the server within {} ms: no further request is sent",
            context.client.retry_policy().window_ms
        );
    }
    match attempted.outcome {
        Outcome::Unknown(_) => Sorted::InDoubt(InDoubt {
            index,
            idempotency_key,
            retries: attempted.retries,
        }),
        _ => Sorted::Settled(attempted),
    }
}

/// The end of a request the run did not send, the server being lost.
fn not_sent() -> Attempted {
    Attempted {
        outcome: Outcome::Error(NOT_SENT_KIND.to_owned()),
        retries: 0,
        replayed: false,
    }
}

/// Resends each request of `in_doubt` with its key, by `resend`, on up to `workers` tasks, each
/// for one more window (even with the server lost: that is how a late server's answer is
/// learnt). A server that answers now gives the request's one outcome (its stored answer if an
/// earlier attempt had been applied); one that does not leaves it [`Outcome::Unknown`].
/// Returns each request's index and end, its retries counting all its attempts.
async fn resolve_in_doubt<F, Fut>(
    context: &Arc<RunContext>,
    in_doubt: Vec<InDoubt>,
    workers: usize,
    resend: F,
) -> Result<Vec<(usize, Attempted)>, LoadError>
where
    F: Fn(Arc<RunContext>, usize, Uuid) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Attempted> + Send + 'static,
{
    if in_doubt.is_empty() {
        return Ok(Vec::new());
    }
    eprintln!(
        "  resending {} requests whose outcome is unknown, with their idempotency keys",
        in_doubt.len()
    );
    let in_doubt = Arc::new(in_doubt);
    let next = Arc::new(AtomicUsize::new(0));
    let results = run_workers(workers.min(in_doubt.len()), || {
        let context = Arc::clone(context);
        let in_doubt = Arc::clone(&in_doubt);
        let next = Arc::clone(&next);
        let resend = resend.clone();
        async move {
            let count = in_doubt.len();
            let mut resolved = Vec::new();
            for _ in 0..count {
                let Some(position) = claim(&next, count) else {
                    break;
                };
                let request = &in_doubt[position];
                let resent =
                    resend(Arc::clone(&context), request.index, request.idempotency_key).await;
                resolved.push((request.index, after_resend(request, resent)));
            }
            resolved
        }
    })
    .await?;
    Ok(results.into_iter().flatten().collect())
}

/// The end of a request in doubt, from the end of its resend: the resend's answer if it got
/// one; otherwise still [`Outcome::Unknown`], even when no attempt of the resend reached the
/// server, since an attempt before it may have. Its retries count all its attempts.
fn after_resend(request: &InDoubt, resent: Attempted) -> Attempted {
    let outcome = match resent.outcome {
        Outcome::Unreachable(kind) => Outcome::Unknown(kind),
        outcome => outcome,
    };
    Attempted {
        outcome,
        retries: request.retries + 1 + resent.retries,
        replayed: resent.replayed,
    }
}

#[derive(Default)]
struct CreationResult {
    tally: Tally,
    money: MoneyFlow,
    /// Indices of the wallets the server confirmed.
    created: Vec<usize>,
    in_doubt: Vec<InDoubt>,
}

impl CreationResult {
    fn settle(&mut self, context: &RunContext, index: usize, attempted: &Attempted) {
        if attempted.outcome == Outcome::Success {
            self.money.created += context.initial_balance;
            self.created.push(index);
        }
        self.tally.record(attempted);
    }
}

/// Sends wallet `index`'s creation with `idempotency_key`.
async fn create_wallet(context: Arc<RunContext>, index: usize, idempotency_key: Uuid) -> Attempted {
    let request = CreateWalletRequest {
        wallet_id: &context.wallet_ids[index],
        owner_id: &context.owner_ids[index],
        initial_balance: context.initial_balance,
    };
    context
        .client
        .create_wallet(idempotency_key, &request)
        .await
}

async fn create_wallets(
    context: &Arc<RunContext>,
    workers: usize,
) -> Result<CreationResult, LoadError> {
    let next = Arc::new(AtomicUsize::new(0));
    let results = run_workers(workers, || {
        let context = Arc::clone(context);
        let next = Arc::clone(&next);
        async move {
            let count = context.wallet_ids.len();
            let mut result = CreationResult::default();
            for _ in 0..count {
                let Some(index) = claim(&next, count) else {
                    break;
                };
                if context.server_lost.load(Ordering::Relaxed) {
                    result.tally.record(&not_sent());
                    continue;
                }
                let idempotency_key = Uuid::new_v4();
                let attempted = create_wallet(Arc::clone(&context), index, idempotency_key).await;
                match sort_end(&context, index, idempotency_key, attempted) {
                    Sorted::Settled(attempted) => result.settle(&context, index, &attempted),
                    Sorted::InDoubt(in_doubt) => result.in_doubt.push(in_doubt),
                }
            }
            result
        }
    })
    .await?;

    let mut total = CreationResult::default();
    let mut in_doubt = Vec::new();
    for result in results {
        total.tally.merge(&result.tally);
        total.money.merge(&result.money);
        total.created.extend(result.created);
        in_doubt.extend(result.in_doubt);
    }
    for (index, attempted) in resolve_in_doubt(context, in_doubt, workers, create_wallet).await? {
        total.settle(context, index, &attempted);
    }
    total.created.sort_unstable();
    Ok(total)
}

struct OperationsResult {
    tally: Tally,
    money: MoneyFlow,
    latency_microseconds: Histogram<u64>,
    in_doubt: Vec<InDoubt>,
}

impl OperationsResult {
    fn new() -> Result<Self, LoadError> {
        Ok(Self {
            tally: Tally::default(),
            money: MoneyFlow::default(),
            latency_microseconds: new_latency_histogram()?,
            in_doubt: Vec::new(),
        })
    }

    fn settle(&mut self, operation: &Operation, attempted: &Attempted) {
        if attempted.outcome == Outcome::Success {
            match operation {
                Operation::Credit { amount, .. } => self.money.credited += *amount,
                Operation::Debit { amount, .. } => self.money.debited += *amount,
                Operation::Transfer { .. } => {}
            }
        }
        self.tally.record(attempted);
    }
}

fn new_latency_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, LATENCY_MICROSECONDS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .map_err(|error| LoadError::Histogram(error.to_string()))
}

/// Sends operation `index` of the plan with `idempotency_key`.
async fn execute(context: Arc<RunContext>, index: usize, idempotency_key: Uuid) -> Attempted {
    let client = &context.client;
    match &context.plan[index] {
        Operation::Credit { wallet, amount } => {
            let request = AmountRequest {
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client
                .credit(idempotency_key, &context.wallet_ids[*wallet], &request)
                .await
        }
        Operation::Debit { wallet, amount } => {
            let request = AmountRequest {
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client
                .debit(idempotency_key, &context.wallet_ids[*wallet], &request)
                .await
        }
        Operation::Transfer { from, to, amount } => {
            let request = TransferRequest {
                to_wallet_id: &context.wallet_ids[*to],
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client
                .transfer(idempotency_key, &context.wallet_ids[*from], &request)
                .await
        }
    }
}

async fn run_operations(
    context: &Arc<RunContext>,
    workers: usize,
) -> Result<OperationsResult, LoadError> {
    let next = Arc::new(AtomicUsize::new(0));
    let results = run_workers(workers, || {
        let context = Arc::clone(context);
        let next = Arc::clone(&next);
        async move {
            let mut result = OperationsResult::new()?;
            let count = context.plan.len();
            for _ in 0..count {
                let Some(index) = claim(&next, count) else {
                    break;
                };
                if context.server_lost.load(Ordering::Relaxed) {
                    result.tally.record(&not_sent());
                    continue;
                }
                let idempotency_key = Uuid::new_v4();
                let start = Instant::now();
                let attempted = execute(Arc::clone(&context), index, idempotency_key).await;
                let microseconds = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                result.latency_microseconds.saturating_record(microseconds);
                match sort_end(&context, index, idempotency_key, attempted) {
                    Sorted::Settled(attempted) => result.settle(&context.plan[index], &attempted),
                    Sorted::InDoubt(in_doubt) => result.in_doubt.push(in_doubt),
                }
            }
            Ok::<_, LoadError>(result)
        }
    })
    .await?;

    let mut total = OperationsResult::new()?;
    let mut in_doubt = Vec::new();
    for result in results {
        let result = result?;
        total.tally.merge(&result.tally);
        total.money.merge(&result.money);
        total
            .latency_microseconds
            .add(&result.latency_microseconds)
            .map_err(|error| LoadError::Histogram(format!("{error:?}")))?;
        in_doubt.extend(result.in_doubt);
    }
    for (index, attempted) in resolve_in_doubt(context, in_doubt, workers, execute).await? {
        total.settle(&context.plan[index], &attempted);
    }
    Ok(total)
}

/// Reads the balances of the created wallets until they add up, at most
/// [`CONSERVATION_ATTEMPTS_MAX`] times, since a read model may still be catching up.
/// `unknown_outcomes` requests of the run are in doubt ([`check_conservation`]).
async fn verify_conservation(
    context: &Arc<RunContext>,
    created: &[usize],
    money: &MoneyFlow,
    unknown_outcomes: u64,
    workers: usize,
) -> Result<Conservation, LoadError> {
    let created = Arc::new(created.to_vec());
    let mut conservation = check_conservation(money, &[], created.len(), 0, unknown_outcomes);
    for attempt in 1..=CONSERVATION_ATTEMPTS_MAX {
        let (balances, unread) = read_balances(context, &created, workers).await?;
        conservation = check_conservation(money, &balances, unread, attempt, unknown_outcomes);
        if conservation.ok {
            break;
        }
        if attempt < CONSERVATION_ATTEMPTS_MAX {
            eprintln!(
                "  conservation not yet OK (difference {}, unread {}, negative {}); re-reading",
                conservation.difference, conservation.wallets_unread, conservation.negative_wallets
            );
            tokio::time::sleep(Duration::from_millis(CONSERVATION_RETRY_INTERVAL_MS)).await;
        }
    }
    Ok(conservation)
}

async fn read_balances(
    context: &Arc<RunContext>,
    created: &Arc<Vec<usize>>,
    workers: usize,
) -> Result<(Vec<Decimal>, usize), LoadError> {
    let next = Arc::new(AtomicUsize::new(0));
    let results = run_workers(workers, || {
        let context = Arc::clone(context);
        let created = Arc::clone(created);
        let next = Arc::clone(&next);
        async move {
            let mut balances = Vec::new();
            let mut unread = 0usize;
            let count = created.len();
            for _ in 0..count {
                let Some(index) = claim(&next, count) else {
                    break;
                };
                let wallet_id = &context.wallet_ids[created[index]];
                match context.client.balance(wallet_id).await {
                    Ok(balance) => balances.push(balance),
                    Err(reason) => {
                        unread += 1;
                        eprintln!("  could not read wallet {wallet_id}: {reason}");
                    }
                }
            }
            (balances, unread)
        }
    })
    .await?;
    let mut all_balances = Vec::with_capacity(created.len());
    let mut all_unread = 0;
    for (balances, unread) in results {
        all_balances.extend(balances);
        all_unread += unread;
    }
    Ok((all_balances, all_unread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Reply, ScriptedServer, FAST_POLICY};
    use crate::workload::{owner_id, wallet_id};

    fn context(client: WalletClient, wallets: usize) -> Arc<RunContext> {
        Arc::new(RunContext {
            client,
            wallet_ids: (0..wallets).map(|n| wallet_id("test", n)).collect(),
            owner_ids: (0..wallets).map(|n| owner_id("test", n)).collect(),
            initial_balance: Decimal::new(1000, 0),
            plan: Vec::new(),
            server_lost: AtomicBool::new(false),
        })
    }

    #[tokio::test]
    async fn a_request_in_doubt_is_resolved_by_its_key_once_the_server_is_back(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // Down (connections closed unanswered) past the first window, back within the
        // resend's window, answering the resend as a replay: the creation had been applied.
        let back_at = tokio::time::Instant::now() + FAST_POLICY.window() * 7 / 4;
        let server = ScriptedServer::start(Arc::new(move |_| {
            if tokio::time::Instant::now() < back_at {
                Reply::Drop
            } else {
                Reply::Replayed
            }
        }))
        .await?;
        let context = context(server.client()?, 2);
        let creation = create_wallets(&context, 1).await?;
        // Wallet 0's window closed in doubt, so wallet 1 was never sent ...
        assert!(context.server_lost.load(Ordering::Relaxed));
        assert_eq!(creation.tally.error_kinds.get(NOT_SENT_KIND), Some(&1));
        // ... and wallet 0, resent with its key, is known created, its money counted.
        assert_eq!(creation.created, vec![0]);
        assert_eq!(creation.money.created, Decimal::new(1000, 0));
        assert_eq!(creation.tally.succeeded, 1);
        assert_eq!(creation.tally.replayed, 1);
        assert_eq!(creation.tally.unknown_outcomes, 0);
        let keys = server.keys();
        assert_eq!(creation.tally.retries + 1, keys.len() as u64);
        assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
        Ok(())
    }

    #[test]
    fn a_resend_that_reaches_no_server_leaves_the_request_in_doubt() {
        let request = InDoubt {
            index: 3,
            idempotency_key: Uuid::new_v4(),
            retries: 40,
        };
        let unreachable = Attempted {
            outcome: Outcome::Unreachable("connect".into()),
            retries: 30,
            replayed: false,
        };
        assert_eq!(
            after_resend(&request, unreachable),
            Attempted {
                outcome: Outcome::Unknown("connect".into()),
                retries: 71,
                replayed: false,
            }
        );
        let answered = Attempted {
            outcome: Outcome::BusinessRejection,
            retries: 2,
            replayed: true,
        };
        assert_eq!(
            after_resend(&request, answered),
            Attempted {
                outcome: Outcome::BusinessRejection,
                retries: 43,
                replayed: true,
            }
        );
    }

    #[tokio::test]
    async fn a_request_still_in_doubt_after_its_resend_is_an_unknown_outcome(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let server = ScriptedServer::sequence(vec![Reply::Drop]).await?;
        let context = context(server.client()?, 1);
        let creation = create_wallets(&context, 4).await?;
        assert!(creation.created.is_empty());
        assert_eq!(creation.money.created, Decimal::ZERO);
        assert_eq!(creation.tally.errors, 1);
        assert_eq!(creation.tally.unknown_outcomes, 1);
        assert_eq!(
            creation
                .tally
                .error_kinds
                .get("unknown outcome (transport)"),
            Some(&1)
        );
        Ok(())
    }

    #[test]
    fn claims_each_index_once_then_stops() {
        let next = AtomicUsize::new(0);
        let claimed: Vec<Option<usize>> = (0..4).map(|_| claim(&next, 3)).collect();
        assert_eq!(claimed, vec![Some(0), Some(1), Some(2), None]);
    }

    #[test]
    fn run_ids_are_short_and_fresh() {
        let first = random_run_id();
        assert_eq!(first.len(), RUN_ID_LENGTH);
        assert_ne!(first, random_run_id());
    }
}
