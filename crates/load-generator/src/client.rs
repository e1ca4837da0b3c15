//! HTTP client for the Wallex REST contract, and the classification of its answers.
//!
//! Error policy: nothing the network or the server does is a panic. Every request ends in an
//! [`Outcome`]; transport failures are retried a bounded number of times with the *same*
//! `Idempotency-Key`, so a retried request the server already applied must not apply twice.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Attempts per request, counting the first; only transport failures are retried.
pub const REQUEST_ATTEMPTS_MAX: u32 = 3;
pub const RETRY_BACKOFF_MS: u64 = 100;
/// Bodies past this size are cut: we only look for an error message in them.
pub const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024;
/// The marker of a business rejection in a 400's message (the seed: "Invalid amount or
/// insufficient funds").
pub const INSUFFICIENT_FUNDS_MARKER: &str = "insufficient funds";

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// 400 whose message mentions insufficient funds: a correct answer, not an error.
    BusinessRejection,
    /// Any other status, or no answer at all; the text names the kind for the report.
    Error(String),
}

/// The outcome of a request and how many retries it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub outcome: Outcome,
    pub retries: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWalletRequest<'a> {
    pub wallet_id: &'a str,
    pub owner_id: &'a str,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub initial_balance: Decimal,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmountRequest<'a> {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    pub description: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferRequest<'a> {
    pub to_wallet_id: &'a str,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub amount: Decimal,
    pub description: &'a str,
}

/// The part of a wallet view that the conservation check needs. Balances are read as exact
/// decimals (JSON numbers through serde_json's arbitrary precision, or strings).
#[derive(Debug, Deserialize)]
pub struct WalletView {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub balance: Decimal,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: serde_json::Value,
}

/// Classifies an answer by status and body. Pure, so it is unit tested.
pub fn classify(status: u16, body: &str) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Success;
    }
    if status == 400
        && error_message(body)
            .to_lowercase()
            .contains(INSUFFICIENT_FUNDS_MARKER)
    {
        return Outcome::BusinessRejection;
    }
    Outcome::Error(format!("http {status}"))
}

/// The `message` of an error body (a string, or NestJS-style list of strings); the raw body
/// when it is not such JSON.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            message: serde_json::Value::String(message),
        }) => message,
        Ok(ErrorBody { message }) => message.to_string(),
        Err(_) => body.to_owned(),
    }
}

fn transport_error_kind(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "transport"
    };
    kind.to_owned()
}

/// The client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Failed to build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("The bearer token is not a valid header value (visible ASCII only)")]
    Token,
}

#[derive(Debug, Clone)]
pub struct WalletClient {
    http: reqwest::Client,
    base_url: String,
}

impl WalletClient {
    /// One keep-alive HTTP/1.1 pool sized for `pool_size` concurrent workers,
    /// sending `Authorization: Bearer <token>` when given a token.
    pub fn new(base_url: &str, pool_size: usize, token: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Token)?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .http1_only()
            .pool_max_idle_per_host(pool_size)
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    pub async fn create_wallet(&self, request: &CreateWalletRequest<'_>) -> Attempted {
        self.post("/wallets".to_owned(), request).await
    }

    pub async fn credit(&self, wallet_id: &str, request: &AmountRequest<'_>) -> Attempted {
        self.post(format!("/wallets/{wallet_id}/credit"), request)
            .await
    }

    pub async fn debit(&self, wallet_id: &str, request: &AmountRequest<'_>) -> Attempted {
        self.post(format!("/wallets/{wallet_id}/debit"), request)
            .await
    }

    pub async fn transfer(&self, from_wallet_id: &str, request: &TransferRequest<'_>) -> Attempted {
        self.post(format!("/wallets/{from_wallet_id}/transfer"), request)
            .await
    }

    /// Reads a wallet's balance; the error text says why it could not be read.
    pub async fn balance(&self, wallet_id: &str) -> Result<Decimal, String> {
        let url = format!("{}/wallets/{wallet_id}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|error| transport_error_kind(&error))?;
        let status = response.status().as_u16();
        let body = read_body_bounded(response)
            .await
            .map_err(|error| transport_error_kind(&error))?;
        if !(200..300).contains(&status) {
            return Err(format!("http {status}"));
        }
        serde_json::from_str::<WalletView>(&body)
            .map(|view| view.balance)
            .map_err(|error| format!("unreadable wallet: {error}"))
    }

    /// POSTs `body` with a fresh idempotency key, retrying transport failures with that key.
    async fn post(&self, path: String, body: &impl Serialize) -> Attempted {
        let url = format!("{}{path}", self.base_url);
        let idempotency_key = Uuid::new_v4().to_string();
        let mut last_error = String::new();
        for attempt in 0..REQUEST_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS * u64::from(attempt)))
                    .await;
            }
            match self.post_once(&url, &idempotency_key, body).await {
                Ok((status, text)) => {
                    return Attempted {
                        outcome: classify(status, &text),
                        retries: attempt,
                    }
                }
                Err(error) => last_error = transport_error_kind(&error),
            }
        }
        Attempted {
            outcome: Outcome::Error(last_error),
            retries: REQUEST_ATTEMPTS_MAX - 1,
        }
    }

    async fn post_once(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &impl Serialize,
    ) -> Result<(u16, String), reqwest::Error> {
        let response = self
            .http
            .post(url)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = read_body_bounded(response).await?;
        Ok((status, text))
    }
}

/// Reads at most [`RESPONSE_BODY_BYTES_MAX`] bytes of a body (the loop ends with the body or
/// at that bound); the rest is dropped, which also drops the connection from the pool.
async fn read_body_bounded(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_BODY_BYTES_MAX {
        match response.chunk().await? {
            Some(chunk) => bytes.extend_from_slice(&chunk),
            None => break,
        }
    }
    bytes.truncate(RESPONSE_BODY_BYTES_MAX);
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_success() {
        assert_eq!(classify(200, "{}"), Outcome::Success);
        assert_eq!(classify(201, ""), Outcome::Success);
    }

    #[test]
    fn insufficient_funds_is_a_business_rejection() {
        let seed_body = r#"{"statusCode":400,"message":"Invalid amount or insufficient funds","error":"Bad Request"}"#;
        assert_eq!(classify(400, seed_body), Outcome::BusinessRejection);
        let listed = r#"{"statusCode":400,"message":["Insufficient funds in wallet"]}"#;
        assert_eq!(classify(400, listed), Outcome::BusinessRejection);
        assert_eq!(
            classify(400, "Insufficient funds"),
            Outcome::BusinessRejection
        );
    }

    #[test]
    fn other_failures_are_errors() {
        let validation = r#"{"statusCode":400,"message":"amount must be positive"}"#;
        assert_eq!(classify(400, validation), Outcome::Error("http 400".into()));
        // The marker counts only on a 400.
        let conflict = r#"{"statusCode":409,"message":"insufficient funds"}"#;
        assert_eq!(classify(409, conflict), Outcome::Error("http 409".into()));
        assert_eq!(classify(500, ""), Outcome::Error("http 500".into()));
    }

    #[test]
    fn balances_parse_exactly_from_numbers_and_strings() -> Result<(), serde_json::Error> {
        let number: WalletView = serde_json::from_str(r#"{"id":"w","balance":1000.10}"#)?;
        assert_eq!(number.balance, Decimal::new(100_010, 2));
        let long: WalletView = serde_json::from_str(r#"{"balance":0.30000000000000001}"#)?;
        assert_eq!(long.balance, Decimal::new(30_000_000_000_000_001, 17));
        let string: WalletView = serde_json::from_str(r#"{"balance":"12.34"}"#)?;
        assert_eq!(string.balance, Decimal::new(1234, 2));
        Ok(())
    }

    #[test]
    fn amounts_serialize_as_exact_json_numbers() -> Result<(), serde_json::Error> {
        let request = TransferRequest {
            to_wallet_id: "w2",
            amount: Decimal::new(1050, 2),
            description: "load test",
        };
        assert_eq!(
            serde_json::to_string(&request)?,
            r#"{"toWalletId":"w2","amount":10.50,"description":"load test"}"#
        );
        Ok(())
    }
}
