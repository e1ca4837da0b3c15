//! Handing a sink's dead letters back to it, once what refused them is fixed.

use std::collections::HashSet;
use std::time::Duration;

use event_sink::EventSink;

use crate::dead_letters::DeadLetterStore;
use crate::RelayError;

/// What one replay of a sink's dead letters did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcome {
    /// Dead letters the sink took, and so removed.
    pub replayed: usize,
    /// Dead letters of the sink left once the replay ended, all of them
    /// (refused again, behind one of their wallet that was, or past the
    /// replay's limit): h145 F1, a limited replay said 0 with more parked.
    pub still_parked: usize,
}

/// Rounds of one replay at most: each lists the letters anew, as a running
/// relay may park a wallet's new events behind its letters while they are
/// handed back.
pub const REPLAY_ROUNDS_MAX: usize = 16;
/// Pause before each round after the first, in ms: long enough for a relay
/// batch that read a wallet's letters before their removal to park what it
/// holds of that wallet.
pub const REPLAY_ROUND_PAUSE_MS: u64 = 250;

/// Hands up to `letters_max` of the dead letters of `sink` back to it, one
/// by one in position order, removing each once the sink took it. A letter
/// refused for good again stays, and so do the later letters of its wallet
/// (its order holds); other wallets' go on. A transient refusal stops the
/// replay with that error: what was taken is removed, the rest stays.
///
/// Safe beside a running relay of the same sink: the relay reads the parked
/// wallets again for every batch, a letter is removed only after the sink
/// took it, and so a wallet's new events are parked behind its letters until
/// the last of them is taken. Those parked while a round ran are handed back
/// by the next: rounds go on, up to [`REPLAY_ROUNDS_MAX`], until one hands
/// back nothing (h144 F2: a replay said "0 still parked" while letters
/// parked behind the ones it took stayed). `still_parked` is what the last
/// round left.
///
/// # Errors
/// A transient refusal, or the dead-letter store failing.
pub async fn replay_dead_letters(
    sink: &dyn EventSink,
    dead_letters: &dyn DeadLetterStore,
    letters_max: usize,
) -> Result<ReplayOutcome, RelayError> {
    let mut outcome = ReplayOutcome {
        replayed: 0,
        still_parked: 0,
    };
    for round in 0..REPLAY_ROUNDS_MAX {
        let letters_left = letters_max.saturating_sub(outcome.replayed);
        if letters_left == 0 {
            break;
        }
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(REPLAY_ROUND_PAUSE_MS)).await;
        }
        let replayed = replay_round(sink, dead_letters, letters_left).await?;
        outcome.replayed += replayed;
        if replayed == 0 {
            break;
        }
    }
    outcome.still_parked = dead_letters
        .counts()
        .await?
        .iter()
        .find(|counted| counted.sink == sink.name())
        .map_or(0, |counted| {
            usize::try_from(counted.parked).unwrap_or(usize::MAX)
        });
    Ok(outcome)
}

/// One round of [`replay_dead_letters`], over the letters listed at its
/// start; returns how many the sink took.
async fn replay_round(
    sink: &dyn EventSink,
    dead_letters: &dyn DeadLetterStore,
    letters_max: usize,
) -> Result<usize, RelayError> {
    let letters = dead_letters.list(sink.name(), letters_max).await?;
    let mut blocked: HashSet<String> = HashSet::new();
    let mut replayed = 0;
    for letter in letters {
        if blocked.contains(&letter.wallet_id) {
            continue;
        }
        match sink
            .deliver_stored(std::slice::from_ref(&letter.event))
            .await
        {
            Ok(()) => {
                dead_letters
                    .remove(sink.name(), letter.event.position)
                    .await?;
                replayed += 1;
            }
            Err(error) if error.is_transient() => return Err(error.into()),
            Err(error) => {
                tracing::warn!(
                    sink = sink.name(),
                    position = letter.event.position,
                    %error,
                    "dead letter refused again; it and its wallet's later ones stay parked"
                );
                if !letter.wallet_id.is_empty() {
                    blocked.insert(letter.wallet_id);
                }
            }
        }
    }
    Ok(replayed)
}
