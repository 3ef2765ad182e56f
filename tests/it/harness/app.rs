//! The real application in this test's process: [`TestApp`] starts it on `127.0.0.1:0` with a
//! fresh database and an account signed in, and talks to it over HTTP as the API and the
//! browser's forms do.

use std::{cell::RefCell, sync::Arc, time::Duration};

use lector::{config::Config, jobs::Worker, storage::Store};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    Backend, TEST_PASSWORD, TestDatabase, eventually, eventually_every, fixture, test_config,
};

/// Waits until `/healthz` answers: the listener is bound before the app starts, so this
/// only waits for migrations (bounded, no fixed sleep). Each request is bounded too: until
/// the app serves, the bound listener accepts connections that nothing answers.
pub async fn wait_until_healthy(client: &reqwest::Client, address: &str) {
    let url = format!("{address}/healthz");
    let healthy = eventually(Duration::from_secs(60), || {
        let request = client.get(&url).timeout(Duration::from_secs(1)).send();
        async move { request.await.ok()?.status().is_success().then_some(()) }
    })
    .await;
    assert!(
        healthy.is_some(),
        "the app at {address} did not become healthy"
    );
}

/// An account on a running app, and a client signed in as it: the API with its bearer token
/// (a default header) and the UI with its session cookie.
pub struct TestUser {
    pub email: String,
    pub token: String,
    pub client: reqwest::Client,
    /// The session's CSRF token, for the UI's forms.
    pub csrf: String,
}

/// Adds an account straight through the library (like `lector user add`) and an API token.
pub async fn create_account(config: &Config, email: &str) -> (lector::domain::User, String) {
    let store = lector::startup::connect(config).await.unwrap().store;
    let accounts = lector::app::accounts::Accounts::new(store, Arc::new(config.clone()));
    let user = accounts.add_user(email, TEST_PASSWORD).await.unwrap();
    let (_, token) = accounts.create_token(&user, "tests").await.unwrap();
    (user, token)
}

/// A client like a browser's: keeps cookies, does not follow redirects (tests look at them).
pub fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client that sends `token` on every request and keeps cookies.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The value of the first `csrf_token` hidden field of an HTML page.
pub fn csrf_from(html: &str) -> Option<String> {
    let start = html.find(r#"name="csrf_token" value=""#)? + r#"name="csrf_token" value=""#.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// Logs `client` in through the log-in form; returns the signed-in session's CSRF token.
pub async fn log_in(
    client: &reqwest::Client,
    address: &str,
    email: &str,
    password: &str,
) -> String {
    let page = client.get(format!("{address}/login")).send().await.unwrap();
    let csrf = csrf_from(&page.text().await.unwrap()).expect("the log-in form has a CSRF token");
    let response = client
        .post(format!("{address}/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "log-in as {email}");
    let index = client.get(format!("{address}/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    csrf_from(&index.text().await.unwrap()).expect("the index has a CSRF token")
}

/// The real application, started on a random port.
pub struct TestApp {
    pub address: String,
    /// Signed in as [`TestApp::user`], in the API (bearer token) and the UI (session).
    pub client: reqwest::Client,
    /// The account the app was started with.
    pub user: TestUser,
    pub db: TestDatabase,
    pub config: Config,
    pub store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts the app on `backend` with default test configuration.
    /// `None` when the test is skipped for want of a Postgres server ([`TestDatabase::new`]).
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the app on `backend` with extra `LECTOR_*` variables, and an account signed in.
    pub async fn spawn_with(backend: Backend, vars: &[(&str, &str)]) -> Option<Self> {
        Self::start(backend, vars, true).await
    }

    /// Starts the app with no account yet; `client` is anonymous (it keeps cookies).
    pub async fn spawn_without_accounts(backend: Backend, vars: &[(&str, &str)]) -> Option<Self> {
        Self::start(backend, vars, false).await
    }

    /// Starts the app, with an account signed in, on `db` as the test has prepared it.
    pub async fn spawn_on(db: TestDatabase, vars: &[(&str, &str)]) -> Self {
        Self::start_on(db, vars, true).await
    }

    async fn start(backend: Backend, vars: &[(&str, &str)], with_account: bool) -> Option<Self> {
        let db = TestDatabase::new(backend).await?;
        Some(Self::start_on(db, vars, with_account).await)
    }

    async fn start_on(db: TestDatabase, vars: &[(&str, &str)], with_account: bool) -> Self {
        let config = test_config(&db.url, vars);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(lector::startup::run(config.clone(), listener, async move {
            let _ = stopped.await;
        }));
        let anonymous = reqwest::Client::new();
        wait_until_healthy(&anonymous, &address).await;
        // The store used by the test itself: same database, its own pool (opened after the
        // app has migrated, so two migrators never race on SQLite).
        let store = lector::startup::connect(&config).await.unwrap().store;
        let user = if with_account {
            TestUser::new(&config, &address, "owner@example.com").await
        } else {
            TestUser {
                email: String::new(),
                token: String::new(),
                client: browser_client(),
                csrf: String::new(),
            }
        };
        TestApp {
            address,
            client: user.client.clone(),
            user,
            db,
            config,
            store,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The id of the account the app was started with.
    pub async fn user_id(&self) -> lector::domain::UserId {
        self.store
            .user_by_email(&self.user.email)
            .await
            .unwrap()
            .expect("the test account exists")
            .id
    }

    /// Another account on this app, signed in with its own client.
    pub async fn another_user(&self, email: &str) -> TestUser {
        TestUser::new(&self.config, &self.address, email).await
    }

    /// A POST to `path` as the owner, with no body: the API's actions (cancel, reprocess, ping).
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.unwrap()
    }

    /// A POST from one of the UI's pages (htmx's way: the CSRF token in a header).
    pub fn web_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("x-csrf-token", &self.user.csrf)
    }

    /// Posts `bytes` as `file_name` to the API, with an optional password.
    pub async fn upload_bytes(
        &self,
        bytes: Vec<u8>,
        file_name: &str,
        password: Option<&str>,
    ) -> reqwest::Response {
        let mut form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
        if let Some(password) = password {
            form = form.text("password", password.to_owned());
        }
        self.client
            .post(self.url("/api/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts a fixture to the API.
    pub async fn upload_fixture(&self, name: &str, password: Option<&str>) -> reqwest::Response {
        self.upload_bytes(std::fs::read(fixture(name)).unwrap(), name, password)
            .await
    }

    /// Posts a fixture to the API as `user` (another account on this app).
    pub async fn upload_fixture_as(&self, user: &TestUser, name: &str) -> reqwest::Response {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
        user.client
            .post(self.url("/api/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Registers a webhook for `url` through the API, which must accept it; returns its
    /// description with the signing secret.
    pub async fn add_webhook(&self, url: &str) -> Value {
        let response = self
            .client
            .post(self.url("/api/v1/webhooks"))
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let webhook: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "registering {url}: {webhook}");
        webhook
    }

    /// Uploads a fixture that must be accepted; returns the new document's id.
    pub async fn upload_ok(&self, name: &str) -> String {
        let response = self.upload_fixture(name, None).await;
        assert_eq!(response.status(), 202, "uploading {name}");
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// The body of `GET path` as text (an HTML page, `/metrics`, a text download).
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn document(&self, id: &str) -> Value {
        let (status, body) = self.get_json(&format!("/api/v1/documents/{id}")).await;
        assert_eq!(status, 200, "GET document {id}");
        body
    }

    /// A worker over this app's database, with this app's configuration.
    pub async fn worker(&self) -> Worker {
        self.worker_with(self.config.clone()).await
    }

    /// A worker with its own configuration (e.g. another sandbox executable).
    pub async fn worker_with(&self, config: Config) -> Worker {
        let engines = lector::startup::engines(&config).await.unwrap();
        Worker::new(self.store.clone(), engines, Arc::new(config))
    }

    /// Runs queued jobs until none is due.
    pub async fn drain_jobs(&self) {
        let worker = self.worker().await;
        let never = CancellationToken::new();
        while worker
            .run_next(&never)
            .await
            .expect("the queue is reachable")
        {}
    }

    /// Polls the API until the document has `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str, limit: Duration) {
        let reached = eventually(limit, || async move {
            (self.document(id).await["status"] == status).then_some(())
        })
        .await;
        assert!(reached.is_some(), "document {id} never became {status}");
    }

    /// Polls the API until the document has finished (for tests with real workers).
    pub async fn wait_until_finished(&self, id: &str, limit: Duration) -> Value {
        let last = &RefCell::new(Value::Null);
        eventually_every(limit, Duration::from_millis(50), || async move {
            let doc = self.document(id).await;
            if matches!(
                doc["status"].as_str(),
                Some("done" | "failed" | "cancelled")
            ) {
                return Some(doc);
            }
            *last.borrow_mut() = doc;
            None
        })
        .await
        .unwrap_or_else(|| panic!("document {id} did not finish: {}", last.borrow()))
    }

    /// Stops the server and its workers the way SIGTERM does.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestUser {
    /// Creates the account and signs a new client in as it.
    pub async fn new(config: &Config, address: &str, email: &str) -> Self {
        let (user, token) = create_account(config, email).await;
        let client = client_with_token(&token);
        let csrf = log_in(&client, address, &user.email, TEST_PASSWORD).await;
        TestUser {
            email: user.email,
            token,
            client,
            csrf,
        }
    }
}
