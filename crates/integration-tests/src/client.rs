//! A client of the HTTP API that never leaves an operation in doubt, the
//! balances its acknowledged operations imply, and the history of every
//! operation and its answer.

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
/// How long one POST is sent again while the API is down or answers 5xx: spans a
/// restart of a binary or of a server.
const POST_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
const POST_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Largest amount the load moves at once, in cents.
const AMOUNT_CENTS_MAX: i64 = 40_000;
/// Balance each wallet of a [`Book`] opens with.
pub const OPENING_BALANCE: i64 = 1_000;

/// Clients of one or more command-api replicas, taking turns: each attempt
/// goes to the next replica, so a resend may reach another one than the first
/// attempt did. Every 5xx seen is kept ([`Api::server_errors`]).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    bases: Arc<Vec<String>>,
    next_base: Arc<AtomicUsize>,
    server_errors: Arc<Mutex<Vec<ServerError>>>,
}

/// A 5xx answer, as the client saw it.
#[derive(Clone, Debug)]
pub struct ServerError {
    pub status: u16,
    pub request: String,
    pub body: String,
}

/// The definitive answer to a POST.
#[derive(Debug)]
pub enum Answer {
    Created,
    Refused { status: u16, body: Value },
}

/// The HS256 secret command-api verifies tokens with in these tests.
pub const API_SECRET: &str = "end-to-end-secret-of-at-least-32-bytes";
/// How long the test's token is valid: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(3600);

impl Api {
    /// A client of one command-api at `base`.
    pub fn new(base: String) -> Self {
        Self::replicated(vec![base])
    }

    /// A client of the replicas at `bases` that sends an admin token signed
    /// with [`API_SECRET`]: the load opens wallets with a balance and moves
    /// money between them.
    ///
    /// # Panics
    /// When `bases` is empty.
    pub fn replicated(bases: Vec<String>) -> Self {
        assert!(!bases.is_empty(), "at least one command-api");
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
            bases: Arc::new(bases),
            next_base: Arc::new(AtomicUsize::new(0)),
            server_errors: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The replica the next attempt goes to.
    fn url(&self, path: &str) -> String {
        let turn = self.next_base.fetch_add(1, Ordering::Relaxed);
        format!("{}{path}", self.bases[turn % self.bases.len()])
    }

    /// The status of a POST without a token (authentication is on: 401).
    pub async fn post_anonymously(&self, path: &str, body: &Value) -> u16 {
        reqwest::Client::new()
            .post(self.url(path))
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
    ///
    /// # Panics
    /// When no definitive answer came within [`POST_ANSWER_TIMEOUT`].
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let key = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + POST_ANSWER_TIMEOUT;
        let mut last_failure = String::new();
        while tokio::time::Instant::now() < deadline {
            let sent = self
                .client
                .post(self.url(path))
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
                Ok(response) => {
                    last_failure = self
                        .note_server_error(&format!("POST {path}"), response)
                        .await;
                }
                Err(error) => last_failure = error.to_string(),
            }
            tokio::time::sleep(POST_RETRY_PAUSE).await;
        }
        panic!(
            "POST {path} got no definitive answer in {}s; last: {last_failure}",
            POST_ANSWER_TIMEOUT.as_secs()
        );
    }

    /// The JSON body of a GET that answers 200, `None` for any other answer.
    pub async fn get(&self, path: &str) -> Option<Value> {
        let (status, body) = self.get_answer(path).await;
        if !(200..300).contains(&status) {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// The status and body of a GET (0 and the error when no answer came);
    /// a 5xx is kept as [`Api::get`] keeps it.
    pub async fn get_answer(&self, path: &str) -> (u16, String) {
        let response = match self
            .client
            .get(self.url(path))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return (0, error.to_string()),
        };
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            return (
                status,
                self.note_server_error(&format!("GET {path}"), response)
                    .await,
            );
        }
        (status, response.text().await.unwrap_or_default())
    }

    /// Keeps a 5xx answer; returns it as text.
    async fn note_server_error(&self, request: &str, response: reqwest::Response) -> String {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let text = format!("status {status}: {body}");
        self.server_errors
            .lock()
            .expect("the errors' lock")
            .push(ServerError {
                status,
                request: request.to_owned(),
                body,
            });
        text
    }

    /// Every 5xx answer seen so far.
    pub fn server_errors(&self) -> Vec<ServerError> {
        self.server_errors.lock().expect("the errors' lock").clone()
    }
}

/// An exact amount from a JSON number (printed exactly thanks to arbitrary precision).
pub fn decimal(value: &Value) -> Option<Decimal> {
    value
        .as_number()
        .and_then(|number| Decimal::from_str(&number.to_string()).ok())
}

/// How an operation of the history ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: it happened, exactly once.
    Acknowledged,
    /// 4xx: it did not happen.
    Refused(u16),
}

/// One operation the load sent: its unique description (how it is found in
/// the event store), the balance change it makes to each wallet, how it
/// ended, and the phase ([`Book::set_phase`]) it was sent in.
#[derive(Clone, Debug)]
pub struct Operation {
    pub description: String,
    pub moves: Vec<(String, Decimal)>,
    pub outcome: Outcome,
    pub phase: usize,
}

/// What every acknowledged operation adds up to, per wallet, and the history
/// of every operation sent.
#[derive(Clone)]
pub struct Book {
    pub wallets: Vec<String>,
    balances: Arc<Mutex<BTreeMap<String, Decimal>>>,
    acknowledged: Arc<AtomicUsize>,
    history: Arc<Mutex<Vec<Operation>>>,
    phase: Arc<AtomicUsize>,
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
            history: Arc::new(Mutex::new(Vec::new())),
            phase: Arc::new(AtomicUsize::new(0)),
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

    /// Tags the operations sent from now on with `phase` (a fault's number).
    pub fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Every operation that got its definitive answer, in the order of the answers.
    pub fn history(&self) -> Vec<Operation> {
        self.history.lock().expect("the history's lock").clone()
    }

    fn record(&self, operation: Operation) {
        if operation.outcome == Outcome::Acknowledged {
            let mut balances = self.balances.lock().expect("the book's lock");
            for (wallet, change) in &operation.moves {
                *balances.entry(wallet.clone()).or_default() += change;
            }
            self.acknowledged.fetch_add(1, Ordering::Relaxed);
        }
        self.history
            .lock()
            .expect("the history's lock")
            .push(operation);
    }
}

/// Operations a background load sends at most: it runs until told to stop.
pub const BACKGROUND_OPERATIONS_MAX: usize = 1_000_000;

/// [`run_load`] as a task of its own, with `workers` clients on `book`'s
/// wallets (choices from `seed`), until `keep_going` is cleared (or
/// [`BACKGROUND_OPERATIONS_MAX`] operations).
pub fn spawn_load(
    api: &Api,
    book: &Book,
    workers: usize,
    seed: u64,
    keep_going: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (api, book, keep_going) = (api.clone(), book.clone(), keep_going.clone());
    tokio::spawn(async move {
        run_load(
            &api,
            &book,
            workers,
            BACKGROUND_OPERATIONS_MAX,
            seed,
            keep_going,
        )
        .await;
    })
}

/// `workers` clients each send random credits, debits and transfers between the
/// book's wallets (chosen from `seed`) until `operations_max` were sent in all
/// or `keep_going` is cleared.
pub async fn run_load(
    api: &Api,
    book: &Book,
    workers: usize,
    operations_max: usize,
    seed: u64,
    keep_going: Arc<AtomicBool>,
) {
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (api, book, sent, keep_going) =
                (api.clone(), book.clone(), sent.clone(), keep_going.clone());
            tokio::spawn(async move {
                let mut random = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
                let mut sequence = 0_usize;
                while keep_going.load(Ordering::Relaxed)
                    && sent.fetch_add(1, Ordering::Relaxed) < operations_max
                {
                    let description = format!("op {worker}-{sequence}");
                    one_operation(&api, &book, &mut random, description).await;
                    sequence += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a load worker panicked");
    }
}

async fn one_operation(api: &Api, book: &Book, random: &mut StdRng, description: String) {
    let wallets = &book.wallets;
    let from_index = random.random_range(0..wallets.len());
    let from = &wallets[from_index];
    let amount = Decimal::new(random.random_range(1..=AMOUNT_CENTS_MAX), 2);
    let choice = random.random_range(0..3);
    // A JSON number, not the string rust_decimal serializes to by default.
    let amount_json: Value =
        serde_json::from_str(&amount.to_string()).expect("a decimal prints as a JSON number");
    let (path, body, moves) = match choice {
        0 => (
            format!("/wallets/{from}/credit"),
            json!({"amount": amount_json, "description": description}),
            vec![(from.clone(), amount)],
        ),
        1 => (
            format!("/wallets/{from}/debit"),
            json!({"amount": amount_json, "description": description}),
            vec![(from.clone(), -amount)],
        ),
        _ => {
            let offset = random.random_range(1..wallets.len());
            let to = &wallets[(from_index + offset) % wallets.len()];
            (
                format!("/wallets/{from}/transfer"),
                json!({"toWalletId": to, "amount": amount_json, "description": description}),
                vec![(from.clone(), -amount), (to.clone(), amount)],
            )
        }
    };
    let phase = book.phase.load(Ordering::Relaxed);
    let outcome = match api.post(&path, &body).await {
        Answer::Created => Outcome::Acknowledged,
        Answer::Refused { status: 400, body }
            if body["message"]
                .as_str()
                .is_some_and(|message| message.contains("Insufficient funds")) =>
        {
            Outcome::Refused(400)
        }
        Answer::Refused { status, body } => panic!("{path} refused with {status}: {body}"),
    };
    book.record(Operation {
        description,
        moves,
        outcome,
        phase,
    });
}
