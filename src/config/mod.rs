//! Typed configuration, read once from the environment with defaults that run on a laptop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::domain::{
    Engine,
    ocr::{OcrMode, OcrSettings},
};

mod read;
#[cfg(test)]
mod tests;

/// `LECTOR_SEARCH_MAX_SCORED_PAGES`' default: at 200,000 pages it keeps broad Postgres
/// queries under 100 ms p99 (docs/benchmarks.md, benchmark 6); the search benchmark starts from it too.
pub const DEFAULT_SEARCH_MAX_SCORED_PAGES: i64 = 2_000;

/// Everything Lector reads from its environment. Built by [`Config::from_env`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT` / `LECTOR_BIND`: where the web server listens (default `0.0.0.0:8080`).
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `postgres://…` for Postgres, `sqlite://…` for SQLite. Without it, Elastic
    /// Beanstalk's `RDS_HOSTNAME`, `RDS_PORT`, `RDS_DB_NAME`, `RDS_USERNAME` and `RDS_PASSWORD`
    /// make a Postgres URL with `sslmode=require` (`LECTOR_DATABASE_SSLMODE` for another mode).
    /// Default: SQLite at `./data/lector.db`. A secret: it may hold a password.
    pub database_url: SecretString,
    /// `LECTOR_DATABASE_MAX_CONNECTIONS`: pool size (default: workers + 8).
    pub database_max_connections: u32,
    /// `LECTOR_WORKERS`: extraction workers in this process (default: CPU cores).
    pub workers: usize,
    /// `LECTOR_MAX_UPLOAD_BYTES`: largest accepted PDF (default 100 MiB).
    pub max_upload_bytes: u64,
    /// `LECTOR_MAX_PAGES`: most pages accepted in one PDF (default 2000).
    pub max_pages: u32,
    /// `LECTOR_SEARCH_MAX_SCORED_PAGES`: most matching pages one search ranks, newest first
    /// (default 2,000); past it the count of matching documents is a lower bound.
    pub search_max_scored_pages: i64,
    /// `LECTOR_SEARCH_PHRASE_INDEX`: on Postgres, keep an index of adjacent words, which
    /// finds a phrase of common words that rarely stand together several times faster and
    /// makes storing a page slower (default off; see migration 0011).
    pub search_phrase_index: bool,
    /// Completion webhooks: who may be called and how deliveries are retried.
    pub webhooks: WebhookSettings,
    /// `LECTOR_MAX_FILES_PER_UPLOAD`: most files in one browser upload (default 20).
    pub max_files_per_upload: usize,
    /// `LECTOR_JOB_MAX_ATTEMPTS`: tries before a document is marked failed (default 3).
    pub job_max_attempts: i32,
    /// `LECTOR_JOB_LEASE_SECS`: how long a claimed job stays owned without a heartbeat (default 60).
    pub job_lease: Duration,
    /// `LECTOR_JOB_RETRY_BASE_SECS`: first retry delay; doubles per attempt (default 5).
    pub job_retry_base: Duration,
    /// `LECTOR_POLL_INTERVAL_MS`: how often idle workers look for new jobs (default 1000).
    pub poll_interval: Duration,
    /// `LECTOR_EXTRACT_TIMEOUT_BASE_SECS`: time limit per document, fixed part (default 30).
    pub extract_timeout_base: Duration,
    /// `LECTOR_EXTRACT_TIMEOUT_PER_PAGE_MS`: time limit per document, per page (default 2000).
    pub extract_timeout_per_page: Duration,
    /// How long a client may take to send a request (slow clients cannot hold connections).
    pub http: HttpSettings,
    /// `LECTOR_INSPECT_TIMEOUT_SECS`: time limit for checking an upload (default 20).
    pub inspect_timeout: Duration,
    /// `LECTOR_SANDBOX_MEMORY_MB`: address-space limit of the parser process (default 4096).
    pub sandbox_memory_mb: u64,
    /// `LECTOR_SANDBOX_EXE`: the binary run as the parser process (default: this executable).
    pub sandbox_exe: PathBuf,
    /// `LECTOR_SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for running jobs before handing
    /// them back to the queue (default 10).
    pub shutdown_grace: Duration,
    /// `LECTOR_LOG_FORMAT`: `compact` (default) or `json`.
    pub log_format: LogFormat,
    /// `LECTOR_ENGINE`: `local` (the PDF's text layer, default) or `textract`.
    pub engine: Engine,
    /// `LECTOR_BLOB_STORE`: where originals live, `database` (default) or `s3`.
    pub blob_store: BlobStoreChoice,
    /// `LECTOR_S3_BUCKET`: the bucket for originals (and for Textract's input).
    pub s3_bucket: Option<String>,
    /// `LECTOR_S3_PREFIX`: key prefix of originals in the bucket (default `originals/`).
    pub s3_prefix: String,
    /// `AWS_REGION`: the region of S3 and Textract (otherwise the SDK's default chain).
    pub aws_region: Option<String>,
    /// `AWS_ENDPOINT_URL`: a local stand-in for AWS (tests, demos). Unset in production.
    pub aws_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_S3`: the S3 stand-in, when it differs from `AWS_ENDPOINT_URL`.
    pub aws_endpoint_url_s3: Option<String>,
    /// `AWS_ENDPOINT_URL_TEXTRACT`: the Textract stand-in, when it differs.
    pub aws_endpoint_url_textract: Option<String>,
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`: read here only so that tests can pass
    /// them without touching the process environment; when unset (production: the instance
    /// role) the SDK's default chain finds credentials.
    pub aws_static_credentials: Option<(String, SecretString)>,
    /// `LECTOR_TEXTRACT_MAX_IN_FLIGHT`: Textract jobs running at once across all workers
    /// (default 10; counted in the database).
    pub textract_max_in_flight: u32,
    /// `LECTOR_TEXTRACT_POLL_INITIAL_MS`: first wait between polls of a Textract job
    /// (default 1000); doubles up to `LECTOR_TEXTRACT_POLL_MAX_MS` (default 20000).
    pub textract_poll_initial: Duration,
    /// See `textract_poll_initial`.
    pub textract_poll_max: Duration,
    /// `LECTOR_TEXTRACT_TIMEOUT_SECS`: how long a Textract job may take (default 1800).
    pub textract_timeout: Duration,
    /// `LECTOR_TEXTRACT_SNS_TOPIC_ARN`, `LECTOR_TEXTRACT_SNS_ROLE_ARN` (the role Textract
    /// publishes with) and `LECTOR_TEXTRACT_SQS_QUEUE_URL` (subscribed to the topic): wait for
    /// Textract's completion notice instead of polling its throttled Get API.
    pub textract_notices: Option<TextractNotices>,
    /// `LECTOR_INGEST_SQS_QUEUE_URL`: a queue of S3 `ObjectCreated` events; each new `.pdf`
    /// becomes a document.
    pub ingest_sqs_queue_url: Option<String>,
    /// `LECTOR_INGEST_S3_PREFIX`: only keys under this prefix are ingested (default: all).
    pub ingest_s3_prefix: String,
    /// `AWS_ENDPOINT_URL_SQS`: the SQS stand-in, when it differs from `AWS_ENDPOINT_URL`.
    pub aws_endpoint_url_sqs: Option<String>,
    /// `LECTOR_TEXTRACT_PRICE_PER_1000_PAGES`: USD per 1,000 pages, for the cost estimates
    /// shown on documents and in `/metrics` (default 1.50, text detection's list price).
    pub textract_price_per_1000_pages: f64,
    /// `LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET`: pages sent to Textract per calendar month (UTC);
    /// once spent, documents are read locally (text layer and OCR) and say so. Unset: no limit.
    pub textract_monthly_page_budget: Option<u64>,
    /// OCR defaults for new documents: `LECTOR_OCR` (`auto`, `off`, `force`; default `auto`),
    /// `LECTOR_OCR_LANGUAGES` (Tesseract codes joined by `+`; default `eng`),
    /// `LECTOR_OCR_DPI` (default 300), `LECTOR_OCR_MAX_PIXELS` (largest page image, default
    /// 50 million), `LECTOR_OCR_MIN_CHARS` (a text layer with fewer non-blank characters is
    /// OCR'd, default 2: on the real-world corpus every page with 2 to 9 characters was genuine
    /// text, such as a CJK line or a slide number) and `LECTOR_OCR_MAX_JUNK_RATIO` (a text layer with this share of
    /// unreadable characters is OCR'd, default 0.10).
    pub ocr: OcrSettings,
    /// `LECTOR_OCR_PAGE_TIMEOUT_SECS`: time limit for OCR of one page (default 120); a page
    /// over it fails on its own and the rest of the document goes on.
    pub ocr_page_timeout: Duration,
    /// `LECTOR_PUBLIC_URL`: the address people reach Lector at (e.g.
    /// `https://lector.example.com`). When it is https, cookies are `Secure` and responses
    /// carry `Strict-Transport-Security`.
    pub public_url: Option<String>,
    /// `LECTOR_SIGNUP`: who may create an account in the browser: `open`, `first-only`
    /// (default: the first account only; later ones with `lector user add`) or `closed`.
    pub signup: SignupPolicy,
    /// `LECTOR_PASSWORD_MIN_LENGTH`: the shortest password accepted (default 10).
    pub password_min_length: usize,
    /// Abuse limits (0 turns one off): `LECTOR_RATE_LOGIN_PER_IP` (log-in and sign-up
    /// attempts per minute from one address, default 20), `LECTOR_LOGIN_FAILURES_PER_ADDRESS`
    /// (wrong passwords for one account from one address before each try waits, 5 s doubling
    /// up to 15 min; default 5), `LECTOR_LOGIN_FAILURES_PER_ACCOUNT` (the same for one account
    /// from every address, holding back only browsers and addresses the account does not know;
    /// default 100), `LECTOR_RATE_SIGNUPS_PER_HOUR` (sign-ups from one address, default 5),
    /// `LECTOR_RATE_UPLOADS_PER_USER` (upload requests per minute, default 120).
    pub rate_limits: RateLimitSettings,
    /// `LECTOR_TRUSTED_PROXY_HOPS`: reverse proxies in front of Lector that append to
    /// `X-Forwarded-For` (default 0: the peer address is the client; 1 behind nginx alone,
    /// 2 behind a load balancer and nginx as on Elastic Beanstalk).
    pub trusted_proxy_hops: usize,
    /// `LECTOR_METRICS_TOKEN`: when set, `/metrics` answers only requests that send it as
    /// `Authorization: Bearer …`.
    pub metrics_token: Option<SecretString>,
    /// The key that seals the secrets kept in the database (PDF passwords, webhook signing
    /// secrets): `LECTOR_SECRET_KEY` (64 hexadecimal characters, e.g. from
    /// `openssl rand -hex 32`), or the file `LECTOR_SECRET_KEY_FILE` holds it in. Default with
    /// SQLite: `lector-secret.key` beside the database file, made on first start; Postgres
    /// deployments must give one (their instances share it, and it must outlive them).
    pub secret_key: crate::sealing::KeySource,
    /// `LECTOR_SECRET_KEY_PREVIOUS`: earlier keys, comma-separated, that still open what they
    /// sealed while the serving processes seal it again under the current key (rotation).
    pub secret_key_previous: Vec<SecretString>,
    /// `LECTOR_INGEST_OWNER`: the e-mail of the account that owns documents ingested from S3
    /// (default: the first account).
    pub ingest_owner: Option<String>,
}

/// Who may create an account from the sign-up page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupPolicy {
    /// Anyone.
    Open,
    /// Only the first account; the rest are added with `lector user add`.
    FirstOnly,
    /// Nobody: every account is added with `lector user add`.
    Closed,
}

/// Abuse limits; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Log-in and sign-up attempts per minute from one client address.
    pub login_per_ip: u32,
    /// Wrong passwords for one account from one address before tries wait.
    pub login_failures_per_address: u32,
    /// Wrong passwords for one account from clients it does not know before their tries wait.
    pub login_failures_per_account: u32,
    /// Sign-ups per hour from one client address (each tells whether an e-mail has an account).
    pub signups_per_hour: u32,
    /// Upload requests per minute by one user (browser or API).
    pub uploads_per_user: u32,
}

/// Time limits on receiving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// `LECTOR_HTTP_HEADER_TIMEOUT_SECS`: the request line and headers must arrive within
    /// this, counted from the connection (or the previous response), else the connection is
    /// closed (default 20).
    pub header_timeout: Duration,
    /// `LECTOR_HTTP_BODY_TIMEOUT_SECS`: the longest pause between two pieces of a request
    /// body; past it the answer is 408 (default 30).
    pub body_timeout: Duration,
}

/// Where Textract announces finished jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextractNotices {
    /// The SNS topic Textract publishes to (its name must start with `AmazonTextract`).
    pub sns_topic_arn: String,
    /// The IAM role Textract assumes to publish.
    pub sns_role_arn: String,
    /// The SQS queue subscribed to the topic.
    pub sqs_queue_url: String,
}

/// Where the original PDFs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStoreChoice {
    /// In the database, in chunks.
    Database,
    /// In an S3 bucket.
    S3,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Compact,
    /// One JSON object per line, for CloudWatch.
    Json,
}

impl Config {
    /// True when Lector is served over https (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// Where people (and webhook receivers) reach Lector: `LECTOR_PUBLIC_URL`, else this
    /// machine's port on localhost.
    pub fn base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{}", self.bind.port()))
    }

    /// True when the database is Postgres.
    pub fn is_postgres(&self) -> bool {
        self.database_url.expose_secret().starts_with("postgres")
    }

    /// How often a worker renews the lease on the job it runs: often enough that two missed
    /// renewals still leave it the job.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.job_lease / 3).min(Duration::from_secs(5))
    }

    /// The time limit for extracting a document of `pages` pages.
    pub fn extract_timeout(&self, pages: u32) -> Duration {
        self.extract_timeout_base + self.extract_timeout_per_page * pages
    }

    /// The child's CPU-time backstop for a document of `pages` pages: the text-layer limit,
    /// plus every page's OCR limit when pages may be OCR'd.
    pub fn extract_cpu_limit(&self, pages: u32, ocr: OcrMode) -> Duration {
        match ocr {
            OcrMode::Off => self.extract_timeout(pages),
            _ => self.extract_timeout(pages) + self.ocr_page_timeout * pages,
        }
    }
}

/// Completion webhooks (docs/webhooks.md).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `LECTOR_WEBHOOK_ALLOW_PRIVATE`: allow URLs on loopback, private and link-local
    /// addresses (default false: they are refused, so a user cannot make Lector call into its
    /// own network).
    pub allow_private: bool,
    /// `LECTOR_WEBHOOK_SENDERS`: deliveries sent at once by this process (default 2; 0 sends none).
    pub senders: usize,
    /// `LECTOR_WEBHOOK_TIMEOUT_SECS`: how long one attempt may take, connection to last byte
    /// (default 10).
    pub timeout: Duration,
    /// `LECTOR_WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery is given up (default 10).
    pub max_attempts: i32,
    /// `LECTOR_WEBHOOK_RETRY_BASE_SECS`: the wait after the first failed attempt; doubles each
    /// time (default 30) up to `LECTOR_WEBHOOK_RETRY_MAX_SECS` (default 21,600: six hours).
    pub retry_base: Duration,
    /// See `retry_base`.
    pub retry_max: Duration,
    /// `LECTOR_WEBHOOK_LOG_DAYS`: how long finished deliveries stay in the log (default 30).
    pub log_days: u32,
    /// `LECTOR_WEBHOOKS_PER_USER`: most webhooks one account may register (default 20).
    pub per_user: i64,
}

/// The cores this process may run on (1 when the system cannot say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
