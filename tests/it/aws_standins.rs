//! The AWS stand-ins in `harness::aws` answer the real AWS SDK clients as AWS would.

use std::time::{Duration, Instant};

use crate::harness::aws::{BUCKET, FakeS3, FakeTextract, text_pdf};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_textract::types::{Block, BlockType, DocumentLocation, JobStatus, S3Object};

const TWELVE_PAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/twelve_pages.pdf"
);

/// Clients built the way production builds them.
async fn clients(
    s3: &FakeS3,
    textract: &FakeTextract,
) -> (aws_sdk_s3::Client, aws_sdk_textract::Client) {
    (s3.client().await, textract.client().await)
}

async fn fakes() -> (FakeS3, FakeTextract) {
    let s3 = FakeS3::start().await;
    let textract = FakeTextract::start(s3.root.clone()).await;
    (s3, textract)
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/pdf")
        .body(ByteStream::from(bytes))
        .send()
        .await
        .expect("PutObject");
}

async fn start_job(
    textract: &aws_sdk_textract::Client,
    key: &str,
    token: &str,
) -> Result<
    String,
    aws_sdk_textract::error::SdkError<
        aws_sdk_textract::operation::start_document_text_detection::StartDocumentTextDetectionError,
    >,
> {
    textract
        .start_document_text_detection()
        .document_location(
            DocumentLocation::builder()
                .s3_object(S3Object::builder().bucket(BUCKET).name(key).build())
                .build(),
        )
        .client_request_token(token)
        .job_tag("lector-doc")
        .send()
        .await
        .map(|out| out.job_id.expect("JobId"))
}

/// Polls until the job leaves IN_PROGRESS; returns the first terminal response and the
/// number of IN_PROGRESS answers seen.
async fn wait(
    textract: &aws_sdk_textract::Client,
    job_id: &str,
) -> (
    aws_sdk_textract::operation::get_document_text_detection::GetDocumentTextDetectionOutput,
    usize,
) {
    let mut in_progress = 0;
    loop {
        let out = textract
            .get_document_text_detection()
            .job_id(job_id)
            .send()
            .await
            .expect("GetDocumentTextDetection");
        if out.job_status() == Some(&JobStatus::InProgress) {
            in_progress += 1;
            continue;
        }
        return (out, in_progress);
    }
}

/// Every block of a finished job, following NextToken; also the number of responses.
async fn all_blocks(
    textract: &aws_sdk_textract::Client,
    job_id: &str,
    max_results: Option<i32>,
) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut responses = 0;
    let mut next = None;
    loop {
        let out = textract
            .get_document_text_detection()
            .job_id(job_id)
            .set_max_results(max_results)
            .set_next_token(next)
            .send()
            .await
            .expect("GetDocumentTextDetection");
        responses += 1;
        blocks.extend(out.blocks().iter().cloned());
        next = out.next_token;
        if next.is_none() {
            return (blocks, responses);
        }
    }
}

fn lines_of_page(blocks: &[Block], page: i32) -> Vec<String> {
    blocks
        .iter()
        .filter(|b| b.block_type() == Some(&BlockType::Line) && b.page() == Some(page))
        .map(|b| b.text().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn s3_put_head_get_delete() {
    let s3 = FakeS3::start().await;
    let client = s3.client().await;
    let key = "originals/0190/abc.pdf";
    let bytes = std::fs::read(TWELVE_PAGES).unwrap();

    put(&client, key, bytes.clone()).await;
    assert!(s3.object_exists(key));
    assert_eq!(std::fs::read(s3.object_path(key)).unwrap(), bytes);
    assert_eq!(s3.object_keys(), vec![key.to_owned()]);

    let head = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_length(), Some(bytes.len() as i64));

    let got = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("GetObject");
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), bytes.as_slice());

    client
        .delete_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("DeleteObject");
    assert!(!s3.object_exists(key));
    let missing = client
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_not_found());
    let missing = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_no_such_key());
}

#[tokio::test]
async fn s3_refuses_a_wrong_secret() {
    let s3 = FakeS3::start().await;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&s3.endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "lector-test",
            "wrong",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"), "{err:?}");
    assert!(!s3.object_exists("x"));
}

/// The stand-ins with the twelve-page fixture in the bucket, its job started (answering
/// `IN_PROGRESS` twice, 100 blocks a response), and a Textract client.
struct TwelvePagesJob {
    _s3: FakeS3,
    textract: FakeTextract,
    client: aws_sdk_textract::Client,
    job_id: String,
}

async fn twelve_pages_job() -> TwelvePagesJob {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    put(
        &s3_client,
        "doc/twelve.pdf",
        std::fs::read(TWELVE_PAGES).unwrap(),
    )
    .await;
    textract.in_progress_polls(2);
    textract.page_size(100);
    let job_id = start_job(&client, "doc/twelve.pdf", "doc-12")
        .await
        .unwrap();
    TwelvePagesJob {
        _s3: s3,
        textract,
        client,
        job_id,
    }
}

#[tokio::test]
async fn textract_answers_in_progress_then_succeeds_and_is_started_once() {
    let job = twelve_pages_job().await;
    let (textract, client, job_id) = (&job.textract, &job.client, &job.job_id);
    assert_eq!(textract.jobs_in_progress(), 1);
    let (done, in_progress) = wait(client, job_id).await;
    assert_eq!(in_progress, 2);
    assert_eq!(done.job_status(), Some(&JobStatus::Succeeded));
    assert_eq!(done.document_metadata().and_then(|m| m.pages()), Some(12));
    assert!(done.next_token().is_some());
    assert_eq!(textract.jobs_in_progress(), 0);
    assert_eq!(textract.start_calls(), 1);
    assert_eq!(
        textract.started_jobs(),
        vec![(
            Some("doc-12".into()),
            Some("lector-doc".into()),
            BUCKET.into(),
            "doc/twelve.pdf".into()
        )]
    );
    assert_eq!(textract.max_concurrent_jobs_in_progress(), 1);
}

#[tokio::test]
async fn textract_reads_twelve_pages_through_in_progress_and_pagination() {
    // (Bound whole: a stand-in left out of a pattern would stop at once.)
    let job = twelve_pages_job().await;
    wait(&job.client, &job.job_id).await;
    let (blocks, responses) = all_blocks(&job.client, &job.job_id, None).await;
    // 12 × (1 PAGE + 4 LINEs + 36 WORDs): the fixture is too small for 1,000 blocks.
    assert_eq!(blocks.len(), 492);
    assert_eq!(responses, 5);
    for n in 1..=12 {
        let lines = lines_of_page(&blocks, n);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], format!("This is page {n} of twelve."));
    }
    assert!(
        lines_of_page(&blocks, 11)
            .iter()
            .any(|l| l.contains("This is page 11 of twelve."))
    );
    let page = blocks
        .iter()
        .find(|b| b.block_type() == Some(&BlockType::Page))
        .unwrap();
    assert_eq!(page.page(), Some(1));
    let line = blocks
        .iter()
        .find(|b| b.block_type() == Some(&BlockType::Line))
        .unwrap();
    assert!(line.confidence().unwrap() > 98.0 && line.confidence().unwrap() < 100.0);
    assert!(line.geometry().and_then(|g| g.bounding_box()).is_some());
    let words: Vec<&str> = blocks
        .iter()
        .filter(|b| b.block_type() == Some(&BlockType::Word) && b.page() == Some(3))
        .filter_map(|b| b.text())
        .take(6)
        .collect();
    assert_eq!(words, ["This", "is", "page", "3", "of", "twelve."]);
}

#[tokio::test]
async fn textract_paginates_more_than_a_thousand_blocks_at_the_default_max_results() {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    let pages: Vec<Vec<String>> = (1..=30)
        .map(|p| {
            (1..=6)
                .map(|l| format!("Page {p} line {l}: the quick brown fox (jumps) over"))
                .collect()
        })
        .collect();
    put(&s3_client, "big.pdf", text_pdf(&pages)).await;

    let job_id = start_job(&client, "big.pdf", "big").await.unwrap();
    let (done, _) = wait(&client, &job_id).await;
    assert_eq!(done.job_status(), Some(&JobStatus::Succeeded));
    assert_eq!(done.blocks().len(), 1000);

    let (blocks, responses) = all_blocks(&client, &job_id, None).await;
    // 30 × (1 PAGE + 6 LINEs + 6 × 10 WORDs) = 2,010 blocks.
    assert_eq!(blocks.len(), 2010);
    assert_eq!(responses, 3);
    assert_eq!(
        lines_of_page(&blocks, 30)[5],
        "Page 30 line 6: the quick brown fox (jumps) over"
    );

    let (_, responses) = all_blocks(&client, &job_id, Some(500)).await;
    assert_eq!(responses, 5);
    let ids: std::collections::HashSet<_> = blocks.iter().filter_map(|b| b.id()).collect();
    assert_eq!(ids.len(), 2010);
}

#[tokio::test]
async fn textract_throttling_surfaces_as_typed_errors_after_the_sdks_retries() {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    put(&s3_client, "t.pdf", std::fs::read(TWELVE_PAGES).unwrap()).await;

    textract.throttle_next(10, "ProvisionedThroughputExceededException");
    let started = Instant::now();
    let err = start_job(&client, "t.pdf", "t").await.unwrap_err();
    let retried_for = started.elapsed();
    assert!(
        err.into_service_error()
            .is_provisioned_throughput_exceeded_exception()
    );
    assert_eq!(
        textract.start_calls(),
        3,
        "the SDK makes 3 attempts by default"
    );
    assert!(textract.started_jobs().is_empty());
    eprintln!("3 throttled attempts took {retried_for:?}");

    // A throttle shorter than the SDK's attempts is absorbed by its retries.
    textract.throttle_next(2, "ThrottlingException");
    let job_id = start_job(&client, "t.pdf", "t").await.unwrap();
    assert_eq!(textract.start_calls(), 6);

    textract.throttle_next(3, "ThrottlingException");
    let err = client
        .get_document_text_detection()
        .job_id(&job_id)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_throttling_exception());

    textract.throttle_next(3, "LimitExceededException");
    let err = start_job(&client, "t.pdf", "t2").await.unwrap_err();
    assert!(err.into_service_error().is_limit_exceeded_exception());
    assert_eq!(textract.throttled_calls(), 2 + 3 + 3 + 3);
}

#[tokio::test]
async fn textract_refuses_missing_objects_and_unknown_jobs() {
    let (s3, textract) = fakes().await;
    let (_, client) = clients(&s3, &textract).await;
    let err = start_job(&client, "nowhere.pdf", "n").await.unwrap_err();
    assert!(err.into_service_error().is_invalid_s3_object_exception());
    assert!(textract.started_jobs().is_empty());

    let err = client
        .get_document_text_detection()
        .job_id("0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_job_id_exception());
}

#[tokio::test]
async fn textract_partial_success_reports_warnings_and_drops_those_pages() {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    put(&s3_client, "p.pdf", std::fs::read(TWELVE_PAGES).unwrap()).await;
    textract.partial_success(vec![3, 7], "UNSUPPORTED_DOCUMENT");

    let job_id = start_job(&client, "p.pdf", "p").await.unwrap();
    let (done, _) = wait(&client, &job_id).await;
    assert_eq!(done.job_status(), Some(&JobStatus::PartialSuccess));
    assert_eq!(done.document_metadata().and_then(|m| m.pages()), Some(12));
    let warnings = done.warnings();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].error_code(), Some("UNSUPPORTED_DOCUMENT"));
    assert_eq!(warnings[0].pages(), [3, 7]);

    let (blocks, _) = all_blocks(&client, &job_id, None).await;
    assert!(lines_of_page(&blocks, 3).is_empty());
    assert!(lines_of_page(&blocks, 7).is_empty());
    assert_eq!(lines_of_page(&blocks, 8)[0], "This is page 8 of twelve.");
    assert_eq!(blocks.len(), 492 - 2 * 41);
}

#[tokio::test]
async fn textract_failed_jobs_carry_the_status_message() {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    put(&s3_client, "f.pdf", std::fs::read(TWELVE_PAGES).unwrap()).await;
    textract.fail("Internal failure while processing the document");
    textract.in_progress_polls(1);

    let job_id = start_job(&client, "f.pdf", "f").await.unwrap();
    let (done, in_progress) = wait(&client, &job_id).await;
    assert_eq!(in_progress, 1);
    assert_eq!(done.job_status(), Some(&JobStatus::Failed));
    assert_eq!(
        done.status_message(),
        Some("Internal failure while processing the document")
    );
    assert!(done.blocks().is_empty());

    // Not a PDF: the job fails, as Textract's does.
    textract.succeed();
    put(&s3_client, "junk.pdf", b"not a pdf at all".to_vec()).await;
    let job_id = start_job(&client, "junk.pdf", "junk").await.unwrap();
    let (done, _) = wait(&client, &job_id).await;
    assert_eq!(done.job_status(), Some(&JobStatus::Failed));
    assert!(
        done.status_message()
            .unwrap()
            .contains("unsupported document format")
    );
}

#[tokio::test]
async fn textract_start_is_idempotent_on_the_client_request_token() {
    let (s3, textract) = fakes().await;
    let (s3_client, client) = clients(&s3, &textract).await;
    put(&s3_client, "i.pdf", std::fs::read(TWELVE_PAGES).unwrap()).await;
    put(&s3_client, "j.pdf", std::fs::read(TWELVE_PAGES).unwrap()).await;
    textract.in_progress_polls(1);

    let first = start_job(&client, "i.pdf", "same-token").await.unwrap();
    let again = start_job(&client, "i.pdf", "same-token").await.unwrap();
    assert_eq!(first, again);
    let other = start_job(&client, "j.pdf", "other-token").await.unwrap();
    assert_ne!(first, other);
    assert_eq!(textract.start_calls(), 3);
    assert_eq!(textract.started_jobs().len(), 2);
    assert_eq!(textract.job_ids(), vec![first.clone(), other.clone()]);
    assert_eq!(textract.max_concurrent_jobs_in_progress(), 2);

    let err = start_job(&client, "j.pdf", "same-token").await.unwrap_err();
    assert!(
        err.into_service_error()
            .is_idempotent_parameter_mismatch_exception()
    );

    wait(&client, &first).await;
    assert_eq!(textract.jobs_in_progress(), 1);
    wait(&client, &other).await;
    assert_eq!(textract.jobs_in_progress(), 0);
    assert_eq!(textract.max_concurrent_jobs_in_progress(), 2);
    // Polling a finished job again is fine and does not count it twice.
    wait(&client, &first).await;
    assert_eq!(textract.jobs_in_progress(), 0);
}

#[tokio::test]
async fn servers_stop_when_dropped() {
    let (s3, textract) = fakes().await;
    let (s3_endpoint, textract_endpoint) = (s3.endpoint.clone(), textract.endpoint.clone());
    drop(textract);
    drop(s3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for endpoint in [s3_endpoint, textract_endpoint] {
        let addr = endpoint.trim_start_matches("http://");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{endpoint} still answers"
        );
    }
}
