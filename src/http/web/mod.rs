//! The browser UI: server-rendered pages (askama) with htmx fragments for live progress.
//! Every form works without JavaScript. Every page but log-in and sign-up needs a signed-in
//! user, and every state-changing form carries the session's CSRF token.

use askama::Template;
use axum::{
    Router,
    http::StatusCode,
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use super::{AppError, AppState, HtmlError, csrf};
use crate::sessions::SessionBackend;

mod account;
mod accounts;
mod documents;
mod live;
mod search;
mod tokens;
mod views;
mod webhooks;

pub use views::Nav;

/// The UI's one route table. `secure_cookies` when served over https.
pub fn routes(state: AppState, sessions: SessionBackend) -> Router<AppState> {
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("lector_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.is_https())
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(7),
        ));
    Router::new()
        .route("/", get(documents::index))
        .route("/login", get(accounts::login_page).post(accounts::login))
        .route("/signup", get(accounts::signup_page).post(accounts::signup))
        .route("/logout", post(accounts::logout))
        .route("/account", get(account::page))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/end", post(account::end_sessions))
        .route(
            "/account/delete",
            get(account::confirm_delete).post(account::delete),
        )
        .route(
            "/reset/{token}",
            get(account::reset_page).post(account::reset),
        )
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/search", get(search::page))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::show))
        .route("/webhooks/{id}/ping", post(webhooks::ping))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route("/documents", post(documents::upload))
        .route("/documents/{id}", get(documents::show))
        .route("/documents/{id}/progress", get(documents::progress))
        .route("/documents/{id}/events", get(live::events))
        .route("/documents/{id}/row", get(documents::row))
        .route("/documents/{id}/original.pdf", get(documents::original))
        .route("/documents/{id}/text.txt", get(documents::text))
        .route("/documents/{id}/reprocess", post(documents::reprocess))
        .route("/documents/{id}/cancel", post(documents::cancel))
        .route(
            "/documents/{id}/delete",
            get(documents::confirm_delete).post(documents::delete),
        )
        // Inside the session layer: the check reads the token from the session.
        .layer(middleware::from_fn_with_state(state, csrf::protect))
        .layer(session_layer)
}

/// A page that shows a secret once: 201, and kept by no cache.
fn shown_once(page: Html<String>) -> Response {
    let no_store = [(axum::http::header::CACHE_CONTROL, "no-store")];
    (StatusCode::CREATED, no_store, page).into_response()
}

fn render(template: &impl Template) -> Result<Html<String>, HtmlError> {
    template
        .render()
        .map(Html)
        .map_err(|e| HtmlError(AppError::Internal(e.into())))
}
