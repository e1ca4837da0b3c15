//! A client of the HTTP API that never leaves an operation in doubt, and the
//! balances its acknowledged operations imply.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// Bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one POST while the API is down or answers 5xx: spans a restart.
const POST_ATTEMPTS_MAX: u32 = 300;
const POST_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Largest amount the load moves at once, in cents.
const AMOUNT_CENTS_MAX: i64 = 40_000;
pub const OPENING_BALANCE: i64 = 1_000;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// The definitive answer to a POST.
#[derive(Debug)]
pub enum Answer {
    Created,
    Refused { status: u16, body: Value },
}

/// The HS256 secret command-api verifies tokens with in this test.
pub const API_SECRET: &str = "end-to-end-secret-of-at-least-32-bytes";
/// How long the test's token is valid: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

impl Api {
    /// A client of `base` that sends an admin token signed with [`API_SECRET`]:
    /// the load opens wallets with a balance and moves money between them.
    pub fn new(base: String) -> Self {
        let claims = identity::Claims::new("end-to-end", "admin", TOKEN_TTL);
        let token = identity::mint_hs256(API_SECRET.as_bytes(), &claims).expect("a token");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .expect("a header value"),
        );
        Self {
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("an HTTP client"),
            base,
        }
    }

    /// The status of a POST without a token (authentication is on: 401).
    pub async fn post_anonymously(&self, path: &str, body: &Value) -> u16 {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .unwrap_or_default()
    }

    /// POSTs under one `Idempotency-Key`, sending it again while the API is
    /// unreachable or answers 5xx: whether the first attempt committed or not,
    /// the answer that finally comes is the one and only outcome.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let key = uuid::Uuid::new_v4().to_string();
        let mut last_failure = String::new();
        for _ in 0..POST_ATTEMPTS_MAX {
            let sent = self
                .client
                .post(format!("{}{path}", self.base))
                .header("Idempotency-Key", &key)
                .json(body)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    return Answer::Created;
                }
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status().as_u16();
                    let body = response.json().await.expect("a JSON error body");
                    return Answer::Refused { status, body };
                }
                Ok(response) => last_failure = format!("status {}", response.status()),
                Err(error) => last_failure = error.to_string(),
            }
            tokio::time::sleep(POST_RETRY_PAUSE).await;
        }
        panic!("POST {path} got no definitive answer; last: {last_failure}");
    }

    /// The JSON body of a GET that answers 200, `None` for any other answer.
    pub async fn get(&self, path: &str) -> Option<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }
}

/// An exact amount from a JSON number (printed exactly thanks to arbitrary precision).
pub fn decimal(value: &Value) -> Option<Decimal> {
    value
        .as_number()
        .and_then(|number| Decimal::from_str(&number.to_string()).ok())
}

/// What every acknowledged operation adds up to, per wallet.
#[derive(Clone)]
pub struct Book {
    pub wallets: Vec<String>,
    balances: Arc<Mutex<BTreeMap<String, Decimal>>>,
    acknowledged: Arc<AtomicUsize>,
}

impl Book {
    /// Opens `count` wallets of `owner`, each with the opening balance.
    pub async fn open(api: &Api, owner: &str, count: usize) -> Self {
        let mut balances = BTreeMap::new();
        for index in 0..count {
            let id = format!("{owner}-{index}");
            let answer = api
                .post(
                    "/wallets",
                    &json!({"walletId": id, "ownerId": owner, "initialBalance": OPENING_BALANCE}),
                )
                .await;
            assert!(matches!(answer, Answer::Created), "wallet {id}: {answer:?}");
            balances.insert(id, Decimal::from(OPENING_BALANCE));
        }
        Self {
            wallets: balances.keys().cloned().collect(),
            balances: Arc::new(Mutex::new(balances)),
            acknowledged: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn balance(&self, wallet: &str) -> Decimal {
        self.balances
            .lock()
            .expect("the book's lock")
            .get(wallet)
            .copied()
            .unwrap_or_default()
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Relaxed)
    }

    fn record(&self, moves: &[(&str, Decimal)]) {
        let mut balances = self.balances.lock().expect("the book's lock");
        for (wallet, change) in moves {
            *balances.entry((*wallet).to_owned()).or_default() += change;
        }
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }
}

/// `workers` clients each send random credits, debits and transfers between the
/// book's wallets until `operations_max` were sent in all or `keep_going` is cleared.
pub async fn run_load(
    api: &Api,
    book: &Book,
    workers: usize,
    operations_max: usize,
    keep_going: Arc<AtomicBool>,
) {
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (api, book, sent, keep_going) =
                (api.clone(), book.clone(), sent.clone(), keep_going.clone());
            tokio::spawn(async move {
                let mut random = StdRng::seed_from_u64(worker as u64);
                while keep_going.load(Ordering::Relaxed)
                    && sent.fetch_add(1, Ordering::Relaxed) < operations_max
                {
                    one_operation(&api, &book, &mut random).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a load worker panicked");
    }
}

async fn one_operation(api: &Api, book: &Book, random: &mut StdRng) {
    let wallets = &book.wallets;
    let from = &wallets[random.random_range(0..wallets.len())];
    let amount = Decimal::new(random.random_range(1..=AMOUNT_CENTS_MAX), 2);
    let choice = random.random_range(0..3);
    // A JSON number, not the string rust_decimal serializes to by default.
    let amount_json: Value =
        serde_json::from_str(&amount.to_string()).expect("a decimal prints as a JSON number");
    let (path, body, moves) = match choice {
        0 => (
            format!("/wallets/{from}/credit"),
            json!({"amount": amount_json}),
            vec![(from.as_str(), amount)],
        ),
        1 => (
            format!("/wallets/{from}/debit"),
            json!({"amount": amount_json}),
            vec![(from.as_str(), -amount)],
        ),
        _ => {
            let offset = random.random_range(1..wallets.len());
            let to = &wallets
                [(wallets.iter().position(|w| w == from).unwrap_or(0) + offset) % wallets.len()];
            (
                format!("/wallets/{from}/transfer"),
                json!({"toWalletId": to, "amount": amount_json}),
                vec![(from.as_str(), -amount), (to.as_str(), amount)],
            )
        }
    };
    match api.post(&path, &body).await {
        Answer::Created => book.record(&moves),
        Answer::Refused { status: 400, body }
            if body["message"]
                .as_str()
                .is_some_and(|message| message.contains("Insufficient funds")) => {}
        Answer::Refused { status, body } => panic!("{path} refused with {status}: {body}"),
    }
}
