//! The search use case shared by the web UI and the API: read the request (query, filters,
//! order, page), ask the store for the matching documents and their best pages.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    domain::{
        Document, DocumentStatus, Engine, User,
        search::{Highlighted, QueryError, SearchFilters, SearchQuery, SearchSort},
    },
    storage::{self, Store, search::SearchRequest},
};

/// Documents per page of results unless asked otherwise.
pub const DEFAULT_PER_PAGE: i64 = 10;
/// Most documents per page of results.
pub const MAX_PER_PAGE: i64 = 50;
/// Best pages shown under each document.
pub const HITS_PER_DOCUMENT: i64 = 3;

/// A search as it arrives in a URL's query string (the web form and the API share it).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct SearchParams {
    /// Words, "phrases", -excluded words, `or` between alternatives.
    pub q: Option<String>,
    /// Only documents in this state: queued, processing, done, failed, cancelled.
    pub status: Option<String>,
    /// Only documents read by this engine: local, textract, hybrid.
    pub engine: Option<String>,
    /// Uploaded on or after this day (YYYY-MM-DD, UTC).
    pub from: Option<String>,
    /// Uploaded on or before this day (YYYY-MM-DD, UTC).
    pub to: Option<String>,
    /// `relevance` (default) or `date` (newest first).
    pub sort: Option<String>,
    /// Page of results, from 1.
    pub page: Option<i64>,
    /// Documents per page, 1 to 50 (default 10).
    pub per_page: Option<i64>,
}

/// Why a search was refused.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query itself.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A filter, the order or the page.
    #[error("{0}")]
    Invalid(String),
}

/// A search, checked.
#[derive(Debug, Clone)]
pub struct ValidSearch {
    /// The parsed query.
    pub query: SearchQuery,
    /// Which documents to look in.
    pub filters: SearchFilters,
    /// Order of the documents.
    pub sort: SearchSort,
    /// Page of results, from 1.
    pub page: i64,
    /// Documents per page.
    pub per_page: i64,
}

impl SearchParams {
    /// True when nothing was asked (the search page before a search).
    pub fn is_blank(&self) -> bool {
        self.q.as_deref().is_none_or(|q| q.trim().is_empty())
    }

    /// Checks every field, saying what is wrong with the first bad one.
    pub fn validate(&self) -> Result<ValidSearch, SearchError> {
        let query = SearchQuery::parse(self.q.as_deref().unwrap_or_default())?;
        let status = match non_empty(&self.status) {
            None => None,
            Some(raw) => Some(DocumentStatus::parse(raw).ok_or_else(|| {
                SearchError::Invalid(format!(
                    "unknown status {raw:?}: use queued, processing, done, failed or cancelled"
                ))
            })?),
        };
        let engine = match non_empty(&self.engine) {
            None => None,
            Some(raw) => Some(Engine::parse(raw).ok_or_else(|| {
                SearchError::Invalid(format!(
                    "unknown engine {raw:?}: use local, textract or hybrid"
                ))
            })?),
        };
        let from = day(&self.from, "from")?;
        let to = day(&self.to, "to")?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(SearchError::Invalid(format!(
                "the date range is empty: {from} is after {to}"
            )));
        }
        let sort = match non_empty(&self.sort) {
            None => SearchSort::Relevance,
            Some(raw) => SearchSort::parse(raw).ok_or_else(|| {
                SearchError::Invalid(format!("unknown sort {raw:?}: use relevance or date"))
            })?,
        };
        let page = self.page.unwrap_or(1);
        if !(1..=10_000).contains(&page) {
            return Err(SearchError::Invalid(
                "page must be between 1 and 10000".into(),
            ));
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(SearchError::Invalid(format!(
                "per_page must be between 1 and {MAX_PER_PAGE}"
            )));
        }
        Ok(ValidSearch {
            query,
            filters: SearchFilters {
                status,
                engine,
                uploaded_from: from.map(start_of),
                uploaded_before: to.map(|day| start_of(day + chrono::Days::new(1))),
            },
            sort,
            page,
            per_page,
        })
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn day(field: &Option<String>, name: &str) -> Result<Option<NaiveDate>, SearchError> {
    non_empty(field)
        .map(|raw| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
                SearchError::Invalid(format!("{name} must be a date such as 2026-01-31"))
            })
        })
        .transpose()
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// One page of search results.
#[derive(Debug)]
pub struct SearchResults {
    /// How many documents match in all.
    pub total_documents: i64,
    /// False when so many pages matched that only the newest were scored: then
    /// `total_documents` is a lower bound.
    pub total_is_exact: bool,
    /// The matching documents of this page, in order.
    pub documents: Vec<DocumentResult>,
}

/// A matching document with its best pages.
#[derive(Debug)]
pub struct DocumentResult {
    /// The document.
    pub document: Document,
    /// Its best page's score.
    pub score: f64,
    /// How many of its pages match.
    pub matching_pages: i64,
    /// Its best pages, best first.
    pub hits: Vec<PageHit>,
}

/// A matching page.
#[derive(Debug)]
pub struct PageHit {
    /// 1-based page number.
    pub page_number: i32,
    /// Its score.
    pub score: f64,
    /// A passage with the hits marked.
    pub snippet: Highlighted,
}

/// Search over one store, ranking at most `LECTOR_SEARCH_MAX_SCORED_PAGES` matching pages.
#[derive(Clone)]
pub struct Search {
    store: Arc<dyn Store>,
    max_scored_pages: i64,
}

impl Search {
    /// Search over `store` with the configured ranking limit.
    pub fn new(store: Arc<dyn Store>, config: &Config) -> Self {
        Search {
            store,
            max_scored_pages: config.search_max_scored_pages,
        }
    }

    /// How many matching pages one search ranks at most.
    pub fn max_scored_pages(&self) -> i64 {
        self.max_scored_pages
    }

    /// One page of results of `search` over `owner`'s documents.
    pub async fn run(&self, owner: &User, search: &ValidSearch) -> storage::Result<SearchResults> {
        self::search(self.store.as_ref(), owner, search, self.max_scored_pages).await
    }

    /// The matching pages of `document` with every hit of `q` marked.
    pub async fn highlight(
        &self,
        document: &Document,
        q: &str,
    ) -> storage::Result<Option<Vec<(i32, Highlighted)>>> {
        highlight(self.store.as_ref(), document.id.as_str(), q).await
    }
}

/// Runs `search` over `owner`'s documents, ranking at most `max_scored_pages` matching
/// pages (`LECTOR_SEARCH_MAX_SCORED_PAGES`).
pub async fn search(
    store: &dyn Store,
    owner: &User,
    search: &ValidSearch,
    max_scored_pages: i64,
) -> storage::Result<SearchResults> {
    if search.query.is_empty() {
        return Ok(SearchResults {
            total_documents: 0,
            total_is_exact: true,
            documents: Vec::new(),
        });
    }
    let found = store
        .search_documents(&SearchRequest {
            owner_id: owner.id.as_str(),
            query: &search.query,
            filters: &search.filters,
            sort: search.sort,
            limit: search.per_page,
            offset: (search.page - 1) * search.per_page,
            max_scored_pages,
        })
        .await?;
    let ids: Vec<String> = found
        .documents
        .iter()
        .map(|m| m.document_id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(SearchResults {
            total_documents: found.total,
            total_is_exact: found.complete,
            documents: Vec::new(),
        });
    }
    let mut hits: HashMap<String, Vec<PageHit>> = HashMap::new();
    for page in store
        .best_pages(&search.query, &ids, HITS_PER_DOCUMENT)
        .await?
    {
        hits.entry(page.document_id).or_default().push(PageHit {
            page_number: page.page_number,
            score: page.score,
            snippet: page.snippet,
        });
    }
    let mut by_id: HashMap<String, Document> = store
        .documents_by_ids(&ids)
        .await?
        .into_iter()
        .map(|document| (document.id.to_string(), document))
        .collect();
    let documents = found
        .documents
        .into_iter()
        // One deleted between the statements is simply not shown.
        .filter_map(|matched| {
            Some(DocumentResult {
                document: by_id.remove(&matched.document_id)?,
                hits: hits.remove(&matched.document_id).unwrap_or_default(),
                score: matched.score,
                matching_pages: matched.matching_pages,
            })
        })
        .collect();
    Ok(SearchResults {
        total_documents: found.total,
        total_is_exact: found.complete,
        documents,
    })
}

/// The matching pages of one document with every hit marked (the document page, opened from
/// a search result). None when `q` is not a query that can match.
pub async fn highlight(
    store: &dyn Store,
    document_id: &str,
    q: &str,
) -> storage::Result<Option<Vec<(i32, Highlighted)>>> {
    let Ok(query) = SearchQuery::parse(q) else {
        return Ok(None);
    };
    if query.is_empty() {
        return Ok(None);
    }
    store.highlight_pages(document_id, &query).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        let query = serde_urlencoded::to_string(pairs).unwrap();
        serde_urlencoded::from_str(&query).unwrap()
    }

    #[test]
    fn a_full_search_is_read_into_filters() {
        let search = params(&[
            ("q", "invoice"),
            ("status", "done"),
            ("engine", "local"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("sort", "date"),
            ("page", "2"),
            ("per_page", "5"),
        ])
        .validate()
        .unwrap();
        assert_eq!(search.filters.status, Some(DocumentStatus::Done));
        assert_eq!(search.filters.engine, Some(Engine::Local));
        assert_eq!(
            search.filters.uploaded_from.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        // The last day is included: the bound is the start of the next one.
        assert_eq!(
            search.filters.uploaded_before.unwrap().to_rfc3339(),
            "2026-02-01T00:00:00+00:00"
        );
        assert_eq!(search.sort, SearchSort::Newest);
        assert_eq!((search.page, search.per_page), (2, 5));
    }

    #[test]
    fn empty_fields_are_absent_fields() {
        let search = params(&[("q", "x"), ("status", ""), ("engine", " "), ("sort", "")])
            .validate()
            .unwrap();
        assert_eq!(search.filters, SearchFilters::default());
        assert_eq!((search.page, search.per_page), (1, DEFAULT_PER_PAGE));
        assert!(params(&[("q", "  ")]).is_blank());
        assert!(!params(&[("q", "x")]).is_blank());
    }

    #[test]
    fn a_search_writes_back_into_a_url_with_only_the_fields_given() {
        let params = SearchParams {
            q: Some("due date".into()),
            page: Some(2),
            ..SearchParams::default()
        };
        assert_eq!(
            serde_urlencoded::to_string(&params).unwrap(),
            "q=due+date&page=2"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("q", "")], "type something"),
            (&[("q", "x"), ("status", "lost")], "unknown status"),
            (&[("q", "x"), ("engine", "magic")], "unknown engine"),
            (&[("q", "x"), ("from", "yesterday")], "from must be a date"),
            (&[("q", "x"), ("to", "2026-13-01")], "to must be a date"),
            (
                &[("q", "x"), ("from", "2026-02-01"), ("to", "2026-01-01")],
                "the date range is empty",
            ),
            (&[("q", "x"), ("sort", "size")], "unknown sort"),
            (&[("q", "x"), ("page", "0")], "page must be"),
            (&[("q", "x"), ("per_page", "51")], "per_page must be"),
        ];
        for (pairs, message) in cases {
            let err = params(pairs).validate().unwrap_err().to_string();
            assert!(err.contains(message), "{pairs:?}: {err}");
        }
    }
}
