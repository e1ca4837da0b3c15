//! A sink as the relay hands it batches: with a dead-letter store, an event
//! the sink refuses for good is found, parked and stepped over; without one,
//! every failure is retried (the Kafka publisher's relay: Kafka has no
//! permanent refusal of bytes).

use std::collections::HashSet;
use std::error::Error;

use event_sink::{DeliveryError, EventSink};
use event_store::StoredEvent;

use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::RelayError;

/// Where the relay delivers: a sink, and where it parks what the sink
/// refuses for good, if anywhere.
#[derive(Clone, Copy)]
pub struct Outlet<'a> {
    sink: &'a dyn EventSink,
    dead_letters: Option<&'a dyn DeadLetterStore>,
}

impl<'a, S: EventSink + 'a> From<&'a S> for Outlet<'a> {
    /// A sink without a dead-letter store: every failure is retried.
    fn from(sink: &'a S) -> Self {
        Self::new(sink, None)
    }
}

impl<'a> Outlet<'a> {
    /// `sink`, parking what it refuses for good in `dead_letters` when given.
    pub fn new(sink: &'a dyn EventSink, dead_letters: Option<&'a dyn DeadLetterStore>) -> Self {
        Self { sink, dead_letters }
    }

    pub(crate) fn sink(&self) -> &'a dyn EventSink {
        self.sink
    }

    /// Where the relay reads on from: the sink's checkpoint, or the last
    /// event parked for it when that is further (a parked event does not
    /// move the sink's checkpoint, and is durable before it is read past).
    pub(crate) async fn checkpoint(&self) -> Result<u64, RelayError> {
        let checkpoint = self.sink.checkpoint().await?;
        match self.dead_letters {
            Some(dead_letters) => {
                let parked = dead_letters.parked_through(self.sink.name()).await?;
                Ok(checkpoint.max(parked))
            }
            None => Ok(checkpoint),
        }
    }

    /// Hands a batch to the sink; its last position, `None` for an empty
    /// batch. With a dead-letter store, the events of wallets already parked
    /// are parked behind them, the others go to the sink in runs, and a run
    /// refused for good is delivered event by event to find what it refuses.
    /// A transient failure returns at once: what was taken and parked before
    /// it stays behind the checkpoint, the rest comes again.
    pub(crate) async fn deliver(&self, batch: &[StoredEvent]) -> Result<Option<u64>, RelayError> {
        let Some(last) = batch.last().map(|event| event.position) else {
            return Ok(None);
        };
        let Some(dead_letters) = self.dead_letters else {
            self.sink.deliver_stored(batch).await?;
            return Ok(Some(last));
        };
        let mut parked = dead_letters.parked_wallets(self.sink.name()).await?;
        let mut start = 0;
        while let Some(event) = batch.get(start) {
            if let Some(wallet_id) = parked_wallet(&parked, event) {
                let why = format!("wallet {wallet_id} has an earlier event parked for this sink");
                self.park(dead_letters, event, why).await?;
                start += 1;
                continue;
            }
            let run_end = batch[start..]
                .iter()
                .position(|event| parked_wallet(&parked, event).is_some())
                .map_or(batch.len(), |offset| start + offset);
            self.deliver_run(dead_letters, &batch[start..run_end], &mut parked)
                .await?;
            start = run_end;
        }
        Ok(Some(last))
    }

    /// Delivers `run` (no event of a parked wallet in it) whole; refused for
    /// good, event by event, parking what is refused and every later event
    /// of its wallet. At most `run.len() + 1` deliveries.
    async fn deliver_run(
        &self,
        dead_letters: &dyn DeadLetterStore,
        run: &[StoredEvent],
        parked: &mut HashSet<String>,
    ) -> Result<(), RelayError> {
        match self.sink.deliver_stored(run).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) if run.len() == 1 => {
                return self.refused(dead_letters, &run[0], &error, parked).await
            }
            Err(error) => tracing::warn!(
                sink = self.sink.name(),
                %error,
                size = run.len(),
                "batch refused for good; delivering its events one by one"
            ),
        }
        for event in run {
            if let Some(wallet_id) = parked_wallet(parked, event) {
                let why = format!("wallet {wallet_id} has an earlier event parked for this sink");
                self.park(dead_letters, event, why).await?;
                continue;
            }
            match self.sink.deliver_stored(std::slice::from_ref(event)).await {
                Ok(()) => {}
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(error) => self.refused(dead_letters, event, &error, parked).await?,
            }
        }
        Ok(())
    }

    /// Parks `event`, refused for good with `error`, and marks its wallet parked.
    async fn refused(
        &self,
        dead_letters: &dyn DeadLetterStore,
        event: &StoredEvent,
        error: &DeliveryError,
        parked: &mut HashSet<String>,
    ) -> Result<(), RelayError> {
        let letter = self.park(dead_letters, event, error_chain(error)).await?;
        if !letter.wallet_id.is_empty() {
            parked.insert(letter.wallet_id);
        }
        Ok(())
    }

    async fn park(
        &self,
        dead_letters: &dyn DeadLetterStore,
        event: &StoredEvent,
        why: String,
    ) -> Result<DeadLetter, RelayError> {
        let letter = DeadLetter::new(self.sink.name(), event, why);
        dead_letters.park(&letter).await?;
        tracing::warn!(
            sink = self.sink.name(),
            position = event.position,
            wallet_id = %letter.wallet_id,
            event_type = %letter.event_type,
            error = %letter.error,
            "event parked as a dead letter"
        );
        Ok(letter)
    }
}

/// The wallet of `event` when it is one of `parked`.
fn parked_wallet<'p>(parked: &'p HashSet<String>, event: &StoredEvent) -> Option<&'p String> {
    if parked.is_empty() {
        return None;
    }
    let wallet_id = event.header().ok()?.wallet_id;
    parked.get(&wallet_id)
}

/// `error` and each of its causes, outermost first, joined by ": ".
pub(crate) fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        // A Display that already ends with its cause's text is not repeated.
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}
