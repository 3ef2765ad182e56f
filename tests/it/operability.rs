//! What operators watch: `/metrics` (database gauges and this process's counters and
//! histograms), optionally behind a token.

use crate::harness::{Backend, TestApp};
use rstest::rstest;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn metrics_count_requests_by_route_pages_by_engine_and_extraction_time(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    let _ = app.get_text(&format!("/documents/{id}")).await;
    let metrics = app.get_text("/metrics").await;
    for expected in [
        r#"lector_documents{status="done"} 1"#,
        r#"lector_pages{source="text_layer"} 3"#,
        "lector_queue_age_seconds 0",
        "# TYPE lector_http_requests_total counter",
        r#"route="/api/v1/documents",method="POST",status="202""#,
        r#"route="/documents/{id}",method="GET",status="200""#,
        "lector_http_request_duration_seconds_bucket{",
        "lector_pages_extracted_total{source=\"text_layer\"}",
        "lector_extraction_seconds_bucket{outcome=\"done\"",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    // Routes, not paths: a document id never becomes a label.
    assert!(!metrics.contains(&id));
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let Some(app) =
        TestApp::spawn_with(Backend::Sqlite, &[("LECTOR_METRICS_TOKEN", "scrape-me")]).await
    else {
        return;
    };
    let anonymous = reqwest::Client::new();
    let refused = anonymous.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = anonymous
        .get(app.url("/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let scraped = anonymous
        .get(app.url("/metrics"))
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("lector_jobs"));
}
