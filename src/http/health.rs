//! Liveness (`/healthz`: the process answers, no I/O, for the load balancer) and readiness
//! (`/readyz`: everything a request needs is there, with what is wrong in words; 503 if not).

use std::{collections::BTreeMap, future::Future, time::Duration};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::domain::{Engine, ocr::OcrMode};

/// A readiness check that has not answered by then counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one answer from Textract stands for the next ones (its Get quota is shared with
/// the jobs).
const TEXTRACT_PROBE_MAX_AGE: Duration = Duration::from_secs(60);

/// One line of the readiness report.
#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    detail: String,
}

impl Check {
    fn ok(detail: impl Into<String>) -> Self {
        Check {
            ok: true,
            detail: detail.into(),
        }
    }

    fn failed(detail: impl Into<String>) -> Self {
        Check {
            ok: false,
            detail: detail.into(),
        }
    }
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error:#}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// `/healthz`: the process is up.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `/readyz`: database reachable and migrated, blob store reachable, engines available
/// (Tesseract for the local engine, Textract answering for the others).
pub async fn ready(State(state): State<AppState>) -> Response {
    let store = state.store();
    let mut checks = BTreeMap::new();
    checks.insert(
        "database",
        match within("the database", store.ping()).await {
            Ok(()) => Check::ok(store.backend()),
            Err(reason) => Check::failed(reason),
        },
    );
    checks.insert(
        "migrations",
        match within("reading the migrations", store.pending_migrations()).await {
            Ok(0) => Check::ok("all applied"),
            Ok(n) => Check::failed(format!("{n} not applied: run `lector migrate`")),
            Err(reason) => Check::failed(reason),
        },
    );
    checks.insert(
        "blob_store",
        match state.documents.blobs().s3() {
            None => Check::ok("database"),
            Some(s3) => match within("the S3 bucket", s3.check_region()).await {
                Ok(()) => Check::ok(format!("s3://{}", s3.bucket())),
                Err(reason) => Check::failed(reason),
            },
        },
    );
    if state.config.engine.uses_textract() {
        checks.insert(
            "textract",
            match &state.textract {
                None => Check::failed("no LECTOR_S3_BUCKET: Textract reads originals from S3"),
                Some(textract) => {
                    match within("Textract", textract.probe_cached(TEXTRACT_PROBE_MAX_AGE)).await {
                        Ok(()) => Check::ok("answers"),
                        Err(reason) => Check::failed(reason),
                    }
                }
            },
        );
    }
    let ocr = state.documents.ocr_availability();
    // Only the local engine depends on Tesseract for scanned pages; Textract and hybrid
    // send them to AWS.
    let needs_ocr = state.config.engine == Engine::Local && state.config.ocr.mode != OcrMode::Off;
    checks.insert(
        "ocr",
        match ocr.unavailable() {
            None => Check::ok(format!("tesseract ({})", ocr.languages().join(", "))),
            Some(reason) if needs_ocr => Check::failed(reason),
            Some(reason) => Check::ok(format!("not needed by this engine ({reason})")),
        },
    );
    let ready = checks.values().all(|check| check.ok);
    let queue = store.queue_counts().await.ok();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "engine": state.config.engine.as_str(),
        "checks": checks,
        "jobs_queued": queue.as_ref().map(|q| q.queued),
        "jobs_running": queue.as_ref().map(|q| q.running),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
