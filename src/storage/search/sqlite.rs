//! Search on SQLite: FTS5's `MATCH` over the `pages_search` index, scored with `bm25`.

use sqlx::Sqlite;

use super::{DocumentMatches, PageMatch, SearchRequest, SearchStore};
use crate::domain::search::{Highlighted, SearchQuery, SearchSort};
use crate::storage::{Result, sql::SqlStore};

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
impl SearchStore for SqlStore<Sqlite> {
    async fn search_documents(&self, request: &SearchRequest<'_>) -> Result<DocumentMatches> {
        let rows: Vec<(String, f64, i64, i64, i64)> = sqlx::query_as(SEARCH_DOCUMENTS)
            .bind(super::fts5(request.query))
            .bind(request.owner_id)
            .bind(request.filters.status.map(|s| s.as_str()))
            .bind(request.filters.engine.map(crate::domain::Engine::as_str))
            .bind(stored_time(request.filters.uploaded_from))
            .bind(stored_time(request.filters.uploaded_before))
            .bind(request.sort == SearchSort::Relevance)
            .bind(request.limit)
            .bind(request.offset)
            .bind(request.max_scored_pages)
            .fetch_all(&self.pool)
            .await?;
        Ok(super::documents_from_rows(rows, request.max_scored_pages))
    }

    async fn best_pages(
        &self,
        query: &SearchQuery,
        document_ids: &[String],
        per_document: i64,
    ) -> Result<Vec<PageMatch>> {
        let expression = super::fts5(query);
        let best: Vec<(i64, String, i32, f64)> = sqlx::query_as(BEST_PAGES)
            .bind(&expression)
            .bind(crate::storage::json_list(document_ids))
            .bind(per_document)
            .fetch_all(&self.pool)
            .await?;
        let page_ids: Vec<i64> = best.iter().map(|row| row.0).collect();
        let snippets: std::collections::HashMap<i64, String> = sqlx::query_as(SNIPPETS)
            .bind(&expression)
            .bind(crate::storage::json_list(&page_ids))
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
        Ok(super::pages_from_rows(rows))
    }

    async fn highlight_pages(
        &self,
        document_id: &str,
        query: &SearchQuery,
    ) -> Result<Vec<(i32, Highlighted)>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(HIGHLIGHT_PAGES)
            .bind(document_id)
            .bind(super::fts5(query))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(n, text)| (n, Highlighted::parse(&text)))
            .collect())
    }
}
