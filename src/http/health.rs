//! Liveness (`/healthz`: the process answers, no I/O, for the load balancer) and readiness
//! (`/readyz`: everything a request needs is there, with what is wrong in words; 503 if not).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::AppState;

/// `/healthz`: the process is up.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: the readiness report; 503 when a part is not ready.
pub async fn ready(State(state): State<AppState>) -> Response {
    let report = state.status.readiness().await;
    let status = match report.is_ready() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(report)).into_response()
}
