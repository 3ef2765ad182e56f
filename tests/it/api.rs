//! The JSON API, against the real app, on SQLite and on Postgres.

use crate::harness::{Backend, TestApp, distinct_copy, fixture};
use rstest::rstest;
use serde_json::Value;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn uploading_a_pdf_queues_it_and_every_page_is_extracted(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.upload_fixture("three_pages.pdf", None).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/documents/{id}"));
    assert_eq!(body["status"], "queued");
    assert_eq!(body["page_count"], 3);
    assert_eq!(body["duplicate"], false);
    assert_eq!(
        body["links"]["pages"],
        format!("/api/v1/documents/{id}/pages")
    );

    app.drain_jobs().await;

    let doc = app.document(id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["pages_done"], 3);
    assert!(doc["extraction_ms"].as_i64().is_some());
    let (status, pages) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
    assert_eq!(status, 200);
    let pages = pages["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3);
    let text = |n: usize| pages[n]["text"].as_str().unwrap();
    assert!(text(0).contains("the quick brown fox jumps over the lazy dog"));
    assert!(text(1).contains("zebras and quartz watches"));
    assert!(text(2).contains("xylophone"));
    assert_eq!(pages[1]["number"], 2);
    assert_eq!(pages[1]["source"], "text_layer");
    assert_eq!(
        pages[1]["char_count"].as_i64().unwrap(),
        text(1).chars().count() as i64
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_document_s_text_is_plain_text_with_a_form_feed_between_pages(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    let text = app
        .client
        .get(app.url(&format!("/api/v1/documents/{id}/text")))
        .send()
        .await
        .unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    let text = text.text().await.unwrap();
    let parts: Vec<&str> = text.split('\x0c').collect();
    assert_eq!(
        parts.len(),
        3,
        "pages are separated by form feeds: {text:?}"
    );
    assert!(parts[2].contains("xylophone"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn uploading_the_same_bytes_again_returns_the_existing_document_with_200(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app.upload_ok("one_page.pdf").await;
    let again = app.upload_fixture("one_page.pdf", None).await;
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["id"], first.as_str());
    assert_eq!(body["duplicate"], true);
    assert_eq!(app.db.count("documents").await, 1);
    assert_eq!(app.db.count("jobs").await, 1);
}

/// One case per kind of bad upload: the fixture, its password, the status, the problem code,
/// words of the message.
const BAD_UPLOADS: &[(&str, Option<&str>, u16, &str, &str)] = &[
    ("not_a_pdf.pdf", None, 415, "not-a-pdf", "not a PDF"),
    (
        "corrupt.pdf",
        None,
        422,
        "unreadable-pdf",
        "could not be read as a PDF",
    ),
    (
        "user_password.pdf",
        None,
        422,
        "password-required",
        "password-protected",
    ),
    (
        "user_password.pdf",
        Some("wrong"),
        422,
        "wrong-password",
        "password does not open",
    ),
    (
        "user_password_rc4.pdf",
        None,
        422,
        "password-required",
        "password-protected",
    ),
];

#[rstest]
#[tokio::test]
async fn bad_uploads_are_refused_with_a_problem_and_leave_nothing_behind(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (name, password, status, code, words) in BAD_UPLOADS {
        let response = app.upload_fixture(name, *password).await;
        assert_eq!(response.status().as_u16(), *status, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{name}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], *code, "{name}: {problem}");
        assert_eq!(problem["status"], *status);
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{name}: {problem}"
        );
    }
    let empty = app.upload_bytes(Vec::new(), "empty.pdf", None).await;
    assert_eq!(empty.status(), 422);
    assert_eq!(empty.json::<Value>().await.unwrap()["code"], "empty-file");
    let no_file = app
        .client
        .post(app.url("/api/v1/documents"))
        .multipart(reqwest::multipart::Form::new().text("password", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 400);
    for table in ["documents", "document_blobs", "pages", "jobs"] {
        assert_eq!(
            app.db.count(table).await,
            0,
            "{table} after refused uploads"
        );
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_encrypted_pdf_is_extracted_with_its_password_and_owner_only_pdfs_need_none(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for name in ["user_password.pdf", "user_password_rc4.pdf"] {
        let response = app.upload_fixture(name, Some("open-sesame")).await;
        assert_eq!(response.status(), 202, "{name}");
    }
    let owner_only = app.upload_ok("owner_only.pdf").await;
    app.drain_jobs().await;
    let (_, list) = app.get_json("/api/v1/documents").await;
    for doc in list["documents"].as_array().unwrap() {
        assert_eq!(doc["status"], "done", "{doc}");
        let id = doc["id"].as_str().unwrap();
        let text = app
            .client
            .get(app.url(&format!("/api/v1/documents/{id}/text")))
            .send()
            .await
            .unwrap();
        let text = text.text().await.unwrap();
        if id == owner_only {
            assert!(text.contains("A single page about marmalade."), "{text}");
        } else {
            assert!(
                text.contains("the quick brown fox"),
                "{}: {text}",
                doc["file_name"]
            );
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_with_413(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_MAX_UPLOAD_BYTES", "4000")]).await
    else {
        return;
    };
    let response = app.upload_fixture("twelve_pages.pdf", None).await;
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("3.9 KiB"),
        "{problem}"
    );
    assert_eq!(app.db.count("documents").await, 0);
    // A file under the limit still goes through.
    assert_eq!(app.upload_fixture("one_page.pdf", None).await.status(), 202);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_pdf_with_more_pages_than_the_limit_is_refused_with_422(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_MAX_PAGES", "2")]).await else {
        return;
    };
    let response = app.upload_fixture("three_pages.pdf", None).await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "too-many-pages");
    assert_eq!(problem["detail"], "the PDF has 3 pages; the limit is 2");
    assert_eq!(app.db.count("documents").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_original_comes_back_byte_for_byte_with_a_safe_file_name(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let bytes = std::fs::read(fixture("three_pages.pdf")).unwrap();
    let response = app
        .upload_bytes(bytes.clone(), "../../etc/évil\"name.pdf", None)
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["file_name"], "évil'name.pdf");
    let file = app
        .client
        .get(app.url(body["links"]["file"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let disposition = file.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        disposition,
        "attachment; filename=\"_vil_name.pdf\"; filename*=UTF-8''%C3%A9vil%27name%2Epdf"
    );
    assert_eq!(file.bytes().await.unwrap().to_vec(), bytes);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_file_larger_than_one_storage_chunk_round_trips(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A valid PDF followed by 2.5 MiB of comment lines: three blob chunks.
    let mut bytes = std::fs::read(fixture("one_page.pdf")).unwrap();
    let filler = "% padding padding padding padding padding padding padding padding\n";
    while bytes.len() < 5 * 1024 * 1024 / 2 {
        bytes.extend_from_slice(filler.as_bytes());
    }
    let response = app.upload_bytes(bytes.clone(), "big.pdf", None).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(app.db.count("document_blobs").await, 3);
    app.drain_jobs().await;
    assert_eq!(
        app.document(body["id"].as_str().unwrap()).await["status"],
        "done"
    );
    let file = app
        .client
        .get(app.url(body["links"]["file"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(file.bytes().await.unwrap().to_vec(), bytes);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn documents_are_listed_newest_first_with_a_cursor(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let bytes = std::fs::read(fixture("one_page.pdf")).unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let response = app
            .upload_bytes(distinct_copy(&bytes, n), &format!("copy{n}.pdf"), None)
            .await;
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (status, first) = app.get_json("/api/v1/documents?limit=2").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = first["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copy2.pdf", "copy1.pdf"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get_json(&format!("/api/v1/documents?limit=2&cursor={cursor}"))
        .await;
    let rest = second["documents"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"], ids[0].as_str());
    assert!(second["next_cursor"].is_null());
    let (status, problem) = app.get_json("/api/v1/documents?limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "bad-request");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_a_document_removes_its_rows_original_and_pages(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    assert_eq!(app.db.count("pages").await, 3);
    let path = app.url(&format!("/api/v1/documents/{id}"));
    assert_eq!(app.client.delete(&path).send().await.unwrap().status(), 204);
    for table in ["documents", "document_blobs", "pages", "jobs"] {
        assert_eq!(app.db.count(table).await, 0, "{table}");
    }
    assert_eq!(app.client.delete(&path).send().await.unwrap().status(), 404);
    let missing = app.client.get(&path).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(missing.json::<Value>().await.unwrap()["code"], "not-found");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_cancelled_document_is_not_extracted_and_a_finished_one_cannot_be_cancelled(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let queued = app.upload_ok("three_pages.pdf").await;
    let response = app
        .post(&format!("/api/v1/documents/{queued}/cancel"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
    app.drain_jobs().await;
    assert_eq!(app.db.count("pages").await, 0);
    assert_eq!(app.document(&queued).await["status"], "cancelled");

    let done = app.upload_ok("one_page.pdf").await;
    app.drain_jobs().await;
    let response = app.post(&format!("/api/v1/documents/{done}/cancel")).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "conflict");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn reprocessing_clears_the_pages_and_extracts_them_again(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    let response = app.post(&format!("/api/v1/documents/{id}/reprocess")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(body["pages_done"], 0);
    assert_eq!(app.db.count("pages").await, 0);
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done");
    assert_eq!(doc["pages_done"], 3);
    // Cancelled documents can be re-processed too.
    let cancelled = app.upload_ok("one_page.pdf").await;
    app.post(&format!("/api/v1/documents/{cancelled}/cancel"))
        .await;
    app.post(&format!("/api/v1/documents/{cancelled}/reprocess"))
        .await;
    app.drain_jobs().await;
    assert_eq!(app.document(&cancelled).await["status"], "done");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_openapi_document_describes_every_route(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, spec) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/documents",
        "/documents/{id}",
        "/documents/{id}/pages",
        "/documents/{id}/text",
        "/documents/{id}/file",
        "/documents/{id}/reprocess",
        "/documents/{id}/cancel",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
    for status in ["400", "408", "413", "415", "422", "429"] {
        assert!(
            paths["/documents"]["post"]["responses"]
                .as_object()
                .unwrap()
                .contains_key(status),
            "{status}"
        );
    }
    // A route it does not describe is a problem too.
    let (status, problem) = app.get_json("/api/v1/no-such-route").await;
    assert_eq!(status, 404);
    assert_eq!(problem["code"], "not-found");
}

/// Liveness does no I/O; readiness checks the database, its migrations, the blob store and
/// OCR, and a database behind this build's migrations is not ready, and says why.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn health_and_readiness_answer_and_say_what_is_not_ready(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["checks"]["database"]["detail"],
        if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
    assert_eq!(ready["checks"]["migrations"]["ok"], true);
    assert_eq!(ready["checks"]["blob_store"]["detail"], "database");
    assert_eq!(ready["checks"]["ocr"]["ok"], true);
    // A database behind this build's migrations is not ready, and says why.
    app.db
        .execute("delete from _sqlx_migrations where version = (select max(version) from _sqlx_migrations)")
        .await;
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not ready");
    assert_eq!(
        ready["checks"]["migrations"]["detail"],
        "1 not applied: run `lector migrate`"
    );
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "liveness does no I/O");
}
