//! Where a relay parks the events a sink refuses for good.
//!
//! A permanent refusal (an event this build cannot decode, a constraint)
//! would repeat on every attempt, so retrying it would stop the sink for
//! ever. The relay parks such an event here with why, moves on, and parks
//! every later event of the same wallet behind it without asking the sink,
//! so the wallet's events stay in order for the replay; other wallets flow.
//! A transient refusal is never parked: it is retried until it passes.

mod embedded;

use std::collections::HashSet;

use async_trait::async_trait;
use event_store::StoredEvent;

pub use embedded::{EmbeddedDeadLetters, DATABASE_FILE as EMBEDDED_FILE};

/// One parked event of one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The sink that refused it ([`event_sink::EventSink::name`]).
    pub sink: String,
    /// The event as stored, so a replay needs nothing else.
    pub event: StoredEvent,
    /// Its wallet, as the payload names it; empty when it names none.
    pub wallet_id: String,
    /// Its type name, as the payload names it; empty when it names none.
    pub event_type: String,
    /// Why it was parked: the refusal's error chain, or the earlier dead
    /// letter of its wallet it waits behind.
    pub error: String,
}

impl DeadLetter {
    /// A dead letter of `event` for `sink`, its wallet and type read from
    /// the payload's envelope fields (empty when the payload has none).
    pub fn new(sink: &str, event: &StoredEvent, error: String) -> Self {
        let (wallet_id, event_type) = event
            .header()
            .map(|header| (header.wallet_id, header.event_type))
            .unwrap_or_default();
        Self {
            sink: sink.to_owned(),
            event: event.clone(),
            wallet_id,
            event_type,
            error,
        }
    }
}

/// The dead letters of one sink, counted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkDeadLetters {
    /// The sink's name.
    pub sink: String,
    /// Events parked now, waiting for a replay.
    pub parked: u64,
    /// Events ever parked (a replay does not lower it).
    pub parked_total: u64,
}

/// A dead-letter store failed; the relay retries as after any failure.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead letters: {0}")]
    Sqlite(#[from] embedded_sqlite::SqliteError),
}

/// Where dead letters are kept, durably: each call returns once its write
/// has been committed.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Parks `letter`. Parking the same event for the same sink again
    /// changes nothing (a relay restarted after a crash parks it again).
    async fn park(&self, letter: &DeadLetter) -> Result<(), DeadLetterError>;

    /// The wallets `sink` has parked events of now.
    async fn parked_wallets(&self, sink: &str) -> Result<HashSet<String>, DeadLetterError>;

    /// The furthest position ever parked for `sink` (0: none).
    async fn parked_through(&self, sink: &str) -> Result<u64, DeadLetterError>;

    /// Up to `letters_max` of the dead letters of `sink`, in position order.
    async fn list(
        &self,
        sink: &str,
        letters_max: usize,
    ) -> Result<Vec<DeadLetter>, DeadLetterError>;

    /// Removes the dead letter of `sink` at `position` (its sink took it).
    async fn remove(&self, sink: &str, position: u64) -> Result<(), DeadLetterError>;

    /// Every sink that ever parked an event, by name.
    async fn counts(&self) -> Result<Vec<SinkDeadLetters>, DeadLetterError>;
}
