//! How many commands run at once in this process: the rest wait their turn
//! in the order they came.
//!
//! A command holds its wallets' locks while its append waits in the event
//! store's queue, so under overload every command running makes the others
//! on its wallets wait longer, and a transfer holding one wallet while it
//! waits for the other makes a chain of them. With 2,000 connections and
//! every command running at once, a few waited past the lock's 10 s and
//! were refused while the median waited 0.3–0.9 s (h108 F1). With a bounded
//! number running, the commands queue for a turn, first come first served
//! (tokio's semaphore is fair), and a lock holder does not wait behind
//! hundreds of other appends.
//!
//! A command's turn comes first and its wallets' locks with it when they
//! are free, so a lock is held only by a command that runs; when a wallet
//! is busy the command gives its turn back and waits at the wallet's lock,
//! then runs without queueing again, as the command before it on the wallet
//! ran (`WalletService::lease_and_turn`). Commands queued on one busy
//! wallet thus hold no turn from the other wallets' (h109 F1: when each
//! held a turn while it waited for the lock, 9,000 credits to one wallet
//! held all 256 turns and credits to another waited 11.5 s or were
//! refused).

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Commands of this process that run at once (decide, append, answer). Far
/// above what a group commit takes in one batch on the embedded default
/// (about 35 appends at 400 connections), so the event store's writer
/// never waits for work while commands queue.
pub const COMMANDS_IN_FLIGHT_MAX: usize = 256;

/// How long a command waits for its turn before it is refused as
/// [`Overloaded`], in ms: as long as it may then wait for its wallets'
/// locks (`wallet_lock::LOCK_WAIT_MAX_MS`).
pub const ADMISSION_WAIT_MAX_MS: u64 = 10_000;

/// Every command's turn at [`COMMANDS_IN_FLIGHT_MAX`] at a time.
pub struct Admission {
    turns: Semaphore,
}

/// The command waited [`ADMISSION_WAIT_MAX_MS`] for its turn: the server
/// is overloaded; the request may be retried.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the server is busy: {COMMANDS_IN_FLIGHT_MAX} commands are running and this one waited \
     {ADMISSION_WAIT_MAX_MS} ms for its turn; retry the request"
)]
pub struct Overloaded;

impl Default for Admission {
    fn default() -> Self {
        Self {
            turns: Semaphore::new(COMMANDS_IN_FLIGHT_MAX),
        }
    }
}

impl Admission {
    /// Waits for a turn; the turn ends when the permit drops.
    pub async fn admit(&self) -> Result<SemaphorePermit<'_>, Overloaded> {
        match tokio::time::timeout(
            Duration::from_millis(ADMISSION_WAIT_MAX_MS),
            self.turns.acquire(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one admits nothing.
            Ok(Err(_)) | Err(_) => Err(Overloaded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn commands_past_the_bound_wait_for_a_turn_then_are_refused() {
        let admission = Admission::default();
        let running: Vec<SemaphorePermit<'_>> =
            futures::future::join_all((0..COMMANDS_IN_FLIGHT_MAX).map(|_| admission.admit()))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("admitted up to the bound");
        // One more waits the whole wait, then is refused.
        let started = tokio::time::Instant::now();
        assert!(admission.admit().await.is_err());
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(ADMISSION_WAIT_MAX_MS)
        );
        // A turn that ends admits the next waiting.
        let mut waiting = Box::pin(admission.admit());
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(running);
        assert!(waiting.await.is_ok());
    }
}
