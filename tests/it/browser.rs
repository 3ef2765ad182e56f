//! End to end in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver) with fantoccini, against the real app with a real worker. Sign up, upload a
//! multi-page PDF, watch the progress arrive over Server-Sent Events until the text appears (under the strict
//! Content-Security-Policy), read page 2, download the text, create and use an API token, log
//! out, and check that a second account cannot see the first one's document.
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them); says plainly that it was
//! skipped when they are missing. With `LECTOR_SCREENSHOTS=1` it saves the screenshots shown
//! in the README under `docs/screenshots/`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::harness::{
    Backend, LectorServer, TEST_PASSWORD, TestDatabase, create_account, eventually,
    eventually_every, fixture, free_port, test_config, test_settings,
};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let status = format!("{url}/status");
    // If it never answers, opening the session says so.
    let _ = eventually(Duration::from_secs(10), || {
        let request = probe.get(&status).send();
        async move { request.await.ok()?.status().is_success().then_some(()) }
    })
    .await;
    Driver {
        child,
        url,
        _profile: tempfile::tempdir().unwrap(),
    }
}

/// A headless Chromium session. The flags keep it off this machine's closed network.
async fn browser(driver: &Driver) -> Client {
    // ring and aws-lc-rs are both linked (reqwest, the AWS SDK): rustls needs to be told.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = driver._profile.path().display().to_string();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={profile}"),
            ],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver opens a Chromium session")
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of the element `css`, waiting for it to appear (a click that navigates returns
/// before the next page has loaded).
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the browser is at `path` (after a click or a redirect).
async fn wait_for_path(client: &Client, path: &str) {
    let arrived = eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async move { (client.current_url().await.unwrap().path() == path).then_some(()) },
    )
    .await;
    assert!(
        arrived.is_some(),
        "the browser stayed at {} instead of {path}",
        client.current_url().await.unwrap()
    );
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var_os("LECTOR_SCREENSHOTS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

fn tools_present() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

#[tokio::test]
async fn a_person_signs_up_uploads_reads_downloads_uses_a_token_and_stays_private() {
    if !tools_present() {
        println!(
            "skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let app = App::start().await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    let outcome = run_journey(&app, &client).await;
    client.close().await.unwrap();
    outcome.unwrap();
}

/// The real app, with no account yet and a worker, as a `lector serve` process of its own:
/// the journey counts the requests the page made in `/metrics`, and the recorder behind it is
/// the process's, which other tests' requests would reach in this one.
struct App {
    server: LectorServer,
    db: TestDatabase,
}

impl App {
    async fn start() -> Self {
        let db = TestDatabase::new(Backend::Sqlite)
            .await
            .expect("SQLite is always there");
        let settings = test_settings(
            &db.url,
            &[("LECTOR_WORKERS", "1"), ("LECTOR_POLL_INTERVAL_MS", "100")],
        );
        App {
            server: LectorServer::start(&settings).await,
            db,
        }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

async fn run_journey(app: &App, client: &Client) -> Result<(), String> {
    sign_up(app, client).await;
    let id = upload_and_read(client).await?;
    followed_over_events_not_polling(app).await;
    download_the_text(client).await;
    client.goto(&app.url("/")).await.unwrap();
    assert!(
        text_of(client, "table.documents")
            .await
            .contains("three_pages.pdf")
    );
    screenshot(client, "index.png").await;

    create_and_use_a_token(app, client, &id).await;
    a_second_account_sees_nothing_of_the_first(app, client, &id).await;
    Ok(())
}

/// Signs up as the first visitor, who is sent to the sign-up page; a mistake first.
async fn sign_up(app: &App, client: &Client) {
    client.goto(&app.url("/")).await.unwrap();
    wait_for_path(client, "/signup").await;
    fill(client, "#email", "ada@example.com").await;
    fill(client, "#password", TEST_PASSWORD).await;
    fill(client, "#confirm", "not the same").await;
    click(client, "form[action='/signup'] button[type=submit]").await;
    assert!(
        text_of(client, "#signup-error")
            .await
            .contains("do not match")
    );
    fill(client, "#password", TEST_PASSWORD).await;
    fill(client, "#confirm", TEST_PASSWORD).await;
    click(client, "form[action='/signup'] button[type=submit]").await;
    assert_eq!(text_of(client, "#signed-in-as").await, "ada@example.com");
}

/// Uploads a multi-page PDF and waits on its page until the text appears (the page follows
/// the extraction live); returns the document's id.
async fn upload_and_read(client: &Client) -> Result<String, String> {
    let pdf: PathBuf = fixture("three_pages.pdf");
    client
        .find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(&pdf.display().to_string())
        .await
        .unwrap();
    click(client, "form[action='/documents'] button[type=submit]").await;
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#progress"))
        .await
        .map_err(|e| format!("the document page did not open: {e}"))?;
    let url = client.current_url().await.unwrap();
    assert!(url.path().starts_with("/documents/"), "{url}");
    let id = url.path().trim_start_matches("/documents/").to_owned();
    let page_two = client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#page-2 .page-text"))
        .await
        .map_err(|e| format!("the text never appeared: {e}"))?;
    let text = page_two.text().await.unwrap();
    assert!(
        text.contains("Page two talks about zebras and quartz watches."),
        "{text}"
    );
    assert!(text_of(client, "#progress").await.contains("3 of 3 pages"));
    screenshot(client, "document.png").await;
    Ok(id)
}

/// The page followed the extraction over its event stream, not by polling: the progress
/// fragment was asked for at most once (the reload when the stream said done).
async fn followed_over_events_not_polling(app: &App) {
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = |route: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("lector_http_requests_total")
                    && l.contains(&format!("route=\"{route}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert!(
        requests("/documents/{id}/events") >= 1,
        "the page opened the event stream:\n{metrics}"
    );
    assert!(
        requests("/documents/{id}/progress") <= 1,
        "the page did not poll:\n{metrics}"
    );
}

/// Downloads the text, as the link does (same session, same origin).
async fn download_the_text(client: &Client) {
    let href = client
        .find(Locator::Css("a[href$='/text.txt']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let downloaded = client
        .execute_async(
            "const [url, done] = arguments; \
             fetch(url).then(r => r.text().then(t => done([r.status, r.headers.get('content-disposition'), t])));",
            vec![json!(href)],
        )
        .await
        .unwrap();
    assert_eq!(downloaded[0], 200);
    assert!(downloaded[1].as_str().unwrap().contains("three_pages.txt"));
    let pages: Vec<&str> = downloaded[2].as_str().unwrap().split('\x0c').collect();
    assert_eq!(pages.len(), 3);
    assert!(pages[1].contains("zebras and quartz"));
}

/// An API token, created in the UI and used by a script, shown once.
async fn create_and_use_a_token(app: &App, client: &Client, id: &str) {
    click(client, "a[href='/tokens']").await;
    text_of(client, "#token-name").await;
    fill(client, "#token-name", "backup script").await;
    click(client, "form[action='/tokens'] button[type=submit]").await;
    let token = text_of(client, "#new-token").await;
    assert!(token.starts_with("lector_"), "{token}");
    let listed: Value = reqwest::Client::new()
        .get(app.url("/api/v1/documents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["documents"][0]["id"], id);
    client.goto(&app.url("/tokens")).await.unwrap();
    assert!(
        !client.source().await.unwrap().contains(&token),
        "shown once"
    );
    assert!(text_of(client, "#tokens").await.contains("backup script"));
}

/// Logs out; a second account sees nothing of the first one's.
async fn a_second_account_sees_nothing_of_the_first(app: &App, client: &Client, id: &str) {
    click(client, "#log-out").await;
    wait_for_path(client, "/login").await;
    client.goto(&app.url("/")).await.unwrap();
    wait_for_path(client, "/login").await;
    create_account(&test_config(&app.db.url, &[]), "eve@example.com").await;
    fill(client, "#email", "eve@example.com").await;
    fill(client, "#password", TEST_PASSWORD).await;
    click(client, "form[action='/login'] button[type=submit]").await;
    assert_eq!(text_of(client, "#signed-in-as").await, "eve@example.com");
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains("Nothing uploaded yet.")
    );
    client
        .goto(&app.url(&format!("/documents/{id}")))
        .await
        .unwrap();
    let heading = text_of(client, "h1").await;
    assert!(heading.contains("404"), "{heading}");
    assert!(!client.source().await.unwrap().contains("zebras"));
}
