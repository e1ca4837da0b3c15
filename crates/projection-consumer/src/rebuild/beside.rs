//! The views built beside the live ones, and their atomic switch.

use std::time::Duration;

use elasticsearch::http::transport::Transport;
use elasticsearch::indices::IndicesDeleteParts;
use elasticsearch::Elasticsearch;
use read_model::PostgresReadModel;
use search_index::{ElasticsearchIndex, SearchIndex};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::{search_index, RebuildError};
use crate::config::Config;

/// The PostgreSQL schema the read model is rebuilt in.
pub const BESIDE_SCHEMA: &str = "read_model_rebuild";
/// The read model's tables, rebuilt and swapped together.
const READ_MODEL_TABLES: [&str; 3] = [
    "wallet_read_model",
    "read_model_expiring_holds",
    "read_model_checkpoint",
];
/// Connections of the pool that writes the read model beside the live one.
const BESIDE_POOL_CONNECTIONS_MAX: u32 = 2;
/// Names of the search index, each an alias once rebuilt.
const INDEX_SUFFIXES: [&str; 2] = ["wallets", "transactions"];
/// How long the indices of the previous rebuild outlive the alias switch, so
/// searches that resolved the alias just before it finish on them.
const RETIRED_INDEX_GRACE_MS: u64 = 5_000;

/// The read model's tables in [`BESIDE_SCHEMA`], made like the live ones
/// (columns, constraints, indexes), and a read model writing to them.
pub struct ReadModelBeside {
    live: PgPool,
    beside: PostgresReadModel,
    beside_pool: PgPool,
}

impl ReadModelBeside {
    /// Drops what an interrupted rebuild left, then creates the empty tables beside the live ones.
    pub async fn create(live: &PgPool, database_url: &str) -> Result<Self, RebuildError> {
        let mut statements = vec![
            format!("DROP SCHEMA IF EXISTS {BESIDE_SCHEMA} CASCADE"),
            format!("CREATE SCHEMA {BESIDE_SCHEMA}"),
        ];
        for table in READ_MODEL_TABLES {
            statements.push(format!(
                "CREATE TABLE {BESIDE_SCHEMA}.{table} (LIKE {table} INCLUDING ALL)"
            ));
        }
        statements.push(format!(
            "INSERT INTO {BESIDE_SCHEMA}.read_model_checkpoint (id, position) VALUES (1, 0)"
        ));
        for statement in &statements {
            sqlx::query(statement)
                .execute(live)
                .await
                .map_err(RebuildError::Beside)?;
        }
        let options: PgConnectOptions = database_url
            .parse::<PgConnectOptions>()
            .map_err(RebuildError::Beside)?
            .options([("search_path", BESIDE_SCHEMA)]);
        let beside_pool = PgPoolOptions::new()
            .max_connections(BESIDE_POOL_CONNECTIONS_MAX)
            .connect_with(options)
            .await
            .map_err(RebuildError::Beside)?;
        Ok(Self {
            live: live.clone(),
            beside: PostgresReadModel::new(beside_pool.clone()),
            beside_pool,
        })
    }

    /// The read model writing to the tables beside the live ones.
    pub fn read_model(&self) -> &PostgresReadModel {
        &self.beside
    }

    /// In one transaction: the live tables dropped, the rebuilt ones moved in
    /// their place under the live indexes' names. Readers wait on the lock for
    /// that instant and then read the new tables whole.
    pub async fn switch(self) -> Result<(), RebuildError> {
        self.beside_pool.close().await;
        let tables: Vec<String> = READ_MODEL_TABLES
            .iter()
            .map(|table| (*table).to_owned())
            .collect();
        let mut transaction = self.live.begin().await.map_err(RebuildError::Beside)?;
        let (live_schema,): (String,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&mut *transaction)
            .await
            .map_err(RebuildError::Beside)?;
        // Each rebuilt index's name for the live index of the same definition.
        let renames: Vec<(String, String)> = sqlx::query_as(
            "SELECT new.indexname, old.indexname FROM pg_indexes old \
             JOIN pg_indexes new ON new.schemaname = $1 AND new.tablename = old.tablename \
              AND regexp_replace(new.indexdef, '^.* USING ', '') = regexp_replace(old.indexdef, '^.* USING ', '') \
             WHERE old.schemaname = current_schema() AND old.tablename = ANY($2) \
              AND new.indexname <> old.indexname",
        )
        .bind(BESIDE_SCHEMA)
        .bind(&tables)
        .fetch_all(&mut *transaction)
        .await
        .map_err(RebuildError::Beside)?;
        let mut statements = vec![
            format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", tables.join(", ")),
            format!("DROP TABLE {}", tables.join(", ")),
        ];
        for table in &tables {
            statements.push(format!(
                "ALTER TABLE {BESIDE_SCHEMA}.{table} SET SCHEMA \"{live_schema}\""
            ));
        }
        for (rebuilt, live) in &renames {
            statements.push(format!(
                "ALTER INDEX \"{live_schema}\".\"{rebuilt}\" RENAME TO \"{live}\""
            ));
        }
        statements.push(format!("DROP SCHEMA {BESIDE_SCHEMA}"));
        for statement in &statements {
            sqlx::query(statement)
                .execute(&mut *transaction)
                .await
                .map_err(RebuildError::Beside)?;
        }
        transaction.commit().await.map_err(RebuildError::Beside)
    }
}

/// New indices `<prefix>-rebuild-<unix ms>-*` and an index writing to them.
pub struct IndexBeside {
    client: Elasticsearch,
    live_prefix: String,
    prefix: String,
    index: ElasticsearchIndex,
}

impl IndexBeside {
    /// Creates the new, empty indices with the search index's mappings.
    pub async fn create(config: &Config) -> Result<Self, RebuildError> {
        let live_prefix = config.elasticsearch_index_prefix.clone();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let prefix = format!("{live_prefix}-rebuild-{stamp}");
        let index = search_index(config, &prefix)?.under_own_names();
        index.ensure_indices().await?;
        let transport = Transport::single_node(&config.elasticsearch_url)
            .map_err(|error| RebuildError::Alias(error.to_string()))?;
        Ok(Self {
            client: Elasticsearch::new(transport),
            live_prefix,
            prefix,
            index,
        })
    }

    /// The index writing to the new indices.
    pub fn index(&self) -> &ElasticsearchIndex {
        &self.index
    }

    /// One atomic alias request puts the new indices behind the live names
    /// (moving the alias off the indices it pointed at, or replacing a live
    /// index of that name); then, after [`RETIRED_INDEX_GRACE_MS`], the
    /// indices the alias left are deleted. The live names are aliases from
    /// their first creation (`search_index::FIRST_INDEX_SUFFIX`), so a search
    /// in flight always finds an index; only a live index made under its own
    /// name by a version before that is replaced, and a search in flight on
    /// it at that switch fails once (503) and is retried by its caller.
    /// Returns the new indices' prefix.
    pub async fn switch(self) -> Result<String, RebuildError> {
        self.index.refresh().await?;
        let timeout = Duration::from_millis(search_index::REQUEST_TIMEOUT_MS_DEFAULT);
        let mut actions = Vec::new();
        let mut retired = Vec::new();
        for suffix in INDEX_SUFFIXES {
            let live = format!("{}-{suffix}", self.live_prefix);
            let rebuilt = format!("{}-{suffix}", self.prefix);
            match self.index.alias_targets(&live).await? {
                Some(previous) => {
                    for index in previous {
                        actions.push(json!({"remove": {"index": index, "alias": live}}));
                        retired.push(index);
                    }
                }
                None => actions.push(json!({"remove_index": {"index": live}})),
            }
            actions.push(json!({"add": {"index": rebuilt, "alias": live}}));
        }
        let response = self
            .client
            .indices()
            .update_aliases()
            .body(json!({ "actions": actions }))
            .request_timeout(timeout)
            .send()
            .await
            .map_err(|error| RebuildError::Alias(error.to_string()))?;
        if !response.status_code().is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(RebuildError::Alias(body));
        }
        if !retired.is_empty() {
            tokio::time::sleep(Duration::from_millis(RETIRED_INDEX_GRACE_MS)).await;
        }
        for previous in retired {
            let deleted = self
                .client
                .indices()
                .delete(IndicesDeleteParts::Index(&[previous.as_str()]))
                .request_timeout(timeout)
                .send()
                .await;
            if let Err(error) = deleted {
                tracing::warn!(index = previous, %error, "the retired index was not deleted");
            }
        }
        Ok(self.prefix)
    }
}
