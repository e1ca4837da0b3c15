//! The planned work of a run, decided up front from a seeded random generator so that the
//! same `--seed` replays the same operations. Pure: no I/O here.

use rand::Rng;
use rust_decimal::Decimal;

/// Share of each operation kind, in percent of all operations; the rest are transfers.
pub const CREDIT_PERCENT: u32 = 35;
pub const DEBIT_PERCENT: u32 = 35;

/// Amounts are drawn uniformly in cents: 0.01 to 100.00.
pub const AMOUNT_CENTS_MIN: i64 = 1;
pub const AMOUNT_CENTS_MAX: i64 = 10_000;
pub const AMOUNT_SCALE: u32 = 2;

/// One planned operation; wallets are referred to by their index in the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Credit {
        wallet: usize,
        amount: Decimal,
    },
    Debit {
        wallet: usize,
        amount: Decimal,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: Decimal,
    },
}

impl Operation {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Operation::Credit { .. } => "credit",
            Operation::Debit { .. } => "debit",
            Operation::Transfer { .. } => "transfer",
        }
    }
}

pub fn wallet_id(run_id: &str, index: usize) -> String {
    format!("load-{run_id}-{index}")
}

pub fn owner_id(run_id: &str, index: usize) -> String {
    format!("owner-{run_id}-{index}")
}

pub fn random_amount(rng: &mut impl Rng) -> Decimal {
    let cents = rng.random_range(AMOUNT_CENTS_MIN..=AMOUNT_CENTS_MAX);
    Decimal::new(cents, AMOUNT_SCALE)
}

/// Draws one operation on `wallet_count` wallets. With a single wallet there is nobody to
/// transfer to, so the transfer share becomes credits.
pub fn random_operation(rng: &mut impl Rng, wallet_count: usize) -> Operation {
    assert!(wallet_count > 0, "a workload needs at least one wallet");
    let roll = rng.random_range(0..100u32);
    let wallet = rng.random_range(0..wallet_count);
    let amount = random_amount(rng);
    if roll < CREDIT_PERCENT || (wallet_count == 1 && roll >= CREDIT_PERCENT + DEBIT_PERCENT) {
        Operation::Credit { wallet, amount }
    } else if roll < CREDIT_PERCENT + DEBIT_PERCENT {
        Operation::Debit { wallet, amount }
    } else {
        // Draw among the other wallets, then skip over `wallet`, so `to != from` always.
        let other = rng.random_range(0..wallet_count - 1);
        let to = if other >= wallet { other + 1 } else { other };
        Operation::Transfer {
            from: wallet,
            to,
            amount,
        }
    }
}

pub fn plan_operations(
    rng: &mut impl Rng,
    wallet_count: usize,
    operation_count: usize,
) -> Vec<Operation> {
    (0..operation_count)
        .map(|_| random_operation(rng, wallet_count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn counts(plan: &[Operation]) -> (usize, usize, usize) {
        let mut credit = 0;
        let mut debit = 0;
        let mut transfer = 0;
        for operation in plan {
            match operation {
                Operation::Credit { .. } => credit += 1,
                Operation::Debit { .. } => debit += 1,
                Operation::Transfer { .. } => transfer += 1,
            }
        }
        (credit, debit, transfer)
    }

    #[test]
    fn mix_follows_the_configured_shares() {
        let mut rng = StdRng::seed_from_u64(7);
        let plan = plan_operations(&mut rng, 1000, 100_000);
        let (credit, debit, transfer) = counts(&plan);
        // Within one percentage point of 35 / 35 / 30 on 100 000 draws.
        assert!((34_000..=36_000).contains(&credit), "credits {credit}");
        assert!((34_000..=36_000).contains(&debit), "debits {debit}");
        assert!(
            (29_000..=31_000).contains(&transfer),
            "transfers {transfer}"
        );
    }

    #[test]
    fn same_seed_gives_the_same_plan() {
        let first = plan_operations(&mut StdRng::seed_from_u64(42), 10, 500);
        let second = plan_operations(&mut StdRng::seed_from_u64(42), 10, 500);
        assert_eq!(first, second);
    }

    #[test]
    fn operations_stay_in_range_with_two_decimal_amounts() {
        let wallet_count = 3;
        let plan = plan_operations(&mut StdRng::seed_from_u64(1), wallet_count, 10_000);
        let minimum = Decimal::new(AMOUNT_CENTS_MIN, AMOUNT_SCALE);
        let maximum = Decimal::new(AMOUNT_CENTS_MAX, AMOUNT_SCALE);
        for operation in &plan {
            let (wallets, amount) = match operation {
                Operation::Credit { wallet, amount } | Operation::Debit { wallet, amount } => {
                    (vec![*wallet], *amount)
                }
                Operation::Transfer { from, to, amount } => {
                    assert_ne!(from, to, "transfer to itself");
                    (vec![*from, *to], *amount)
                }
            };
            assert!(wallets.iter().all(|wallet| *wallet < wallet_count));
            assert!(amount >= minimum && amount <= maximum, "amount {amount}");
            assert!(amount.scale() <= AMOUNT_SCALE);
        }
    }

    #[test]
    fn a_single_wallet_never_transfers() {
        let plan = plan_operations(&mut StdRng::seed_from_u64(3), 1, 1_000);
        let (_, _, transfer) = counts(&plan);
        assert_eq!(transfer, 0);
    }

    #[test]
    fn wallet_ids_carry_the_run_id() {
        assert_eq!(wallet_id("abc", 7), "load-abc-7");
        assert_eq!(owner_id("abc", 7), "owner-abc-7");
    }
}
