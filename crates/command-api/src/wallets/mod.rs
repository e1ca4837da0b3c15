//! The command side: what the API asks of wallets, decided by the domain and
//! appended to the event store under a per-wallet lock and an expected version.

mod admission;
mod cache;
mod footprint;
mod holds;
mod operation;
mod recent;
#[cfg(any(test, feature = "testing"))]
pub mod replicas;
mod service;

pub use admission::COMMANDS_IN_FLIGHT_MAX;
pub use cache::{WALLET_CACHE_MIB_DEFAULT, WALLET_CACHE_MIB_MAX};
pub use operation::{OperationOutcome, WalletOperation};
pub use recent::{RecentEvents, RECENT_EVENTS_PER_WALLET};
pub use service::{
    IdempotencyClaim, Reply, ReplyFormat, RequestContext, ServiceError, WalletService,
};
