//! Query parameters a route does not document are refused.
//!
//! A route that reads a query (history, search, lists, the ledger, balances
//! as of a moment) answers a parameter it does not know with 400 naming it and
//! the ones it takes, as a body's unknown property is refused: a misspelt
//! filter (`ownerid`) or another route's cursor (`after` where the history
//! pages with `before`) would otherwise be ignored, and the answer would look
//! right while being the unfiltered first page, forever.
//!
//! The names come from the OpenAPI document the server publishes, so what is
//! refused is exactly what the document does not list. Routes that document no
//! query parameter at all (the seed's writes, a wallet read without `at`) read
//! no query and are left as the seed's server left them: a query there is
//! ignored.
//!
//! One name is ignored everywhere: [`CACHE_BUSTER`], which browsers' and HTTP
//! libraries' "no cache" options add to a GET with a timestamp (jQuery's
//! `cache: false` writes `?_=1700000000000`). The seed's server ignored it, and
//! it cannot be a misspelt filter.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use futures::future::LocalBoxFuture;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::OpenApi;

use super::auth::admit;
use super::malformed::shown;
use super::ApiError;

/// The query parameters each documented operation takes, by method and path
/// pattern (with its variables' names erased: `/wallets/{}/transactions`).
#[derive(Debug, Default)]
pub struct DocumentedQueries {
    names: HashMap<(Method, String), BTreeSet<String>>,
}

impl DocumentedQueries {
    /// The operations of `document` that take at least one query parameter.
    pub fn of(document: &OpenApi) -> Self {
        let mut names = HashMap::new();
        for (path, item) in &document.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in operations {
                let taken = operation.as_ref().map(query_names).unwrap_or_default();
                if !taken.is_empty() {
                    names.insert((method, erase_variables(path)), taken);
                }
            }
        }
        Self { names }
    }

    /// The parameters the operation at `method` and actix `pattern` takes;
    /// `None` when it documents none.
    fn taken(&self, method: &Method, pattern: &str) -> Option<&BTreeSet<String>> {
        // A HEAD is answered as its GET (see `head_as_get`).
        let method = if method == Method::HEAD {
            Method::GET
        } else {
            method.clone()
        };
        self.names.get(&(method, erase_variables(pattern)))
    }
}

fn query_names(operation: &Operation) -> BTreeSet<String> {
    operation
        .parameters
        .iter()
        .flatten()
        .filter(|parameter| parameter.parameter_in == ParameterIn::Query)
        .map(|parameter| parameter.name.clone())
        .collect()
}

/// `pattern` with each `{variable}` (actix's and OpenAPI's names differ)
/// written `{}`.
fn erase_variables(pattern: &str) -> String {
    let mut erased = String::with_capacity(pattern.len());
    let mut in_variable = false;
    for character in pattern.chars() {
        match character {
            '{' => {
                in_variable = true;
                erased.push_str("{}");
            }
            '}' => in_variable = false,
            _ if in_variable => {}
            _ => erased.push(character),
        }
    }
    erased
}

/// The query parameter every route ignores: the cache-busting timestamp that
/// jQuery (`cache: false`) and other HTTP clients add to a GET.
pub const CACHE_BUSTER: &str = "_";

/// The first parameter name of `query` not in `taken` and not
/// [`CACHE_BUSTER`] (names percent-decoded, `+` read as a space, as the
/// extractor reads them).
fn first_unknown(query: &str, taken: &BTreeSet<String>) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .map(|name| {
            let spaced = name.replace('+', " ");
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8_lossy()
                .into_owned()
        })
        .find(|name| name != CACHE_BUSTER && !taken.contains(name))
}

/// Middleware: a query parameter the route's operation does not document is
/// refused (400 naming it and the ones taken) before the handler reads the
/// query, once the caller is admitted (a caller who is not gets the handler's
/// own refusal, 401 or 429, as on every route).
pub fn refuse_undocumented<S>(
    request: ServiceRequest,
    service: &S,
    documented: &Arc<DocumentedQueries>,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    S::Future: 'static,
{
    let unknown = match request.match_pattern() {
        Some(pattern) if !request.query_string().is_empty() => documented
            .taken(request.method(), &pattern)
            .and_then(|taken| {
                first_unknown(request.query_string(), taken).map(|name| (name, taken))
            }),
        _ => None,
    };
    match unknown {
        None => Box::pin(service.call(request)),
        // Who is calling is checked first, as on every route: a caller
        // without a valid token learns nothing of the route's parameters.
        Some(_) if admit(request.request()).is_err() => Box::pin(service.call(request)),
        Some((name, taken)) => {
            let accepted: Vec<&str> = taken.iter().map(String::as_str).collect();
            let refusal = ApiError::BadRequest(format!(
                "query parameter \"{}\" is not accepted here; this endpoint takes {}",
                shown(&name),
                accepted.join(", ")
            ));
            Box::pin(async move { Ok(request.error_response(refusal)) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn variables_are_erased_whatever_their_names() {
        assert_eq!(
            erase_variables("/wallets/{walletId}/transactions"),
            "/wallets/{}/transactions"
        );
        assert_eq!(
            erase_variables("/wallets/{id}/transactions"),
            "/wallets/{}/transactions"
        );
        assert_eq!(erase_variables("/ledger/verify"), "/ledger/verify");
    }

    #[test]
    fn the_first_name_not_taken_is_found_decoded() {
        let limits = taken(&["limit", "before", "owner id"]);
        assert_eq!(first_unknown("limit=1&before=5", &limits), None);
        assert_eq!(first_unknown("limit=1&&before", &limits), None);
        assert_eq!(first_unknown("owner+id=x&owner%20id=y", &limits), None);
        assert_eq!(
            first_unknown("limit=1&after=5", &limits),
            Some("after".to_owned())
        );
        assert_eq!(
            first_unknown("%6Fwner=1", &limits),
            Some("owner".to_owned())
        );
    }

    #[test]
    fn the_cache_buster_is_ignored_and_nothing_like_it() {
        let limits = taken(&["limit"]);
        assert_eq!(first_unknown("_=1700000000000&limit=2", &limits), None);
        assert_eq!(first_unknown("%5F=1&_", &limits), None);
        assert_eq!(first_unknown("__=1", &limits), Some("__".to_owned()));
        assert_eq!(first_unknown("_x=1", &limits), Some("_x".to_owned()));
    }

    #[test]
    fn every_operation_with_a_query_documents_its_400() {
        let document = super::super::document(false);
        let documented = DocumentedQueries::of(&document);
        assert!(documented.names.len() >= 8, "{:?}", documented.names.keys());
        for (path, item) in &document.paths.paths {
            for operation in [&item.get, &item.post, &item.put, &item.delete]
                .into_iter()
                .flatten()
            {
                if query_names(operation).is_empty() {
                    continue;
                }
                assert!(
                    operation.responses.responses.contains_key("400"),
                    "{path} takes a query and does not document its 400"
                );
            }
        }
    }
}
