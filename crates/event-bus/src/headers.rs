//! Header names on the bus, and reading them back.

use rdkafka::message::{Headers, OwnedHeaders};

pub const HEADER_EVENT_ID: &str = "event-id";
pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_POSITION: &str = "position";
/// The event's `schemaVersion`, as stored.
pub const HEADER_SCHEMA_VERSION: &str = "schema-version";
/// Why a message is on the DLQ.
pub const HEADER_ERROR: &str = "error";
pub const HEADER_SOURCE_TOPIC: &str = "source-topic";
pub const HEADER_SOURCE_PARTITION: &str = "source-partition";
pub const HEADER_SOURCE_OFFSET: &str = "source-offset";
/// The handler that gave up on the message.
pub const HEADER_HANDLER: &str = "handler";

/// On a dead letter put back by a replay: the handler it was replayed for,
/// which takes it even though its wallet is parked.
pub const HEADER_REPLAYED_FOR: &str = "replayed-for";

/// Headers the DLQ (or a replay) adds; a replay (or the DLQ) strips them again.
pub(crate) const DLQ_HEADERS: [&str; 6] = [
    HEADER_REPLAYED_FOR,
    HEADER_ERROR,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_HANDLER,
];

/// Bound on the length of the `error` header (a handler's error can be long).
pub(crate) const ERROR_HEADER_BYTES_MAX: usize = 2_048;

/// Adds `(name, value)` to `headers`.
pub(crate) fn with(headers: OwnedHeaders, name: &str, value: &str) -> OwnedHeaders {
    headers.insert(rdkafka::message::Header {
        key: name,
        value: Some(value),
    })
}

/// A copy of `source` without the headers named in `dropped`.
pub(crate) fn copy_without(source: Option<&OwnedHeaders>, dropped: &[&str]) -> OwnedHeaders {
    let mut copy = OwnedHeaders::new();
    if let Some(source) = source {
        for header in source.iter() {
            if dropped.contains(&header.key) {
                continue;
            }
            copy = copy.insert(rdkafka::message::Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    copy
}

/// The value of the first header named `name`, when it is UTF-8 text.
pub(crate) fn value(source: Option<&OwnedHeaders>, name: &str) -> Option<String> {
    let header = source?.iter().find(|header| header.key == name)?;
    let text = std::str::from_utf8(header.value?).ok()?;
    Some(text.to_owned())
}

/// `text`, cut at a character boundary to at most `bytes_max` bytes.
pub(crate) fn truncated(text: &str, bytes_max: usize) -> &str {
    if text.len() <= bytes_max {
        return text;
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("ééé", 3), "é");
        assert_eq!(truncated("abcdef", 4), "abcd");
    }

    #[test]
    fn copies_drop_the_named_headers() {
        let source = with(with(OwnedHeaders::new(), "keep", "1"), HEADER_ERROR, "boom");
        let copy = copy_without(Some(&source), &DLQ_HEADERS);
        let keys: Vec<&str> = copy.iter().map(|header| header.key).collect();
        assert_eq!(keys, vec!["keep"]);
    }
}
