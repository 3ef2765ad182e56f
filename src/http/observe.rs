//! One log line and two metrics per request: route, method, status, latency, request id and
//! the user it was for (when one was signed in or sent a token).

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};

/// Filled in by the authentication extractors, read once the response is ready.
#[derive(Clone, Default)]
pub struct RequestUser(Arc<OnceLock<String>>);

impl RequestUser {
    /// Records who the request was for.
    pub fn set(&self, user_id: &str) {
        let _ = self.0.set(user_id.to_owned());
    }
}

/// Middleware: times the request, counts it by route and status, and logs it.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route pattern, not the path: ids would make every document its own series.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let user = RequestUser::default();
    request.extensions_mut().insert(user.clone());
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let labels = [
        ("route", route.clone()),
        ("method", method.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("lector_http_requests_total", &labels).increment(1);
    metrics::histogram!("lector_http_request_duration_seconds", &labels).record(seconds);
    let user_id = user.0.get().map_or("", String::as_str);
    tracing::info!(
        request_id,
        method,
        route,
        status,
        latency_ms = (seconds * 1000.0 * 10.0).round() / 10.0,
        user_id,
        "request"
    );
    response
}
