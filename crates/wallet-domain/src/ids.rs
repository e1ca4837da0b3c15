//! Identifiers and free text, validated on construction.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

pub const IDENTIFIER_LENGTH_MAX: usize = 64;
pub const DESCRIPTION_LENGTH_MAX: usize = 500;

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

/// Free text a client attaches to an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.chars().count() > DESCRIPTION_LENGTH_MAX {
            return Err(ValidationError::new(
                "description",
                format!("must be at most {DESCRIPTION_LENGTH_MAX} characters"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Description {
    type Error = ValidationError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Description> for String {
    fn from(description: Description) -> String {
        description.0
    }
}

#[cfg(test)]
mod tests {
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
    fn description_is_bounded() {
        assert!(Description::parse(&"x".repeat(DESCRIPTION_LENGTH_MAX)).is_ok());
        assert!(Description::parse(&"x".repeat(DESCRIPTION_LENGTH_MAX + 1)).is_err());
    }
}
