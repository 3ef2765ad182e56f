//! Scale-out on the Textract path: two `lector serve` and three `lector worker` processes (the
//! real binary) share one Postgres database and the AWS stand-ins of `harness::aws`, take 100
//! uploads, and extract each exactly once, starting Textract at most once per document and
//! never running more Textract jobs at once than the cap counted in the database.

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

async fn upload(
    client: &reqwest::Client,
    server: &LectorServer,
    bytes: Vec<u8>,
    name: &str,
) -> String {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let response = client
        .post(server.url("/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "uploading {name}: {body}");
    assert_eq!(body["engine"], "textract", "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn documents(client: &reqwest::Client, server: &LectorServer) -> BTreeMap<String, Value> {
    let body: Value = client
        .get(server.url("/api/v1/documents?limit=200"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| (doc["id"].as_str().unwrap().to_owned(), doc.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_and_two_servers_on_one_postgres_extract_100_uploads_exactly_once_and_start_textract_at_most_once_each()
 {
    let started = Instant::now();
    let aws = Standins::start().await;
    let textract = &aws.textract;
    // Every job answers IN_PROGRESS twice before it succeeds: jobs really poll, and hold
    // their Textract slot meanwhile.
    textract.in_progress_polls(2);
    let db = TestDatabase::new(Backend::Postgres).await;

    let lease = "30";
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
        ("LECTOR_JOB_LEASE_SECS", lease),
        ("LECTOR_JOB_RETRY_BASE_SECS", "1"),
        ("LECTOR_DATABASE_MAX_CONNECTIONS", "6"),
    ]);
    let with = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = common_vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        vars
    };

    // The two servers migrate the fresh database; the workers start once it is migrated (so
    // that this test is about the queue, not about concurrent migrations).
    let servers: Vec<LectorServer> = (0..2)
        .map(|_| LectorServer::start_without_waiting(&with(&[("LECTOR_WORKERS", "1".into())])))
        .collect();
    for server in &servers {
        server.wait_until_healthy().await;
    }
    let client = harness::client_with_token(&harness::cli_token(&db.url));
    let workers: Vec<Lector> = (0..3)
        .map(|_| {
            Lector::start(
                "worker",
                &with(&[("LECTOR_WORKERS", WORKERS_PER_WORKER_PROCESS.into())]),
            )
        })
        .collect();
    for worker in &workers {
        worker
            .wait_for_log("lector workers started", Duration::from_secs(60))
            .await;
    }
    let ready = started.elapsed();

    // 100 distinct PDFs (one and three pages, alternately), 8 uploads at a time, to the two
    // servers in turn, while every worker is already running.
    let one = std::fs::read(fixture("one_page.pdf")).unwrap();
    let three = std::fs::read(fixture("three_pages.pdf")).unwrap();
    let uploading = Instant::now();
    let uploads: Vec<(usize, String)> = stream::iter(0..DOCUMENTS)
        .map(|n| {
            let (bytes, pages) = if n % 2 == 0 { (&one, 1) } else { (&three, 3) };
            let (client, server) = (&client, &servers[n % 2]);
            async move {
                let id = upload(
                    client,
                    server,
                    distinct_copy(bytes, n),
                    &format!("doc{n}.pdf"),
                )
                .await;
                (pages, id)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let uploaded = uploading.elapsed();
    let expected_pages: BTreeMap<String, i64> = uploads
        .iter()
        .map(|(p, id)| (id.clone(), *p as i64))
        .collect();
    assert_eq!(
        expected_pages.len(),
        DOCUMENTS,
        "every upload made a new document"
    );

    // Wait (bounded) until every document is done; stop early on a failure.
    let last = &RefCell::new(BTreeMap::new());
    let documents = {
        let (client, servers, workers) = (&client, &servers, &workers);
        eventually_every(
            Duration::from_secs(180),
            Duration::from_millis(100),
            || async move {
                let documents = documents(client, &servers[0]).await;
                let failed: Vec<&Value> = documents
                    .values()
                    .filter(|d| matches!(d["status"].as_str(), Some("failed" | "cancelled")))
                    .collect();
                assert!(failed.is_empty(), "documents did not succeed: {failed:#?}");
                if documents.len() == DOCUMENTS && documents.values().all(|d| d["status"] == "done")
                {
                    return Some(documents);
                }
                for process in servers.iter().map(|s| &s.process).chain(workers) {
                    process.assert_running();
                }
                *last.borrow_mut() = documents;
                None
            },
        )
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
    };
    let all_done = uploading.elapsed();

    // Every document done, with every page, from Textract.
    assert_eq!(documents.len(), DOCUMENTS);
    for (id, doc) in &documents {
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

    // The queue: one job per document, claimed once (a deferral for want of a Textract slot
    // hands the attempt back, so it does not count).
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

    // Textract: started exactly once per document, with the content hash as the token and
    // the document id as the tag, and never more than the cap at once across processes.
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

    // Work was shared: each process logs one line per document it finished.
    let count = |p: &Lector, line: &str| p.log().matches(line).count();
    let extracted_by_servers: Vec<usize> = servers
        .iter()
        .map(|s| count(&s.process, "document extracted"))
        .collect();
    let extracted_by_workers: Vec<usize> = workers
        .iter()
        .map(|w| count(w, "document extracted"))
        .collect();
    let deferred: usize = servers
        .iter()
        .map(|s| &s.process)
        .chain(&workers)
        .map(|p| count(p, "no capacity now"))
        .sum();
    let retried: usize = servers
        .iter()
        .map(|s| &s.process)
        .chain(&workers)
        .map(|p| count(p, "attempt failed"))
        .sum();
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
        textract.get_calls()
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
