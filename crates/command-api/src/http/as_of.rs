//! A moment of a wallet's history, from the query string: `?at=<RFC 3339>`
//! (after the wallet's last event at or before then) or `?version=N`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use wallet_domain::AsOf;

use super::error::ApiError;

/// `GET /wallets/{walletId}?at=&version=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WalletAsOfParams {
    /// RFC 3339 date-time (`2025-10-23T10:00:00Z`): the wallet as it stood after its last event at or before then.
    at: Option<String>,
    /// 1 or more: the wallet as it stood at that version.
    version: Option<String>,
}

impl WalletAsOfParams {
    /// The moment asked for, `None` for now; at most one of the two.
    pub fn as_of(&self) -> Result<Option<AsOf>, ApiError> {
        match (&self.at, &self.version) {
            (None, None) => Ok(None),
            (Some(at), None) => parse_at(at).map(|at| Some(AsOf::Time(at))),
            (None, Some(version)) => version
                .parse::<u64>()
                .ok()
                .filter(|version| *version >= 1)
                .map(|version| Some(AsOf::Version(version)))
                .ok_or_else(|| {
                    ApiError::BadRequest("version must be an integer of 1 or more".into())
                }),
            (Some(_), Some(_)) => Err(ApiError::BadRequest("give at or version, not both".into())),
        }
    }
}

/// `GET /ledger/wallet/{walletId}/summary?at=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryAsOfParams {
    /// RFC 3339 date-time: the totals of the transactions that occurred at or before then.
    at: Option<String>,
}

impl SummaryAsOfParams {
    pub fn at(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.at.as_deref().map(parse_at).transpose()
    }
}

fn parse_at(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "at must be an RFC 3339 date-time such as 2025-10-23T10:00:00Z, not {raw:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(at: Option<&str>, version: Option<&str>) -> WalletAsOfParams {
        WalletAsOfParams {
            at: at.map(str::to_owned),
            version: version.map(str::to_owned),
        }
    }

    #[test]
    fn a_moment_is_a_time_or_a_version_never_both() {
        assert_eq!(params(None, None).as_of().expect("now"), None);
        assert_eq!(
            params(None, Some("3")).as_of().expect("version"),
            Some(AsOf::Version(3))
        );
        let at = params(Some("2025-10-23T12:00:00+02:00"), None)
            .as_of()
            .expect("time");
        assert_eq!(
            at.map(|as_of| format!("{as_of:?}")),
            Some("Time(2025-10-23T10:00:00Z)".to_owned())
        );
        for (at, version) in [
            (None, Some("0")),
            (None, Some("-1")),
            (None, Some("x")),
            (Some("2025-10-23"), None),
            (Some("2025-10-23T10:00:00Z"), Some("1")),
        ] {
            assert!(params(at, version).as_of().is_err(), "{at:?} {version:?}");
        }
    }
}
