//! OCR of scanned pages through the real app, on SQLite and on Postgres: the per-page
//! decision, languages, re-processing with other settings, and the guard rails.
//!
//! Needs Tesseract with English and German (`.ci/run` installs them).

use crate::harness::{self, Backend, TestApp, collapse_whitespace, fixture};
use reqwest::multipart::{Form, Part};
use rstest::rstest;
use serde_json::{Value, json};

/// Uploads a fixture with extra multipart fields (OCR mode, languages).
async fn upload_with(app: &TestApp, name: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    for (key, value) in fields {
        form = form.text(key.to_string(), value.to_string());
    }
    app.client
        .post(app.url("/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn pages_of(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
    assert_eq!(status, 200);
    body["pages"].as_array().unwrap().clone()
}

fn sources(pages: &[Value]) -> Vec<&str> {
    pages
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect()
}

fn text(page: &Value) -> String {
    collapse_whitespace(page["text"].as_str().unwrap())
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_scanned_pdf_is_read_by_ocr_page_by_page(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("scanned_two_pages.pdf").await;
    let doc = app.document(&id).await;
    assert_eq!(doc["ocr"], json!({"mode": "auto", "languages": "eng"}));
    app.drain_jobs().await;

    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["pages_failed"], 0, "{doc}");
    let pages = pages_of(&app, &id).await;
    assert_eq!(sources(&pages), ["ocr", "ocr"]);
    assert_eq!(
        text(&pages[0]),
        "Scanned fixture page one. The lighthouse keeper counted seventeen ships before dawn."
    );
    assert_eq!(
        text(&pages[1]),
        "Scanned fixture page two. Marmalade and porridge were served at half past seven."
    );
    for page in &pages {
        assert_eq!(page["dpi"], 300, "{page}");
        assert_eq!(page["ocr_reason"], "no text layer", "{page}");
        assert!(page["confidence"].as_f64().unwrap() >= 80.0, "{page}");
        assert!(page["extraction_ms"].as_i64().unwrap() > 0, "{page}");
    }
    // The text download and the document page carry the OCR'd text and its badge.
    let all = app.get_text(&format!("/api/v1/documents/{id}/text")).await;
    assert!(all.contains("lighthouse keeper") && all.contains("Marmalade"));
    let html = app.get_text(&format!("/documents/{id}")).await;
    assert!(
        html.contains(">OCR 9"),
        "the page shows an OCR badge: {html}"
    );
    assert!(html.contains("no text layer, 300 dpi"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_mixed_pdf_gets_text_layer_and_ocr_pages_in_order(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("mixed_text_and_scan.pdf").await;
    app.drain_jobs().await;
    let pages = pages_of(&app, &id).await;
    assert_eq!(sources(&pages), ["text_layer", "ocr", "text_layer"]);
    assert!(text(&pages[0]).starts_with("Mixed fixture page one has a text layer."));
    assert_eq!(
        text(&pages[1]),
        "Scanned fixture page two. Marmalade and porridge were served at half past seven."
    );
    assert!(text(&pages[2]).starts_with("Mixed fixture page three has a text layer."));
    assert!(pages[0]["confidence"].is_null() && pages[0]["dpi"].is_null());
}

#[tokio::test]
async fn a_text_pdf_in_auto_mode_never_goes_through_ocr() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let id = app.upload_ok("twelve_pages.pdf").await;
    app.drain_jobs().await;
    let pages = pages_of(&app, &id).await;
    assert_eq!(pages.len(), 12);
    assert!(sources(&pages).iter().all(|s| *s == "text_layer"));
    assert!(pages.iter().all(|p| p["ocr_reason"].is_null()));
}

#[tokio::test]
async fn force_ocrs_every_page_and_off_never_does() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let forced = upload_with(&app, "three_pages.pdf", &[("ocr", "force")]).await;
    assert_eq!(forced.status(), 202);
    let forced: Value = forced.json().await.unwrap();
    assert_eq!(forced["ocr"]["mode"], "force");
    let off = upload_with(&app, "scanned_two_pages.pdf", &[("ocr", "off")]).await;
    assert_eq!(off.status(), 202);
    let off: Value = off.json().await.unwrap();
    app.drain_jobs().await;

    let pages = pages_of(&app, forced["id"].as_str().unwrap()).await;
    assert_eq!(sources(&pages), ["ocr", "ocr", "ocr"]);
    assert_eq!(pages[0]["ocr_reason"], "OCR forced");
    // OCR of a clean rendering reads what the text layer says.
    assert!(
        text(&pages[0]).contains("the quick brown fox jumps over the lazy dog"),
        "{}",
        text(&pages[0])
    );

    let pages = pages_of(&app, off["id"].as_str().unwrap()).await;
    assert_eq!(sources(&pages), ["text_layer", "text_layer"]);
    assert!(
        pages
            .iter()
            .all(|p| p["text"] == "" && p["error"].is_null())
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_ocr_language_is_chosen_per_upload_and_checked(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let refused = upload_with(&app, "scanned_german.pdf", &[("ocr_languages", "eng+xyz")]).await;
    assert_eq!(refused.status(), 422);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "invalid-ocr-settings");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("xyz is not installed"), "{detail}");
    assert!(detail.contains("deu") && detail.contains("eng"), "{detail}");
    let bad_mode = upload_with(&app, "scanned_german.pdf", &[("ocr", "always")]).await;
    assert_eq!(bad_mode.status(), 422);
    assert_eq!(
        app.db.count("documents").await,
        0,
        "a refused upload leaves no row"
    );

    let german = upload_with(&app, "scanned_german.pdf", &[("ocr_languages", "deu")]).await;
    assert_eq!(german.status(), 202);
    let german: Value = german.json().await.unwrap();
    assert_eq!(german["ocr"]["languages"], "deu");
    app.drain_jobs().await;
    let pages = pages_of(&app, german["id"].as_str().unwrap()).await;
    let read = text(&pages[0]);
    for word in ["Grüße", "Köln", "Straße", "Bäckerei", "früh", "Brötchen"] {
        assert!(read.contains(word), "{word} in {read}");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn reprocessing_with_other_ocr_settings_reads_the_pages_again(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("scanned_german.pdf").await;
    app.drain_jobs().await;
    let english = text(&pages_of(&app, &id).await[0]);
    assert!(
        !english.contains("Grüße"),
        "English OCR has no ß: {english}"
    );

    let bad = app
        .client
        .post(app.url(&format!("/api/v1/documents/{id}/reprocess")))
        .json(&json!({"ocr_languages": "klingon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["code"], "invalid-ocr-settings");
    assert_eq!(
        app.document(&id).await["status"],
        "done",
        "nothing was re-queued"
    );

    let requeued = app
        .client
        .post(app.url(&format!("/api/v1/documents/{id}/reprocess")))
        .json(&json!({"ocr_languages": "deu", "ocr": "force"}))
        .send()
        .await
        .unwrap();
    assert_eq!(requeued.status(), 202);
    let doc: Value = requeued.json().await.unwrap();
    assert_eq!(doc["ocr"], json!({"mode": "force", "languages": "deu"}));
    app.drain_jobs().await;
    let pages = pages_of(&app, &id).await;
    assert_eq!(pages[0]["ocr_reason"], "OCR forced");
    assert!(
        text(&pages[0]).contains("Grüße aus Köln"),
        "{}",
        text(&pages[0])
    );
}

/// An upload form with `scanned_two_pages.pdf` and `field`, as the index page sends it.
fn scanned_form(field: (&str, &str)) -> Form {
    let bytes = std::fs::read(fixture("scanned_two_pages.pdf")).unwrap();
    Form::new()
        .part(
            "file",
            Part::bytes(bytes).file_name("scanned_two_pages.pdf"),
        )
        .text(field.0.to_owned(), field.1.to_owned())
}

#[tokio::test]
async fn the_upload_form_offers_ocr_settings_and_shows_a_missing_language_in_place() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let index = app.get_text("/").await;
    assert!(index.contains(r#"name="ocr""#) && index.contains(r#"name="ocr_languages""#));
    let installed = index.split("(installed: ").nth(1).unwrap_or_default();
    assert!(
        installed.contains("deu") && installed.contains("eng"),
        "{index}"
    );

    // A language that is not installed: the form again, with the reason, and no document.
    let refused = app
        .web_post("/documents")
        .multipart(scanned_form(("ocr_languages", "xyz")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("xyz is not installed"), "{html}");
    assert_eq!(app.db.count("documents").await, 0);
}

#[tokio::test]
async fn the_document_page_reprocesses_with_other_ocr_settings_and_shows_mistakes_in_place() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let stored = app
        .web_post("/documents")
        .multipart(scanned_form(("ocr", "off")))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 303);
    let location = stored.headers()["location"].to_str().unwrap().to_owned();
    let id = location.trim_start_matches("/documents/").to_owned();
    app.drain_jobs().await;
    assert_eq!(
        sources(&pages_of(&app, &id).await),
        ["text_layer", "text_layer"]
    );

    // Re-process from the document page with OCR switched on.
    let bad = app
        .web_post(&format!("/documents/{id}/reprocess"))
        .form(&[("ocr", "sometimes"), ("ocr_languages", "eng")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let html = bad.text().await.unwrap();
    assert!(html.contains("must be auto, off or force"), "{html}");
    assert!(html.contains(r#"id="reprocess-error""#));
    let requeued = app
        .web_post(&format!("/documents/{id}/reprocess"))
        .form(&[("ocr", "auto"), ("ocr_languages", "eng")])
        .send()
        .await
        .unwrap();
    assert_eq!(requeued.status(), 303);
    app.drain_jobs().await;
    let pages = pages_of(&app, &id).await;
    assert_eq!(sources(&pages), ["ocr", "ocr"]);
    let html = app.get_text(&location).await;
    assert!(html.contains("lighthouse keeper"));
    assert!(html.contains("OCR auto (eng)"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_page_over_the_ocr_time_limit_fails_alone(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_OCR_PAGE_TIMEOUT_SECS", "0")]).await
    else {
        return;
    };
    let id = app.upload_ok("mixed_text_and_scan.pdf").await;
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["pages_failed"], 1, "{doc}");
    let pages = pages_of(&app, &id).await;
    assert_eq!(pages.len(), 3);
    assert!(pages[0]["error"].is_null() && pages[2]["error"].is_null());
    assert!(text(&pages[2]).starts_with("Mixed fixture page three"));
    let reason = pages[1]["error"].as_str().unwrap();
    assert!(reason.contains("time limit per page"), "{reason}");
    let job_attempts = app
        .db
        .query_i64(&format!(
            "select cast(attempts as bigint) from jobs where document_id = '{id}'"
        ))
        .await;
    assert_eq!(
        job_attempts, 1,
        "a failed page does not cost the document an attempt"
    );
}

#[tokio::test]
async fn a_page_that_crashes_the_ocr_fails_alone_and_the_rest_completes() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    // Room to parse the PDF, not to load Tesseract's model: the OCR child dies on each
    // scanned page, and a fresh child goes on with the pages after it.
    let Some(app) =
        TestApp::spawn_with(Backend::Sqlite, &[("LECTOR_SANDBOX_MEMORY_MB", "160")]).await
    else {
        return;
    };
    let id = app.upload_ok("mixed_text_and_scan.pdf").await;
    app.drain_jobs().await;
    let doc = app.document(&id).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let pages = pages_of(&app, &id).await;
    assert_eq!(pages.len(), 3);
    assert!(text(&pages[0]).starts_with("Mixed fixture page one"));
    assert!(text(&pages[2]).starts_with("Mixed fixture page three"));
    let reason = pages[1]["error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("OCR of this page failed"),
        "page 2 says why: {}",
        pages[1]
    );
    eprintln!("page 2: {reason}");
}

/// Runs the `lector` binary with `args` and extra environment; returns (success, stdout,
/// stderr).
fn lector(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    harness::lector_command(args)
        .env_remove("LECTOR_OCR")
        .env_remove("LECTOR_OCR_LANGUAGES")
        .envs(env)
        .run()
}

#[test]
fn lector_extract_ocrs_scanned_pages_on_the_command_line() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let mixed = fixture("mixed_text_and_scan.pdf");
    let (ok, out, err) = lector(&["extract", "--json", mixed.to_str().unwrap()], &[]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let pages = json["pages"].as_array().unwrap();
    assert_eq!(sources(pages), ["text_layer", "ocr", "text_layer"]);
    assert_eq!(pages[1]["dpi"], 300);

    let scanned = fixture("scanned_two_pages.pdf");
    let (ok, out, _) = lector(&["extract", scanned.to_str().unwrap()], &[]);
    assert!(ok);
    let pages: Vec<&str> = out.split('\x0c').collect();
    assert_eq!(pages.len(), 2, "pages are separated by form feeds: {out:?}");
    assert!(pages[0].contains("lighthouse keeper") && pages[1].contains("Marmalade"));

    let (ok, out, _) = lector(&["extract", "--ocr", "off", scanned.to_str().unwrap()], &[]);
    assert!(ok);
    assert!(out.trim().is_empty(), "no text without OCR: {out:?}");

    let (ok, _, err) = lector(
        &[
            "extract",
            "--ocr-languages",
            "xyz",
            scanned.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("xyz is not installed"), "{err}");
    let (ok, _, err) = lector(
        &["extract", "--ocr", "always", scanned.to_str().unwrap()],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("must be auto, off or force"), "{err}");
}

#[test]
fn lector_render_writes_the_image_ocr_reads() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("page.pgm");
    let scanned = fixture("scanned_two_pages.pdf");
    let (ok, stdout, err) = lector(
        &[
            "render",
            scanned.to_str().unwrap(),
            "--page",
            "2",
            "--dpi",
            "150",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("at 150 dpi"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    // A5 (419.5 × 595.3 pt) at 150 dpi, one grey byte per pixel after the header.
    let header = b"P5\n874 1240\n255\n";
    assert!(bytes.starts_with(header), "{:?}", &bytes[..20]);
    assert_eq!(bytes.len(), header.len() + 874 * 1240);
    assert!(
        bytes[header.len()..].iter().any(|&p| p < 100),
        "the page has ink"
    );

    let (ok, _, err) = lector(
        &[
            "render",
            scanned.to_str().unwrap(),
            "--page",
            "9",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("no page 9"), "{err}");
}

#[test]
fn lector_doctor_reports_the_ocr_languages_and_refuses_missing_ones() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let (ok, _, err) = lector(&["migrate"], &[("DATABASE_URL", url.as_str())]);
    assert!(ok, "{err}");
    let (ok, out, err) = lector(&["doctor"], &[("DATABASE_URL", url.as_str())]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok       database      sqlite answers"),
        "{out}"
    );
    assert!(
        out.contains("ok       ocr           auto with eng (installed: ") && out.contains("eng"),
        "{out}"
    );
    assert!(
        out.lines().all(|l| !l.contains("OCR ready")),
        "log lines go to stderr, the report alone to stdout: {out}"
    );

    let (ok, out, err) = lector(
        &["doctor"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("LECTOR_OCR_LANGUAGES", "eng+xyz"),
        ],
    );
    assert!(!ok);
    assert!(out.contains("PROBLEM  ocr") && out.contains("xyz"), "{out}");
    assert!(err.contains("1 problem found"), "{err}");
}

#[test]
fn without_tesseract_data_pages_that_need_ocr_say_so() {
    let empty = tempfile::tempdir().unwrap();
    let no_data = [("TESSDATA_PREFIX", empty.path().to_str().unwrap())];
    let mixed = fixture("mixed_text_and_scan.pdf");
    let (ok, out, err) = lector(&["extract", "--json", mixed.to_str().unwrap()], &no_data);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let pages = json["pages"].as_array().unwrap();
    assert!(
        text(&pages[0]).starts_with("Mixed fixture page one"),
        "text pages still read"
    );
    let error = pages[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("OCR unavailable: install tesseract-ocr (sudo apt-get install"),
        "{error}"
    );
    assert_eq!(pages[1]["ocr_reason"], "no text layer");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let mut env = no_data.to_vec();
    env.push(("DATABASE_URL", url.as_str()));
    let (ok, out, _) = lector(&["doctor"], &env);
    assert!(!ok, "doctor reports the problem");
    assert!(
        out.contains("OCR unavailable: install tesseract-ocr"),
        "{out}"
    );
}

#[test]
fn without_tesseract_s_library_pages_that_need_ocr_say_how_to_install_it() {
    // As on a machine without Tesseract: the one library named is not there.
    let no_library = [("LECTOR_TESSERACT_LIBRARY", "/nonexistent/libtesseract.so.5")];
    let mixed = fixture("mixed_text_and_scan.pdf");
    let (ok, out, err) = lector(&["extract", "--json", mixed.to_str().unwrap()], &no_library);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let pages = json["pages"].as_array().unwrap();
    assert!(text(&pages[0]).starts_with("Mixed fixture page one"));
    let error = pages[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "OCR unavailable: install tesseract-ocr (sudo apt-get install tesseract-ocr \
             tesseract-ocr-eng, or name the library in LECTOR_TESSERACT_LIBRARY): could not \
             open /nonexistent/libtesseract.so.5"
        ),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let mut env = no_library.to_vec();
    env.push(("DATABASE_URL", url.as_str()));
    let (ok, out, _) = lector(&["doctor"], &env);
    assert!(!ok, "doctor reports the problem: {out}");
    assert!(
        out.contains("PROBLEM  ocr") && out.contains("sudo apt-get install tesseract-ocr"),
        "{out}"
    );
    // With another engine, Tesseract is not needed and the doctor says so without a problem.
    env.push(("LECTOR_OCR", "off"));
    let (_, out, _) = lector(&["doctor"], &env);
    assert!(
        out.contains("ocr") && !out.contains("PROBLEM  ocr"),
        "{out}"
    );
}

#[test]
fn the_doctor_names_the_tesseract_it_runs() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let (_, out, _) = lector(&["doctor"], &[("DATABASE_URL", url.as_str())]);
    let line = out
        .lines()
        .find(|l| l.contains(" ocr "))
        .unwrap_or_default();
    assert!(
        line.contains("Tesseract 5.") && line.contains("libtesseract"),
        "{out}"
    );
}

#[tokio::test]
async fn the_server_refuses_to_start_with_an_ocr_language_that_is_not_installed() {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(db) = harness::TestDatabase::new(Backend::Sqlite).await else {
        return;
    };
    let config = harness::test_config(&db.url, &[("LECTOR_OCR_LANGUAGES", "eng+xyz")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = lector::startup::run(config, listener, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("LECTOR_OCR_LANGUAGES"), "{error}");
    assert!(error.contains("xyz is not installed"), "{error}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn free_cores_read_one_document_s_pages_in_parallel_each_page_once(#[case] backend: Backend) {
    if !crate::harness::tesseract_with(&["eng", "deu"]) {
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let uploaded = upload_with(&app, "three_pages.pdf", &[("ocr", "force")]).await;
    assert_eq!(uploaded.status(), 202);
    let id = uploaded.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A sandbox that keeps each child's request, then runs the real one.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("sandbox");
    harness::write_script(
        &wrapper,
        &format!(
            "tee \"{}/request-$$.json\" | exec {} \"$@\"",
            dir.path().display(),
            env!("CARGO_BIN_EXE_lector")
        ),
    );
    let worker = app
        .worker_with(harness::test_config(
            &app.db.url,
            &[("LECTOR_SANDBOX_EXE", wrapper.to_str().unwrap())],
        ))
        .await;
    assert!(
        worker
            .run_next(&tokio_util::sync::CancellationToken::new())
            .await
            .unwrap()
    );

    assert_eq!(app.document(&id).await["status"], "done");
    let pages = pages_of(&app, &id).await;
    assert_eq!(sources(&pages), ["ocr", "ocr", "ocr"]);
    for (page, words) in pages.iter().zip(["quick brown fox", "zebras", "xylophone"]) {
        assert!(text(page).contains(words), "{}", text(page));
    }
    // One child per free core (at most one per page), each reading its own share.
    let mut shares = pages_each_child_read(dir.path());
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(shares.len(), cores.min(3), "{shares:?}");
    shares.sort();
    let mut read = shares.concat();
    read.sort_unstable();
    assert_eq!(read, [1, 2, 3], "{shares:?}");
}

/// The pages each sandbox child was asked to read, from the requests the wrapper kept in
/// `dir` (each names the pages to skip).
fn pages_each_child_read(dir: &std::path::Path) -> Vec<Vec<u64>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap() != "sandbox")
        .map(|path| {
            let request: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let skip: Vec<u64> = request["skip"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect();
            (1..=3).filter(|n| !skip.contains(n)).collect()
        })
        .collect()
}
