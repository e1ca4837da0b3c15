//! The keys of a request body, checked in a pass of their own over its text:
//! a key repeated in one object (a map keeps only the last of two equal keys,
//! so the parsed body cannot tell), and a key `serde_json` reserves for itself.
//!
//! With its `arbitrary_precision` and `raw_value` features (which keep every
//! digit of an amount), `serde_json` reads an object whose key is
//! `$serde_json::private::Number` or `$serde_json::private::RawValue` as the
//! number or the JSON text in its string value. A client writing such a key
//! would have `{"$serde_json::private::RawValue": "{\"amount\":1,\"amount\":900}"}`
//! read as a body whose repeated key no check saw, or an object read as a
//! number, while anything in front of the service reads one unknown key.
//! So a reserved key is refused wherever it is written, at any depth.

use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The prefix of the keys `serde_json` reads as something other than a key.
pub const RESERVED_KEY_PREFIX: &str = "$serde_json::private::";

/// What is wrong with a JSON document's keys, the first found in document order.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// A key written twice in one object.
    Repeated(String),
    /// A key `serde_json` reserves ([`RESERVED_KEY_PREFIX`]).
    Reserved(String),
}

/// The first [`KeyProblem`] of a document, at any depth (`None` when there is none).
pub struct KeyCheck(pub Option<KeyProblem>);

impl<'de> Deserialize<'de> for KeyCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyCheckVisitor)
    }
}

struct KeyCheckVisitor;

impl KeyCheckVisitor {
    fn fine<E>() -> Result<KeyCheck, E> {
        Ok(KeyCheck(None))
    }
}

impl<'de> Visitor<'de> for KeyCheckVisitor {
    type Value = KeyCheck;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Self::fine()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        let mut first = None;
        while let Some(KeyCheck(problem)) = items.next_element()? {
            first = first.or(problem);
        }
        Ok(KeyCheck(first))
    }

    /// Every number of the text arrives here too, as a one-entry map whose key
    /// is the reserved number key and whose value the parser hands over as an
    /// owned string ([`ValueOrigin::Parser`]); a key written in the text never
    /// is (its value, even a string, comes as written).
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        let mut keys = HashSet::new();
        let mut first = None;
        while let Some(key) = entries.next_key::<String>()? {
            if key.starts_with(RESERVED_KEY_PREFIX) {
                if entries.next_value::<ValueOrigin>()? == ValueOrigin::Written {
                    first = first.or(Some(KeyProblem::Reserved(key)));
                }
                continue;
            }
            let KeyCheck(nested) = entries.next_value()?;
            if !keys.insert(key.clone()) {
                first = first.or(Some(KeyProblem::Repeated(key)));
            }
            first = first.or(nested);
        }
        Ok(KeyCheck(first))
    }
}

/// Whether a value under a reserved key is a number's digits the parser
/// made up the entry for, or a value written in the text.
#[derive(Debug, PartialEq, Eq)]
enum ValueOrigin {
    Parser,
    Written,
}

impl<'de> Deserialize<'de> for ValueOrigin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueOriginVisitor)
    }
}

struct ValueOriginVisitor;

impl<'de> Visitor<'de> for ValueOriginVisitor {
    type Value = ValueOrigin;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    /// The parser gives a number's digits as an owned `String`; a string
    /// written in the text comes borrowed or, with escapes, as a `&str`.
    fn visit_string<E: serde::de::Error>(self, _: String) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Parser)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(ValueOrigin::Written)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ValueOrigin::Written)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ValueOrigin::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<KeyProblem> {
        let KeyCheck(problem) = serde_json::from_str(text).expect("valid JSON");
        problem
    }

    #[test]
    fn numbers_in_every_notation_pass() {
        for text in [
            r#"{"amount": 1}"#,
            r#"{"amount": -0.5e-3, "x": [1, 2.50, 1E+2]}"#,
            r#"{"amount": 79228162514264337593543950336}"#,
            "12",
            "[0.1, {\"y\": 3}]",
        ] {
            assert_eq!(check(text), None, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_is_found_at_any_depth() {
        for text in [
            r#"{"amount": 1, "amount": 90}"#,
            r#"{"x": {"amount": 1, "amount": 2}}"#,
            r#"{"x": [{"y": 1}, {"amount": 1, "amount": 2}]}"#,
        ] {
            assert_eq!(
                check(text),
                Some(KeyProblem::Repeated("amount".into())),
                "{text}"
            );
        }
        assert_eq!(check(r#"{"x": [{"amount": 1}, {"amount": 2}]}"#), None);
    }

    #[test]
    fn a_reserved_key_is_found_whatever_its_value_and_however_written() {
        for (text, key) in [
            (
                r#"{"$serde_json::private::RawValue": "{\"amount\":1,\"amount\":900}"}"#,
                "$serde_json::private::RawValue",
            ),
            (
                r#"{"amount": {"$serde_json::private::Number": "2.50"}}"#,
                "$serde_json::private::Number",
            ),
            (
                r#"{"amount": {"\u0024serde_json::private::Number": "2.50"}}"#,
                "$serde_json::private::Number",
            ),
            (
                r#"[{"$serde_json::private::Number": 5}]"#,
                "$serde_json::private::Number",
            ),
            (
                r#"{"x": {"$serde_json::private::Other": {"a": [1]}}}"#,
                "$serde_json::private::Other",
            ),
            (
                r#"{"$serde_json::private::Number": null}"#,
                "$serde_json::private::Number",
            ),
            (
                r#"{"$serde_json::private::Number": "not a number"}"#,
                "$serde_json::private::Number",
            ),
            (
                r#"{"$serde_json::private::RawValue": "{not json"}"#,
                "$serde_json::private::RawValue",
            ),
        ] {
            assert_eq!(
                check(text),
                Some(KeyProblem::Reserved(key.into())),
                "{text}"
            );
        }
    }

    #[test]
    fn the_first_problem_in_document_order_is_reported() {
        assert_eq!(
            check(r#"{"a": 1, "a": 2, "$serde_json::private::Number": "1"}"#),
            Some(KeyProblem::Repeated("a".into()))
        );
        assert_eq!(
            check(r#"{"b": {"$serde_json::private::RawValue": "1"}, "a": 1, "a": 2}"#),
            Some(KeyProblem::Reserved(
                "$serde_json::private::RawValue".into()
            ))
        );
    }
}
