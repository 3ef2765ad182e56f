//! Safe to put on the internet: accounts and sign-up policy, private documents, API tokens,
//! CSRF, security headers and rate limits, against the real app on SQLite and Postgres.

use crate::harness::{self, Backend, TEST_PASSWORD, TestApp, csrf_from, fixture, lector_command};
use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use rstest::rstest;
use serde_json::Value;

fn pdf_part(name: &str) -> Part {
    Part::bytes(std::fs::read(fixture(name)).unwrap()).file_name(name.to_owned())
}

/// GET `path` with `client` and return (status, body).
async fn get(client: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = client.get(app.url(path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn sign_up(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    let (_, page) = get(client, app, "/signup").await;
    // When sign-up is closed the page redirects: take the session's token from log-in.
    let csrf = match csrf_from(&page) {
        Some(token) => token,
        None => csrf_from(&get(client, app, "/login").await.1).unwrap(),
    };
    client
        .post(app.url("/signup"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("confirm", confirm),
        ])
        .send()
        .await
        .unwrap()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn before_the_first_account_every_page_leads_to_sign_up_with_a_lax_http_only_cookie(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_without_accounts(backend, &[]).await else {
        return;
    };
    let client = &app.client;
    let home = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/login");
    let login = client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.headers()["location"], "/signup", "no account yet");
    let signup = client.get(app.url("/signup")).send().await.unwrap();
    let cookie = signup.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
}

/// One case per mistake: the e-mail, password and confirmation typed, the status (where the
/// form says it), and words of the message.
#[rstest]
#[tokio::test]
async fn sign_up_refuses_mismatched_short_or_guessable_passwords_and_bad_e_mails(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = TestApp::spawn_without_accounts(backend, &[]).await else {
        return;
    };
    let cases: &[(&str, &str, &str, Option<u16>, &str)] = &[
        (
            "ada@example.com",
            "correct horse battery",
            "other",
            Some(422),
            "The two passwords do not match.",
        ),
        (
            "ada@example.com",
            "short",
            "short",
            Some(422),
            "at least 10 characters",
        ),
        (
            "ada@example.com",
            "password123",
            "password123",
            None,
            "too easy to guess",
        ),
        (
            "not-an-email",
            TEST_PASSWORD,
            TEST_PASSWORD,
            None,
            "Enter an e-mail address",
        ),
    ];
    for (email, password, confirm, status, words) in cases {
        let refused = sign_up(&app, &app.client, email, password, confirm).await;
        if let Some(status) = status {
            assert_eq!(refused.status(), *status, "{words}");
        }
        assert!(refused.text().await.unwrap().contains(words), "{words}");
    }
    assert_eq!(app.db.count("users").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_first_visitor_signs_up_takes_over_older_documents_and_then_sign_up_closes(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_without_accounts(backend, &[]).await else {
        return;
    };
    // A document from before accounts existed: no owner.
    app.db
        .execute(
            "insert into documents (id, file_name, sha256, size_bytes, page_count, status, engine) \
             values ('0190-old', 'before-accounts.pdf', 'abc', 10, 1, 'done', 'local')",
        )
        .await;
    let client = &app.client;
    let ok = sign_up(
        &app,
        client,
        "Ada@Example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(ok.status(), 303);
    let (status, index) = get(client, &app, "/").await;
    assert_eq!(status, 200);
    assert!(index.contains("ada@example.com"), "signed in");
    assert!(
        index.contains("before-accounts.pdf"),
        "the first account owns older documents"
    );

    // first-only: nobody else may sign up from the browser.
    let stranger = harness::browser_client();
    let page = stranger.get(app.url("/signup")).send().await.unwrap();
    assert_eq!(page.headers()["location"], "/login");
    let refused = sign_up(
        &app,
        &stranger,
        "eve@example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Sign-up is closed here")
    );
    assert_eq!(app.db.count("users").await, 1);
}

#[tokio::test]
async fn open_sign_up_refuses_a_taken_email_and_https_cookies_are_secure() {
    let Some(app) = TestApp::spawn_without_accounts(
        Backend::Sqlite,
        &[
            ("LECTOR_SIGNUP", "open"),
            ("LECTOR_PUBLIC_URL", "https://lector.example"),
        ],
    )
    .await
    else {
        return;
    };
    let first = sign_up(
        &app,
        &app.client,
        "a@example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    let hsts = app.client.get(app.url("/login")).send().await.unwrap();
    assert!(
        hsts.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let Some(open_signup) =
        TestApp::spawn_without_accounts(Backend::Sqlite, &[("LECTOR_SIGNUP", "open")]).await
    else {
        return;
    };
    sign_up(
        &open_signup,
        &open_signup.client,
        "a@example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    let again = harness::browser_client();
    let taken = sign_up(
        &open_signup,
        &again,
        "A@example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(taken.status(), 409);
    assert!(taken.text().await.unwrap().contains("already exists"));
    let other = sign_up(
        &open_signup,
        &again,
        "b@example.com",
        TEST_PASSWORD,
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(other.status(), 303, "open sign-up takes more accounts");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn log_in_checks_the_password_and_log_out_ends_the_session(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = harness::browser_client();
    let (_, page) = get(&client, &app, "/login").await;
    let csrf = csrf_from(&page).unwrap();
    let wrong = client
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "owner@example.com"),
            ("password", "not the password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The e-mail or the password is wrong.")
    );
    let unknown = client
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "nobody@example.com"),
            ("password", TEST_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("The e-mail or the password is wrong.")
    );
    let csrf = harness::log_in(&client, &app.address, "OWNER@example.com", TEST_PASSWORD).await;

    let forged = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(forged.status(), 403, "log-out needs the CSRF token too");
    let out = client
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let home = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.headers()["location"], "/login");
}

/// An app whose owner has a three-page document, extracted, and a second account, eve's.
async fn a_document_and_eve(backend: Backend) -> Option<(TestApp, String, harness::TestUser)> {
    let app = TestApp::spawn(backend).await?;
    let id = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    let eve = app.another_user("eve@example.com").await;
    Some((app, id, eve))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn another_users_documents_are_not_found_anywhere_in_the_api(#[case] backend: Backend) {
    let Some((app, id, eve)) = a_document_and_eve(backend).await else {
        return;
    };
    for path in ["", "/pages", "/text", "/file"] {
        let response = eve
            .client
            .get(app.url(&format!("/api/v1/documents/{id}{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "GET {path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "not-found");
    }
    for path in ["reprocess", "cancel"] {
        let response = eve
            .client
            .post(app.url(&format!("/api/v1/documents/{id}/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "POST {path}");
    }
    let delete = eve
        .client
        .delete(app.url(&format!("/api/v1/documents/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    let list: Value = eve
        .client
        .get(app.url("/api/v1/documents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["documents"].as_array().unwrap().len(), 0);
    assert_eq!(app.document(&id).await["status"], "done", "still there");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn another_users_documents_are_not_found_anywhere_in_the_browser(#[case] backend: Backend) {
    let Some((app, id, eve)) = a_document_and_eve(backend).await else {
        return;
    };
    for path in [
        "",
        "/text.txt",
        "/original.pdf",
        "/progress",
        "/row",
        "/delete",
    ] {
        let (status, _) = get(&eve.client, &app, &format!("/documents/{id}{path}")).await;
        assert_eq!(status, 404, "web GET {path}");
    }
    let web_delete = eve
        .client
        .post(app.url(&format!("/documents/{id}/delete")))
        .form(&[("csrf_token", eve.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(web_delete.status(), 404);
    let (_, index) = get(&eve.client, &app, "/").await;
    assert!(!index.contains("three_pages.pdf"));
    assert_eq!(app.document(&id).await["status"], "done", "still there");
}

/// The same bytes are a duplicate for their owner and a new document for someone else.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn duplicates_are_found_among_one_user_s_documents_only(#[case] backend: Backend) {
    let Some((app, id, eve)) = a_document_and_eve(backend).await else {
        return;
    };
    let again = app.upload_fixture("three_pages.pdf", None).await;
    assert_eq!(again.status(), 200, "a duplicate for its owner");
    let theirs = app.upload_fixture_as(&eve, "three_pages.pdf").await;
    assert_eq!(theirs.status(), 202, "dedup is per user");
    let body: Value = theirs.json().await.unwrap();
    assert_ne!(body["id"], id.as_str());
    assert_eq!(app.db.count("documents").await, 2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_api_refuses_a_missing_or_unknown_token_with_a_bearer_challenge(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let anonymous = reqwest::Client::new();
    let spec: Value = anonymous
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let missing = anonymous
        .get(app.url("/api/v1/documents"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="lector""#
    );
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let bad = anonymous
        .get(app.url("/api/v1/documents"))
        .bearer_auth("lector_0000")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

/// The name every token of these tests is created with in the UI (escaped where shown).
const TOKEN_NAME: &str = "backup <script>";

/// Creates an API token named [`TOKEN_NAME`] through the tokens page, as its owner; returns
/// the token and the page that showed it.
async fn create_token(app: &TestApp) -> (String, String) {
    let created = app
        .client
        .post(app.url("/tokens"))
        .form(&[("csrf_token", app.user.csrf.as_str()), ("name", TOKEN_NAME)])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let start = html.find(r#"<code id="new-token">"#).unwrap() + r#"<code id="new-token">"#.len();
    let token = html[start..start + 71].to_owned();
    assert!(token.starts_with("lector_"), "{token}");
    (token, html)
}

/// `GET /api/v1/documents` with `token`, from no session: the status.
async fn list_with(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/api/v1/documents"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_new_api_token_is_shown_once_stored_hashed_and_listed_by_its_prefix(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (token, html) = create_token(&app).await;
    assert!(html.contains("backup &#60;script&#62;") || html.contains("backup &lt;script&gt;"));
    assert!(
        !app.db
            .query_text("select token_hash from api_tokens limit 1")
            .await
            .unwrap()
            .contains(&token)
    );
    let (_, listing) = get(&app.client, &app, "/tokens").await;
    assert!(!listing.contains(&token), "shown once only");
    assert!(listing.contains(&token[..13]), "listed by its prefix");

    let empty_name = app
        .client
        .post(app.url("/tokens"))
        .form(&[("csrf_token", app.user.csrf.as_str()), ("name", " ")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty_name.status(), 422);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_api_token_s_use_is_noted_once_a_minute_at_most(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (token, _) = create_token(&app).await;
    assert_eq!(list_with(&app, &token).await, 200);
    // Its use is noted once a minute at most, not written on every request.
    let last_used =
        "select cast(last_used_at as text) from api_tokens where name = 'backup <script>'";
    let first_use = app.db.query_text(last_used).await;
    assert!(first_use.is_some(), "the first use is noted");
    assert_eq!(list_with(&app, &token).await, 200);
    assert_eq!(app.db.query_text(last_used).await, first_use);
    let (_, listing) = get(&app.client, &app, "/tokens").await;
    assert_eq!(
        listing.matches(">never<").count(),
        1,
        "the used token has a last-used time"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn api_tokens_are_revoked_by_their_owner_only(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (token, _) = create_token(&app).await;
    let token_id = app
        .db
        .query_text("select id from api_tokens where name = 'backup <script>'")
        .await
        .unwrap();
    let eve = app.another_user("eve@example.com").await;
    let not_hers = eve
        .client
        .post(app.url(&format!("/tokens/{token_id}/revoke")))
        .form(&[("csrf_token", eve.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(not_hers.status(), 404);
    assert_eq!(list_with(&app, &token).await, 200, "still in use");
    let revoked = app
        .client
        .post(app.url(&format!("/tokens/{token_id}/revoke")))
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert_eq!(list_with(&app, &token).await, 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn forged_and_cross_site_posts_are_refused_and_change_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.upload_ok("one_page.pdf").await;
    let delete = app.url(&format!("/documents/{id}/delete"));
    let no_token = app.client.post(&delete).send().await.unwrap();
    assert_eq!(no_token.status(), 403);
    let wrong = app
        .client
        .post(&delete)
        .form(&[("csrf_token", "0".repeat(64).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("security token"));
    let cross_site = app
        .client
        .post(&delete)
        .header("origin", "https://evil.example")
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "right token, wrong origin");
    let fetch_meta = app
        .client
        .post(&delete)
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &app.user.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_meta.status(), 403);
    // Another session's token is not this session's.
    let eve = app.another_user("eve@example.com").await;
    let other_session = app
        .client
        .post(&delete)
        .form(&[("csrf_token", eve.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_session.status(), 403);
    assert_eq!(app.db.count("documents").await, 1);

    let same_origin = app
        .client
        .post(&delete)
        .header("origin", app.address.clone())
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 303);
    assert_eq!(app.db.count("documents").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_upload_form_needs_the_token_before_the_file(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let forged_upload = app
        .client
        .post(app.url("/documents"))
        .multipart(Form::new().part("file", pdf_part("three_pages.pdf")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_upload.status(), 403);
    let late_token = app
        .client
        .post(app.url("/documents"))
        .multipart(
            Form::new()
                .part("file", pdf_part("three_pages.pdf"))
                .text("csrf_token", app.user.csrf.clone()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(late_token.status(), 403);
    assert_eq!(app.db.count("documents").await, 0, "nothing stored");
}

/// What a forged request could have changed: rows of every table a form writes, the
/// document's state and OCR choice, and whether the session still works.
async fn snapshot(app: &TestApp, document: &str) -> Vec<String> {
    let mut state = Vec::new();
    for table in [
        "users",
        "documents",
        "jobs",
        "api_tokens",
        "webhooks",
        "webhook_deliveries",
    ] {
        state.push(format!("{table}: {}", app.db.count(table).await));
    }
    let doc = app.document(document).await;
    state.push(format!(
        "document: {} {}",
        doc["status"], doc["ocr"]["mode"]
    ));
    let (status, _) = get(&app.client, app, "/tokens").await;
    state.push(format!("session: {status}"));
    state
}

/// An app with what the forms change: a document, a webhook and the API token; returns the
/// document's and the webhook's ids.
async fn app_with_something_to_change(backend: Backend) -> Option<(TestApp, String, String)> {
    let app = TestApp::spawn(backend).await?;
    let document = app.upload_ok("one_page.pdf").await;
    let webhook = app.add_webhook("http://93.184.216.34/in").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Some((app, document, webhook))
}

/// Every state-changing route of the browser UI, with the fields its form sends.
fn state_changing_routes(
    token: &str,
    webhook: &str,
    document: &str,
) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        ("/logout".into(), vec![]),
        ("/tokens".into(), vec![("name", "forged")]),
        (format!("/tokens/{token}/revoke"), vec![]),
        ("/webhooks".into(), vec![("url", "https://evil.example/in")]),
        (format!("/webhooks/{webhook}/ping"), vec![]),
        (format!("/webhooks/{webhook}/delete"), vec![]),
        ("/documents".into(), vec![]),
        (
            format!("/documents/{document}/reprocess"),
            vec![("ocr", "force")],
        ),
        (format!("/documents/{document}/cancel"), vec![]),
        (format!("/documents/{document}/delete"), vec![]),
        (
            "/login".into(),
            vec![("email", "owner@example.com"), ("password", TEST_PASSWORD)],
        ),
        (
            "/account/password".into(),
            vec![
                ("current", TEST_PASSWORD),
                ("new", "a forged new password"),
                ("confirm", "a forged new password"),
                ("revoke_tokens", "on"),
            ],
        ),
        (
            "/account/sessions/end".into(),
            vec![("revoke_tokens", "on")],
        ),
        ("/account/delete".into(), vec![("password", TEST_PASSWORD)]),
        (
            format!("/reset/{}", "1".repeat(64)),
            vec![
                ("password", "a forged new password"),
                ("confirm", "a forged new password"),
            ],
        ),
        (
            "/signup".into(),
            vec![
                ("email", "new@example.com"),
                ("password", TEST_PASSWORD),
                ("confirm", TEST_PASSWORD),
            ],
        ),
    ]
}

/// POSTs to `path` with `fields` and the CSRF token `token` (or none) in four ways:
/// url-encoded, multipart, no body, and as text; each must be refused.
async fn assert_forgeries_refused(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    token: Option<&str>,
) {
    let mut encoded: Vec<(&str, &str)> = token.map(|t| ("csrf_token", t)).into_iter().collect();
    encoded.extend(fields.iter().copied());
    let mut multipart = Form::new();
    for (name, value) in &encoded {
        multipart = multipart.text(name.to_string(), value.to_string());
    }
    if path == "/documents" {
        multipart = multipart.part("file", pdf_part("three_pages.pdf"));
    }
    let requests = [
        ("url-encoded", app.client.post(app.url(path)).form(&encoded)),
        (
            "multipart",
            app.client.post(app.url(path)).multipart(multipart),
        ),
        ("no body", app.client.post(app.url(path))),
        (
            "text",
            app.client
                .post(app.url(path))
                .header("content-type", "text/plain")
                .body(format!("csrf_token={}", token.unwrap_or_default())),
        ),
    ];
    for (format, request) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}, {format}, token {token:?}");
        assert!(
            response.text().await.unwrap().contains("security token"),
            "{path}, {format}"
        );
    }
}

/// Every state-changing route of the browser UI refuses a request without the session's
/// token, or with a wrong one, whatever the body's format: url-encoded, multipart (the
/// format only upload used to check), or none. Nothing changes.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_state_changing_route_refuses_a_missing_or_wrong_token_in_any_format(
    #[case] backend: Backend,
) {
    let Some((app, document, webhook)) = app_with_something_to_change(backend).await else {
        return;
    };
    let token: String = app
        .db
        .query_text("select id from api_tokens")
        .await
        .unwrap();
    let before = snapshot(&app, &document).await;
    let wrong = "0".repeat(64);
    for (path, fields) in state_changing_routes(&token, &webhook, &document) {
        for token in [None, Some(wrong.as_str())] {
            assert_forgeries_refused(&app, &path, &fields, token).await;
        }
    }
    // A wrong token in the htmx header is refused too, whatever the body says.
    let response = app
        .client
        .post(app.url(&format!("/documents/{document}/delete")))
        .header("x-csrf-token", &wrong)
        .form(&[("csrf_token", app.user.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(snapshot(&app, &document).await, before, "nothing changed");
}

/// With the right token first, a multipart body gets through the CSRF check, but a handler
/// that reads a url-encoded form does not read it as one: 415, the OCR choice unchanged.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_multipart_body_to_a_url_encoded_form_is_refused_with_415_and_changes_nothing(
    #[case] backend: Backend,
) {
    let Some((app, document, _)) = app_with_something_to_change(backend).await else {
        return;
    };
    let before = snapshot(&app, &document).await;
    let response = app
        .client
        .post(app.url(&format!("/documents/{document}/reprocess")))
        .multipart(
            Form::new()
                .text("csrf_token", app.user.csrf.clone())
                .text("ocr", "force"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(snapshot(&app, &document).await, before, "nothing changed");
}

/// The forms the CSRF check guards still work: an upload the way Chromium sends it (its
/// boundary has capitals, and a boundary is case-sensitive), and re-processing.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn with_the_session_s_token_an_upload_as_chromium_sends_it_and_a_reprocess_form_work(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let document = app.upload_ok("one_page.pdf").await;
    let boundary = "----WebKitFormBoundaryQz7XkR2mVb9LpTa4";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"three_pages.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n",
        app.user.csrf
    )
    .into_bytes();
    body.extend(std::fs::read(fixture("three_pages.pdf")).unwrap());
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let response = app
        .client
        .post(app.url("/documents"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(app.db.count("documents").await, 2);
    let response = app
        .client
        .post(app.url(&format!("/documents/{document}/reprocess")))
        .form(&[("csrf_token", app.user.csrf.as_str()), ("ocr", "off")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(app.document(&document).await["ocr"]["mode"], "off");
}

/// Everything the server sends on `stream` until it closes the connection; panics if it has
/// not closed it within 15 s (the timeouts under test are 1 s).
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the server closed the connection")
    .ok();
    String::from_utf8_lossy(&received).into_owned()
}

/// The app with header and body timeouts of 1 s, and its `host:port`.
async fn stalling_app() -> (TestApp, String) {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LECTOR_HTTP_HEADER_TIMEOUT_SECS", "1"),
            ("LECTOR_HTTP_BODY_TIMEOUT_SECS", "1"),
        ],
    )
    .await
    .expect("SQLite is always there");
    let address = app.address.trim_start_matches("http://").to_owned();
    (app, address)
}

/// A connection to `address` on which `bytes` have been sent.
async fn sent(address: &str, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

// Slowloris: a client that sends part of its headers, or part of its body, and then nothing,
// does not hold a connection: the headers must arrive within the header timeout (the
// connection is closed), the body may not pause longer than the body timeout (408, closed), on
// the API and in the browser's forms.

#[tokio::test]
async fn a_request_whose_headers_stall_is_cut_off_and_the_connection_closed() {
    let (_app, address) = stalling_app().await;
    // Half a header, then silence.
    let mut stream = sent(
        &address,
        b"POST /api/v1/documents HTTP/1.1\r\nHost: lector\r\nContent-Le",
    )
    .await;
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        !answer.contains("200") && !answer.contains("202"),
        "{answer}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn an_upload_whose_body_stalls_gets_408_as_a_problem_and_stores_nothing() {
    let (app, address) = stalling_app().await;
    // Headers promising 100,000 bytes of upload, 1,000 of them sent, then silence.
    let boundary = "stalled";
    let mut request = format!(
        "POST /api/v1/documents HTTP/1.1\r\nHost: lector\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000\r\n\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7\n",
        app.user.token
    )
    .into_bytes();
    request.resize(request.len() + 1000, b'x');
    let answer = read_until_closed(&mut sent(&address, &request).await).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request-timeout\""), "{answer}");
    assert_eq!(app.db.count("documents").await, 0, "nothing stored");
}

#[tokio::test]
async fn a_form_whose_body_stalls_gets_408_as_a_page() {
    let (_app, address) = stalling_app().await;
    // The browser's log-in form: a session cookie and its token, then half the form.
    let page = read_until_closed(
        &mut sent(
            &address,
            b"GET /login HTTP/1.1\r\nHost: lector\r\nConnection: close\r\n\r\n",
        )
        .await,
    )
    .await;
    let cookie = page
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let csrf = csrf_from(&page).unwrap();
    let form = format!("csrf_token={csrf}&email=owner%40example.com&password=");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: lector\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n{form}"
    );
    let answer = read_until_closed(&mut sent(&address, request.as_bytes()).await).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("text/html"), "{answer}");
    assert!(answer.contains("stopped arriving"), "{answer}");
}

#[tokio::test]
async fn a_client_that_keeps_sending_however_slowly_is_not_cut_off() {
    use tokio::io::AsyncWriteExt;
    let (app, address) = stalling_app().await;
    let body = serde_json::json!({"url": "http://93.184.216.34/slow"}).to_string();
    let (head, tail) = body.split_at(10);
    let request = format!(
        "POST /api/v1/webhooks HTTP/1.1\r\nHost: lector\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        app.user.token,
        body.len()
    );
    let mut stream = sent(&address, request.as_bytes()).await;
    for byte in tail.bytes() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stream.write_all(&[byte]).await.unwrap();
    }
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

/// The bytes of the files that hold `backend`'s data for `tables`, as written to disk: the
/// SQLite file with its WAL and shared memory; on Postgres, after a checkpoint, the tables'
/// own files (and their TOAST) when this process may read the server's data directory.
async fn database_files(app: &TestApp, tables: &[&str]) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    match app.db.backend {
        Backend::Sqlite => {
            let path = app.db.url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                if let Ok(content) = std::fs::read(format!("{path}{suffix}")) {
                    bytes.extend(content);
                }
            }
        }
        Backend::Postgres => {
            app.db.execute("checkpoint").await;
            let data_dir = app
                .db
                .query_text("select current_setting('data_directory')")
                .await?;
            for table in tables {
                for relation in [
                    format!("'{table}'"),
                    format!("(select reltoastrelid from pg_class where oid = '{table}'::regclass)"),
                ] {
                    let Some(file) = app
                        .db
                        .query_text(&format!("select pg_relation_filepath({relation})"))
                        .await
                    else {
                        continue;
                    };
                    bytes.extend(std::fs::read(format!("{data_dir}/{file}")).ok()?);
                }
            }
        }
    }
    Some(bytes)
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_database_holds_no_secret_in_the_clear(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = upload_with_a_password_and_reprocess(&app).await;
    let signing_secret = app.add_webhook("http://93.184.216.34/in").await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(signing_secret.starts_with("whsec_"));
    let session_id = a_session_cookie_id(&app).await;

    let stored_password = app
        .db
        .query_text(&format!(
            "select pdf_password from documents where id = '{id}'"
        ))
        .await
        .unwrap();
    assert!(stored_password.starts_with("sealed1:"), "{stored_password}");
    let stored_secret = app
        .db
        .query_text("select secret from webhooks")
        .await
        .unwrap();
    assert!(stored_secret.starts_with("sealed1:"), "{stored_secret}");
    let sessions = match backend {
        Backend::Sqlite => "tower_sessions",
        Backend::Postgres => "tower_sessions.session",
    };
    assert!(app.db.count(sessions).await >= 1);
    assert_eq!(
        app.db
            .query_i64(&format!(
                "select count(*) from {sessions} where id = '{session_id}'"
            ))
            .await,
        0,
        "the session is not stored under its cookie's id"
    );
    match database_files(&app, &["documents", "webhooks", sessions]).await {
        Some(files) => {
            assert!(!files.is_empty());
            assert!(!holds(&files, "open-sesame"), "the PDF's password");
            assert!(!holds(&files, &signing_secret), "the signing secret");
            assert!(!holds(&files, &session_id), "the session's id");
            assert!(
                holds(&files, &stored_secret),
                "the files read are the right ones"
            );
        }
        None => eprintln!(
            "SKIPPED (the server's files): this process cannot read Postgres' data directory"
        ),
    }
}

/// Uploads `user_password.pdf` with its password, extracts it, and checks that re-processing
/// opens it again with the kept password; returns its id.
async fn upload_with_a_password_and_reprocess(app: &TestApp) -> String {
    let response = app
        .upload_fixture("user_password.pdf", Some("open-sesame"))
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.drain_jobs().await;
    assert_eq!(app.document(&id).await["status"], "done");
    let response = app.post(&format!("/api/v1/documents/{id}/reprocess")).await;
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    let text = app.get_text(&format!("/api/v1/documents/{id}/text")).await;
    assert!(
        text.contains("zebras"),
        "re-processed with the kept password: {text}"
    );
    id
}

/// Logs a new browser in as the owner; the id its session cookie carries.
async fn a_session_cookie_id(app: &TestApp) -> String {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    harness::log_in(&browser, &app.address, "owner@example.com", TEST_PASSWORD).await;
    let cookies =
        reqwest::cookie::CookieStore::cookies(&*jar, &app.address.parse().unwrap()).unwrap();
    cookies
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("lector_session="))
        .unwrap()
        .to_owned()
}

/// Postgres has no default key (its instances must share one, and it must outlive them):
/// serving or migrating without one stops at start and says what to set; an administrator's
/// `lector user …` commands, which keep no secret, still run.
#[tokio::test]
async fn postgres_without_a_secret_key_does_not_start() {
    let Some(db) = harness::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let url = db.url.clone();
    let config = lector::config::Config::from_lookup(move |name| {
        (name == "DATABASE_URL").then(|| url.clone())
    })
    .unwrap();
    let error = lector::startup::migrate(&config).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("LECTOR_SECRET_KEY must be set"),
        "{error:#}"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = lector::startup::run(config.clone(), listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("LECTOR_SECRET_KEY must be set"),
        "{error:#}"
    );
    harness::create_account(&config, "admin@example.com").await;
    assert_eq!(db.count("users").await, 1);
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_pages_have_no_inline_script() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let id = app.upload_ok("script_text.pdf").await;
    app.drain_jobs().await;
    let anonymous = reqwest::Client::new();
    for (client, path) in [
        (&app.client, "/".to_owned()),
        (&app.client, format!("/documents/{id}")),
        (&app.client, "/tokens".to_owned()),
        (&anonymous, "/login".to_owned()),
        (&anonymous, "/api/v1/documents".to_owned()),
        (&app.client, "/api/v1/documents".to_owned()),
        (&anonymous, "/static/htmx.min.js".to_owned()),
        (&app.client, "/no/such/page".to_owned()),
    ] {
        let response = client.get(app.url(&path)).send().await.unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        let body = response.text().await.unwrap();
        if body.contains("<html") {
            for tag in body.split("<script").skip(1) {
                assert!(
                    tag.trim_start().starts_with("src="),
                    "{path}: inline script {tag}"
                );
            }
            assert!(
                !body.contains(" style=") && !body.contains("<style"),
                "{path}: inline style"
            );
            assert!(
                !body.contains(" hx-on") && !body.contains(" onclick"),
                "{path}"
            );
        }
    }
    let (_, page) = get(&app.client, &app, &format!("/documents/{id}")).await;
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(!page.contains("<script>alert(1)"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn too_many_log_ins_or_uploads_get_429_with_retry_after(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_RATE_LOGIN_PER_IP", "5"),
            ("LECTOR_RATE_UPLOADS_PER_USER", "2"),
        ],
    )
    .await
    else {
        return;
    };
    let client = harness::browser_client();
    let (_, page) = get(&client, &app, "/login").await;
    let csrf = csrf_from(&page).unwrap();
    let attempt = |email: &'static str, password: &'static str| {
        client
            .post(app.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
    };
    // Per address: 5 attempts a minute in all from 127.0.0.1, whatever the account (1 at
    // set-up, 3 here, then the fifth and the sixth).
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(attempt(email, "x").await.unwrap().status(), 422);
    }
    assert_eq!(attempt("d@example.com", "x").await.unwrap().status(), 422);
    let limited = attempt("owner@example.com", TEST_PASSWORD).await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        limited
            .text()
            .await
            .unwrap()
            .contains("Too many log-in attempts")
    );

    let upload = || app.upload_fixture("one_page.pdf", None);
    assert_eq!(upload().await.status(), 202);
    assert_eq!(upload().await.status(), 200);
    let over = upload().await;
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    let problem: Value = over.json().await.unwrap();
    assert_eq!(problem["code"], "rate-limited");
}

/// Posts `file` as a multipart upload over a raw connection, writing the whole request before
/// reading anything; the answer's status and whether it has `Retry-After`.
async fn send_whole_body_then_read(app: &TestApp, file: &[u8]) -> (u16, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let boundary = "lector-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let address = app.address.trim_start_matches("http://");
    let head = format!(
        "POST /api/v1/documents HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        app.user.token,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body)
        .await
        .expect("the whole body is taken (the connection was not closed under it)");
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.expect("an answer");
    let answer = String::from_utf8_lossy(&answer[..n]).to_lowercase();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer.contains("\r\nretry-after: "))
}

#[tokio::test]
async fn a_refused_upload_gets_its_429_even_when_its_body_is_large() {
    // Refused before the body is read: the rest of it must still be read, or the connection
    // closes under the client while it sends and it sees no answer at all.
    let Some(app) =
        TestApp::spawn_with(Backend::Sqlite, &[("LECTOR_RATE_UPLOADS_PER_USER", "1")]).await
    else {
        return;
    };
    assert_eq!(app.upload_fixture("one_page.pdf", None).await.status(), 202);
    let large = vec![b'x'; 12 * 1024 * 1024];
    // As Python's requests and Locust do it: the whole body written before the answer is read.
    // Refused without reading the body, the server closed the connection under this write.
    for attempt in 0..3 {
        let (status, retry_after) = send_whole_body_then_read(&app, &large).await;
        assert_eq!(status, 429, "attempt {attempt}");
        assert!(retry_after, "attempt {attempt}: no Retry-After");
    }
    for attempt in 0..6 {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(large.clone()).file_name("big.pdf"),
        );
        let refused = app
            .client
            .post(app.url("/api/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: no answer ({e})"));
        assert_eq!(refused.status(), 429, "attempt {attempt}");
        assert!(refused.headers().contains_key("retry-after"));
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "rate-limited");
    }
    // The browser form too, through the same middleware.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(large).file_name("big.pdf"),
    );
    let refused = app
        .web_post("/documents")
        .multipart(form)
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), 429);
}

#[tokio::test]
async fn lector_user_add_generates_a_password_that_logs_in() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (added, stdout, stderr) = lector_command(&["user", "add", "Grace@Example.com"])
        .env("DATABASE_URL", &app.db.url)
        .run();
    assert!(added, "{stderr}");
    assert!(stdout.contains("added grace@example.com"), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 20);
    let client = harness::browser_client();
    let csrf = harness::log_in(&client, &app.address, "grace@example.com", &password).await;
    assert_eq!(csrf.len(), 64);
    let (again, _, stderr) = lector_command(&["user", "add", "grace@example.com"])
        .env("DATABASE_URL", &app.db.url)
        .run();
    assert!(!again);
    assert!(stderr.contains("already exists"));
}

#[tokio::test]
async fn behind_a_proxy_plain_http_is_redirected_to_the_https_address() {
    let Some(app) = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("LECTOR_PUBLIC_URL", "https://lector.example"),
            ("LECTOR_TRUSTED_PROXY_HOPS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let plain = client
        .post(app.url("/login?next=%2Fdocuments"))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 308);
    assert_eq!(
        plain.headers()["location"],
        "https://lector.example/login?next=%2Fdocuments"
    );
    let secure = client
        .get(app.url("/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(secure.status(), 200);
    // The load balancer's health check comes straight to the instance, without the header.
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    // Without a proxy in front (or without https) nothing is redirected.
    let Some(direct) = TestApp::spawn_with(
        Backend::Sqlite,
        &[("LECTOR_PUBLIC_URL", "https://lector.example")],
    )
    .await
    else {
        return;
    };
    let response = client
        .get(direct.url("/login"))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
