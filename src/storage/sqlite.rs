//! The SQLite store: the laptop default, one file under `./data/`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::sql_store::{Dialect, Queries};

/// Times are stored as fixed-width UTC text so that text order is time order.
const DIALECT: Dialect = Dialect {
    now: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    later: |secs| format!("strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {secs}))"),
    skip_locked: "",
    month_start: "strftime('%Y-%m-01 00:00:00.000', 'now')",
    lock_users: "",
    json_list: "select value from json_each($1)",
    begin_write: "begin immediate",
};

/// [`super::Store`] on SQLite.
pub struct SqliteStore {
    pool: SqlitePool,
    sql: Queries,
    /// Seals and opens the secrets kept in the database; none when no key is configured.
    keyring: Option<std::sync::Arc<crate::sealing::Keyring>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file named by `url`, in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // What a row held is overwritten when it is deleted or changed (a secret sealed
            // again, a deleted document's text), where that costs no extra write.
            .pragma("secure_delete", "fast")
            .foreign_keys(true);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .context("opening the SQLite database")?;
        Ok(SqliteStore {
            pool,
            sql: Queries::new(&DIALECT),
            keyring: None,
        })
    }

    /// Seals the secrets it stores with `keyring`.
    pub fn with_keyring(
        mut self,
        keyring: Option<std::sync::Arc<crate::sealing::Keyring>>,
    ) -> Self {
        self.keyring = keyring;
        self
    }

    /// The pool, for the session store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

webhook_store_impl!(SqliteStore);
account_store_impl!(SqliteStore);
store_impl!(SqliteStore, "sqlite", sqlx::migrate!("migrations/sqlite"));

/// The matching documents (see the Postgres statement): the owner's newest matching pages
/// (at most `$10`; FTS5 walks its index in descending rowid order and stops there), scored
/// and grouped by document; the totals counted before the page is cut.
const SEARCH_DOCUMENTS: &str = "with candidates as materialized (\
       select p.document_id, -bm25(pages_search) as score \
       from pages_search join pages p on p.id = pages_search.rowid \
       join documents d on d.id = p.document_id \
       where pages_search match $1 and d.owner_id = $2 \
         and ($3 is null or d.status = $3) and ($4 is null or d.engine = $4) \
         and ($5 is null or d.created_at >= $5) and ($6 is null or d.created_at < $6) \
       order by pages_search.rowid desc limit $10) \
     select document_id, max(score) as score, count(*) as matching_pages, \
       count(*) over () as total, (select count(*) from candidates) as scored_pages \
     from candidates group by document_id \
     order by case when $7 then max(score) else 0 end desc, document_id desc \
     limit $8 offset $9";

/// The best pages of some documents (ids in a JSON array), best first within each. FTS5
/// cannot look rows up by a list of rowids, and `rowid in (…)` made it score every matching
/// page of the library (1.3 s for a common word, 17 s for a phrase of two, at 200,000
/// pages); it can seek a rowid range, so the range spanning the documents' pages is given
/// (they are among the newest matching pages a search ranked, so it is narrow where the
/// words are common) and the documents are picked within it.
const BEST_PAGES: &str = "select id, document_id, page_number, score from (\
       select *, row_number() over (partition by document_id order by score desc, page_number) as n \
       from (select p.id, p.document_id, p.page_number, -bm25(pages_search) as score \
         from pages_search join pages p on p.id = pages_search.rowid \
         where pages_search match $1 \
           and pages_search.rowid between \
             (select min(id) from pages where document_id in (select value from json_each($2))) \
             and (select max(id) from pages where document_id in (select value from json_each($2))) \
           and p.document_id in (select value from json_each($2)))) \
     where n <= $3 order by document_id, score desc, page_number";

/// Passages around the hits of some pages (ids in a JSON array): only those pages pay for it.
const SNIPPETS: &str = "select rowid, snippet(pages_search, 0, char(64976), char(64977), ' … ', 24) \
     from pages_search where pages_search match $1 and rowid in (select value from json_each($2))";

/// Every matching page of one document, all of its text with every hit marked.
const HIGHLIGHT_PAGES: &str = "select p.page_number, highlight(pages_search, 0, char(64976), char(64977)) \
     from pages_search join pages p on p.id = pages_search.rowid \
     where pages_search match $2 and pages_search.rowid in (select id from pages where document_id = $1) \
     order by p.page_number";

/// A time bound as SQLite stores times (fixed-width UTC text, so text order is time order).
fn stored_time(time: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

#[async_trait::async_trait]
impl super::search::SearchStore for SqliteStore {
    async fn search_documents(
        &self,
        request: &super::search::SearchRequest<'_>,
    ) -> super::Result<super::search::DocumentMatches> {
        let rows: Vec<(String, f64, i64, i64, i64)> = sqlx::query_as(SEARCH_DOCUMENTS)
            .bind(super::search::fts5(request.query))
            .bind(request.owner_id)
            .bind(request.filters.status.map(|s| s.as_str()))
            .bind(request.filters.engine.map(crate::domain::Engine::as_str))
            .bind(stored_time(request.filters.uploaded_from))
            .bind(stored_time(request.filters.uploaded_before))
            .bind(request.sort == crate::domain::search::SearchSort::Relevance)
            .bind(request.limit)
            .bind(request.offset)
            .bind(request.max_scored_pages)
            .fetch_all(&self.pool)
            .await?;
        Ok(super::search::documents_from_rows(
            rows,
            request.max_scored_pages,
        ))
    }

    async fn best_pages(
        &self,
        query: &crate::domain::search::SearchQuery,
        document_ids: &[String],
        per_document: i64,
    ) -> super::Result<Vec<super::search::PageMatch>> {
        let expression = super::search::fts5(query);
        let best: Vec<(i64, String, i32, f64)> = sqlx::query_as(BEST_PAGES)
            .bind(&expression)
            .bind(super::json_list(document_ids))
            .bind(per_document)
            .fetch_all(&self.pool)
            .await?;
        let page_ids: Vec<i64> = best.iter().map(|row| row.0).collect();
        let snippets: std::collections::HashMap<i64, String> = sqlx::query_as(SNIPPETS)
            .bind(&expression)
            .bind(super::json_list(&page_ids))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        let rows = best
            .into_iter()
            .map(|(id, document_id, page_number, score)| {
                let snippet = snippets.get(&id).cloned().unwrap_or_default();
                (document_id, page_number, score, snippet)
            })
            .collect();
        Ok(super::search::pages_from_rows(rows))
    }

    async fn highlight_pages(
        &self,
        document_id: &str,
        query: &crate::domain::search::SearchQuery,
    ) -> super::Result<Vec<(i32, crate::domain::search::Highlighted)>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(HIGHLIGHT_PAGES)
            .bind(document_id)
            .bind(super::search::fts5(query))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(n, text)| (n, crate::domain::search::Highlighted::parse(&text)))
            .collect())
    }
}
