//! The wallet business, free of I/O.
//!
//! Everything the service decides is in two pure functions: [`decide`] turns a
//! command and the current state into events, [`evolve`] folds one event into
//! the state. Values that reach them (ids, amounts) are parsed on construction,
//! so holding one means it is valid.

pub mod command;
pub mod error;
pub mod event;
pub mod hold;
pub mod ids;
pub mod money;
pub mod snapshot;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wallet;

pub use command::{issued_at, Command, CommandKind};
pub use error::{DomainError, ValidationError};
pub use event::{EventDecodeError, EventKind, EventMetadata, WalletEvent, EVENT_SCHEMA_VERSION};
pub use hold::{
    hold_after, hold_as_of, holds_in, kept_expiry, pending_at, settlement, Hold, HoldStatus,
    PendingHold, UnknownHoldStatus, PENDING_HOLDS_MAX,
};
pub use ids::{
    refused_in_description, server_id_spelling, Description, HoldId, IdentifierRule, OwnerId,
    WalletId, HOLD_ID_LENGTH_MAX, IDENTIFIER_LENGTH_MAX, OWNER_ID_LENGTH_MAX, OWNER_ID_RULE,
    WALLET_ID_RULE,
};
pub use money::{Amount, Balance, AMOUNT_MAX, MONEY_SCALE};
pub use snapshot::{
    decode_snapshot, encode_snapshot, SnapshotDecodeError, SNAPSHOT_SCHEMA_VERSION,
};
pub use status::{UnknownWalletStatus, WalletStatus};
pub use wallet::{
    capture_halves, capture_received, continues, decide, decide_capture, decide_transfer, evolve,
    fold_as_of, replay, replay_as_of, within_as_of, AsOf, CaptureHalves, Wallet, WalletState,
};
