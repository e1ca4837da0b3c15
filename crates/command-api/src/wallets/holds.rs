//! Hold operations on the command side: decided by the domain on the hold's
//! wallet (and, for a capture to another wallet, on both wallets at once
//! with [`decide_capture`]), appended like every other operation. When
//! transfers run as the transfer process, a capture to another wallet runs
//! there too ([`capture_order`]), each half a step of its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use event_store::{
    evolve_checked, read_tail, HoldPageQuery, HoldVersions, ListedHold, RecordedEvent, StoreError,
    StreamAppend,
};
use uuid::Uuid;
use wallet_domain::{
    decide_capture, hold_after, hold_as_of, holds_in, pending_at, Command, CommandKind,
    DomainError, EventKind, EventMetadata, Hold, HoldId, HoldStatus, Wallet, WalletId, WalletState,
};

use super::operation::{OperationOutcome, WalletOperation};
use super::service::{applied, metadata, Reads, RequestContext, ServiceError, WalletService};

/// Events of the first step back when a hold settled before its wallet's
/// newest snapshot is looked for backwards from that snapshot; each next
/// step reads twice as many, so a hold `n` events old costs fewer than `2n`
/// events and a logarithmic count of reads.
pub const HOLD_SEARCH_PAGE_EVENTS: u64 = 1_000;
/// The longest step back, in events.
pub const HOLD_SEARCH_PAGE_EVENTS_MAX: u64 = 64_000;

/// The capture command of a capture to another wallet, issued at
/// `issued_at` (its event id is the transfer process's to choose); `None`
/// for any other operation, a capture that is a debit included.
pub(super) fn capture_order(
    operation: &WalletOperation,
    context: &RequestContext,
    issued_at: DateTime<Utc>,
) -> Option<Command> {
    let WalletOperation::CaptureHold {
        wallet_id,
        hold_id,
        amount,
        to_wallet_id: Some(to_wallet_id),
        description,
    } = operation
    else {
        return None;
    };
    Some(Command {
        wallet_id: wallet_id.clone(),
        kind: CommandKind::CaptureHold {
            hold_id: hold_id.clone(),
            amount: *amount,
            to_wallet_id: Some(to_wallet_id.clone()),
            description: description.clone(),
        },
        event_id: Uuid::now_v7(),
        issued_at,
        metadata: metadata(context),
    })
}

impl WalletService {
    /// The appends and the outcome of a hold operation.
    pub(super) async fn decide_hold(
        &self,
        operation: &WalletOperation,
        issued_at: DateTime<Utc>,
        metadata: EventMetadata,
        reads: Reads,
    ) -> Result<(Vec<StreamAppend>, OperationOutcome), ServiceError> {
        let (wallet_id, hold_id, kind, payee_id) = match operation {
            WalletOperation::PlaceHold {
                wallet_id,
                hold_id,
                amount,
                expires_at,
                description,
                ..
            } => (
                wallet_id,
                hold_id,
                CommandKind::PlaceHold {
                    hold_id: hold_id.clone(),
                    amount: *amount,
                    expires_at: *expires_at,
                    description: description.clone(),
                },
                None,
            ),
            WalletOperation::CaptureHold {
                wallet_id,
                hold_id,
                amount,
                to_wallet_id,
                description,
            } => (
                wallet_id,
                hold_id,
                CommandKind::CaptureHold {
                    hold_id: hold_id.clone(),
                    amount: *amount,
                    to_wallet_id: to_wallet_id.clone(),
                    description: description.clone(),
                },
                to_wallet_id.as_ref(),
            ),
            WalletOperation::VoidHold { wallet_id, hold_id } => (
                wallet_id,
                hold_id,
                CommandKind::VoidHold {
                    hold_id: hold_id.clone(),
                },
                None,
            ),
            WalletOperation::ExpireHold { wallet_id, hold_id } => (
                wallet_id,
                hold_id,
                CommandKind::ExpireHold {
                    hold_id: hold_id.clone(),
                },
                None,
            ),
            other => unreachable!("{} is not a hold operation", other.name()),
        };
        if let WalletOperation::PlaceHold { hold_id, .. } = operation {
            // The directory's answer before the wallet's: an id in use is a
            // conflict whatever the wallet could afford (the append checks
            // again, atomically).
            if self.hold_wallet(hold_id).await?.is_some() {
                return Err(DomainError::HoldAlreadyExists(hold_id.clone()).into());
            }
        }
        let command = Command {
            wallet_id: wallet_id.clone(),
            kind,
            event_id: Uuid::now_v7(),
            issued_at,
            metadata,
        };
        let payer = self.load(wallet_id, reads).await?;
        let payee = match payee_id {
            Some(payee_id) => Some((payee_id, self.load(payee_id, reads).await?)),
            None => None,
        };
        let payee_state = payee
            .as_ref()
            .map_or(&WalletState::Absent, |(_, loaded)| &loaded.state);
        let (sent, received) = match decide_capture(&payer.state, &command, payee_state) {
            Err(DomainError::HoldNotPending {
                hold_id,
                status: None,
            }) => return Err(self.not_pending(wallet_id, hold_id, issued_at).await),
            decided => decided?,
        };
        let hold = hold_after(&payer.state, &sent, hold_id).ok_or_else(|| {
            DomainError::HoldNotPending {
                hold_id: hold_id.clone(),
                status: None,
            }
        })?;
        let (wallet, append) = applied(payer, wallet_id, sent)?;
        let mut appends = vec![append];
        let payee = match payee {
            Some((payee_id, loaded)) if !received.is_empty() => {
                let (payee, append) = applied(loaded, payee_id, received)?;
                appends.push(append);
                Some(payee)
            }
            _ => None,
        };
        Ok((
            appends,
            OperationOutcome::Hold {
                hold,
                wallet,
                payee,
            },
        ))
    }
}

impl WalletService {
    /// The error of a capture the transfer process refused: as the atomic
    /// path answers it (a hold no longer pending says what it became).
    pub(super) async fn capture_refused(
        &self,
        capture: &Command,
        refusal: DomainError,
    ) -> ServiceError {
        match refusal {
            DomainError::HoldNotPending {
                hold_id,
                status: None,
            } => {
                self.not_pending(&capture.wallet_id, hold_id, capture.issued_at)
                    .await
            }
            refusal => refusal.into(),
        }
    }

    /// The refusal of a hold that is no longer pending, with what it became
    /// (read from its wallet's stream: the state keeps pending holds only).
    async fn not_pending(
        &self,
        wallet_id: &WalletId,
        hold_id: HoldId,
        clock: DateTime<Utc>,
    ) -> ServiceError {
        let status = match self.hold(wallet_id, &hold_id, clock).await {
            Ok(found) => found.map(|hold| hold.status),
            Err(error) => return error.into(),
        };
        DomainError::HoldNotPending { hold_id, status }.into()
    }

    /// The wallet a hold was placed on, from the event store's hold directory.
    pub async fn hold_wallet(&self, hold_id: &HoldId) -> Result<Option<WalletId>, StoreError> {
        self.store().find_hold_wallet(hold_id).await
    }

    /// One hold of a wallet as it stands at `clock`; `None` when the wallet
    /// has no such hold. Read from the wallet's newest snapshot on (a bounded
    /// read: the snapshot keeps its pending holds) when the hold was pending
    /// at the snapshot or placed after it; a hold settled before the snapshot
    /// from the stream between its placement and its settlement, whose
    /// versions the hold directory keeps ([`event_store::EventStore::hold_versions`]);
    /// where it keeps none (KurrentDB, holds placed before it kept them) the
    /// hold is looked for backwards from the snapshot in growing steps (from
    /// [`HOLD_SEARCH_PAGE_EVENTS`]) down to its `HoldPlaced`: a read about as
    /// long as the hold is old, not as long as the stream.
    pub async fn hold(
        &self,
        wallet_id: &WalletId,
        hold_id: &HoldId,
        clock: DateTime<Utc>,
    ) -> Result<Option<Hold>, StoreError> {
        let tail = read_tail(&**self.store(), wallet_id).await?;
        // A tail that does not hold together is not read (h135).
        tail.events
            .iter()
            .try_fold(tail.base.clone(), |state, recorded| {
                evolve_checked(wallet_id, state, recorded)
            })?;
        let events: Vec<_> = tail
            .events
            .into_iter()
            .map(|recorded| recorded.event)
            .collect();
        if let Some(hold) = hold_as_of(&tail.base, &events, hold_id, clock) {
            return Ok(Some(hold));
        }
        // Without a snapshot the tail was the whole stream.
        let below = tail.base.version();
        if let Some(HoldVersions {
            placed,
            settled: Some(settled),
        }) = self.store().hold_versions(hold_id).await?
        {
            // Settled before the snapshot: its life is the stream between
            // the two versions the directory gives.
            let life = self
                .store()
                .read_stream_until(wallet_id, placed.saturating_sub(1), settled)
                .await?;
            let events = life.iter().map(|recorded| &recorded.event);
            if let Some(hold) = holds_in(events, clock).remove(hold_id) {
                return Ok(Some(hold));
            }
            tracing::warn!(%hold_id, %wallet_id, placed, settled, "the hold directory's versions do not hold the hold; searching its wallet's stream");
        }
        let mut pages = Vec::new();
        let mut top = below;
        let mut step = HOLD_SEARCH_PAGE_EVENTS;
        while top > 0 {
            let bottom = top.saturating_sub(step);
            step = (2 * step).min(HOLD_SEARCH_PAGE_EVENTS_MAX);
            let page = self
                .store()
                .read_stream_until(wallet_id, bottom, top)
                .await?;
            let placed = page.iter().position(|recorded| {
                matches!(recorded.event.kind, EventKind::HoldPlaced { .. })
                    && recorded.event.kind.hold_id() == Some(hold_id)
            });
            if let Some(placed) = placed {
                let since = page[placed..].iter().chain(pages.iter().rev().flatten());
                let since = since.map(|recorded: &RecordedEvent| &recorded.event);
                return Ok(holds_in(since.chain(&events), clock).remove(hold_id));
            }
            pages.push(page);
            top = bottom;
        }
        Ok(None)
    }

    /// A wallet's holds still pending at `clock`, from its state now (its
    /// newest snapshot and the events after it: a bounded read, where
    /// [`Self::holds_of`] folds the whole stream); `None` for an unknown
    /// wallet.
    pub async fn pending_holds(
        &self,
        wallet_id: &WalletId,
        clock: DateTime<Utc>,
    ) -> Result<Option<BTreeMap<HoldId, Hold>>, StoreError> {
        Ok(self
            .current(wallet_id)
            .await?
            .map(|wallet| pending_at(&wallet, clock)))
    }

    /// One page of a wallet's holds as they stand at `clock`, oldest first
    /// (by `createdAt`, then hold id), and how many match `status` in all;
    /// `None` for an unknown wallet. `PENDING` from the wallet's state; any
    /// other filter from the hold directory ([`EventStore::hold_page`]) and
    /// each listed hold's own events, so the read grows with the wallet's
    /// holds, not its stream; from the whole stream where the directory
    /// lists none (KurrentDB, or a wallet with a hold entered before it kept
    /// when holds were placed).
    pub async fn holds_listed(
        &self,
        wallet_id: &WalletId,
        query: &HoldPageQuery,
    ) -> Result<Option<(u64, Vec<Hold>)>, StoreError> {
        if query.status == Some(HoldStatus::Pending) {
            let pending = self.pending_holds(wallet_id, query.clock).await?;
            return Ok(pending.map(|holds| page_of(holds, query)));
        }
        if self.current(wallet_id).await?.is_none() {
            return Ok(None);
        }
        if let Some(page) = self.store().hold_page(wallet_id, query).await? {
            if let Some(holds) = self.listed(wallet_id, &page.holds, query).await? {
                return Ok(Some((page.count, holds)));
            }
        }
        let every = self.holds_of(wallet_id, query.clock).await?;
        Ok(every.map(|(_, holds)| page_of(holds, query)))
    }

    /// The holds of a directory page, each folded from its own events (its
    /// `HoldPlaced` and the event that settled it); `None`, logged, when
    /// one does not read back as the directory lists it.
    async fn listed(
        &self,
        wallet_id: &WalletId,
        listed: &[ListedHold],
        query: &HoldPageQuery,
    ) -> Result<Option<Vec<Hold>>, StoreError> {
        let mut holds = Vec::with_capacity(listed.len());
        for ListedHold { hold_id, versions } in listed {
            let mut events = Vec::new();
            for version in std::iter::once(versions.placed).chain(versions.settled) {
                let read = self
                    .store()
                    .read_stream_until(wallet_id, version.saturating_sub(1), version)
                    .await?;
                events.extend(read.into_iter().map(|recorded| recorded.event));
            }
            match holds_in(&events, query.clock).remove(hold_id) {
                Some(hold) if query.status.is_none_or(|status| hold.status == status) => {
                    holds.push(hold);
                }
                _ => {
                    tracing::warn!(%hold_id, %wallet_id, ?versions, "the hold directory lists a hold its events do not give; listing the wallet's holds from its stream");
                    return Ok(None);
                }
            }
        }
        Ok(Some(holds))
    }

    /// A wallet and its holds as they stand at `clock`, folded from its
    /// whole stream (a hold settled long ago is in no snapshot); `None` for
    /// an unknown wallet.
    pub async fn holds_of(
        &self,
        wallet_id: &WalletId,
        clock: DateTime<Utc>,
    ) -> Result<Option<(Wallet, BTreeMap<HoldId, Hold>)>, StoreError> {
        let stream = self.store().read_stream(wallet_id, 0).await?;
        let state = stream
            .iter()
            .try_fold(WalletState::Absent, |state, recorded| {
                evolve_checked(wallet_id, state, recorded)
            })?;
        let events: Vec<_> = stream.into_iter().map(|recorded| recorded.event).collect();
        Ok(state
            .wallet()
            .cloned()
            .map(|wallet| (wallet, holds_in(&events, clock))))
    }
}

/// The page `query` asks for of `holds`, and how many match its status.
pub(super) fn page_of(holds: BTreeMap<HoldId, Hold>, query: &HoldPageQuery) -> (u64, Vec<Hold>) {
    let mut matching: Vec<Hold> = holds
        .into_values()
        .filter(|hold| query.status.is_none_or(|status| hold.status == status))
        .collect();
    matching.sort_by(|one, other| (one.created_at, &one.id).cmp(&(other.created_at, &other.id)));
    let count = u64::try_from(matching.len()).unwrap_or(u64::MAX);
    let skipped = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let taken = usize::try_from(query.limit).unwrap_or(usize::MAX);
    (
        count,
        matching.into_iter().skip(skipped).take(taken).collect(),
    )
}
