//! Completion webhooks against the real app on SQLite and Postgres, delivered by the real
//! sender to a receiver started in the test: the signature, the body, retries with backoff,
//! the delivery log in the API and the UI, a delivery picked up after its sender died, and
//! the refusal of internal addresses (at registration and when sending).

use lector::domain::WebhookId;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::harness::{self, Backend, TestApp};
use axum::{body::Bytes, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use lector::jobs::webhooks::WebhookSender;
use rstest::rstest;
use serde_json::{Value, json};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// An HTTP server on 127.0.0.1 that records what it is sent and answers with the statuses it
/// was given, in order (200 once they run out).
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answers: &[u16]) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let log = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                let answers = answers.clone();
                async move {
                    log.lock().unwrap().push(Received { headers, body });
                    let status = answers.lock().unwrap().pop_front().unwrap_or(200);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        format!("receiver answered {status}"),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, received }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// The app with webhooks to local receivers allowed (as a test must), retries due at once.
async fn app(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let mut vars = vec![
        ("LECTOR_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("LECTOR_WEBHOOK_RETRY_BASE_SECS", "0"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

/// Registers `url` through the API; returns (id, secret).
async fn register(app: &TestApp, url: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .json(&json!({ "url": url, "description": "tests" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering {url}");
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Asks for a ping event through the API, which queues it.
async fn ping(app: &TestApp, webhook: &str) {
    let response = app.post(&format!("/api/v1/webhooks/{webhook}/ping")).await;
    assert_eq!(response.status(), 202, "pinging {webhook}");
}

/// Sends due deliveries until none is left; returns how many were sent.
async fn deliver_all(sender: &WebhookSender) -> usize {
    let mut sent = 0;
    while sender.deliver_next().await.expect("the queue is reachable") {
        sent += 1;
    }
    sent
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("/api/v1/webhooks/{webhook}/deliveries"))
        .await;
    assert_eq!(status, 200);
    body["deliveries"].as_array().unwrap().clone()
}

/// Checks the signature the way a receiver would, with its own HMAC.
fn assert_signed(received: &Received, secret: &str) {
    let header = received.header("lector-signature");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {header:?}"));
    let timestamp: i64 = t.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - timestamp).abs() < 300,
        "the signed timestamp is now"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.body);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()), "signature");
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"whsec_another").unwrap();
    wrong.update(format!("{t}.").as_bytes());
    wrong.update(&received.body);
    assert_ne!(v1, hex::encode(wrong.finalize().into_bytes()));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_document_is_posted_signed_to_every_webhook(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let (webhook, secret) = register(&app, &receiver.url()).await;
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    // Another user's webhook must not hear of this user's documents.
    let other = app.another_user("other@example.com").await;
    let other_receiver = Receiver::start(&[]).await;
    let response = other
        .client
        .post(app.url("/api/v1/webhooks"))
        .json(&json!({ "url": other_receiver.url() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let id = app.upload_ok("three_pages.pdf").await;
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    assert_eq!(
        deliver_all(&sender).await,
        0,
        "nothing is sent before the end"
    );
    app.drain_jobs().await;
    assert_eq!(deliver_all(&sender).await, 1);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let event = &received[0];
    assert_signed(event, &secret);
    assert_eq!(event.header("lector-event"), "document.done");
    assert_eq!(event.header("content-type"), "application/json");
    assert!(event.header("user-agent").starts_with("Lector-Webhooks/"));
    let body = event.json();
    assert_document_done(&body, &webhook, &id);
    // The links work: the text behind them is the document's.
    let text = app.get_text(&format!("/api/v1/documents/{id}/text")).await;
    assert!(!text.trim().is_empty());
    assert!(other_receiver.received().is_empty());

    let log = deliveries(&app, &webhook).await;
    assert_delivered_once(&log, &body, event, &id);
}

/// The body of a `document.done` event for webhook `webhook` about the three-page document
/// `id`.
fn assert_document_done(body: &Value, webhook: &str, id: &str) {
    assert_eq!(body["type"], "document.done");
    assert_eq!(body["webhook"]["id"], webhook);
    assert_eq!(body["document"]["id"], id);
    assert_eq!(body["document"]["file_name"], "three_pages.pdf");
    assert_eq!(body["document"]["status"], "done");
    assert_eq!(body["document"]["page_count"], 3);
    assert_eq!(body["document"]["pages_done"], 3);
    assert_eq!(body["document"]["pages_failed"], 0);
    assert_eq!(body["document"]["error"], Value::Null);
    assert_eq!(
        body["links"]["text"],
        format!("http://localhost:8080/api/v1/documents/{id}/text")
    );
}

/// The delivery log after one delivery of `body` as `event`, answered 200.
fn assert_delivered_once(log: &[Value], body: &Value, event: &Received, id: &str) {
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["event"], "document.done");
    assert_eq!(log[0]["event_id"], body["id"]);
    assert_eq!(log[0]["document_id"], id);
    assert_eq!(log[0]["id"].to_string(), event.header("lector-delivery"));
    assert_eq!(log[0]["log"][0]["status_code"], 200);
    assert_eq!(
        log[0]["log"][0]["response_excerpt"],
        "receiver answered 200"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn failed_deliveries_are_retried_with_the_same_event_then_given_up(#[case] backend: Backend) {
    let Some(app) = app(backend, &[("LECTOR_WEBHOOK_MAX_ATTEMPTS", "3")]).await else {
        return;
    };
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();

    // Two failures, then success.
    let flaky = Receiver::start(&[500, 503]).await;
    let (webhook, secret) = register(&app, &flaky.url()).await;
    ping(&app, &webhook).await;
    assert_eq!(deliver_all(&sender).await, 3);
    let received = flaky.received();
    assert_eq!(received.len(), 3);
    for attempt in &received {
        assert_signed(attempt, &secret);
        assert_eq!(attempt.header("lector-event"), "ping");
        assert_eq!(attempt.json()["id"], received[0].json()["id"], "one event");
    }
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 3);
    let codes: Vec<&Value> = log[0]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(
        log[0]["log"][0]["error"],
        "answered 500 Internal Server Error"
    );

    // Always failing: given up after the configured attempts.
    let down = Receiver::start(&[500, 500, 500, 500]).await;
    let (webhook, _) = register(&app, &down.url()).await;
    ping(&app, &webhook).await;
    assert_eq!(deliver_all(&sender).await, 3);
    assert_eq!(down.received().len(), 3);
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["next_attempt_at"], Value::Null);
    assert!(log[0]["finished_at"].is_string());

    // Nothing listening: the connection error is logged and retried.
    let closed = harness::free_port();
    let (webhook, _) = register(&app, &format!("http://127.0.0.1:{closed}/hook")).await;
    ping(&app, &webhook).await;
    assert_eq!(deliver_all(&sender).await, 3);
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["status"], "failed");
    let error = log[0]["last_error"].as_str().unwrap();
    assert!(error.starts_with("could not connect"), "{error}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn retries_wait_longer_each_time(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("LECTOR_WEBHOOK_RETRY_BASE_SECS", "60"),
        ],
    )
    .await
    else {
        return;
    };
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    let down = Receiver::start(&[500, 500]).await;
    let (webhook, _) = register(&app, &down.url()).await;
    ping(&app, &webhook).await;
    assert_eq!(deliver_all(&sender).await, 1, "the retry is not due yet");
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["status"], "queued");
    let next: chrono::DateTime<chrono::Utc> =
        log[0]["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - chrono::Utc::now()).num_seconds();
    assert!(
        (50..=61).contains(&wait),
        "first retry in ~60 s, got {wait}"
    );

    // Make it due; after the second failure the wait doubles.
    app.db
        .execute("update webhook_deliveries set run_at = created_at")
        .await;
    assert_eq!(deliver_all(&sender).await, 1);
    let log = deliveries(&app, &webhook).await;
    let next: chrono::DateTime<chrono::Utc> =
        log[0]["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - chrono::Utc::now()).num_seconds();
    assert!(
        (110..=121).contains(&wait),
        "second retry in ~120 s, got {wait}"
    );
    assert_eq!(down.received().len(), 2);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_document_and_a_dead_sender_are_reported(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let (webhook, _) = register(&app, &receiver.url()).await;
    let id = app.upload_ok("one_page.pdf").await;
    // The job fails for good (as when every attempt has failed).
    let job = app
        .store
        .claim_job("test-worker", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    app.store
        .fail_job(&job, "test-worker", "the PDF could not be read")
        .await
        .unwrap();
    // A sender claims the delivery and dies before recording anything (its lease runs out).
    let claimed = app
        .store
        .claim_delivery("dead-sender", Duration::ZERO)
        .await
        .unwrap()
        .expect("the failure queued a delivery");
    assert_eq!(claimed.delivery.attempts, 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    assert_eq!(deliver_all(&sender).await, 1);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let body = received[0].json();
    assert_eq!(body["type"], "document.failed");
    assert_eq!(body["document"]["id"], id.as_str());
    assert_eq!(body["document"]["status"], "failed");
    assert_eq!(body["document"]["error"], "the PDF could not be read");
    let log = deliveries(&app, &webhook).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 2);
    // The dead sender's late record is refused: the delivery is no longer its.
    let late = lector::storage::webhooks::AttemptOutcome {
        duration: Duration::from_millis(5),
        status_code: Some(500),
        error: Some("late".into()),
        response_excerpt: None,
        retry_after: Some(Duration::ZERO),
    };
    assert!(
        !app.store
            .record_attempt(&claimed, "dead-sender", &late)
            .await
            .unwrap()
    );
    assert_eq!(deliveries(&app, &webhook).await[0]["status"], "delivered");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn internal_addresses_are_refused(#[case] backend: Backend) {
    // The default: internal addresses refused.
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WEBHOOK_RETRY_BASE_SECS", "0")]).await
    else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    for (url, reason) in [
        (receiver.url(), "a loopback address (127.0.0.1)"),
        (
            format!("http://localhost:{}/hook", receiver.port),
            "a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "a link-local address",
        ),
        ("http://[::1]:8080/".into(), "a loopback address (::1)"),
        ("http://[::ffff:10.0.0.1]/".into(), "a private address"),
        ("http://10.1.2.3/hook".into(), "a private address"),
        ("http://192.168.0.10/".into(), "a private address"),
        ("http://2130706433/".into(), "a loopback address"),
        (
            "ftp://example.com/hook".into(),
            "must start with https:// or http://",
        ),
        (
            "file:///etc/passwd".into(),
            "must start with https:// or http://",
        ),
        ("not a url".into(), "This is not a URL"),
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/webhooks"))
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{url}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid-webhook", "{url}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{url}: {detail}");
    }
    let response = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .body("{\"uri\": 1}")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(app.db.count("webhooks").await, 0, "nothing was stored");
}

/// The form shows why an address is refused and keeps what was typed.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_form_says_why_an_internal_address_is_refused(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WEBHOOK_RETRY_BASE_SECS", "0")]).await
    else {
        return;
    };
    let page = app
        .web_post("/webhooks")
        .form(&[
            ("url", "http://169.254.169.254/latest/"),
            ("description", "metadata <b>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 422);
    let html = page.text().await.unwrap();
    assert!(html.contains("is a link-local address"), "{html}");
    assert!(html.contains(r#"value="http://169.254.169.254/latest/""#));
    assert!(html.contains("metadata &#60;b&#62;"));
    assert_eq!(app.db.count("webhooks").await, 0);
}

/// A URL stored before the guard (or a name that now resolves inward) is refused when
/// sending, without a request and without retries.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_internal_address_is_refused_when_sending_and_not_retried(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WEBHOOK_RETRY_BASE_SECS", "0")]).await
    else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let owner = app.user_id().await;
    for (id, url) in [
        ("w-literal", receiver.url()),
        ("w-name", format!("http://localhost:{}/hook", receiver.port)),
    ] {
        app.db
            .execute(&format!(
                "insert into webhooks (id, owner_id, url, description, secret) \
                 values ('{id}', '{owner}', '{url}', '', 'whsec_x')"
            ))
            .await;
        app.store.queue_ping(&id.into(), "event").await.unwrap();
    }
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    assert_eq!(deliver_all(&sender).await, 2);
    assert!(receiver.received().is_empty(), "no request reached it");
    for id in ["w-literal", "w-name"] {
        let log = deliveries(&app, id).await;
        assert_eq!(log[0]["status"], "failed", "{id}");
        assert_eq!(
            log[0]["attempts"], 1,
            "{id}: refused addresses are not retried"
        );
        let error = log[0]["last_error"].as_str().unwrap();
        assert!(error.contains("is a loopback address"), "{id}: {error}");
    }
}

/// Makes a webhook for `receiver` through the browser's form; returns its id and the signing
/// secret the page showed (once).
async fn webhook_made_in_the_browser(app: &TestApp, receiver: &Receiver) -> (String, String) {
    let created = app
        .web_post("/webhooks")
        .form(&[
            ("url", receiver.url().as_str()),
            ("description", "wiki index"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let html = created.text().await.unwrap();
    let start = html
        .find(r#"<code id="new-secret">"#)
        .expect("the secret is shown")
        + 22;
    let secret = html[start..start + html[start..].find('<').unwrap()].to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, list) = app.get_json("/api/v1/webhooks").await;
    let id = list["webhooks"][0]["id"].as_str().unwrap().to_owned();
    assert!(list["webhooks"][0].get("secret").is_none());
    (id, secret)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_made_in_the_browser_shows_its_secret_once(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let html = app.get_text("/webhooks").await;
    assert!(html.contains("No webhooks yet"));
    let (_, secret) = webhook_made_in_the_browser(&app, &receiver).await;
    let again = app.get_text("/webhooks").await;
    assert!(!again.contains(&secret), "the secret is shown only once");
    assert!(again.contains("wiki index"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn a_ping_from_the_browser_shows_in_the_delivery_log(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let (id, secret) = webhook_made_in_the_browser(&app, &receiver).await;
    let page = app.get_text(&format!("/webhooks/{id}")).await;
    assert!(page.contains("Nothing sent yet"));
    let ping = app
        .web_post(&format!("/webhooks/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 303);
    let page = app.get_text(&format!("/webhooks/{id}")).await;
    assert!(page.contains("waiting to be sent"), "{page}");
    assert!(
        page.contains("hx-trigger=\"every 2s\""),
        "the log refreshes while pending"
    );
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    assert_eq!(deliver_all(&sender).await, 1);
    assert_signed(&receiver.received()[0], &secret);
    let page = app.get_text(&format!("/webhooks/{id}")).await;
    assert!(page.contains("delivered (200)"), "{page}");
    assert!(page.contains("receiver answered 200"));
    assert!(!page.contains("hx-trigger=\"every 2s\""));
}

/// Someone else's webhook is not found, in the UI and the API.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn another_user_s_webhook_is_not_found_in_the_browser_or_the_api(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let (id, _) = webhook_made_in_the_browser(&app, &receiver).await;
    let other = app.another_user("other@example.com").await;
    let response = other
        .client
        .get(app.url(&format!("/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    for request in [
        other.client.get(app.url(&format!("/api/v1/webhooks/{id}"))),
        other
            .client
            .delete(app.url(&format!("/api/v1/webhooks/{id}"))),
        other
            .client
            .post(app.url(&format!("/api/v1/webhooks/{id}/ping"))),
        other
            .client
            .get(app.url(&format!("/api/v1/webhooks/{id}/deliveries"))),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["detail"], "no such webhook");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_webhook_in_the_browser_removes_its_deliveries(#[case] backend: Backend) {
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let receiver = Receiver::start(&[]).await;
    let (id, _) = webhook_made_in_the_browser(&app, &receiver).await;
    ping(&app, &id).await;
    let sender = WebhookSender::new(app.store.clone(), &app.config).unwrap();
    assert_eq!(deliver_all(&sender).await, 1);
    let deleted = app
        .web_post(&format!("/webhooks/{id}/delete"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(app.db.count("webhooks").await, 0);
    assert_eq!(app.db.count("webhook_deliveries").await, 0);
    assert_eq!(app.db.count("webhook_attempts").await, 0);
    let (status, _) = app.get_json(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, 404);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn the_number_of_webhooks_is_limited(#[case] backend: Backend) {
    let Some(app) = app(backend, &[("LECTOR_WEBHOOKS_PER_USER", "2")]).await else {
        return;
    };
    register(&app, "http://127.0.0.1:9/a").await;
    let (second, _) = register(&app, "http://127.0.0.1:9/b").await;
    let response = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .json(&json!({ "url": "http://127.0.0.1:9/c" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("may have 2 webhooks")
    );
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/webhooks/{second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    register(&app, "http://127.0.0.1:9/c").await;
}

/// The key the app sealed its secrets with: the key file beside the SQLite database, the
/// configured key on Postgres.
fn current_key(app: &TestApp) -> String {
    match app.db.backend {
        Backend::Sqlite => {
            let db = std::path::PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
            std::fs::read_to_string(db.with_file_name("lector-secret.key")).unwrap()
        }
        Backend::Postgres => harness::TEST_SECRET_KEY.to_owned(),
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn stored_secrets_are_sealed_at_start_and_follow_a_key_rotation(#[case] backend: Backend) {
    let receiver = Receiver::start(&[]).await;
    let Some(app) = app(backend, &[]).await else {
        return;
    };
    let owner = app.user_id().await;
    app.db
        .execute(&format!(
            "insert into webhooks (id, owner_id, url, description, secret) \
             values ('w-old', '{owner}', '{}', '', 'whsec_stored_in_the_clear')",
            receiver.url()
        ))
        .await;
    let stored = || {
        app.db
            .query_text("select secret from webhooks where id = 'w-old'")
    };
    assert_eq!(stored().await.unwrap(), "whsec_stored_in_the_clear");
    // What `lector serve`, `worker` and `migrate` do at start.
    assert_eq!(app.store.seal_stored_secrets().await.unwrap(), 1);
    let sealed = stored().await.unwrap();
    assert!(sealed.starts_with("sealed1:"), "{sealed}");
    assert_eq!(app.store.seal_stored_secrets().await.unwrap(), 0, "once");
    assert_eq!(ping_w_old(&app.store, &app.config, "e1").await, 1);
    assert_signed(&receiver.received()[0], "whsec_stored_in_the_clear");

    // Rotation: a new key, the old one as previous.
    let old_key = current_key(&app);
    let old_key = old_key.trim();
    let new_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let (store, _) = with_keys(&app, new_key, Some(old_key)).await;
    assert_eq!(store.seal_stored_secrets().await.unwrap(), 1);
    assert_ne!(
        stored().await.unwrap(),
        sealed,
        "sealed again under the new key"
    );
    let (store, config) = with_keys(&app, new_key, None).await;
    assert_eq!(ping_w_old(&store, &config, "e2").await, 1);
    assert_signed(&receiver.received()[1], "whsec_stored_in_the_clear");

    // A process given only the old key cannot open it: no delivery goes out unsigned or
    // signed with something else.
    let (store, config) = with_keys(&app, old_key, None).await;
    store
        .queue_ping(&WebhookId::from("w-old"), "e3")
        .await
        .unwrap();
    let sender = WebhookSender::new(store.clone(), &config).unwrap();
    assert!(sender.deliver_next().await.is_err());
    assert_eq!(receiver.received().len(), 2, "nothing more was sent");
}

/// A store on the app's database for a process given `key` (and `previous`), with its
/// configuration.
async fn with_keys(
    app: &TestApp,
    key: &str,
    previous: Option<&str>,
) -> (Arc<dyn lector::storage::Store>, lector::config::Config) {
    let mut vars = vec![
        ("LECTOR_SECRET_KEY", key),
        ("LECTOR_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    vars.extend(previous.map(|previous| ("LECTOR_SECRET_KEY_PREVIOUS", previous)));
    let config = harness::test_config(&app.db.url, &vars);
    let store = lector::startup::connect(&config).await.unwrap().store;
    (store, config)
}

/// Queues a ping of webhook `w-old` as event `event` and sends what is due with `store`
/// and `config`; how many were sent.
async fn ping_w_old(
    store: &Arc<dyn lector::storage::Store>,
    config: &lector::config::Config,
    event: &str,
) -> usize {
    store
        .queue_ping(&WebhookId::from("w-old"), event)
        .await
        .unwrap();
    deliver_all(&WebhookSender::new(store.clone(), config).unwrap()).await
}
