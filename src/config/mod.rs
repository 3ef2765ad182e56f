//! Typed configuration, read once from the environment with defaults that run on a laptop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{
    Engine,
    ocr::{MIN_DPI, OcrMode, OcrSettings},
};

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

/// Where the key that seals stored secrets comes from (see [`Config::secret_key`]).
fn secret_key_source(
    get: &impl Fn(&str) -> Option<String>,
    database_url: &str,
) -> anyhow::Result<crate::sealing::KeySource> {
    use crate::sealing::KeySource;
    if let Some(key) = get("LECTOR_SECRET_KEY") {
        crate::sealing::check_key(&key, "LECTOR_SECRET_KEY")?;
        return Ok(KeySource::Given(SecretString::from(key)));
    }
    if let Some(path) = get("LECTOR_SECRET_KEY_FILE") {
        return Ok(KeySource::File(PathBuf::from(path)));
    }
    if !database_url.starts_with("sqlite:") {
        return Ok(KeySource::Missing);
    }
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(database_url)
        .context("DATABASE_URL is not a valid SQLite URL")?;
    let file = options.get_filename();
    if file.as_os_str().is_empty()
        || file == std::path::Path::new(":memory:")
        || database_url.contains("mode=memory")
    {
        return Ok(KeySource::Ephemeral);
    }
    let dir = file.parent().unwrap_or(std::path::Path::new(""));
    Ok(KeySource::File(dir.join("lector-secret.key")))
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
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let workers = parse_or(&get, "LECTOR_WORKERS", cores())?;
        let bind = match (get("LECTOR_BIND"), get("PORT")) {
            (Some(bind), _) => bind.parse().with_context(|| {
                format!("LECTOR_BIND={bind:?} is not an address like 0.0.0.0:8080")
            })?,
            (None, Some(port)) => {
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("PORT={port:?} is not a port number"))?;
                SocketAddr::from(([0, 0, 0, 0], port))
            }
            (None, None) => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let database_url = match (get("DATABASE_URL"), get("RDS_HOSTNAME")) {
            (Some(url), _) => url,
            (None, Some(host)) => rds_url(&get, &host)?,
            (None, None) => "sqlite://data/lector.db".into(),
        };
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:");
        }
        let log_format = match get("LECTOR_LOG_FORMAT").as_deref() {
            None | Some("compact") => LogFormat::Compact,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LECTOR_LOG_FORMAT={other:?} must be compact or json"),
        };
        let sandbox_exe = match get("LECTOR_SANDBOX_EXE") {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe().context("finding this executable for the sandbox")?,
        };
        let secs =
            |name: &str, default: u64| parse_or(&get, name, default).map(Duration::from_secs);
        let millis =
            |name: &str, default: u64| parse_or(&get, name, default).map(Duration::from_millis);
        let config = Config {
            bind,
            database_url: SecretString::from(database_url.clone()),
            database_max_connections: parse_or(
                &get,
                "LECTOR_DATABASE_MAX_CONNECTIONS",
                workers as u32 + 8,
            )?,
            workers,
            max_upload_bytes: parse_or(&get, "LECTOR_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)?,
            max_pages: parse_or(&get, "LECTOR_MAX_PAGES", 2000)?,
            search_max_scored_pages: parse_or(
                &get,
                "LECTOR_SEARCH_MAX_SCORED_PAGES",
                DEFAULT_SEARCH_MAX_SCORED_PAGES,
            )?,
            search_phrase_index: parse_or(&get, "LECTOR_SEARCH_PHRASE_INDEX", false)?,
            max_files_per_upload: parse_or(&get, "LECTOR_MAX_FILES_PER_UPLOAD", 20)?,
            webhooks: WebhookSettings {
                allow_private: parse_or(&get, "LECTOR_WEBHOOK_ALLOW_PRIVATE", false)?,
                senders: parse_or(&get, "LECTOR_WEBHOOK_SENDERS", 2)?,
                timeout: secs("LECTOR_WEBHOOK_TIMEOUT_SECS", 10)?,
                max_attempts: parse_or(&get, "LECTOR_WEBHOOK_MAX_ATTEMPTS", 10)?,
                retry_base: secs("LECTOR_WEBHOOK_RETRY_BASE_SECS", 30)?,
                retry_max: secs("LECTOR_WEBHOOK_RETRY_MAX_SECS", 6 * 3600)?,
                log_days: parse_or(&get, "LECTOR_WEBHOOK_LOG_DAYS", 30)?,
                per_user: parse_or(&get, "LECTOR_WEBHOOKS_PER_USER", 20)?,
            },
            job_max_attempts: parse_or(&get, "LECTOR_JOB_MAX_ATTEMPTS", 3)?,
            job_lease: secs("LECTOR_JOB_LEASE_SECS", 60)?,
            job_retry_base: secs("LECTOR_JOB_RETRY_BASE_SECS", 5)?,
            poll_interval: millis("LECTOR_POLL_INTERVAL_MS", 1000)?,
            extract_timeout_base: secs("LECTOR_EXTRACT_TIMEOUT_BASE_SECS", 30)?,
            extract_timeout_per_page: millis("LECTOR_EXTRACT_TIMEOUT_PER_PAGE_MS", 2000)?,
            http: HttpSettings {
                header_timeout: secs("LECTOR_HTTP_HEADER_TIMEOUT_SECS", 20)?,
                body_timeout: secs("LECTOR_HTTP_BODY_TIMEOUT_SECS", 30)?,
            },
            inspect_timeout: secs("LECTOR_INSPECT_TIMEOUT_SECS", 20)?,
            sandbox_memory_mb: parse_or(&get, "LECTOR_SANDBOX_MEMORY_MB", 4096)?,
            sandbox_exe,
            shutdown_grace: secs("LECTOR_SHUTDOWN_GRACE_SECS", 10)?,
            log_format,
            engine: match get("LECTOR_ENGINE").as_deref() {
                None => Engine::Local,
                Some(raw) => Engine::parse(raw).with_context(|| {
                    format!("LECTOR_ENGINE={raw:?} must be local, textract or hybrid")
                })?,
            },
            blob_store: match get("LECTOR_BLOB_STORE").as_deref() {
                None | Some("database") => BlobStoreChoice::Database,
                Some("s3") => BlobStoreChoice::S3,
                Some(other) => bail!("LECTOR_BLOB_STORE={other:?} must be database or s3"),
            },
            s3_bucket: get("LECTOR_S3_BUCKET"),
            s3_prefix: lookup("LECTOR_S3_PREFIX").unwrap_or_else(|| "originals/".into()),
            aws_region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            aws_endpoint_url: get("AWS_ENDPOINT_URL"),
            aws_endpoint_url_s3: get("AWS_ENDPOINT_URL_S3"),
            aws_endpoint_url_textract: get("AWS_ENDPOINT_URL_TEXTRACT"),
            aws_static_credentials: get("AWS_ACCESS_KEY_ID")
                .zip(get("AWS_SECRET_ACCESS_KEY"))
                .map(|(id, secret)| (id, SecretString::from(secret))),
            textract_max_in_flight: parse_or(&get, "LECTOR_TEXTRACT_MAX_IN_FLIGHT", 10)?,
            textract_poll_initial: millis("LECTOR_TEXTRACT_POLL_INITIAL_MS", 1000)?,
            textract_poll_max: millis("LECTOR_TEXTRACT_POLL_MAX_MS", 20000)?,
            textract_timeout: secs("LECTOR_TEXTRACT_TIMEOUT_SECS", 1800)?,
            textract_notices: match (
                get("LECTOR_TEXTRACT_SNS_TOPIC_ARN"),
                get("LECTOR_TEXTRACT_SNS_ROLE_ARN"),
                get("LECTOR_TEXTRACT_SQS_QUEUE_URL"),
            ) {
                (Some(sns_topic_arn), Some(sns_role_arn), Some(sqs_queue_url)) => {
                    Some(TextractNotices {
                        sns_topic_arn,
                        sns_role_arn,
                        sqs_queue_url,
                    })
                }
                (None, None, None) => None,
                _ => bail!(
                    "LECTOR_TEXTRACT_SNS_TOPIC_ARN, LECTOR_TEXTRACT_SNS_ROLE_ARN and \
                     LECTOR_TEXTRACT_SQS_QUEUE_URL go together: set all three or none"
                ),
            },
            aws_endpoint_url_sqs: get("AWS_ENDPOINT_URL_SQS"),
            ingest_sqs_queue_url: get("LECTOR_INGEST_SQS_QUEUE_URL"),
            ingest_s3_prefix: lookup("LECTOR_INGEST_S3_PREFIX").unwrap_or_default(),
            textract_price_per_1000_pages: parse_or(
                &get,
                "LECTOR_TEXTRACT_PRICE_PER_1000_PAGES",
                1.5,
            )?,
            textract_monthly_page_budget: match get("LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET") {
                None => None,
                Some(raw) => Some(raw.trim().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET={raw:?} is not a number of pages"
                    )
                })?),
            },
            ocr: OcrSettings {
                mode: match get("LECTOR_OCR") {
                    None => OcrMode::Auto,
                    Some(raw) => OcrMode::parse(&raw).ok_or_else(|| {
                        anyhow::anyhow!("LECTOR_OCR={raw:?} must be auto, off or force")
                    })?,
                },
                languages: get("LECTOR_OCR_LANGUAGES").unwrap_or_else(|| "eng".into()),
                dpi: parse_or(&get, "LECTOR_OCR_DPI", 300)?,
                max_pixels: parse_or(&get, "LECTOR_OCR_MAX_PIXELS", 50_000_000)?,
                min_chars: parse_or(&get, "LECTOR_OCR_MIN_CHARS", 2)?,
                max_junk_ratio: parse_or(&get, "LECTOR_OCR_MAX_JUNK_RATIO", 0.10)?,
                defer: false,
            },
            ocr_page_timeout: secs("LECTOR_OCR_PAGE_TIMEOUT_SECS", 120)?,
            public_url: get("LECTOR_PUBLIC_URL").map(|url| url.trim_end_matches('/').to_owned()),
            signup: match get("LECTOR_SIGNUP").as_deref() {
                Some("open") => SignupPolicy::Open,
                None | Some("first-only") => SignupPolicy::FirstOnly,
                Some("closed") => SignupPolicy::Closed,
                Some(other) => bail!("LECTOR_SIGNUP={other:?} must be open, first-only or closed"),
            },
            password_min_length: parse_or(&get, "LECTOR_PASSWORD_MIN_LENGTH", 10)?,
            rate_limits: RateLimitSettings {
                login_per_ip: parse_or(&get, "LECTOR_RATE_LOGIN_PER_IP", 20)?,
                login_failures_per_address: parse_or(&get, "LECTOR_LOGIN_FAILURES_PER_ADDRESS", 5)?,
                login_failures_per_account: parse_or(
                    &get,
                    "LECTOR_LOGIN_FAILURES_PER_ACCOUNT",
                    100,
                )?,
                signups_per_hour: parse_or(&get, "LECTOR_RATE_SIGNUPS_PER_HOUR", 5)?,
                uploads_per_user: parse_or(&get, "LECTOR_RATE_UPLOADS_PER_USER", 120)?,
            },
            trusted_proxy_hops: parse_or(&get, "LECTOR_TRUSTED_PROXY_HOPS", 0)?,
            ingest_owner: get("LECTOR_INGEST_OWNER"),
            metrics_token: get("LECTOR_METRICS_TOKEN").map(SecretString::from),
            secret_key: secret_key_source(&get, &database_url)?,
            secret_key_previous: get("LECTOR_SECRET_KEY_PREVIOUS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(|key| {
                    crate::sealing::check_key(key, "LECTOR_SECRET_KEY_PREVIOUS")
                        .map(|()| SecretString::from(key.to_owned()))
                })
                .collect::<anyhow::Result<_>>()?,
        };
        if !(MIN_DPI..=1200).contains(&config.ocr.dpi) {
            bail!("LECTOR_OCR_DPI must be between {} and 1200", MIN_DPI);
        }
        if !(0.0..=1.0).contains(&config.ocr.max_junk_ratio) {
            bail!("LECTOR_OCR_MAX_JUNK_RATIO must be between 0 and 1");
        }
        let needs_bucket = config.blob_store == BlobStoreChoice::S3
            || config.engine != Engine::Local
            || config.ingest_sqs_queue_url.is_some();
        if needs_bucket && config.s3_bucket.is_none() {
            bail!(
                "LECTOR_S3_BUCKET must be set when LECTOR_BLOB_STORE=s3, LECTOR_ENGINE=textract or hybrid, or LECTOR_INGEST_SQS_QUEUE_URL is set"
            );
        }
        if config.http.header_timeout.is_zero() || config.http.body_timeout.is_zero() {
            bail!(
                "LECTOR_HTTP_HEADER_TIMEOUT_SECS and LECTOR_HTTP_BODY_TIMEOUT_SECS must be at least 1"
            );
        }
        if config.textract_max_in_flight == 0 {
            bail!("LECTOR_TEXTRACT_MAX_IN_FLIGHT must be at least 1");
        }
        if config.job_max_attempts < 1 {
            bail!("LECTOR_JOB_MAX_ATTEMPTS must be at least 1");
        }
        if config.webhooks.max_attempts < 1 || config.webhooks.timeout.is_zero() {
            bail!("LECTOR_WEBHOOK_MAX_ATTEMPTS and LECTOR_WEBHOOK_TIMEOUT_SECS must be at least 1");
        }
        if config.job_lease < Duration::from_secs(1) {
            bail!("LECTOR_JOB_LEASE_SECS must be at least 1");
        }
        if let Some(url) = &config.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            bail!("LECTOR_PUBLIC_URL={url:?} must start with https:// or http://");
        }
        if config.password_min_length < 8 {
            bail!("LECTOR_PASSWORD_MIN_LENGTH must be at least 8");
        }
        if config.max_pages == 0 || config.max_upload_bytes == 0 {
            bail!("LECTOR_MAX_PAGES and LECTOR_MAX_UPLOAD_BYTES must be above 0");
        }
        if config.search_max_scored_pages < 1 {
            bail!("LECTOR_SEARCH_MAX_SCORED_PAGES must be at least 1");
        }
        Ok(config)
    }

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

/// A Postgres URL from Elastic Beanstalk's `RDS_*` variables, user and password
/// percent-encoded, TLS required unless `LECTOR_DATABASE_SSLMODE` says otherwise.
fn rds_url(get: &impl Fn(&str) -> Option<String>, host: &str) -> anyhow::Result<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let need = |name: &str| {
        get(name).ok_or_else(|| anyhow::anyhow!("RDS_HOSTNAME is set, so {name} must be too"))
    };
    let user = need("RDS_USERNAME")?;
    let password = need("RDS_PASSWORD")?;
    let database = need("RDS_DB_NAME")?;
    let port: u16 = parse_or(get, "RDS_PORT", 5432)?;
    let sslmode = get("LECTOR_DATABASE_SSLMODE").unwrap_or_else(|| "require".into());
    if !["disable", "prefer", "require", "verify-ca", "verify-full"].contains(&sslmode.as_str()) {
        bail!(
            "LECTOR_DATABASE_SSLMODE={sslmode:?} must be disable, prefer, require, verify-ca or verify-full"
        );
    }
    Ok(format!(
        "postgres://{}:{}@{host}:{port}/{}?sslmode={sslmode}",
        utf8_percent_encode(&user, NON_ALPHANUMERIC),
        utf8_percent_encode(&password, NON_ALPHANUMERIC),
        utf8_percent_encode(&database, NON_ALPHANUMERIC),
    ))
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

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "{name}={raw:?} is not a valid {}",
                std::any::type_name::<T>()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_run_on_a_laptop_with_sqlite() {
        let config = config(&[]).unwrap();
        assert!(!config.is_postgres());
        assert_eq!(config.bind.port(), 8080);
        assert_eq!(config.max_upload_bytes, 100 * 1024 * 1024);
        assert_eq!(config.max_pages, 2000);
    }

    #[test]
    fn port_from_elastic_beanstalk_is_used() {
        assert_eq!(config(&[("PORT", "5000")]).unwrap().bind.port(), 5000);
    }

    #[test]
    fn an_invalid_value_names_the_variable() {
        let err = config(&[("LECTOR_MAX_PAGES", "many")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LECTOR_MAX_PAGES"), "{err}");
        let err = config(&[("DATABASE_URL", "mysql://x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn the_database_password_never_appears_in_debug_output() {
        let config = config(&[("DATABASE_URL", "postgres://u:hunter2@db/lector")]).unwrap();
        assert!(config.is_postgres());
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn elastic_beanstalk_rds_variables_make_a_tls_postgres_url() {
        let rds = [
            (
                "RDS_HOSTNAME",
                "lector.cluster-abc.eu-west-1.rds.amazonaws.com",
            ),
            ("RDS_PORT", "5432"),
            ("RDS_DB_NAME", "lector"),
            ("RDS_USERNAME", "lector"),
            ("RDS_PASSWORD", "p@ss/w:rd"),
        ];
        let parsed = config(&rds).unwrap();
        assert!(parsed.is_postgres());
        assert_eq!(
            parsed.database_url.expose_secret(),
            "postgres://lector:p%40ss%2Fw%3Ard@lector.cluster-abc.eu-west-1.rds.amazonaws.com:5432/lector?sslmode=require"
        );
        assert!(!format!("{parsed:?}").contains("p@ss"));
        let err = config(&rds[..2]).unwrap_err().to_string();
        assert!(err.contains("RDS_USERNAME"), "{err}");
        let mut explicit = rds.to_vec();
        explicit.push(("DATABASE_URL", "postgres://other/db"));
        assert_eq!(
            config(&explicit).unwrap().database_url.expose_secret(),
            "postgres://other/db"
        );
    }

    #[test]
    fn textract_and_s3_need_a_bucket() {
        let err = config(&[("LECTOR_ENGINE", "textract")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
        let err = config(&[("LECTOR_BLOB_STORE", "s3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
        let ok = config(&[("LECTOR_ENGINE", "textract"), ("LECTOR_S3_BUCKET", "b")]).unwrap();
        assert_eq!(ok.engine.as_str(), "textract");
        assert_eq!(ok.s3_prefix, "originals/");
        assert!(config(&[("LECTOR_ENGINE", "magic")]).is_err());
        let err = config(&[("LECTOR_ENGINE", "hybrid")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
        let hybrid = config(&[("LECTOR_ENGINE", "hybrid"), ("LECTOR_S3_BUCKET", "b")]).unwrap();
        assert_eq!(hybrid.engine.as_str(), "hybrid");
    }

    #[test]
    fn ocr_settings_are_read_and_checked() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.ocr.mode, OcrMode::Auto);
        assert_eq!(defaults.ocr.languages, "eng");
        assert_eq!(defaults.ocr.dpi, 300);
        let set = config(&[
            ("LECTOR_OCR", "force"),
            ("LECTOR_OCR_LANGUAGES", "eng+deu"),
            ("LECTOR_OCR_DPI", "200"),
        ])
        .unwrap();
        assert_eq!(set.ocr.mode, OcrMode::Force);
        assert_eq!(set.ocr.languages, "eng+deu");
        assert!(
            set.extract_cpu_limit(10, OcrMode::Force) > set.extract_cpu_limit(10, OcrMode::Off)
        );
        let err = config(&[("LECTOR_OCR", "always")]).unwrap_err().to_string();
        assert!(err.contains("LECTOR_OCR"), "{err}");
        assert!(config(&[("LECTOR_OCR_DPI", "10")]).is_err());
        assert!(config(&[("LECTOR_OCR_MAX_JUNK_RATIO", "2")]).is_err());
    }

    #[test]
    fn account_and_rate_limit_settings_are_read_and_checked() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.signup, SignupPolicy::FirstOnly);
        assert!(!defaults.is_https());
        assert_eq!(defaults.rate_limits.login_per_ip, 20);
        let set = config(&[
            ("LECTOR_SIGNUP", "closed"),
            ("LECTOR_PUBLIC_URL", "https://lector.example/"),
            ("LECTOR_RATE_UPLOADS_PER_USER", "0"),
            ("LECTOR_TRUSTED_PROXY_HOPS", "2"),
        ])
        .unwrap();
        assert_eq!(set.signup, SignupPolicy::Closed);
        assert!(set.is_https());
        assert_eq!(set.public_url.as_deref(), Some("https://lector.example"));
        assert_eq!(set.rate_limits.uploads_per_user, 0);
        assert_eq!(set.trusted_proxy_hops, 2);
        for (name, value) in [
            ("LECTOR_SIGNUP", "maybe"),
            ("LECTOR_PUBLIC_URL", "lector.example"),
            ("LECTOR_PASSWORD_MIN_LENGTH", "4"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn the_time_limit_grows_with_the_page_count() {
        let config = config(&[]).unwrap();
        assert!(config.extract_timeout(100) > config.extract_timeout(1));
    }

    #[test]
    fn every_variable_config_reads_is_documented() {
        use std::{cell::RefCell, collections::BTreeSet};
        // Config is asked rather than its source searched, so a name built at run time or
        // read through a helper counts too. The `RDS_*` variables and `LECTOR_DATABASE_SSLMODE`
        // are read only when `RDS_HOSTNAME` is set without `DATABASE_URL`: a variable read only
        // under some other condition needs its own case here.
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[
                ("RDS_HOSTNAME", "db.example"),
                ("RDS_DB_NAME", "lector"),
                ("RDS_USERNAME", "lector"),
                ("RDS_PASSWORD", "secret"),
            ],
        ];
        let asked = RefCell::new(BTreeSet::new());
        for vars in cases {
            Config::from_lookup(|name| {
                asked.borrow_mut().insert(name.to_owned());
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            })
            .unwrap();
        }
        let mut names = asked.into_inner();
        assert!(names.contains("LECTOR_DATABASE_SSLMODE"), "{names:?}");
        // Read outside Config: by the command line (`extract`, `render`), by the log filter,
        // and by the OCR engine (Tesseract's own variable).
        names.extend(["LECTOR_PDF_PASSWORD", "RUST_LOG", "TESSDATA_PREFIX"].map(String::from));

        let env_example = include_str!("../.env.example");
        let in_env_example = |name: &str| {
            env_example
                .lines()
                .map(|line| line.trim_start_matches(['#', ' ']))
                .any(|line| line.starts_with(&format!("{name}=")))
        };
        // The first cell of a row of one of the tables in docs/configuration.md.
        let table = include_str!("../docs/configuration.md");
        let in_table = |name: &str| {
            table
                .lines()
                .filter_map(|line| line.strip_prefix('|')?.split('|').next())
                .any(|cell| cell.contains(&format!("`{name}`")))
        };
        let missing: Vec<String> = names
            .iter()
            .flat_map(|name| {
                let env = (!in_env_example(name)).then(|| format!("{name} (.env.example)"));
                let doc = (!in_table(name)).then(|| format!("{name} (docs/configuration.md)"));
                env.into_iter().chain(doc)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "read but not documented: {}",
            missing.join(", ")
        );
    }
}
