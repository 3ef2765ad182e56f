//! Originals on S3 and the Textract engine, through the real AWS SDK clients pointed at local
//! stand-ins (`harness::aws`), on SQLite and on Postgres.

use std::{future::ready, time::Duration};

use crate::harness::{
    self, Backend, MotoSqs, TestApp,
    aws::{BUCKET, Standins},
    eventually, fixture,
};
use rstest::rstest;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

fn sha256_of(name: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(fixture(name)).unwrap()))
}

async fn pages(app: &TestApp, id: &str) -> Vec<Value> {
    let (_, body) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
    body["pages"].as_array().unwrap().clone()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn with_the_s3_blob_store_originals_live_on_s3_and_come_back_and_go(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_BLOB_STORE", "s3")])).await
    else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let key = format!("originals/{}.pdf", sha256_of("three_pages.pdf"));
    let original = std::fs::read(fixture("three_pages.pdf")).unwrap();
    assert_eq!(aws.s3.object_bytes(&key), Some(original.clone()));
    assert_eq!(
        app.db.count("document_blobs").await,
        0,
        "the bytes are not in the database"
    );

    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    assert!(
        pages(&app, &id).await[2]["text"]
            .as_str()
            .unwrap()
            .contains("xylophone")
    );
    let file = app
        .client
        .get(app.url(&format!("/api/v1/documents/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.bytes().await.unwrap().to_vec(), original);

    let refused = app.upload_fixture("not_a_pdf.pdf", None).await;
    assert_eq!(refused.status(), 415);
    assert_eq!(
        aws.s3.object_keys(),
        vec![key.clone()],
        "a refused upload puts nothing on S3"
    );

    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(
        !aws.s3.object_exists(&key),
        "deleting the document deletes its original"
    );
}

/// Deleting an account deletes its originals on S3, and only its own: an original another
/// account also uploaded (the same bytes, one object) stays while that account needs it.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_an_account_deletes_its_originals_on_s3(#[case] backend: Backend) {
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_BLOB_STORE", "s3")])).await
    else {
        return;
    };
    app.upload_ok("three_pages.pdf").await;
    app.upload_ok("one_page.pdf").await;
    let eve = app.another_user("eve@example.com").await;
    let response = app.upload_fixture_as(&eve, "one_page.pdf").await;
    assert_eq!(response.status(), 202);
    let mine = format!("originals/{}.pdf", sha256_of("three_pages.pdf"));
    let shared = format!("originals/{}.pdf", sha256_of("one_page.pdf"));
    assert_eq!(aws.s3.object_keys().len(), 2);

    // Awaited, not blocking: the S3 stand-in answers on this test's runtime.
    let (ok, out, err) = harness::lector_command(&["user", "delete", "owner@example.com", "--yes"])
        .env("DATABASE_URL", &app.db.url)
        .envs(&aws.vars(&[("LECTOR_BLOB_STORE", "s3")]))
        .run_async()
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("its 2 document(s)"), "{out}");
    assert!(
        !aws.s3.object_exists(&mine),
        "the account's original is gone"
    );
    assert!(
        aws.s3.object_exists(&shared),
        "eve's copy of the same file stays"
    );
    assert_eq!(app.db.count("documents").await, 1);
}

/// An app on Textract, whose stand-in answers `IN_PROGRESS` three times and 100 blocks a
/// page, after it has read `twelve_pages.pdf`: the document's id.
async fn twelve_pages_read_by_textract(
    aws: &Standins,
    backend: Backend,
) -> Option<(TestApp, String)> {
    aws.textract.in_progress_polls(3);
    aws.textract.page_size(100);
    let app = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "textract")])).await?;
    let id = app.upload_ok("twelve_pages.pdf").await;
    assert_eq!(app.document(&id).await["engine"], "textract");
    app.drain_jobs().await;
    Some((app, id))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn textract_reads_every_page_following_next_token_and_is_started_once(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    let Some((app, id)) = twelve_pages_read_by_textract(&aws, backend).await else {
        return;
    };
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["pages_done"], 12);
    let pages = pages(&app, &id).await;
    assert_eq!(pages.len(), 12);
    assert!(
        pages[10]["text"]
            .as_str()
            .unwrap()
            .contains("This is page 11 of twelve.")
    );
    assert_eq!(pages[10]["source"], "textract");
    let confidence = pages[10]["confidence"].as_f64().unwrap();
    assert!((90.0..=100.0).contains(&confidence), "{confidence}");

    let sha = sha256_of("twelve_pages.pdf");
    let jobs = aws.textract.started_jobs();
    assert_eq!(jobs.len(), 1);
    let (token, tag, bucket, name) = &jobs[0];
    assert_eq!(token.as_deref(), Some(&sha[..64]));
    assert_eq!(tag.as_deref(), Some(id.as_str()));
    assert_eq!(
        (bucket.as_str(), name.as_str()),
        (BUCKET, format!("originals/{sha}.pdf").as_str())
    );
    assert!(
        aws.textract.get_calls() > 4,
        "polled, then read several result pages"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn textract_pages_and_their_cost_show_in_metrics_and_on_the_document_page(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    let Some((app, id)) = twelve_pages_read_by_textract(&aws, backend).await else {
        return;
    };
    let metrics = app.get_text("/metrics").await;
    for line in [
        "lector_textract_pages 12\n",
        "lector_textract_estimated_cost_usd 0.0180\n",
        "lector_pages{source=\"textract\"} 12\n",
        "lector_documents{status=\"done\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let html = app.get_text(&format!("/documents/{id}")).await;
    assert!(
        html.contains("12 pages read by Textract · estimated cost $0.0180"),
        "{html}"
    );
    assert!(
        html.contains(">Textract 99 %<") || html.contains(">Textract 98 %<"),
        "confidence badge"
    );
}

/// An app on Textract with a monthly budget of 15 pages, which has been sent 12 pages (they
/// fit), 12 more (they do not) and 3 (they still do): the three documents' ids.
async fn a_spent_budget(aws: &Standins, backend: Backend) -> Option<(TestApp, [String; 3])> {
    let app = TestApp::spawn_with(
        backend,
        &aws.vars(&[
            ("LECTOR_ENGINE", "textract"),
            ("LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET", "15"),
        ]),
    )
    .await?;
    let first = app.upload_ok("twelve_pages.pdf").await;
    app.drain_jobs().await;
    let bytes = std::fs::read(fixture("twelve_pages.pdf")).unwrap();
    let response = app
        .upload_bytes(harness::distinct_copy(&bytes, 1), "again.pdf", None)
        .await;
    assert_eq!(response.status(), 202);
    let second = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.drain_jobs().await;
    let third = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    Some((app, [first, second, third]))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn once_the_monthly_page_budget_is_spent_documents_are_read_locally_and_say_so(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    let Some((app, [first, second, third])) = a_spent_budget(&aws, backend).await else {
        return;
    };
    assert_eq!(
        aws.textract.started_jobs().len(),
        2,
        "the second file never went to Textract"
    );
    let first_pages = pages(&app, &first).await;
    assert!(first_pages.iter().all(|p| p["source"] == "textract"));
    assert!(app.document(&first).await["note"].is_null());

    let doc = app.document(&second).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["engine"], "textract");
    let note = doc["note"].as_str().unwrap();
    assert!(
        note.contains("monthly budget of 15 pages is spent"),
        "{note}"
    );
    let second_pages = pages(&app, &second).await;
    assert_eq!(second_pages.len(), 12);
    assert!(second_pages.iter().all(|p| p["source"] == "text_layer"));
    assert!(
        second_pages[10]["text"]
            .as_str()
            .unwrap()
            .contains("This is page 11 of twelve.")
    );
    let html = app.get_text(&format!("/documents/{second}")).await;
    assert!(
        html.contains("monthly budget of 15 pages is spent"),
        "{html}"
    );
    assert!(
        pages(&app, &third)
            .await
            .iter()
            .all(|p| p["source"] == "textract")
    );
}

/// The month's Textract pages and the budget show in `/metrics`; usage outlives the
/// documents (the pages were paid for).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_month_s_textract_pages_are_counted_in_metrics_and_outlive_the_documents(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    let Some((app, [first, ..])) = a_spent_budget(&aws, backend).await else {
        return;
    };
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("lector_textract_pages_this_month 15\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lector_textract_monthly_page_budget 15\n"),
        "{metrics}"
    );
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/documents/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.store.textract_pages_this_month().await.unwrap(), 15);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn hybrid_takes_good_text_layers_locally_and_sends_only_scanned_pages_to_textract(
    #[case] backend: Backend,
) {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "hybrid")])).await
    else {
        return;
    };
    let text_only = app.upload_ok("three_pages.pdf").await;
    let mixed = app.upload_ok("mixed_text_and_scan.pdf").await;
    assert_eq!(app.document(&mixed).await["engine"], "hybrid");
    app.drain_jobs().await;

    let pages_of_text = pages(&app, &text_only).await;
    assert!(pages_of_text.iter().all(|p| p["source"] == "text_layer"));
    let doc = app.document(&mixed).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert!(doc["note"].is_null(), "{doc}");
    let mixed_pages = pages(&app, &mixed).await;
    let sources: Vec<&str> = mixed_pages
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["text_layer", "textract", "text_layer"]);
    assert!(
        mixed_pages[1]["text"]
            .as_str()
            .unwrap()
            .contains("Marmalade and porridge"),
        "{}",
        mixed_pages[1]
    );
    assert!(
        mixed_pages[2]["text"]
            .as_str()
            .unwrap()
            .contains("Mixed fixture page three")
    );

    // Only one Textract job, for a one-page PDF of the scanned page, removed once read.
    let jobs = aws.textract.started_jobs();
    assert_eq!(
        jobs.len(),
        1,
        "the text-only document never went to Textract"
    );
    let (token, tag, _, name) = &jobs[0];
    assert_eq!(tag.as_deref(), Some(mixed.as_str()));
    let mixed_sha = sha256_of("mixed_text_and_scan.pdf");
    assert_ne!(
        name,
        &format!("originals/{mixed_sha}.pdf"),
        "not the whole original"
    );
    assert_ne!(token.as_deref(), Some(mixed_sha.as_str()));
    assert!(!aws.s3.object_exists(name), "the part is deleted after use");
    assert_eq!(app.store.textract_pages_this_month().await.unwrap(), 1);
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("lector_textract_pages 1\n"), "{metrics}");
    let html = app.get_text(&format!("/documents/{mixed}")).await;
    assert!(html.contains("1 pages read by Textract"), "{html}");
}

#[tokio::test]
async fn hybrid_reads_scanned_pages_with_local_ocr_once_the_budget_is_spent() {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(
        Backend::Sqlite,
        &aws.vars(&[
            ("LECTOR_ENGINE", "hybrid"),
            ("LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET", "0"),
        ]),
    )
    .await
    else {
        return;
    };
    let id = app.upload_ok("mixed_text_and_scan.pdf").await;
    app.drain_jobs().await;
    assert!(aws.textract.started_jobs().is_empty());
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let note = doc["note"].as_str().unwrap();
    assert!(
        note.contains("monthly budget of 0 pages is spent"),
        "{note}"
    );
    let pages = pages(&app, &id).await;
    let sources: Vec<&str> = pages
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["text_layer", "ocr", "text_layer"]);
    assert!(
        pages[1]["text"]
            .as_str()
            .unwrap()
            .contains("Marmalade and porridge")
    );
}

/// Uploads `fixture` to an app on `engine`, and stops the worker reading it (as a shutdown
/// does) once it has asked Textract twice how the job is going (the job never finishes by
/// itself); the document must be queued again. The app and the document's id.
async fn handed_back_mid_poll(
    aws: &Standins,
    backend: Backend,
    engine: &str,
    fixture: &str,
) -> Option<(TestApp, String)> {
    aws.textract.in_progress_polls(1000);
    let app = TestApp::spawn_with(
        backend,
        &aws.vars(&[
            ("LECTOR_ENGINE", engine),
            ("LECTOR_SHUTDOWN_GRACE_SECS", "0"),
        ]),
    )
    .await?;
    let id = app.upload_ok(fixture).await;
    let worker = app.worker().await;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let running = tokio::spawn(async move { worker.run_next(&stop).await.unwrap() });
    eventually(Duration::from_secs(30), || {
        ready((aws.textract.get_calls() >= 2).then_some(()))
    })
    .await
    .expect("never polled");
    shutdown.cancel();
    running.await.unwrap();
    assert_eq!(app.document(&id).await["status"], "queued");
    Some((app, id))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_job_handed_back_mid_poll_resumes_the_same_textract_job(#[case] backend: Backend) {
    let aws = Standins::start().await;
    let Some((app, id)) = handed_back_mid_poll(&aws, backend, "textract", "three_pages.pdf").await
    else {
        return;
    };

    aws.textract.finish_running_jobs();
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    assert_eq!(
        aws.textract.started_jobs().len(),
        1,
        "Textract was started once"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn partial_success_fails_only_the_pages_textract_names(#[case] backend: Backend) {
    let aws = Standins::start().await;
    aws.textract.partial_success(vec![2], "PARTIAL_PAGE_ERROR");
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "textract")])).await
    else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done");
    assert_eq!(doc["pages_failed"], 1);
    assert_eq!(doc["status_label"], "done (1 of 3 pages failed)");
    let pages = pages(&app, &id).await;
    assert_eq!(
        pages[1]["error"],
        "Textract could not read this page (PARTIAL_PAGE_ERROR)"
    );
    assert!(pages[2]["text"].as_str().unwrap().contains("xylophone"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_failed_textract_job_fails_the_document_with_its_status_message(
    #[case] backend: Backend,
) {
    let aws = Standins::start().await;
    aws.textract.fail("Request has unsupported document format");
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "textract")])).await
    else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(
        doc["error"],
        "Textract failed: Request has unsupported document format"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn throttling_is_retried_with_backoff_until_textract_answers(#[case] backend: Backend) {
    let aws = Standins::start().await;
    // More than the SDK's own three tries: Lector's backoff has to carry it.
    aws.textract
        .throttle_next(4, "ProvisionedThroughputExceededException");
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "textract")])).await
    else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    assert_eq!(aws.textract.throttled_calls(), 4);
    assert_eq!(aws.textract.started_jobs().len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_missing_s3_object_fails_the_document_with_a_clear_reason(#[case] backend: Backend) {
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(
        backend,
        &aws.vars(&[("LECTOR_ENGINE", "textract"), ("LECTOR_BLOB_STORE", "s3")]),
    )
    .await
    else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    std::fs::remove_file(
        aws.s3
            .object_path(&format!("originals/{}.pdf", sha256_of("one_page.pdf"))),
    )
    .unwrap();
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "failed");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("could not be read from S3"),
        "{doc}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn password_protected_pdfs_are_refused_for_textract_at_upload(#[case] backend: Backend) {
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[("LECTOR_ENGINE", "textract")])).await
    else {
        return;
    };
    let response = app
        .upload_fixture("user_password.pdf", Some("open-sesame"))
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "engine-limit");
    assert_eq!(
        problem["detail"],
        "Textract cannot read password-protected PDFs"
    );
    assert!(aws.s3.object_keys().is_empty());
    // An owner-password-only PDF opens without a password: Textract may have it.
    assert_eq!(
        app.upload_fixture("owner_only.pdf", None).await.status(),
        202
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn jobs_beyond_the_in_flight_cap_wait_without_losing_an_attempt(#[case] backend: Backend) {
    let aws = Standins::start().await;
    aws.textract.in_progress_polls(15);
    let Some(app) = TestApp::spawn_with(
        backend,
        &aws.vars(&[
            ("LECTOR_ENGINE", "textract"),
            ("LECTOR_TEXTRACT_MAX_IN_FLIGHT", "1"),
        ]),
    )
    .await
    else {
        return;
    };
    let first = app.upload_ok("one_page.pdf").await;
    let second = app.upload_ok("three_pages.pdf").await;
    let worker = app.worker().await;
    let running =
        tokio::spawn(async move { worker.run_next(&CancellationToken::new()).await.unwrap() });
    eventually(Duration::from_secs(20), || {
        ready((!aws.textract.started_jobs().is_empty()).then_some(()))
    })
    .await
    .expect("never started");
    // A second worker finds the only slot taken: the other document goes back to the queue.
    let other = app.worker().await;
    assert!(other.run_next(&CancellationToken::new()).await.unwrap());
    let waiting = app.document(&second).await;
    assert_eq!(waiting["status"], "queued");
    assert!(
        waiting["started_at"].is_null(),
        "waiting for a slot is not processing: {waiting}"
    );
    assert_eq!(aws.textract.started_jobs().len(), 1);
    running.await.unwrap();
    app.drain_jobs().await;
    for id in [&first, &second] {
        assert_eq!(app.document(id).await["status"], "done");
    }
    assert_eq!(aws.textract.max_concurrent_jobs_in_progress(), 1);
    assert_eq!(
        app.db.count("jobs where attempts <> 1").await,
        0,
        "waiting did not count as an attempt"
    );
}

#[tokio::test]
async fn starting_with_the_bucket_in_another_region_is_refused_with_the_reason() {
    let aws = Standins::start().await;
    let Some(db) = harness::TestDatabase::new(Backend::Sqlite).await else {
        return;
    };
    let mut vars = aws.vars(&[("LECTOR_ENGINE", "textract")]);
    vars.retain(|(name, _)| *name != "AWS_REGION");
    vars.push(("AWS_REGION", "eu-west-1"));
    let config = harness::test_config(&db.url, &vars);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = lector::startup::run(config, listener, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is in us-east-1 but Lector calls AWS in eu-west-1"),
        "{error}"
    );
    assert!(
        error.contains("S3 and Textract must be in the same region"),
        "{error}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn with_completion_notices_workers_wait_for_the_sqs_message_instead_of_polling(
    #[case] backend: Backend,
) {
    let Some(sqs) = MotoSqs::start_or_skip().await else {
        return;
    };
    let aws = Standins::start().await;
    aws.textract.in_progress_polls(1000);
    aws.textract
        .deliver_notices_to(sqs.client().await, &sqs.queue_url);
    let vars = aws.vars(&[
        ("LECTOR_ENGINE", "textract"),
        ("LECTOR_WORKERS", "1"),
        ("LECTOR_POLL_INTERVAL_MS", "50"),
        (
            "LECTOR_TEXTRACT_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:000000000000:AmazonTextract-lector",
        ),
        (
            "LECTOR_TEXTRACT_SNS_ROLE_ARN",
            "arn:aws:iam::000000000000:role/lector-textract",
        ),
        ("LECTOR_TEXTRACT_SQS_QUEUE_URL", sqs.queue_url.as_str()),
        ("AWS_ENDPOINT_URL_SQS", sqs.endpoint.as_str()),
    ]);
    let Some(app) = TestApp::spawn_with(backend, &vars).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let doc = app.wait_until_finished(&id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert!(
        pages(&app, &id).await[2]["text"]
            .as_str()
            .unwrap()
            .contains("xylophone")
    );
    assert_eq!(aws.textract.notices_sent(), 1);
    // Without the notice the job would have answered IN_PROGRESS 1,000 times: Textract was
    // asked once for the state, then for the results.
    assert!(
        aws.textract.get_calls() <= 3,
        "{} Get calls",
        aws.textract.get_calls()
    );
    assert_eq!(app.db.count("textract_completions").await, 1);
    app.shutdown().await;
}

/// Settings of a process with a worker, polling every `poll_ms`, that takes PDFs put under
/// `inbox/` from the S3 events on moto's queue.
fn ingesting<'a>(aws: &'a Standins, sqs: &'a MotoSqs, poll_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    aws.vars(&[
        ("LECTOR_WORKERS", "1"),
        ("LECTOR_POLL_INTERVAL_MS", poll_ms),
        ("LECTOR_INGEST_SQS_QUEUE_URL", sqs.queue_url.as_str()),
        ("LECTOR_INGEST_S3_PREFIX", "inbox/"),
        ("AWS_ENDPOINT_URL_SQS", sqs.endpoint.as_str()),
    ])
}

/// Puts each (key, bytes) in the stand-in's bucket through the S3 API.
async fn put_objects<const N: usize>(aws: &Standins, objects: [(&str, Vec<u8>); N]) {
    let s3 = aws.s3.client().await;
    for (key, bytes) in objects {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    }
}

/// The notice S3 sends for objects created at `keys` (URL-encoded, as S3 writes them).
fn s3_event(keys: &[&str]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| {
            serde_json::json!({"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}})
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_pdf_arriving_on_s3_becomes_one_document_even_when_its_event_comes_twice(
    #[case] backend: Backend,
) {
    let Some(sqs) = MotoSqs::start_or_skip().await else {
        return;
    };
    let aws = Standins::start().await;
    let fixture_bytes = |name| std::fs::read(fixture(name)).unwrap();
    put_objects(
        &aws,
        [
            (
                "inbox/Quarterly Report.pdf",
                fixture_bytes("three_pages.pdf"),
            ),
            ("inbox/notes.txt", b"not a pdf".to_vec()),
            ("inbox/fake.pdf", fixture_bytes("not_a_pdf.pdf")),
            ("elsewhere/other.pdf", fixture_bytes("one_page.pdf")),
        ],
    )
    .await;
    let event = s3_event(&[
        "inbox/Quarterly+Report.pdf",
        "inbox/notes.txt",
        "inbox/fake.pdf",
        "elsewhere/other.pdf",
    ]);
    for _ in 0..2 {
        sqs.send(&event).await;
    }
    let Some(app) = TestApp::spawn_with(backend, &ingesting(&aws, &sqs, "50")).await else {
        return;
    };
    // Both deliveries are handled (and deleted) once the queue is empty.
    let sqs = &sqs;
    eventually(Duration::from_secs(60), || async move {
        (sqs.messages_left().await == 0).then_some(())
    })
    .await
    .expect("events were not consumed");
    let (_, list) = app.get_json("/api/v1/documents").await;
    let documents = list["documents"].as_array().unwrap();
    assert_eq!(
        documents.len(),
        1,
        "one document for two deliveries: {list}"
    );
    assert_eq!(documents[0]["file_name"], "Quarterly Report.pdf");
    let id = documents[0]["id"].as_str().unwrap();
    let doc = app.wait_until_finished(id, Duration::from_secs(60)).await;
    assert_eq!(doc["status"], "done");
    assert!(
        pages(&app, id).await[1]["text"]
            .as_str()
            .unwrap()
            .contains("zebras")
    );
    app.shutdown().await;
}

/// `lector worker` consumes S3 events too: the document it queues wakes its own workers at
/// once. With a ten-minute poll, a worker that only polled would never read it in time.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_pdf_ingested_by_a_workers_only_process_is_read_without_waiting_for_the_poll(
    #[case] backend: Backend,
) {
    let Some(sqs) = MotoSqs::start_or_skip().await else {
        return;
    };
    let aws = Standins::start().await;
    // The web side has no workers and no consumer: it holds the account and answers the API.
    let Some(app) = TestApp::spawn_with(backend, &aws.vars(&[])).await else {
        return;
    };
    // Queued before the worker process starts, so its first look finds it; once it is done
    // the worker is idle, waiting for a wake-up or the poll.
    let first = app.upload_ok("one_page.pdf").await;
    let worker_config = harness::test_config(&app.db.url, &ingesting(&aws, &sqs, "600000"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(lector::startup::run_workers_only(
        worker_config,
        async move {
            let _ = stopped.await;
        },
    ));
    let done = app
        .wait_until_finished(&first, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "done");

    aws.s3.put_object_file(
        "inbox/report.pdf",
        &std::fs::read(fixture("three_pages.pdf")).unwrap(),
    );
    sqs.send(&s3_event(&["inbox/report.pdf"])).await;
    let web = &app;
    let ingested = eventually(Duration::from_secs(60), move || async move {
        let (_, list) = web.get_json("/api/v1/documents").await;
        list["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|document| document["file_name"] == "report.pdf")
            .map(|document| document["id"].as_str().unwrap().to_string())
    })
    .await
    .expect("the S3 event became a document");
    let read = app
        .wait_until_finished(&ingested, Duration::from_secs(60))
        .await;
    assert_eq!(
        read["status"], "done",
        "read without waiting for the poll: {read}"
    );
    assert!(
        pages(&app, &ingested).await[2]["text"]
            .as_str()
            .unwrap()
            .contains("xylophone")
    );
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn a_hybrid_job_handed_back_mid_poll_resumes_its_textract_job_with_the_page_map() {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let aws = Standins::start().await;
    let Some((app, id)) =
        handed_back_mid_poll(&aws, Backend::Sqlite, "hybrid", "mixed_text_and_scan.pdf").await
    else {
        return;
    };
    let kept = app
        .db
        .query_text(&format!(
            "select external_id from jobs where document_id = '{id}'"
        ))
        .await
        .unwrap();
    assert!(
        kept.ends_with("@2"),
        "the job row keeps the page map: {kept}"
    );

    aws.textract.finish_running_jobs();
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    assert_eq!(
        aws.textract.started_jobs().len(),
        1,
        "Textract was started once"
    );
    let sources: Vec<String> = pages(&app, &id)
        .await
        .iter()
        .map(|p| p["source"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sources, ["text_layer", "textract", "text_layer"]);
}

#[tokio::test]
async fn readiness_asks_textract_once_a_minute_and_says_when_it_does_not_answer() {
    let aws = Standins::start().await;
    let Some(app) = TestApp::spawn_with(
        Backend::Sqlite,
        &aws.vars(&[("LECTOR_ENGINE", "textract"), ("LECTOR_BLOB_STORE", "s3")]),
    )
    .await
    else {
        return;
    };
    for _ in 0..3 {
        let (status, ready) = app.get_json("/readyz").await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["checks"]["textract"]["ok"], true, "{ready}");
        assert_eq!(ready["checks"]["blob_store"]["detail"], "s3://lector-test");
    }
    assert_eq!(
        aws.textract.get_calls(),
        1,
        "the answer stands for a minute: readiness polls do not spend the jobs' Get quota"
    );
    assert_eq!(aws.textract.start_calls(), 0);

    // Nothing listens on the port Textract is said to be at.
    let closed_endpoint = format!("http://127.0.0.1:{}", harness::free_port());
    let mut vars = aws.vars(&[("LECTOR_ENGINE", "hybrid"), ("LECTOR_BLOB_STORE", "s3")]);
    vars.retain(|(name, _)| *name != "AWS_ENDPOINT_URL_TEXTRACT");
    vars.push(("AWS_ENDPOINT_URL_TEXTRACT", closed_endpoint.as_str()));
    let Some(unreachable) = TestApp::spawn_with(Backend::Sqlite, &vars).await else {
        return;
    };
    let (status, ready) = unreachable.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not ready");
    assert_eq!(ready["checks"]["textract"]["ok"], false);
    let detail = ready["checks"]["textract"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("Textract: "), "{detail}");
    assert!(detail.contains("Connection refused"), "{detail}");
}
