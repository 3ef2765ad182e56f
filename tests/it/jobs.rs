//! The job queue and the sandbox, in process: retries, time limits, crashes, memory limits,
//! resuming, cancelling and handing jobs back on shutdown. Both backends.

use std::{path::PathBuf, time::Duration};

use crate::harness::{self, Backend, TestApp, test_config};
use lector::jobs::Worker;
use rstest::rstest;
use tokio_util::sync::CancellationToken;

/// A stand-in for the sandbox executable that behaves badly in a given way.
fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    harness::write_script(&path, body);
    path
}

/// A worker over `app`'s database whose parser never answers (its sandbox executable
/// sleeps), with `vars`; and the folder its script is in, to keep while it runs.
async fn hanging_worker(app: &TestApp, vars: &[(&str, &str)]) -> (Worker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hang = script(&dir, "hang", "exec sleep 600");
    let mut all = vec![("LECTOR_SANDBOX_EXE", hang.to_str().unwrap())];
    all.extend_from_slice(vars);
    (app.worker_with(config_with(app, &all)).await, dir)
}

fn config_with(app: &TestApp, vars: &[(&str, &str)]) -> lector::config::Config {
    test_config(&app.db.url, vars)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn workers_started_with_the_app_extract_uploads_in_the_background(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[("LECTOR_WORKERS", "2"), ("LECTOR_POLL_INTERVAL_MS", "50")],
    )
    .await
    else {
        return;
    };
    let a = app.upload_ok("twelve_pages.pdf").await;
    let b = app.upload_ok("three_pages.pdf").await;
    for id in [&a, &b] {
        let doc = app.wait_until_finished(id, Duration::from_secs(60)).await;
        assert_eq!(doc["status"], "done", "{doc}");
    }
    let (_, pages) = app.get_json(&format!("/api/v1/documents/{a}/pages")).await;
    let pages = pages["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 12);
    assert!(
        pages[10]["text"]
            .as_str()
            .unwrap()
            .contains("This is page 11 of twelve.")
    );
    app.shutdown().await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_attempt_that_fails_outside_the_document_is_retried_then_the_document_fails(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_JOB_MAX_ATTEMPTS", "2")]).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    // A worker whose parser cannot even be started: an infrastructure failure.
    let broken = app
        .worker_with(config_with(
            &app,
            &[
                ("LECTOR_SANDBOX_EXE", "/nonexistent/lector"),
                ("LECTOR_JOB_MAX_ATTEMPTS", "2"),
            ],
        ))
        .await;
    let never = CancellationToken::new();
    assert!(broken.run_next(&never).await.unwrap());
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "queued", "retried: {doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("attempt 1 failed, will retry"),
        "{doc}"
    );
    assert!(broken.run_next(&never).await.unwrap());
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{doc}"
    );
    assert!(
        !broken.run_next(&never).await.unwrap(),
        "nothing left to claim"
    );
    // The original is kept: re-processing with a working parser succeeds.
    app.post(&format!("/api/v1/documents/{id}/reprocess")).await;
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_parser_that_hangs_is_killed_at_the_time_limit_and_the_document_fails(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let (worker, _dir) = hanging_worker(
        &app,
        &[
            ("LECTOR_EXTRACT_TIMEOUT_BASE_SECS", "1"),
            ("LECTOR_EXTRACT_TIMEOUT_PER_PAGE_MS", "0"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    assert!(worker.run_next(&CancellationToken::new()).await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(30));
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(
        doc["error"],
        "gave up after 1s (the time limit for this document)"
    );
}

#[rstest]
#[tokio::test]
async fn a_parser_that_crashes_fails_only_its_document_with_a_reason(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
    #[values(
        ("kill -SEGV $$", "the PDF parser crashed on this file (segmentation fault)"),
        ("echo \"thread 'main' panicked at src/x.rs:1:1:\" >&2; echo 'index out of bounds' >&2; exit 101", "the PDF parser crashed on this file (index out of bounds)"),
        ("echo 'memory allocation of 123 bytes failed' >&2; kill -ABRT $$", "the PDF parser ran out of memory on this file"),
        ("echo 'not json'", "the PDF parser sent an unreadable answer")
    )]
    behaviour: (&str, &str),
) {
    let (body, reason) = behaviour;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let dir = tempfile::tempdir().unwrap();
    let crash = script(&dir, "crash", &format!("cat > /dev/null\n{body}"));
    let worker = app
        .worker_with(config_with(
            &app,
            &[("LECTOR_SANDBOX_EXE", crash.to_str().unwrap())],
        ))
        .await;
    assert!(worker.run_next(&CancellationToken::new()).await.unwrap());
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert!(doc["error"].as_str().unwrap().starts_with(reason), "{doc}");
    // The app is unharmed and a good document still goes through.
    let good = app.upload_ok("one_page.pdf").await;
    app.drain_jobs().await;
    assert_eq!(app.document(&good).await["status"], "done");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_real_parser_is_held_to_its_memory_limit(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // One page whose content stream inflates to 96 MiB: more than the allocator holds in
    // reserve at start-up, so the limit set after start-up must refuse it.
    let id = app.upload_ok("inflates_to_96_mib.pdf").await;
    let worker = app
        .worker_with(config_with(&app, &[("LECTOR_SANDBOX_MEMORY_MB", "64")]))
        .await;
    assert!(worker.run_next(&CancellationToken::new()).await.unwrap());
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    assert_eq!(
        doc["error"],
        "the PDF parser ran out of memory on this file"
    );
    // The same file within the default limit is read: it was the limit, not the file.
    let again = app.post(&format!("/api/v1/documents/{id}/reprocess")).await;
    assert_eq!(again.status(), 202);
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_and_resumes_after_the_stored_pages(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_JOB_LEASE_SECS", "1")]).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    // A worker claimed the job, stored page 1 and died: its lease is in the past.
    app.db
        .execute(&format!(
            "insert into pages (document_id, page_number, text, source, char_count, extraction_ms) \
         values ('{id}', 1, 'stored before the crash', 'text_layer', 23, 1)"
        ))
        .await;
    app.db.execute("update jobs set status = 'running', attempts = 1, locked_by = 'dead-worker', locked_until = '2000-01-01 00:00:00'").await;
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let (_, pages) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
    let pages = pages["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[0]["text"], "stored before the crash",
        "page 1 was not extracted again"
    );
    assert!(pages[1]["text"].as_str().unwrap().contains("zebras"));
    assert_eq!(app.db.count("pages").await, 3);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn cancelling_a_running_document_stops_its_worker(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_JOB_LEASE_SECS", "3")]).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let (worker, _dir) = hanging_worker(&app, &[("LECTOR_JOB_LEASE_SECS", "3")]).await;
    let running =
        tokio::spawn(async move { worker.run_next(&CancellationToken::new()).await.unwrap() });
    app.wait_for_status(&id, "processing", Duration::from_secs(20))
        .await;
    let response = app.post(&format!("/api/v1/documents/{id}/cancel")).await;
    assert_eq!(response.status(), 200);
    // The heartbeat (every second with a 3 s lease) notices and the worker stops.
    let ran = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("worker stopped")
        .unwrap();
    assert!(ran);
    assert_eq!(app.document(&id).await["status"], "cancelled");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn on_shutdown_a_running_job_is_handed_back_to_the_queue(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let (worker, _dir) = hanging_worker(&app, &[("LECTOR_SHUTDOWN_GRACE_SECS", "0")]).await;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let running = tokio::spawn(async move { worker.run_next(&token).await.unwrap() });
    app.wait_for_status(&id, "processing", Duration::from_secs(20))
        .await;
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .unwrap()
            .unwrap()
    );
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "queued", "{doc}");
    // Handing back does not count as an attempt, and a healthy worker then finishes it.
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn shares_of_one_document_store_their_pages_at_the_same_time(#[case] backend: Backend) {
    // What the shares of a document read on several cores do: write pages under the same
    // job from two connections at once. On SQLite a writer that had to wait was once refused
    // with "database is locked" instead of waiting (transactions now take the write lock as
    // they begin).
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WORKERS", "0")]).await else {
        return;
    };
    let pages: Vec<Vec<String>> = (1..=200).map(|n| vec![format!("page {n}")]).collect();
    let id = {
        let response = app
            .upload_bytes(harness::aws::text_pdf(&pages), "long.pdf", None)
            .await;
        assert_eq!(response.status(), 202);
        response.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let job = app
        .store
        .claim_job("worker", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let share = |first: i32| {
        let store = app.store.clone();
        let job = job.clone();
        async move {
            for number in (first..=200).step_by(2) {
                let page = lector::storage::NewPage {
                    number,
                    text: format!("the words of page {number}"),
                    source: lector::domain::PageSource::TextLayer,
                    extraction_ms: 1,
                    error: None,
                    confidence: None,
                    dpi: None,
                    ocr_reason: None,
                };
                assert!(store.insert_pages(&job, "worker", &[page]).await.unwrap());
            }
        }
    };
    futures_util::future::join(share(1), share(2)).await;
    let stored = app.store.stored_page_numbers(&id.into()).await.unwrap();
    assert_eq!(stored, (1..=200).collect::<Vec<i32>>());
}
