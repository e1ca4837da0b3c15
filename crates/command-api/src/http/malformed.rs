//! The message for a body that is not valid JSON: the body's property whose
//! value broke it, when the parser stopped inside one, and what JSON accepts
//! there.
//!
//! serde_json reports where it stopped (line and column) and what it expected,
//! not in which property. `{"amount": +1}`, `01.5`, `.5`, `NaN` and `1.5.3`
//! all break inside a property's value, `"\q"` and a control character inside
//! a text; the client is told that property's name (the body's own property,
//! however deep inside its value the parser stopped) and how JSON writes
//! numbers or texts (RFC 8259 §6 and §7), as it is told the field for every
//! other mistake in a body. A break between values (a comma or a colon
//! missing, the body ending early) is no property's fault and keeps the
//! parser's own words.

use serde_json::error::Category;

use super::body::{GZIP_MAGIC, UTF8_BYTE_ORDER_MARK};

/// Characters of a client's name (a property, a query parameter) quoted back
/// in a message, at most: a longer one is cut, so a refusal stays small
/// whatever the request held.
pub const NAME_SHOWN_MAX: usize = 64;

/// `name` as a message quotes it: cut after [`NAME_SHOWN_MAX`] characters.
pub fn shown(name: &str) -> String {
    match name.char_indices().nth(NAME_SHOWN_MAX) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// What a body too deep is told: serde_json reads at most 128 arrays and
/// objects inside one another (its recursion limit).
const NESTING_ADVICE: &str = "arrays and objects nest at most 128 deep";

/// `Request body is not valid JSON: …`, or `<property> is not valid JSON: …`
/// when the parser stopped inside the value of one of the body's properties.
pub fn not_json_message(body: &[u8], error: &serde_json::Error) -> String {
    let stop = offset(body, error.line(), error.column());
    if let Some(encoding) = not_utf8_advice(body, stop) {
        return format!("Request body is not valid JSON: {encoding}");
    }
    let advice = match break_of(body, stop, error) {
        Break::InValue => {
            "JSON writes a number as digits with an optional fraction and exponent (10, \
             10.50, 1e3; no leading + or 0, bare point, NaN or Infinity) and a text in \
             double quotes"
        }
        Break::InText => {
            "JSON writes a text in double quotes, in UTF-8, with no control character \
             (U+0000 to U+001F) and a backslash only before \", \\, /, b, f, n, r, t, or u \
             and four hex digits (a \\uD800 to \\uDBFF escape followed by a \\uDC00 to \\uDFFF \
             one: a UTF-16 surrogate pair, neither half alone)"
        }
        Break::TooDeep => NESTING_ADVICE,
        Break::Between => return format!("Request body is not valid JSON: {error}"),
    };
    match property_in_progress(&body[..stop]) {
        Some(property) => format!("{} is not valid JSON: {error}; {advice}", shown(&property)),
        None => format!("Request body is not valid JSON: {error}; {advice}"),
    }
}

/// What a body that broke the parser is told when the break is its encoding
/// rather than its JSON: gzip data once decoded (gzip's magic bytes, RFC 1952
/// section 2.3.1), text in UTF-16 or UTF-32 (a byte order mark of theirs, or
/// a NUL byte beside the first character, which JSON text never has: RFC 4627
/// section 3 tells the encodings apart by where the NULs of the first two
/// ASCII characters fall), or a UTF-8 byte order mark where the parser
/// stopped, anywhere but first and once (the one ignored).
fn not_utf8_advice(body: &[u8], stop: usize) -> Option<&'static str> {
    const UTF16_MARKS: [&[u8]; 2] = [b"\xFE\xFF", b"\xFF\xFE"];
    let text = body.trim_ascii_start();
    let wide = text.first() == Some(&0) || text.get(1) == Some(&0);
    let mark_at_stop = [stop.saturating_sub(1), stop].iter().any(|&at| {
        body.get(at..)
            .is_some_and(|rest| rest.starts_with(UTF8_BYTE_ORDER_MARK))
    });
    if text.starts_with(GZIP_MAGIC) {
        Some("it is gzip data: a body is read as JSON once decoded from the one Content-Encoding it is sent with")
    } else if UTF16_MARKS.iter().any(|mark| text.starts_with(mark)) || wide {
        Some("it must be UTF-8 (RFC 8259 section 8.1); UTF-16 and UTF-32 are not read")
    } else if text.starts_with(UTF8_BYTE_ORDER_MARK) || mark_at_stop {
        Some("a byte order mark is ignored only as the body's first bytes, once")
    } else {
        None
    }
}

/// Where the parser broke off, told by its category and its message (serde_json
/// has no public code finer than the category; the tests below pin the texts).
#[derive(Debug, PartialEq, Eq)]
enum Break {
    /// Where a value was to start, or inside a number or a literal (`tru`,
    /// `1.5.3`, `true1`: a value running on into what follows it).
    InValue,
    /// Inside a text: an escape, a control character, bytes that are not UTF-8.
    InText,
    /// More arrays and objects inside one another than serde_json reads.
    TooDeep,
    /// Between values: a comma, a colon or a closing bracket missing, a key
    /// that is not a text, the body ending early, anything after it.
    Between,
}

fn break_of(body: &[u8], stop: usize, error: &serde_json::Error) -> Break {
    if error.classify() == Category::Eof {
        return Break::Between;
    }
    let text = error.to_string();
    let says = |words: &[&str]| words.iter().any(|word| text.starts_with(word));
    if says(&[
        "invalid escape",
        "invalid unicode code point",
        "control character",
        "unexpected end of hex escape",
        "lone leading surrogate",
    ]) {
        Break::InText
    } else if says(&["recursion limit exceeded"]) {
        Break::TooDeep
    } else if says(&[
        "expected value",
        "expected ident",
        "invalid number",
        "number out of range",
    ]) || (says(&["expected `,` or"]) && runs_on(body, stop))
    {
        Break::InValue
    } else {
        Break::Between
    }
}

/// Whether the byte at `stop`, where a comma or a closing bracket was
/// expected, continues the number or literal right before it (`true1`,
/// `1.5.3`, `12e`), rather than a comma or a bracket being left out or wrong
/// (`"x" "amount"`, `[1 2]`, `["a"1]`, `[1[2]]`, `[1,2}`).
fn runs_on(body: &[u8], stop: usize) -> bool {
    // `_` too: a digit separator (`1_000`) runs a number on as a letter does.
    let in_a_token = |byte: &u8| byte.is_ascii_alphanumeric() || b".+-_".contains(byte);
    let before = stop.checked_sub(1).and_then(|before| body.get(before));
    before.is_some_and(in_a_token) && body.get(stop).is_some_and(in_a_token)
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

/// Where a scan of the body's top-level object stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Before the body's opening `{`, or after its closing one.
    Outside,
    /// In the top-level object, between its properties.
    BetweenProperties,
    /// After a top-level key's closing quote, before its colon.
    AfterKey,
    /// In a top-level property's value, at any depth.
    InValue,
}

/// The body's top-level property whose value `prefix` (the body up to where
/// the parser stopped) ends inside, its key decoded from JSON; `None` when the
/// prefix ends anywhere else (between properties, in a key, outside the
/// object).
fn property_in_progress(prefix: &[u8]) -> Option<String> {
    let mut place = Place::Outside;
    // Depth inside the top-level object: 1 at its own level.
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut key: Option<&[u8]> = None;
    for (index, &byte) in prefix.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    if place == Place::BetweenProperties && depth == 1 {
                        key = Some(&prefix[string_start..=index]);
                        place = Place::AfterKey;
                    }
                }
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                string_start = index;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 1 {
                    place = if byte == b'{' {
                        Place::BetweenProperties
                    } else {
                        Place::Outside
                    };
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    place = Place::Outside;
                }
            }
            b':' if depth == 1 && place == Place::AfterKey => place = Place::InValue,
            b',' if depth == 1 && place == Place::InValue => place = Place::BetweenProperties,
            _ => {}
        }
    }
    if place != Place::InValue {
        return None;
    }
    serde_json::from_slice::<String>(key?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        let error = serde_json::from_str::<serde_json::Value>(body).expect_err("malformed");
        not_json_message(body.as_bytes(), &error)
    }

    #[track_caller]
    fn assert_names(body: &str, property: &str) {
        let message = message(body);
        assert!(
            message.starts_with(&format!("{property} is not valid JSON: ")),
            "{body}: {message}"
        );
        assert!(
            message.contains("JSON writes a number"),
            "{body}: {message}"
        );
    }

    #[test]
    fn a_body_in_another_encoding_is_told_so() {
        let told = |body: &[u8]| {
            let error = serde_json::from_slice::<serde_json::Value>(body).expect_err("malformed");
            not_json_message(body, &error)
        };
        let utf16: Vec<u8> = "\u{FEFF}{\"amount\":1}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let utf32: Vec<u8> = b"{\0\0\0}\0\0\0".to_vec();
        for body in [&utf16, &utf32, &b"\xFE\xFF\0{"[..]] {
            assert!(
                told(body).ends_with("UTF-16 and UTF-32 are not read"),
                "{body:?}"
            );
        }
        for body in [
            &b"\xEF\xBB\xBF{}"[..],
            b" \xEF\xBB\xBF{}",
            b"{\"amount\": \xEF\xBB\xBF1}",
            b"{\"amount\": 1}\xEF\xBB\xBF",
        ] {
            assert!(
                told(body).ends_with("as the body's first bytes, once"),
                "{body:?}"
            );
        }
        assert!(told(b"\x1F\x8B\x08\0\0\0").contains("gzip data"));
        // UTF-16 without a byte order mark, whatever its script.
        let chinese: Vec<u8> = "{\"描述\":1}"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert!(told(&chinese).ends_with("UTF-16 and UTF-32 are not read"));
        // NULs inside a UTF-8 text are control characters there.
        let nuls = format!("{{\"description\": \"{}\"}}", "\0".repeat(12));
        assert!(told(nuls.as_bytes()).contains("control character"));
        // A NUL in a text is a control character, not another encoding; a
        // byte order mark inside a text is a character, and another fault is
        // told as such.
        assert!(told(b"{\"description\": \"a\0b\"}").contains("control character"));
        assert!(told(b"{\"description\": \"\xEF\xBB\xBF\", \"amount\": x}")
            .contains("JSON writes a number"));
        assert!(told(b"{\"amount\": x}").contains("JSON writes a number"));
    }

    #[test]
    fn a_malformed_number_or_text_names_its_property_and_json_s_forms() {
        for body in [
            r#"{"amount":+1}"#,
            r#"{"amount": 01.5}"#,
            r#"{"amount": .5}"#,
            r#"{"amount": 1.}"#,
            r#"{"amount": NaN}"#,
            r#"{"amount": Infinity}"#,
            r#"{"amount": 0x10}"#,
            r#"{"amount": true1}"#,
            r#"{"amount": 1.5.3}"#,
            r#"{"amount": 1_000}"#,
            r#"{"amount": tru}"#,
            "{\n  \"description\": \"x\",\n  \"amount\": +1\n}",
            r#"{"description": "a: \"b\", c", "amount": +1}"#,
        ] {
            assert_names(body, "amount");
        }
        assert_names(r#"{"amount": 1, "description": 'rent'}"#, "description");
        assert_names(r#"{"amount": 1, "expiresAt": 2030-01-01}"#, "expiresAt");
    }

    #[test]
    fn the_body_s_own_property_is_named_however_deep_the_break() {
        assert_names(
            r#"{"amount": 1, "description": {"a": {"b": +1}}}"#,
            "description",
        );
        assert_names(r#"{"amount": [{"k": +1}]}"#, "amount");
        let deep = format!(r#"{{"description": {}+1"#, r#"{"a":"#.repeat(100));
        assert_names(&deep, "description");
    }

    #[test]
    fn a_broken_text_names_its_property_and_json_s_text_form() {
        let mut not_utf8 = br#"{"amount": 1, "description": ""#.to_vec();
        not_utf8.extend([0xff, b'"', b'}']);
        for body in [
            br#"{"amount": 1, "description": "\q"}"#.to_vec(),
            b"{\"amount\": 1, \"description\": \"a\nb\"}".to_vec(),
            br#"{"amount": 1, "description": "\ud800"}"#.to_vec(),
            br#"{"amount": 1, "description": "a\udc00"}"#.to_vec(),
            br#"{"amount": 1, "description": "a\ud800b"}"#.to_vec(),
            not_utf8,
        ] {
            let error = serde_json::from_slice::<serde_json::Value>(&body).expect_err("malformed");
            let message = not_json_message(&body, &error);
            assert!(
                message.starts_with("description is not valid JSON: "),
                "{message}"
            );
            assert!(message.contains("JSON writes a text"), "{message}");
            assert!(message.contains("surrogate pair"), "{message}");
            assert!(!message.contains("number"), "{message}");
        }
    }

    #[test]
    fn too_deep_a_body_names_its_property_and_the_limit() {
        let deep = format!(r#"{{"amount": 1, "x": {}1"#, "[".repeat(200));
        let message = message(&deep);
        assert!(
            message.starts_with("x is not valid JSON: recursion limit"),
            "{message}"
        );
        assert!(
            message.ends_with("arrays and objects nest at most 128 deep"),
            "{message}"
        );
    }

    #[test]
    fn a_key_is_named_as_decoded_and_cut_when_long() {
        assert_names(r#"{"descr\"iption": +1}"#, "descr\"iption");
        assert_names(r#"{"a\\\"b": +1}"#, "a\\\"b");
        let long = "k".repeat(10_000);
        let message = message(&format!(r#"{{"{long}": +1}}"#));
        assert!(message.starts_with(&format!("{}… is not", "k".repeat(NAME_SHOWN_MAX))));
        assert!(message.len() < 600, "{}", message.len());
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
            r#"{"amount": 1, "desc"#,
            r#"[{"amount": +1}]"#,
            r#"{"amount":1"#,
            r#"{"description": "x" "amount": 1}"#,
            r#"{"amount": 1,, "x": 2}"#,
            r#"{"amount": 1, "x": [1 2]}"#,
            r#"{"amount": 1 "x": 2}"#,
            r#"{"amount": 1, "x": ["a"1]}"#,
            r#"{"amount": 1, "x": [[1]2]}"#,
            r#"{"amount": 1, "x": [1[2]]}"#,
            r#"{"amount": 1, "x": "b"1}"#,
            r#"{"amount": 1, "x": [1,2}}"#,
        ] {
            let message = message(body);
            assert!(
                message.starts_with("Request body is not valid JSON: "),
                "{body:?}: {message}"
            );
        }
    }
}
