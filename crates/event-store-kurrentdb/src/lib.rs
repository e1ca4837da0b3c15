//! The `EventStore` port on KurrentDB, through the official gRPC client
//! (`kurrentdb` 1.x).
//!
//! A crate of its own, not a module of `event-store`: the client brings tonic,
//! hyper, rustls and aws-lc, which the embedded and PostgreSQL builds need not
//! compile. Only a binary that offers `EVENT_STORE=kurrentdb` depends on it.
//! No `protoc` is needed: the client ships its generated gRPC code.
//!
//! # Streams
//! Wallet `<id>` is the stream `wallet-<id>` (see [`StreamNames`]); its
//! version `n` is KurrentDB revision `n - 1`, so "expected version 0" is
//! `StreamState::NoStream` and "expected version n" is `StreamRevision(n - 1)`.
//! Events are JSON (`content-type: application/json`) with the event's type
//! name and its own `event_id` as the KurrentDB event id.
//!
//! # Positions
//! The port's `u64` position is the event's **log position**: the byte offset
//! of its record in KurrentDB's transaction log. Every append made through the
//! gRPC API is committed implicitly, and for such an event KurrentDB reports
//! the same number as its commit and its prepare position (a server reading
//! `$all` builds the position of an implicitly committed record as
//! `(LogPosition, LogPosition)`). So positions are distinct for every event,
//! increase in `$all` order, and survive restarts; they are not dense (they
//! jump by each record's size), which the port allows. A record whose commit
//! and prepare positions differ (an explicit transaction of the retired TCP API)
//! is refused with [`KurrentDbError::PositionNotImplicitlyCommitted`] rather
//! than given a number that could sort wrong. See [`mapping::port_position`].
//!
//! `read_all(after, limit)` reads `$all` forward from `Position { commit: after,
//! prepare: after }`, filtered on the wallet stream prefix on the server, and
//! drops the event at exactly `after` (the server's read includes the record at
//! its start position). `after = 0` reads from the start of the log, where no
//! event lives. Reads require the leader, and the leader serves only committed
//! records in log order, so a batch never has a gap a later commit could fill.
//!
//! # All-or-nothing appends
//! KurrentDB writes one stream atomically per append. Server 25.1 added an
//! atomic multi-stream append (`MultiStreamAppend`, the v2 streams protocol),
//! but the Rust client 1.2.0 does not expose it (its `batch_append` is the
//! older, per-stream batch protocol, not atomic across streams). So an append
//! that touches two wallet streams is refused whole with
//! [`KurrentDbError::MultiStreamAppendUnsupported`], never half written, and
//! the store says so ([`EventStore::appends_streams_atomically`] is false):
//! command-api then runs transfers as the crash-safe transfer process, its
//! journal on this server ([`KurrentDbTransferJournal`], see [`journal`] and
//! [`store`]).
//!
//! Idempotent responses do **not** need a second atomic stream: the response
//! rides in the metadata of the first event of the wallet append, so it is
//! stored in the same atomic write as the events; a small pointer stream per
//! key finds it. See [`idempotency`].
//!
//! The hold directory has no table either: a hold id is claimed by a pointer
//! stream per hold that the wallet's own `HoldPlaced` certifies (the
//! idempotency scheme again), and the sweeper's due holds are a fold of the
//! wallet log kept in memory. See [`holds`].
//!
//! # Snapshots
//! A wallet's snapshots live in their own stream, newest last, read one
//! event backwards from the end (see [`snapshot`]), so a load reads the
//! snapshot and the wallet stream's tail after it, as on the SQL stores.
//!
//! # The relay
//! `event-relay` and `outbox-relay` keep their checkpoint in their own store
//! and, on KurrentDB, read the log through [`EventStore::subscribe_all`]: a
//! catch-up subscription to `$all`, filtered on the wallet prefix, from that
//! checkpoint, mapped with the positions above (see [`store`] and
//! the `subscription` module).

mod error;
pub mod holds;
pub mod idempotency;
pub mod journal;
pub mod mapping;
pub mod snapshot;
pub mod store;
mod subscription;

pub use error::KurrentDbError;
pub use journal::KurrentDbTransferJournal;
pub use mapping::StreamNames;
pub use store::KurrentDbEventStore;

use std::sync::Arc;

use event_store::{EventStore, StoreError};
use transfer_process::TransferJournal;

/// The store at `url` behind the port, for binaries that pick their store by
/// configuration; a server that cannot be reached fails here, at start-up.
pub async fn open(url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    Ok(Arc::new(KurrentDbEventStore::connect(url).await?))
}

/// [`open`], with the transfer journal on the same server (command-api's
/// transfers run as a process on KurrentDB).
pub async fn open_with_journal(
    url: &str,
) -> Result<(Arc<dyn EventStore>, Arc<dyn TransferJournal>), StoreError> {
    let store = KurrentDbEventStore::connect(url).await?;
    let journal = store.transfer_journal();
    Ok((Arc::new(store), Arc::new(journal)))
}
