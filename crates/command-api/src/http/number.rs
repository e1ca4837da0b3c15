//! JSON numbers read exactly: the digits of the text and its exponent become
//! a `Decimal` with no rounding, or the number is refused.
//!
//! `rust_decimal`'s own scientific parser rounds once the digits pass its
//! precision (`0.000000000000000000000000000149e28` became 1), so the
//! mantissa and the exponent are combined here as integers: the value is
//! `mantissa × 10^(exponent − fraction digits)`, trailing zeros of the
//! mantissa are moved into the exponent, and what is left must fit a
//! `Decimal` (at most [`DECIMAL_DIGITS_MAX`] significant digits, at most
//! [`DECIMAL_SCALE_MAX`] decimal places).

use rust_decimal::Decimal;

/// Decimal places a `Decimal` holds.
pub const DECIMAL_SCALE_MAX: u32 = 28;
/// Significant digits read from a number's text: a `Decimal` holds at most
/// 29; more are refused (after trailing zeros are moved into the exponent).
pub const DECIMAL_DIGITS_MAX: usize = 29;

/// Why a number's text cannot be read exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is not a number")]
    Malformed,
    #[error(
        "has more than {DECIMAL_DIGITS_MAX} significant digits or is too large to be read exactly"
    )]
    TooLarge,
    #[error("has more than {DECIMAL_SCALE_MAX} decimal places and cannot be read exactly")]
    TooPrecise,
}

/// The exact value of a JSON number's text (`-12.5`, `1e2`, `0.149E+1`, ...).
pub fn parse_exact(text: &str) -> Result<Decimal, NumberError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (significand, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (integer, fraction) = significand.split_once('.').unwrap_or((significand, ""));
    let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if integer.is_empty() || !all_digits(integer) || !all_digits(fraction) {
        return Err(NumberError::Malformed);
    }
    let digits = format!("{integer}{fraction}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        // Zero in any notation, whatever the size of its exponent.
        return match exponent.map(parse_exponent) {
            Some(Err(NumberError::Malformed)) => Err(NumberError::Malformed),
            _ => Ok(Decimal::ZERO),
        };
    }
    if trimmed.len() > DECIMAL_DIGITS_MAX {
        return Err(NumberError::TooLarge);
    }
    let exponent = exponent.map_or(Ok(0), parse_exponent)?;
    // value = trimmed × 10^power
    let power = exponent
        .checked_sub(fraction.len() as i64)
        .and_then(|power| power.checked_add((significant.len() - trimmed.len()) as i64))
        .ok_or(NumberError::TooLarge)?;
    let mantissa: i128 = trimmed.parse().map_err(|_| NumberError::TooLarge)?;
    let mantissa = if negative { -mantissa } else { mantissa };
    if power >= 0 {
        let factor = u32::try_from(power)
            .ok()
            .and_then(|power| 10_i128.checked_pow(power))
            .ok_or(NumberError::TooLarge)?;
        let value = mantissa.checked_mul(factor).ok_or(NumberError::TooLarge)?;
        Decimal::try_from_i128_with_scale(value, 0).map_err(|_| NumberError::TooLarge)
    } else {
        let scale = u32::try_from(power.unsigned_abs())
            .ok()
            .filter(|scale| *scale <= DECIMAL_SCALE_MAX)
            .ok_or(NumberError::TooPrecise)?;
        Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| NumberError::TooLarge)
    }
}

/// An exponent's text (`+5`, `-12`, `7`); one too long for an `i64` is out of range.
fn parse_exponent(text: &str) -> Result<i64, NumberError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(NumberError::Malformed);
    }
    let magnitude: i64 = digits.parse().map_err(|_| {
        if negative {
            NumberError::TooPrecise
        } else {
            NumberError::TooLarge
        }
    })?;
    Ok(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use proptest::prelude::*;

    use super::*;

    fn exact(text: &str) -> Decimal {
        parse_exact(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn decimal(text: &str) -> Decimal {
        Decimal::from_str(text).expect("test decimal")
    }

    #[test]
    fn exponent_forms_are_not_rounded() {
        assert_eq!(
            exact("0.000000000000000000000000000149e28"),
            decimal("1.49")
        );
        assert_eq!(exact("0.00000000000000000000000000999e28"), decimal("99.9"));
        assert_eq!(
            exact("0.00000000000000000000000001001e26"),
            decimal("1.001")
        );
        assert_eq!(exact("1e2"), decimal("100"));
        assert_eq!(exact("1E+2"), decimal("100"));
        assert_eq!(exact("12.5e-1"), decimal("1.25"));
        assert_eq!(exact("-0.5"), decimal("-0.5"));
        assert_eq!(exact("100.00"), decimal("100"));
        assert_eq!(
            exact("1500000000000000000000000000000e-18"),
            decimal("1500000000000")
        );
    }

    #[test]
    fn zero_is_zero_in_every_notation() {
        for text in ["0", "-0", "0.000", "0e999999999999999999999", "0.0E-5"] {
            assert_eq!(exact(text), Decimal::ZERO, "{text}");
        }
    }

    #[test]
    fn what_a_decimal_cannot_hold_is_refused_not_rounded() {
        assert_eq!(parse_exact("1e400"), Err(NumberError::TooLarge));
        assert_eq!(parse_exact("1e-40"), Err(NumberError::TooPrecise));
        assert_eq!(
            parse_exact("1e-99999999999999999999"),
            Err(NumberError::TooPrecise)
        );
        assert_eq!(
            parse_exact("1e99999999999999999999"),
            Err(NumberError::TooLarge)
        );
        let digits = format!("0.{}", "1".repeat(40));
        assert_eq!(parse_exact(&digits), Err(NumberError::TooLarge));
        assert_eq!(
            parse_exact("79228162514264337593543950336"),
            Err(NumberError::TooLarge)
        );
        assert_eq!(parse_exact("x"), Err(NumberError::Malformed));
        assert_eq!(parse_exact("1e"), Err(NumberError::Malformed));
    }

    /// `value` printed plain and in exponent forms whose digits are shifted
    /// `shift` places (leading zeros after the point, or trailing zeros).
    fn notations(value: Decimal, shift: i64) -> Vec<String> {
        let plain = value.abs().to_string();
        let (integer, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
        let sign = if value.is_sign_negative() { "-" } else { "" };
        let digits = format!("{integer}{fraction}");
        let scale = fraction.len() as i64;
        let zeros = "0".repeat(shift as usize);
        let padded = format!("0.{zeros}{digits}");
        let padded_exponent = digits.len() as i64 + shift - scale;
        let trailing = format!("{digits}{zeros}");
        let trailing_exponent = -scale - shift;
        vec![
            format!("{sign}{plain}"),
            format!("{sign}{padded}e{padded_exponent}"),
            format!("{sign}{padded}E+{padded_exponent}"),
            format!("{sign}{trailing}e{trailing_exponent}"),
            format!("{sign}{digits}E{}", -scale),
        ]
    }

    proptest! {
        #[test]
        fn every_notation_of_a_decimal_parses_back_equal(
            mantissa in -(10_i64.pow(17))..10_i64.pow(17),
            scale in 0_u32..=10,
            shift in 0_i64..=12,
        ) {
            let value = Decimal::new(mantissa, scale);
            for text in notations(value, shift) {
                prop_assert_eq!(parse_exact(&text), Ok(value), "{}", text);
            }
        }
    }
}
