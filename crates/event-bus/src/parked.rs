//! Per-wallet order across the dead-letter topic.
//!
//! Once one event of a wallet is parked on the dead-letter topic for a
//! handler, every later event of that wallet is parked behind it without
//! asking the handler: the read model would otherwise see the next one as a
//! version gap (transient), retry it for ever, and freeze the partition.
//! The dead-letter topic is keyed by wallet, so a replay puts a wallet's
//! letters back on the main topic in order, marked `replayed-for`; the
//! consumer hands those to the handler, and the wallet flows again once its
//! last letter is re-applied. Which wallets are parked is kept durably, per
//! handler, in PostgreSQL (`bus_parked_wallets`).

use std::collections::HashMap;
use std::time::Duration;

use event_store::RecordedEvent;
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::consumer::{Attempts, Worker};
use crate::headers::{self, HEADER_REPLAYED_FOR};
use crate::BusError;

/// The `bus_parked_wallets` table of a consumer's database.
#[derive(Debug, Clone)]
pub struct ParkedWallets {
    pool: PgPool,
}

/// What the consumer does with an event of a parked wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Not parked: the handler takes it with the rest of the batch.
    Handle,
    /// A live event of a parked wallet: parked behind its letters.
    ParkBehind,
    /// One of the wallet's letters, replayed: the handler takes it alone.
    Replay,
    /// A replayed letter after one of its wallet was refused again: parked again.
    ParkAgain,
}

impl ParkedWallets {
    /// The table in `pool`'s database (migration 0017).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The parked wallets among `wallet_ids`, each with whether it is stalled.
    pub(crate) async fn parked(
        &self,
        handler: &str,
        wallet_ids: &[String],
    ) -> Result<HashMap<String, bool>, BusError> {
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT wallet_id, stalled FROM bus_parked_wallets \
             WHERE handler = $1 AND wallet_id = ANY($2)",
        )
        .bind(handler)
        .bind(wallet_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Counts one more dead letter of `wallet_id`.
    pub(crate) async fn add_letter(&self, handler: &str, wallet_id: &str) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO bus_parked_wallets (handler, wallet_id, letters) VALUES ($1, $2, 1) \
             ON CONFLICT (handler, wallet_id) DO UPDATE SET letters = bus_parked_wallets.letters + 1",
        )
        .bind(handler)
        .bind(wallet_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One letter of `wallet_id` was re-applied; true when it was the last
    /// (the wallet flows again).
    pub(crate) async fn take_letter(
        &self,
        handler: &str,
        wallet_id: &str,
    ) -> Result<bool, BusError> {
        let mut transaction = self.pool.begin().await?;
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE bus_parked_wallets SET letters = letters - 1 \
             WHERE handler = $1 AND wallet_id = $2 AND letters > 1 RETURNING letters",
        )
        .bind(handler)
        .bind(wallet_id)
        .fetch_optional(&mut *transaction)
        .await?;
        if left.is_none() {
            sqlx::query("DELETE FROM bus_parked_wallets WHERE handler = $1 AND wallet_id = $2")
                .bind(handler)
                .bind(wallet_id)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(left.is_none())
    }

    /// A replayed letter of `wallet_id` was refused again: it is counted
    /// already (once at least), and the wallet's other replayed letters wait.
    pub(crate) async fn stall(&self, handler: &str, wallet_id: &str) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO bus_parked_wallets (handler, wallet_id, letters, stalled) \
             VALUES ($1, $2, 1, true) \
             ON CONFLICT (handler, wallet_id) DO UPDATE SET stalled = true",
        )
        .bind(handler)
        .bind(wallet_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A replay starts: every wallet of `handler` may be tried again.
    pub(crate) async fn unstall(&self, handler: &str) -> Result<(), BusError> {
        sqlx::query("UPDATE bus_parked_wallets SET stalled = false WHERE handler = $1")
            .bind(handler)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Which wallets of one batch are parked, and from where.
pub(crate) struct Parking {
    /// False without a parked-wallets table: nothing is parked behind.
    keeps_order: bool,
    /// Parked before the batch, each with whether it is stalled.
    before: HashMap<String, bool>,
    /// Parked by a message of the batch: from its offset on (a wallet's
    /// messages share a partition, so offsets order them).
    from_offset: HashMap<String, i64>,
}

impl Parking {
    /// `message` was parked: its wallet's later messages park behind it.
    pub(crate) fn parked_from(&mut self, message: &OwnedMessage) {
        if let (true, Some(wallet_id)) = (self.keeps_order, wallet_key(message)) {
            self.from_offset
                .entry(wallet_id)
                .or_insert(message.offset());
        }
    }

    /// Whether the wallet of `message` is parked at its offset, and if so
    /// whether it is stalled.
    fn state(&self, message: &OwnedMessage) -> Option<bool> {
        let wallet_id = wallet_key(message)?;
        if let Some(stalled) = self.before.get(&wallet_id) {
            return Some(*stalled);
        }
        let from = self.from_offset.get(&wallet_id)?;
        (message.offset() > *from).then_some(false)
    }

    /// Whether `message` must be parked behind its wallet's letters.
    pub(crate) fn is_parked(&self, message: &OwnedMessage) -> bool {
        self.state(message).is_some()
    }
}

/// Where an event goes, given its wallet's parked state (`Some(stalled)`).
pub(crate) fn route(parked: Option<bool>, replayed: bool) -> Route {
    match (parked, replayed) {
        (None, _) => Route::Handle,
        (Some(_), false) => Route::ParkBehind,
        (Some(false), true) => Route::Replay,
        (Some(true), true) => Route::ParkAgain,
    }
}

impl Worker<'_> {
    /// Parks `message` on the dead-letter topic and, with a parked-wallets
    /// table, counts it as a letter of its wallet (its key), so the wallet's
    /// later events are parked behind it; a replayed letter parked again is
    /// counted already, and stalls its wallet's other replayed letters.
    pub(crate) async fn park(&self, message: &OwnedMessage, error: &str) -> Result<(), BusError> {
        self.dead_letter(message, error).await?;
        let (Some(parked), Some(wallet_id)) = (&self.config.parked, wallet_key(message)) else {
            return Ok(());
        };
        if self.replayed(message) {
            parked.stall(self.handler.name(), &wallet_id).await
        } else {
            parked.add_letter(self.handler.name(), &wallet_id).await
        }
    }

    /// Whether `message` is a dead letter a replay put back for this handler.
    fn replayed(&self, message: &OwnedMessage) -> bool {
        headers::value(message.headers(), HEADER_REPLAYED_FOR).as_deref()
            == Some(self.handler.name())
    }

    /// Whether `message` is a dead letter a replay put back for another
    /// handler: this one took it when it first came (or parked its own copy,
    /// which its own replay brings back), so it passes it by, decodable or
    /// not, instead of handling or parking it a second time.
    pub(crate) fn replayed_for_another(&self, message: &OwnedMessage) -> bool {
        headers::value(message.headers(), HEADER_REPLAYED_FOR)
            .is_some_and(|handler| handler != self.handler.name())
    }

    /// Parks `message` behind the earlier letters of its wallet.
    pub(crate) async fn park_behind(&self, message: &OwnedMessage) -> Result<(), BusError> {
        let wallet_id = wallet_key(message).unwrap_or_default();
        self.park(message, &behind(&wallet_id)).await
    }

    /// Which wallets of a batch are parked before it is looked at (by the
    /// messages' keys); `None` when shutdown came while the table was away.
    pub(crate) async fn parking(
        &self,
        messages: &[OwnedMessage],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Parking> {
        let mut wallet_ids: Vec<String> = messages.iter().filter_map(wallet_key).collect();
        wallet_ids.sort_unstable();
        wallet_ids.dedup();
        let before = self.parked_wallets(&wallet_ids, shutdown).await?;
        Some(Parking {
            keeps_order: self.config.parked.is_some(),
            before,
            from_offset: HashMap::new(),
        })
    }

    /// The parked wallets among `wallet_ids` (none without a table). The
    /// table's database away is transient: asked again with the handler's
    /// backoff until it answers; `None` when shutdown came first.
    async fn parked_wallets(
        &self,
        wallet_ids: &[String],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<HashMap<String, bool>> {
        let Some(parked) = &self.config.parked else {
            return Some(HashMap::new());
        };
        let mut attempt: u32 = 0;
        loop {
            match parked.parked(self.handler.name(), wallet_ids).await {
                Ok(found) => return Some(found),
                Err(error) => {
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(handler = self.handler.name(), %error, attempt, "cannot read the parked wallets; retrying until it answers");
                }
            }
            let pause = Duration::from_millis(self.config.backoff_ms(attempt));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return None,
            }
        }
    }

    /// Takes the events of parked wallets out of a batch: a live one is
    /// parked behind its wallet's letters, a replayed letter is handed to the
    /// handler alone (the wallet flows again after its last), or parked again
    /// after one of its wallet was refused again. The rest is returned for
    /// the handler; `None` when shutdown came while a letter was retried.
    pub(crate) async fn route_parked<'m>(
        &self,
        events: Vec<RecordedEvent>,
        sources: Vec<&'m OwnedMessage>,
        parking: &mut Parking,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<RoutedBatch<'m>>, BusError> {
        let Some(parked) = &self.config.parked else {
            return Ok(Some((events, sources)));
        };
        if parking.before.is_empty() && parking.from_offset.is_empty() {
            return Ok(Some((events, sources)));
        }
        let name = self.handler.name();
        let mut kept = (
            Vec::with_capacity(events.len()),
            Vec::with_capacity(events.len()),
        );
        for (event, source) in events.into_iter().zip(sources) {
            let wallet_id = event.event.wallet_id.to_string();
            match route(parking.state(source), self.replayed(source)) {
                Route::Handle => {
                    kept.0.push(event);
                    kept.1.push(source);
                }
                Route::ParkBehind => self.park(source, &behind(&wallet_id)).await?,
                Route::ParkAgain => {
                    let why = format!(
                        "{}; an earlier replayed one was refused again",
                        behind(&wallet_id)
                    );
                    self.dead_letter(source, &why).await?;
                }
                // Without offsets: the batch's delivery moves them past it.
                Route::Replay => match self
                    .handle_with_retries(std::slice::from_ref(&event), &[source], None, shutdown)
                    .await
                {
                    Attempts::Handled => {
                        self.count_processed(std::slice::from_ref(&event));
                        if parked.take_letter(name, &wallet_id).await? {
                            parking.before.remove(&wallet_id);
                        }
                    }
                    Attempts::Interrupted => return Ok(None),
                    Attempts::OffsetsMoved(_) => {
                        unreachable!("a delivery without offsets cannot find them moved")
                    }
                    Attempts::Failed(error) => {
                        self.park(source, &error.to_string()).await?;
                        parking.before.insert(wallet_id, true);
                    }
                },
            }
        }
        Ok(Some(kept))
    }
}

/// A batch's events for the handler, each with the message it came in.
pub(crate) type RoutedBatch<'m> = (Vec<RecordedEvent>, Vec<&'m OwnedMessage>);

/// Why an event is parked behind its wallet's letters.
fn behind(wallet_id: &str) -> String {
    format!("wallet {wallet_id} has an earlier event on the dead-letter topic for this handler")
}

/// The wallet a message is keyed by (the publisher keys every event by it).
fn wallet_key(message: &OwnedMessage) -> Option<String> {
    let key = message.key()?;
    std::str::from_utf8(key).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_wallets_live_events_park_behind_and_its_replayed_ones_go_until_one_is_refused() {
        assert_eq!(route(None, false), Route::Handle);
        assert_eq!(route(None, true), Route::Handle);
        assert_eq!(route(Some(false), false), Route::ParkBehind);
        assert_eq!(route(Some(false), true), Route::Replay);
        assert_eq!(route(Some(true), false), Route::ParkBehind);
        assert_eq!(route(Some(true), true), Route::ParkAgain);
    }
}
