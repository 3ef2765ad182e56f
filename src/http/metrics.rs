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
use crate::domain::PageSource;

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
    let store = state.store();
    let documents = store.documents_by_status().await?;
    let pages = store.pages_by_source().await?;
    let queue = store.queue_counts().await?;
    let textract_pages = pages
        .iter()
        .find(|(source, _)| source == PageSource::Textract.as_str())
        .map_or(0, |(_, n)| *n);
    let cost = estimated_cost(textract_pages, state.config.textract_price_per_1000_pages);
    let sent_this_month = store.textract_pages_this_month().await?;
    let queue_age = store.queue_age_seconds().await?;

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
        &documents,
        "status",
    );
    gauge(
        "lector_pages",
        "Stored pages by the engine that produced them.",
        &pages,
        "source",
    );
    let jobs = [
        ("queued".to_owned(), queue.queued),
        ("running".to_owned(), queue.running),
    ];
    gauge("lector_jobs", "Extraction jobs by state.", &jobs, "state");
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
    if let Some(budget) = state.config.textract_monthly_page_budget {
        let _ = writeln!(
            out,
            "# HELP lector_textract_monthly_page_budget LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET.\n\
             # TYPE lector_textract_monthly_page_budget gauge\nlector_textract_monthly_page_budget {budget}"
        );
    }
    out.push_str(&crate::telemetry::prometheus().render());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

/// USD for `pages` at `price_per_1000` per thousand pages.
pub fn estimated_cost(pages: i64, price_per_1000: f64) -> f64 {
    pages as f64 * price_per_1000 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_priced_per_thousand_pages() {
        assert!((estimated_cost(2000, 1.5) - 3.0).abs() < 1e-9);
        assert_eq!(estimated_cost(0, 1.5), 0.0);
    }
}
