//! The JSON API under `/api/v1`, with its OpenAPI document generated from these handlers.

use axum::{
    Json, Router,
    routing::{get, post},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::AppState;

mod documents;
mod schemas;
mod search;
mod views;
mod webhooks;

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Lector", description = "Multi-page PDFs to searchable text. Every call needs \
        `Authorization: Bearer <token>` (create tokens on the API tokens page); without a valid \
        one the answer is 401 with `WWW-Authenticate`. Documents of other accounts are 404."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    servers((url = "/api/v1")),
    paths(
        documents::upload,
        documents::list,
        documents::show,
        documents::pages,
        documents::text,
        documents::file,
        documents::reprocess,
        documents::cancel,
        documents::delete,
        search::search,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::ping,
    ),
    components(schemas(views::UploadBody, crate::http::error::Problem))
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the API uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API's one route table.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/documents", post(documents::upload).get(documents::list))
        .route(
            "/documents/{id}",
            get(documents::show).delete(documents::delete),
        )
        .route("/documents/{id}/pages", get(documents::pages))
        .route("/documents/{id}/text", get(documents::text))
        .route("/documents/{id}/file", get(documents::file))
        .route("/documents/{id}/reprocess", post(documents::reprocess))
        .route("/documents/{id}/cancel", post(documents::cancel))
        .route("/search", get(search::search))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::show).delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{id}/ping", post(webhooks::ping))
        .fallback(|| async { super::AppError::NotFound })
}
