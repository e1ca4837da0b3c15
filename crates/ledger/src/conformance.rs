//! Scenarios every [`Ledger`] must pass, whatever stores it: the tests of
//! each backend run them all (`ledger_conformance_tests!`), each against a
//! fresh, empty ledger, so the backends are held to one set of cases.
//!
//! Built only with the `conformance` feature; test code, so it panics on a
//! failed expectation.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use event_sink::EventSink;
use event_store::{AppendRequest, RecordedEvent, StreamAppend};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    capture_received, decide, replay, Amount, Balance, Command, CommandKind, Description,
    EventMetadata, HoldId, OwnerId, WalletEvent, WalletId,
};

use crate::{
    Account, EntryFilter, EntryId, EntryList, EntryType, Ledger, LedgerEntry, PostOutcome,
    PostedThrough, TransactionType, TransactionsQuery, WalletEntriesQuery, WalletSummary,
    ENTRIES_LIMIT_DEFAULT, ENTRIES_LIMIT_MAX, TOTALS_CHECKPOINT_TRANSACTIONS,
};

/// A ledger under test: what the relay and the API both see of it.
pub trait LedgerUnderTest: Ledger + EventSink {}
impl<T: Ledger + EventSink> LedgerUnderTest for T {}

/// One scenario, ready to run against a fresh ledger.
pub type Scenario = fn(Arc<dyn LedgerUnderTest>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

pub fn wallet(raw: &str) -> WalletId {
    WalletId::parse(raw).expect("wallet id")
}

pub fn money(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

pub fn amount(text: &str) -> Amount {
    Amount::parse("amount", money(text)).expect("amount")
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 10, 23, 10, 0, 0)
        .single()
        .expect("time")
}

/// Decides commands against per-wallet histories, one minute apart, and
/// records the events as the store would: positions in order from 1.
#[derive(Default)]
pub struct EventLog {
    pub histories: HashMap<WalletId, Vec<WalletEvent>>,
    pub recorded: Vec<RecordedEvent>,
}

impl EventLog {
    pub fn decide(&mut self, wallet_id: &str, kind: CommandKind) -> RecordedEvent {
        let wallet_id = wallet(wallet_id);
        let minutes = i64::try_from(self.recorded.len()).expect("small log");
        let command = Command {
            wallet_id: wallet_id.clone(),
            kind,
            event_id: Uuid::new_v4(),
            issued_at: start_time() + Duration::minutes(minutes),
            metadata: EventMetadata::default(),
        };
        let history = self.histories.entry(wallet_id).or_default();
        let mut events = decide(&replay(history.iter()), &command).expect("command succeeds");
        let event = events.remove(0);
        history.push(event.clone());
        let recorded = RecordedEvent {
            position: u64::try_from(self.recorded.len()).expect("small log") + 1,
            stream_version: u64::try_from(history.len()).expect("small history"),
            event,
        };
        self.recorded.push(recorded.clone());
        recorded
    }

    pub fn create(&mut self, wallet_id: &str, opening: &str) -> RecordedEvent {
        self.decide(
            wallet_id,
            CommandKind::Create {
                owner_id: OwnerId::parse("owner-1").expect("owner"),
                initial_balance: Balance::opening("initialBalance", money(opening))
                    .expect("balance"),
                overdraft_limit: Balance::ZERO,
            },
        )
    }

    pub fn credit(&mut self, wallet_id: &str, value: &str) -> RecordedEvent {
        self.decide(
            wallet_id,
            CommandKind::Credit {
                amount: amount(value),
                description: Some(Description::parse("Deposit").expect("description")),
            },
        )
    }

    pub fn debit(&mut self, wallet_id: &str, value: &str) -> RecordedEvent {
        self.decide(
            wallet_id,
            CommandKind::Debit {
                amount: amount(value),
                description: None,
            },
        )
    }

    /// The payee's half of a capture to another wallet, recorded after it.
    pub fn receive_capture(&mut self, captured: &RecordedEvent) -> RecordedEvent {
        let command = capture_received(&captured.event).expect("a capture to a wallet");
        let history = self.histories.entry(command.wallet_id.clone()).or_default();
        let event = decide(&replay(history.iter()), &command)
            .expect("the payee receives")
            .remove(0);
        history.push(event.clone());
        let recorded = RecordedEvent {
            position: u64::try_from(self.recorded.len()).expect("small log") + 1,
            stream_version: u64::try_from(history.len()).expect("small history"),
            event,
        };
        self.recorded.push(recorded.clone());
        recorded
    }

    /// Each recorded event as the append that stored it: alone, at the
    /// version its stream had before it (for tests that fill an event store).
    pub fn appends(&self) -> Vec<AppendRequest> {
        self.recorded
            .iter()
            .map(|recorded| AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: recorded.event.wallet_id.clone(),
                    expected_version: recorded.stream_version - 1,
                    expected_last_event_id: None,
                    events: vec![recorded.event.clone()],
                }],
                idempotent_response: None,
            })
            .collect()
    }

    /// Both halves of a transfer, sent first.
    pub fn transfer(
        &mut self,
        from: &str,
        to: &str,
        value: &str,
    ) -> (RecordedEvent, RecordedEvent) {
        let transfer_id = Uuid::new_v4();
        let sent = self.decide(
            from,
            CommandKind::TransferOut {
                transfer_id,
                to_wallet_id: wallet(to),
                amount: amount(value),
                description: None,
            },
        );
        let received = self.decide(
            to,
            CommandKind::TransferIn {
                transfer_id,
                from_wallet_id: wallet(from),
                amount: amount(value),
                description: None,
            },
        );
        (sent, received)
    }
}

/// w-1: 100.00 + 50.00 − 30.00 − 25.00 = 95.00; w-2: 0 + 25.00 = 25.00.
pub fn standard_log() -> EventLog {
    let mut log = EventLog::default();
    log.create("w-1", "100.00");
    log.create("w-2", "0");
    log.credit("w-1", "50.00");
    log.debit("w-1", "30.00");
    log.transfer("w-1", "w-2", "25.00");
    log
}

pub fn everything() -> TransactionsQuery {
    TransactionsQuery {
        wallet_id: None,
        filter: EntryFilter {
            limit: Some(500),
            ..EntryFilter::default()
        },
    }
}

fn wallet_query(wallet_id: &str, filter: EntryFilter) -> WalletEntriesQuery {
    WalletEntriesQuery {
        wallet_id: wallet(wallet_id),
        filter,
    }
}

/// The filter that keeps one transaction type.
fn of_type(transaction_type: TransactionType) -> EntryFilter {
    EntryFilter {
        transaction_type: Some(transaction_type),
        ..EntryFilter::default()
    }
}

fn signed_sum<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> Decimal {
    entries.into_iter().map(LedgerEntry::signed_amount).sum()
}

pub async fn a_sequence_of_operations_gives_balanced_transactions_and_the_wallet_balances(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let log = standard_log();

    let outcome = ledger.post(&log.recorded, Some(6)).await.expect("post");
    assert_eq!(
        outcome,
        PostOutcome {
            posted: 6,
            skipped: 0
        }
    );
    assert_eq!(Ledger::checkpoint(&*ledger).await.expect("checkpoint"), 6);

    let entries = ledger.transactions(everything()).await.expect("entries");
    // Five movements of two entries; the zero creation has none.
    assert_eq!(entries.len(), 10);
    let mut by_transaction: HashMap<Uuid, Decimal> = HashMap::new();
    for entry in &entries {
        *by_transaction.entry(entry.transaction_id).or_default() += entry.signed_amount();
    }
    assert_eq!(by_transaction.len(), 5);
    assert!(by_transaction.values().all(Decimal::is_zero));

    let summary = ledger
        .wallet_summary(&wallet("w-1"), None)
        .await
        .expect("summary");
    assert_eq!(summary.balance, money("95.00"));
    assert_eq!(summary.total_credits, money("150.00"));
    assert_eq!(summary.total_debits, money("55.00"));
    assert_eq!(summary.entry_count, 4);
    let summary = ledger
        .wallet_summary(&wallet("w-2"), None)
        .await
        .expect("summary");
    assert_eq!(summary.balance, money("25.00"));
    assert_eq!(summary.entry_count, 1);

    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 6);
    assert_eq!(verification.transactions_checked, 6);
    assert!(verification.unbalanced_transactions.is_empty());
    assert!(verification.transfers_missing_half.is_empty());
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(verification.settlement_balance, money("-120.00"));
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-1")),
        Some(&money("95.00"))
    );
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-2")),
        Some(&money("25.00"))
    );
    // Each wallet's posted events (w-1: 4, the last the sent half at 5; w-2:
    // 2, the last the received half at 6) and the checkpoint, from one snapshot.
    assert_eq!(verification.checkpoint, 6);
    let posted = |position, events| PostedThrough { position, events };
    assert_eq!(
        verification.wallets_posted,
        BTreeMap::from([(wallet("w-1"), posted(5, 4)), (wallet("w-2"), posted(6, 2))])
    );

    // The ledger agrees with the balances the events carry.
    for (wallet_id, history) in &log.histories {
        let last = history.last().expect("history");
        assert_eq!(
            verification.wallet_balances.get(wallet_id),
            Some(&last.balance_after.value())
        );
    }
}

/// A hold moves money into the wallet's held sub-account and back; a capture
/// takes it out of there (to settlement, or through clearing to another
/// wallet); every transaction sums to zero, the wallet's two accounts sum to
/// its balance, and the held one to its pending holds.
pub async fn holds_move_money_through_the_held_account_and_everything_still_sums_to_zero(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let hold = |raw: &str| HoldId::parse(raw).expect("hold id");
    let mut log = EventLog::default();
    log.create("w-1", "100");
    log.create("w-2", "0");
    for (id, value) in [("h-1", "25"), ("h-2", "10"), ("h-3", "5"), ("h-4", "7")] {
        log.decide(
            "w-1",
            CommandKind::PlaceHold {
                hold_id: hold(id),
                amount: amount(value),
                expires_at: None,
                description: None,
            },
        );
    }
    let captured = log.decide(
        "w-1",
        CommandKind::CaptureHold {
            hold_id: hold("h-1"),
            amount: Some(amount("20")),
            to_wallet_id: Some(wallet("w-2")),
            description: None,
        },
    );
    log.receive_capture(&captured);
    log.decide(
        "w-1",
        CommandKind::CaptureHold {
            hold_id: hold("h-2"),
            amount: None,
            to_wallet_id: None,
            description: None,
        },
    );
    log.decide(
        "w-1",
        CommandKind::VoidHold {
            hold_id: hold("h-3"),
        },
    );
    ledger.post(&log.recorded, None).await.expect("post");

    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert!(verification.unbalanced_transactions.is_empty());
    assert!(verification.transfers_missing_half.is_empty());
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-1")),
        Some(&money("70.00"))
    );
    assert_eq!(
        verification.held_balances.get(&wallet("w-1")),
        Some(&money("7.00"))
    );
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-2")),
        Some(&money("20.00"))
    );
    let settlement = money("-100.00") + money("10.00");
    assert_eq!(verification.settlement_balance, settlement);

    let summary = ledger
        .wallet_summary(&wallet("w-1"), None)
        .await
        .expect("summary");
    assert_eq!(summary.balance, money("70.00"), "its two accounts together");
    assert_eq!(
        summary.total_debits,
        money("30.00"),
        "the two captures, not the holds"
    );
    assert_eq!(summary.total_credits, money("100.00"));
    let captures = ledger
        .transactions(TransactionsQuery {
            wallet_id: Some(wallet("w-1")),
            filter: of_type(TransactionType::HoldCaptured),
        })
        .await
        .expect("captures");
    assert!(captures
        .iter()
        .any(|entry| entry.account == Account::Held(wallet("w-1"))));
}

/// A wallet's entries include its held sub-account's: a capture, which posts
/// out of `held:<id>` only, is among them, and the entries of both accounts
/// sum to the wallet's balance.
pub async fn a_wallets_entries_include_its_held_sub_account(ledger: Arc<dyn LedgerUnderTest>) {
    let hold_id = HoldId::parse("h-1").expect("hold id");
    let mut log = EventLog::default();
    log.create("w-1", "100");
    log.decide(
        "w-1",
        CommandKind::PlaceHold {
            hold_id: hold_id.clone(),
            amount: amount("25"),
            expires_at: None,
            description: None,
        },
    );
    log.decide(
        "w-1",
        CommandKind::CaptureHold {
            hold_id,
            amount: Some(amount("10")),
            to_wallet_id: None,
            description: None,
        },
    );
    ledger.post(&log.recorded, None).await.expect("post");

    let entries = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("entries");
    assert_eq!(signed_sum(&entries), money("90.00"), "{entries:?}");
    let captures = ledger
        .wallet_entries(wallet_query("w-1", of_type(TransactionType::HoldCaptured)))
        .await
        .expect("captures");
    assert!(
        captures
            .iter()
            .any(|entry| entry.account == Account::Held(wallet("w-1"))
                && entry.amount == money("25.00")),
        "the capture's posting out of the held sub-account: {captures:?}"
    );
    assert!(entries
        .iter()
        .all(|entry| entry.account.owning_wallet() == Some(&wallet("w-1"))));
}

/// An overdraft posts like any debit and leaves the wallet's account below
/// zero; a limit, a freeze and a closing are transactions with no entries.
pub async fn overdrafts_post_like_debits_and_wallet_updates_move_no_money(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let mut log = EventLog::default();
    log.create("w-1", "10.00");
    let limit = Balance::limit("overdraftLimit", money("50.00")).expect("limit");
    log.decide(
        "w-1",
        CommandKind::SetOverdraftLimit {
            overdraft_limit: limit,
        },
    );
    log.debit("w-1", "40.00");
    log.decide("w-1", CommandKind::Freeze);
    log.decide("w-1", CommandKind::Unfreeze);
    log.credit("w-1", "30.00");
    log.decide("w-1", CommandKind::Close);
    ledger.post(&log.recorded, Some(7)).await.expect("post");

    let entries = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("entries");
    assert_eq!(entries.len(), 3, "only the money movements have entries");
    let updates = ledger
        .wallet_entries(wallet_query("w-1", of_type(TransactionType::WalletUpdated)))
        .await
        .expect("updates");
    assert!(updates.is_empty(), "a wallet update has no entries");

    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 7);
    assert_eq!(verification.transactions_checked, 7);
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-1")),
        Some(&Decimal::ZERO)
    );
}

/// After the debit of 40.00 from 10.00 the account is at −30.00, as the event says.
pub async fn an_overdrawn_wallet_has_a_negative_ledger_balance(ledger: Arc<dyn LedgerUnderTest>) {
    let mut log = EventLog::default();
    log.create("w-1", "10.00");
    let limit = Balance::limit("overdraftLimit", money("50.00")).expect("limit");
    log.decide(
        "w-1",
        CommandKind::SetOverdraftLimit {
            overdraft_limit: limit,
        },
    );
    let debit = log.debit("w-1", "40.00");
    ledger.post(&log.recorded, None).await.expect("post");
    let summary = ledger
        .wallet_summary(&wallet("w-1"), None)
        .await
        .expect("summary");
    assert_eq!(summary.balance, money("-30.00"));
    assert_eq!(summary.balance, debit.event.balance_after.value());
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
}

/// A summary as of a moment counts the transactions that occurred up to it,
/// and its balance is the one the wallet's last event up to then carries.
pub async fn a_summary_as_of_a_moment_counts_what_occurred_until_then(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let log = standard_log();
    ledger.post(&log.recorded, None).await.expect("post");
    let w1 = wallet("w-1");
    let before = log.recorded[0].event.occurred_at - Duration::seconds(1);
    let nothing = ledger
        .wallet_summary(&w1, Some(before))
        .await
        .expect("summary");
    assert_eq!((nothing.balance, nothing.entry_count), (Decimal::ZERO, 0));
    // The fourth event is the debit of 30.00 from w-1: 100 + 50 − 30.
    let debit = &log.recorded[3].event;
    let at_debit = ledger
        .wallet_summary(&w1, Some(debit.occurred_at))
        .await
        .expect("summary");
    assert_eq!(at_debit.balance, debit.balance_after.value());
    assert_eq!(at_debit.total_credits, money("150.00"));
    assert_eq!(at_debit.total_debits, money("30.00"));
    assert_eq!(at_debit.entry_count, 3);
    let now = ledger.wallet_summary(&w1, None).await.expect("summary");
    assert_eq!(now.balance, money("95.00"));
}

/// A wallet's summary now and as of any moment is the sum of its entries
/// until then, whichever checkpoints of its totals earlier summaries wrote
/// ([`crate::totals`]): on a wallet of a few intervals of transactions,
/// interleaved with another wallet's, asked first far back (no checkpoint
/// yet), then now, then every moment again, and after more posts.
pub async fn a_long_wallets_summary_is_its_entries_sum_from_any_checkpoint(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let interval = usize::try_from(crate::TOTALS_CHECKPOINT_TRANSACTIONS).expect("interval");
    let mut log = EventLog::default();
    log.create("w-long", "1000.00");
    log.create("w-beside", "0.00");
    let hold = |n: usize| HoldId::parse(&format!("h-{n}")).expect("hold id");
    for n in 0..2 * interval + 37 {
        match n % 7 {
            0 => log.debit("w-long", "0.50"),
            // A hold placed and voided: money between the two accounts, no total.
            1 => log.decide(
                "w-long",
                CommandKind::PlaceHold {
                    hold_id: hold(n),
                    amount: amount("2.00"),
                    expires_at: None,
                    description: None,
                },
            ),
            2 => log.decide(
                "w-long",
                CommandKind::VoidHold {
                    hold_id: hold(n - 1),
                },
            ),
            _ => log.credit("w-long", "1.00"),
        };
        if n % 3 == 0 {
            log.credit("w-beside", "1.00");
        }
    }
    for chunk in log.recorded.chunks(LARGE_BATCH_EVENTS) {
        ledger.post(chunk, None).await.expect("post");
    }
    let long = wallet("w-long");
    // What each moment's summary must be, from the wallet's own events.
    let mut expected = Vec::new();
    let (mut credits, mut debits, mut count) = (Decimal::ZERO, Decimal::ZERO, 0);
    for event in &log.histories[&long] {
        let moved = event.signed_amount();
        if moved > Decimal::ZERO {
            credits += moved;
        } else if moved < Decimal::ZERO {
            debits -= moved;
        }
        count += u64::from(moved != Decimal::ZERO);
        expected.push((
            event.occurred_at,
            event.balance_after.value(),
            credits,
            debits,
            count,
        ));
    }
    let check = |ledger: Arc<dyn LedgerUnderTest>, index: usize| {
        let (at, balance, credits, debits, count) = expected[index];
        let long = long.clone();
        async move {
            let summary = ledger
                .wallet_summary(&long, Some(at))
                .await
                .expect("summary");
            // The newest entry is what a newest-first page as of then begins with.
            let page = ledger
                .wallet_entries(WalletEntriesQuery {
                    wallet_id: long.clone(),
                    filter: EntryFilter {
                        end_date: Some(at),
                        limit: Some(1),
                        ..EntryFilter::default()
                    },
                })
                .await
                .expect("entries");
            assert_eq!(
                summary.newest_entry,
                page.into_iter().next(),
                "newest entry as of event {index}"
            );
            assert_eq!(
                (
                    summary.balance,
                    summary.total_credits,
                    summary.total_debits,
                    summary.entry_count
                ),
                (balance, credits, debits, count),
                "as of event {index}"
            );
        }
    };
    let last = expected.len() - 1;
    check(Arc::clone(&ledger), interval + interval / 2).await;
    let now = ledger.wallet_summary(&long, None).await.expect("summary");
    assert_eq!(now.balance, expected[last].1);
    assert_eq!(now.entry_count, expected[last].4);
    for index in [
        0,
        1,
        interval - 1,
        interval,
        interval + 1,
        2 * interval,
        last - 1,
        last,
    ] {
        check(Arc::clone(&ledger), index).await;
    }
    let before = expected[0].0 - Duration::seconds(1);
    let nothing = ledger
        .wallet_summary(&long, Some(before))
        .await
        .expect("summary");
    assert_eq!((nothing.balance, nothing.entry_count), (Decimal::ZERO, 0));
    // Posted after the checkpoints: counted on top of them.
    let later = log.credit("w-long", "3.00");
    ledger
        .post(std::slice::from_ref(&later), None)
        .await
        .expect("post");
    let now = ledger.wallet_summary(&long, None).await.expect("summary");
    assert_eq!(now.balance, later.event.balance_after.value());
    assert_eq!(now.entry_count, expected[last].4 + 1);
    assert_eq!(now.total_credits, expected[last].2 + money("3.00"));
}

pub async fn wallet_entries_are_the_wallets_own_side_in_api_form(ledger: Arc<dyn LedgerUnderTest>) {
    let log = standard_log();
    ledger.post(&log.recorded, None).await.expect("post");

    let entries = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("entries");
    let types: Vec<_> = entries.iter().map(|entry| entry.transaction_type).collect();
    // Newest first.
    assert_eq!(
        types,
        [
            TransactionType::TransferOut,
            TransactionType::Debit,
            TransactionType::Credit,
            TransactionType::WalletCreated
        ]
    );
    assert!(entries
        .iter()
        .all(|entry| entry.account == Account::Wallet(wallet("w-1"))));
    let directions: Vec<_> = entries.iter().map(|entry| entry.entry_type).collect();
    assert_eq!(
        directions,
        [
            EntryType::Debit,
            EntryType::Debit,
            EntryType::Credit,
            EntryType::Credit
        ]
    );
    assert_eq!(signed_sum(&entries), money("95.00"));
    let credit = &entries[2];
    assert_eq!(credit.amount, money("50.00"));
    assert_eq!(credit.description, "Deposit");
    assert_eq!(credit.transaction_id, log.recorded[2].event.event_id);
    assert_eq!(credit.reference_id, credit.transaction_id);
    assert_eq!(credit.created_at, log.recorded[2].event.occurred_at);
}

pub async fn reference_entries_show_every_account_of_a_transfer(ledger: Arc<dyn LedgerUnderTest>) {
    let mut log = standard_log();
    let (sent, received) = log.transfer("w-2", "w-1", "5.00");
    ledger.post(&log.recorded, None).await.expect("post");

    let transfer_id = sent.event.kind.transfer_id().expect("transfer id");
    let entries = ledger
        .reference_entries(&transfer_id.to_string().to_uppercase())
        .await
        .expect("entries");
    assert_eq!(entries.len(), 4);
    assert!(entries
        .iter()
        .all(|entry| entry.reference_id == transfer_id));
    let accounts: Vec<String> = entries
        .iter()
        .map(|entry| entry.account.to_string())
        .collect();
    assert_eq!(
        accounts,
        // Newest first: the receiving half, then the paying half.
        [
            "wallet:w-1",
            "clearing:transfers",
            "wallet:w-2",
            "clearing:transfers"
        ]
    );
    assert_eq!(entries[0].transaction_id, received.event.event_id);
    assert_eq!(entries[0].wallet_id, wallet("w-1"));
    assert_eq!(entries[2].transaction_id, sent.event.event_id);
    assert_eq!(signed_sum(&entries), Decimal::ZERO);

    let credit_id = log.recorded[2].event.event_id.to_string();
    assert_eq!(
        ledger
            .reference_entries(&credit_id)
            .await
            .expect("entries")
            .len(),
        2
    );
    assert!(ledger
        .reference_entries("not-a-uuid")
        .await
        .expect("entries")
        .is_empty());
    // A transfer half's own id is no reference: its reference is the
    // transfer's (h128 found the embedded ledger answering it).
    for half in [&sent, &received] {
        let half_id = half.event.event_id.to_string();
        assert!(
            ledger
                .reference_entries(&half_id)
                .await
                .expect("entries")
                .is_empty(),
            "{half_id}"
        );
    }
}

pub async fn delivering_a_batch_twice_posts_it_once_and_the_checkpoint_holds(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let log = standard_log();
    assert_eq!(
        EventSink::checkpoint(&*ledger).await.expect("checkpoint"),
        0
    );

    ledger.deliver(&log.recorded).await.expect("deliver");
    assert_eq!(
        EventSink::checkpoint(&*ledger).await.expect("checkpoint"),
        6
    );
    ledger.deliver(&log.recorded).await.expect("deliver again");
    assert_eq!(
        EventSink::checkpoint(&*ledger).await.expect("checkpoint"),
        6
    );

    let again = ledger.post(&log.recorded, Some(6)).await.expect("post");
    assert_eq!(
        again,
        PostOutcome {
            posted: 0,
            skipped: 6
        }
    );
    // An older batch does not move the checkpoint back.
    ledger
        .post(&log.recorded[..2], Some(2))
        .await
        .expect("post old batch");
    assert_eq!(Ledger::checkpoint(&*ledger).await.expect("checkpoint"), 6);

    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 6);
    assert_eq!(
        ledger
            .transactions(everything())
            .await
            .expect("entries")
            .len(),
        10
    );
    assert_eq!(
        ledger
            .wallet_summary(&wallet("w-1"), None)
            .await
            .expect("summary")
            .balance,
        money("95.00")
    );
}

pub async fn an_event_repeated_within_a_batch_is_posted_once(ledger: Arc<dyn LedgerUnderTest>) {
    let mut log = EventLog::default();
    let created = log.create("w-1", "10.00");
    let outcome = ledger
        .post(&[created.clone(), created], None)
        .await
        .expect("post");
    assert_eq!(
        outcome,
        PostOutcome {
            posted: 1,
            skipped: 1
        }
    );
    assert_eq!(Ledger::checkpoint(&*ledger).await.expect("checkpoint"), 0);
}

pub async fn a_reversed_transfer_is_complete_and_gives_the_payer_its_money_back(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let mut log = EventLog::default();
    log.create("w-1", "100.00");
    log.create("w-2", "0");
    let transfer_id = Uuid::new_v4();
    log.decide(
        "w-1",
        CommandKind::TransferOut {
            transfer_id,
            to_wallet_id: wallet("w-2"),
            amount: amount("40.00"),
            description: None,
        },
    );
    log.decide(
        "w-1",
        CommandKind::TransferReverse {
            transfer_id,
            to_wallet_id: wallet("w-2"),
            amount: amount("40.00"),
        },
    );
    ledger
        .post(&log.recorded, Some(4))
        .await
        .expect("post the transfer and its reversal");
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert!(verification.transfers_missing_half.is_empty());
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-1")),
        Some(&money("100.00"))
    );
}

/// A capture to another wallet whose payee refused it (the transfer
/// process's compensation): the money leaves the held account, passes
/// through clearing and comes back to the payer's account, under the hold.
pub async fn a_reversed_capture_gives_the_payer_its_money_back_through_clearing(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let hold_id = HoldId::parse("h-1").expect("hold id");
    let mut log = EventLog::default();
    log.create("w-1", "100.00");
    log.create("w-2", "0");
    log.decide(
        "w-1",
        CommandKind::PlaceHold {
            hold_id: hold_id.clone(),
            amount: amount("25.00"),
            expires_at: None,
            description: None,
        },
    );
    log.decide(
        "w-1",
        CommandKind::CaptureHold {
            hold_id: hold_id.clone(),
            amount: Some(amount("20.00")),
            to_wallet_id: Some(wallet("w-2")),
            description: None,
        },
    );
    log.decide(
        "w-1",
        CommandKind::ReverseCapture {
            hold_id,
            to_wallet_id: wallet("w-2"),
            amount: amount("20.00"),
        },
    );
    ledger.post(&log.recorded, None).await.expect("post");
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert!(verification.transfers_missing_half.is_empty());
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-1")),
        Some(&money("100.00"))
    );
    assert_eq!(
        verification.held_balances.get(&wallet("w-1")),
        Some(&money("0.00"))
    );
}

pub async fn a_transfer_with_one_half_posted_is_missing_its_other_half(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let mut log = EventLog::default();
    log.create("w-1", "100.00");
    log.create("w-2", "0");
    let (sent, received) = log.transfer("w-1", "w-2", "40.00");
    let transfer_id = sent.event.kind.transfer_id().expect("transfer id");

    ledger
        .post(&log.recorded[..3], Some(3))
        .await
        .expect("post first half");
    let verification = ledger.verify().await.expect("verify");
    assert!(!verification.ok);
    assert_eq!(verification.transfers_missing_half, vec![transfer_id]);
    assert_eq!(verification.clearing_balance, money("40.00"));
    // Each half balances on its own: nothing is unbalanced.
    assert!(verification.unbalanced_transactions.is_empty());

    ledger
        .post(&[received], Some(4))
        .await
        .expect("post second half");
    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(
        verification.wallet_balances.get(&wallet("w-2")),
        Some(&money("40.00"))
    );
}

pub async fn queries_filter_by_type_and_date_and_page_with_limit_and_offset(
    ledger: Arc<dyn LedgerUnderTest>,
) {
    let mut log = EventLog::default();
    log.create("w-1", "1000.00");
    // Events 2..=61: sixty credits, one minute apart.
    for _ in 0..60 {
        log.credit("w-1", "1.00");
    }
    log.debit("w-1", "5.00");
    log.create("w-2", "3.00");
    ledger.post(&log.recorded, None).await.expect("post");

    // Default limit.
    let first_page = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("entries");
    assert_eq!(
        first_page.len(),
        usize::try_from(ENTRIES_LIMIT_DEFAULT).expect("small")
    );

    // Paging walks the entries in ledger order without overlap.
    let page = |offset| EntryFilter {
        transaction_type: Some(TransactionType::Credit),
        limit: Some(25),
        offset: Some(offset),
        ..EntryFilter::default()
    };
    let mut credits = Vec::new();
    for offset in [0, 25, 50, 75] {
        credits.extend(
            ledger
                .wallet_entries(wallet_query("w-1", page(offset)))
                .await
                .expect("page"),
        );
    }
    assert_eq!(credits.len(), 60);
    // Newest first.
    let expected: Vec<Uuid> = log.recorded[1..61]
        .iter()
        .rev()
        .map(|recorded| recorded.event.event_id)
        .collect();
    let actual: Vec<Uuid> = credits.iter().map(|entry| entry.transaction_id).collect();
    assert_eq!(actual, expected);

    // Dates: both ends included. Event n (from 1) occurred n − 1 minutes in.
    let window = EntryFilter {
        start_date: Some(start_time() + Duration::minutes(10)),
        end_date: Some(start_time() + Duration::minutes(14)),
        ..EntryFilter::default()
    };
    let in_window = ledger
        .wallet_entries(wallet_query("w-1", window.clone()))
        .await
        .expect("window");
    let actual: Vec<Uuid> = in_window.iter().map(|entry| entry.transaction_id).collect();
    let expected: Vec<Uuid> = log.recorded[10..15]
        .iter()
        .rev()
        .map(|recorded| recorded.event.event_id)
        .collect();
    assert_eq!(actual, expected);
    // Bounds between two microseconds: the one before a lower bound and the
    // one after an upper bound stay out (times are kept to the microsecond).
    let nanos = Duration::nanoseconds;
    let within = EntryFilter {
        start_date: Some(start_time() + Duration::minutes(10) + nanos(100)),
        end_date: Some(start_time() + Duration::minutes(14) + nanos(900)),
        ..EntryFilter::default()
    };
    let in_window = ledger
        .wallet_entries(wallet_query("w-1", within))
        .await
        .expect("window");
    let actual: Vec<Uuid> = in_window.iter().map(|entry| entry.transaction_id).collect();
    assert_eq!(actual, expected[..4], "minute 10 left out, minute 14 kept");

    // Across the ledger: every account's entries, optionally of one wallet.
    let debits = ledger
        .transactions(TransactionsQuery {
            wallet_id: None,
            filter: of_type(TransactionType::Debit),
        })
        .await
        .expect("debits");
    assert_eq!(debits.len(), 2);
    assert_eq!(signed_sum(&debits), Decimal::ZERO);
    let creations = ledger
        .transactions(TransactionsQuery {
            wallet_id: Some(wallet("w-2")),
            filter: EntryFilter::default(),
        })
        .await
        .expect("w-2");
    assert_eq!(creations.len(), 2);
    assert!(creations
        .iter()
        .all(|entry| entry.transaction_type == TransactionType::WalletCreated));
    assert!(creations
        .iter()
        .any(|entry| entry.account == Account::ExternalSettlement));

    // A huge limit is capped; an offset past the end is empty.
    let capped = ledger
        .transactions(TransactionsQuery {
            wallet_id: None,
            filter: EntryFilter {
                limit: Some(u32::MAX),
                ..EntryFilter::default()
            },
        })
        .await
        .expect("capped");
    assert_eq!(capped.len(), 2 * log.recorded.len());
    let past_end = ledger
        .wallet_entries(wallet_query(
            "w-1",
            EntryFilter {
                offset: Some(u64::MAX),
                ..EntryFilter::default()
            },
        ))
        .await
        .expect("past end");
    assert!(past_end.is_empty());
}

/// Pages read by following each page's last entry id, until an empty page.
async fn pages_after(
    ledger: &Arc<dyn LedgerUnderTest>,
    wallet_id: Option<&str>,
    limit: u32,
) -> Vec<Vec<LedgerEntry>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let filter = EntryFilter {
            limit: Some(limit),
            after,
            ..EntryFilter::default()
        };
        let page = match wallet_id {
            Some(wallet_id) => ledger.wallet_entries(wallet_query(wallet_id, filter)).await,
            None => {
                ledger
                    .transactions(TransactionsQuery {
                        wallet_id: None,
                        filter,
                    })
                    .await
            }
        }
        .expect("a page");
        let Some(last) = page.last() else {
            return pages;
        };
        after = Some(last.id.parse::<EntryId>().expect("an entry id"));
        pages.push(page);
    }
}

pub async fn keyset_pages_walk_every_entry_once_in_ledger_order(ledger: Arc<dyn LedgerUnderTest>) {
    let mut log = EventLog::default();
    log.create("w-1", "100.00");
    log.create("w-2", "0.00");
    for _ in 0..7 {
        log.credit("w-1", "1.00");
        log.transfer("w-1", "w-2", "2.00");
    }
    ledger.post(&log.recorded, None).await.expect("post");

    // Across the ledger, a page of 3 splits transactions of two lines: the
    // cursor resumes at the next line of the same transaction.
    let everything = ledger
        .transactions(TransactionsQuery {
            wallet_id: None,
            filter: EntryFilter {
                limit: Some(ENTRIES_LIMIT_MAX),
                ..EntryFilter::default()
            },
        })
        .await
        .expect("all entries");
    let pages = pages_after(&ledger, None, 3).await;
    assert!(pages.iter().all(|page| page.len() <= 3));
    let walked: Vec<LedgerEntry> = pages.into_iter().flatten().collect();
    assert_eq!(walked, everything, "every entry once, in ledger order");

    let w1_everything = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("w-1 entries");
    let w1_walked: Vec<LedgerEntry> = pages_after(&ledger, Some("w-1"), 4)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(w1_walked, w1_everything);

    // An entry the ledger does not hold selects nothing.
    let unknown = ledger
        .wallet_entries(wallet_query(
            "w-1",
            EntryFilter {
                after: Some(EntryId {
                    transaction_id: Uuid::nil(),
                    line: 1,
                }),
                ..EntryFilter::default()
            },
        ))
        .await
        .expect("unknown cursor");
    assert!(unknown.is_empty());
    // What the API checks a cursor against first: the entry, in the list paged.
    let entry = |transaction_id, line| EntryId {
        transaction_id,
        line,
    };
    assert!(!ledger
        .holds_entry(entry(Uuid::nil(), 1), EntryList::Ledger)
        .await
        .expect("holds entry"));
    let held = &everything[0];
    let own_entry: EntryId = held.id.parse().expect("an entry id");
    assert!(ledger
        .holds_entry(own_entry, EntryList::Ledger)
        .await
        .expect("holds entry"));
    // A line its transaction does not have (h111 F1: it paged on as if it did).
    assert!(!ledger
        .holds_entry(entry(held.transaction_id, 999), EntryList::Ledger)
        .await
        .expect("holds entry"));
    // Scoped to a wallet: its own transaction, never another's.
    let own = &held.wallet_id;
    let other = wallet(if own.as_str() == "w-1" { "w-2" } else { "w-1" });
    for list in [
        EntryList::WalletTransactions(own),
        EntryList::WalletAccounts(own),
    ] {
        assert!(ledger
            .holds_entry(own_entry, list)
            .await
            .expect("holds entry"));
    }
    for list in [
        EntryList::WalletTransactions(&other),
        EntryList::WalletAccounts(&other),
    ] {
        assert!(!ledger
            .holds_entry(own_entry, list)
            .await
            .expect("holds entry"));
    }
    // The side of a wallet's transaction on another account (a credit's
    // external:deposits line) is in the wallet's transactions, not on its accounts.
    let transactions = ledger
        .transactions(TransactionsQuery {
            wallet_id: Some(own.clone()),
            filter: EntryFilter::default(),
        })
        .await
        .expect("transactions");
    let other_side: EntryId = transactions
        .iter()
        .find(|line| line.account.owning_wallet().is_none())
        .expect("a line on an account of no wallet")
        .id
        .parse()
        .expect("an entry id");
    assert!(ledger
        .holds_entry(other_side, EntryList::WalletTransactions(own))
        .await
        .expect("holds entry"));
    assert!(!ledger
        .holds_entry(other_side, EntryList::WalletAccounts(own))
        .await
        .expect("holds entry"));
}

/// `w-long`, credited one checkpoint interval of transactions and
/// `extra` more, beside `w-other`, posted in large batches; `w-long`'s first
/// summary (which writes its checkpoint). For the backends' tests of damaged
/// checkpoint rows.
pub async fn a_checkpointed_wallet_beside_another(
    ledger: &dyn LedgerUnderTest,
    extra: u64,
) -> WalletSummary {
    let mut log = EventLog::default();
    log.create("w-long", "0.00");
    log.create("w-other", "5.00");
    for _ in 0..TOTALS_CHECKPOINT_TRANSACTIONS + extra {
        log.credit("w-long", "1.00");
    }
    for chunk in log.recorded.chunks(LARGE_BATCH_EVENTS) {
        ledger.post(chunk, None).await.expect("post");
    }
    ledger
        .wallet_summary(&wallet("w-long"), None)
        .await
        .expect("summary")
}

/// Events of the large-batch scenario: as many as a Kafka batch brings.
pub const LARGE_BATCH_EVENTS: usize = 500;

pub async fn a_batch_of_hundreds_of_events_is_posted_in_one_call(ledger: Arc<dyn LedgerUnderTest>) {
    let wallet_count = 100;
    let mut log = EventLog::default();
    for index in 0..wallet_count {
        log.create(&format!("w-{index}"), "100.00");
    }
    // Each transfer is two events: the rest of the batch is transfers around the ring.
    let transfer_count = (LARGE_BATCH_EVENTS - wallet_count) / 2;
    for index in 0..transfer_count {
        let from = format!("w-{}", index % wallet_count);
        let to = format!("w-{}", (index + 1) % wallet_count);
        log.transfer(&from, &to, "1.25");
    }
    assert_eq!(log.recorded.len(), LARGE_BATCH_EVENTS);
    let last = log.recorded.last().map(|recorded| recorded.position);

    let outcome = ledger.post(&log.recorded, last).await.expect("post");
    assert_eq!(
        outcome,
        PostOutcome {
            posted: LARGE_BATCH_EVENTS,
            skipped: 0
        }
    );
    assert_eq!(Ledger::checkpoint(&*ledger).await.expect("checkpoint"), 500);

    let verification = ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, 500);
    assert_eq!(verification.clearing_balance, Decimal::ZERO);
    assert_eq!(verification.settlement_balance, money("-10000.00"));
    assert_eq!(verification.wallet_balances.len(), wallet_count);
    for (wallet_id, history) in &log.histories {
        let last = history.last().expect("history");
        assert_eq!(
            verification.wallet_balances.get(wallet_id),
            Some(&last.balance_after.value()),
            "{wallet_id}"
        );
        let summary = ledger
            .wallet_summary(wallet_id, None)
            .await
            .expect("summary");
        assert_eq!(summary.balance, last.balance_after.value(), "{wallet_id}");
    }

    let again = ledger.post(&log.recorded, last).await.expect("post again");
    assert_eq!(
        again,
        PostOutcome {
            posted: 0,
            skipped: LARGE_BATCH_EVENTS
        }
    );
}

/// An event the store accepted before the API refused control characters,
/// its description holding U+0000, is posted like any other (PostgreSQL
/// `text` cannot hold U+0000: the posting rules replace it).
pub async fn a_stored_description_holding_nul_is_posted(ledger: Arc<dyn LedgerUnderTest>) {
    let mut log = EventLog::default();
    log.create("w-1", "10.00");
    let stored = Description::try_from("old\u{0}text".to_owned()).expect("stored description");
    log.decide(
        "w-1",
        CommandKind::Credit {
            amount: amount("1.00"),
            description: Some(stored),
        },
    );
    ledger
        .post(&log.recorded, None)
        .await
        .expect("every event the store accepted is posted");
    let entries = ledger
        .wallet_entries(wallet_query("w-1", EntryFilter::default()))
        .await
        .expect("entries");
    assert_eq!(entries[0].description, "old\u{FFFD}text", "newest first");
    assert_eq!(entries[0].amount, money("1.00"));
}

/// Defines one `#[tokio::test]` per scenario, each running it through
/// `$harness`: an `async fn(conformance::Scenario)` that gives the scenario a
/// fresh ledger of its backend (and cleans up after it).
#[macro_export]
macro_rules! ledger_conformance_tests {
    ($harness:path) => {
        $crate::ledger_conformance_tests!(
            @each $harness;
            a_sequence_of_operations_gives_balanced_transactions_and_the_wallet_balances,
            wallet_entries_are_the_wallets_own_side_in_api_form,
            reference_entries_show_every_account_of_a_transfer,
            delivering_a_batch_twice_posts_it_once_and_the_checkpoint_holds,
            an_event_repeated_within_a_batch_is_posted_once,
            a_transfer_with_one_half_posted_is_missing_its_other_half,
            a_reversed_transfer_is_complete_and_gives_the_payer_its_money_back,
            a_reversed_capture_gives_the_payer_its_money_back_through_clearing,
            queries_filter_by_type_and_date_and_page_with_limit_and_offset,
            keyset_pages_walk_every_entry_once_in_ledger_order,
            a_batch_of_hundreds_of_events_is_posted_in_one_call,
            a_stored_description_holding_nul_is_posted,
            overdrafts_post_like_debits_and_wallet_updates_move_no_money,
            an_overdrawn_wallet_has_a_negative_ledger_balance,
            a_summary_as_of_a_moment_counts_what_occurred_until_then,
            a_long_wallets_summary_is_its_entries_sum_from_any_checkpoint,
            holds_move_money_through_the_held_account_and_everything_still_sums_to_zero,
            a_wallets_entries_include_its_held_sub_account,
        );
    };
    (@each $harness:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                $harness(|ledger| Box::pin($crate::conformance::$scenario(ledger))).await;
            }
        )+
    };
}
