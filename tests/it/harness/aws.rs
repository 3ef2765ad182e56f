//! Stand-ins for AWS in tests: an S3 server on the filesystem ([`FakeS3`], served by `s3s` +
//! `s3s-fs`) and a Textract server of our own ([`FakeTextract`], AWS JSON 1.1), both on random
//! loopback ports, both spoken to through the real AWS SDK clients.
//!
//! `FakeTextract` reads the objects it is asked about straight from the `FakeS3` directory and
//! extracts the PDF's real text with the local text-layer engine, so results are the real text
//! of the real PDF, laid out as Textract does: per page one `PAGE` block, then one `LINE` block
//! per non-empty line, then one `WORD` block per word of those lines.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Router,
    body::Bytes,
    error_handling::HandleError,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// The access key both stand-ins expect (FakeS3 checks SigV4 signatures; FakeTextract does not).
pub const ACCESS_KEY: &str = "lector-test";
/// The secret key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "lector-test-secret";
/// The region the test clients are configured for.
pub const REGION: &str = "us-east-1";
/// The bucket [`FakeS3::start`] creates.
pub const BUCKET: &str = "lector-test";

/// Shared SDK configuration pointing at `endpoint`, with the test credentials; built the way
/// production builds it (`aws_config::defaults`), with an explicit region and credentials so
/// nothing is looked up in the environment or on IMDS.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        ))
        .load()
        .await
}

/// Both stand-ins, Textract reading the S3 stand-in's objects, and the settings that point
/// Lector at them.
pub struct Standins {
    pub s3: FakeS3,
    pub textract: FakeTextract,
}

impl Standins {
    pub async fn start() -> Self {
        let s3 = FakeS3::start().await;
        let textract = FakeTextract::start(s3.root.clone()).await;
        Standins { s3, textract }
    }

    /// Where the stand-ins are and how to sign in to them: the bucket, the region, the keys and
    /// the two endpoints.
    pub fn settings(&self) -> Vec<(&str, &str)> {
        vec![
            ("LECTOR_S3_BUCKET", BUCKET),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_ENDPOINT_URL_S3", self.s3.endpoint.as_str()),
            ("AWS_ENDPOINT_URL_TEXTRACT", self.textract.endpoint.as_str()),
        ]
    }

    /// An app's settings: [`Standins::settings`], Textract polled every 20 ms and at most every
    /// 100 ms (so tests do not wait), then `extra` (which wins where it names the same
    /// variable).
    pub fn vars<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut vars = self.settings();
        vars.extend_from_slice(&[
            ("LECTOR_TEXTRACT_POLL_INITIAL_MS", "20"),
            ("LECTOR_TEXTRACT_POLL_MAX_MS", "100"),
        ]);
        vars.extend_from_slice(extra);
        vars
    }
}

// ------------------------------------------------------------------------------------------
// FakeS3
// ------------------------------------------------------------------------------------------

/// An S3 server (s3s + s3s-fs) on `127.0.0.1:<random>`, storing objects as plain files at
/// `root/<bucket>/<key>`. Requests must be SigV4-signed with [`ACCESS_KEY`]/[`SECRET_KEY`];
/// path-style addressing only. The server stops, and the directory is deleted, on drop.
pub struct FakeS3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The filesystem root; bucket `b`, key `k` lives at `root/b/k`.
    pub root: PathBuf,
    /// The bucket created at start: [`BUCKET`].
    pub bucket: String,
    server: JoinHandle<()>,
    /// The temporary directory of [`FakeS3::start`], deleted on drop.
    _dir: Option<tempfile::TempDir>,
}

impl FakeS3 {
    /// Starts the server in a fresh temporary directory and creates the bucket `lector-test`.
    pub async fn start() -> FakeS3 {
        let dir = tempfile::tempdir().expect("temporary directory for FakeS3");
        let mut s3 = Self::start_in(dir.path(), 0).await;
        s3._dir = Some(dir);
        s3
    }

    /// Where the object `key` of the test bucket lives on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }

    /// Whether the test bucket holds `key`.
    pub fn object_exists(&self, key: &str) -> bool {
        self.object_path(key).is_file()
    }

    /// The bytes of `key` in the test bucket, if it is there.
    pub fn object_bytes(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.object_path(key)).ok()
    }

    /// Puts `bytes` at `key` in the test bucket directly on disk, bypassing S3 (for setting up
    /// a test; `GetObject` then serves it like any other object).
    pub fn put_object_file(&self, key: &str, bytes: &[u8]) {
        let path = self.object_path(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Every key in the test bucket, sorted.
    pub fn object_keys(&self) -> Vec<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = format!("{prefix}{name}");
                if entry.path().is_dir() {
                    walk(&entry.path(), &format!("{key}/"), out);
                } else {
                    out.push(key);
                }
            }
        }
        let mut keys = Vec::new();
        walk(&self.root.join(&self.bucket), "", &mut keys);
        keys.sort();
        keys
    }

    /// An S3 client for this server, configured as production configures one
    /// (`aws_config::defaults` + `force_path_style(true)`).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let conf = sdk_config(&self.endpoint).await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
    }
}

impl Drop for FakeS3 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ------------------------------------------------------------------------------------------
// FakeTextract
// ------------------------------------------------------------------------------------------

/// Textract's `JobStatus` values as they appear on the wire.
const IN_PROGRESS: &str = "IN_PROGRESS";
const SUCCEEDED: &str = "SUCCEEDED";
const PARTIAL_SUCCESS: &str = "PARTIAL_SUCCESS";
const FAILED: &str = "FAILED";

/// Textract's limit on `MaxResults`, and its default.
const MAX_RESULTS: usize = 1000;

/// A Textract server of our own on `127.0.0.1:<random>`, speaking AWS JSON 1.1 for
/// `StartDocumentTextDetection` and `GetDocumentTextDetection`. Signatures are not checked.
///
/// Script it with the knobs below (they take effect immediately, also mid-test) and assert on
/// the counters. The server stops on drop.
pub struct FakeTextract {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

struct Inner {
    s3_root: PathBuf,
    state: Mutex<TextractState>,
}

#[derive(Default)]
struct TextractState {
    // Script.
    in_progress_polls: u32,
    throttle_remaining: usize,
    throttle_code: String,
    outcome: Outcome,
    page_size: Option<usize>,
    // Jobs, in the order they were started.
    jobs: HashMap<String, Job>,
    job_order: Vec<String>,
    by_token: HashMap<String, String>,
    // Counters.
    start_calls: usize,
    get_calls: usize,
    throttled_calls: usize,
    running: usize,
    max_running: usize,
    // Completion notices (SNS -> SQS), when asked for.
    notices: Option<(aws_sdk_sqs::Client, String)>,
    notices_sent: usize,
}

#[derive(Clone, Default)]
enum Outcome {
    #[default]
    Succeed,
    Partial {
        pages: Vec<u32>,
        code: String,
    },
    Fail(String),
}

struct Job {
    client_request_token: Option<String>,
    job_tag: Option<String>,
    bucket: String,
    name: String,
    /// The text of each page, or why the document could not be opened.
    text: Result<Vec<String>, String>,
    polls_left: u32,
    /// Fixed the first time a Get finds the job done; `None` while in progress.
    result: Option<JobResult>,
}

struct JobResult {
    status: &'static str,
    status_message: Option<String>,
    pages: u32,
    blocks: Vec<Value>,
    warnings: Vec<Value>,
}

impl FakeTextract {
    /// Starts the server; objects named in `DocumentLocation` are read from
    /// `s3_root/<bucket>/<name>` (pass [`FakeS3::root`]).
    pub async fn start(s3_root: PathBuf) -> FakeTextract {
        Self::start_on(s3_root, 0).await
    }

    /// A Textract client for this server, configured as production configures one.
    pub async fn client(&self) -> aws_sdk_textract::Client {
        aws_sdk_textract::Client::new(&sdk_config(&self.endpoint).await)
    }

    fn state(&self) -> MutexGuard<'_, TextractState> {
        self.inner.state.lock().unwrap()
    }

    // --- script -------------------------------------------------------------------------

    /// Jobs started from now on answer `IN_PROGRESS` to their first `n` Gets (default 0).
    pub fn in_progress_polls(&self, n: u32) {
        self.state().in_progress_polls = n;
    }

    /// Jobs started with a `NotificationChannel` announce their completion on this SQS queue
    /// (wrapped in an SNS envelope, as SNS delivers it), about 200 ms after they start.
    pub fn deliver_notices_to(&self, sqs: aws_sdk_sqs::Client, queue_url: &str) {
        self.state().notices = Some((sqs, queue_url.to_owned()));
    }

    /// Completion notices sent so far.
    pub fn notices_sent(&self) -> usize {
        self.state().notices_sent
    }

    /// Every job still in progress finishes at its next Get.
    pub fn finish_running_jobs(&self) {
        for job in self.state().jobs.values_mut() {
            job.polls_left = 0;
        }
    }

    /// The next `n` requests, of either operation, fail with HTTP 400 and error `code`
    /// (`ProvisionedThroughputExceededException`, `ThrottlingException`,
    /// `LimitExceededException`, or any other code). The SDK retries throttling errors itself
    /// (3 attempts by default), so each SDK call uses up to 3 of them.
    pub fn throttle_next(&self, n: usize, code: &str) {
        let mut state = self.state();
        state.throttle_remaining = n;
        state.throttle_code = code.to_owned();
    }

    /// Jobs that finish from now on end `PARTIAL_SUCCESS`: `pages` have no blocks, and the
    /// response carries `Warnings: [{"ErrorCode": code, "Pages": pages}]` (on every response
    /// page).
    pub fn partial_success(&self, pages: Vec<u32>, code: &str) {
        self.state().outcome = Outcome::Partial {
            pages,
            code: code.to_owned(),
        };
    }

    /// Jobs that finish from now on end `FAILED` with `StatusMessage: message`.
    pub fn fail(&self, message: &str) {
        self.state().outcome = Outcome::Fail(message.to_owned());
    }

    /// Jobs that finish from now on succeed again (undoes [`partial_success`](Self::partial_success)
    /// and [`fail`](Self::fail)). A job's outcome is fixed by the Get that first finds it done.
    pub fn succeed(&self) {
        self.state().outcome = Outcome::Succeed;
    }

    /// At most `n` blocks per Get response, whatever `MaxResults` asks for (AWS may return
    /// fewer than `MaxResults` too): makes small documents paginate with the default
    /// `MaxResults`.
    pub fn page_size(&self, n: usize) {
        assert!(n > 0, "page_size must be positive");
        self.state().page_size = Some(n);
    }

    // --- counters -----------------------------------------------------------------------

    /// `StartDocumentTextDetection` requests received, throttled and idempotent ones included.
    pub fn start_calls(&self) -> usize {
        self.state().start_calls
    }

    /// `GetDocumentTextDetection` requests received, throttled ones included.
    pub fn get_calls(&self) -> usize {
        self.state().get_calls
    }

    /// Requests answered with the scripted throttling error.
    pub fn throttled_calls(&self) -> usize {
        self.state().throttled_calls
    }

    /// The distinct jobs started, oldest first: `(ClientRequestToken, JobTag, bucket, name)`.
    pub fn started_jobs(&self) -> Vec<(Option<String>, Option<String>, String, String)> {
        let state = self.state();
        state
            .job_order
            .iter()
            .map(|id| {
                let job = &state.jobs[id];
                (
                    job.client_request_token.clone(),
                    job.job_tag.clone(),
                    job.bucket.clone(),
                    job.name.clone(),
                )
            })
            .collect()
    }

    /// The JobIds handed out, oldest first.
    pub fn job_ids(&self) -> Vec<String> {
        self.state().job_order.clone()
    }

    /// Jobs started whose terminal status no Get has returned yet.
    pub fn jobs_in_progress(&self) -> usize {
        self.state().running
    }

    /// The most jobs that were ever in progress at once (see [`jobs_in_progress`](Self::jobs_in_progress)).
    pub fn max_concurrent_jobs_in_progress(&self) -> usize {
        self.state().max_running
    }
}

impl Drop for FakeTextract {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An AWS JSON 1.1 error: HTTP 400, `{"__type": code, "message": message}`.
fn aws_error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CONTENT_TYPE, "application/x-amz-json-1.1"),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                "00000000-0000-0000-0000-000000000000",
            ),
        ],
        json!({ "__type": code, "message": message }).to_string(),
    )
        .into_response()
}

fn aws_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-amz-json-1.1"),
            (
                header::HeaderName::from_static("x-amzn-requestid"),
                "00000000-0000-0000-0000-000000000000",
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return aws_error("SerializationException", &format!("bad JSON: {e}")),
    };
    match target.as_str() {
        "Textract.StartDocumentTextDetection" => start(&inner, request).await,
        "Textract.GetDocumentTextDetection" => get(&inner, request),
        other => aws_error(
            "UnknownOperationException",
            &format!("FakeTextract does not implement {other:?}"),
        ),
    }
}

/// Counts the call and, if a throttle is scripted, uses one up and returns the error.
fn throttled(state: &mut TextractState) -> Option<Response> {
    if state.throttle_remaining == 0 {
        return None;
    }
    state.throttle_remaining -= 1;
    state.throttled_calls += 1;
    let message = match state.throttle_code.as_str() {
        "ProvisionedThroughputExceededException" => "Provisioned rate exceeded",
        "ThrottlingException" => "Rate exceeded",
        "LimitExceededException" => "Open jobs exceed maximum concurrent job limit",
        _ => "Scripted error",
    };
    Some(aws_error(&state.throttle_code, message))
}

fn str_field(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn start(inner: &Inner, request: Value) -> Response {
    let token = str_field(&request, "/ClientRequestToken");
    let tag = str_field(&request, "/JobTag");
    let (Some(bucket), Some(name)) = (
        str_field(&request, "/DocumentLocation/S3Object/Bucket"),
        str_field(&request, "/DocumentLocation/S3Object/Name"),
    ) else {
        return aws_error(
            "InvalidParameterException",
            "Request has invalid parameters: DocumentLocation.S3Object.Bucket and Name are required",
        );
    };

    {
        let mut state = inner.state.lock().unwrap();
        state.start_calls += 1;
        if let Some(error) = throttled(&mut state) {
            return error;
        }
        if let Some(id) = token.as_ref().and_then(|t| state.by_token.get(t)) {
            let job = &state.jobs[id];
            if job.bucket != bucket || job.name != name || job.job_tag != tag {
                return aws_error(
                    "IdempotentParameterMismatchException",
                    "The ClientRequestToken was used before with different parameters",
                );
            }
            return aws_ok(json!({ "JobId": id }));
        }
    }

    let path = inner.s3_root.join(&bucket).join(&name);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return aws_error(
            "InvalidS3ObjectException",
            "Unable to get object metadata from S3. Check object key, region and/or access permissions.",
        );
    };
    let text = tokio::task::spawn_blocking(move || page_texts(bytes))
        .await
        .expect("text extraction task");

    let mut state = inner.state.lock().unwrap();
    // Two concurrent Starts with one token: the first to get here wins, as on AWS.
    if let Some(id) = token.as_ref().and_then(|t| state.by_token.get(t)) {
        return aws_ok(json!({ "JobId": id }));
    }
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let polls_left = state.in_progress_polls;
    state.jobs.insert(
        id.clone(),
        Job {
            client_request_token: token.clone(),
            job_tag: tag,
            bucket,
            name,
            text,
            polls_left,
            result: None,
        },
    );
    state.job_order.push(id.clone());
    if let Some(token) = token {
        state.by_token.insert(token, id.clone());
    }
    state.running += 1;
    state.max_running = state.max_running.max(state.running);
    let wants_notice = str_field(&request, "/NotificationChannel/SNSTopicArn").is_some();
    if let (true, Some((sqs, queue_url))) = (wants_notice, state.notices.clone()) {
        let status = match &state.outcome {
            Outcome::Succeed => "SUCCEEDED",
            Outcome::Partial { .. } => "PARTIAL_SUCCESS",
            Outcome::Fail(_) => "FAILED",
        };
        let (job_id, tag) = (id.clone(), state.jobs[&id].job_tag.clone());
        tokio::spawn(async move {
            // The job "runs" briefly, then SNS delivers its notice to the queue.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let notice = json!({"JobId": job_id, "Status": status, "API": "StartDocumentTextDetection", "JobTag": tag}).to_string();
            let envelope = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:000000000000:AmazonTextract-lector", "Message": notice}).to_string();
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(envelope)
                .send()
                .await
                .expect("send the notice to SQS");
        });
        if let Some(job) = state.jobs.get_mut(&id) {
            job.polls_left = 0;
        }
        state.notices_sent += 1;
    }
    aws_ok(json!({ "JobId": id }))
}

/// The `lector` binary: cargo's for tests; beside `target/*/examples/` for the demo example.
fn lector_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_lector") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("lector")))
            .unwrap_or_else(|| PathBuf::from("lector")),
    }
}

/// The text of every page, read the way Textract would: the text layer, and OCR (Lector's
/// own, through `lector extract`) for pages that are only an image. `Err` if the file cannot
/// be opened.
fn page_texts(bytes: Vec<u8>) -> Result<Vec<String>, String> {
    use lector::engines::OpenDocument;
    let doc = lector::engines::text_layer::open(bytes.clone(), None).map_err(|e| e.to_string())?;
    let pages = doc.inspection().pages;
    let texts: Vec<String> = (1..=pages)
        .map(|n| doc.page_text(n).unwrap_or_default())
        .collect();
    if texts.iter().all(|t| !t.trim().is_empty()) {
        return Ok(texts);
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), &bytes).map_err(|e| e.to_string())?;
    let output = std::process::Command::new(lector_binary())
        .args(["extract", "--json", "--ocr", "auto"])
        .arg(file.path())
        .output()
        .map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(json["pages"]
        .as_array()
        .ok_or("no pages")?
        .iter()
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect())
}

fn get(inner: &Inner, request: Value) -> Response {
    let mut state = inner.state.lock().unwrap();
    state.get_calls += 1;
    if let Some(error) = throttled(&mut state) {
        return error;
    }
    let Some(job_id) = str_field(&request, "/JobId") else {
        return aws_error("InvalidParameterException", "JobId is required");
    };
    let max_results = match request.get("MaxResults").and_then(Value::as_i64) {
        None => MAX_RESULTS,
        Some(n) if n < 1 => {
            return aws_error("InvalidParameterException", "MaxResults must be at least 1");
        }
        Some(n) => (n as usize).min(MAX_RESULTS),
    };
    let limit = state
        .page_size
        .map_or(max_results, |cap| cap.min(max_results));
    let offset = match str_field(&request, "/NextToken") {
        None => 0,
        Some(token) => match decode_next_token(&token) {
            Some((id, offset)) if id == job_id => offset,
            _ => return aws_error("InvalidParameterException", "Invalid NextToken"),
        },
    };

    let outcome = state.outcome.clone();
    let Some(job) = state.jobs.get_mut(&job_id) else {
        return aws_error(
            "InvalidJobIdException",
            &format!("The job ID {job_id} is not valid"),
        );
    };
    if job.result.is_none() {
        if job.polls_left > 0 {
            job.polls_left -= 1;
            return aws_ok(json!({ "JobStatus": IN_PROGRESS }));
        }
        job.result = Some(finish(&job.text, &outcome));
        state.running -= 1;
    }

    let result = state.jobs[&job_id].result.as_ref().unwrap();
    if result.status == FAILED {
        return aws_ok(json!({
            "JobStatus": FAILED,
            "StatusMessage": result.status_message,
        }));
    }
    let end = (offset + limit).min(result.blocks.len());
    let start = offset.min(end);
    let mut body = json!({
        "JobStatus": result.status,
        "DocumentMetadata": { "Pages": result.pages },
        "DetectDocumentTextModelVersion": "1.0",
        "Blocks": &result.blocks[start..end],
    });
    if end < result.blocks.len() {
        body["NextToken"] = json!(encode_next_token(&job_id, end));
    }
    if !result.warnings.is_empty() {
        body["Warnings"] = json!(result.warnings);
    }
    aws_ok(body)
}

/// An opaque-looking NextToken: hex of `<job id>:<offset>`.
fn encode_next_token(job_id: &str, offset: usize) -> String {
    format!("{job_id}:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_next_token(token: &str) -> Option<(String, usize)> {
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, offset) = text.split_once(':')?;
    Some((id.to_owned(), offset.parse().ok()?))
}

/// The job's final result under the scripted outcome.
fn finish(text: &Result<Vec<String>, String>, outcome: &Outcome) -> JobResult {
    let pages = match (text, outcome) {
        (_, Outcome::Fail(message)) => return failed(message.clone()),
        (Err(reason), _) => {
            return failed(format!("Request has unsupported document format: {reason}"));
        }
        (Ok(pages), _) => pages,
    };
    let (status, skipped, warnings) = match outcome {
        Outcome::Partial { pages, code } => (
            PARTIAL_SUCCESS,
            pages.iter().copied().collect::<HashSet<u32>>(),
            vec![json!({ "ErrorCode": code, "Pages": pages })],
        ),
        _ => (SUCCEEDED, HashSet::new(), Vec::new()),
    };
    let mut blocks = Vec::new();
    for (index, text) in pages.iter().enumerate() {
        let number = index as u32 + 1;
        if !skipped.contains(&number) {
            page_blocks(number, text, &mut blocks);
        }
    }
    JobResult {
        status,
        status_message: None,
        pages: pages.len() as u32,
        blocks,
        warnings,
    }
}

fn failed(message: String) -> JobResult {
    JobResult {
        status: FAILED,
        status_message: Some(message),
        pages: 0,
        blocks: Vec::new(),
        warnings: Vec::new(),
    }
}

fn block_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A Textract `Geometry` for a box given in page fractions.
fn geometry(left: f64, top: f64, width: f64, height: f64) -> Value {
    json!({
        "BoundingBox": { "Width": width, "Height": height, "Left": left, "Top": top },
        "Polygon": [
            { "X": left, "Y": top },
            { "X": left + width, "Y": top },
            { "X": left + width, "Y": top + height },
            { "X": left, "Y": top + height },
        ],
    })
}

/// Appends page `number`'s blocks: the PAGE, its LINEs, then the WORDs of each line.
fn page_blocks(number: u32, text: &str, blocks: &mut Vec<Value>) {
    const LINE_HEIGHT: f64 = 0.02;
    const CHAR_WIDTH: f64 = 0.008;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line_ids: Vec<String> = lines.iter().map(|_| block_id()).collect();
    blocks.push(json!({
        "BlockType": "PAGE",
        "Id": block_id(),
        "Page": number,
        "Geometry": geometry(0.0, 0.0, 1.0, 1.0),
        "Relationships": [{ "Type": "CHILD", "Ids": line_ids }],
    }));
    let mut words_out = Vec::new();
    for (i, (line, line_id)) in lines.iter().zip(&line_ids).enumerate() {
        let top = 0.05 + i as f64 * LINE_HEIGHT;
        let confidence = 99.5 - (i % 5) as f64 * 0.25;
        let mut word_ids = Vec::new();
        let mut column = 0usize;
        for word in line.split_whitespace() {
            let at = line[column..].find(word).map_or(column, |p| column + p);
            column = at + word.len();
            let id = block_id();
            word_ids.push(id.clone());
            words_out.push(json!({
                "BlockType": "WORD",
                "Confidence": confidence - 0.1,
                "Text": word,
                "TextType": "PRINTED",
                "Geometry": geometry(
                    0.1 + at as f64 * CHAR_WIDTH,
                    top,
                    word.chars().count() as f64 * CHAR_WIDTH,
                    LINE_HEIGHT * 0.8,
                ),
                "Id": id,
                "Page": number,
            }));
        }
        blocks.push(json!({
            "BlockType": "LINE",
            "Confidence": confidence,
            "Text": line,
            "Geometry": geometry(
                0.1,
                top,
                line.chars().count() as f64 * CHAR_WIDTH,
                LINE_HEIGHT * 0.8,
            ),
            "Id": line_id,
            "Page": number,
            "Relationships": [{ "Type": "CHILD", "Ids": word_ids }],
        }));
    }
    blocks.append(&mut words_out);
}

// ------------------------------------------------------------------------------------------
// Test PDFs
// ------------------------------------------------------------------------------------------

/// A minimal, valid PDF with one page per entry of `pages` and one Helvetica 12pt line per
/// string (ASCII text). Made in memory, for documents bigger than the fixtures, e.g. to get
/// more than 1,000 Textract blocks.
pub fn text_pdf(pages: &[Vec<String>]) -> Vec<u8> {
    fn escape(line: &str) -> String {
        line.chars()
            .map(|c| match c {
                '(' | ')' | '\\' => format!("\\{c}"),
                c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                _ => "?".to_owned(),
            })
            .collect()
    }
    // Objects: 1 catalog, 2 pages, 3 font, then per page a page object and its content.
    let mut objects: Vec<String> = Vec::new();
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 4 + 2 * i))
        .collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".to_owned());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids.join(" "),
        pages.len()
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned());
    for (i, lines) in pages.iter().enumerate() {
        let mut content = String::from("BT /F1 12 Tf 14 TL 56 800 Td\n");
        for line in lines {
            content.push_str(&format!("({}) Tj T*\n", escape(line)));
        }
        content.push_str("ET\n");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
             /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

// ------------------------------------------------------------------------------------------
// Where they serve: a folder and port of the demo's (`examples/aws_standins.rs`), or
// temporary ones (`start`)
// ------------------------------------------------------------------------------------------

impl FakeS3 {
    /// Like [`FakeS3::start`], but keeps the objects under `root` (created if needed, and kept
    /// when the server stops, so a demo can look at them) and listens on `127.0.0.1:port`
    /// (0: a random free port).
    pub async fn start_in(root: &Path, port: u16) -> FakeS3 {
        std::fs::create_dir_all(root.join(BUCKET)).expect("create the FakeS3 bucket");
        let root = root.canonicalize().expect("canonical FakeS3 root");
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs on the FakeS3 directory");
        let service = {
            let mut builder = s3s::service::S3ServiceBuilder::new(fs);
            builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };
        let service = HandleError::new(service, |err: s3s::HttpError| async move {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("FakeS3 failed to handle the request: {err:?}"),
            )
        });
        let app = Router::new().fallback_service(service);
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind FakeS3 to 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("FakeS3 server");
        });
        FakeS3 {
            endpoint: format!("http://{addr}"),
            root,
            bucket: BUCKET.to_owned(),
            server,
            _dir: None,
        }
    }
}

impl FakeTextract {
    /// Like [`FakeTextract::start`], on `127.0.0.1:port` (0: a random free port).
    pub async fn start_on(s3_root: PathBuf, port: u16) -> FakeTextract {
        let inner = Arc::new(Inner {
            s3_root,
            state: Mutex::new(TextractState::default()),
        });
        let app = Router::new()
            .route("/", post(handle))
            .with_state(inner.clone());
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind FakeTextract to 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("FakeTextract server");
        });
        FakeTextract {
            endpoint: format!("http://{addr}"),
            inner,
            server,
        }
    }
}
