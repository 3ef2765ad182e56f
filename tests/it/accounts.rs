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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn changing_the_password_ends_every_other_session(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;
    let page = app.get_text("/account").await;
    assert!(page.contains("Change your password"), "{page}");
    assert!(page.contains("owner@example.com"));

    let csrf = &app.user.csrf;
    let wrong = post_form(
        &app.client,
        &app,
        csrf,
        "/account/password",
        &[
            ("current", "not my password"),
            ("new", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("current password is wrong")
    );
    let weak = post_form(
        &app.client,
        &app,
        csrf,
        "/account/password",
        &[
            ("current", TEST_PASSWORD),
            ("new", "short"),
            ("confirm", "short"),
        ],
    )
    .await;
    assert_eq!(weak.status(), 422);
    assert!(
        signed_in(visit(&other, &app, "/").await),
        "nothing changed yet"
    );

    let changed = post_form(
        &app.client,
        &app,
        csrf,
        "/account/password",
        &[
            ("current", TEST_PASSWORD),
            ("new", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
            ("revoke_tokens", "on"),
        ],
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
    let app = TestApp::spawn(backend).await;
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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_the_account_removes_everything_it_owns_and_nothing_else(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let owner_doc = app.upload_ok("three_pages.pdf").await;
    app.drain_jobs().await;
    app.add_webhook("http://93.184.216.34/in").await;
    let eve = app.another_user("eve@example.com").await;
    let response = app.upload_fixture_as(&eve, "one_page.pdf").await;
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    let other = browser();
    harness::log_in(&other, &app.address, "owner@example.com", TEST_PASSWORD).await;

    let page = app.get_text("/account/delete").await;
    assert!(page.contains("1 document(s)"), "{page}");
    let wrong = post_form(
        &app.client,
        &app,
        &app.user.csrf,
        "/account/delete",
        &[("password", "not my password")],
    )
    .await;
    assert_eq!(wrong.status(), 422);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("The password is wrong")
    );
    assert_eq!(app.db.count("users").await, 2, "nothing deleted");

    let deleted = post_form(
        &app.client,
        &app,
        &app.user.csrf,
        "/account/delete",
        &[("password", TEST_PASSWORD)],
    )
    .await;
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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_administrator_manages_accounts_from_the_command_line(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.upload_ok("one_page.pdf").await;
    app.another_user("eve@example.com").await;

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

    // A new password: the account's sessions end.
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

    // Sessions and tokens revoked.
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
    assert!(!signed_in(visit(&owner, &app, "/").await));
    assert_eq!(
        api_status(&app, &app.user.token, "/api/v1/documents").await,
        401
    );

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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_then_expires(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ok, out, err) = lector(&app, &["user", "reset-link", "owner@example.com"], "");
    assert!(ok, "{err}");
    let link = out.trim().to_owned();
    let prefix = format!("{}/reset/", app.address);
    assert!(link.starts_with(&prefix), "{link}");
    let token = link.trim_start_matches(&prefix);
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

    let visitor = browser();
    let page = visitor.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.unwrap();
    assert!(page.contains("owner@example.com"), "{page}");
    let csrf = csrf_from(&page).unwrap();
    let mismatch = post_form(
        &visitor,
        &app,
        &csrf,
        &format!("/reset/{token}"),
        &[("password", NEW_PASSWORD), ("confirm", "something else")],
    )
    .await;
    assert_eq!(mismatch.status(), 422);
    let done = post_form(
        &visitor,
        &app,
        &csrf,
        &format!("/reset/{token}"),
        &[("password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
    )
    .await;
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

    // An unused link past its time does not work either.
    let (ok, out, _) = lector(
        &app,
        &["user", "reset-link", "owner@example.com", "--minutes", "5"],
        "",
    );
    assert!(ok);
    app.db
        .execute("update password_resets set expires_at = created_at where used_at is null")
        .await;
    assert_eq!(visitor.get(out.trim()).send().await.unwrap().status(), 410);
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

/// OWASP's way: a guesser from one address waits longer and longer; guesses from many
/// addresses together slow down unknown clients of the account; the owner, from a browser
/// that logged in before or an address it logged in from, is not held back.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_stranger_guessing_slows_down_but_does_not_lock_the_owner_out(#[case] backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_TRUSTED_PROXY_HOPS", "1"),
            ("LECTOR_RATE_LOGIN_PER_IP", "1000"),
            ("LECTOR_LOGIN_FAILURES_PER_ADDRESS", "3"),
            ("LECTOR_LOGIN_FAILURES_PER_ACCOUNT", "6"),
        ],
    )
    .await;
    // The owner's browser has logged in before, from home.
    let owners_browser = browser();
    let response = log_in_from(
        &owners_browser,
        &app,
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
    let logged_out = post_form(&owners_browser, &app, &csrf, "/logout", &[]).await;
    assert_eq!(logged_out.status(), 303);

    // One guesser, one address: three free wrong passwords, then it waits, even with the
    // right one, which is not checked.
    let guesser = browser();
    for _ in 0..3 {
        let guess = log_in_from(&guesser, &app, "203.0.113.9", "owner@example.com", "guess").await;
        assert_eq!(guess.status(), 422);
    }
    let held = log_in_from(
        &guesser,
        &app,
        "203.0.113.9",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
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

    // Many addresses: each has free guesses, but the account's count grows.
    for n in 1..=3 {
        let guess = log_in_from(
            &browser(),
            &app,
            &format!("192.0.2.{n}"),
            "owner@example.com",
            "guess",
        )
        .await;
        assert_eq!(guess.status(), 422, "address {n}");
    }
    let stranger = log_in_from(
        &browser(),
        &app,
        "192.0.2.99",
        "owner@example.com",
        TEST_PASSWORD,
    )
    .await;
    assert_eq!(stranger.status(), 429, "an unknown client now waits");

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

/// Sign-up answers whether an e-mail has an account (it must, to be useful), so each address
/// may sign up only a few times an hour, whatever the answer; a typo costs nothing.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sign_up_tells_who_has_an_account_only_a_few_times_an_hour(#[case] backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_SIGNUP", "open"),
            ("LECTOR_TRUSTED_PROXY_HOPS", "1"),
            ("LECTOR_RATE_SIGNUPS_PER_HOUR", "2"),
        ],
    )
    .await;
    let sign_up = |address: &'static str, email: &'static str, confirm: &'static str| {
        let app = &app;
        async move {
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
    };
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
