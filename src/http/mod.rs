//! The HTTP layer: the browser UI ([`web`]), the JSON API ([`api`]), and what they share:
//! state, errors, upload streaming, downloads and middleware.

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    app::{
        App, accounts::Accounts, documents::Documents, search::Search, status::Status,
        webhooks::Webhooks,
    },
    config::Config,
};

pub mod api;
pub mod auth;
pub mod csrf;
mod downloads;
mod error;
mod extract;
mod health;
mod limits;
mod links;
mod metrics;
mod observe;
mod refusal;
pub mod server;
mod upload;
pub mod web;

pub use error::{AppError, HtmlError};
pub use extract::HtmlForm;
pub use limits::RateLimits;
pub use refusal::{Refusal, RefusedOr};

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The document use cases.
    pub documents: Documents,
    /// The account use cases.
    pub accounts: Accounts,
    /// Search over an account's documents.
    pub search: Search,
    /// The webhook use cases.
    pub webhooks: Webhooks,
    /// Readiness and the figures behind `/metrics`.
    pub status: Status,
    /// Log-in and upload rate limits.
    pub limits: Arc<RateLimits>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Cancelled when the server starts shutting down: long-lived responses (event
    /// streams) end so that the graceful shutdown does not wait for them.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The state over these use cases, with fresh rate limiters.
    pub fn new(app: App, config: Arc<Config>) -> Self {
        AppState {
            documents: app.documents,
            accounts: app.accounts,
            search: app.search,
            webhooks: app.webhooks,
            status: app.status,
            limits: Arc::new(RateLimits::new(&config.rate_limits)),
            config,
            stopping: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Ends event streams when `stopping` is cancelled.
    pub fn with_stopping(mut self, stopping: tokio_util::sync::CancellationToken) -> Self {
        self.stopping = stopping;
        self
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// No script but our own files, no inline script or style, no framing, no plugins; forms
/// only post back here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The whole application's routes and middleware.
pub fn router(state: AppState, sessions: crate::sessions::SessionBackend) -> Router {
    let https = state.config.is_https();
    let router = Router::new()
        .merge(web::routes(state.clone(), sessions))
        .nest("/api/v1", api::routes())
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/htmx-ext-sse.js", get(htmx_sse))
        .route("/static/live.js", get(live_js))
        .route("/static/app.css", get(css))
        // Upload size is enforced per file while streaming (413 as soon as it is passed).
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            server::BodyReading {
                pause_timeout: state.config.http.body_timeout,
                // The largest body a browser upload may send, and room for its framing.
                drain_limit: (state.config.max_upload_bytes)
                    .saturating_mul(state.config.max_files_per_upload as u64)
                    .saturating_add(1024 * 1024),
            },
            server::bound_body_pauses,
        ))
        .layer(CatchPanicLayer::new())
        // Outside the panic catcher, so a request that panicked is counted as the 500 it became.
        .layer(axum::middleware::from_fn(observe::observe))
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
            // The request line itself is logged by `observe`, with the user and the route.
            .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(header_layer(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header_layer(header::REFERRER_POLICY, "same-origin"))
        .layer(header_layer(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ));
    let router = if https {
        router.layer(header_layer(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        router
    };
    // Behind a load balancer that also listens on port 80, plain-http visitors are sent to
    // the https address before anything (a log-in form, a cookie) crosses the wire in clear.
    let router = match (&state.config.public_url, state.config.trusted_proxy_hops) {
        (Some(public_url), hops) if https && hops > 0 => {
            let public_url: Arc<str> = public_url.as_str().into();
            router.layer(axum::middleware::from_fn(
                move |request: Request, next: axum::middleware::Next| {
                    let public_url = public_url.clone();
                    async move { to_https(&public_url, request, next).await }
                },
            ))
        }
        _ => router,
    };
    router.with_state(state)
}

/// A request the proxy received over plain http (`X-Forwarded-Proto: http`) is redirected to
/// the same path at `public_url` (308 keeps the method).
async fn to_https(public_url: &str, request: Request, next: axum::middleware::Next) -> Response {
    let plain = request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("http"));
    if !plain {
        return next.run(request).await;
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    Redirect::permanent(&format!("{public_url}{path}")).into_response()
}

/// Sets `name` on every response that does not set it itself (errors and panics included).
fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
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

async fn htmx_sse() -> impl IntoResponse {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/htmx-ext-sse.js"),
    )
}

async fn live_js() -> impl IntoResponse {
    static_asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/live.js"),
    )
}

async fn css() -> impl IntoResponse {
    static_asset(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}
