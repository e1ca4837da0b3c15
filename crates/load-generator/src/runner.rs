//! The three phases of a run against a live server: create wallets, run the operations,
//! verify conservation. Each phase spreads its items over `--workers` tokio tasks that claim
//! the next index from a shared counter.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Everything the workers share, read-only.
struct RunContext {
    client: WalletClient,
    wallet_ids: Vec<String>,
    owner_ids: Vec<String>,
    initial_balance: Decimal,
    plan: Vec<Operation>,
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
    });

    let lag_before = lag::snapshot(&args.lag_metrics).await?;
    eprintln!(
        "phase 1: creating {} wallets (run id {run_id}, seed {seed})",
        args.wallets
    );
    let creation_start = Instant::now();
    let creation = create_wallets(&context, args.workers).await?;
    let wallet_creation_seconds = creation_start.elapsed().as_secs_f64();

    eprintln!(
        "phase 2: {} operations on {} workers",
        args.operations, args.workers
    );
    let operations_start = Instant::now();
    let operations = run_operations(&context, args.workers).await?;
    let duration_seconds = operations_start.elapsed().as_secs_f64();

    let mut money = creation.money;
    money.merge(&operations.money);
    eprintln!(
        "phase 3: verifying conservation over {} wallets",
        creation.created.len()
    );
    let conservation =
        verify_conservation(&context, &creation.created, &money, args.workers).await?;

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
        operations_per_second: operations_per_second(operations.tally.total(), duration_seconds),
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

struct CreationResult {
    tally: Tally,
    money: MoneyFlow,
    /// Indices of the wallets the server confirmed.
    created: Vec<usize>,
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
            let mut result = CreationResult {
                tally: Tally::default(),
                money: MoneyFlow::default(),
                created: Vec::new(),
            };
            for _ in 0..count {
                let Some(index) = claim(&next, count) else {
                    break;
                };
                let request = CreateWalletRequest {
                    wallet_id: &context.wallet_ids[index],
                    owner_id: &context.owner_ids[index],
                    initial_balance: context.initial_balance,
                };
                let attempted = context.client.create_wallet(&request).await;
                if attempted.outcome == Outcome::Success {
                    result.money.created += context.initial_balance;
                    result.created.push(index);
                }
                result.tally.record(&attempted);
            }
            result
        }
    })
    .await?;

    let mut total = CreationResult {
        tally: Tally::default(),
        money: MoneyFlow::default(),
        created: Vec::new(),
    };
    for result in results {
        total.tally.merge(&result.tally);
        total.money.merge(&result.money);
        total.created.extend(result.created);
    }
    total.created.sort_unstable();
    Ok(total)
}

struct OperationsResult {
    tally: Tally,
    money: MoneyFlow,
    latency_microseconds: Histogram<u64>,
}

fn new_latency_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, LATENCY_MICROSECONDS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .map_err(|error| LoadError::Histogram(error.to_string()))
}

async fn execute(context: &RunContext, operation: &Operation) -> Attempted {
    let client = &context.client;
    match operation {
        Operation::Credit { wallet, amount } => {
            let request = AmountRequest {
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client.credit(&context.wallet_ids[*wallet], &request).await
        }
        Operation::Debit { wallet, amount } => {
            let request = AmountRequest {
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client.debit(&context.wallet_ids[*wallet], &request).await
        }
        Operation::Transfer { from, to, amount } => {
            let request = TransferRequest {
                to_wallet_id: &context.wallet_ids[*to],
                amount: *amount,
                description: OPERATION_DESCRIPTION,
            };
            client.transfer(&context.wallet_ids[*from], &request).await
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
            let mut result = OperationsResult {
                tally: Tally::default(),
                money: MoneyFlow::default(),
                latency_microseconds: new_latency_histogram()?,
            };
            let count = context.plan.len();
            for _ in 0..count {
                let Some(index) = claim(&next, count) else {
                    break;
                };
                let operation = &context.plan[index];
                let start = Instant::now();
                let attempted = execute(&context, operation).await;
                let microseconds = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                result.latency_microseconds.saturating_record(microseconds);
                if attempted.outcome == Outcome::Success {
                    match operation {
                        Operation::Credit { amount, .. } => result.money.credited += *amount,
                        Operation::Debit { amount, .. } => result.money.debited += *amount,
                        Operation::Transfer { .. } => {}
                    }
                }
                result.tally.record(&attempted);
            }
            Ok::<_, LoadError>(result)
        }
    })
    .await?;

    let mut total = OperationsResult {
        tally: Tally::default(),
        money: MoneyFlow::default(),
        latency_microseconds: new_latency_histogram()?,
    };
    for result in results {
        let result = result?;
        total.tally.merge(&result.tally);
        total.money.merge(&result.money);
        total
            .latency_microseconds
            .add(&result.latency_microseconds)
            .map_err(|error| LoadError::Histogram(format!("{error:?}")))?;
    }
    Ok(total)
}

/// Reads the balances of the created wallets until they add up, at most
/// [`CONSERVATION_ATTEMPTS_MAX`] times, since a read model may still be catching up.
async fn verify_conservation(
    context: &Arc<RunContext>,
    created: &[usize],
    money: &MoneyFlow,
    workers: usize,
) -> Result<Conservation, LoadError> {
    let created = Arc::new(created.to_vec());
    let mut conservation = check_conservation(money, &[], created.len(), 0);
    for attempt in 1..=CONSERVATION_ATTEMPTS_MAX {
        let (balances, unread) = read_balances(context, &created, workers).await?;
        conservation = check_conservation(money, &balances, unread, attempt);
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
