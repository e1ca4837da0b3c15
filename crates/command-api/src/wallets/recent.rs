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

/// Events of one chunk at most. Adding an event to kept events whose last
/// chunk another copy shares copies that chunk's pointers and the list of
/// chunks (at most [`RECENT_EVENTS_PER_WALLET`] / `CHUNK_EVENTS` + 1), not
/// every kept event's: each command on a cached wallet adds its events to
/// a copy of the cached ones.
const CHUNK_EVENTS: usize = 16;

/// Consecutive events of a stream, at most [`CHUNK_EVENTS`], shared by the
/// copies of [`RecentEvents`] that hold them.
type Chunk = Vec<Arc<WalletEvent>>;

/// The newest events of one wallet's stream, the last at the version of the
/// wallet they are kept with (the cache entry's invariant), at most
/// [`RECENT_EVENTS_PER_WALLET`]. Cloning shares them; adding one copies at
/// most a chunk's and the chunk list's pointers.
#[derive(Debug, Clone, Default)]
pub struct RecentEvents {
    /// Oldest first; every chunk but the last is full.
    chunks: Arc<VecDeque<Arc<Chunk>>>,
    /// Events of the first chunk that are older than the kept ones: shared
    /// with older copies, so dropped only with their whole chunk.
    skipped: usize,
    /// Events kept, those after `skipped`.
    len: usize,
    /// The kept events' approximate bytes in memory ([`event_bytes`]); the
    /// skipped ones, fewer than [`CHUNK_EVENTS`], are not counted.
    bytes: u64,
}

impl PartialEq for RecentEvents {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for RecentEvents {}

impl RecentEvents {
    /// Adds `event`, the stream's next, dropping the oldest beyond the bound.
    pub fn push(&mut self, event: WalletEvent) {
        self.push_shared(Arc::new(event));
    }

    fn push_shared(&mut self, event: Arc<WalletEvent>) {
        self.bytes += event_bytes(&event);
        self.len += 1;
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.back_mut() {
            Some(last) if last.len() < CHUNK_EVENTS => {
                // A shared chunk is copied with room for the chunk's rest.
                if Arc::get_mut(last).is_none() {
                    let mut copy = Vec::with_capacity(CHUNK_EVENTS);
                    copy.extend(last.iter().cloned());
                    *last = Arc::new(copy);
                }
                Arc::make_mut(last).push(event);
            }
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
                chunk.push(event);
                chunks.push_back(Arc::new(chunk));
            }
        }
        self.keep_bound();
    }

    /// `self`, kept up to `version`, followed by `next`, whose first event
    /// is at `version + 1`.
    pub fn followed_by(&self, next: &RecentEvents) -> RecentEvents {
        let mut joined = self.clone();
        for event in next.shared() {
            joined.push_shared(Arc::clone(event));
        }
        joined
    }

    /// Drops the oldest events beyond [`RECENT_EVENTS_PER_WALLET`], and a
    /// first chunk once none of its events is kept.
    fn keep_bound(&mut self) {
        while self.len > RECENT_EVENTS_PER_WALLET {
            let Some(first) = self.chunks.front() else {
                unreachable!("{} events kept in no chunk", self.len)
            };
            self.bytes -= event_bytes(&first[self.skipped]);
            self.skipped += 1;
            self.len -= 1;
            if self.skipped == first.len() {
                Arc::make_mut(&mut self.chunks).pop_front();
                self.skipped = 0;
            }
        }
    }

    /// The kept events, oldest first, as shared.
    fn shared(&self) -> impl Iterator<Item = &Arc<WalletEvent>> {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter())
            .skip(self.skipped)
    }

    /// The kept events, oldest first.
    fn iter(&self) -> impl Iterator<Item = &WalletEvent> {
        self.shared().map(|event| &**event)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The kept events' approximate bytes in memory.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The newest `count` events with their versions, oldest first, when
    /// all of them are kept; `version` is the newest one's.
    pub fn newest(&self, count: usize, version: u64) -> Option<Vec<(u64, &WalletEvent)>> {
        let skipped = self.len.checked_sub(count)?;
        let first_version = version + 1 - count as u64;
        Some((first_version..).zip(self.iter().skip(skipped)).collect())
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

    proptest::proptest! {
        /// Whatever the pushes and joins, and whichever copies they are made
        /// on, each copy keeps exactly the newest events of its own stream,
        /// up to the bound, with their bytes; a copy never sees another's.
        #[test]
        fn copies_keep_their_own_newest_events(
            steps in proptest::collection::vec((0usize..4, 0usize..40), 1..60)
        ) {
            // Each copy with the model of its whole stream, as event numbers.
            let mut copies: Vec<(RecentEvents, Vec<usize>)> = vec![Default::default()];
            let mut next = 0;
            for (pick, count) in steps {
                let (held, model) = copies[pick % copies.len()].clone();
                let mut added = RecentEvents::default();
                let mut stream = model.clone();
                for _ in 0..count {
                    added.push(credited(next));
                    stream.push(next);
                    next += 1;
                }
                let mut pushed = held.clone();
                for n in &stream[model.len()..] {
                    pushed.push(credited(*n));
                }
                let joined = held.followed_by(&added);
                proptest::prop_assert_eq!(&joined, &pushed);
                copies.push((joined, stream));
            }
            for (kept, stream) in &copies {
                let newest = &stream[stream.len().saturating_sub(RECENT_EVENTS_PER_WALLET)..];
                proptest::prop_assert_eq!(kept.len(), newest.len());
                let expected: Vec<WalletEvent> = newest.iter().map(|n| credited(*n)).collect();
                proptest::prop_assert!(kept.iter().eq(expected.iter()));
                let bytes: u64 = expected.iter().map(event_bytes).sum();
                proptest::prop_assert_eq!(kept.bytes(), bytes);
            }
        }
    }
}
