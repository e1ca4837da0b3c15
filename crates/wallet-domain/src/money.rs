//! Exact money. Every amount is a `rust_decimal::Decimal` with at most
//! [`MONEY_SCALE`] decimal places; floats never touch it.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationError;

/// Decimal places of the wallet currency.
pub const MONEY_SCALE: u32 = 2;

/// The largest amount one operation may move: 1,000,000,000,000.00.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(276_447_232, 23_283, 0, false, MONEY_SCALE);

fn check_scale(field: &'static str, value: Decimal) -> Result<Decimal, ValidationError> {
    let normalized = value.normalize();
    if normalized.scale() > MONEY_SCALE {
        return Err(ValidationError::new(
            field,
            format!("must have at most {MONEY_SCALE} decimal places"),
        ));
    }
    Ok(with_money_scale(normalized))
}

fn with_money_scale(mut value: Decimal) -> Decimal {
    value.rescale(MONEY_SCALE);
    value
}

/// A strictly positive amount of money that one operation moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(Decimal);

impl Amount {
    pub fn parse(field: &'static str, value: Decimal) -> Result<Self, ValidationError> {
        if value <= Decimal::ZERO {
            return Err(ValidationError::new(field, "must be greater than 0"));
        }
        if value > AMOUNT_MAX {
            return Err(ValidationError::new(
                field,
                format!("must be at most {AMOUNT_MAX}"),
            ));
        }
        check_scale(field, value).map(Self)
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = ValidationError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::parse("amount", value)
    }
}

impl From<Amount> for Decimal {
    fn from(amount: Amount) -> Decimal {
        amount.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a wallet holds, always at the money scale. Negative only when the
/// wallet's overdraft limit lets it be (the domain decides that); an opening
/// balance and an overdraft limit, built with [`Balance::opening`] and
/// [`Balance::limit`], are never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Balance(Decimal);

impl Balance {
    pub const ZERO: Balance = Balance(Decimal::from_parts(0, 0, 0, false, MONEY_SCALE));

    /// An opening balance: zero or more, at most [`AMOUNT_MAX`].
    pub fn opening(field: &'static str, value: Decimal) -> Result<Self, ValidationError> {
        if value < Decimal::ZERO {
            return Err(ValidationError::new(field, "must not be negative"));
        }
        if value > AMOUNT_MAX {
            return Err(ValidationError::new(
                field,
                format!("must be at most {AMOUNT_MAX}"),
            ));
        }
        check_scale(field, value).map(Self)
    }

    /// An overdraft limit: zero or more, at most [`AMOUNT_MAX`].
    pub fn limit(field: &'static str, value: Decimal) -> Result<Self, ValidationError> {
        Self::opening(field, value)
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// The balance `text` spells as [`Balance`]'s `Display` writes it (what
    /// the stores keep): an optional `-`, the units without a leading zero
    /// (`0` alone), `.`, and exactly [`MONEY_SCALE`] digits (`-12.50`).
    /// `None` for any other spelling, of the same value included (`1e2`,
    /// `2_00`, `+2.00`, `2.000`, ` 2.00`): such text was not written by a
    /// build, so a reader takes it as damage, not as a value (tester h133 F6).
    pub fn from_stored(text: &str) -> Option<Balance> {
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (units, cents) = unsigned.split_once('.')?;
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        let canonical = digits(units)
            && (units == "0" || !units.starts_with('0'))
            && digits(cents)
            && cents.len() == MONEY_SCALE as usize;
        if !canonical {
            return None;
        }
        text.parse::<Decimal>()
            .ok()
            .and_then(|value| Balance::try_from(value).ok())
    }

    /// `None` when the sum leaves the range a `Decimal` holds exactly.
    pub fn checked_add(self, amount: Amount) -> Option<Balance> {
        self.0
            .checked_add(amount.0)
            .map(|sum| Balance(with_money_scale(sum)))
    }

    /// `None` when the difference leaves the range a `Decimal` holds exactly;
    /// it may be negative: whether it is allowed is the domain's decision.
    pub fn checked_sub(self, amount: Amount) -> Option<Balance> {
        self.0
            .checked_sub(amount.0)
            .map(|difference| Balance(with_money_scale(difference)))
    }

    /// `self + other`, `None` out of the range a `Decimal` holds exactly.
    pub fn checked_plus(self, other: Balance) -> Option<Balance> {
        self.0
            .checked_add(other.0)
            .map(|sum| Balance(with_money_scale(sum)))
    }

    /// `self − other`, held at the bounds of a `Decimal` rather than
    /// overflowing (a balance and a held balance are far inside them); it
    /// may be negative (an available balance within an overdraft).
    pub fn saturating_minus(self, other: Balance) -> Balance {
        Balance(with_money_scale(self.0.saturating_sub(other.0)))
    }
}

impl TryFrom<Decimal> for Balance {
    type Error = ValidationError;
    /// Any balance at the money scale, negative included (an overdrawn wallet's).
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        check_scale("balance", value).map(Self)
    }
}

/// An amount is a balance (positive, at the money scale, within range).
impl From<Amount> for Balance {
    fn from(amount: Amount) -> Balance {
        Balance(amount.0)
    }
}

impl From<Balance> for Decimal {
    fn from(balance: Balance) -> Decimal {
        balance.0
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// Money is written as a JSON number with its exact digits (`150.00`), never
// as a string and never through a float.
macro_rules! exact_json_number {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                rust_decimal::serde::arbitrary_precision::serialize(&self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = rust_decimal::serde::arbitrary_precision::deserialize(deserializer)?;
                $name::try_from(value).map_err(D::Error::custom)
            }
        }
    };
}

exact_json_number!(Amount);
exact_json_number!(Balance);

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn decimal(text: &str) -> Decimal {
        Decimal::from_str(text).expect("test decimal must parse")
    }

    #[test]
    fn a_stored_balance_reads_back_only_as_display_writes_it() {
        for written in ["0.00", "-0.00", "12.50", "-12.50", "1000000000000.00"] {
            let balance = Balance::from_stored(written).expect(written);
            assert_eq!(balance.value(), decimal(written), "{written}");
        }
        for value in ["0", "-5", "12.5", "99.99", "-100000.01"] {
            let written = Balance::try_from(decimal(value)).expect(value).to_string();
            assert_eq!(
                Balance::from_stored(&written).map(|balance| balance.to_string()),
                Some(written)
            );
        }
        for other in [
            "1e2", "2_00", "+2.00", "2.000", "2.0", "2", " 2.00", "2.00 ", "02.00", "-", ".00",
            "2.", "--2.00", "2.0a", "", "NaN", "1.00e0",
        ] {
            assert_eq!(Balance::from_stored(other), None, "{other:?}");
        }
    }

    #[test]
    fn amount_max_is_one_trillion() {
        assert_eq!(AMOUNT_MAX, decimal("1000000000000.00"));
    }

    #[test]
    fn amount_accepts_cents_and_keeps_them_exact() {
        let amount = Amount::parse("amount", decimal("0.1")).expect("0.1 is valid");
        assert_eq!(amount.value().to_string(), "0.10");
        assert!(Amount::parse("amount", decimal("10.500")).is_ok());
        assert!(Amount::parse("amount", AMOUNT_MAX).is_ok());
    }

    #[test]
    fn amount_rejects_zero_negative_too_precise_and_too_large() {
        for text in ["0", "-1", "0.001", "1000000000000.01"] {
            let error = Amount::parse("amount", decimal(text)).expect_err("amount must be refused");
            assert_eq!(error.field, "amount", "{text}");
        }
    }

    #[test]
    fn opening_balance_may_be_zero_but_not_negative() {
        assert_eq!(
            Balance::opening("initialBalance", Decimal::ZERO).expect("zero is valid"),
            Balance::ZERO
        );
        assert!(Balance::opening("initialBalance", decimal("-0.01")).is_err());
    }

    #[test]
    fn subtraction_may_go_below_zero_and_keeps_the_scale() {
        let balance = Balance::opening("b", decimal("5")).expect("valid");
        let amount = Amount::parse("a", decimal("5.01")).expect("valid");
        let after = balance.checked_sub(amount).expect("in range");
        assert_eq!(after.value().to_string(), "-0.01");
        assert_eq!(Balance::try_from(decimal("-0.01")), Ok(after));
    }

    #[test]
    fn a_limit_is_never_negative() {
        assert!(Balance::limit("overdraftLimit", decimal("-1")).is_err());
        assert!(Balance::limit("overdraftLimit", decimal("100.00")).is_ok());
    }
}
