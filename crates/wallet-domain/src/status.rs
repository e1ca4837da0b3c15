//! Whether a wallet takes money out, money in, or nothing at all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The life of a wallet: `ACTIVE` takes every operation, `FROZEN` refuses
/// money out (debits, transfers out) but still receives, `CLOSED` refuses
/// every change and stays readable. Closing is final.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WalletStatus {
    #[default]
    Active,
    Frozen,
    Closed,
}

impl WalletStatus {
    pub const ALL: [WalletStatus; 3] = [
        WalletStatus::Active,
        WalletStatus::Frozen,
        WalletStatus::Closed,
    ];

    /// The name on the wire and in the stores: `ACTIVE`, `FROZEN`, `CLOSED`.
    pub fn as_str(self) -> &'static str {
        match self {
            WalletStatus::Active => "ACTIVE",
            WalletStatus::Frozen => "FROZEN",
            WalletStatus::Closed => "CLOSED",
        }
    }
}

impl fmt::Display for WalletStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is none of [`WalletStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wallet status {0:?}")]
pub struct UnknownWalletStatus(pub String);

impl FromStr for WalletStatus {
    type Err = UnknownWalletStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        WalletStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownWalletStatus(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_name() {
        for status in WalletStatus::ALL {
            assert_eq!(status.as_str().parse::<WalletStatus>(), Ok(status));
        }
        assert!("OPEN".parse::<WalletStatus>().is_err());
    }
}
