//! A cached wallet's newest events, so that a wallet read can show its audit
//! trail (`http::audit_trail`) without reading the stream again.
//!
//! The events are the ones the cache entry was folded from or appended, in
//! stream order, the newest at the wallet's own version: they are checked
//! against the store exactly as the entry's state is (its last event's id).

use std::collections::VecDeque;
use std::sync::Arc;

use wallet_domain::WalletEvent;

use super::footprint::event_bytes;

/// Events a cached wallet keeps of its stream at most: its newest ones, as
/// many as a wallet read shows in its audit trail.
pub const RECENT_EVENTS_PER_WALLET: usize = 100;

/// The newest events of one wallet's stream, the last at the version of the
/// wallet they are kept with (the cache entry's invariant). Cloning shares
/// them; adding copies at most [`RECENT_EVENTS_PER_WALLET`] pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentEvents {
    events: Arc<VecDeque<Arc<WalletEvent>>>,
    /// The events' approximate bytes in memory ([`event_bytes`]).
    bytes: u64,
}

impl RecentEvents {
    /// Adds `event`, the stream's next, dropping the oldest beyond the bound.
    pub fn push(&mut self, event: WalletEvent) {
        self.bytes += event_bytes(&event);
        Arc::make_mut(&mut self.events).push_back(Arc::new(event));
        self.keep_bound();
    }

    /// `self`, kept up to `version`, followed by `next`, whose first event
    /// is at `version + 1`.
    pub fn followed_by(&self, next: &RecentEvents) -> RecentEvents {
        let mut joined = self.clone();
        Arc::make_mut(&mut joined.events).extend(next.events.iter().cloned());
        joined.bytes += next.bytes;
        joined.keep_bound();
        joined
    }

    /// Drops the oldest events beyond [`RECENT_EVENTS_PER_WALLET`].
    fn keep_bound(&mut self) {
        while self.events.len() > RECENT_EVENTS_PER_WALLET {
            if let Some(oldest) = Arc::make_mut(&mut self.events).pop_front() {
                self.bytes -= event_bytes(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The kept events' approximate bytes in memory.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The newest `count` events with their versions, oldest first, when
    /// all of them are kept; `version` is the newest one's.
    pub fn newest(&self, count: usize, version: u64) -> Option<Vec<(u64, &WalletEvent)>> {
        let skipped = self.events.len().checked_sub(count)?;
        let first_version = version + 1 - count as u64;
        Some(
            (first_version..)
                .zip(self.events.iter().skip(skipped).map(|event| &**event))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;
    use uuid::Uuid;
    use wallet_domain::{Amount, Balance, EventKind, EventMetadata, WalletId};

    use super::*;

    /// The `n`th credit of a wallet: 1 + `n` cents.
    fn credited(n: usize) -> WalletEvent {
        let cents = Decimal::new(1 + n as i64, 2);
        WalletEvent {
            event_id: Uuid::from_u128(n as u128),
            wallet_id: WalletId::parse("w-1").expect("valid id"),
            occurred_at: chrono::DateTime::<Utc>::UNIX_EPOCH,
            balance_after: Balance::ZERO,
            metadata: EventMetadata::default(),
            kind: EventKind::WalletCredited {
                amount: Amount::try_from(cents).expect("a positive amount"),
                description: None,
            },
        }
    }

    fn events(count: usize) -> RecentEvents {
        let mut recent = RecentEvents::default();
        for n in 0..count {
            recent.push(credited(n));
        }
        recent
    }

    #[test]
    fn it_keeps_the_newest_events_up_to_its_bound() {
        let recent = events(RECENT_EVENTS_PER_WALLET + 3);
        assert_eq!(recent.len(), RECENT_EVENTS_PER_WALLET);
        let newest = recent.newest(2, 500).expect("kept");
        assert_eq!(newest[0], (499, &credited(RECENT_EVENTS_PER_WALLET + 1)));
        assert_eq!(newest[1], (500, &credited(RECENT_EVENTS_PER_WALLET + 2)));
        assert!(recent.newest(RECENT_EVENTS_PER_WALLET + 1, 500).is_none());
    }

    #[test]
    fn its_bytes_are_those_of_the_events_it_keeps() {
        let mut recent = events(RECENT_EVENTS_PER_WALLET);
        let one = event_bytes(&credited(0));
        assert_eq!(recent.bytes(), one * RECENT_EVENTS_PER_WALLET as u64);
        let mut described = credited(7);
        if let wallet_domain::EventKind::WalletCredited { description, .. } = &mut described.kind {
            *description =
                Some(wallet_domain::Description::parse(&"x".repeat(400)).expect("a description"));
        }
        recent.push(described);
        assert_eq!(recent.len(), RECENT_EVENTS_PER_WALLET);
        assert_eq!(
            recent.bytes(),
            one * (RECENT_EVENTS_PER_WALLET as u64 - 1) + one + 400
        );
        let joined = recent.followed_by(&events(3));
        // Three more in, the three oldest out: the described one is kept.
        assert_eq!(joined.bytes(), recent.bytes());
    }

    #[test]
    fn a_join_keeps_stream_order_and_the_bound() {
        let joined = events(RECENT_EVENTS_PER_WALLET - 1).followed_by(&events(2));
        assert_eq!(joined.len(), RECENT_EVENTS_PER_WALLET);
        let newest = joined.newest(3, 10).expect("kept");
        assert_eq!(
            newest,
            vec![
                (8, &credited(RECENT_EVENTS_PER_WALLET - 2)),
                (9, &credited(0)),
                (10, &credited(1)),
            ]
        );
    }
}
