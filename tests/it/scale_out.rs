//! Scale-out on the Textract path: two `lector serve` and three `lector worker` processes (the
//! real binary) share one Postgres database and the AWS stand-ins of `harness::aws`, take 100
//! uploads, and extract each exactly once, starting Textract at most once per document and
//! never running more Textract jobs at once than the cap counted in the database.
//!
//! One test: what it checks is what a hundred uploads through five processes leave behind, and
//! that is worth making once; the checks are grouped by what they are about.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use crate::harness::{
    self, Backend, Lector, LectorServer, TestDatabase, aws::Standins, distinct_copy,
    eventually_every, fixture,
};
use futures_util::{StreamExt, stream};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const DOCUMENTS: usize = 100;
/// `LECTOR_TEXTRACT_MAX_IN_FLIGHT`.
const CAP: usize = 8;
/// Workers per `lector worker` process. 2 × 1 (servers) + 3 × 3 = 11 workers, more than
/// [`CAP`], so the cap is what limits Textract jobs in flight, not the number of workers.
const WORKERS_PER_WORKER_PROCESS: &str = "3";

/// Two servers and three worker processes on one Postgres database and the stand-ins.
struct Deployment {
    aws: Standins,
    db: TestDatabase,
    servers: Vec<LectorServer>,
    workers: Vec<Lector>,
    client: reqwest::Client,
}

impl Deployment {
    async fn start() -> Option<Self> {
        let aws = Standins::start().await;
        // Every job answers IN_PROGRESS twice before it succeeds: jobs really poll, and hold
        // their Textract slot meanwhile.
        aws.textract.in_progress_polls(2);
        let db = TestDatabase::new(Backend::Postgres).await?;
        let cap = CAP.to_string();
        let common_vars = aws.vars(&[
            ("DATABASE_URL", db.url.as_str()),
            ("LECTOR_SECRET_KEY", harness::TEST_SECRET_KEY),
            ("LECTOR_ENGINE", "textract"),
            ("LECTOR_POLL_INTERVAL_MS", "100"),
            ("LECTOR_TEXTRACT_POLL_MAX_MS", "200"),
            ("LECTOR_TEXTRACT_MAX_IN_FLIGHT", cap.as_str()),
            // Long enough that no job is taken over for being slow on a busy machine: what is
            // tested is that processes never share a job, not lease expiry.
            ("LECTOR_JOB_LEASE_SECS", "30"),
            ("LECTOR_JOB_RETRY_BASE_SECS", "1"),
            ("LECTOR_DATABASE_MAX_CONNECTIONS", "6"),
        ]);
        let with = |workers: &'static str| {
            let mut vars = common_vars.clone();
            vars.push(("LECTOR_WORKERS", workers));
            vars
        };

        // The two servers migrate the fresh database; the workers start once it is migrated
        // (so that this test is about the queue, not about concurrent migrations).
        let servers: Vec<LectorServer> = (0..2)
            .map(|_| LectorServer::start_without_waiting(&with("1")))
            .collect();
        for server in &servers {
            server.wait_until_healthy().await;
        }
        let client = harness::client_with_token(&harness::cli_token(&db.url));
        let workers: Vec<Lector> = (0..3)
            .map(|_| Lector::start("worker", &with(WORKERS_PER_WORKER_PROCESS)))
            .collect();
        for worker in &workers {
            worker
                .wait_for_log("lector workers started", Duration::from_secs(60))
                .await;
        }
        Some(Deployment {
            aws,
            db,
            servers,
            workers,
            client,
        })
    }

    /// Every `lector` process of the deployment.
    fn processes(&self) -> impl Iterator<Item = &Lector> {
        self.servers.iter().map(|s| &s.process).chain(&self.workers)
    }

    /// How many times each server's log says `words`, then each worker process's.
    fn logged(&self, words: &str) -> (Vec<usize>, Vec<usize>) {
        let count = |p: &Lector| p.log().matches(words).count();
        (
            self.servers.iter().map(|s| count(&s.process)).collect(),
            self.workers.iter().map(count).collect(),
        )
    }

    /// Uploads `bytes` to `server`; it must be accepted for Textract. Returns the document id.
    async fn upload(&self, server: &LectorServer, bytes: Vec<u8>, name: &str) -> String {
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
        let body = server.upload(&self.client, form, name).await;
        assert_eq!(body["engine"], "textract", "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// 100 distinct PDFs (one and three pages, alternately), 8 uploads at a time, to the two
    /// servers in turn; returns each document's page count, by id.
    async fn upload_all(&self) -> BTreeMap<String, i64> {
        let one = std::fs::read(fixture("one_page.pdf")).unwrap();
        let three = std::fs::read(fixture("three_pages.pdf")).unwrap();
        let uploads: Vec<(i64, String)> = stream::iter(0..DOCUMENTS)
            .map(|n| {
                let (bytes, pages) = if n % 2 == 0 { (&one, 1) } else { (&three, 3) };
                let server = &self.servers[n % 2];
                async move {
                    let name = format!("doc{n}.pdf");
                    (
                        pages,
                        self.upload(server, distinct_copy(bytes, n), &name).await,
                    )
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let expected_pages: BTreeMap<String, i64> =
            uploads.into_iter().map(|(pages, id)| (id, pages)).collect();
        assert_eq!(
            expected_pages.len(),
            DOCUMENTS,
            "every upload made a new document"
        );
        expected_pages
    }

    /// Every document, by id.
    async fn documents(&self) -> BTreeMap<String, Value> {
        self.servers[0].documents(&self.client).await
    }

    /// Waits (bounded) until every document is done; stops early on a failure or a process
    /// that exited.
    async fn wait_until_all_done(&self) -> BTreeMap<String, Value> {
        let last = &RefCell::new(BTreeMap::new());
        let every = Duration::from_millis(100);
        eventually_every(Duration::from_secs(180), every, || async move {
            let documents = self.documents().await;
            let failed: Vec<&Value> = documents
                .values()
                .filter(|d| matches!(d["status"].as_str(), Some("failed" | "cancelled")))
                .collect();
            assert!(failed.is_empty(), "documents did not succeed: {failed:#?}");
            if documents.len() == DOCUMENTS && documents.values().all(|d| d["status"] == "done") {
                return Some(documents);
            }
            self.processes().for_each(Lector::assert_running);
            *last.borrow_mut() = documents;
            None
        })
        .await
        .unwrap_or_else(|| {
            let states: Vec<String> = last
                .borrow()
                .values()
                .filter(|d| d["status"] != "done")
                .map(|d| format!("{} {}", d["file_name"], d["status_label"]))
                .collect();
            panic!("not every document was done within 180 s: {states:#?}");
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_and_two_servers_on_one_postgres_extract_100_uploads_exactly_once_and_start_textract_at_most_once_each()
 {
    let started = Instant::now();
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let ready = started.elapsed();
    let uploading = Instant::now();
    let expected_pages = deployment.upload_all().await;
    let uploaded = uploading.elapsed();
    let documents = deployment.wait_until_all_done().await;
    let all_done = uploading.elapsed();

    assert_every_page_stored_once_from_textract(&deployment.db, &documents, &expected_pages).await;
    assert_every_job_claimed_once(&deployment.db).await;
    let most_at_once = assert_textract_started_once_per_document(&deployment.aws, &documents);

    // Work was shared: each process logs one line per document it finished.
    let (extracted_by_servers, extracted_by_workers) = deployment.logged("document extracted");
    let sum = |(servers, workers): (Vec<usize>, Vec<usize>)| -> usize {
        servers.iter().chain(&workers).sum()
    };
    let deferred = sum(deployment.logged("no capacity now"));
    let retried = sum(deployment.logged("attempt failed"));
    let total_pages: i64 = expected_pages.values().sum();
    println!(
        "ready after {:.1}s; {DOCUMENTS} uploads ({total_pages} pages) took {:.1}s; all done \
         {:.1}s after the first upload; test took {:.1}s",
        ready.as_secs_f64(),
        uploaded.as_secs_f64(),
        all_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "extracted by servers {extracted_by_servers:?}, by worker processes \
         {extracted_by_workers:?}; deferred for want of a slot {deferred} times; retried \
         {retried} times; at most {most_at_once} Textract jobs at once; {} Get calls",
        deployment.aws.textract.get_calls()
    );
    assert_eq!(
        extracted_by_servers.iter().sum::<usize>() + extracted_by_workers.iter().sum::<usize>(),
        DOCUMENTS,
        "each document was extracted once, by one process"
    );
    assert!(
        extracted_by_workers.iter().filter(|&&n| n > 0).count() > 1,
        "more than one worker process did work: {extracted_by_workers:?}"
    );
    assert_eq!(retried, 0, "no attempt failed");
}

/// Every document done, with every page, from Textract, and no page stored twice.
async fn assert_every_page_stored_once_from_textract(
    db: &TestDatabase,
    documents: &BTreeMap<String, Value>,
    expected_pages: &BTreeMap<String, i64>,
) {
    assert_eq!(documents.len(), DOCUMENTS);
    for (id, doc) in documents {
        assert_eq!(doc["status"], "done", "{doc}");
        assert_eq!(
            doc["page_count"].as_i64(),
            expected_pages.get(id).copied(),
            "{doc}"
        );
        assert_eq!(doc["pages_done"], doc["page_count"], "{doc}");
        assert_eq!(doc["pages_failed"], 0, "{doc}");
    }
    let total_pages: i64 = expected_pages.values().sum();
    assert_eq!(db.count("pages").await, total_pages);
    assert_eq!(db.count("pages where source <> 'textract'").await, 0);
    assert_eq!(
        db.query_i64(
            "select count(*) from (select document_id, page_number from pages \
             group by document_id, page_number having count(*) > 1) twice"
        )
        .await,
        0,
        "no page stored twice"
    );
}

/// The queue: one job per document, claimed once (a deferral for want of a Textract slot
/// hands the attempt back, so it does not count), each with its Textract job id, and every
/// Textract slot given back.
async fn assert_every_job_claimed_once(db: &TestDatabase) {
    assert_eq!(db.count("jobs").await, DOCUMENTS as i64);
    assert_eq!(db.count("jobs where status <> 'done'").await, 0);
    let not_once = db.count("jobs where attempts <> 1").await;
    assert_eq!(not_once, 0, "every job was claimed exactly once");
    assert_eq!(
        db.count("jobs where external_id is null").await,
        0,
        "every job recorded its Textract job id"
    );
    assert_eq!(
        db.query_i64("select count(distinct external_id) from jobs")
            .await,
        DOCUMENTS as i64
    );
    assert_eq!(db.count("textract_slots").await, CAP as i64);
    assert_eq!(
        db.count("textract_slots where job_id is not null").await,
        0,
        "every Textract slot was given back"
    );
}

/// Textract: started exactly once per document, with the content hash as the token and the
/// document id as the tag, and never more than the cap at once across processes. Returns the
/// most jobs that were in progress at once.
fn assert_textract_started_once_per_document(
    aws: &Standins,
    documents: &BTreeMap<String, Value>,
) -> usize {
    let textract = &aws.textract;
    let started_jobs = textract.started_jobs();
    assert_eq!(
        started_jobs.len(),
        DOCUMENTS,
        "one Textract job per document"
    );
    let tokens: HashSet<String> = started_jobs
        .iter()
        .map(|(token, ..)| token.clone().expect("a ClientRequestToken"))
        .collect();
    assert_eq!(
        tokens.len(),
        DOCUMENTS,
        "every ClientRequestToken is distinct"
    );
    let expected_tokens: HashSet<String> = documents
        .values()
        .map(|d| d["sha256"].as_str().unwrap()[..64].to_owned())
        .collect();
    assert_eq!(tokens, expected_tokens);
    let tags: HashSet<String> = started_jobs
        .iter()
        .map(|(_, tag, ..)| tag.clone().expect("a JobTag"))
        .collect();
    assert_eq!(tags, documents.keys().cloned().collect::<HashSet<_>>());
    let starts = textract.start_calls() - textract.throttled_calls();
    assert_eq!(
        starts, DOCUMENTS,
        "StartDocumentTextDetection called once per document"
    );
    let most_at_once = textract.max_concurrent_jobs_in_progress();
    assert!(
        most_at_once <= CAP,
        "{most_at_once} Textract jobs at once; the cap is {CAP}"
    );
    assert!(most_at_once > 1, "jobs ran in parallel: {most_at_once}");
    assert_eq!(textract.jobs_in_progress(), 0);
    most_at_once
}
