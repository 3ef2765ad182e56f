//! The real `lector` binary as separate processes: killed with SIGKILL mid-batch and
//! restarted, two worker processes sharing one Postgres database, and SIGTERM handing a
//! running job back, and what a production process logs (JSON lines, no secrets). Every
//! child is killed when its guard is dropped.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::harness::{
    self, Backend, Lector, LectorServer, TestDatabase, cli_token, client_with_token, corpus_dir,
    distinct_copy, eventually, eventually_every, fixture,
};
use reqwest::multipart::{Form, Part};
use rstest::rstest;
use serde_json::Value;

/// The settings of these tests' processes on `db` (short leases and polls), then `vars`.
fn settings<'a>(db: &'a TestDatabase, vars: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("LECTOR_SECRET_KEY", harness::TEST_SECRET_KEY),
        ("LECTOR_JOB_LEASE_SECS", "2"),
        ("LECTOR_POLL_INTERVAL_MS", "100"),
        ("LECTOR_JOB_RETRY_BASE_SECS", "0"),
        ("LECTOR_DATABASE_MAX_CONNECTIONS", "6"),
    ];
    all.extend_from_slice(vars);
    all
}

/// `lector serve` on `db`, and an API client with a token made by `lector token create`.
struct Server {
    lector: LectorServer,
    token: String,
    client: reqwest::Client,
}

impl Server {
    /// Starts `lector serve` on a free port and waits until `/healthz` answers.
    async fn start(db: &TestDatabase, vars: &[(&str, &str)]) -> Self {
        let lector = LectorServer::start(&settings(db, vars)).await;
        let token = cli_token(&db.url);
        Server {
            lector,
            client: client_with_token(&token),
            token,
        }
    }

    fn process(&self) -> &Lector {
        &self.lector.process
    }

    fn url(&self, path: &str) -> String {
        self.lector.url(path)
    }

    /// Uploads `bytes`; it must be accepted. Returns the document id.
    async fn upload(&self, bytes: Vec<u8>, file_name: &str) -> String {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
        self.upload_form(form, file_name).await
    }

    /// Posts the upload `form` (of `file_name`); it must be accepted. Returns the document id.
    async fn upload_form(&self, form: Form, file_name: &str) -> String {
        let body = self.lector.upload(&self.client, form, file_name).await;
        body["id"].as_str().unwrap().to_owned()
    }

    /// Every document, by id.
    async fn documents(&self) -> BTreeMap<String, Value> {
        self.lector.documents(&self.client).await
    }

    async fn document(&self, id: &str) -> Value {
        self.client
            .get(self.url(&format!("/api/v1/documents/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls until every document is done (bounded); returns them.
    async fn wait_until_all_done(&self, limit: Duration) -> BTreeMap<String, Value> {
        let last = &RefCell::new(BTreeMap::new());
        eventually_every(limit, Duration::from_millis(100), || async move {
            let documents = self.documents().await;
            if documents.values().all(|doc| doc["status"] == "done") {
                return Some(documents);
            }
            *last.borrow_mut() = documents;
            None
        })
        .await
        .unwrap_or_else(|| {
            let states: Vec<String> = last
                .borrow()
                .values()
                .map(|d| format!("{} {} {}", d["file_name"], d["status"], d["status_label"]))
                .collect();
            panic!("not every document was done within {limit:?}: {states:#?}");
        })
    }
}

/// Checks, in the database, that every document has exactly one row per page.
async fn assert_one_row_per_page(db: &TestDatabase, documents: &BTreeMap<String, Value>) {
    for (id, doc) in documents {
        let page_count = doc["page_count"].as_i64().unwrap();
        assert_eq!(doc["status"], "done", "{doc}");
        assert_eq!(doc["pages_done"].as_i64(), Some(page_count), "{doc}");
        let rows = db
            .query_i64(&format!(
                "select count(*) from pages where document_id = '{id}'"
            ))
            .await;
        let distinct = db
            .query_i64(&format!(
                "select count(distinct page_number) from pages where document_id = '{id}'"
            ))
            .await;
        assert_eq!(rows, page_count, "page rows of {}", doc["file_name"]);
        assert_eq!(
            distinct, page_count,
            "distinct pages of {}",
            doc["file_name"]
        );
    }
}

/// Pages a large document must have stored before its process is stopped, so that the
/// restart has to skip them.
const MIN_PAGES_STORED: i64 = 10;

fn large_corpus_file() -> Option<PathBuf> {
    corpus_dir()
        .map(|dir| dir.join("text/syn_large_500p.pdf"))
        .filter(|path| path.is_file())
}

/// Uploads twelve documents; with the corpus, two of them are 500 pages long so that one is
/// surely being extracted when the process dies. Returns their ids, and whether the large
/// ones are in the batch.
async fn upload_a_batch(server: &Server) -> (Vec<String>, bool) {
    let small = std::fs::read(fixture("twelve_pages.pdf")).unwrap();
    let large = large_corpus_file().map(|path| std::fs::read(path).unwrap());
    let mut ids = Vec::new();
    for n in 0..12 {
        let (bytes, name) = match &large {
            Some(large) if n == 4 || n == 11 => (distinct_copy(large, n), format!("large{n}.pdf")),
            _ => (distinct_copy(&small, n), format!("small{n}.pdf")),
        };
        ids.push(server.upload(bytes, &name).await);
    }
    if large.is_none() {
        println!("note: ../shared/corpus is not present; the batch has only small documents");
    }
    (ids, large.is_some())
}

/// Waits until some documents are done and some are not (and, with a large one in the
/// batch, until one has some of its pages stored); returns the documents as they were then.
async fn some_done_and_some_in_flight(server: &Server, large: bool) -> BTreeMap<String, Value> {
    let last = &RefCell::new(BTreeMap::new());
    eventually(Duration::from_secs(120), || async move {
        let documents = server.documents().await;
        let done = documents.values().filter(|d| d["status"] == "done").count();
        let partly = documents.values().any(|d| {
            d["status"] == "processing"
                && d["pages_done"].as_i64().unwrap() >= MIN_PAGES_STORED
                && d["pages_done"].as_i64() < d["page_count"].as_i64()
        });
        let ready = done > 0 && done < documents.len() && (!large || partly);
        if ready || done == documents.len() {
            return Some(documents);
        }
        *last.borrow_mut() = documents;
        None
    })
    .await
    .unwrap_or_else(|| panic!("no progress: {:#?}", last.borrow()))
}

/// The documents being extracted, as `name (pages done of page count)`.
fn in_flight(documents: &BTreeMap<String, Value>) -> Vec<String> {
    documents
        .values()
        .filter(|d| d["status"] == "processing")
        .map(|d| {
            format!(
                "{} ({} of {})",
                d["file_name"], d["pages_done"], d["page_count"]
            )
        })
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_server_killed_mid_batch_finishes_every_document_after_restart_without_duplicate_pages(
    #[case] backend: Backend,
) {
    let started = Instant::now();
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let first = Server::start(&db, &[("LECTOR_WORKERS", "1")]).await;
    let (ids, large) = upload_a_batch(&first).await;
    let before_kill = some_done_and_some_in_flight(&first, large).await;
    first.process().kill_hard();
    let done_before = before_kill
        .values()
        .filter(|d| d["status"] == "done")
        .count();
    let in_flight = in_flight(&before_kill);
    println!(
        "{backend:?}: killed after {:.1}s with {done_before} of 12 done, in flight: {in_flight:?}",
        started.elapsed().as_secs_f64()
    );
    if done_before == before_kill.len() {
        println!("note: the whole batch finished before the kill; only the restart is tested");
    }

    let second = Server::start(&db, &[("LECTOR_WORKERS", "1")]).await;
    let restarted = Instant::now();
    let documents = second.wait_until_all_done(Duration::from_secs(300)).await;
    println!(
        "{backend:?}: after the restart everything was done in {:.1}s",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(documents.len(), 12);
    for id in &ids {
        assert!(documents.contains_key(id), "document {id} is missing");
    }
    assert_one_row_per_page(&db, &documents).await;
    // The job that was running when the process died is reclaimed once its lease expires:
    // that is its second attempt; every other job ran once.
    let second_attempts = db.count("jobs where attempts = 2").await;
    let first_attempts = db.count("jobs where attempts = 1").await;
    println!("{backend:?}: jobs on their first attempt {first_attempts}, second {second_attempts}");
    if large {
        assert_eq!(second_attempts, in_flight.len() as i64, "{in_flight:?}");
        assert_eq!(first_attempts, 12 - second_attempts);
    } else {
        assert_eq!(first_attempts + second_attempts, 12);
    }
    assert!(
        second.process().log().contains("document extracted"),
        "the restarted server extracted something"
    );
    println!(
        "{backend:?}: kill and restart test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn two_worker_processes_on_one_postgres_database_process_each_document_exactly_once() {
    let started = Instant::now();
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    // Web only: it takes the uploads and extracts nothing itself.
    let web = Server::start(&db, &[("LECTOR_WORKERS", "0")]).await;
    let twelve = std::fs::read(fixture("twelve_pages.pdf")).unwrap();
    let three = std::fs::read(fixture("three_pages.pdf")).unwrap();
    for n in 0..20 {
        let bytes = if n % 2 == 0 { &twelve } else { &three };
        web.upload(distinct_copy(bytes, n), &format!("doc{n}.pdf"))
            .await;
    }
    let queued = db
        .query_i64("select count(*) from jobs where status = 'queued' and attempts = 0")
        .await;
    assert_eq!(queued, 20, "nothing runs before the worker processes start");

    // A lease long enough that no job is taken over for being slow on a busy machine: what
    // is tested here is that two processes never claim the same queued job.
    let worker_vars = [("LECTOR_WORKERS", "2"), ("LECTOR_JOB_LEASE_SECS", "30")];
    let workers = [
        Lector::start("worker", &settings(&db, &worker_vars)),
        Lector::start("worker", &settings(&db, &worker_vars)),
    ];
    let documents = web.wait_until_all_done(Duration::from_secs(300)).await;
    println!(
        "Postgres: 20 documents done by two worker processes in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(documents.len(), 20);
    assert_one_row_per_page(&db, &documents).await;
    assert_eq!(db.query_i64("select count(*) from jobs").await, 20);
    assert_eq!(
        db.query_i64("select count(*) from jobs where attempts <> 1")
            .await,
        0,
        "every job was claimed exactly once"
    );
    assert_eq!(
        db.query_i64("select count(*) from jobs where status <> 'done'")
            .await,
        0
    );
    // Each worker process logs one line per document it finished.
    let extracted: Vec<usize> = workers
        .iter()
        .map(|w| w.log().matches("document extracted").count())
        .collect();
    println!("Postgres: documents extracted per worker process: {extracted:?}");
    assert_eq!(
        extracted.iter().sum::<usize>(),
        20,
        "each document was extracted once, by one process"
    );
    assert!(
        extracted.iter().all(|&n| n > 0),
        "both worker processes took work: {extracted:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sigterm_hands_running_jobs_back_and_stops_cleanly(#[case] backend: Backend) {
    let Some(large) = large_corpus_file() else {
        println!("skipped: ../shared/corpus is not present");
        return;
    };
    let started = Instant::now();
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let first = Server::start(
        &db,
        &[("LECTOR_WORKERS", "1"), ("LECTOR_SHUTDOWN_GRACE_SECS", "0")],
    )
    .await;
    let id = first
        .upload(std::fs::read(&large).unwrap(), "large.pdf")
        .await;
    some_pages_stored(&first, &id).await;
    let signalled = Instant::now();
    first.process().terminate();
    let status = first
        .process()
        .wait_for_exit(Duration::from_secs(15))
        .await
        .expect("lector serve exits within 15 s of SIGTERM");
    println!(
        "{backend:?}: exited {status} {:.2}s after SIGTERM",
        signalled.elapsed().as_secs_f64()
    );
    assert!(status.success(), "exit status {status}");
    assert!(
        first
            .process()
            .log()
            .contains("shutting down: job handed back to the queue"),
        "{}",
        first.process().log()
    );
    let stored = assert_handed_back(&db, &id).await;
    println!("{backend:?}: handed back with {stored} of 500 pages stored");

    let second = Server::start(&db, &[("LECTOR_WORKERS", "1")]).await;
    let documents = second.wait_until_all_done(Duration::from_secs(300)).await;
    assert_eq!(documents[&id]["page_count"], 500);
    assert_one_row_per_page(&db, &documents).await;
    println!(
        "{backend:?}: SIGTERM test took {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits until the worker has stored some pages of `id`, so there is something to resume
/// after; panics if the document finishes first.
async fn some_pages_stored(server: &Server, id: &str) {
    let last = &RefCell::new(Value::Null);
    let stored = eventually(Duration::from_secs(120), || async move {
        let doc = server.document(id).await;
        let done = doc["pages_done"].as_i64().unwrap();
        if doc["status"] == "processing" && done >= MIN_PAGES_STORED {
            return Some(());
        }
        assert!(
            doc["status"] != "done",
            "finished before SIGTERM could be sent: {doc}"
        );
        *last.borrow_mut() = doc;
        None
    })
    .await;
    assert!(stored.is_some(), "never started: {}", last.borrow());
}

/// Checks in the database that `id` and its job are queued again, the attempt not counted,
/// with the pages stored so far kept; returns how many there are.
async fn assert_handed_back(db: &TestDatabase, id: &str) -> i64 {
    let document_status = db
        .query_text(&format!("select status from documents where id = '{id}'"))
        .await;
    let job_status = db
        .query_text(&format!(
            "select status from jobs where document_id = '{id}'"
        ))
        .await;
    let attempts = db
        .count(&format!("jobs where document_id = '{id}' and attempts = 0"))
        .await;
    let stored = db.count(&format!("pages where document_id = '{id}'")).await;
    assert_eq!(document_status.as_deref(), Some("queued"));
    assert_eq!(job_status.as_deref(), Some("queued"));
    assert_eq!(attempts, 1, "the handed-back attempt is not counted");
    assert!(
        (MIN_PAGES_STORED..500).contains(&stored),
        "{stored} pages stored"
    );
    stored
}

/// The JSON lines of a log whose `message` is `message`.
fn json_lines<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

#[tokio::test]
async fn json_logs_have_a_line_per_request_and_per_job_step_and_no_secret() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let server = Server::start(
        &db,
        &[("LECTOR_LOG_FORMAT", "json"), ("LECTOR_WORKERS", "1")],
    )
    .await;
    let form = Form::new()
        .part(
            "file",
            Part::bytes(std::fs::read(fixture("user_password.pdf")).unwrap())
                .file_name("user_password.pdf"),
        )
        .text("password", "open-sesame");
    let id = server.upload_form(form, "user_password.pdf").await;
    let documents = server.wait_until_all_done(Duration::from_secs(60)).await;
    assert_eq!(documents[&id]["status"], "done", "{:?}", documents[&id]);
    let (log, lines) = json_log_once_extracted(&server).await;
    assert_one_line_for_the_upload(&lines, &log);
    assert_job_lines_name_the_document(&lines, &log, &id);
    assert_queue_lines(&lines, &log);
    // No secret reaches the log: not the API token, the PDF's password or the account's.
    for secret in [server.token.as_str(), "open-sesame", harness::TEST_PASSWORD] {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

/// The server's log once it says a document was extracted (the job's last line is written
/// just after the row says done), and its lines, each of which must be JSON.
async fn json_log_once_extracted(server: &Server) -> (String, Vec<Value>) {
    // The assertions on the lines say if it never does.
    let _ = eventually(Duration::from_secs(10), || {
        std::future::ready(
            server
                .process()
                .log()
                .contains("document extracted")
                .then_some(()),
        )
    })
    .await;
    let log = server.process().log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (log, lines)
}

/// One request line for the one upload, with its status, latency, request id and user.
fn assert_one_line_for_the_upload(lines: &[Value], log: &str) {
    let uploads: Vec<_> = json_lines(lines, "request")
        .into_iter()
        .filter(|l| l["route"] == "/api/v1/documents" && l["method"] == "POST")
        .collect();
    assert_eq!(uploads.len(), 1, "one line for the one upload:\n{log}");
    let upload = uploads[0];
    assert_eq!(upload["status"], 202);
    assert!(upload["latency_ms"].as_f64().unwrap() > 0.0, "{upload}");
    assert!(
        !upload["request_id"].as_str().unwrap().is_empty(),
        "{upload}"
    );
    let user_id = upload["user_id"].as_str().unwrap();
    assert!(!user_id.is_empty(), "the token's owner is named: {upload}");
    assert_eq!(upload["level"], "INFO");
}

/// The job's steps carry the document id (from the job's span) and how long they took.
fn assert_job_lines_name_the_document(lines: &[Value], log: &str, id: &str) {
    let ended: Vec<_> = json_lines(lines, "job attempt ended")
        .into_iter()
        .filter(|l| l["span"]["document.id"] == id)
        .collect();
    assert_eq!(ended.len(), 1, "{log}");
    assert_eq!(ended[0]["outcome"], "done");
    assert!(ended[0]["seconds"].as_f64().unwrap() > 0.0);
    assert!(
        json_lines(lines, "document extracted")
            .iter()
            .any(|l| l["span"]["document.id"] == id),
        "{log}"
    );
}

/// The queue's state, once a minute and at start, for the CloudWatch queue-age alarm.
fn assert_queue_lines(lines: &[Value], log: &str) {
    let queue = json_lines(lines, "queue");
    assert!(!queue.is_empty(), "{log}");
    assert!(
        queue[0]["queue_age_seconds"].as_f64().is_some(),
        "{}",
        queue[0]
    );
    assert!(queue[0]["jobs_queued"].as_i64().is_some(), "{}", queue[0]);
}
