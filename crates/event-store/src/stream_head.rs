//! The optimistic-concurrency check of an append, shared by the stores that
//! check it themselves rather than in one SQL statement.
//!
//! A stream's head is its newest event: the version it is at and that event's
//! id. An append to it is admitted when the head is the one its writer decided
//! on ([`StreamAppend::expected_version`] and, when given,
//! [`StreamAppend::expected_last_event_id`]); [`plan_group`] applies a group of
//! appends in order to the heads read before the group, as one committed
//! after another would see them.

use std::collections::HashMap;

use uuid::Uuid;
use wallet_domain::WalletId;

use crate::{AppendError, AppendRequest, StreamAppend};

/// The newest event of a stream as stored: `version` 0 and no id for a
/// stream that does not exist yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamHead {
    pub version: u64,
    pub last_event_id: Option<Uuid>,
}

impl StreamHead {
    /// `Ok` when `stream` was decided on this head; otherwise the refusal:
    /// [`AppendError::VersionConflict`] when the version differs,
    /// [`AppendError::LastEventMismatch`] when the version matches but the
    /// event there is not the one the writer saw.
    pub fn admits(&self, stream: &StreamAppend) -> Result<(), AppendError> {
        if self.version != stream.expected_version {
            return Err(AppendError::VersionConflict {
                wallet_id: stream.wallet_id.clone(),
                expected: stream.expected_version,
                actual: self.version,
            });
        }
        match stream.expected_last_event_id {
            Some(expected) if self.last_event_id != Some(expected) => {
                Err(AppendError::LastEventMismatch {
                    wallet_id: stream.wallet_id.clone(),
                    version: self.version,
                })
            }
            _ => Ok(()),
        }
    }

    /// The head once `stream`'s events are stored on this one.
    pub fn after(&self, stream: &StreamAppend) -> StreamHead {
        match stream.events.last() {
            Some(last) => StreamHead {
                version: self.version + stream.events.len() as u64,
                last_event_id: Some(last.event_id),
            },
            None => *self,
        }
    }
}

/// The heads of a group's streams as its appends are decided one after
/// another, as one committed after another would see them. Starts from the
/// heads read before the group (a stream missing from them does not exist).
pub(crate) struct GroupHeads {
    heads: HashMap<WalletId, StreamHead>,
}

/// An append admitted on every one of its streams: the heads it leaves them at
/// once stored, for [`GroupHeads::apply`].
pub(crate) struct Admitted<'a> {
    moved: HashMap<&'a WalletId, StreamHead>,
}

impl GroupHeads {
    pub fn new(heads: HashMap<WalletId, StreamHead>) -> Self {
        Self { heads }
    }

    /// Whether `request` is admitted on the heads so far: the first stream's
    /// refusal otherwise. Moves no head: an append is all or nothing, and
    /// only its caller knows whether it was stored.
    pub fn admit<'a>(&self, request: &'a AppendRequest) -> Result<Admitted<'a>, AppendError> {
        let mut moved: HashMap<&WalletId, StreamHead> = HashMap::new();
        for stream in &request.streams {
            let head = moved
                .get(&stream.wallet_id)
                .or_else(|| self.heads.get(&stream.wallet_id))
                .copied()
                .unwrap_or_default();
            head.admits(stream)?;
            moved.insert(&stream.wallet_id, head.after(stream));
        }
        Ok(Admitted { moved })
    }

    /// Moves the heads on past an admitted append that was stored.
    pub fn apply(&mut self, admitted: Admitted<'_>) {
        for (wallet_id, head) in admitted.moved {
            self.heads.insert(wallet_id.clone(), head);
        }
    }
}

/// What each of `requests`, applied in order on `heads`, is answered when
/// every admitted append is stored: `Ok` for an append admitted on every one
/// of its streams, which moves those heads on for the appends after it; the
/// first stream's refusal otherwise, which leaves every head as it was.
pub(crate) fn plan_group<'a>(
    heads: HashMap<WalletId, StreamHead>,
    requests: impl IntoIterator<Item = &'a AppendRequest>,
) -> Vec<Result<(), AppendError>> {
    let mut group = GroupHeads::new(heads);
    requests
        .into_iter()
        .map(|request| {
            let admitted = group.admit(request)?;
            group.apply(admitted);
            Ok(())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rust_decimal::Decimal;
    use wallet_domain::{
        decide, Balance, Command, CommandKind, EventMetadata, OwnerId, WalletEvent,
    };

    use super::*;

    fn wallet(raw: &str) -> WalletId {
        WalletId::parse(raw).expect("valid wallet id")
    }

    /// A real event of `wallet_id` (its content does not matter to the plan).
    fn event(wallet_id: &WalletId) -> WalletEvent {
        let command = Command {
            wallet_id: wallet_id.clone(),
            kind: CommandKind::Create {
                owner_id: OwnerId::parse("owner").expect("valid owner id"),
                initial_balance: Balance::opening("initialBalance", Decimal::ONE)
                    .expect("valid balance"),
                overdraft_limit: Balance::ZERO,
            },
            event_id: Uuid::now_v7(),
            issued_at: Utc::now(),
            metadata: EventMetadata::default(),
        };
        decide(&Default::default(), &command)
            .expect("a new wallet is created")
            .remove(0)
    }

    fn append(wallet_id: &WalletId, expected_version: u64, last: Option<Uuid>) -> StreamAppend {
        StreamAppend {
            wallet_id: wallet_id.clone(),
            expected_version,
            expected_last_event_id: last,
            events: vec![event(wallet_id), event(wallet_id)],
        }
    }

    fn request(streams: Vec<StreamAppend>) -> AppendRequest {
        AppendRequest {
            streams,
            idempotent_response: None,
        }
    }

    #[test]
    fn a_new_stream_admits_only_version_zero_with_no_last_event() {
        let a = wallet("w-a");
        let head = StreamHead::default();
        assert!(head.admits(&append(&a, 0, None)).is_ok());
        assert!(matches!(
            head.admits(&append(&a, 1, None)),
            Err(AppendError::VersionConflict {
                expected: 1,
                actual: 0,
                ..
            })
        ));
        assert!(matches!(
            head.admits(&append(&a, 0, Some(Uuid::now_v7()))),
            Err(AppendError::LastEventMismatch { version: 0, .. })
        ));
    }

    #[test]
    fn the_version_and_the_last_event_must_both_match() {
        let a = wallet("w-a");
        let seen = Uuid::now_v7();
        let head = StreamHead {
            version: 3,
            last_event_id: Some(seen),
        };
        assert!(head.admits(&append(&a, 3, Some(seen))).is_ok());
        assert!(head.admits(&append(&a, 3, None)).is_ok());
        assert!(matches!(
            head.admits(&append(&a, 3, Some(Uuid::now_v7()))),
            Err(AppendError::LastEventMismatch { version: 3, .. })
        ));
        assert!(matches!(
            head.admits(&append(&a, 2, Some(seen))),
            Err(AppendError::VersionConflict {
                expected: 2,
                actual: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_group_moves_heads_on_for_the_appends_after_an_admitted_one() {
        let a = wallet("w-a");
        let first = request(vec![append(&a, 0, None)]);
        let last_of_first = first.streams[0].events[1].event_id;
        let second = request(vec![append(&a, 2, Some(last_of_first))]);
        let stale = request(vec![append(&a, 2, None)]);
        let outcomes = plan_group(HashMap::new(), [&first, &second, &stale]);
        assert!(outcomes[0].is_ok());
        assert!(outcomes[1].is_ok());
        assert!(matches!(
            outcomes[2],
            Err(AppendError::VersionConflict {
                expected: 2,
                actual: 4,
                ..
            })
        ));
    }

    #[test]
    fn a_refused_append_moves_no_head_not_even_of_its_admitted_streams() {
        let a = wallet("w-a");
        let b = wallet("w-b");
        let half = request(vec![append(&a, 0, None), append(&b, 5, None)]);
        let after = request(vec![append(&a, 0, None)]);
        let outcomes = plan_group(HashMap::new(), [&half, &after]);
        assert!(matches!(
            &outcomes[0],
            Err(AppendError::VersionConflict { wallet_id, expected: 5, actual: 0 }) if *wallet_id == b
        ));
        assert!(outcomes[1].is_ok());
    }

    #[test]
    fn an_admitted_append_not_stored_moves_no_head() {
        let a = wallet("w-a");
        let mut group = GroupHeads::new(HashMap::new());
        let refused_by_the_database = request(vec![append(&a, 0, None)]);
        assert!(group.admit(&refused_by_the_database).is_ok());
        let next = request(vec![append(&a, 0, None)]);
        let admitted = group.admit(&next).expect("the stream is still new");
        group.apply(admitted);
        assert!(matches!(
            group.admit(&request(vec![append(&a, 0, None)])),
            Err(AppendError::VersionConflict {
                expected: 0,
                actual: 2,
                ..
            })
        ));
    }

    #[test]
    fn heads_read_before_the_group_are_where_it_starts() {
        let a = wallet("w-a");
        let seen = Uuid::now_v7();
        let heads = HashMap::from([(
            a.clone(),
            StreamHead {
                version: 7,
                last_event_id: Some(seen),
            },
        )]);
        let outcomes = plan_group(
            heads,
            [
                &request(vec![append(&a, 0, None)]),
                &request(vec![append(&a, 7, Some(seen))]),
            ],
        );
        assert!(matches!(
            outcomes[0],
            Err(AppendError::VersionConflict {
                expected: 0,
                actual: 7,
                ..
            })
        ));
        assert!(outcomes[1].is_ok());
    }
}
