//! Query parameters: one set of rules for every parameter of every endpoint.
//!
//! Each endpoint deserializes its query string into a struct of
//! `Option<String>` (so no value can make the query string itself fail) and
//! reads every field through one function here:
//!
//! - an empty value (`?startDate=`) is an absent one;
//! - text holds no control character and has a length bound;
//! - a wallet id is 1 to 64 characters of `A-Z a-z 0-9 - _`, an owner id 1 to
//!   255 of `A-Z a-z 0-9 - _ . @ : | +` (percent-encoded: `auth0%7C123`);
//! - an integer is decimal digits within its range;
//! - a decimal is digits with an optional fraction (`10.50`);
//! - a date is RFC 3339 (`2026-11-30T12:00:00Z`) or a day (`2026-11-30`): a
//!   start day starts at 00:00Z, an end day includes its whole day;
//! - a start after its end is refused.
//!
//! Every refusal is a [`QueryError`] naming the parameter and the accepted
//! form. The OpenAPI description of each parameter ([`Spec`], [`parameters`])
//! is built from the same patterns and bounds, so the document says exactly
//! what the server accepts (an empty value included).

use std::str::FromStr;
use std::sync::LazyLock;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use futures::future::LocalBoxFuture;
use regex::Regex;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, Required};
use wallet_domain::{IdentifierRule, OwnerId, WalletId};

use super::number;

/// A day of the proleptic Gregorian calendar, `yyyy-mm-dd`: each day in its
/// month, 29 February in leap years only (every fourth year, but not a
/// century's unless divisible by 400). A macro, so the patterns can be
/// `concat!`ed from it.
macro_rules! calendar_day {
    () => {
        r"(?:[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
    };
}
/// `T` (or `t`), a time of day with seconds (no leap second `:60`) and up to
/// nine fraction digits, and an offset: `Z` (or `z`) or `±hh:mm`, each field in
/// its range. RFC 3339 §5.6 allows the lower-case letters.
macro_rules! time_of_day {
    () => {
        r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    };
}

/// A day or an RFC 3339 date-time with seconds and an offset (`Z` or
/// `±hh:mm`): month 01–12, each day in its month (29 February in leap years
/// only), hour 00–23, minute and second 00–59 (no leap second).
pub const DATE_PATTERN: &str = concat!("^", calendar_day!(), "(", time_of_day!(), ")?$");
/// Digits before the decimal point of a decimal parameter, at most, after
/// any leading zeros.
pub const DECIMAL_INTEGER_DIGITS_MAX: usize = 16;
/// Digits after the decimal point of a decimal parameter, at most.
pub const DECIMAL_FRACTION_DIGITS_MAX: usize = 12;

/// An RFC 3339 date-time with seconds and an offset, each field in its range
/// as in [`DATE_PATTERN`].
pub const INSTANT_PATTERN: &str = concat!("^", calendar_day!(), time_of_day!(), "$");
/// The latest year an instant may fall in, in UTC: later ones have no
/// four-digit RFC 3339 form to be answered in.
pub const INSTANT_YEAR_MAX: i32 = 9999;

/// What a date parameter's schema says beyond its pattern.
const DATE_YEARS: &str = "A date, or a real second whose instant in UTC falls in a year from \
                          0000 to 9999 (9999-12-31T23:59:59-01:00 is in 10000)";

static DATE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(DATE_PATTERN).ok());
static INSTANT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(INSTANT_PATTERN).ok());

/// An instant written as [`INSTANT_PATTERN`] says, that is a real moment
/// (no leap second `:60`) whose UTC year has four digits; `None` otherwise.
/// Query dates and body instants are read by this one rule.
pub fn instant(raw: &str) -> Option<DateTime<Utc>> {
    use chrono::{Datelike, Timelike};
    Some(raw)
        .filter(|raw| matches(&INSTANT, raw))
        .and_then(|raw| DateTime::parse_from_rfc3339(raw).ok())
        .map(|at| at.with_timezone(&Utc))
        .filter(|at| at.nanosecond() < 1_000_000_000)
        .filter(|at| (0..=INSTANT_YEAR_MAX).contains(&at.year()))
}
static DECIMAL: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&decimal_pattern()).ok());
/// A JSON number's text (RFC 8259 §6), but that leading zeros are allowed.
static NUMBER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$").ok());

fn decimal_pattern() -> String {
    format!(
        r"^0*[0-9]{{1,{DECIMAL_INTEGER_DIGITS_MAX}}}(\.[0-9]{{1,{DECIMAL_FRACTION_DIGITS_MAX}}})?$"
    )
}

/// A query parameter refused, naming the parameter and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{parameter} must be {accepted}")]
    Invalid {
        parameter: &'static str,
        accepted: String,
    },
    #[error("{parameter} must not contain control characters")]
    ControlCharacter { parameter: &'static str },
    #[error("{start} must not be after {end}")]
    Inverted {
        start: &'static str,
        end: &'static str,
    },
}

fn invalid(parameter: &'static str, accepted: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        parameter,
        accepted: accepted.into(),
    }
}

fn matches(pattern: &LazyLock<Option<Regex>>, raw: &str) -> bool {
    pattern.as_ref().is_some_and(|regex| regex.is_match(raw))
}

/// The value, or `None` when the parameter is absent or empty.
fn present(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().filter(|raw| !raw.is_empty())
}

/// Free text of at most `length_max` characters, with no control character.
pub fn text<'raw>(
    parameter: &'static str,
    raw: &'raw Option<String>,
    length_max: usize,
) -> Result<Option<&'raw str>, QueryError> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    if raw.chars().any(char::is_control) {
        return Err(QueryError::ControlCharacter { parameter });
    }
    if raw.chars().count() > length_max {
        return Err(invalid(
            parameter,
            format!("at most {length_max} characters"),
        ));
    }
    Ok(Some(raw))
}

/// What an id `rule` accepts, in a refusal's words.
fn id_form(rule: &IdentifierRule) -> String {
    format!("an id of {}", rule.described())
}

/// A wallet id.
pub fn wallet_id(
    parameter: &'static str,
    raw: &Option<String>,
) -> Result<Option<WalletId>, QueryError> {
    present(raw)
        .map(|raw| WalletId::parse(raw).map_err(|_| invalid(parameter, id_form(&WalletId::RULE))))
        .transpose()
}

/// An owner id.
pub fn owner_id(
    parameter: &'static str,
    raw: &Option<String>,
) -> Result<Option<OwnerId>, QueryError> {
    present(raw)
        .map(|raw| OwnerId::parse(raw).map_err(|_| invalid(parameter, id_form(&OwnerId::RULE))))
        .transpose()
}

/// The inclusive range of an integer parameter: what it accepts and what
/// the document says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

/// An integer within `bounds`, written in any notation of a JSON number
/// whose value is a whole number (`5`, `5.0`, `0.5e1`, leading zeros
/// allowed), as the document's `"type": "integer"` admits (JSON Schema
/// 2020-12 §6.1.1: a number with a zero fractional part is an integer).
pub fn integer(
    parameter: &'static str,
    raw: &Option<String>,
    bounds: Bounds,
) -> Result<Option<u64>, QueryError> {
    present(raw)
        .map(|raw| {
            Some(raw)
                .filter(|raw| matches(&NUMBER, raw))
                .and_then(|raw| number::parse_exact(raw).ok())
                .filter(|value| value.fract().is_zero())
                .and_then(|value| value.to_u64())
                .filter(|value| (bounds.min..=bounds.max).contains(value))
                .ok_or_else(|| {
                    invalid(
                        parameter,
                        format!("an integer from {} to {}", bounds.min, bounds.max),
                    )
                })
        })
        .transpose()
}

/// [`integer`] as a `usize`, for the bounds that are sizes.
pub fn size(
    parameter: &'static str,
    raw: &Option<String>,
    bounds: Bounds,
) -> Result<Option<usize>, QueryError> {
    Ok(integer(parameter, raw, bounds)?.and_then(|value| usize::try_from(value).ok()))
}

/// A decimal number such as `10.50`.
pub fn decimal(
    parameter: &'static str,
    raw: &Option<String>,
) -> Result<Option<Decimal>, QueryError> {
    present(raw)
        .map(|raw| {
            Some(raw)
                .filter(|raw| matches(&DECIMAL, raw))
                .and_then(|raw| Decimal::from_str_exact(raw).ok())
                .ok_or_else(|| {
                    invalid(
                        parameter,
                        format!(
                            "a decimal number of 0 or more like 10.50 (at most {DECIMAL_INTEGER_DIGITS_MAX} \
                             digits, then at most {DECIMAL_FRACTION_DIGITS_MAX} after the point)"
                        ),
                    )
                })
        })
        .transpose()
}

/// A value that reads itself from text (`FromStr`) exactly as the pattern
/// its [`Kind::Pattern`] documents; `form` says that form in words.
pub fn parsed<T: FromStr>(
    parameter: &'static str,
    raw: &Option<String>,
    form: &str,
) -> Result<Option<T>, QueryError> {
    present(raw)
        .map(|raw| raw.parse().map_err(|_| invalid(parameter, form)))
        .transpose()
}

/// One of the `accepted` names.
pub fn one_of<T: FromStr>(
    parameter: &'static str,
    raw: &Option<String>,
    accepted: &[&str],
) -> Result<Option<T>, QueryError> {
    present(raw)
        .map(|raw| {
            Some(raw)
                .filter(|raw| accepted.contains(raw))
                .and_then(|raw| raw.parse().ok())
                .ok_or_else(|| invalid(parameter, format!("one of {}", accepted.join(", "))))
        })
        .transpose()
}

/// The last nanosecond of a day.
fn end_of_day() -> NaiveTime {
    NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap_or(NaiveTime::MIN)
}

fn date(
    parameter: &'static str,
    raw: &Option<String>,
    time_of_day: NaiveTime,
) -> Result<Option<DateTime<Utc>>, QueryError> {
    present(raw)
        .map(|raw| {
            let parsed = if !matches(&DATE, raw) {
                None
            } else if raw.len() == "YYYY-MM-DD".len() {
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    .map(|day| day.and_time(time_of_day).and_utc())
            } else {
                instant(raw)
            };
            parsed.ok_or_else(|| {
                // A `+` the client did not percent-encode arrives as a space
                // before the offset's `hh:mm`.
                let accepted = if offset_lost_its_plus(raw) {
                    "an RFC 3339 date-time (2026-11-30T12:00:00Z) or a date (2026-11-30); \
                     an offset's + must be sent as %2B in a query, where a bare + is a space"
                } else {
                    "an RFC 3339 date-time (2026-11-30T12:00:00Z) or a date (2026-11-30) \
                     that the calendar has, a real second with at most 9 digits after its \
                     point, in a UTC year from 0000 to 9999"
                };
                invalid(parameter, accepted)
            })
        })
        .transpose()
}

/// Whether `raw` ends with ` hh:mm` after a time of day: an offset whose `+`
/// was sent unencoded and read as a space.
fn offset_lost_its_plus(raw: &str) -> bool {
    raw.rsplit_once(' ').is_some_and(|(date_time, offset)| {
        date_time.contains(['T', 't'])
            && offset.len() == "hh:mm".len()
            && offset.bytes().enumerate().all(|(index, byte)| match index {
                2 => byte == b':',
                _ => byte.is_ascii_digit(),
            })
    })
}

/// The start of a period: a date-time, or a day from its first instant (UTC).
pub fn start_date(
    parameter: &'static str,
    raw: &Option<String>,
) -> Result<Option<DateTime<Utc>>, QueryError> {
    date(parameter, raw, NaiveTime::MIN)
}

/// The end of a period: a date-time, or a day to its last instant (UTC).
pub fn end_date(
    parameter: &'static str,
    raw: &Option<String>,
) -> Result<Option<DateTime<Utc>>, QueryError> {
    date(parameter, raw, end_of_day())
}

/// Refuses a start after its end; either may be absent.
pub fn ordered<T: PartialOrd>(
    (start, from): (&'static str, Option<&T>),
    (end, to): (&'static str, Option<&T>),
) -> Result<(), QueryError> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(QueryError::Inverted { start, end }),
        _ => Ok(()),
    }
}

/// What one query parameter accepts, for the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text of at most this many characters.
    Text(usize),
    /// A wallet id ([`wallet_id`]).
    Id,
    /// An owner id ([`owner_id`]).
    OwnerId,
    Date,
    Decimal,
    Integer(Bounds),
    /// One of these names.
    OneOf(&'static [&'static str]),
    /// Text matching this regular expression (read by [`parsed`]).
    Pattern(&'static str),
}

/// One query parameter as documented.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
}

/// What an empty value is: accepted, and the same as none.
fn empty() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(0))
        .description(Some("empty: the same as absent"))
        .into()
}

fn or_empty(schema: Schema) -> Schema {
    AnyOfBuilder::new().item(schema).item(empty()).into()
}

fn string(pattern: Option<String>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
}

fn schema(kind: Kind) -> Schema {
    match kind {
        // An empty text is within the length and has no control character.
        Kind::Text(length_max) => string(Some(r"^[^\u0000-\u001F\u007F-\u009F]*$".to_owned()))
            .max_length(Some(length_max))
            .into(),
        Kind::Id => or_empty(string(Some(WalletId::RULE.pattern())).into()),
        Kind::OwnerId => or_empty(string(Some(OwnerId::RULE.pattern())).into()),
        Kind::Date => or_empty(
            string(Some(DATE_PATTERN.to_owned()))
                .description(Some(DATE_YEARS))
                .into(),
        ),
        Kind::Decimal => or_empty(string(Some(decimal_pattern())).into()),
        Kind::Pattern(pattern) => or_empty(string(Some(pattern.to_owned())).into()),
        Kind::Integer(bounds) => or_empty(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(bounds.min))
                .maximum(Some(bounds.max))
                .into(),
        ),
        Kind::OneOf(names) => or_empty(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names.iter().copied()))
                .into(),
        ),
    }
}

/// The OpenAPI query parameters of `specs`, every one optional.
pub fn parameters(specs: &[Spec]) -> Vec<Parameter> {
    specs
        .iter()
        .map(|spec| {
            ParameterBuilder::new()
                .name(spec.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(spec.description))
                .schema(Some(RefOr::T(schema(spec.kind))))
                .build()
        })
        .collect()
}

/// Middleware: a query string whose percent-encoded bytes are not UTF-8 is
/// refused (400 naming the parameter) before any handler reads it; the
/// extractor would otherwise replace them with U+FFFD and match on that.
pub fn refuse_undecodable<S>(
    request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    match undecodable_parameter(request.query_string()) {
        None => Box::pin(service.call(request)),
        Some(name) => {
            let refusal = super::ApiError::BadRequest(format!(
                "query parameter {name} must be UTF-8 text: its percent-encoded bytes are not"
            ));
            Box::pin(async move { Ok(request.error_response(refusal)) })
        }
    }
}

/// The name of the first `name=value` pair of `query` whose name or value is
/// not UTF-8 once percent-decoded (as far as its name is text).
fn undecodable_parameter(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = |raw: &str| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
            String::from_utf8(bytes).ok()
        };
        match (decoded(name), decoded(value)) {
            (Some(_), Some(_)) => None,
            (Some(name), None) => Some(name),
            (None, _) => Some(String::from_utf8_lossy(name.as_bytes()).into_owned()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_that_is_not_utf8_once_decoded_is_named() {
        assert_eq!(undecodable_parameter("q=%FF"), Some("q".into()));
        assert_eq!(undecodable_parameter("limit=5&q=a%FEb"), Some("q".into()));
        assert_eq!(undecodable_parameter("q=caf%C3%A9&limit=5"), None);
        assert_eq!(undecodable_parameter(""), None);
        assert!(undecodable_parameter("%FF=1").is_some());
    }

    fn some(raw: &str) -> Option<String> {
        Some(raw.to_owned())
    }

    fn message(error: QueryError) -> String {
        error.to_string()
    }

    #[test]
    fn an_empty_value_is_an_absent_one() {
        let empty = some("");
        assert_eq!(start_date("startDate", &empty), Ok(None));
        assert_eq!(integer("limit", &empty, ONE_TO_FIVE), Ok(None));
        assert_eq!(wallet_id("walletId", &empty), Ok(None));
        assert_eq!(decimal("minAmount", &empty), Ok(None));
        assert_eq!(text("q", &empty, 10), Ok(None));
        assert_eq!(one_of::<u8>("type", &empty, &["1"]), Ok(None));
    }

    #[test]
    fn a_day_covers_its_whole_day_and_a_date_time_keeps_its_instant() {
        let day = some("2026-11-30");
        let start = start_date("startDate", &day).expect("day").expect("some");
        let end = end_date("endDate", &day).expect("day").expect("some");
        assert_eq!(start.to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-30T23:59:59.999999999+00:00");
        assert_eq!(
            ordered(("startDate", Some(&start)), ("endDate", Some(&end))),
            Ok(())
        );
        let offset = end_date("endDate", &some("2026-11-30T12:00:00.5+02:00"))
            .expect("rfc 3339")
            .expect("some");
        assert_eq!(offset.to_rfc3339(), "2026-11-30T10:00:00.500+00:00");
    }

    #[test]
    fn lower_case_t_and_z_are_rfc_3339_too() {
        for raw in [
            "2026-12-02t01:30:38.991z",
            "2026-12-02T01:30:38.991z",
            "2026-12-02t01:30:38.991Z",
        ] {
            let at = instant(raw).unwrap_or_else(|| panic!("{raw} is RFC 3339 (§5.6)"));
            assert_eq!(at.to_rfc3339(), "2026-12-02T01:30:38.991+00:00", "{raw}");
            assert!(start_date("from", &some(raw)).is_ok(), "{raw}");
        }
    }

    #[test]
    fn an_offset_whose_plus_became_a_space_is_refused_with_the_encoding_to_use() {
        let error = start_date("at", &some("2026-12-02T01:30:38.991 01:00")).expect_err("space");
        assert!(message(error).contains("%2B"));
        for raw in [
            "2026-12-02T25:00:00Z",
            "2030-01-01 00:00:00Z",
            "2030-01-01 00:00",
        ] {
            let error = start_date("at", &some(raw)).expect_err(raw);
            assert!(!message(error).contains("%2B"), "{raw}");
        }
    }

    /// The document's patterns refuse every field out of its range, as the
    /// server does: a client validating against them is refused nothing more.
    #[test]
    fn the_documented_patterns_refuse_fields_out_of_range() {
        for raw in [
            "2026-00-01",
            "2026-13-01",
            "2026-11-00",
            "2026-11-32",
            "2026-11-30T24:00:00Z",
            "2026-11-30T12:60:00Z",
            "2026-11-30T12:00:60Z",
            "2026-11-30T12:00:00+24:00",
            "2026-11-30T12:00:00+02:60",
            "2026-02-29",
            "2026-02-30",
            "2026-04-31",
            "2026-06-31",
            "2026-09-31",
            "2026-11-31",
            "2100-02-29",
            "1900-02-29T00:00:00Z",
        ] {
            assert!(!matches(&DATE, raw), "{raw}");
            let instant = if raw.contains('T') {
                raw.to_owned()
            } else {
                format!("{raw}T00:00:00Z")
            };
            assert!(!matches(&INSTANT, &instant), "{instant}");
        }
        for raw in [
            "2026-12-31",
            "2026-01-01T23:59:59.999999999+23:59",
            "2026-11-30T00:00:00Z",
            "2024-02-29",
            "2000-02-29",
            "2026-02-28",
            "2026-03-31",
            "2026-04-30",
        ] {
            assert!(matches(&DATE, raw), "{raw}");
            let written = if raw.contains('T') {
                raw.to_owned()
            } else {
                format!("{raw}T00:00:00Z")
            };
            assert!(
                instant(&written).is_some(),
                "the pattern and the parser agree: {written}"
            );
        }
        assert!(matches(&INSTANT, "2026-11-30T00:00:00-12:00"));
    }

    /// Every month's days, in years of every kind of leap rule: the day
    /// pattern admits a day exactly when the calendar has it.
    #[test]
    fn the_day_pattern_is_the_calendar() {
        let years = (1896..=2404).chain([0, 4, 100, 400, 9996, 9999]);
        for year in years {
            for month in 1..=12 {
                for day in 1..=31 {
                    let raw = format!("{year:04}-{month:02}-{day:02}");
                    assert_eq!(
                        matches(&DATE, &raw),
                        NaiveDate::from_ymd_opt(year, month, day).is_some(),
                        "{raw}"
                    );
                }
            }
        }
    }

    #[test]
    fn dates_outside_the_documented_form_are_refused_by_name() {
        for raw in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-11-30 12:00:00Z",
            "2026-11-30T12:00:00",
            "+2026-11-30",
            "2026-11-30T24:00:00Z",
            "2026-11-30T12:60:00Z",
            "2026-11-30T12:00:60Z",
            "2026-11-30T12:00:00+24:00",
        ] {
            let error = start_date("startDate", &some(raw)).expect_err(raw);
            assert!(
                message(error).starts_with("startDate must be an RFC 3339 date-time"),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_start_after_its_end_is_refused() {
        let error = ordered(("startDate", Some(&2)), ("endDate", Some(&1))).expect_err("inverted");
        assert_eq!(message(error), "startDate must not be after endDate");
        assert_eq!(ordered(("from", None), ("to", Some(&1))), Ok(()));
    }

    const ONE_TO_FIVE: Bounds = Bounds { min: 1, max: 5 };

    #[test]
    fn integers_say_their_range() {
        for raw in [
            "0",
            "6",
            "-1",
            "+1",
            "1.5",
            "1e1",
            "1.",
            ".5",
            "1e400",
            "0.1e-400",
            "99999999999999999999999",
            " 1",
        ] {
            let error = integer("limit", &some(raw), ONE_TO_FIVE).expect_err(raw);
            assert_eq!(
                message(error),
                "limit must be an integer from 1 to 5",
                "{raw}"
            );
        }
        assert_eq!(integer("limit", &some("5"), ONE_TO_FIVE), Ok(Some(5)));
        // Every notation of a whole number the schema's "integer" admits.
        for raw in ["5.0", "5.000", "0.5e1", "5E0", "50e-1", "0.05e+2"] {
            assert_eq!(
                integer("limit", &some(raw), ONE_TO_FIVE),
                Ok(Some(5)),
                "{raw}"
            );
        }
        assert_eq!(
            size("offset", &some("-0"), Bounds { min: 0, max: 9 }),
            Ok(Some(0))
        );
        // Leading zeros, however many, are the same number.
        let zeros = "0".repeat(40);
        assert_eq!(
            integer("limit", &some(&format!("{zeros}5")), ONE_TO_FIVE),
            Ok(Some(5))
        );
        assert_eq!(
            size("offset", &some(&zeros), Bounds { min: 0, max: 9 }),
            Ok(Some(0))
        );
        assert!(
            integer("limit", &some(""), ONE_TO_FIVE).is_ok(),
            "empty: absent"
        );
        assert_eq!(
            size("offset", &some("0"), Bounds { min: 0, max: 9 }),
            Ok(Some(0))
        );
    }

    #[test]
    fn text_refuses_control_characters_and_length() {
        let error = text("q", &some("a\u{0}b"), 10).expect_err("control");
        assert_eq!(message(error), "q must not contain control characters");
        assert!(text("q", &some("a\u{85}b"), 10).is_err());
        assert!(text("q", &some("abc"), 2).is_err());
        assert_eq!(text("q", &some("é✓"), 2), Ok(Some("é✓")));
    }

    #[test]
    fn decimals_ids_and_names() {
        assert_eq!(
            decimal("minAmount", &some("10.50")).expect("decimal"),
            Some(Decimal::new(1050, 2))
        );
        for raw in [
            "1e3",
            "-1",
            "1_000",
            ".5",
            "5.",
            "NaN",
            "12345678901234567.5",
        ] {
            assert!(decimal("minAmount", &some(raw)).is_err(), "{raw}");
        }
        let padded = format!("{}10.50", "0".repeat(40));
        assert_eq!(
            decimal("minAmount", &some(&padded)).expect("leading zeros"),
            Some(Decimal::new(1050, 2))
        );
        let error = wallet_id("after", &some("a b")).expect_err("id");
        assert!(message(error).starts_with("after must be an id"));
        let error = one_of::<ledger::TransactionType>("transactionType", &some("X"), &["CREDIT"])
            .expect_err("name");
        assert_eq!(message(error), "transactionType must be one of CREDIT");
    }

    #[test]
    fn the_document_uses_the_patterns_the_server_uses() {
        let specs = [
            Spec {
                name: "startDate",
                description: "d",
                kind: Kind::Date,
            },
            Spec {
                name: "limit",
                description: "l",
                kind: Kind::Integer(Bounds { min: 1, max: 500 }),
            },
        ];
        let json = serde_json::to_value(parameters(&specs)).expect("json");
        assert_eq!(json[0]["schema"]["anyOf"][0]["pattern"], DATE_PATTERN);
        assert_eq!(json[0]["schema"]["anyOf"][1]["maxLength"], 0);
        assert_eq!(json[1]["schema"]["anyOf"][0]["minimum"], 1);
        assert_eq!(json[1]["schema"]["anyOf"][0]["maximum"], 500);
        assert_eq!(json[1]["required"], false);
    }
}
