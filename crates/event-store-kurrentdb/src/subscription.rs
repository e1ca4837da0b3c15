//! The live feed of the wallet log: a catch-up subscription to `$all`,
//! filtered on the wallet stream prefix on the server, as the port's
//! [`EventFeed`].
//!
//! The subscription starts at [`read_all_start`] of the reader's checkpoint,
//! so it yields what `read_all` would (catch-up) and then each new event
//! (live). The event at exactly the checkpoint is dropped, as `read_all`
//! drops it. The client's own resubscription is left off: after an error the
//! feed yields it and ends, and the relay opens a new feed from its sink's
//! checkpoint, the only position that has been durably taken.
//!
//! Memory stays bounded without a buffer of ours: the feed is a pull over the
//! gRPC stream, so a reader that stops pulling stops reading the HTTP/2
//! stream, whose flow-control window stops the server.

use event_store::{EventFeed, StoreError, StoredEvent};
use futures::StreamExt;
use kurrentdb::{Subscription, SubscriptionEvent};

use crate::mapping::{is_system_event, stored_event, StoredRecord};
use crate::KurrentDbError;

/// The port's feed of `subscription`, with the events strictly after `after`.
pub(crate) fn wallet_feed(subscription: Subscription, after: u64) -> EventFeed {
    futures::stream::unfold(Some(subscription), move |open| async move {
        let mut subscription = open?;
        let item = match subscription.next_subscription_event().await {
            Ok(message) => feed_item(message, after),
            Err(error) => Err(KurrentDbError::Client(error)),
        };
        // Ends after an error: the reader resubscribes from its checkpoint.
        let next = item.is_ok().then_some(subscription);
        Some((item.map_err(StoreError::from), next))
    })
    .filter_map(|item| std::future::ready(item.transpose()))
    .boxed()
}

/// The wallet event a subscription message carries, if any, as stored (not
/// decoded: the relay moves it as it is).
fn feed_item(
    message: SubscriptionEvent,
    after: u64,
) -> Result<Option<StoredEvent>, KurrentDbError> {
    let SubscriptionEvent::EventAppeared(resolved) = message else {
        return Ok(None);
    };
    let record = resolved.get_original_event();
    if is_system_event(&record.event_type) {
        return Ok(None);
    }
    let event = stored_event(StoredRecord::from(record))?;
    Ok((event.position > after).then_some(event))
}

#[cfg(test)]
mod tests {
    use kurrentdb::{Client, ClientSettings, Position, SubscribeToAllOptions};

    use super::*;

    #[tokio::test]
    async fn a_feed_that_cannot_subscribe_yields_the_error_and_ends() {
        // Port 1 on the loopback refuses at once; one discovery attempt keeps it short.
        let settings: ClientSettings =
            "kurrentdb://127.0.0.1:1?tls=false&maxDiscoverAttempts=1&discoveryInterval=10"
                .parse()
                .expect("a connection string");
        let client = Client::new(settings).expect("a client");
        let subscription = client
            .subscribe_to_all(&SubscribeToAllOptions::default())
            .await;
        let items: Vec<_> = wallet_feed(subscription, 0).collect().await;
        assert!(
            matches!(items.as_slice(), [Err(StoreError::Unavailable(_))]),
            "{items:?}"
        );
    }

    #[test]
    fn messages_that_are_not_events_carry_none() {
        // The filter's checkpoints through quiet stretches, the confirmation,
        // and the catch-up notices move nothing: only the sink's checkpoint
        // says what was delivered.
        let position = Position {
            commit: 500,
            prepare: 500,
        };
        for message in [
            SubscriptionEvent::Confirmed("subscription-1".to_owned()),
            SubscriptionEvent::Checkpoint(position),
            SubscriptionEvent::CaughtUp(None),
            SubscriptionEvent::FellBehind(None),
            SubscriptionEvent::LastAllPosition(position),
        ] {
            let item = feed_item(message, 0);
            assert!(matches!(item, Ok(None)), "{item:?}");
        }
    }
}
