//! The search page: the form, and the matching documents with their best pages.

use askama::Template;
use axum::{
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tower_sessions::Session;

use super::{
    render,
    views::{Nav, SearchForm, SearchResultRow},
};
use crate::{
    app::search::{SearchParams, SearchResults, ValidSearch},
    http::{AppState, HtmlError, Refusal, auth::CurrentUser},
};

#[derive(Template)]
#[template(path = "pages/search.html")]
struct SearchPage {
    nav: Nav,
    form: SearchForm,
    error: Option<String>,
    searched: bool,
    summary: String,
    results: Vec<SearchResultRow>,
    newer_link: Option<String>,
    older_link: Option<String>,
}

impl SearchPage {
    fn new(nav: Nav, params: &SearchParams) -> Self {
        SearchPage {
            nav,
            form: SearchForm::from(params),
            error: None,
            searched: false,
            summary: String::new(),
            results: Vec::new(),
            newer_link: None,
            older_link: None,
        }
    }
}

/// `GET /search`: the form alone, or with the results of the search it sent. A bad search
/// shows the form again with the reason (400).
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, HtmlError> {
    let nav = Nav::new(&session, Some(&user)).await?;
    let (params, checked) = checked(params);
    let page = SearchPage::new(nav, &params);
    let valid = match checked {
        Ok(None) => return Ok(render(&page)?.into_response()),
        Ok(Some(valid)) => valid,
        Err(reason) => {
            let refused = Refusal::new(reason).with_status(StatusCode::BAD_REQUEST);
            let page = SearchPage {
                error: Some(refused.message.clone()),
                ..page
            };
            return Ok(refused.form_again(render(&page)?));
        }
    };
    let results = state.search.run(&user, &valid).await?;
    let page = page.with_results(results, &valid, &params, state.search.max_scored_pages());
    Ok(render(&page)?.into_response())
}

/// The parameters as given, and the search they ask for: none for the blank form, or why
/// it is refused.
fn checked(
    params: Result<Query<SearchParams>, QueryRejection>,
) -> (SearchParams, Result<Option<ValidSearch>, String>) {
    match params {
        Err(rejection) => (SearchParams::default(), Err(rejection.body_text())),
        Ok(Query(params)) if params.is_blank() => (params, Ok(None)),
        Ok(Query(params)) => {
            let valid = params.validate().map(Some);
            (params, valid.map_err(|reason| reason.to_string()))
        }
    }
}

impl SearchPage {
    /// The page showing one page of `results`, with links to the pages around it.
    fn with_results(
        mut self,
        results: SearchResults,
        valid: &ValidSearch,
        params: &SearchParams,
        max_scored: i64,
    ) -> Self {
        let first = (valid.page - 1) * valid.per_page;
        let shown = results.documents.len() as i64;
        self.searched = true;
        self.summary = summary(&results, valid, first, max_scored);
        let link_to = |number: i64| {
            let mut params = params.clone();
            params.page = Some(number);
            let query = serde_urlencoded::to_string(&params).unwrap_or_default();
            format!("/search?{query}")
        };
        self.newer_link = (valid.page > 1).then(|| link_to(valid.page - 1));
        self.older_link =
            (first + shown < results.total_documents).then(|| link_to(valid.page + 1));
        self.results = results
            .documents
            .into_iter()
            .map(|found| SearchResultRow::new(found, &valid.query.text))
            .collect();
        self
    }
}

/// How many documents match, and which of them are shown.
fn summary(results: &SearchResults, valid: &ValidSearch, first: i64, max_scored: i64) -> String {
    let shown = results.documents.len() as i64;
    match (results.total_documents, shown) {
        (_, 0) if valid.query.is_empty() => {
            "Only common words (such as “the” or “and”) were typed: add a more specific word."
                .into()
        }
        (0, _) | (_, 0) => "No document matches.".into(),
        (total, _) if !results.total_is_exact => format!(
            "At least {total} documents match: the words are on so many pages that the \
             newest {} matching pages were ranked; {}–{} shown. Add a word to narrow it.",
            max_scored,
            first + 1,
            first + shown
        ),
        (1, _) => "1 document matches.".into(),
        (total, _) => format!(
            "{total} documents match; {}–{} shown.",
            first + 1,
            first + shown
        ),
    }
}
