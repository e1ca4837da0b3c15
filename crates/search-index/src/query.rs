//! Search request bodies, built from validated filters. No I/O here.

use chrono::SecondsFormat;
use serde_json::{json, Value};
use wallet_domain::{server_id_spelling, WalletId};

use crate::documents::{cents_ceiling, cents_floor, millisecond_ceiling};
use crate::{
    SearchIndexError, TransactionSearch, QUERY_TEXT_LENGTH_MAX, RESULT_WINDOW_MAX,
    TRANSACTIONS_LIMIT_DEFAULT, TRANSACTIONS_LIMIT_MAX,
};

/// A validated page request of a transaction list, and of any list served
/// with the same paging (a wallet's holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items on the page, 1 to [`TRANSACTIONS_LIMIT_MAX`].
    pub limit: usize,
    /// Items skipped before it; `offset + limit` is at most [`RESULT_WINDOW_MAX`].
    pub offset: usize,
}

impl Page {
    /// The page of `limit` items after `offset`; when `limit` is `None`,
    /// [`TRANSACTIONS_LIMIT_DEFAULT`] items or the fewer left before
    /// [`RESULT_WINDOW_MAX`], so that every offset the documents allow (up
    /// to `RESULT_WINDOW_MAX - 1`) can be asked alone (h152 F1: `offset=9999`
    /// was refused for the default limit's sake). [`SearchIndexError::InvalidQuery`]
    /// naming the bound when it is past either limit.
    pub fn parse(limit: Option<usize>, offset: usize) -> Result<Self, SearchIndexError> {
        let limit = limit.unwrap_or_else(|| {
            TRANSACTIONS_LIMIT_DEFAULT.min(RESULT_WINDOW_MAX.saturating_sub(offset).max(1))
        });
        if limit > TRANSACTIONS_LIMIT_MAX {
            return Err(SearchIndexError::InvalidQuery(format!(
                "limit must be at most {TRANSACTIONS_LIMIT_MAX}"
            )));
        }
        if offset.saturating_add(limit) > RESULT_WINDOW_MAX {
            return Err(SearchIndexError::InvalidQuery(format!(
                "offset + limit must be at most {RESULT_WINDOW_MAX}"
            )));
        }
        Ok(Self { limit, offset })
    }
}

/// Newest first: the global position orders every event of every wallet.
fn search_body(page: Page, filters: Vec<Value>, must: Vec<Value>) -> Value {
    json!({
        "from": page.offset,
        "size": page.limit,
        "track_total_hits": true,
        "sort": [{ "position": { "order": "desc" } }],
        "query": { "bool": { "filter": filters, "must": must } }
    })
}

/// The highest position a cursor can name as stored (both backends hold a
/// position as a signed 64-bit integer): every stored position is below a
/// greater one, so it reads as this one.
pub(crate) fn stored_position(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

pub(crate) fn wallet_transactions_body(
    wallet_id: &WalletId,
    before_position: Option<u64>,
    page: Page,
) -> Value {
    let mut filters = vec![json!({ "term": { "walletId": wallet_id.as_str() } })];
    if let Some(before) = before_position {
        filters.push(json!({ "range": { "position": { "lt": stored_position(before) } } }));
    }
    search_body(page, filters, Vec::new())
}

/// A search whose filters have been checked: ranges the right way round,
/// paging within bounds, text within its length. Both backends run this first,
/// so they refuse the same queries with the same messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedSearch<'search> {
    pub page: Page,
    /// The trimmed free text, when there is any.
    pub text: Option<&'search str>,
}

pub(crate) fn check_search(
    search: &TransactionSearch,
) -> Result<CheckedSearch<'_>, SearchIndexError> {
    let page = Page::parse(search.limit, search.offset)?;
    if let (Some(from), Some(to)) = (search.from, search.to) {
        if from > to {
            return Err(SearchIndexError::InvalidQuery(
                "from must not be after to".into(),
            ));
        }
    }
    if let (Some(min), Some(max)) = (search.min_amount, search.max_amount) {
        if min > max {
            return Err(SearchIndexError::InvalidQuery(
                "minAmount must not be greater than maxAmount".into(),
            ));
        }
    }
    let text = search
        .q
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    if text.is_some_and(|text| text.chars().count() > QUERY_TEXT_LENGTH_MAX) {
        return Err(SearchIndexError::InvalidQuery(format!(
            "q must be at most {QUERY_TEXT_LENGTH_MAX} characters"
        )));
    }
    Ok(CheckedSearch { page, text })
}

/// Identifier fields the free text is also compared with, whole and exact,
/// so a transfer id or a wallet id pasted into `q` finds its transactions:
/// the ids the server writes (as lower-case hyphenated UUIDs), then the ids
/// a client chooses (case and all).
const SERVER_ID_FIELDS: [&str; 2] = ["id", "transferId"];
const CLIENT_ID_FIELDS: [&str; 3] = ["walletId", "counterpartyWalletId", "holdId"];

/// The free text as compared with identifiers.
///
/// An id the server wrote (an event's, a transfer's) is a UUID, and any
/// spelling of that UUID names it (upper case, no hyphens, braces,
/// `urn:uuid:`; RFC 9562 §4 reads them alike), so the text is also
/// compared in the lower-case hyphenated form the server writes. An id a
/// client chose (a wallet's, a hold's) keeps its case: another spelling of
/// it is another id, and is compared as written only (a hold named
/// `ABCDEF00112233445566778899AABBCC` is not the hold
/// `abcdef00-1122-3344-5566-778899aabbcc` of another wallet).
pub(crate) struct IdentifierText<'a> {
    /// The text as written: compared with every identifier.
    pub(crate) written: &'a str,
    /// Its lower-case hyphenated UUID form, when it reads as a UUID written
    /// otherwise: compared with the server's ids only.
    pub(crate) as_server_id: Option<String>,
}

impl<'a> IdentifierText<'a> {
    pub(crate) fn of(text: &'a str) -> Self {
        let as_server_id = server_id_spelling(text).filter(|canonical| canonical != text);
        Self {
            written: text,
            as_server_id,
        }
    }

    /// The spellings a server-written id is compared with.
    pub(crate) fn server_id_spellings(&self) -> Vec<&str> {
        std::iter::once(self.written)
            .chain(self.as_server_id.as_deref())
            .collect()
    }
}

/// The text matches when the description holds every word of it (in any
/// order; see [`crate::words`]: no character of it is query syntax), or when
/// it is exactly one of the identifiers ([`IdentifierText`]).
fn text_query(text: &str) -> Value {
    let mut should = Vec::new();
    if let Some(words) = crate::words::indexed(text) {
        should.push(json!({
            "match": { "descriptionWords": { "query": words, "operator": "and" } }
        }));
        // A document indexed before `descriptionWords` existed, until a
        // rebuild gives it the field: its description as its analyzer split it.
        should.push(json!({ "bool": {
            "must": { "match": { "description": { "query": words, "operator": "and" } } },
            "must_not": { "exists": { "field": "descriptionWords" } }
        } }));
    }
    let identifier = IdentifierText::of(text);
    let server_ids = identifier.server_id_spellings();
    should.extend(SERVER_ID_FIELDS.iter().map(|field| {
        let mut terms = serde_json::Map::new();
        terms.insert((*field).to_owned(), json!(server_ids));
        json!({ "terms": terms })
    }));
    should.extend(CLIENT_ID_FIELDS.iter().map(|field| {
        let mut term = serde_json::Map::new();
        term.insert((*field).to_owned(), json!(identifier.written));
        json!({ "term": term })
    }));
    json!({ "bool": { "should": should, "minimum_should_match": 1 } })
}

pub(crate) fn search_transactions_body(
    search: &TransactionSearch,
) -> Result<Value, SearchIndexError> {
    let checked = check_search(search)?;

    let mut filters = Vec::new();
    if let Some(owner_id) = &search.owner_id {
        filters.push(json!({ "term": { "ownerId": owner_id.as_str() } }));
    }
    if let Some(wallet_id) = &search.wallet_id {
        filters.push(json!({ "term": { "walletId": wallet_id.as_str() } }));
    }
    if search.from.is_some() || search.to.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(from) = search.from {
            range.insert(
                "gte".into(),
                millisecond_ceiling(from)
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
                    .into(),
            );
        }
        // Both bounds with their milliseconds written out: a date without
        // them is rounded up for `lte`, to the end of its second (h140 F1).
        // Truncated, the upper bound keeps exactly the milliseconds up to it.
        if let Some(to) = search.to {
            range.insert(
                "lte".into(),
                to.to_rfc3339_opts(SecondsFormat::Millis, true).into(),
            );
        }
        filters.push(json!({ "range": { "occurredAt": range } }));
    }
    if let Some(before) = search.before_position {
        filters.push(json!({ "range": { "position": { "lt": stored_position(before) } } }));
    }
    if search.min_amount.is_some() || search.max_amount.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(min) = search.min_amount {
            range.insert("gte".into(), cents_ceiling(min).into());
        }
        if let Some(max) = search.max_amount {
            range.insert("lte".into(), cents_floor(max).into());
        }
        filters.push(json!({ "range": { "amountCents": range } }));
    }

    let must: Vec<Value> = checked.text.map(text_query).into_iter().collect();
    Ok(search_body(checked.page, filters, must))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn page_defaults_and_bounds() {
        assert_eq!(
            Page::parse(None, 0).expect("default"),
            Page {
                limit: TRANSACTIONS_LIMIT_DEFAULT,
                offset: 0
            }
        );
        assert!(Page::parse(Some(TRANSACTIONS_LIMIT_MAX), 0).is_ok());
        assert!(Page::parse(Some(TRANSACTIONS_LIMIT_MAX + 1), 0).is_err());
        assert!(Page::parse(Some(1), RESULT_WINDOW_MAX).is_err());
        assert!(Page::parse(Some(1), usize::MAX).is_err());
        // Without a limit, the deepest offsets get what is left of the window.
        for (offset, limit) in [(9_950, 50), (9_951, 49), (9_999, 1)] {
            assert_eq!(
                Page::parse(None, offset).expect("within the window"),
                Page { limit, offset },
                "offset {offset}"
            );
        }
        assert!(Page::parse(None, RESULT_WINDOW_MAX).is_err());
        assert!(Page::parse(Some(2), RESULT_WINDOW_MAX - 1).is_err());
    }

    #[test]
    fn amounts_filter_on_whole_cents() {
        let search = TransactionSearch {
            min_amount: Some(Decimal::from_str("0.10").expect("decimal")),
            max_amount: Some(Decimal::from_str("1000000000000").expect("decimal")),
            ..TransactionSearch::default()
        };
        let body = search_transactions_body(&search).expect("valid");
        let range = &body["query"]["bool"]["filter"][0]["range"]["amountCents"];
        assert_eq!(range["gte"], json!(10));
        assert_eq!(range["lte"], json!(100_000_000_000_000_i64));
    }

    #[test]
    fn inverted_ranges_and_long_text_are_refused() {
        let inverted = TransactionSearch {
            min_amount: Some(Decimal::TWO),
            max_amount: Some(Decimal::ONE),
            ..TransactionSearch::default()
        };
        assert!(search_transactions_body(&inverted).is_err());
        let long = TransactionSearch {
            q: Some("x".repeat(QUERY_TEXT_LENGTH_MAX + 1)),
            ..TransactionSearch::default()
        };
        assert!(search_transactions_body(&long).is_err());
    }

    #[test]
    fn text_without_words_matches_only_identifiers() {
        let body = search_transactions_body(&text_search("*")).expect("valid");
        let should = &body["query"]["bool"]["must"][0]["bool"]["should"];
        assert_eq!(
            should.as_array().map(Vec::len),
            Some(SERVER_ID_FIELDS.len() + CLIENT_ID_FIELDS.len())
        );
        let body = search_transactions_body(&text_search("multi-agent")).expect("valid");
        let should = &body["query"]["bool"]["must"][0]["bool"]["should"];
        assert_eq!(
            should[0]["match"]["descriptionWords"]["query"],
            "multi agent"
        );
    }

    fn text_search(q: &str) -> TransactionSearch {
        TransactionSearch {
            q: Some(q.into()),
            ..TransactionSearch::default()
        }
    }

    #[test]
    fn blank_text_matches_everything() {
        let search = TransactionSearch {
            q: Some("  ".into()),
            ..TransactionSearch::default()
        };
        let body = search_transactions_body(&search).expect("valid");
        assert_eq!(body["query"]["bool"]["must"], json!([]));
    }
}
