//! The browser UI: server-rendered pages (askama) with htmx fragments for live progress.
//! Every form works without JavaScript.

use axum::{
    Router,
    routing::{get, post},
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use super::AppState;
use crate::sessions::SessionBackend;

mod documents;
mod views;

/// The UI's one route table.
pub fn routes(sessions: SessionBackend) -> Router<AppState> {
    let session_layer = SessionManagerLayer::new(sessions)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(7),
        ));
    Router::new()
        .route("/", get(documents::index))
        .route("/documents", post(documents::upload))
        .route("/documents/{id}", get(documents::show))
        .route("/documents/{id}/progress", get(documents::progress))
        .route("/documents/{id}/row", get(documents::row))
        .route("/documents/{id}/original.pdf", get(documents::original))
        .route("/documents/{id}/text.txt", get(documents::text))
        .route("/documents/{id}/reprocess", post(documents::reprocess))
        .route("/documents/{id}/cancel", post(documents::cancel))
        .route(
            "/documents/{id}/delete",
            get(documents::confirm_delete).post(documents::delete),
        )
        .layer(session_layer)
}
