//! The browser UI, against the real app, on SQLite and on Postgres.

use crate::harness::{self, Backend, TestApp, fixture};
use reqwest::multipart::{Form, Part};
use rstest::rstest;

/// GETs `url` and returns the page's HTML.
async fn html_of(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// An upload form as the page sends it: the CSRF token first, then the files.
fn form_with(app: &TestApp, files: &[&str]) -> Form {
    let mut form = Form::new().text("csrf_token", app.user.csrf.clone());
    for name in files {
        form = form.part(
            "file",
            Part::bytes(std::fs::read(fixture(name)).unwrap()).file_name(name.to_string()),
        );
    }
    form.text("password", "")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_index_offers_an_upload_form_that_works_without_javascript(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let page = app.client.clone().get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/documents" enctype="multipart/form-data">"#)
    );
    assert!(html.contains(r#"name="file" type="file""#) && html.contains("multiple"));
    assert!(html.contains(r#"<label for="file">"#));
    assert!(html.contains("Nothing uploaded yet."));
    let htmx = app
        .client
        .clone()
        .get(app.url("/static/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(htmx.status(), 200);
    assert!(
        htmx.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn uploading_one_pdf_redirects_to_its_page_which_shows_progress_then_every_page(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let browser = app.client.clone();
    let response = browser
        .post(app.url("/documents"))
        .multipart(form_with(&app, &["three_pages.pdf"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/documents/"), "{location}");
    let id = location.trim_start_matches("/documents/").to_owned();

    let html = html_of(&browser, app.url(&location)).await;
    assert!(
        html.contains("three_pages.pdf was uploaded."),
        "flash message shown once"
    );
    assert!(html.contains(&format!(
        r#"sse-connect="/documents/{id}/events" sse-close="done" data-poll="/documents/{id}/progress""#
    )));
    assert!(html.contains("0 of 3 pages"));
    let again = html_of(&browser, app.url(&location)).await;
    assert!(
        !again.contains("was uploaded."),
        "the flash message is gone"
    );

    app.drain_jobs().await;
    let progress = browser
        .get(app.url(&format!("/documents/{id}/progress")))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        progress.headers()["hx-refresh"],
        "true",
        "htmx reloads the page once done"
    );
    let fragment = progress.text().await.unwrap();
    assert!(
        !fragment.contains("sse-swap"),
        "the finished box is not swapped again"
    );
    let html = html_of(&browser, app.url(&location)).await;
    for n in 1..=3 {
        assert!(
            html.contains(&format!(r#"id="page-{n}""#)),
            "anchor for page {n}"
        );
    }
    assert!(html.contains("zebras and quartz watches"));
    assert!(html.contains(&format!(r#"href="/documents/{id}/original.pdf""#)));
    assert!(html.contains(&format!(r#"href="/documents/{id}/text.txt""#)));
    assert!(html.contains(&format!(r#"action="/documents/{id}/reprocess""#)));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_text_download_is_named_after_the_pdf_with_a_form_feed_between_pages(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    let browser = app.client.clone();
    let text = browser
        .get(app.url(&format!("/documents/{id}/text.txt")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        text.headers()["content-disposition"],
        "attachment; filename=\"three_pages.txt\"; filename*=UTF-8''three%5Fpages%2Etxt"
    );
    assert_eq!(text.text().await.unwrap().matches('\x0c').count(), 2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn uploading_several_pdfs_redirects_to_the_index_which_lists_them(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let browser = app.client.clone();
    let response = browser
        .post(app.url("/documents"))
        .multipart(form_with(&app, &["one_page.pdf", "twelve_pages.pdf"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let html = html_of(&browser, app.url("/")).await;
    assert!(html.contains("2 files were uploaded."));
    assert!(html.contains("one_page.pdf") && html.contains("twelve_pages.pdf"));
    assert!(
        html.contains(r#"hx-trigger="every 2s""#),
        "unfinished rows refresh themselves"
    );
    assert!(
        html.find("twelve_pages.pdf").unwrap() < html.find("one_page.pdf").unwrap(),
        "newest first"
    );
    app.drain_jobs().await;
    let html = html_of(&browser, app.url("/")).await;
    assert!(
        !html.contains("hx-trigger"),
        "finished rows stop refreshing"
    );
    assert!(html.contains(">done<"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_bad_file_shows_the_form_again_with_the_message_and_status_422(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app
        .client
        .clone()
        .post(app.url("/documents"))
        .multipart(form_with(&app, &["not_a_pdf.pdf"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"id="file-errors""#));
    assert!(
        html.contains("not_a_pdf.pdf: this file is not a PDF"),
        "{html}"
    );
    assert!(html.contains(r#"aria-invalid="true""#));

    let response = app
        .client
        .clone()
        .post(app.url("/documents"))
        .multipart(form_with(&app, &["user_password.pdf"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("this PDF is password-protected")
    );

    let response = app
        .client
        .clone()
        .post(app.url("/documents"))
        .multipart(
            Form::new()
                .text("csrf_token", app.user.csrf.clone())
                .text("password", ""),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("choose a PDF file to upload")
    );
    assert_eq!(app.db.count("documents").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_password_given_in_the_form_opens_an_encrypted_pdf(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let form = Form::new()
        .text("csrf_token", app.user.csrf.clone())
        .part(
            "file",
            Part::bytes(std::fs::read(fixture("user_password.pdf")).unwrap())
                .file_name("secret.pdf"),
        )
        .text("password", "open-sesame");
    let response = app
        .client
        .clone()
        .post(app.url("/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    app.drain_jobs().await;
    let location = response.headers()["location"].to_str().unwrap();
    let html = html_of(&app.client.clone(), app.url(location)).await;
    assert!(html.contains("the quick brown fox"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn text_from_a_pdf_and_file_names_are_shown_escaped(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let form = Form::new().text("csrf_token", app.user.csrf.clone()).part(
        "file",
        Part::bytes(std::fs::read(fixture("script_text.pdf")).unwrap())
            .file_name("<img src=x onerror=alert(2)>.pdf"),
    );
    let response = app
        .client
        .clone()
        .post(app.url("/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    app.drain_jobs().await;
    let location = response.headers()["location"].to_str().unwrap();
    let html = html_of(&app.client.clone(), app.url(location)).await;
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"));
    assert!(!html.contains("<img src=x"));
    let index = html_of(&app.client.clone(), app.url("/")).await;
    assert!(!index.contains("<img src=x"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_asks_for_confirmation_then_removes_the_document(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    let browser = app.client.clone();
    let confirm = browser
        .get(app.url(&format!("/documents/{id}/delete")))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    let html = confirm.text().await.unwrap();
    assert!(html.contains("Delete one_page.pdf?"));
    assert!(html.contains(&format!(
        r#"<form method="post" action="/documents/{id}/delete">"#
    )));
    let deleted = browser
        .post(app.url(&format!("/documents/{id}/delete")))
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()["location"], "/");
    let index = html_of(&browser, app.url("/")).await;
    assert!(index.contains("one_page.pdf was deleted."));
    assert_eq!(app.db.count("documents").await, 0);
    let gone = browser
        .get(app.url(&format!("/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(
        gone.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn reprocess_and_cancel_buttons_redirect_back_with_a_message(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let browser = app.client.clone();
    let cancelled = browser
        .post(app.url(&format!("/documents/{id}/cancel")))
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 303);
    let html = html_of(&browser, app.url(&format!("/documents/{id}"))).await;
    assert!(html.contains("Cancelled."));
    assert!(html.contains(">cancelled<"));
    let requeued = browser
        .post(app.url(&format!("/documents/{id}/reprocess")))
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(requeued.status(), 303);
    app.drain_jobs().await;
    let html = html_of(&browser, app.url(&format!("/documents/{id}"))).await;
    assert!(html.contains("three_pages.pdf was queued again."));
    assert!(html.contains("xylophone"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_index_is_paginated_fifty_a_page(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let bytes = std::fs::read(fixture("one_page.pdf")).unwrap();
    for n in 0..51 {
        let response = app
            .upload_bytes(
                harness::distinct_copy(&bytes, n),
                &format!("doc-{n:02}.pdf"),
                None,
            )
            .await;
        assert_eq!(response.status(), 202);
    }
    let first = html_of(&app.client.clone(), app.url("/")).await;
    assert!(first.contains("Page 1 of 2"));
    assert!(first.contains("doc-50.pdf") && !first.contains("doc-00.pdf"));
    let second = html_of(&app.client.clone(), app.url("/?page=2")).await;
    assert!(second.contains("doc-00.pdf") && !second.contains("doc-50.pdf"));
}

/// Opens the document's event stream as `client`.
async fn open_events(client: &reqwest::Client, app: &TestApp, id: &str) -> reqwest::Response {
    client
        .get(app.url(&format!("/documents/{id}/events")))
        .send()
        .await
        .unwrap()
}

/// Reads a Server-Sent Events response to its end (bounded), as text.
async fn read_stream(mut response: reqwest::Response, limit: std::time::Duration) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the stream did not end; so far:\n{text}"))
            .unwrap();
        match chunk {
            Some(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            None => return text,
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn the_document_page_follows_progress_over_server_sent_events(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_POLL_INTERVAL_MS", "50")]).await else {
        return;
    };
    let id = app.upload_ok("three_pages.pdf").await;
    let response = open_events(&app.client, &app, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.headers()["x-accel-buffering"],
        "no",
        "nginx must pass events on at once"
    );
    let reader = tokio::spawn(read_stream(response, std::time::Duration::from_secs(60)));
    // Let the stream send the queued state first, then extract.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.drain_jobs().await;
    let stream = reader.await.unwrap();
    assert!(stream.contains("retry: 2000"), "{stream}");
    assert!(
        stream.contains("0 of 3 pages"),
        "the state it started in: {stream}"
    );
    let last = stream.rfind("event: progress").unwrap();
    assert!(stream[last..].contains("3 of 3 pages"), "{stream}");
    assert!(
        stream.trim_end().ends_with("event: done\ndata: done"),
        "ends with done: {stream}"
    );
    // Each event carries the progress box, ready to be swapped in.
    assert!(stream.contains(r#"data: <div id="progress" class="progress-box""#));

    // A finished document: one progress event and done, at once.
    let response = open_events(&app.client, &app, &id).await;
    let stream = read_stream(response, std::time::Duration::from_secs(10)).await;
    assert_eq!(stream.matches("event: progress").count(), 1, "{stream}");
    assert!(stream.contains("event: done"));

    // Not the owner: 404, no stream.
    let other = app.another_user("other@example.com").await;
    let response = open_events(&other.client, &app, &id).await;
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    let response = open_events(&app.client, &app, &id).await;
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(read_stream(response, std::time::Duration::from_secs(30)));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), app.shutdown())
        .await
        .expect("the server stopped with a stream open");
    let stream = reader.await.unwrap();
    assert!(stream.contains("0 of 1 pages"), "{stream}");
    assert!(
        !stream.contains("event: done"),
        "the document did not finish"
    );
}
