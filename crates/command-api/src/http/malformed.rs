//! The message for a body that is not valid JSON: the property whose value
//! broke it, when the parser stopped inside one, and what that value may be.
//!
//! serde_json reports where it stopped (line and column), not in which
//! property. `{"amount": +1}`, `01.5`, `.5`, `NaN` and `'text'` all stop inside
//! a property's value; the client is told that property's name and the form
//! JSON gives a number or a text (RFC 8259 §6 and §7), as it is for every other
//! mistake in a body.

/// `Request body is not valid JSON: …`, naming the property when the parser
/// stopped in its value.
pub fn not_json_message(body: &[u8], error: &serde_json::Error) -> String {
    let stop = offset(body, error.line(), error.column());
    let prefix = String::from_utf8_lossy(&body[..stop]);
    match property_at_end(&prefix) {
        Some((property, value)) => {
            // The value as written: what was read, and from where the parser
            // stopped on to the next separator.
            let rest = String::from_utf8_lossy(&body[stop..]);
            let rest = rest.split([',', '}', ']', '\n']).next().unwrap_or_default();
            let written = format!("{value}{rest}");
            format!(
                "{property} is not valid JSON: {error}; {}",
                accepted_form(written.trim())
            )
        }
        None => format!("Request body is not valid JSON: {error}"),
    }
}

/// The byte offset of `line` and `column` (both from 1, serde_json counting
/// bytes), clamped to the body.
fn offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = body
        .split_inclusive(|byte| *byte == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(body.len())
}

/// When `prefix` ends inside an object property's value (`"key": partial`,
/// the partial value holding no `,` `{` `}` `[` `]` `:`), the key and the
/// partial value.
fn property_at_end(prefix: &str) -> Option<(&str, &str)> {
    let (before_colon, value) = prefix.rsplit_once(':')?;
    if value.contains([',', '{', '}', '[', ']']) {
        return None;
    }
    let quoted = before_colon.trim_end().strip_suffix('"')?;
    let opening = quoted.rfind('"')?;
    let key = &quoted[opening + 1..];
    if key.is_empty() || key.contains('\\') {
        return None;
    }
    Some((key, value.trim()))
}

/// What the value may look like, from how it starts.
fn accepted_form(value: &str) -> &'static str {
    let number_like = value.is_empty()
        || value.starts_with(|first: char| first.is_ascii_digit() || "+-.NnIi".contains(first));
    if number_like {
        "a number is written as JSON writes it: digits with an optional fraction and \
         exponent (10, 10.50, 1e3), without a leading + or 0, a bare point, NaN or Infinity"
    } else {
        "a text is written in double quotes, with JSON's escapes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        let error = serde_json::from_str::<serde_json::Value>(body).expect_err("malformed");
        not_json_message(body.as_bytes(), &error)
    }

    #[test]
    fn a_malformed_number_names_its_property_and_the_form_of_a_number() {
        for body in [
            r#"{"amount":+1}"#,
            r#"{"amount": 01.5}"#,
            r#"{"amount": .5}"#,
            r#"{"amount": 1.}"#,
            r#"{"amount": NaN}"#,
            r#"{"amount": Infinity}"#,
            r#"{"amount": 0x10}"#,
            "{\n  \"description\": \"x\",\n  \"amount\": +1\n}",
        ] {
            let message = message(body);
            assert!(
                message.starts_with("amount is not valid JSON: "),
                "{body}: {message}"
            );
            assert!(
                message.contains("digits with an optional fraction"),
                "{body}: {message}"
            );
        }
    }

    #[test]
    fn a_malformed_text_names_its_property_and_the_form_of_a_text() {
        let message = message(r#"{"amount": 1, "description": 'rent'}"#);
        assert!(
            message.starts_with("description is not valid JSON: "),
            "{message}"
        );
        assert!(message.contains("double quotes"), "{message}");
    }

    #[test]
    fn a_break_outside_a_value_keeps_the_general_message() {
        for body in [
            "{",
            "[1,",
            r#"{"amount" 1}"#,
            r#"{"a": 1,}"#,
            "",
            "{\"amount\": 1} x",
        ] {
            let message = message(body);
            assert!(
                message.starts_with("Request body is not valid JSON: "),
                "{body:?}: {message}"
            );
        }
    }
}
