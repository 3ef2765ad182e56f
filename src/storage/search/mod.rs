//! Full-text search over pages: what both backends answer, and how a parsed query is spelled
//! for each (Postgres' `websearch_to_tsquery`, SQLite's FTS5 `MATCH`). The statements differ
//! in everything, so each backend has its own plain code, in `postgres.rs` and `sqlite.rs`
//! here; the indexes are in the migrations (`0008_search.sql`).

use async_trait::async_trait;

pub(super) mod postgres;
mod sqlite;

use super::Result;
use crate::domain::search::{Highlighted, SearchFilters, SearchQuery, SearchSort, Terms};

/// One page of a search's matching documents.
#[derive(Debug)]
pub struct SearchRequest<'a> {
    /// Only this account's documents.
    pub owner_id: &'a str,
    /// What to look for; not empty.
    pub query: &'a SearchQuery,
    /// Which documents to look in.
    pub filters: &'a SearchFilters,
    /// Their order.
    pub sort: SearchSort,
    /// Documents to return.
    pub limit: i64,
    /// Documents to skip.
    pub offset: i64,
    /// Most matching pages to score, newest first. Scoring reads each matching page's index
    /// entry, so a word on nearly every page of a large library would cost time in proportion
    /// to the library; past this many pages the newest matches are ranked and the count is a
    /// lower bound (as search engines stop counting exactly past a point).
    pub max_scored_pages: i64,
}

/// A document with at least one matching page.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentMatch {
    /// The document.
    pub document_id: String,
    /// Its best page's score (higher is better; comparable within one search only).
    pub score: f64,
    /// How many of its pages match.
    pub matching_pages: i64,
}

/// One page of matching documents, and how many match.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentMatches {
    /// The documents of the page asked for.
    pub documents: Vec<DocumentMatch>,
    /// How many documents match in all (among the pages scored).
    pub total: i64,
    /// False when more than `max_scored_pages` pages matched: `total` counts only the
    /// documents of the newest of them.
    pub complete: bool,
}

/// A matching page, with a passage around its hits.
#[derive(Debug, Clone, PartialEq)]
pub struct PageMatch {
    /// Its document.
    pub document_id: String,
    /// 1-based page number.
    pub page_number: i32,
    /// Its score (higher is better).
    pub score: f64,
    /// A passage of the page with the hits marked.
    pub snippet: Highlighted,
}

/// Search over the stored pages.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Keeps (`on`) or drops an index of adjacent words that finds a phrase of common words
    /// rarely standing together without checking every page holding its words, at a cost
    /// on every page stored (`LECTOR_SEARCH_PHRASE_INDEX`). Nothing to do where the word
    /// index keeps positions itself (SQLite's FTS5).
    async fn index_phrases(&self, _on: bool) -> Result<()> {
        Ok(())
    }
    /// The matching documents of `request`, and how many match in all.
    async fn search_documents(&self, request: &SearchRequest<'_>) -> Result<DocumentMatches>;
    /// The best `per_document` matching pages of each of `document_ids`, best first.
    async fn best_pages(
        &self,
        query: &SearchQuery,
        document_ids: &[String],
        per_document: i64,
    ) -> Result<Vec<PageMatch>>;
    /// Every matching page of one document, its whole text with every hit marked.
    async fn highlight_pages(
        &self,
        document_id: &str,
        query: &SearchQuery,
    ) -> Result<Vec<(i32, Highlighted)>>;
}

/// The query in `websearch_to_tsquery`'s syntax, rebuilt from the parsed clauses (so common
/// words and refused forms never reach Postgres).
pub(crate) fn websearch(query: &SearchQuery) -> String {
    let clause = |c: &crate::domain::search::Clause| {
        let sides: Vec<String> = c.alternatives.iter().map(websearch_terms).collect();
        let joined = sides.join(" or ");
        if c.excluded {
            format!("-{joined}")
        } else {
            joined
        }
    };
    query
        .clauses
        .iter()
        .map(clause)
        .collect::<Vec<_>>()
        .join(" ")
}

fn websearch_terms(terms: &Terms) -> String {
    match terms.as_slice() {
        [word] => word.clone(),
        words => format!("\"{}\"", words.join(" ")),
    }
}

/// The query as an FTS5 expression: every word or phrase a quoted string (so nothing typed
/// is read as FTS5 syntax), `or` as OR, exclusions after NOT.
pub(crate) fn fts5(query: &SearchQuery) -> String {
    let quoted = |terms: &Terms| format!("\"{}\"", terms.join(" ").replace('"', "\"\""));
    let group = |c: &crate::domain::search::Clause| {
        let sides: Vec<String> = c.alternatives.iter().map(quoted).collect();
        format!("({})", sides.join(" OR "))
    };
    let wanted: Vec<String> = query
        .clauses
        .iter()
        .filter(|c| !c.excluded)
        .map(group)
        .collect();
    let excluded: Vec<String> = query
        .clauses
        .iter()
        .filter(|c| c.excluded)
        .map(group)
        .collect();
    let wanted = wanted.join(" AND ");
    if excluded.is_empty() {
        wanted
    } else {
        format!("({wanted}) NOT ({})", excluded.join(" OR "))
    }
}

/// Matching documents from rows of (id, score, matching pages, total documents, pages
/// scored).
pub(crate) fn documents_from_rows(
    rows: Vec<(String, f64, i64, i64, i64)>,
    max_scored_pages: i64,
) -> DocumentMatches {
    let total = rows.first().map_or(0, |row| row.3);
    let scored = rows.first().map_or(0, |row| row.4);
    let documents = rows
        .into_iter()
        .map(|(document_id, score, matching_pages, _, _)| DocumentMatch {
            document_id,
            score,
            matching_pages,
        })
        .collect();
    DocumentMatches {
        documents,
        total,
        complete: scored < max_scored_pages,
    }
}

/// Matching pages from rows of (document id, page number, score, marked snippet).
pub(crate) fn pages_from_rows(rows: Vec<(String, i32, f64, String)>) -> Vec<PageMatch> {
    rows.into_iter()
        .map(|(document_id, page_number, score, snippet)| PageMatch {
            document_id,
            page_number,
            score,
            snippet: Highlighted::parse(&snippet),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_keep_the_structure() {
        let query =
            SearchQuery::parse(r#"invoice "due date" -draft paid or settled e-mail"#).unwrap();
        assert_eq!(
            websearch(&query),
            r#"invoice "due date" -draft paid or settled e-mail"#
        );
        assert_eq!(
            fts5(&query),
            r#"(("invoice") AND ("due date") AND ("paid" OR "settled") AND ("e-mail")) NOT (("draft"))"#
        );
        let plain = SearchQuery::parse("cat").unwrap();
        assert_eq!(fts5(&plain), r#"("cat")"#);
    }

    #[test]
    fn fts5_syntax_typed_by_a_user_stays_text() {
        let query = SearchQuery::parse("NEAR(a b) col:x* ^start").unwrap();
        assert_eq!(
            fts5(&query),
            r#"("near(a") AND ("b)") AND ("col:x*") AND ("^start")"#
        );
    }
}
