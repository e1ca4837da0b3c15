//! Identifiers and free text, validated on construction.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

pub const IDENTIFIER_LENGTH_MAX: usize = 64;
pub const DESCRIPTION_LENGTH_MAX: usize = 500;
/// Longest hold id, in characters: the rule of a ledger reference id.
pub const HOLD_ID_LENGTH_MAX: usize = IDENTIFIER_LENGTH_MAX * 2;

/// The text of a UUID in the one spelling the server writes its own ids in
/// (an event's, a transfer's): lower case, hyphenated. `None` when `text`
/// does not read as a UUID in any spelling the `uuid` crate accepts (upper
/// case, no hyphens, braces, `urn:uuid:`; RFC 9562 §4 reads them alike).
/// Ids clients choose (wallets', holds') are not UUIDs to the server: they
/// keep their case and are compared as written.
pub fn server_id_spelling(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}

fn parse_identifier(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.chars().count() > IDENTIFIER_LENGTH_MAX {
        return Err(ValidationError::new(
            field,
            format!("must be at most {IDENTIFIER_LENGTH_MAX} characters"),
        ));
    }
    if !raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ValidationError::new(
            field,
            "may contain only letters, digits, '-' and '_'",
        ));
    }
    Ok(raw.to_owned())
}

macro_rules! identifier {
    ($name:ident, $field:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                parse_identifier($field, raw).map(Self)
            }

            /// As [`Self::parse`], the error naming `field` (as the request
            /// spells it, e.g. `toWalletId`).
            pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
                parse_identifier(field, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(WalletId, "walletId");
identifier!(OwnerId, "ownerId");

/// The id of a hold: 1 to [`HOLD_ID_LENGTH_MAX`] characters, none of them a
/// control character (the rule of a ledger reference id, which a hold's id
/// becomes). Unique across every wallet: the event store's hold directory
/// keeps it so.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HoldId(String);

impl HoldId {
    /// A hold id, the error naming `holdId`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let fits = !raw.is_empty() && raw.chars().count() <= HOLD_ID_LENGTH_MAX;
        if fits && !raw.chars().any(char::is_control) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValidationError::new(
                "holdId",
                format!("must be 1 to {HOLD_ID_LENGTH_MAX} characters, none a control character"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HoldId {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<HoldId> for String {
    fn from(id: HoldId) -> String {
        id.0
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Free text a client attaches to an operation: at most
/// [`DESCRIPTION_LENGTH_MAX`] characters, none of them refused by
/// [`refused_in_description`].
///
/// Deserialized (from stored events) with the length rule only: events
/// stored before the control-character rule must still be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    /// A description from input: refused when too long or holding a
    /// character [`refused_in_description`] names.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if let Some(position) = raw.chars().position(refused_in_description) {
            return Err(ValidationError::new(
                "description",
                format!(
                    "must not contain control characters (U+0000 to U+001F, U+007F to U+009F), \
                     line or paragraph separators (U+2028, U+2029) or bidirectional embedding, \
                     override or isolate controls (U+202A to U+202E, U+2066 to U+2069); found \
                     one at character {}",
                    position + 1
                ),
            ));
        }
        Self::bounded(raw.to_owned())
    }

    fn bounded(raw: String) -> Result<Self, ValidationError> {
        if raw.chars().count() > DESCRIPTION_LENGTH_MAX {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {DESCRIPTION_LENGTH_MAX} characters"),
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a description may not hold `character`:
/// - a control character (U+0000 to U+001F, U+007F to U+009F): NUL cannot be
///   stored in PostgreSQL text, and the others break logs and terminals;
/// - a line or paragraph separator (U+2028, U+2029): a line break in one
///   line of a statement or an export;
/// - a bidirectional embedding, override or isolate control (U+202A to
///   U+202E, U+2066 to U+2069): a payer's description shows in the payee's
///   history, and these make text display in another order than it is
///   stored ("Trojan Source", CVE-2021-42574). The marks that only hint at a
///   direction (U+200E, U+200F, U+061C) stay allowed.
pub fn refused_in_description(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// What a stored event holds: only the length is checked (see [`Description`]).
impl TryFrom<String> for Description {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::bounded(raw)
    }
}

impl From<Description> for String {
    fn from(description: Description) -> String {
        description.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_spelling_of_a_uuid_reads_as_the_servers() {
        let servers = "01a24158-fcc3-7000-8000-00000000abcd";
        for text in [
            servers,
            "01A24158-FCC3-7000-8000-00000000ABCD",
            "01a24158fcc37000800000000000abcd",
            "{01a24158-fcc3-7000-8000-00000000abcd}",
            "urn:uuid:01a24158-fcc3-7000-8000-00000000abcd",
        ] {
            assert_eq!(
                super::server_id_spelling(text).as_deref(),
                Some(servers),
                "{text}"
            );
        }
        for text in ["w-1", "01a24158-fcc3-7000-8000-00000000abc", ""] {
            assert_eq!(super::server_id_spelling(text), None, "{text}");
        }
    }

    use super::*;

    #[test]
    fn wallet_id_accepts_the_allowed_alphabet() {
        assert!(WalletId::parse("wallet-123_ABC").is_ok());
        assert!(WalletId::parse(&"a".repeat(IDENTIFIER_LENGTH_MAX)).is_ok());
    }

    #[test]
    fn wallet_id_rejects_empty_long_and_foreign_characters() {
        assert!(WalletId::parse("").is_err());
        assert!(WalletId::parse(&"a".repeat(IDENTIFIER_LENGTH_MAX + 1)).is_err());
        assert!(WalletId::parse("wallet 1").is_err());
        assert!(WalletId::parse("wallet/1").is_err());
        assert!(WalletId::parse("wället").is_err());
    }

    #[test]
    fn owner_id_errors_name_the_field() {
        let error = OwnerId::parse("").expect_err("empty owner id must be refused");
        assert_eq!(error.field, "ownerId");
    }

    #[test]
    fn control_characters_are_refused_in_every_text_input() {
        for text in [
            "a\u{0}b",
            "line\nbreak",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let error = Description::parse(text).expect_err("control character");
            assert_eq!(error.field, "description", "{text:?}");
            assert!(error.reason.contains("control characters"), "{text:?}");
            assert!(WalletId::parse(text).is_err(), "{text:?}");
            assert!(OwnerId::parse(text).is_err(), "{text:?}");
        }
        assert!(Description::parse("Caf\u{e9} \u{1F600} - ok").is_ok());
    }

    #[test]
    fn a_stored_description_with_a_control_character_is_still_read() {
        let stored: Description =
            serde_json::from_str("\"old\\u0000event\"").expect("stored events stay readable");
        assert_eq!(stored.as_str(), "old\u{0}event");
    }

    #[test]
    fn a_hold_id_is_any_text_without_control_characters_up_to_its_length() {
        assert!(HoldId::parse("h-1 / Ä").is_ok());
        assert!(HoldId::parse(&"h".repeat(HOLD_ID_LENGTH_MAX)).is_ok());
        for refused in [
            String::new(),
            "h".repeat(HOLD_ID_LENGTH_MAX + 1),
            "a\nb".into(),
        ] {
            let error = HoldId::parse(&refused).expect_err("refused");
            assert_eq!(error.field, "holdId");
        }
    }

    /// h101 F3: a payer's description shows in the payee's history; text
    /// that displays in another order than it is stored is refused, the
    /// marks scripts need are not.
    #[test]
    fn a_description_refuses_reordering_controls_and_line_separators_not_direction_marks() {
        for refused in [
            "pay\u{202E}evil\u{202C}",
            "a\u{202A}b",
            "isolate\u{2066}x\u{2069}",
            "one\u{2028}line",
            "para\u{2029}graph",
        ] {
            let error = Description::parse(refused).expect_err(refused);
            assert_eq!(error.field, "description");
            assert!(error.to_string().contains("bidirectional"), "{error}");
        }
        for accepted in [
            "\u{5E9}\u{5DC}\u{5D5}\u{5DD} 12",
            "\u{645}\u{631}\u{62D}\u{628}\u{627}",
            "rtl mark \u{200F} and ltr mark \u{200E}",
            "family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
        ] {
            assert!(Description::parse(accepted).is_ok(), "{accepted:?}");
        }
    }

    #[test]
    fn description_is_bounded() {
        assert!(Description::parse(&"x".repeat(DESCRIPTION_LENGTH_MAX)).is_ok());
        assert!(Description::parse(&"x".repeat(DESCRIPTION_LENGTH_MAX + 1)).is_err());
    }
}
