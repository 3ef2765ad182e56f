//! The HTTP layer: the browser UI ([`web`]), the JSON API ([`api`]), and what they share:
//! state, errors, upload streaming, downloads and middleware.

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{config::Config, documents::Documents, storage::Store};

pub mod api;
mod downloads;
mod error;
mod metrics;
mod upload;
pub mod web;

pub use error::{AppError, HtmlError};

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The document use cases.
    pub documents: Documents,
    /// Configuration.
    pub config: Arc<Config>,
}

impl AppState {
    /// The store, for plain reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.documents.store()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application's routes and middleware.
pub fn router(state: AppState, sessions: crate::sessions::SessionBackend) -> Router {
    Router::new()
        .merge(web::routes(sessions))
        .nest("/api/v1", api::routes())
        .route("/healthz", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/app.css", get(css))
        // Upload size is enforced per file while streaming (413 as soon as it is passed).
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let matched = request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                tracing::info_span!("request", method = %request.method(), path = %matched, request_id)
            })
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Liveness and readiness: the database answers.
async fn health(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    state.store().ping().await?;
    let queue = state.store().queue_counts().await?;
    Ok(axum::Json(serde_json::json!({
        "status": "ok",
        "database": state.store().backend(),
        "jobs_queued": queue.queued,
        "jobs_running": queue.running,
    })))
}

fn static_asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        body,
    )
}

async fn htmx() -> impl IntoResponse {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/htmx.min.js"),
    )
}

async fn css() -> impl IntoResponse {
    static_asset(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}
