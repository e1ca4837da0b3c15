//! Closing librdkafka clients nobody waits for.

/// Drops `client` (a librdkafka client: its destruction waits for its
/// threads, and a consumer's for its group's coordinator) on a thread of its
/// own that nothing joins. Not on tokio's blocking pool: a runtime that shuts
/// down waits for every blocking task, so one client whose close never ends
/// (its coordinator unreachable, requests queued for it) kept a stopping
/// process, or a test, from ever exiting. When no thread can be started, the
/// client is dropped here.
pub(crate) fn close_detached<T: Send + 'static>(client: T) {
    let spawned = std::thread::Builder::new()
        .name("kafka-client-close".into())
        .spawn(move || drop(client));
    if let Err(error) = spawned {
        tracing::warn!(%error, "no thread to close a Kafka client on; closed in place");
    }
}
