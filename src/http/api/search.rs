//! `GET /api/v1/search`: full-text search over the caller's documents.

use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::views::DocumentView;
use crate::{
    app::search::{DocumentResult, SearchParams, SearchResults, ValidSearch},
    http::{AppError, AppState, auth::ApiUser, error::Problem},
};

/// One page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResultsView {
    /// The query as received.
    pub query: String,
    /// How many documents match in all.
    pub total_documents: i64,
    /// False when the words are on so many pages that only the newest matching pages were
    /// ranked (`LECTOR_SEARCH_MAX_SCORED_PAGES`, 2,000): `total_documents` is then a lower
    /// bound.
    pub total_is_exact: bool,
    /// This page of results, from 1.
    pub page: i64,
    /// Documents per page.
    pub per_page: i64,
    /// The next page, when there is one.
    pub next_page: Option<i64>,
    /// Matching documents, best (or newest, with `sort=date`) first.
    pub documents: Vec<DocumentHitsView>,
}

/// A matching document and its best pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentHitsView {
    /// The document.
    pub document: DocumentView,
    /// Its best page's score (higher is better; compare within one search only).
    pub score: f64,
    /// How many of its pages match.
    pub matching_pages: i64,
    /// Its best pages (up to three), best first.
    pub hits: Vec<PageHitView>,
}

/// A matching page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageHitView {
    /// 1-based page number.
    pub page: i32,
    /// Its score.
    pub score: f64,
    /// A passage of the page around the hits, as plain text.
    pub snippet: String,
    /// The same passage as HTML: the text escaped, each hit in `<mark>`.
    pub snippet_html: String,
    /// The document page for people, scrolled to this page with the hits highlighted.
    pub html: String,
}

/// Search the text of your documents: words (all must occur on a page), "phrases",
/// -excluded words, and `or` between alternatives (Postgres `websearch_to_tsquery` syntax,
/// with English stemming). Results are grouped by document, each with its best pages.
#[utoipa::path(get, path = "/search", tag = "search",
    params(
        ("q" = Option<String>, Query, description = "Words, \"phrases\", -excluded words, `or` between alternatives."),
        ("status" = Option<String>, Query, description = "Only documents in this state: queued, processing, done, failed, cancelled."),
        ("engine" = Option<String>, Query, description = "Only documents read by this engine: local, textract, hybrid."),
        ("from" = Option<String>, Query, description = "Uploaded on or after this day (YYYY-MM-DD, UTC)."),
        ("to" = Option<String>, Query, description = "Uploaded on or before this day (YYYY-MM-DD, UTC)."),
        ("sort" = Option<String>, Query, description = "`relevance` (default) or `date` (newest first)."),
        ("page" = Option<i64>, Query, description = "Page of results, from 1."),
        ("per_page" = Option<i64>, Query, description = "Documents per page, 1 to 50 (default 10)."),
    ),
    responses((status = 200, body = SearchResultsView),
        (status = 400, description = "Empty or malformed query, unknown filter value", body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResultsView>, AppError> {
    let Query(params) = params.map_err(|e| AppError::InvalidSearch(e.body_text()))?;
    let valid = params.validate()?;
    let results = state.search.run(&user, &valid).await?;
    Ok(Json(SearchResultsView::new(results, &valid)))
}

impl SearchResultsView {
    /// The answer for one page of `results` of the search `valid`.
    fn new(results: SearchResults, valid: &ValidSearch) -> Self {
        let seen = (valid.page - 1) * valid.per_page + results.documents.len() as i64;
        let query = &valid.query.text;
        SearchResultsView {
            query: query.clone(),
            total_documents: results.total_documents,
            total_is_exact: results.total_is_exact,
            page: valid.page,
            per_page: valid.per_page,
            next_page: (seen < results.total_documents).then_some(valid.page + 1),
            documents: (results.documents.into_iter())
                .map(|found| DocumentHitsView::new(found, query))
                .collect(),
        }
    }
}

impl DocumentHitsView {
    /// A matching document, its best pages linked to the document page with `query`.
    fn new(found: DocumentResult, query: &str) -> Self {
        let id = found.document.id.to_string();
        DocumentHitsView {
            document: DocumentView::new(found.document),
            score: found.score,
            matching_pages: found.matching_pages,
            hits: (found.hits.into_iter())
                .map(|hit| PageHitView {
                    page: hit.page_number,
                    score: hit.score,
                    snippet: hit.snippet.plain(),
                    snippet_html: hit.snippet.to_html(),
                    html: crate::http::links::page_link(&id, query, hit.page_number),
                })
                .collect(),
        }
    }
}
