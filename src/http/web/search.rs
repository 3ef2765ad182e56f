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
    app::search::SearchParams,
    http::{AppState, HtmlError, auth::CurrentUser},
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
    // A search that cannot run: the form again, filled in, with the reason.
    let refused = |page: SearchPage, reason: String| -> Result<Response, HtmlError> {
        let page = SearchPage {
            error: Some(reason),
            ..page
        };
        Ok((StatusCode::BAD_REQUEST, render(&page)?).into_response())
    };
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => {
            let page = SearchPage::new(nav, &SearchParams::default());
            return refused(page, rejection.body_text());
        }
    };
    let mut page = SearchPage::new(nav, &params);
    if params.is_blank() {
        return Ok(render(&page)?.into_response());
    }
    let valid = match params.validate() {
        Ok(valid) => valid,
        Err(reason) => return refused(page, reason.to_string()),
    };
    let max_scored = state.search.max_scored_pages();
    let results = state.search.run(&user, &valid).await?;
    let first = (valid.page - 1) * valid.per_page;
    let shown = results.documents.len() as i64;
    page.searched = true;
    page.summary = match (results.total_documents, shown) {
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
    };
    let link_to = |number: i64| {
        let mut params = params.clone();
        params.page = Some(number);
        format!(
            "/search?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    };
    page.newer_link = (valid.page > 1).then(|| link_to(valid.page - 1));
    page.older_link = (first + shown < results.total_documents).then(|| link_to(valid.page + 1));
    page.results = results
        .documents
        .into_iter()
        .map(|found| SearchResultRow::new(found, &valid.query.text))
        .collect();
    Ok(render(&page)?.into_response())
}
