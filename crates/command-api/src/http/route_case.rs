//! Paths matched without regard to the case of their fixed words, as the
//! seed's Express router matched them (`caseSensitive` off, its default):
//! `POST /Wallets/w1/Credit` is `POST /wallets/w1/credit`.
//!
//! Only the fixed words of a documented route are compared ignoring ASCII
//! case, percent-decoded as the router decodes them (`%43redit` is
//! `Credit`); what fills a variable (a wallet id, a hold id) is kept as sent,
//! ids being case-sensitive. A path is spelt again only when its fixed words
//! match exactly one documented route shape, so a request can never be
//! routed to an operation it does not name.

use std::borrow::Cow;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Uri;
use futures::future::LocalBoxFuture;
use percent_encoding::percent_decode_str;
use utoipa::openapi::OpenApi;

/// One piece of a documented path between slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A fixed word (`wallets`, `credit`), as the document spells it.
    Fixed(String),
    /// A `{variable}`: any non-empty segment, kept as sent.
    Variable,
}

/// The shapes of the documented paths, each a list of segments.
#[derive(Debug, Default)]
pub struct RouteSpellings {
    shapes: Vec<Vec<Segment>>,
}

impl RouteSpellings {
    /// The shapes of every path of `document`.
    pub fn of(document: &OpenApi) -> Self {
        let shapes = document
            .paths
            .paths
            .keys()
            .map(|path| {
                segments(path)
                    .map(|segment| {
                        if segment.starts_with('{') && segment.ends_with('}') {
                            Segment::Variable
                        } else {
                            Segment::Fixed(segment.to_owned())
                        }
                    })
                    .collect()
            })
            .collect();
        Self { shapes }
    }

    /// `path` with its fixed words spelt as the one documented route whose
    /// fixed words it matches ignoring ASCII case; `None` when it already
    /// matches a route as spelt, matches none, or matches more than one.
    fn respelt(&self, path: &str) -> Option<String> {
        let sent: Vec<&str> = segments(path).collect();
        let decoded: Vec<Cow<'_, str>> = sent
            .iter()
            .map(|segment| percent_decode_str(segment).decode_utf8_lossy())
            .collect();
        let fits = |shape: &&Vec<Segment>, same: fn(&str, &str) -> bool| {
            shape.len() == sent.len()
                && shape
                    .iter()
                    .zip(&decoded)
                    .all(|(segment, sent)| match segment {
                        Segment::Fixed(word) => same(word, sent),
                        Segment::Variable => !sent.is_empty(),
                    })
        };
        if self.shapes.iter().any(|shape| fits(&shape, |a, b| a == b)) {
            return None;
        }
        let mut matching = self
            .shapes
            .iter()
            .filter(|shape| fits(shape, |a, b| a.eq_ignore_ascii_case(b)));
        let shape = matching.next()?;
        if matching.next().is_some() {
            return None;
        }
        let spelt: Vec<&str> = shape
            .iter()
            .zip(&sent)
            .map(|(segment, sent)| match segment {
                Segment::Fixed(word) => word.as_str(),
                Segment::Variable => sent,
            })
            .collect();
        Some(format!("/{}", spelt.join("/")))
    }
}

/// The segments of `path` between its slashes (none for `/`).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let root = path == "/";
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .filter(move |_| !root)
}

/// Middleware: a path whose fixed words match one documented route but for
/// their case is routed, checked and answered as that route's spelling.
pub fn spell_as_documented<S>(
    mut request: ServiceRequest,
    service: &S,
    spellings: &RouteSpellings,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    let respelt = spellings
        .respelt(request.uri().path())
        .and_then(|path| with_path(request.uri(), &path));
    if let Some(uri) = respelt {
        request.match_info_mut().get_mut().update(&uri);
        request.head_mut().uri = uri;
    }
    Box::pin(service.call(request))
}

/// `uri` with `path` instead of its own, its query kept; `None` when that is
/// no URI.
pub(super) fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings() -> RouteSpellings {
        RouteSpellings::of(&super::super::document(false))
    }

    #[test]
    fn fixed_words_are_spelt_as_documented_and_ids_kept() {
        let spellings = spellings();
        assert_eq!(
            spellings.respelt("/Wallets/W1/Credit").as_deref(),
            Some("/wallets/W1/credit")
        );
        assert_eq!(
            spellings.respelt("/WALLETS/Credit").as_deref(),
            Some("/wallets/Credit")
        );
        assert_eq!(
            spellings.respelt("/LEDGER/VERIFY").as_deref(),
            Some("/ledger/verify")
        );
        // Percent-encoded letters, as the router decodes them; the id stays
        // as sent.
        assert_eq!(
            spellings.respelt("/%57allets/W%31/%43redit").as_deref(),
            Some("/wallets/W%31/credit")
        );
        assert_eq!(spellings.respelt("/wallets/w1/%63redit"), None);
    }

    #[test]
    fn a_path_spelt_right_or_matching_no_route_is_left_alone() {
        let spellings = spellings();
        for path in [
            "/wallets/w1/credit",
            "/wallets/CREDIT",
            "/",
            "/nothing/here",
            "/wallets//credit",
            "/Wallets/w1/Credit/extra",
        ] {
            assert_eq!(spellings.respelt(path), None, "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let uri: Uri = "/Wallets?limit=2&ownerId=Alice".parse().expect("uri");
        let respelt = spellings().respelt(uri.path()).expect("respelt");
        assert_eq!(
            with_path(&uri, &respelt).map(|uri| uri.to_string()),
            Some("/wallets?limit=2&ownerId=Alice".to_owned())
        );
    }
}
