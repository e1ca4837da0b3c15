//! HTTP client for the Wallex REST contract, and the classification of its answers.
//!
//! Error policy: nothing the network or the server does is a panic. Every request ends in an
//! [`Outcome`]. A request without a definitive answer (the connection refused, reset or
//! timed out, or a 502/503/504, which the server uses for "retry with the same key") is
//! resent with the *same* `Idempotency-Key` until a definitive answer comes, with an
//! exponential backoff, for at most [`UNKNOWN_OUTCOME_RETRY_WINDOW_MS`] ([`RetryPolicy`]):
//! the server applies a key at most once and answers a resend of an applied request with the
//! original answer (`Idempotent-Replayed: true`), so a server killed and restarted in the
//! middle of a run costs retries, not errors. Only a request still without an answer when its
//! window closes ends without one: [`Outcome::Unknown`] when an attempt may have reached the
//! server (its money effect is unknown), [`Outcome::Unreachable`] when none did.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// Bound on one attempt, from sending to the end of the body.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long, in milliseconds from its first attempt, a request without a definitive answer is
/// resent with its `Idempotency-Key`: long enough for a server restart of tens of seconds. No
/// attempt starts after it; one started before it may run [`REQUEST_TIMEOUT_MS`] past it.
pub const UNKNOWN_OUTCOME_RETRY_WINDOW_MS: u64 = 60_000;
/// The pause before the first resend, in milliseconds; it doubles on every resend after it.
pub const RETRY_BACKOFF_FIRST_MS: u64 = 100;
/// The longest pause between two attempts, in milliseconds.
pub const RETRY_BACKOFF_MAX_MS: u64 = 1_000;
/// Doublings of the backoff past which it stays put (2^16 times the first pause, far past
/// any cap); it keeps the arithmetic from overflowing.
pub const RETRY_BACKOFF_DOUBLINGS_MAX: u32 = 16;
/// Statuses that are not an answer to the request: the server's 503 (busy, storage
/// unavailable, or the append's outcome unknown: "retry with the same Idempotency-Key"), and a
/// proxy's 502 and 504 (the server behind it did not answer). They are retried like a
/// transport failure, and may mean the request was applied.
pub const OUTCOME_UNKNOWN_STATUSES: [u16; 3] = [502, 503, 504];
/// The header of an answer the server replays for an idempotency key it had already applied.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";
/// Bodies past this size are cut: we only look for an error message in them.
pub const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024;
/// The marker of a business rejection in a 400's message (the seed: "Invalid amount or
/// insufficient funds").
pub const INSUFFICIENT_FUNDS_MARKER: &str = "insufficient funds";

/// How a request without a definitive answer is resent. [`RetryPolicy::DEFAULT`] is the
/// constants above; tests shrink it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff_first_ms: u64,
    pub backoff_max_ms: u64,
    /// See [`UNKNOWN_OUTCOME_RETRY_WINDOW_MS`].
    pub window_ms: u64,
}

impl RetryPolicy {
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        backoff_first_ms: RETRY_BACKOFF_FIRST_MS,
        backoff_max_ms: RETRY_BACKOFF_MAX_MS,
        window_ms: UNKNOWN_OUTCOME_RETRY_WINDOW_MS,
    };

    /// The pause before resend number `retry` (1 for the first): the first pause doubled
    /// `retry - 1` times, at most `backoff_max_ms`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(RETRY_BACKOFF_DOUBLINGS_MAX);
        let milliseconds = self
            .backoff_first_ms
            .saturating_mul(1 << doublings)
            .min(self.backoff_max_ms);
        Duration::from_millis(milliseconds)
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// 400 whose message mentions insufficient funds: a correct answer, not an error.
    BusinessRejection,
    /// A definitive answer that is neither of those, or a request that could not be built;
    /// the text names the kind for the report (`http 409`).
    Error(String),
    /// No definitive answer within the window, and no attempt reached the server (each
    /// failed to connect): the request was not applied. The text is the last failure's kind.
    Unreachable(String),
    /// No definitive answer within the window, and an attempt may have reached the server:
    /// the request may or may not have been applied. The text is the last failure's kind.
    Unknown(String),
}

impl Outcome {
    /// The request's window closed without a definitive answer.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, Outcome::Unreachable(_) | Outcome::Unknown(_))
    }
}

/// The outcome of a request and how many retries it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub outcome: Outcome,
    /// Attempts after the first, all with the same `Idempotency-Key`.
    pub retries: u32,
    /// The answer carried `Idempotent-Replayed: true`: an earlier attempt had been applied.
    pub replayed: bool,
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

/// How one attempt of a POST ended.
#[derive(Debug)]
enum AttemptEnd {
    /// A definitive answer: any status but [`OUTCOME_UNKNOWN_STATUSES`].
    Answered {
        status: u16,
        body: String,
        replayed: bool,
    },
    /// No definitive answer, and the request may have reached the server.
    InDoubt(String),
    /// The connection could not be made: nothing was sent.
    NotDelivered(String),
    /// The request could not be built: sending it again cannot help.
    NotSendable(String),
}

impl AttemptEnd {
    fn of_error(error: &reqwest::Error) -> Self {
        if error.is_builder() {
            AttemptEnd::NotSendable(format!("request: {error}"))
        } else if error.is_connect() {
            AttemptEnd::NotDelivered(transport_error_kind(error))
        } else {
            AttemptEnd::InDoubt(transport_error_kind(error))
        }
    }
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
    retry_policy: RetryPolicy,
}

impl WalletClient {
    /// One keep-alive HTTP/1.1 pool sized for `pool_size` concurrent workers,
    /// sending `Authorization: Bearer <token>` when given a token, resending by
    /// [`RetryPolicy::DEFAULT`].
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
            retry_policy: RetryPolicy::DEFAULT,
        })
    }

    /// The same client resending by `retry_policy`.
    pub fn with_retry_policy(mut self, retry_policy: RetryPolicy) -> Self {
        self.retry_policy = retry_policy;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry_policy
    }

    /// Every mutating call takes the request's `idempotency_key`, sent with each of its
    /// attempts; the caller keeps it to resend the request later ([`crate::runner`]).
    pub async fn create_wallet(
        &self,
        idempotency_key: Uuid,
        request: &CreateWalletRequest<'_>,
    ) -> Attempted {
        self.post("/wallets".to_owned(), idempotency_key, request)
            .await
    }

    pub async fn credit(
        &self,
        idempotency_key: Uuid,
        wallet_id: &str,
        request: &AmountRequest<'_>,
    ) -> Attempted {
        self.post(
            format!("/wallets/{wallet_id}/credit"),
            idempotency_key,
            request,
        )
        .await
    }

    pub async fn debit(
        &self,
        idempotency_key: Uuid,
        wallet_id: &str,
        request: &AmountRequest<'_>,
    ) -> Attempted {
        self.post(
            format!("/wallets/{wallet_id}/debit"),
            idempotency_key,
            request,
        )
        .await
    }

    pub async fn transfer(
        &self,
        idempotency_key: Uuid,
        from_wallet_id: &str,
        request: &TransferRequest<'_>,
    ) -> Attempted {
        self.post(
            format!("/wallets/{from_wallet_id}/transfer"),
            idempotency_key,
            request,
        )
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

    /// POSTs `body` with `idempotency_key`, and sends it again with that key after every
    /// attempt without a definitive answer, pausing by the retry policy's backoff, until an
    /// answer comes or the policy's window closes (no attempt starts after it).
    async fn post(&self, path: String, idempotency_key: Uuid, body: &impl Serialize) -> Attempted {
        let url = format!("{}{path}", self.base_url);
        let idempotency_key = idempotency_key.to_string();
        let deadline = Instant::now() + self.retry_policy.window();
        let mut retries = 0u32;
        let mut maybe_delivered = false;
        loop {
            let failure = match self.post_once(&url, &idempotency_key, body).await {
                AttemptEnd::Answered {
                    status,
                    body,
                    replayed,
                } => {
                    return Attempted {
                        outcome: classify(status, &body),
                        retries,
                        replayed,
                    }
                }
                AttemptEnd::NotSendable(kind) => {
                    return Attempted {
                        outcome: Outcome::Error(kind),
                        retries,
                        replayed: false,
                    }
                }
                AttemptEnd::InDoubt(kind) => {
                    maybe_delivered = true;
                    kind
                }
                AttemptEnd::NotDelivered(kind) => kind,
            };
            let pause = self.retry_policy.backoff(retries + 1);
            if Instant::now() + pause >= deadline {
                let outcome = if maybe_delivered {
                    Outcome::Unknown(failure)
                } else {
                    Outcome::Unreachable(failure)
                };
                return Attempted {
                    outcome,
                    retries,
                    replayed: false,
                };
            }
            tokio::time::sleep(pause).await;
            retries += 1;
        }
    }

    async fn post_once(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &impl Serialize,
    ) -> AttemptEnd {
        let sent = self
            .http
            .post(url)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return AttemptEnd::of_error(&error),
        };
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get(IDEMPOTENT_REPLAYED_HEADER)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
        // A body cut short leaves a 400 unclassified; the resend's answer is the same one.
        let body = match read_body_bounded(response).await {
            Ok(body) => body,
            Err(error) => return AttemptEnd::InDoubt(transport_error_kind(&error)),
        };
        if OUTCOME_UNKNOWN_STATUSES.contains(&status) {
            return AttemptEnd::InDoubt(format!("http {status}"));
        }
        AttemptEnd::Answered {
            status,
            body,
            replayed,
        }
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

    use crate::test_server::{Reply, ScriptedServer, FAST_POLICY};

    fn create_request() -> CreateWalletRequest<'static> {
        CreateWalletRequest {
            wallet_id: "w1",
            owner_id: "o1",
            initial_balance: Decimal::new(1000, 0),
        }
    }

    #[test]
    fn backoff_doubles_from_the_first_pause_up_to_the_cap() {
        let policy = RetryPolicy::DEFAULT;
        let pauses: Vec<u64> = (1..=6)
            .map(|retry| policy.backoff(retry).as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(1_000));
        assert_eq!(policy.window(), Duration::from_millis(60_000));
    }

    #[tokio::test]
    async fn dropped_connections_are_resent_with_the_same_key_until_an_answer(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let server =
            ScriptedServer::sequence(vec![Reply::Drop, Reply::Drop, Reply::Status(201)]).await?;
        let key = Uuid::new_v4();
        let attempted = server.client()?.create_wallet(key, &create_request()).await;
        assert_eq!(attempted.outcome, Outcome::Success);
        assert_eq!(attempted.retries, 2);
        assert!(!attempted.replayed);
        assert_eq!(server.keys(), vec![key.to_string(); 3]);
        Ok(())
    }

    #[tokio::test]
    async fn every_mutating_request_carries_its_key() -> Result<(), Box<dyn std::error::Error>> {
        let server = ScriptedServer::sequence(vec![Reply::Status(201)]).await?;
        let client = server.client()?;
        let keys: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let amount = AmountRequest {
            amount: Decimal::ONE,
            description: "test",
        };
        let transfer = TransferRequest {
            to_wallet_id: "w2",
            amount: Decimal::ONE,
            description: "test",
        };
        let outcomes = [
            client.create_wallet(keys[0], &create_request()).await,
            client.credit(keys[1], "w1", &amount).await,
            client.debit(keys[2], "w1", &amount).await,
            client.transfer(keys[3], "w1", &transfer).await,
        ];
        assert!(outcomes
            .iter()
            .all(|attempted| attempted.outcome == Outcome::Success));
        let sent: Vec<String> = keys.iter().map(Uuid::to_string).collect();
        assert_eq!(server.keys(), sent);
        Ok(())
    }

    #[tokio::test]
    async fn a_503_is_resent_and_a_replayed_answer_is_noted(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let server = ScriptedServer::sequence(vec![Reply::Status(503), Reply::Replayed]).await?;
        let attempted = server
            .client()?
            .create_wallet(Uuid::new_v4(), &create_request())
            .await;
        assert_eq!(
            attempted,
            Attempted {
                outcome: Outcome::Success,
                retries: 1,
                replayed: true,
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_definitive_refusal_is_not_resent() -> Result<(), Box<dyn std::error::Error>> {
        let server = ScriptedServer::sequence(vec![Reply::Status(409)]).await?;
        let attempted = server
            .client()?
            .create_wallet(Uuid::new_v4(), &create_request())
            .await;
        assert_eq!(attempted.outcome, Outcome::Error("http 409".into()));
        assert_eq!(attempted.retries, 0);
        assert_eq!(server.keys().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn no_answer_within_the_window_is_an_unknown_outcome(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let server = ScriptedServer::sequence(vec![Reply::Drop]).await?;
        let started = Instant::now();
        let attempted = server
            .client()?
            .credit(
                Uuid::new_v4(),
                "w1",
                &AmountRequest {
                    amount: Decimal::ONE,
                    description: "test",
                },
            )
            .await;
        let elapsed = started.elapsed();
        assert!(
            matches!(attempted.outcome, Outcome::Unknown(_)),
            "{attempted:?}"
        );
        assert!(attempted.outcome.is_unanswered());
        assert!(attempted.retries >= 5, "{attempted:?}");
        assert_eq!(server.keys().len() as u32, attempted.retries + 1);
        // No attempt starts after the window; the last one ends quickly here.
        assert!(elapsed >= FAST_POLICY.window() - FAST_POLICY.backoff(u32::MAX));
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        Ok(())
    }

    #[tokio::test]
    async fn a_server_never_reached_is_unreachable_not_unknown(
    ) -> Result<(), Box<dyn std::error::Error>> {
        // A port that was just free: connecting to it is refused.
        let url = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("http://{}", listener.local_addr()?)
        };
        let client = WalletClient::new(&url, 1, None)?.with_retry_policy(FAST_POLICY);
        let attempted = client
            .create_wallet(Uuid::new_v4(), &create_request())
            .await;
        assert_eq!(attempted.outcome, Outcome::Unreachable("connect".into()));
        assert!(attempted.retries >= 5, "{attempted:?}");
        Ok(())
    }

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
