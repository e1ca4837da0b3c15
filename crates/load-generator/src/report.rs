//! Counting, conservation arithmetic and the final report. Pure: no I/O here.
//!
//! Money is counted in exact decimals. Latencies and rates are measurements, not money,
//! so they are shown as floating point.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::client::{Attempted, Outcome};

pub const MICROSECONDS_PER_MILLISECOND: f64 = 1_000.0;
/// How an error whose money effect is unknown is named among the error kinds.
pub const UNKNOWN_OUTCOME_KIND: &str = "unknown outcome";

/// Counts of request outcomes of one phase.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub succeeded: u64,
    pub business_rejections: u64,
    pub errors: u64,
    /// Of the errors, those without a definitive answer that may have been applied
    /// ([`Outcome::Unknown`]): their money effect is unknown.
    pub unknown_outcomes: u64,
    /// Resends of requests without a definitive answer, with the same idempotency key.
    pub retries: u64,
    /// Answers the server replayed (`Idempotent-Replayed: true`): an earlier attempt of the
    /// request had been applied, its answer lost.
    pub replayed: u64,
    /// Errors by kind (`http 409`, `timeout`, `unknown outcome (transport)`, ...).
    pub error_kinds: BTreeMap<String, u64>,
}

impl Tally {
    pub fn record(&mut self, attempted: &Attempted) {
        self.retries += u64::from(attempted.retries);
        self.replayed += u64::from(attempted.replayed);
        match &attempted.outcome {
            Outcome::Success => self.succeeded += 1,
            Outcome::BusinessRejection => self.business_rejections += 1,
            Outcome::Error(kind) | Outcome::Unreachable(kind) => self.record_error(kind.clone()),
            Outcome::Unknown(kind) => {
                self.unknown_outcomes += 1;
                self.record_error(format!("{UNKNOWN_OUTCOME_KIND} ({kind})"));
            }
        }
    }

    fn record_error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.succeeded += other.succeeded;
        self.business_rejections += other.business_rejections;
        self.errors += other.errors;
        self.unknown_outcomes += other.unknown_outcomes;
        self.retries += other.retries;
        self.replayed += other.replayed;
        for (kind, count) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_insert(0) += count;
        }
    }

    pub fn total(&self) -> u64 {
        self.succeeded + self.business_rejections + self.errors
    }

    /// Requests sent: all but those held back once the server was lost
    /// ([`crate::runner::NOT_SENT_KIND`]), which a rate must not count.
    pub fn sent(&self) -> u64 {
        let not_sent = self
            .error_kinds
            .get(crate::runner::NOT_SENT_KIND)
            .copied()
            .unwrap_or(0);
        self.total().saturating_sub(not_sent)
    }

    /// Share of requests answered correctly: 2xx plus business rejections (a refused debit
    /// on an empty wallet is the right answer). 100 when there was nothing to do.
    pub fn success_rate_percent(&self) -> f64 {
        percent(self.succeeded + self.business_rejections, self.total())
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    part as f64 * 100.0 / whole as f64
}

/// Money that entered or left the system through successful requests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyFlow {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub created: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub credited: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub debited: Decimal,
}

impl MoneyFlow {
    pub fn merge(&mut self, other: &MoneyFlow) {
        self.created += other.created;
        self.credited += other.credited;
        self.debited += other.debited;
    }

    /// What the wallets must hold in total: transfers conserve money.
    pub fn expected_total(&self) -> Decimal {
        self.created + self.credited - self.debited
    }
}

/// What the conservation check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConservationVerdict {
    /// The balances add up to what the answered requests moved; all read, none negative.
    Ok,
    /// They do not, and every request's outcome is known (or a wallet could not be read, or
    /// one is negative): the server made or lost money.
    Failed,
    /// They do not add up, but some requests have unknown outcomes (no definitive answer
    /// within their window, perhaps applied): the check cannot tell a server fault from
    /// those requests, so it claims neither.
    Unknown,
}

impl ConservationVerdict {
    pub fn label(self) -> &'static str {
        match self {
            ConservationVerdict::Ok => "OK",
            ConservationVerdict::Failed => "FAILED",
            ConservationVerdict::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conservation {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub expected: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub actual: Decimal,
    /// actual − expected; zero when money was conserved.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub difference: Decimal,
    pub wallets_read: usize,
    pub wallets_unread: usize,
    pub negative_wallets: usize,
    /// Reads of all balances made before the check passed or gave up.
    pub attempts: u32,
    /// Requests of the run whose outcome is unknown ([`Tally::unknown_outcomes`]).
    pub unknown_outcomes: u64,
    /// Money conserved, verified: the verdict is [`ConservationVerdict::Ok`].
    pub ok: bool,
    pub verdict: ConservationVerdict,
}

/// Compares the sum of the balances read with what the successful requests put in.
/// Any unread wallet or negative balance fails the check: it could hide missing money. A
/// difference with `unknown_outcomes` requests in doubt is [`ConservationVerdict::Unknown`]:
/// those requests may account for it.
pub fn check_conservation(
    flow: &MoneyFlow,
    balances: &[Decimal],
    wallets_unread: usize,
    attempts: u32,
    unknown_outcomes: u64,
) -> Conservation {
    let expected = flow.expected_total();
    let actual: Decimal = balances.iter().copied().sum();
    let difference = actual - expected;
    let negative_wallets = balances
        .iter()
        .filter(|balance| balance.is_sign_negative() && !balance.is_zero())
        .count();
    let verdict = if difference.is_zero() && negative_wallets == 0 && wallets_unread == 0 {
        ConservationVerdict::Ok
    } else if unknown_outcomes > 0 && negative_wallets == 0 && wallets_unread == 0 {
        ConservationVerdict::Unknown
    } else {
        ConservationVerdict::Failed
    };
    Conservation {
        expected,
        actual,
        difference,
        wallets_read: balances.len(),
        wallets_unread,
        negative_wallets,
        attempts,
        unknown_outcomes,
        ok: verdict == ConservationVerdict::Ok,
        verdict,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn from_histogram_microseconds(histogram: &Histogram<u64>) -> Self {
        let milliseconds = |microseconds: u64| microseconds as f64 / MICROSECONDS_PER_MILLISECOND;
        Self {
            p50_ms: milliseconds(histogram.value_at_quantile(0.50)),
            p95_ms: milliseconds(histogram.value_at_quantile(0.95)),
            p99_ms: milliseconds(histogram.value_at_quantile(0.99)),
            max_ms: milliseconds(histogram.max()),
            mean_ms: histogram.mean() / MICROSECONDS_PER_MILLISECOND,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub url: String,
    pub run_id: String,
    pub seed: u64,
    pub workers: usize,
    pub wallets_requested: usize,
    pub wallet_creation: Tally,
    pub wallet_creation_seconds: f64,
    pub operations_requested: usize,
    pub operations: Tally,
    pub operations_by_kind: BTreeMap<String, u64>,
    pub success_rate_percent: f64,
    pub duration_seconds: f64,
    pub operations_per_second: f64,
    pub latency: LatencySummary,
    pub money: MoneyFlow,
    pub conservation: Conservation,
    /// No errors in any phase and money conserved; the exit code follows this.
    pub passed: bool,
    /// Per consumer named with `--lag-metrics`: acknowledgement to committed write.
    pub lag: BTreeMap<String, crate::lag::LagSummary>,
}

pub fn operations_per_second(operation_count: u64, duration_seconds: f64) -> f64 {
    if duration_seconds <= 0.0 {
        return 0.0;
    }
    operation_count as f64 / duration_seconds
}

pub fn passed(wallet_creation: &Tally, operations: &Tally, conservation: &Conservation) -> bool {
    wallet_creation.errors == 0 && operations.errors == 0 && conservation.ok
}

fn error_kinds_text(tally: &Tally) -> String {
    if tally.error_kinds.is_empty() {
        return String::new();
    }
    let kinds: Vec<String> = tally
        .error_kinds
        .iter()
        .map(|(kind, count)| format!("{kind}: {count}"))
        .collect();
    format!(" ({})", kinds.join(", "))
}

fn bucket_text(bound_ms: Option<f64>) -> String {
    bound_ms.map_or_else(|| "-".to_owned(), |bound| format!("{bound}"))
}

fn unknown_outcomes_text(conservation: &Conservation) -> String {
    match conservation.verdict {
        ConservationVerdict::Unknown => format!(
            " (not checked: {} requests have unknown outcomes and may account for it)",
            conservation.unknown_outcomes
        ),
        ConservationVerdict::Ok | ConservationVerdict::Failed => String::new(),
    }
}

/// The human-readable report. `writeln!` into a String cannot fail, so its results are
/// ignored on purpose.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let creation = &report.wallet_creation;
    let operations = &report.operations;
    let latency = &report.latency;
    let conservation = &report.conservation;
    let _ = writeln!(out, "== wallex-load report ==");
    let _ = writeln!(
        out,
        "target {}  run id {}  seed {}  workers {}",
        report.url, report.run_id, report.seed, report.workers
    );
    let _ = writeln!(
        out,
        "wallets         {} of {} created in {:.2} s, errors {}{}",
        creation.succeeded,
        report.wallets_requested,
        report.wallet_creation_seconds,
        creation.errors,
        error_kinds_text(creation)
    );
    let kinds: Vec<String> = report
        .operations_by_kind
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    let _ = writeln!(
        out,
        "operations      {} ({})",
        report.operations_requested,
        kinds.join(", ")
    );
    let _ = writeln!(out, "  succeeded     {}", operations.succeeded);
    let _ = writeln!(
        out,
        "  rejected      {} (insufficient funds, not errors)",
        operations.business_rejections
    );
    let _ = writeln!(
        out,
        "  errors        {}{}",
        operations.errors,
        error_kinds_text(operations)
    );
    let _ = writeln!(
        out,
        "  retries       {} (transport failures or 503, same idempotency key; {} answers replayed)",
        operations.retries + creation.retries,
        operations.replayed + creation.replayed
    );
    let _ = writeln!(
        out,
        "success rate    {:.2} % (2xx + business rejections)",
        report.success_rate_percent
    );
    let _ = writeln!(
        out,
        "duration        {:.2} s, {:.1} ops/s",
        report.duration_seconds, report.operations_per_second
    );
    let _ = writeln!(
        out,
        "latency ms      p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
        latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.max_ms, latency.mean_ms
    );
    let _ = writeln!(
        out,
        "money           created {}  credited {}  debited {}",
        report.money.created, report.money.credited, report.money.debited
    );
    let _ = writeln!(
        out,
        "conservation    {}: expected {}  actual {}  difference {}{}",
        conservation.verdict.label(),
        conservation.expected,
        conservation.actual,
        conservation.difference,
        unknown_outcomes_text(conservation)
    );
    let _ = writeln!(
        out,
        "                wallets read {}, unread {}, negative {}, attempts {}",
        conservation.wallets_read,
        conservation.wallets_unread,
        conservation.negative_wallets,
        conservation.attempts
    );
    for (consumer, lag) in &report.lag {
        let _ = writeln!(
            out,
            "lag {consumer:<11} {} events, p50 <= {} ms, p99 <= {} ms (ack to committed write)",
            lag.events,
            bucket_text(lag.p50_ms_at_most),
            bucket_text(lag.p99_ms_at_most)
        );
    }
    let _ = writeln!(
        out,
        "result          {}",
        if report.passed { "PASS" } else { "FAIL" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Decimal {
        text.parse()
            .unwrap_or_else(|_| panic!("bad test decimal {text}"))
    }

    fn attempted(outcome: Outcome, retries: u32) -> Attempted {
        Attempted {
            outcome,
            retries,
            replayed: false,
        }
    }

    #[test]
    fn tally_counts_and_merges() {
        let mut first = Tally::default();
        first.record(&attempted(Outcome::Success, 0));
        first.record(&attempted(Outcome::BusinessRejection, 0));
        first.record(&attempted(Outcome::Error("http 500".into()), 2));
        let mut second = Tally::default();
        second.record(&attempted(Outcome::Success, 1));
        second.record(&attempted(Outcome::Error("http 500".into()), 0));
        first.merge(&second);
        assert_eq!(first.succeeded, 2);
        assert_eq!(first.business_rejections, 1);
        assert_eq!(first.errors, 2);
        assert_eq!(first.retries, 3);
        assert_eq!(first.error_kinds.get("http 500"), Some(&2));
        assert_eq!(first.total(), 5);
    }

    #[test]
    fn success_rate_counts_rejections_as_correct_answers() {
        let tally = Tally {
            succeeded: 18_000,
            business_rejections: 1_900,
            errors: 100,
            ..Tally::default()
        };
        assert!((tally.success_rate_percent() - 99.5).abs() < 1e-9);
        assert_eq!(Tally::default().success_rate_percent(), 100.0);
    }

    #[test]
    fn operations_per_second_guards_zero_duration() {
        assert_eq!(operations_per_second(20_000, 4.0), 5_000.0);
        assert_eq!(operations_per_second(20_000, 0.0), 0.0);
    }

    #[test]
    fn conservation_holds_when_balances_match_the_flow() {
        let flow = MoneyFlow {
            created: money("3000"),
            credited: money("10.01"),
            debited: money("0.11"),
        };
        // 3000 + 10.01 − 0.11 = 3009.90, spread over three wallets by transfers.
        let balances = [money("1000.00"), money("2000.40"), money("9.50")];
        let conservation = check_conservation(&flow, &balances, 0, 1, 0);
        assert_eq!(conservation.expected, money("3009.90"));
        assert_eq!(conservation.difference, Decimal::ZERO);
        assert!(conservation.ok);
    }

    #[test]
    fn conservation_reports_the_exact_difference() {
        let flow = MoneyFlow {
            created: money("0.1"),
            credited: money("0.2"),
            debited: Decimal::ZERO,
        };
        // The classic float trap: exact decimals see no difference in 0.1 + 0.2 = 0.3 ...
        assert!(check_conservation(&flow, &[money("0.3")], 0, 1, 0).ok);
        // ... and see a single cent too many.
        let off = check_conservation(&flow, &[money("0.31")], 0, 1, 0);
        assert!(!off.ok);
        assert_eq!(off.difference, money("0.01"));
    }

    #[test]
    fn negative_or_unread_wallets_fail_the_check() {
        let flow = MoneyFlow {
            created: money("10"),
            ..MoneyFlow::default()
        };
        let negative = check_conservation(&flow, &[money("11"), money("-1")], 0, 1, 0);
        assert_eq!(negative.difference, Decimal::ZERO);
        assert_eq!(negative.negative_wallets, 1);
        assert!(!negative.ok);
        let unread = check_conservation(&flow, &[money("10")], 1, 1, 0);
        assert!(!unread.ok);
    }

    #[test]
    fn requests_not_sent_count_in_the_total_not_in_what_was_sent() {
        let mut tally = Tally::default();
        tally.record(&attempted(Outcome::Success, 0));
        for _ in 0..3 {
            tally.record(&attempted(
                Outcome::Error(crate::runner::NOT_SENT_KIND.into()),
                0,
            ));
        }
        assert_eq!((tally.total(), tally.sent()), (4, 1));
    }

    #[test]
    fn unknown_outcomes_are_errors_counted_apart_and_replays_are_counted() {
        let mut tally = Tally::default();
        tally.record(&attempted(Outcome::Unknown("transport".into()), 40));
        tally.record(&attempted(Outcome::Unreachable("connect".into()), 30));
        tally.record(&Attempted {
            outcome: Outcome::Success,
            retries: 3,
            replayed: true,
        });
        assert_eq!(tally.errors, 2);
        assert_eq!(tally.unknown_outcomes, 1);
        assert_eq!(tally.replayed, 1);
        assert_eq!(tally.retries, 73);
        assert_eq!(
            tally.error_kinds.get("unknown outcome (transport)"),
            Some(&1)
        );
        assert_eq!(tally.error_kinds.get("connect"), Some(&1));
        let mut merged = Tally::default();
        merged.merge(&tally);
        assert_eq!(merged, tally);
    }

    #[test]
    fn a_difference_with_unknown_outcomes_is_unknown_not_failed() {
        let flow = MoneyFlow {
            created: money("10"),
            ..MoneyFlow::default()
        };
        let unknown = check_conservation(&flow, &[money("12.50")], 0, 1, 2);
        assert_eq!(unknown.verdict, ConservationVerdict::Unknown);
        assert!(!unknown.ok);
        assert_eq!(unknown.unknown_outcomes, 2);
        // Money that adds up is OK whatever was in doubt ...
        let conserved = check_conservation(&flow, &[money("10")], 0, 1, 2);
        assert_eq!(conserved.verdict, ConservationVerdict::Ok);
        assert!(conserved.ok);
        // ... and without unknown outcomes a difference is the server's.
        let failed = check_conservation(&flow, &[money("12.50")], 0, 1, 0);
        assert_eq!(failed.verdict, ConservationVerdict::Failed);
        // A negative or unread wallet fails whatever was in doubt.
        let negative = check_conservation(&flow, &[money("11"), money("-1")], 0, 1, 2);
        assert_eq!(negative.verdict, ConservationVerdict::Failed);
        let unread = check_conservation(&flow, &[money("10")], 1, 1, 2);
        assert_eq!(unread.verdict, ConservationVerdict::Failed);
    }

    #[test]
    fn latency_summary_converts_microseconds_to_milliseconds() -> Result<(), String> {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        for microseconds in 1..=1_000u64 {
            histogram
                .record(microseconds * 100)
                .map_err(|e| e.to_string())?;
        }
        let summary = LatencySummary::from_histogram_microseconds(&histogram);
        assert!(
            (summary.p50_ms - 50.0).abs() < 0.1,
            "p50 {}",
            summary.p50_ms
        );
        assert!(
            (summary.p99_ms - 99.0).abs() < 0.1,
            "p99 {}",
            summary.p99_ms
        );
        assert!(
            (summary.max_ms - 100.0).abs() < 0.1,
            "max {}",
            summary.max_ms
        );
        Ok(())
    }

    fn report_with(operations: Tally, conservation: Conservation) -> Result<Report, String> {
        let histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        Ok(Report {
            url: "http://127.0.0.1:3000".into(),
            run_id: "abc".into(),
            seed: 42,
            workers: 20,
            wallets_requested: 1,
            wallet_creation: Tally::default(),
            wallet_creation_seconds: 0.1,
            operations_requested: 1,
            passed: passed(&Tally::default(), &operations, &conservation),
            operations,
            operations_by_kind: BTreeMap::new(),
            success_rate_percent: 0.0,
            duration_seconds: 1.0,
            operations_per_second: 1.0,
            latency: LatencySummary::from_histogram_microseconds(&histogram),
            money: MoneyFlow::default(),
            conservation,
            lag: BTreeMap::new(),
        })
    }

    #[test]
    fn an_unknown_outcome_is_reported_as_such_not_as_a_server_fault(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut operations = Tally::default();
        operations.record(&attempted(Outcome::Unknown("transport".into()), 61));
        let flow = MoneyFlow {
            created: money("10"),
            ..MoneyFlow::default()
        };
        let conservation = check_conservation(&flow, &[money("9.50")], 0, 1, 1);
        let report = report_with(operations, conservation)?;
        let text = render_text(&report);
        assert!(
            text.contains("errors        1 (unknown outcome (transport): 1)"),
            "{text}"
        );
        assert!(
            text.contains(
                "conservation    UNKNOWN: expected 10  actual 9.50  difference -0.50 \
                 (not checked: 1 requests have unknown outcomes and may account for it)"
            ),
            "{text}"
        );
        assert!(text.contains("result          FAIL"), "{text}");
        let json = serde_json::to_value(&report)?;
        assert_eq!(json["operations"]["unknownOutcomes"], 1);
        assert_eq!(json["operations"]["replayed"], 0);
        assert_eq!(json["conservation"]["verdict"], "unknown");
        assert_eq!(json["conservation"]["ok"], false);
        Ok(())
    }

    #[test]
    fn passing_needs_no_errors_and_conservation() {
        let clean = Tally::default();
        let failing = Tally {
            errors: 1,
            ..Tally::default()
        };
        let ok = check_conservation(&MoneyFlow::default(), &[], 0, 1, 0);
        assert!(passed(&clean, &clean, &ok));
        assert!(!passed(&failing, &clean, &ok));
        assert!(!passed(&clean, &failing, &ok));
    }
}
