//! `/metrics` in the Prometheus text format. From the database (the same on every instance):
//! documents by status, stored pages by engine, jobs by state, the queue's age, and what
//! Textract has cost so far. From this process (the `metrics` recorder): requests and their
//! latency by route and status, pages extracted by engine, extraction seconds, Textract calls
//! and throttles, documents failed. With `LECTOR_METRICS_TOKEN` it needs that bearer token.

use std::fmt::Write;

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::IntoResponse,
};
use secrecy::ExposeSecret;

use super::{AppError, AppState};
use crate::app::status::Figures;

/// Renders the current figures, read from the database (so every instance reports the same).
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    if let Some(expected) = &state.config.metrics_token {
        let sent = super::auth::bearer_token(&headers)?;
        if !super::csrf::matches(sent.as_bytes(), expected.expose_secret()) {
            return Err(AppError::Unauthorized { invalid: true });
        }
    }
    let mut out = render(&state.status.figures().await?);
    out.push_str(&crate::telemetry::prometheus().render());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

/// The database's figures in the Prometheus text format.
fn render(figures: &Figures) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: &[(String, i64)], label: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (value, count) in rows {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
        }
    };
    gauge(
        "lector_documents",
        "Documents by status.",
        &figures.documents_by_status,
        "status",
    );
    gauge(
        "lector_pages",
        "Stored pages by the engine that produced them.",
        &figures.pages_by_source,
        "source",
    );
    let jobs = [
        ("queued".to_owned(), figures.queue.queued),
        ("running".to_owned(), figures.queue.running),
    ];
    gauge("lector_jobs", "Extraction jobs by state.", &jobs, "state");
    let Figures {
        queue_age_seconds: queue_age,
        textract_pages,
        textract_estimated_cost_usd: cost,
        textract_pages_this_month: sent_this_month,
        ..
    } = figures;
    let _ = writeln!(
        out,
        "# HELP lector_queue_age_seconds How long the longest-waiting due job has waited.\n\
         # TYPE lector_queue_age_seconds gauge\nlector_queue_age_seconds {queue_age:.3}"
    );
    let _ = writeln!(
        out,
        "# HELP lector_textract_pages Pages read by Textract.\n# TYPE lector_textract_pages gauge\n\
         lector_textract_pages {textract_pages}\n\
         # HELP lector_textract_estimated_cost_usd Estimated Textract cost at LECTOR_TEXTRACT_PRICE_PER_1000_PAGES.\n\
         # TYPE lector_textract_estimated_cost_usd gauge\nlector_textract_estimated_cost_usd {cost:.4}\n\
         # HELP lector_textract_pages_this_month Pages sent to Textract this calendar month (UTC).\n\
         # TYPE lector_textract_pages_this_month gauge\nlector_textract_pages_this_month {sent_this_month}"
    );
    if let Some(budget) = figures.textract_monthly_page_budget {
        let _ = writeln!(
            out,
            "# HELP lector_textract_monthly_page_budget LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET.\n\
             # TYPE lector_textract_monthly_page_budget gauge\nlector_textract_monthly_page_budget {budget}"
        );
    }
    out
}
