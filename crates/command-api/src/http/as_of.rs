//! A moment of a wallet's history, from the query string: `?at=<RFC 3339>`
//! (after the wallet's last event at or before then) or `?version=N`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;
use wallet_domain::AsOf;

use super::error::ApiError;
use super::query::{self, Bounds, Kind, Spec};

const AT: Spec = Spec {
    name: "at",
    description: "A moment: an RFC 3339 date-time, or a day (its whole day, UTC). The state after the last event at or before then; a moment to come reads as now (a hold due by then still counts until it expires).",
    kind: Kind::Date,
};

const VERSION: Spec = Spec {
    name: "version",
    description: "A version, 1 or more: the wallet as it stood at that version.",
    kind: Kind::Integer(VERSION_BOUNDS),
};

const VERSION_BOUNDS: Bounds = Bounds {
    min: 1,
    max: u64::MAX,
};

/// `GET /wallets/{walletId}?at=&version=`, read by the query rules of every
/// endpoint (an empty value is an absent one).
#[derive(Debug, Deserialize)]
pub struct WalletAsOfParams {
    at: Option<String>,
    version: Option<String>,
}

impl IntoParams for WalletAsOfParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&[AT, VERSION])
    }
}

impl WalletAsOfParams {
    /// The moment asked for, `None` for now; at most one of the two.
    pub fn as_of(&self) -> Result<Option<AsOf>, ApiError> {
        let at = query::end_date(AT.name, &self.at)?;
        let version = query::integer(VERSION.name, &self.version, VERSION_BOUNDS)?;
        match (at, version) {
            (None, None) => Ok(None),
            (Some(at), None) => Ok(Some(AsOf::Time(at))),
            (None, Some(version)) => Ok(Some(AsOf::Version(version))),
            (Some(_), Some(_)) => Err(ApiError::BadRequest("give at or version, not both".into())),
        }
    }
}

/// `GET /ledger/wallet/{walletId}/summary?at=`
#[derive(Debug, Deserialize)]
pub struct SummaryAsOfParams {
    at: Option<String>,
}

impl IntoParams for SummaryAsOfParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&[AT])
    }
}

impl SummaryAsOfParams {
    /// The moment of the totals, `None` for now.
    pub fn at(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        Ok(query::end_date(AT.name, &self.at)?)
    }
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
        // Empty is absent; a day is its whole day.
        assert_eq!(params(Some(""), Some("")).as_of().expect("now"), None);
        let day = params(Some("2025-10-23"), None).as_of().expect("day");
        assert_eq!(
            day.map(|as_of| format!("{as_of:?}")),
            Some("Time(2025-10-23T23:59:59.999999999Z)".to_owned())
        );
        for (at, version) in [
            (None, Some("0")),
            (None, Some("-1")),
            (None, Some("x")),
            (Some("2025-10-32"), None),
            (Some("2025-10-23T10:00:00Z"), Some("1")),
        ] {
            assert!(params(at, version).as_of().is_err(), "{at:?} {version:?}");
        }
    }
}
