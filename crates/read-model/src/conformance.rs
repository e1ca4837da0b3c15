//! Scenarios every [`ReadModel`] must pass, whatever stores it: the tests of
//! each backend run them all (`read_model_conformance_tests!`), each against
//! a fresh, empty read model.
//!
//! Built only with the `conformance` feature; test code, so it panics on a
//! failed expectation.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use event_sink::EventSink;
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use wallet_domain::{
    Amount, Balance, EventKind, EventMetadata, HoldId, OwnerId, WalletEvent, WalletId, WalletStatus,
};

use crate::{ApplyOutcome, ReadModel, ReadModelError, WalletListQuery, WalletView};

/// A read model under test: what the relay and the API both see of it.
pub trait ReadModelUnderTest: ReadModel + EventSink {}
impl<T: ReadModel + EventSink> ReadModelUnderTest for T {}

/// One scenario, ready to run against a fresh read model.
pub type Scenario = fn(Arc<dyn ReadModelUnderTest>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

pub fn wallet(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("wallet id")
}

fn owner(raw: &str) -> OwnerId {
    OwnerId::parse(raw).expect("owner id")
}

/// `cents` hundredths as a balance.
fn balance(cents: i64) -> Balance {
    Balance::try_from(Decimal::new(cents, 2)).expect("balance")
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 10, 23, 10, 0, 0)
        .single()
        .expect("time")
}

/// Events as the store records them: global positions from 1, versions per
/// wallet from 1, one minute apart, balances carried forward.
#[derive(Default)]
pub struct Streams {
    balances: HashMap<WalletId, (u64, i64)>,
    pub recorded: Vec<RecordedEvent>,
}

impl Streams {
    /// The next event of `wallet_id`'s stream, moving its balance by
    /// `moved_cents` (zero for a hold placed or voided: its amount is the kind's).
    fn record(&mut self, wallet_id: &str, moved_cents: i64, kind: EventKind) -> RecordedEvent {
        let wallet_id = wallet(wallet_id);
        let (version, cents) = self.balances.entry(wallet_id.clone()).or_default();
        *version += 1;
        *cents += moved_cents;
        let position = u64::try_from(self.recorded.len()).expect("small log") + 1;
        let minutes = i64::try_from(position).expect("small log");
        let recorded = RecordedEvent {
            position,
            stream_version: *version,
            event: WalletEvent {
                event_id: uuid::Uuid::new_v4(),
                wallet_id,
                occurred_at: start_time() + Duration::minutes(minutes),
                balance_after: balance(*cents),
                metadata: EventMetadata::default(),
                kind,
            },
        };
        self.recorded.push(recorded.clone());
        recorded
    }

    pub fn create(&mut self, wallet_id: &str, owner_id: &str, opening_cents: i64) -> RecordedEvent {
        let kind = EventKind::WalletCreated {
            owner_id: owner(owner_id),
            opening_balance: balance(opening_cents),
            overdraft_limit: Balance::ZERO,
        };
        self.record(wallet_id, opening_cents, kind)
    }

    pub fn credit(&mut self, wallet_id: &str, cents: i64) -> RecordedEvent {
        let kind = EventKind::WalletCredited {
            amount: Amount::try_from(Decimal::new(cents, 2)).expect("amount"),
            description: None,
        };
        self.record(wallet_id, cents, kind)
    }

    pub fn debit(&mut self, wallet_id: &str, cents: i64) -> RecordedEvent {
        let kind = EventKind::WalletDebited {
            amount: Amount::try_from(Decimal::new(cents, 2)).expect("amount"),
            description: None,
        };
        self.record(wallet_id, -cents, kind)
    }

    /// A hold of `cents` placed, with no expiry: the balance stays.
    pub fn hold_placed(&mut self, wallet_id: &str, hold_id: &str, cents: i64) -> RecordedEvent {
        self.hold_placed_until(wallet_id, hold_id, cents, None)
    }

    /// A hold of `cents` placed that stops counting at `expires_at`.
    pub fn hold_placed_until(
        &mut self,
        wallet_id: &str,
        hold_id: &str,
        cents: i64,
        expires_at: Option<DateTime<Utc>>,
    ) -> RecordedEvent {
        let kind = EventKind::HoldPlaced {
            hold_id: HoldId::parse(hold_id).expect("hold id"),
            amount: Amount::try_from(Decimal::new(cents, 2)).expect("amount"),
            expires_at,
            description: None,
        };
        self.record(wallet_id, 0, kind)
    }

    /// A hold of `cents` expired: the balance stays.
    pub fn hold_expired(&mut self, wallet_id: &str, hold_id: &str, cents: i64) -> RecordedEvent {
        let kind = EventKind::HoldExpired {
            hold_id: HoldId::parse(hold_id).expect("hold id"),
            amount: Amount::try_from(Decimal::new(cents, 2)).expect("amount"),
        };
        self.record(wallet_id, 0, kind)
    }

    /// `captured` cents of a hold of `held` cents taken out, the rest released.
    pub fn hold_captured(
        &mut self,
        wallet_id: &str,
        hold_id: &str,
        captured: i64,
        held: i64,
    ) -> RecordedEvent {
        let kind = EventKind::HoldCaptured {
            hold_id: HoldId::parse(hold_id).expect("hold id"),
            amount: Amount::try_from(Decimal::new(captured, 2)).expect("amount"),
            released: balance(held - captured),
            to_wallet_id: None,
            description: None,
        };
        self.record(wallet_id, -captured, kind)
    }

    /// A hold of `cents` voided: the balance stays.
    pub fn hold_voided(&mut self, wallet_id: &str, hold_id: &str, cents: i64) -> RecordedEvent {
        let kind = EventKind::HoldVoided {
            hold_id: HoldId::parse(hold_id).expect("hold id"),
            amount: Amount::try_from(Decimal::new(cents, 2)).expect("amount"),
        };
        self.record(wallet_id, 0, kind)
    }

    /// An event that moves no money: a limit, a freeze, an unfreeze, a closing.
    pub fn update(&mut self, wallet_id: &str, kind: EventKind) -> RecordedEvent {
        self.record(wallet_id, 0, kind)
    }
}

fn all_wallets() -> WalletListQuery {
    WalletListQuery {
        limit: crate::LIST_LIMIT_DEFAULT,
        ..WalletListQuery::default()
    }
}

fn ids(views: &[WalletView]) -> Vec<String> {
    views.iter().map(|view| view.id.to_string()).collect()
}

fn outcome(applied: usize, skipped: usize) -> ApplyOutcome {
    ApplyOutcome { applied, skipped }
}

pub async fn applying_events_projects_each_wallet(read_model: Arc<dyn ReadModelUnderTest>) {
    let mut streams = Streams::default();
    let created = streams.create("w-1", "owner-a", 10_000);
    let credited = streams.credit("w-1", 5_000);
    streams.create("w-2", "owner-b", 0);
    assert_eq!(
        ReadModel::checkpoint(&*read_model)
            .await
            .expect("checkpoint"),
        0
    );

    let applied = read_model
        .apply(&streams.recorded, Some(3))
        .await
        .expect("apply");
    assert_eq!(applied, outcome(3, 0));
    assert_eq!(
        ReadModel::checkpoint(&*read_model)
            .await
            .expect("checkpoint"),
        3
    );

    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(ids(&views), ["w-1", "w-2"]);
    let first = &views[0];
    assert_eq!(first.owner_id, owner("owner-a"));
    assert_eq!(first.balance, balance(15_000));
    assert_eq!(first.version, 2);
    assert_eq!(first.created_at, created.event.occurred_at);
    assert_eq!(first.updated_at, credited.event.occurred_at);
    assert_eq!(views[1].balance, balance(0));
    assert_eq!(views[1].version, 1);
}

pub async fn events_at_or_below_the_stored_version_are_skipped(
    read_model: Arc<dyn ReadModelUnderTest>,
) {
    let mut streams = Streams::default();
    streams.create("w-1", "owner-a", 10_000);
    streams.credit("w-1", 100);
    read_model
        .deliver(&streams.recorded)
        .await
        .expect("deliver");
    assert_eq!(
        EventSink::checkpoint(&*read_model)
            .await
            .expect("checkpoint"),
        2
    );

    // Redelivered whole, then overlapping the next event.
    read_model.deliver(&streams.recorded).await.expect("again");
    streams.credit("w-1", 200);
    let overlapping = read_model
        .apply(&streams.recorded, Some(3))
        .await
        .expect("overlap");
    assert_eq!(overlapping, outcome(1, 2));
    let again = read_model
        .apply(&streams.recorded, Some(3))
        .await
        .expect("again");
    assert_eq!(again, outcome(0, 3));

    // An older batch does not move the checkpoint back.
    read_model
        .apply(&streams.recorded[..1], Some(1))
        .await
        .expect("old batch");
    assert_eq!(
        ReadModel::checkpoint(&*read_model)
            .await
            .expect("checkpoint"),
        3
    );
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].balance, balance(10_300));
    assert_eq!(views[0].version, 3);
}

pub async fn an_event_past_the_next_version_is_refused_and_nothing_of_its_batch_applies(
    read_model: Arc<dyn ReadModelUnderTest>,
) {
    let mut streams = Streams::default();
    let created = streams.create("w-1", "owner-a", 1_000);
    let second = streams.credit("w-1", 100);
    let third = streams.credit("w-1", 100);
    let other = streams.create("w-2", "owner-b", 0);
    read_model
        .apply(&[created], Some(1))
        .await
        .expect("creation");

    let refused = read_model
        .apply(&[other.clone(), third.clone()], Some(4))
        .await;
    match refused {
        Err(ReadModelError::Gap {
            wallet_id,
            stored,
            arrived,
        }) => {
            assert_eq!(wallet_id, wallet("w-1"));
            assert_eq!((stored, arrived), (1, 3));
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(
        ReadModel::checkpoint(&*read_model)
            .await
            .expect("checkpoint"),
        1
    );
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(ids(&views), ["w-1"], "w-2 was rolled back with the batch");
    assert_eq!(views[0].version, 1);

    // Once the missing event arrives, the batch applies.
    let applied = read_model
        .apply(&[second, third, other], Some(4))
        .await
        .expect("retry");
    assert_eq!(applied, outcome(3, 0));
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(ids(&views), ["w-1", "w-2"]);
    assert_eq!(views[0].balance, balance(1_200));
    assert_eq!(views[0].version, 3);
}

pub async fn lists_filter_by_owner_and_page_by_id(read_model: Arc<dyn ReadModelUnderTest>) {
    let wallet_count = 25;
    let mut streams = Streams::default();
    // Ids that sort differently as text and as numbers, and by case.
    for index in 0..wallet_count {
        let owner_id = if index % 2 == 0 { "owner-a" } else { "owner-b" };
        streams.create(&format!("w-{index}"), owner_id, 100);
    }
    streams.create("W-upper", "owner-a", 100);
    read_model
        .apply(&streams.recorded, None)
        .await
        .expect("apply");

    let mut expected: Vec<String> = streams
        .recorded
        .iter()
        .map(|recorded| recorded.event.wallet_id.to_string())
        .collect();
    // Byte order: "W-upper" < "w-0" < "w-1" < "w-10".
    expected.sort();

    let page_size = 10;
    let pages_max = 10;
    let mut walked = Vec::new();
    let mut after = None;
    for _ in 0..pages_max {
        let page = read_model
            .list_wallets(WalletListQuery {
                owner_id: None,
                after: after.clone(),
                limit: page_size,
                seen_at: None,
            })
            .await
            .expect("page");
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id.clone());
        walked.extend(ids(&page));
    }
    assert_eq!(walked, expected);

    let owned = read_model
        .list_wallets(WalletListQuery {
            owner_id: Some(owner("owner-b")),
            after: Some(wallet("w-20")),
            limit: 100,
            seen_at: None,
        })
        .await
        .expect("owner");
    assert_eq!(ids(&owned), ["w-21", "w-23", "w-3", "w-5", "w-7", "w-9"]);
    assert!(owned.iter().all(|view| view.owner_id == owner("owner-b")));

    let none = read_model
        .list_wallets(WalletListQuery {
            limit: 0,
            ..all_wallets()
        })
        .await
        .expect("limit zero");
    assert!(none.is_empty());
}

pub async fn limits_and_statuses_are_projected_and_kept_across_batches(
    read_model: Arc<dyn ReadModelUnderTest>,
) {
    let mut streams = Streams::default();
    streams.create("w-1", "owner-a", 0);
    streams.create("w-2", "owner-a", 0);
    let limit = EventKind::OverdraftLimitSet {
        overdraft_limit: balance(5_000),
    };
    streams.update("w-1", limit);
    streams.update("w-2", EventKind::WalletClosed);
    read_model
        .apply(&streams.recorded, None)
        .await
        .expect("first batch");
    let first_batch = streams.recorded.len();
    // A later batch that sets neither keeps both; one that freezes changes only the status.
    streams.debit("w-1", 2_000);
    streams.update("w-1", EventKind::WalletFrozen);
    read_model
        .apply(&streams.recorded[first_batch..], None)
        .await
        .expect("second batch");

    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views[0].balance, balance(-2_000));
    assert_eq!(views[0].overdraft_limit, balance(5_000));
    assert_eq!(views[0].status, WalletStatus::Frozen);
    assert_eq!(views[0].version, 4);
    assert_eq!(views[1].overdraft_limit, Balance::ZERO);
    assert_eq!(views[1].status, WalletStatus::Closed);

    let third_batch = streams.recorded.len();
    streams.update("w-1", EventKind::WalletUnfrozen);
    read_model
        .apply(&streams.recorded[third_batch..], None)
        .await
        .expect("third batch");
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views[0].status, WalletStatus::Active);
    assert_eq!(views[0].overdraft_limit, balance(5_000));
}

pub async fn held_balances_are_projected_and_a_redelivery_does_not_count_twice(
    read_model: Arc<dyn ReadModelUnderTest>,
) {
    let mut streams = Streams::default();
    streams.create("w-1", "owner-a", 10_000);
    streams.hold_placed("w-1", "h-1", 2_500);
    streams.hold_placed("w-1", "h-2", 1_000);
    read_model
        .apply(&streams.recorded, None)
        .await
        .expect("first batch");
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views[0].held_balance, balance(3_500));
    assert_eq!(views[0].balance, balance(10_000));

    let first_batch = streams.recorded.len();
    streams.hold_captured("w-1", "h-1", 1_000, 2_500);
    streams.hold_voided("w-1", "h-2", 1_000);
    let second = streams.recorded[first_batch..].to_vec();
    read_model.apply(&second, None).await.expect("second batch");
    let redelivered = read_model.apply(&second, None).await.expect("again");
    assert_eq!(redelivered, outcome(0, 2));
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views[0].held_balance, Balance::ZERO);
    assert_eq!(views[0].balance, balance(9_000));
    assert_eq!(views[0].version, 5);
}

/// The held balances a list seen at `seen_at` shows, by wallet id.
async fn held_seen_at(
    read_model: &dyn ReadModelUnderTest,
    seen_at: Option<DateTime<Utc>>,
) -> Vec<(String, Balance)> {
    let query = WalletListQuery {
        seen_at,
        ..all_wallets()
    };
    let views = read_model.list_wallets(query).await.expect("list");
    views
        .iter()
        .map(|view| (view.id.to_string(), view.held_balance))
        .collect()
}

pub async fn a_hold_due_at_the_lists_moment_is_not_held(read_model: Arc<dyn ReadModelUnderTest>) {
    let due = start_time() + Duration::days(1);
    let mut streams = Streams::default();
    streams.create("w-1", "owner-a", 10_000);
    streams.hold_placed_until("w-1", "h-1", 2_500, Some(due));
    streams.hold_placed("w-1", "h-2", 1_000);
    // Placed and voided in the same batch: never due.
    streams.hold_placed_until("w-1", "h-3", 500, Some(due));
    streams.hold_voided("w-1", "h-3", 500);
    streams.create("w-2", "owner-b", 10_000);
    streams.hold_placed_until("w-2", "h-4", 700, Some(due + Duration::minutes(1)));
    read_model
        .apply(&streams.recorded, None)
        .await
        .expect("first batch");
    let held = |w1, w2| {
        vec![
            ("w-1".to_owned(), balance(w1)),
            ("w-2".to_owned(), balance(w2)),
        ]
    };

    assert_eq!(held_seen_at(&*read_model, None).await, held(3_500, 700));
    let just_before = due - Duration::microseconds(1);
    assert_eq!(
        held_seen_at(&*read_model, Some(just_before)).await,
        held(3_500, 700)
    );
    assert_eq!(
        held_seen_at(&*read_model, Some(due)).await,
        held(1_000, 700)
    );
    let later = due + Duration::minutes(1);
    assert_eq!(
        held_seen_at(&*read_model, Some(later)).await,
        held(1_000, 0)
    );
    let page = read_model
        .list_wallets(WalletListQuery {
            after: Some(wallet("w-1")),
            seen_at: Some(later),
            ..all_wallets()
        })
        .await
        .expect("second page");
    assert_eq!(page[0].held_balance, Balance::ZERO);
    assert_eq!(page[0].balance, balance(10_000));

    // Its HoldExpired projected, the hold is not taken out a second time.
    let first_batch = streams.recorded.len();
    streams.hold_expired("w-1", "h-1", 2_500);
    let second = streams.recorded[first_batch..].to_vec();
    read_model.apply(&second, None).await.expect("second batch");
    read_model.apply(&second, None).await.expect("redelivered");
    assert_eq!(held_seen_at(&*read_model, None).await, held(1_000, 700));
    assert_eq!(
        held_seen_at(&*read_model, Some(later)).await,
        held(1_000, 0)
    );
}

/// Events of the large-batch scenario: as many as a Kafka batch brings.
pub const LARGE_BATCH_EVENTS: usize = 500;

pub async fn a_batch_of_hundreds_of_events_applies_in_one_call(
    read_model: Arc<dyn ReadModelUnderTest>,
) {
    let wallet_count = 100;
    let events_per_wallet = LARGE_BATCH_EVENTS / wallet_count;
    let mut streams = Streams::default();
    for index in 0..wallet_count {
        streams.create(&format!("w-{index:03}"), "owner-a", 0);
    }
    for _ in 1..events_per_wallet {
        for index in 0..wallet_count {
            streams.credit(&format!("w-{index:03}"), 100);
        }
    }
    assert_eq!(streams.recorded.len(), LARGE_BATCH_EVENTS);
    let applied = read_model
        .apply(&streams.recorded, Some(500))
        .await
        .expect("apply");
    assert_eq!(applied, outcome(LARGE_BATCH_EVENTS, 0));
    let views = read_model.list_wallets(all_wallets()).await.expect("list");
    assert_eq!(views.len(), wallet_count);
    let credits_cents = i64::try_from(events_per_wallet - 1).expect("small") * 100;
    assert!(views
        .iter()
        .all(|view| view.balance == balance(credits_cents)
            && view.version == u64::try_from(events_per_wallet).expect("small")));
}

/// Defines one `#[tokio::test]` per scenario, each running it through
/// `$harness`: an `async fn(conformance::Scenario)` that gives the scenario a
/// fresh read model of its backend (and cleans up after it).
#[macro_export]
macro_rules! read_model_conformance_tests {
    ($harness:path) => {
        $crate::read_model_conformance_tests!(
            @each $harness;
            applying_events_projects_each_wallet,
            events_at_or_below_the_stored_version_are_skipped,
            an_event_past_the_next_version_is_refused_and_nothing_of_its_batch_applies,
            lists_filter_by_owner_and_page_by_id,
            a_batch_of_hundreds_of_events_applies_in_one_call,
            limits_and_statuses_are_projected_and_kept_across_batches,
            held_balances_are_projected_and_a_redelivery_does_not_count_twice,
            a_hold_due_at_the_lists_moment_is_not_held,
        );
    };
    (@each $harness:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                $harness(|read_model| Box::pin($crate::conformance::$scenario(read_model))).await;
            }
        )+
    };
}
