//! Identifiers and free text, validated on construction.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Longest wallet id, in characters (a wallet id is in URL paths).
pub const IDENTIFIER_LENGTH_MAX: usize = 64;
/// Longest owner id, in characters: the bound of a token's `sub`, which an
/// end user's owner id is.
pub const OWNER_ID_LENGTH_MAX: usize = 255;
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

/// What an identifier a client chooses may be: 1 to `length_max` characters,
/// each an ASCII letter, a digit or one of `punctuation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifierRule {
    /// Longest, in characters.
    pub length_max: usize,
    /// The characters allowed besides ASCII letters and digits.
    pub punctuation: &'static [char],
}

/// A wallet's id: it appears in URL paths, so only `-` and `_` besides
/// letters and digits.
pub const WALLET_ID_RULE: IdentifierRule = IdentifierRule {
    length_max: IDENTIFIER_LENGTH_MAX,
    punctuation: &['-', '_'],
};

/// An owner's id, which an end user's token `sub` is: also the characters
/// identity providers' subjects use (`auth0|123`, `google-oauth2|1043`, an
/// e-mail address `a.b+c@example.com`, `urn:x:y`). Never in a URL path;
/// always percent-encoded in a query.
pub const OWNER_ID_RULE: IdentifierRule = IdentifierRule {
    length_max: OWNER_ID_LENGTH_MAX,
    punctuation: &['-', '_', '.', '@', ':', '|', '+'],
};

impl IdentifierRule {
    /// Whether `character` may be in such an identifier.
    pub fn allows(&self, character: char) -> bool {
        character.is_ascii_alphanumeric() || self.punctuation.contains(&character)
    }

    /// The characters allowed, as a regular expression's character class
    /// body (`A-Za-z0-9_-`): `-` last, where it is a literal; none of the
    /// others (`_ . @ : | +`) is special in a class.
    fn class(&self) -> String {
        let mut class = String::from("A-Za-z0-9");
        class.extend(self.punctuation.iter().filter(|&&c| c != '-'));
        if self.punctuation.contains(&'-') {
            class.push('-');
        }
        class
    }

    /// The rule as a regular expression (ECMA-262 and the `regex` crate
    /// read it alike), for the OpenAPI document: `^[A-Za-z0-9_-]{1,64}$`.
    pub fn pattern(&self) -> String {
        format!("^[{}]{{1,{}}}$", self.class(), self.length_max)
    }

    /// The rule in words, for a refusal: "1 to 64 characters of A-Z a-z 0-9 - _".
    pub fn described(&self) -> String {
        let punctuation: Vec<String> = self.punctuation.iter().map(char::to_string).collect();
        format!(
            "1 to {} characters of A-Z a-z 0-9 {}",
            self.length_max,
            punctuation.join(" ")
        )
    }

    /// `raw` if the rule allows it, else the refusal naming `field`.
    fn parse(&self, field: &'static str, raw: &str) -> Result<String, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if raw.chars().count() > self.length_max {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", self.length_max),
            ));
        }
        if !raw.chars().all(|c| self.allows(c)) {
            let mut quoted: Vec<String> =
                self.punctuation.iter().map(|c| format!("'{c}'")).collect();
            let last = quoted.pop().unwrap_or_default();
            return Err(ValidationError::new(
                field,
                format!(
                    "may contain only letters, digits, {} and {last}",
                    quoted.join(", ")
                ),
            ));
        }
        Ok(raw.to_owned())
    }
}

macro_rules! identifier {
    ($name:ident, $field:literal, $rule:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What such an id may be.
            pub const RULE: IdentifierRule = $rule;

            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                Self::parse_field($field, raw)
            }

            /// As [`Self::parse`], the error naming `field` (as the request
            /// spells it, e.g. `toWalletId`).
            pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
                Self::RULE.parse(field, raw).map(Self)
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

identifier!(WalletId, "walletId", WALLET_ID_RULE);
identifier!(OwnerId, "ownerId", OWNER_ID_RULE);

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
    fn an_owner_id_takes_what_identity_providers_subjects_hold() {
        for owner in [
            "auth0|123",
            "google-oauth2|1043",
            "a.b+c@example.com",
            "urn:x:y",
            "user_1-A",
        ] {
            assert!(OwnerId::parse(owner).is_ok(), "{owner}");
            assert!(WalletId::parse(owner).is_err() || owner == "user_1-A");
        }
        assert!(OwnerId::parse(&"o".repeat(OWNER_ID_LENGTH_MAX)).is_ok());
        for refused in [
            "o".repeat(OWNER_ID_LENGTH_MAX + 1),
            String::new(),
            "a b".into(),
            "a/b".into(),
            "a%2Fb".into(),
            "a\u{0}b".into(),
            "a\tb".into(),
            "zoë".into(),
            "a?b".into(),
            "a#b".into(),
        ] {
            let error = OwnerId::parse(&refused).expect_err("refused");
            assert_eq!(error.field, "ownerId", "{refused:?}");
        }
    }

    #[test]
    fn a_rule_reads_as_its_pattern_and_its_words() {
        assert_eq!(WalletId::RULE.pattern(), "^[A-Za-z0-9_-]{1,64}$");
        assert_eq!(OwnerId::RULE.pattern(), "^[A-Za-z0-9_.@:|+-]{1,255}$");
        assert_eq!(
            WalletId::RULE.described(),
            "1 to 64 characters of A-Z a-z 0-9 - _"
        );
        let error = WalletId::parse("a.b").expect_err("refused");
        assert_eq!(
            error.to_string(),
            "walletId may contain only letters, digits, '-' and '_'"
        );
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
