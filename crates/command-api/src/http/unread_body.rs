//! A chunked request body left unread when its answer is written: the
//! connection is closed after the answer, as it is for a body of a declared
//! length.
//!
//! actix-http (3.20) drains a dropped chunked body instead of closing the
//! connection, with no time bound (actix/actix-web#3936, whose author notes
//! the drain should be bounded): a client that stalls mid-body after its
//! answer (the 408 of a body that did not arrive, or any answer given before
//! the body was read: 404, 401, 415) held its connection for as long as it
//! liked, answered further requests on it after a `connection: close`, and
//! each such connection cost a file descriptor without end. The dispatcher
//! closes the connection when the answer is written while the body is
//! unfinished and still held, so this middleware holds it: the handler reads
//! the body through a handle, and after the answer a task keeps the body
//! until the connection ends (or the client sends the rest), for at most
//! [`UNREAD_BODY_HOLD_MS`].

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use futures::future::LocalBoxFuture;
use futures::StreamExt;

/// How long the body left unread under an answer is held after it, at most,
/// in ms: the dispatcher closes the connection once the answer is written,
/// which ends the body, so this only bounds a task that outlives it.
pub const UNREAD_BODY_HOLD_MS: u64 = 5_000;

type SharedPayload = Rc<RefCell<Payload>>;

/// Middleware: a chunked request's body, read by the handler through a
/// handle and held after the answer (see the module's documentation).
pub fn hold_unread_body<S>(
    mut request: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    if !request.chunked().unwrap_or(false) {
        return Box::pin(service.call(request));
    }
    let body: SharedPayload = Rc::new(RefCell::new(request.take_payload()));
    let handle = Rc::clone(&body);
    let read = futures::stream::poll_fn(move |cx| handle.borrow_mut().poll_next_unpin(cx));
    request.set_payload(Payload::Stream {
        payload: Box::pin(read),
    });
    let answered = service.call(request);
    Box::pin(async move {
        let answer = answered.await;
        actix_web::rt::spawn(hold_until_ended(body));
        answer
    })
}

/// Reads and drops what is left of `body` until it ends (the rest sent, or
/// the connection closed), for at most [`UNREAD_BODY_HOLD_MS`].
async fn hold_until_ended(body: SharedPayload) {
    let ended = futures::future::poll_fn(|cx| loop {
        match body.borrow_mut().poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(_) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    });
    // Past the bound the body is dropped, and actix drains what comes.
    let _ = tokio::time::timeout(Duration::from_millis(UNREAD_BODY_HOLD_MS), ended).await;
}
