//! After a password leaks: the owner changes it (every other session ends), logs out
//! everywhere, deletes the account; an administrator does the same from the command line and
//! issues a one-time reset link. And log-in throttling that slows a guesser down without
//! locking the owner out; sign-up that does not tell strangers who has an account for free.
//! Against the real app on SQLite and Postgres, through the browser's forms and `lector`.

use crate::harness::{self, Backend, TEST_PASSWORD, TestApp, csrf_from, lector_command};
use reqwest::{Client, StatusCode};
use rstest::rstest;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// A browser that keeps its cookies (session and device) and does not follow redirects.
fn browser() -> Client {
    harness::browser_client()
}

/// Posts the log-in form from `address` (the app trusts one proxy hop in these tests).
async fn log_in_from(
    client: &Client,
    app: &TestApp,
    address: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = client
        .get(app.url("/login"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_from(&page).unwrap_or_default();
    client
        .post(app.url("/login"))
        .header("x-forwarded-for", address)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

/// Where `GET path` sends `client`: the status, and the `Location` if it is a redirect.
async fn visit(client: &Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = client.get(app.url(path)).send().await.unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status(), location)
}

fn signed_in(status: (StatusCode, String)) -> bool {
    status.0 == StatusCode::OK
}

/// Posts a form of the account page with the session's token.
async fn post_form(
    client: &Client,
    app: &TestApp,
    csrf: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf_token", csrf)];
    form.extend_from_slice(fields);
    client.post(app.url(path)).form(&form).send().await.unwrap()
}

async fn api_status(app: &TestApp, token: &str, path: &str) -> u16 {
    harness::client_with_token(token)
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Posts the account page's password form as the owner: `current`, `new` twice, then `extra`.
async fn change_password(
    app: &TestApp,
    current: &str,
    new: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = vec![("current", current), ("new", new), ("confirm", new)];
    fields.extend_from_slice(extra);
    post_form(
        &app.client,
        app,
        &app.user.csrf,
        "/account/password",
        &fields,
    )
    .await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_wrong_current_password_or_a_weak_new_one_changes_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    let page = app.get_text("/account").await;
    assert!(page.contains("Change your password"), "{page}");
    assert!(page.contains("owner@example.com"));

    let wrong = change_password(&app, "not my password", NEW_PASSWORD, &[]).await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("current password is wrong")
    );
    let weak = change_password(&app, TEST_PASSWORD, "short", &[]).await;
    assert_eq!(weak.status(), 422);
    assert!(
        signed_in(visit(&other, &app, "/").await),
        "nothing changed yet"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn changing_the_password_ends_every_other_session(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    let changed = change_password(
        &app,
        TEST_PASSWORD,
        NEW_PASSWORD,
        &[("revoke_tokens", "on")],
    )
    .await;
    assert_eq!(changed.status(), 303);
    assert_eq!(changed.headers()["location"], "/account");
    let page = app.get_text("/account").await;
    assert!(page.contains("every other session ended"), "{page}");
    assert_eq!(
        visit(&other, &app, "/").await,
        (StatusCode::SEE_OTHER, "/login".to_owned()),
        "the other session is over"
    );
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        401,
        "API tokens revoked as asked"
    );
    let fresh = browser();
    let refused = log_in_from(
        &fresh,
        &app,
        "127.0.0.1",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(refused.status(), 422, "the old password no longer opens it");
    harness::log_in(&fresh, &app.address, "owner@example.com", NEW_PASSWORD).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn log_out_everywhere_ends_this_and_every_other_session(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    let response = post_form(
        &app.client,
        &app,
        &app.user.csrf,
        "/account/sessions/end",
        &[],
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login");
    for client in [&app.client, &other] {
        assert_eq!(
            visit(client, &app, "/tokens").await,
            (StatusCode::SEE_OTHER, "/login".to_owned())
        );
    }
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        200,
        "API tokens stay unless asked"
    );
    // Asked: the tokens go too.
    let csrf = harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    post_form(
        &other,
        &app,
        &csrf,
        "/account/sessions/end",
        &[("revoke_tokens", "on")],
    )
    .await;
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        401
    );
    assert!(!signed_in(visit(&other, &app, "/").await));
}

/// An owner with a three-page document (extracted), a webhook and a second signed-in
/// browser, and another account, eve, with a document of her own.
struct OwnerAndEve {
    app: TestApp,
    owner_doc: String,
    other: Client,
    eve: harness::TestUser,
}

async fn owner_and_eve(backend: Backend) -> Option<OwnerAndEve> {
    let app = TestApp::spawn(backend).await?;
    let owner_doc = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    app.add_webhook("http://93.184.216.34/in").await;
    let eve = app.another_user("eve@example.com").await;
    let response = app.upload_fixture_as(&eve, "one_page.pdf").await;
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    Some(OwnerAndEve {
        app,
        owner_doc,
        other,
        eve,
    })
}

/// Posts the account page's deletion form as the owner with `password`.
async fn delete_account(app: &TestApp, password: &str) -> reqwest::Response {
    post_form(
        &app.client,
        app,
        &app.user.csrf,
        "/account/delete",
        &[("password", password)],
    )
    .await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_the_account_asks_for_its_password(#[case] backend: Backend) {
    let Some(OwnerAndEve { app, .. }) = owner_and_eve(backend).await else {
        return;
    };
    let page = app.get_text("/account/delete").await;
    assert!(page.contains("1 document(s)"), "{page}");
    let wrong = delete_account(&app, "not my password").await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The password is wrong")
    );
    assert_eq!(app.db.count("users").await, 2, "nothing deleted");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_the_account_removes_everything_it_owns_and_nothing_else(
    #[case] backend: Backend,
) {
    let Some(OwnerAndEve { app, owner_doc, .. }) = owner_and_eve(backend).await else {
        return;
    };
    let deleted = delete_account(&app, TEST_PASSWORD).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()["location"], "/login");
    let owner_rows = |table: &str, column: &str| {
        format!("select count(*) from {table} where {column} = '{owner_doc}'")
    };
    for (table, column) in [
        ("documents", "id"),
        ("pages", "document_id"),
        ("document_blobs", "document_id"),
        ("jobs", "document_id"),
    ] {
        assert_eq!(
            app.db.query_i64(&owner_rows(table, column)).await,
            0,
            "{table}"
        );
    }
    assert_eq!(app.db.count("users").await, 1);
    assert_eq!(app.db.count("webhooks").await, 0);
    assert_eq!(app.db.count("api_tokens").await, 1, "eve's token stays");
    assert_eq!(
        app.db.count("known_devices").await,
        1,
        "eve's browser stays known"
    );
    assert_eq!(app.db.count("documents").await, 1, "eve's document stays");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_deleted_account_s_sessions_and_tokens_end_and_others_do_not(#[case] backend: Backend) {
    let Some(OwnerAndEve {
        app, other, eve, ..
    }) = owner_and_eve(backend).await
    else {
        return;
    };
    assert_eq!(delete_account(&app, TEST_PASSWORD).await.status(), 303);
    for client in [&app.client, &other] {
        assert_eq!(
            visit(client, &app, "/").await,
            (StatusCode::SEE_OTHER, "/login".to_owned())
        );
    }
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        401
    );
    assert_eq!(api_status(&app, &eve.token, "/api/v1/documents").await, 200);
    let again = log_in_from(
        &browser(),
        &app,
        "127.0.0.1",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(again.status(), 422);
}

/// Runs `lector args…` on the app's database with `stdin`; (success, stdout, stderr).
fn lector(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String, String) {
    lector_command(args)
        .env("DATABASE_URL", &app.db.url)
        .env("LECTOR_PUBLIC_URL", &app.address)
        .stdin(stdin)
        .run()
}

/// An app whose owner has one document, and a second account, eve's.
async fn an_owner_with_a_document_and_eve(backend: Backend) -> Option<TestApp> {
    let app = TestApp::spawn(backend).await?;
    app.upload_ok("one_page.pdf").await;
    app.another_user("eve@example.com").await;
    Some(app)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn lector_user_list_counts_each_account_s_documents_tokens_and_webhooks(
    #[case] backend: Backend,
) {
    let Some(app) = an_owner_with_a_document_and_eve(backend).await else {
        return;
    };
    let (ok, out, err) = lector(&app, &["user", "list"], "");
    assert!(ok, "{err}");
    let owner_line = out
        .lines()
        .find(|l| l.starts_with("owner@example.com"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        owner_line.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["1", "1", "0"],
        "documents, tokens, webhooks: {out}"
    );
    assert!(out.contains("eve@example.com"), "{out}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn lector_user_password_sets_a_new_one_and_ends_the_account_s_sessions(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (ok, out, err) = lector(
        &app,
        &["user", "password", "OWNER@example.com", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("every session of it has ended"), "{out}");
    assert!(!signed_in(visit(&app.client, &app, "/").await));
    let (ok, _, err) = lector(
        &app,
        &["user", "password", "owner@example.com", "--password-stdin"],
        "short\n",
    );
    assert!(!ok && err.contains("at least"), "{err}");
    let (ok, _, err) = lector(
        &app,
        &["user", "password", "nobody@example.com", "--password-stdin"],
        "x\n",
    );
    assert!(!ok && err.contains("no account"), "{err}");
    let owner = browser();
    harness::log_in(&owner, &app.address, "owner@example.com", NEW_PASSWORD).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn lector_user_sessions_revoke_ends_the_sessions_and_with_tokens_the_tokens(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (ok, _, err) = lector(
        &app,
        &[
            "user",
            "sessions",
            "revoke",
            "owner@example.com",
            "--tokens",
        ],
        "",
    );
    assert!(ok, "{err}");
    assert!(!signed_in(visit(&app.client, &app, "/").await));
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        401
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn lector_user_delete_asks_first_then_deletes_the_account_and_its_documents(
    #[case] backend: Backend,
) {
    let Some(app) = an_owner_with_a_document_and_eve(backend).await else {
        return;
    };
    // Deleting asks first when nobody can answer.
    let (ok, _, err) = lector(&app, &["user", "delete", "eve@example.com"], "");
    assert!(!ok && err.contains("--yes"), "{err}");
    assert_eq!(app.db.count("users").await, 2);
    let (ok, out, err) = lector(&app, &["user", "delete", "owner@example.com", "--yes"], "");
    assert!(ok, "{err}");
    assert!(
        out.contains("deleted owner@example.com and its 1 document(s)"),
        "{out}"
    );
    assert_eq!(app.db.count("users").await, 1);
    assert_eq!(app.db.count("documents").await, 0);
}

/// A reset link for the owner from `lector user reset-link` (with `extra` arguments), and the
/// token at its end.
fn reset_link(app: &TestApp, extra: &[&str]) -> (String, String) {
    let mut args = vec!["user", "reset-link", "owner@example.com"];
    args.extend_from_slice(extra);
    let (ok, out, err) = lector(app, &args, "");
    assert!(ok, "{err}");
    let link = out.trim().to_owned();
    let prefix = format!("{}/reset/", app.address);
    assert!(link.starts_with(&prefix), "{link}");
    let token = link.trim_start_matches(&prefix).to_owned();
    (link, token)
}

/// Opens `link` in `visitor` and posts its form with `password` and `confirm`.
async fn reset_with(
    visitor: &Client,
    app: &TestApp,
    link: &str,
    password: &str,
    confirm: &str,
) -> reqwest::Response {
    let page = visitor.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.unwrap();
    assert!(page.contains("owner@example.com"), "{page}");
    let csrf = csrf_from(&page).unwrap();
    let token = link.rsplit('/').next().unwrap();
    post_form(
        visitor,
        app,
        &csrf,
        &format!("/reset/{token}"),
        &[("password", password), ("confirm", confirm)],
    )
    .await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_reset_link_is_kept_only_as_a_hash(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (_, token) = reset_link(&app, &[]);
    assert_eq!(token.len(), 64);
    assert_eq!(
        app.db
            .query_i64(&format!(
                "select count(*) from password_resets where token_hash = '{token}'"
            ))
            .await,
        0,
        "only the token's hash is stored"
    );
    assert_eq!(app.db.count("password_resets").await, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_then_expires(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (link, token) = reset_link(&app, &[]);
    let visitor = browser();
    let mismatch = reset_with(&visitor, &app, &link, NEW_PASSWORD, "something else").await;
    assert_eq!(mismatch.status(), 422);
    let done = reset_with(&visitor, &app, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/login");
    assert!(
        !signed_in(visit(&app.client, &app, "/").await),
        "sessions ended"
    );
    harness::log_in(&browser(), &app.address, "owner@example.com", NEW_PASSWORD).await;

    // Used once: gone.
    let again = visitor.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("expired or was already used")
    );
    // (This browser's session ended with the reset: a new form token.)
    let login_page = visitor.get(app.url("/login")).send().await.unwrap();
    let csrf = csrf_from(&login_page.text().await.unwrap()).unwrap();
    let reuse = post_form(
        &visitor,
        &app,
        &csrf,
        &format!("/reset/{token}"),
        &[
            ("password", "yet another passphrase"),
            ("confirm", "yet another passphrase"),
        ],
    )
    .await;
    assert_eq!(reuse.status(), 410);
    harness::log_in(&browser(), &app.address, "owner@example.com", NEW_PASSWORD).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_unused_reset_link_past_its_time_or_an_unknown_one_is_gone(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (link, _) = reset_link(&app, &["--minutes", "5"]);
    app.db
        .execute("update password_resets set expires_at = created_at where used_at is null")
        .await;
    let visitor = browser();
    assert_eq!(visitor.get(&link).send().await.unwrap().status(), 410);
    assert_eq!(
        visitor
            .get(app.url("/reset/nonsense"))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
}

/// The app with log-in throttling that shows in a few guesses: three free wrong passwords per
/// address, six per account.
async fn guarded_app(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_TRUSTED_PROXY_HOPS", "1"),
            ("LECTOR_RATE_LOGIN_PER_IP", "1000"),
            ("LECTOR_LOGIN_FAILURES_PER_ADDRESS", "3"),
            ("LECTOR_LOGIN_FAILURES_PER_ACCOUNT", "6"),
        ],
    )
    .await
}

/// One guesser at one address: three wrong passwords, then the right one; the last answer.
async fn guesses_from_one_address(app: &TestApp) -> reqwest::Response {
    let guesser = browser();
    for _ in 0..3 {
        let guess = log_in_from(&guesser, app, "203.0.113.9", "owner@example.com", "guess").await;
        assert_eq!(guess.status(), 422);
    }
    log_in_from(
        &guesser,
        app,
        "203.0.113.9",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await
}

/// After [`guesses_from_one_address`], one wrong password from each of three more addresses:
/// each is free for its address, and the account's count reaches its limit.
async fn guesses_from_many_addresses(app: &TestApp) {
    for n in 1..=3 {
        let guess = log_in_from(
            &browser(),
            app,
            &format!("192.0.2.{n}"),
            "owner@example.com",
            "guess",
        )
        .await;
        assert_eq!(guess.status(), 422, "address {n}");
    }
}

/// OWASP's way: a guesser from one address waits longer and longer, even with the right
/// password, which is not checked.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_guesser_at_one_address_waits_after_three_wrong_passwords(#[case] backend: Backend) {
    let Some(app) = guarded_app(backend).await else {
        return;
    };
    let held = guesses_from_one_address(&app).await;
    assert_eq!(held.status(), 429);
    let retry: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(
        held.text()
            .await
            .unwrap()
            .contains("Too many wrong passwords")
    );
}

/// Guesses from many addresses together slow down unknown clients of the account.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn guesses_from_many_addresses_slow_down_unknown_clients_of_the_account(
    #[case] backend: Backend,
) {
    let Some(app) = guarded_app(backend).await else {
        return;
    };
    guesses_from_one_address(&app).await;
    guesses_from_many_addresses(&app).await;
    let stranger = log_in_from(
        &browser(),
        &app,
        "192.0.2.99",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(stranger.status(), 429, "an unknown client now waits");
}

/// The owner's browser, which logged in from home (198.51.100.7), got a device cookie, and
/// logged out.
async fn a_browser_that_logged_in_before_from_home(app: &TestApp) -> Client {
    let owners_browser = browser();
    let response = log_in_from(
        &owners_browser,
        app,
        "198.51.100.7",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303);
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("lector_device=")),
        "a device cookie"
    );
    let index = owners_browser.get(app.url("/")).send().await.unwrap();
    let csrf = csrf_from(&index.text().await.unwrap()).unwrap();
    let logged_out = post_form(&owners_browser, app, &csrf, "/logout", &[]).await;
    assert_eq!(logged_out.status(), 303);
    owners_browser
}

/// The owner, from a browser that logged in before or an address it logged in from, is not
/// held back by the guessers; nor is another account.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_stranger_guessing_slows_down_but_does_not_lock_the_owner_out(#[case] backend: Backend) {
    let Some(app) = guarded_app(backend).await else {
        return;
    };
    let owners_browser = a_browser_that_logged_in_before_from_home(&app).await;
    guesses_from_one_address(&app).await;
    guesses_from_many_addresses(&app).await;

    // The owner is not locked out: from the browser that logged in before, at a new address…
    let response = log_in_from(
        &owners_browser,
        &app,
        "203.0.113.200",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303, "a known browser");
    // …or from a fresh browser at the address the owner logged in from before.
    let response = log_in_from(
        &browser(),
        &app,
        "198.51.100.7",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303, "a known address");
    // Another account is not slowed down by this one's guessers.
    app.another_user("eve@example.com").await;
    let response = log_in_from(
        &browser(),
        &app,
        "192.0.2.99",
        "eve@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(response.status(), 303);
}

/// Signs up from `address` in a new browser with the test password and `confirm`; the status.
async fn sign_up_from(app: &TestApp, address: &str, email: &str, confirm: &str) -> StatusCode {
    let client = browser();
    let page = client
        .get(app.url("/signup"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_from(&page).unwrap();
    client
        .post(app.url("/signup"))
        .header("x-forwarded-for", address)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", TEST_PASSWORD),
            ("confirm", confirm),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

/// Sign-up answers whether an e-mail has an account (it must, to be useful), so each address
/// may sign up only a few times an hour, whatever the answer; a typo costs nothing.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sign_up_tells_who_has_an_account_only_a_few_times_an_hour(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_SIGNUP", "open"),
            ("LECTOR_TRUSTED_PROXY_HOPS", "1"),
            ("LECTOR_RATE_SIGNUPS_PER_HOUR", "2"),
        ],
    )
    .await
    else {
        return;
    };
    let sign_up = |address, email, confirm| sign_up_from(&app, address, email, confirm);
    for _ in 0..3 {
        assert_eq!(
            sign_up("203.0.113.5", "probe@example.com", "typo").await,
            422,
            "a typo costs nothing"
        );
    }
    assert_eq!(
        sign_up("203.0.113.5", "A@Example.com", TEST_PASSWORD).await,
        303
    );
    assert_eq!(
        sign_up("203.0.113.5", "owner@example.com", TEST_PASSWORD).await,
        409
    );
    // The budget is spent: the same answer whether the e-mail is taken or free.
    assert_eq!(
        sign_up("203.0.113.5", "eve@example.com", TEST_PASSWORD).await,
        429
    );
    assert_eq!(
        sign_up("203.0.113.5", "owner@example.com", TEST_PASSWORD).await,
        429
    );
    // The same for every address of an IPv6 /64.
    assert_eq!(
        sign_up("2001:db8:5:6::1", "x1@example.com", TEST_PASSWORD).await,
        303
    );
    assert_eq!(
        sign_up("2001:db8:5:6::2", "x2@example.com", TEST_PASSWORD).await,
        303
    );
    assert_eq!(
        sign_up("2001:db8:5:6:ffff::3", "a@example.com", TEST_PASSWORD).await,
        429
    );
    assert_eq!(
        sign_up("198.51.100.1", "a@example.com", TEST_PASSWORD).await,
        409
    );
    assert_eq!(app.db.count("users").await, 4, "owner, a@, x1@, x2@");
}
