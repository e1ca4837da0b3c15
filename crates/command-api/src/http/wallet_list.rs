//! `GET /wallets`: the wallet list, every wallet (the seed's "retrieve all
//! wallets") or one page of it.

use std::sync::Arc;

use actix_web::http::header::ContentType;
use actix_web::http::Version;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use futures::Stream;
use read_model::{ReadModel, WalletListQuery, WalletView, LIST_LIMIT_MAX};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

use super::auth::{owner_filter, Caller, OwnerFilter};
use super::dto::WalletResponse;
use super::error::{ApiError, ErrorBody};
use super::ledger::{catch_up, Freshness};
use super::query::{self, Bounds, Kind, QueryError, Spec};
use crate::catch_up::Projection;
use crate::startup::AppState;

/// How long a list waits for the read model to reach the writes acknowledged
/// before it began, so a client lists what it has just created.
pub const LIST_CATCH_UP_WAIT_MS: u64 = 2_000;

/// Wallets read from the read model at a time when a list without `limit`
/// sends every wallet: the body is sent page by page, so the server holds
/// one page of this many wallets (about 250 KiB of JSON) per list being
/// sent, however many wallets there are and however slowly the client
/// reads. As the default page of the seed's list was, so a list that fits
/// in it is one body of known length.
pub const EVERY_WALLET_PAGE_WALLETS: usize = 1_000;

/// Paging and filter of the wallet list, as text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    limit: Option<String>,
    after: Option<String>,
    owner_id: Option<String>,
}

const LIST_LIMIT_BOUNDS: Bounds = Bounds {
    min: 1,
    max: LIST_LIMIT_MAX as u64,
};

const LIST_PARAMS: [Spec; 3] = [
    Spec {
        name: "limit",
        description: "Wallets to return in one page, 1 to 10000. Absent: every wallet (after \
                      `after`, when given), as the seed's list.",
        kind: Kind::Integer(LIST_LIMIT_BOUNDS),
    },
    Spec {
        name: "after",
        description:
            "Return wallets whose id sorts after this one (the last id of the previous page).",
        kind: Kind::Id,
    },
    Spec {
        name: "ownerId",
        description: "Only this owner's wallets (percent-encoded: a `+` as %2B, as a bare `+` reads as a space).",
        kind: Kind::OwnerId,
    },
];

impl IntoParams for ListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        query::parameters(&LIST_PARAMS)
    }
}

/// How much of the list an answer holds.
enum Extent {
    /// One page of at most this many wallets, with a `Link` to the next.
    Page(usize),
    /// Every wallet, read [`EVERY_WALLET_PAGE_WALLETS`] at a time.
    Every,
}

impl ListParams {
    fn query(&self) -> Result<(WalletListQuery, Extent), QueryError> {
        let limit = query::size("limit", &self.limit, LIST_LIMIT_BOUNDS)?;
        let extent = limit.map_or(Extent::Every, Extent::Page);
        let query = WalletListQuery {
            owner_id: query::owner_id("ownerId", &self.owner_id)?,
            after: query::wallet_id("after", &self.after)?,
            limit: limit.unwrap_or(EVERY_WALLET_PAGE_WALLETS),
            // Set once the read model has caught up (`list_wallets`).
            seen_at: None,
        };
        Ok((query, extent))
    }
}

/// Wallets, ordered by id, as a JSON array (from the read model). Without
/// `limit`, every wallet, as the seed listed them; with it, one page, which
/// says where the next one starts in a `Link` header when it is full
/// ([`next_page_link`]).
#[utoipa::path(
    get, path = "/wallets", tag = "wallets",
    params(ListParams),
    responses(
        (status = 200, description = "Wallets: every one without `limit` (a list longer than \
                                      1000 wallets is sent in chunks as it is read, or over \
                                      HTTP/1.0 until the connection closes; a read \
                                      that fails after the first chunk closes the connection \
                                      before the array's end, so a cut list never reads as \
                                      whole), one page with it", body = [WalletResponse],
         headers(("Link" = String,
                  description = "Present when a page asked with `limit` holds `limit` wallets, \
                                 so more may follow: \
                                 `</wallets?after=<last id>&limit=<limit>[&ownerId=<ownerId>]>; rel=\"next\"` \
                                 (RFC 8288); the page it names may be empty."))),
        (status = 400, description = "Invalid paging or filter", body = ErrorBody),
    )
)]
pub async fn list_wallets(
    request: HttpRequest,
    caller: Caller,
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (mut query, extent) = params.query()?;
    query.owner_id = match owner_filter(&caller, query.owner_id.take())? {
        OwnerFilter::Apply(owner_id) => owner_id,
        OwnerFilter::Nothing => return Ok(HttpResponse::Ok().json(Vec::<WalletResponse>::new())),
    };
    let freshness = catch_up(&state, Projection::ReadModel, LIST_CATCH_UP_WAIT_MS).await?;
    // As `GET /wallets/{id}` sees a wallet: a hold due by the read is not held.
    query.seen_at = Some(chrono::Utc::now());
    // The first page is read before the answer starts: its failure is an
    // error answer, and a list that fits in it is one body of known length.
    let first = state.read_model.list_wallets(query.clone()).await?;
    let full = first.len() >= query.limit;
    match extent {
        Extent::Page(limit) => Ok(page(&freshness, &first, limit, params.owner_id.as_deref())),
        Extent::Every if !full => Ok(freshness.ok().json(responses(&first))),
        Extent::Every => {
            let mut builder = freshness.ok();
            builder.content_type(ContentType::json());
            // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): the body ends
            // where the server closes the connection.
            let before_chunks = request.version() < Version::HTTP_11;
            if before_chunks {
                builder.force_close();
            }
            let mut response =
                builder.streaming(every_wallet(Arc::clone(&state.read_model), query, first));
            response.head_mut().no_chunking(before_chunks);
            Ok(response)
        }
    }
}

fn responses(views: &[WalletView]) -> Vec<WalletResponse> {
    views.iter().map(WalletResponse::from).collect()
}

/// One page asked with `limit`, with its `Link` when full.
fn page(
    freshness: &Freshness,
    views: &[WalletView],
    limit: usize,
    owner_id: Option<&str>,
) -> HttpResponse {
    let mut response = freshness.ok();
    if views.len() >= limit {
        if let Some(last) = views.last() {
            response.insert_header(("Link", next_page_link(last.id.as_str(), limit, owner_id)));
        }
    }
    response.json(responses(views))
}

/// Where the chunks of a whole list stand.
struct EveryWallet {
    read_model: Arc<dyn ReadModel>,
    /// The read of the next page: its `after` moves past each page sent.
    query: WalletListQuery,
    /// A page read and not yet sent (the first, read before the answer).
    read: Option<Vec<WalletView>>,
    /// Whether the `[` has been sent.
    opened: bool,
    /// Whether a wallet has been sent (a `,` comes before the next).
    any_sent: bool,
    /// Whether the `]` has been sent.
    closed: bool,
}

/// The JSON array of every wallet of `query`, one chunk per page of
/// `query.limit` wallets, `first` being the first page, already read. Pages
/// follow each other by `after` (ids in order), so a wallet is sent once;
/// one created meanwhile is listed if its id sorts after the page being
/// read. A page that fails to be read ends the stream with its error, which
/// makes the server close the connection before the `]`: the client sees a
/// broken body, not a shorter list.
fn every_wallet(
    read_model: Arc<dyn ReadModel>,
    query: WalletListQuery,
    first: Vec<WalletView>,
) -> impl Stream<Item = Result<Bytes, ApiError>> {
    let start = EveryWallet {
        read_model,
        query,
        read: Some(first),
        opened: false,
        any_sent: false,
        closed: false,
    };
    futures::stream::try_unfold(start, |mut list| async move {
        if list.closed {
            return Ok(None);
        }
        let page = match list.read.take() {
            Some(page) => page,
            None => list
                .read_model
                .list_wallets(list.query.clone())
                .await
                .map_err(|error| {
                    tracing::error!(%error, "the wallet list broke off after its first chunk");
                    ApiError::from(error)
                })?,
        };
        let mut chunk = Vec::new();
        if !list.opened {
            chunk.push(b'[');
            list.opened = true;
        }
        for view in &page {
            if list.any_sent {
                chunk.push(b',');
            }
            serde_json::to_writer(&mut chunk, &WalletResponse::from(view))
                .map_err(|error| ApiError::Internal(error.to_string()))?;
            list.any_sent = true;
        }
        if page.len() < list.query.limit {
            chunk.push(b']');
            list.closed = true;
        }
        if let Some(last) = page.last() {
            list.query.after = Some(last.id.clone());
        }
        Ok(Some((Bytes::from(chunk), list)))
    })
}
/// The `Link` header (RFC 8288, `rel="next"`) of a full page of the wallet
/// list: the same query from after `last_id`, as a relative reference with
/// each value percent-encoded. A client that reads no header still gets the
/// seed's array; one that follows the links gets every wallet.
fn next_page_link(last_id: &str, limit: usize, owner_id: Option<&str>) -> String {
    let encoded =
        |value: &str| percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string();
    let owner = owner_id
        .filter(|owner| !owner.is_empty())
        .map(|owner| format!("&ownerId={}", encoded(owner)))
        .unwrap_or_default();
    format!(
        "</wallets?after={}&limit={limit}{owner}>; rel=\"next\"",
        encoded(last_id)
    )
}

/// What a query value percent-encodes: everything but RFC 3986's unreserved
/// characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use futures::StreamExt;
    use read_model::{ApplyOutcome, ReadModelError};
    use wallet_domain::{Balance, OwnerId, WalletId, WalletStatus};

    use super::*;

    /// Wallets `w0`..`w{count}` by id, whose reads fail from the
    /// `fails_from`-th list read on (counting from 1).
    struct Wallets {
        views: Vec<WalletView>,
        reads: AtomicUsize,
        fails_from: usize,
    }

    impl Wallets {
        fn new(count: usize, fails_from: usize) -> Self {
            let mut views: Vec<WalletView> = (0..count)
                .map(|n| WalletView {
                    id: WalletId::parse(&format!("w{n}")).expect("id"),
                    owner_id: OwnerId::parse("owner").expect("owner"),
                    balance: Balance::ZERO,
                    held_balance: Balance::ZERO,
                    overdraft_limit: Balance::ZERO,
                    status: WalletStatus::Active,
                    created_at: chrono::DateTime::UNIX_EPOCH,
                    updated_at: chrono::DateTime::UNIX_EPOCH,
                    version: 1,
                })
                .collect();
            views.sort_by(|a, b| a.id.cmp(&b.id));
            Self {
                views,
                reads: AtomicUsize::new(0),
                fails_from,
            }
        }
    }

    #[async_trait]
    impl ReadModel for Wallets {
        async fn apply(
            &self,
            _: &[event_store::RecordedEvent],
            _: Option<u64>,
        ) -> Result<ApplyOutcome, ReadModelError> {
            unreachable!("the list only reads")
        }

        async fn checkpoint(&self) -> Result<u64, ReadModelError> {
            Ok(0)
        }

        async fn list_wallets(
            &self,
            query: WalletListQuery,
        ) -> Result<Vec<WalletView>, ReadModelError> {
            if self.reads.fetch_add(1, Ordering::SeqCst) + 1 >= self.fails_from {
                return Err(ReadModelError::Unavailable("gone".into()));
            }
            Ok(self
                .views
                .iter()
                .filter(|view| query.after.as_ref().is_none_or(|after| &view.id > after))
                .take(query.limit)
                .cloned()
                .collect())
        }
    }

    /// The chunks of a whole list of `wallets` read `page` at a time, and
    /// the error that ended them, if one did.
    async fn chunks(wallets: Wallets, page: usize) -> (Vec<u8>, Option<ApiError>) {
        let read_model: Arc<dyn ReadModel> = Arc::new(wallets);
        let query = WalletListQuery {
            limit: page,
            ..WalletListQuery::default()
        };
        let first = read_model.list_wallets(query.clone()).await.expect("first");
        let mut stream = Box::pin(every_wallet(read_model, query, first));
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(error) => return (body, Some(error)),
            }
        }
        (body, None)
    }

    fn ids(body: &[u8]) -> Vec<String> {
        let list: serde_json::Value = serde_json::from_slice(body).expect("a JSON array");
        list.as_array()
            .expect("array")
            .iter()
            .map(|wallet| wallet["id"].as_str().expect("id").to_owned())
            .collect()
    }

    #[tokio::test]
    async fn every_wallet_is_sent_once_in_order_across_pages() {
        for (count, page) in [(7, 3), (6, 3), (3, 3), (1, 3), (0, 3), (5, 1)] {
            let wallets = Wallets::new(count, usize::MAX);
            let expected: Vec<String> = wallets.views.iter().map(|v| v.id.to_string()).collect();
            let (body, error) = chunks(wallets, page).await;
            assert!(error.is_none(), "{count} by {page}");
            assert_eq!(ids(&body), expected, "{count} by {page}");
        }
    }

    #[tokio::test]
    async fn a_page_that_fails_after_the_first_ends_the_body_unclosed() {
        let (body, error) = chunks(Wallets::new(7, 3), 3).await;
        assert!(matches!(error, Some(ApiError::Unavailable(_))), "{error:?}");
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        assert!(body.starts_with(b"[") && !body.ends_with(b"]"));
    }
}
