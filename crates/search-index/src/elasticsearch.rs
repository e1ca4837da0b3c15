//! [`SearchIndex`] on Elasticsearch or OpenSearch, through the `elasticsearch` crate.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesGetAliasParts,
    IndicesPutMappingParts, IndicesRefreshParts,
};
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch, MgetParts, SearchParts};
use event_store::RecordedEvent;
use quick_cache::sync::Cache;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wallet_domain::WalletId;

use crate::documents::{
    batch_documents, transactions_mapping, transactions_mapping_additions, wallets_mapping,
    wallets_to_look_up, BatchDocuments, TransactionSource, WalletIdentity, WalletSource,
};
use crate::query::{search_transactions_body, wallet_transactions_body, Page};
use crate::{
    is_transient_refusal, IndexOutcome, IndexedWallet, SearchIndex, SearchIndexError, Transaction,
    TransactionPage, TransactionSearch, BULK_EVENTS_MAX,
};

/// Bound on one request to the server, connection included.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// The longest `ELASTICSEARCH_REQUEST_TIMEOUT_MS` accepted, in ms (the least
/// is 1: a bound of 0 fails every request).
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 600_000;
/// Characters of a server's error body kept in an error.
const ERROR_TEXT_LENGTH_MAX: usize = 1_000;
/// Failed bulk items described in an error (the rest are only counted).
const BULK_FAILURES_REPORTED_MAX: usize = 10;
/// Characters an index prefix may have (index names are at most 255 bytes).
const INDEX_PREFIX_LENGTH_MAX: usize = 100;

/// What a live index name's first concrete index is called after it: the
/// name itself is an alias of it from the start, so that a rebuild
/// (`projection-consumer rebuild`) only ever moves an alias and a search in
/// flight never finds the name missing.
pub const FIRST_INDEX_SUFFIX: &str = "-initial";

/// Wallets whose identity (owner and creation, fixed by their
/// `WalletCreated`) the index remembers, so that a batch asks the server only
/// for wallets it has not met. Without it every batch read each of its
/// wallets' documents back (`_mget`): 20,064 reads in a run of 20,000
/// operations over 1,000 wallets (`bench/full-stack.sh`), none after it.
pub const KNOWN_IDENTITIES_MAX: usize = 100_000;

const STATUS_CONFLICT: u16 = 409;
const STATUS_NOT_FOUND: u16 = 404;

pub struct ElasticsearchIndex {
    client: Elasticsearch,
    wallets_index: String,
    transactions_index: String,
    /// Whether each bulk waits until its documents are searchable.
    refresh_on_write: bool,
    /// Whether [`SearchIndex::ensure_indices`] creates each index behind an
    /// alias of its name (the live indices) or under the name itself (an
    /// index built to be switched in by an alias).
    behind_aliases: bool,
    /// Identities of wallets met in batches, at most [`KNOWN_IDENTITIES_MAX`].
    identities: Cache<WalletId, WalletIdentity>,
}

impl ElasticsearchIndex {
    /// A client of the server at `url` for the indices `<index_prefix>-wallets`
    /// and `<index_prefix>-transactions`. Sends nothing: call
    /// [`SearchIndex::ensure_indices`] or [`SearchIndex::ping`] to reach it.
    pub fn connect(url: &str, index_prefix: &str) -> Result<Self, SearchIndexError> {
        Self::connect_with_timeout(url, index_prefix, REQUEST_TIMEOUT_MS_DEFAULT)
    }

    pub fn connect_with_timeout(
        url: &str,
        index_prefix: &str,
        request_timeout_ms: u64,
    ) -> Result<Self, SearchIndexError> {
        check_index_prefix(index_prefix)?;
        // The same check as the configuration's, whose message never repeats
        // the URL (it may hold a password).
        let url = crate::check_search_url(url)
            .map_err(|refusal| SearchIndexError::InvalidConfig(refusal.to_string()))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(Duration::from_millis(request_timeout_ms))
            .build()
            .map_err(|error| SearchIndexError::InvalidConfig(error.to_string()))?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            wallets_index: format!("{index_prefix}-wallets"),
            transactions_index: format!("{index_prefix}-transactions"),
            refresh_on_write: false,
            behind_aliases: true,
            identities: Cache::new(KNOWN_IDENTITIES_MAX),
        })
    }

    /// Makes [`SearchIndex::ensure_indices`] create the indices under their
    /// own names, not behind aliases: for indices built beside the live ones
    /// and then put behind the live names by an alias switch
    /// (`projection-consumer rebuild`).
    pub fn under_own_names(mut self) -> Self {
        self.behind_aliases = false;
        self
    }

    /// Makes every `index_batch` return only once its documents are visible to
    /// searches (`refresh=wait_for`), as the embedded index always is: for
    /// tests that read right after they write. Production leaves it off and
    /// lets the server refresh on its own schedule.
    pub fn refreshing_on_write(mut self) -> Self {
        self.refresh_on_write = true;
        self
    }

    pub fn wallets_index(&self) -> &str {
        &self.wallets_index
    }

    pub fn transactions_index(&self) -> &str {
        &self.transactions_index
    }

    /// Makes everything indexed so far visible to searches (a read that must
    /// show what was acknowledged before it, tests and tools; the server
    /// refreshes on its own every second).
    pub async fn refresh(&self) -> Result<(), SearchIndexError> {
        let indices = [
            self.wallets_index.as_str(),
            self.transactions_index.as_str(),
        ];
        let response = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&indices))
            .send()
            .await;
        checked(response).await.map(drop)
    }

    /// Deletes both indices, or the indices their aliases point at (tests
    /// and tools).
    pub async fn delete_indices(&self) -> Result<(), SearchIndexError> {
        let mut concrete = Vec::new();
        for name in [&self.wallets_index, &self.transactions_index] {
            concrete.extend(self.concrete_indices(name).await?);
        }
        let indices: Vec<&str> = concrete.iter().map(String::as_str).collect();
        let response = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&indices))
            .send()
            .await;
        checked(response).await.map(drop)
    }

    /// The indices `name` stands for: those its alias points at, or `name`
    /// itself when it is no alias.
    async fn concrete_indices(&self, name: &str) -> Result<Vec<String>, SearchIndexError> {
        Ok(self
            .alias_targets(name)
            .await?
            .unwrap_or_else(|| vec![name.to_owned()]))
    }

    /// The indices the alias `name` points at (`GET _alias/{name}`), `None`
    /// when no alias has that name (the server's 404), whether or not an
    /// index does. Errors: [`SearchIndexError::Unavailable`] when the server
    /// cannot be reached, or its error answer.
    pub async fn alias_targets(&self, name: &str) -> Result<Option<Vec<String>>, SearchIndexError> {
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[name]))
            .send()
            .await
            .map_err(|error| SearchIndexError::Unavailable(error.to_string()))?;
        if response.status_code().as_u16() == STATUS_NOT_FOUND {
            return Ok(None);
        }
        let aliased: HashMap<String, Value> = read_json(checked(Ok(response)).await?).await?;
        Ok(Some(aliased.into_keys().collect()))
    }

    /// Whether an index or an alias of that name exists.
    async fn exists(&self, name: &str) -> Result<bool, SearchIndexError> {
        let response = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[name]))
            .send()
            .await
            .map_err(|error| SearchIndexError::Unavailable(error.to_string()))?;
        match response.status_code().as_u16() {
            STATUS_NOT_FOUND => Ok(false),
            _ => checked(Ok(response)).await.map(|_| true),
        }
    }

    /// Creates the index `name` with `body` (its mappings), behind an alias
    /// `name` of the index `name` + [`FIRST_INDEX_SUFFIX`] unless
    /// [`Self::under_own_names`]. A name that exists already, as an index
    /// (made before aliases, or by another replica) or as an alias (after a
    /// rebuild), is kept as it is.
    async fn create_index(&self, name: &str, mut body: Value) -> Result<(), SearchIndexError> {
        let index = if self.behind_aliases {
            if self.exists(name).await? {
                return Ok(());
            }
            body["aliases"] = json!({ name: {} });
            format!("{name}{FIRST_INDEX_SUFFIX}")
        } else {
            name.to_owned()
        };
        let response = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&index))
            .body(body)
            .send()
            .await;
        match checked(response).await {
            Ok(_) => {
                tracing::info!(
                    index,
                    alias = self.behind_aliases.then_some(name),
                    "search index created"
                );
                Ok(())
            }
            // Another replica (or an earlier start) made it: its mapping is ours.
            Err(SearchIndexError::Refused { reason, .. })
                if reason.contains("resource_already_exists_exception")
                    || reason.contains("already exists as alias") =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Wallet documents by id; ids the index does not hold are absent.
    async fn wallet_sources(
        &self,
        wallet_ids: &[WalletId],
    ) -> Result<Vec<WalletSource>, SearchIndexError> {
        if wallet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = wallet_ids.iter().map(WalletId::as_str).collect();
        let response = self
            .client
            .mget(MgetParts::Index(&self.wallets_index))
            .body(json!({ "ids": ids }))
            .send()
            .await;
        found_sources(read_json(checked(response).await?).await?)
    }

    async fn index_chunk(
        &self,
        events: &[RecordedEvent],
    ) -> Result<IndexOutcome, SearchIndexError> {
        let mut looked_up = HashMap::new();
        let mut unknown = Vec::new();
        for wallet_id in wallets_to_look_up(events) {
            match self.identities.get(&wallet_id) {
                Some(identity) => {
                    looked_up.insert(wallet_id, identity);
                }
                None => unknown.push(wallet_id),
            }
        }
        for source in self.wallet_sources(&unknown).await? {
            let (wallet_id, identity): (WalletId, WalletIdentity) = source.identity()?;
            looked_up.insert(wallet_id, identity);
        }
        let documents = batch_documents(events, &looked_up)?;
        let mut request = self.client.bulk(BulkParts::None).body(
            bulk_lines(&self.transactions_index, &self.wallets_index, &documents)
                .into_iter()
                .map(JsonBody::new)
                .collect(),
        );
        if self.refresh_on_write {
            request = request.refresh(Refresh::WaitFor);
        }
        let response = request.send().await;
        let body: BulkResponse = read_json(checked(response).await?).await?;
        let outcome = bulk_outcome(&body, documents.transactions.len())?;
        for wallet in &documents.wallets {
            let (wallet_id, identity) = wallet.source.identity()?;
            self.identities.insert(wallet_id, identity);
        }
        Ok(outcome)
    }

    async fn search_page(&self, body: Value) -> Result<TransactionPage, SearchIndexError> {
        let indices = [self.transactions_index.as_str()];
        let response = self
            .client
            .search(SearchParts::Index(&indices))
            .body(body)
            .send()
            .await;
        let body: SearchResponse = read_json(checked(response).await?).await?;
        let items = body
            .hits
            .hits
            .into_iter()
            .map(|hit| Transaction::try_from(hit.source))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TransactionPage {
            items,
            total: body.hits.total.value,
        })
    }
}

#[async_trait]
impl SearchIndex for ElasticsearchIndex {
    async fn ensure_indices(&self) -> Result<(), SearchIndexError> {
        self.create_index(&self.wallets_index, wallets_mapping())
            .await?;
        self.create_index(&self.transactions_index, transactions_mapping())
            .await?;
        // An index created by an earlier version lacks the later fields.
        let response = self
            .client
            .indices()
            .put_mapping(IndicesPutMappingParts::Index(&[self
                .transactions_index
                .as_str()]))
            .body(transactions_mapping_additions())
            .send()
            .await;
        checked(response).await.map(drop)
    }

    async fn index_batch(
        &self,
        events: &[RecordedEvent],
    ) -> Result<IndexOutcome, SearchIndexError> {
        let mut outcome = IndexOutcome::default();
        for chunk in events.chunks(BULK_EVENTS_MAX) {
            let done = self.index_chunk(chunk).await?;
            outcome.transactions += done.transactions;
            outcome.wallets_updated += done.wallets_updated;
            outcome.wallets_already_newer += done.wallets_already_newer;
        }
        Ok(outcome)
    }

    async fn wallet_transactions(
        &self,
        wallet_id: &WalletId,
        before_position: Option<u64>,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<TransactionPage, SearchIndexError> {
        let page = Page::parse(limit, offset)?;
        self.search_page(wallet_transactions_body(wallet_id, before_position, page))
            .await
    }

    async fn search_transactions(
        &self,
        search: &TransactionSearch,
    ) -> Result<TransactionPage, SearchIndexError> {
        self.search_page(search_transactions_body(search)?).await
    }

    async fn wallet(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<IndexedWallet>, SearchIndexError> {
        let sources = self.wallet_sources(std::slice::from_ref(wallet_id)).await?;
        sources
            .into_iter()
            .next()
            .map(IndexedWallet::try_from)
            .transpose()
    }

    async fn make_searchable(&self) -> Result<(), SearchIndexError> {
        self.refresh().await
    }

    async fn ping(&self) -> Result<(), SearchIndexError> {
        checked(self.client.ping().send().await).await.map(drop)
    }
}

/// The lines of the bulk request that writes `documents`, an action before
/// each document; each is serialized straight from its type into the body.
fn bulk_lines<'a>(
    transactions_index: &'a str,
    wallets_index: &'a str,
    documents: &'a BatchDocuments,
) -> Vec<BulkLine<'a>> {
    let mut lines =
        Vec::with_capacity(2 * (documents.transactions.len() + documents.wallets.len()));
    for transaction in &documents.transactions {
        lines.push(BulkLine::Index {
            index: BulkTarget {
                index: transactions_index,
                id: transaction.id.to_string(),
                version: None,
            },
        });
        lines.push(BulkLine::Transaction(IndexedTransaction {
            description_words: transaction
                .description
                .as_deref()
                .and_then(crate::words::indexed),
            source: transaction,
        }));
    }
    for wallet in &documents.wallets {
        lines.push(BulkLine::Index {
            index: BulkTarget {
                index: wallets_index,
                id: wallet.source.id.clone(),
                version: Some(ExternalVersion {
                    version: wallet.version,
                    version_type: "external",
                }),
            },
        });
        lines.push(BulkLine::Wallet(&wallet.source));
    }
    lines
}

/// One line of a bulk request (NDJSON): an action, or the document it writes.
#[derive(Serialize)]
#[serde(untagged)]
enum BulkLine<'a> {
    /// `{"index": {...}}`: write the next line's document whole.
    Index {
        index: BulkTarget<'a>,
    },
    Transaction(IndexedTransaction<'a>),
    Wallet(&'a WalletSource),
}

/// A transaction's document as indexed: its source and the words free text
/// is matched on (`descriptionWords`, see `crate::words`), absent when the
/// description has none.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexedTransaction<'a> {
    #[serde(flatten)]
    source: &'a TransactionSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    description_words: Option<String>,
}

/// Where a bulk action writes: the index and the document's id.
#[derive(Serialize)]
struct BulkTarget<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    version: Option<ExternalVersion>,
}

/// A version the writer keeps (`version_type` `external`): the index keeps
/// a document only when its version is higher than the stored one's.
#[derive(Serialize)]
struct ExternalVersion {
    version: u64,
    version_type: &'static str,
}

fn check_index_prefix(prefix: &str) -> Result<(), SearchIndexError> {
    let valid_characters = prefix.chars().all(|character| {
        character.is_ascii_lowercase() || character.is_ascii_digit() || "-_".contains(character)
    });
    let valid_start = prefix
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    if valid_characters && valid_start && prefix.len() <= INDEX_PREFIX_LENGTH_MAX {
        Ok(())
    } else {
        Err(SearchIndexError::InvalidConfig(format!(
            "index prefix {prefix:?} must be 1 to {INDEX_PREFIX_LENGTH_MAX} lower-case letters, \
             digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(ERROR_TEXT_LENGTH_MAX).collect()
}

/// The response when the server answered with success; otherwise the error.
async fn checked(
    response: Result<Response, elasticsearch::Error>,
) -> Result<Response, SearchIndexError> {
    let response = response.map_err(|error| SearchIndexError::Unavailable(error.to_string()))?;
    let status = response.status_code();
    if status.is_success() {
        return Ok(response);
    }
    let reason = response
        .text()
        .await
        .unwrap_or_else(|error| format!("(unreadable body: {error})"));
    Err(SearchIndexError::Refused {
        status: status.as_u16(),
        reason: truncated(&reason),
    })
}

async fn read_json<T: DeserializeOwned>(response: Response) -> Result<T, SearchIndexError> {
    response
        .json()
        .await
        .map_err(|error| SearchIndexError::Unavailable(format!("unreadable response: {error}")))
}

#[derive(Debug, Deserialize)]
struct MgetResponse {
    docs: Vec<MgetDoc>,
}

#[derive(Debug, Deserialize)]
struct MgetDoc {
    #[serde(default)]
    found: bool,
    #[serde(rename = "_source")]
    source: Option<WalletSource>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    hits: SearchHits,
}

#[derive(Debug, Deserialize)]
struct SearchHits {
    total: SearchTotal,
    hits: Vec<SearchHit>,
}

#[derive(Debug, Deserialize)]
struct SearchTotal {
    value: u64,
}

#[derive(Debug, Deserialize)]
struct SearchHit {
    #[serde(rename = "_source")]
    source: TransactionSource,
}

#[derive(Debug, Deserialize)]
struct BulkResponse {
    errors: bool,
    items: Vec<HashMap<String, BulkItem>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem {
    #[serde(rename = "_index")]
    index: String,
    #[serde(rename = "_id")]
    id: String,
    status: u16,
    error: Option<Value>,
}

/// Counts what the bulk did. The first `transactions` items are transaction
/// documents, the rest wallet documents, in the order they were sent. A
/// version conflict on a wallet means it already holds a newer state; any
/// other failed item fails the batch.
/// The documents an `_mget` found. A document read fails for the index's
/// state (a shard recovering or not allocated), never for the events being
/// indexed: such a failure is [`SearchIndexError::Unavailable`], retried.
fn found_sources(body: MgetResponse) -> Result<Vec<WalletSource>, SearchIndexError> {
    let mut sources = Vec::with_capacity(body.docs.len());
    for doc in body.docs {
        if let Some(error) = doc.error {
            return Err(SearchIndexError::Unavailable(format!(
                "a wallet document could not be read: {}",
                truncated(&error.to_string())
            )));
        }
        if let (true, Some(source)) = (doc.found, doc.source) {
            sources.push(source);
        }
    }
    Ok(sources)
}

fn bulk_outcome(
    body: &BulkResponse,
    transactions: usize,
) -> Result<IndexOutcome, SearchIndexError> {
    let mut outcome = IndexOutcome::default();
    let mut failures = Vec::new();
    let mut failed = 0;
    let mut passing = true;
    for (position, item) in body.items.iter().flat_map(HashMap::values).enumerate() {
        let is_wallet = position >= transactions;
        match (item.error.as_ref(), is_wallet) {
            (None, false) => outcome.transactions += 1,
            (None, true) => outcome.wallets_updated += 1,
            (Some(_), true) if item.status == STATUS_CONFLICT => {
                outcome.wallets_already_newer += 1;
            }
            (Some(error), _) => {
                failed += 1;
                let error = error.to_string();
                passing &= is_transient_refusal(item.status, &error);
                if failures.len() < BULK_FAILURES_REPORTED_MAX {
                    failures.push(truncated(&format!(
                        "{}/{}: {} {}",
                        item.index, item.id, item.status, error
                    )));
                }
            }
        }
    }
    if failed > 0 {
        return Err(SearchIndexError::BulkItemsFailed {
            failed,
            total: body.items.len(),
            first: failures,
            passing,
        });
    }
    if body.errors && outcome.wallets_already_newer == 0 {
        // The server says something failed, yet no item says what.
        return Err(SearchIndexError::BulkItemsFailed {
            failed: 0,
            total: body.items.len(),
            first: vec!["errors flag set with no failed item".into()],
            passing: false,
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use event_sink::Transience;

    use super::*;

    fn response(value: Value) -> BulkResponse {
        serde_json::from_value(value).expect("bulk response shape")
    }

    #[test]
    fn prefixes_are_index_name_safe() {
        assert!(check_index_prefix("wallex").is_ok());
        assert!(check_index_prefix("wallex_it_0190abc").is_ok());
        for bad in ["", "Wallex", "-wallex", "_wallex", "wal lex", "wal/lex"] {
            assert!(check_index_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bulk_lines_are_an_action_then_its_document_with_the_wallets_external_version() {
        let occurred_at = chrono::Utc::now();
        let transaction = TransactionSource {
            id: uuid::Uuid::now_v7(),
            wallet_id: "w-1".into(),
            owner_id: "o-1".into(),
            transaction_type: "CREDIT".into(),
            amount: "1.50".into(),
            amount_cents: 150,
            balance_after: "101.50".into(),
            counterparty_wallet_id: None,
            transfer_id: None,
            description: Some("Earl Grey, ΣΟΦΟΣ".into()),
            occurred_at,
            position: 7,
            stream_version: 2,
            principal: None,
            hold_id: None,
        };
        let wallet = WalletSource {
            id: "w-1".into(),
            owner_id: "o-1".into(),
            balance: "101.50".into(),
            created_at: occurred_at,
            updated_at: occurred_at,
            version: 2,
        };
        let documents = BatchDocuments {
            transactions: vec![transaction.clone()],
            wallets: vec![crate::documents::WalletWrite {
                source: wallet.clone(),
                version: 2,
            }],
        };
        let lines: Vec<Value> = bulk_lines("t", "w", &documents)
            .iter()
            .map(|line| serde_json::to_value(line).expect("serializes"))
            .collect();
        let mut document = serde_json::to_value(&transaction).expect("serializes");
        document["descriptionWords"] = json!("earl grey σοφοσ");
        assert_eq!(
            lines,
            vec![
                json!({ "index": { "_index": "t", "_id": transaction.id.to_string() } }),
                document,
                json!({ "index": { "_index": "w", "_id": "w-1", "version": 2, "version_type": "external" } }),
                serde_json::to_value(&wallet).expect("serializes"),
            ]
        );
    }

    #[test]
    fn a_wallet_version_conflict_is_not_a_failure() {
        let body = response(json!({
            "errors": true,
            "items": [
                { "index": { "_index": "t", "_id": "e1", "status": 200 } },
                { "index": { "_index": "w", "_id": "w1", "status": 409,
                             "error": { "type": "version_conflict_engine_exception" } } }
            ]
        }));
        let outcome = bulk_outcome(&body, 1).expect("conflict is fine");
        assert_eq!(outcome.transactions, 1);
        assert_eq!(outcome.wallets_already_newer, 1);
    }

    #[test]
    fn a_document_a_recovering_shard_cannot_read_is_retried() {
        let body: MgetResponse = serde_json::from_value(json!({ "docs": [
            { "_index": "w", "_id": "w1", "error": {
                "type": "illegal_index_shard_state_exception",
                "reason": "CurrentState[RECOVERING] operations only allowed when shard state is one of [POST_RECOVERY, STARTED]"
            } }
        ] }))
        .expect("an _mget answer");
        let refused = found_sources(body).expect_err("the document was not read");
        assert!(refused.is_transient(), "{refused:?}");
        let none: MgetResponse = serde_json::from_value(
            json!({ "docs": [{ "_index": "w", "_id": "w2", "found": false }] }),
        )
        .expect("an _mget answer");
        assert!(found_sources(none).expect("read").is_empty());
    }

    #[test]
    fn items_refused_for_the_index_s_state_are_retried_and_others_are_not() {
        let item = |status: u16, kind: &str| {
            json!({ "index": { "_index": "t", "_id": "e1", "status": status,
                               "error": { "type": kind } } })
        };
        let outcome = |items: Vec<Value>| {
            let body = response(json!({ "errors": true, "items": items }));
            bulk_outcome(&body, 2).expect_err("items failed")
        };
        let recovering = outcome(vec![
            item(503, "unavailable_shards_exception"),
            item(429, "es_rejected_execution_exception"),
        ]);
        assert!(recovering.is_transient(), "{recovering:?}");
        let blocked = outcome(vec![
            item(403, "cluster_block_exception"),
            item(403, "cluster_block_exception"),
        ]);
        assert!(
            blocked.is_transient(),
            "a write block is the index's state: {blocked:?}"
        );
        let unauthorized = outcome(vec![
            item(401, "security_exception"),
            item(404, "index_not_found_exception"),
        ]);
        assert!(unauthorized.is_transient(), "{unauthorized:?}");
        let closed = outcome(vec![
            item(400, "index_closed_exception"),
            item(400, "index_closed_exception"),
        ]);
        assert!(
            closed.is_transient(),
            "a closed index is its state: {closed:?}"
        );
        let mixed = outcome(vec![
            item(503, "unavailable_shards_exception"),
            item(400, "mapper_parsing_exception"),
        ]);
        assert!(!mixed.is_transient(), "{mixed:?}");
    }

    #[test]
    fn any_other_item_failure_fails_the_batch() {
        let body = response(json!({
            "errors": true,
            "items": [
                { "index": { "_index": "t", "_id": "e1", "status": 409,
                             "error": { "type": "version_conflict_engine_exception" } } },
                { "index": { "_index": "w", "_id": "w1", "status": 400,
                             "error": { "type": "mapper_parsing_exception" } } }
            ]
        }));
        let refused = bulk_outcome(&body, 1);
        assert!(
            matches!(
                refused,
                Err(SearchIndexError::BulkItemsFailed {
                    failed: 2,
                    total: 2,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
}
