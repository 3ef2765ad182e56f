//! Reading [`Config`] from the environment: one reader per group of variables, then the
//! checks that need several of them. An invalid value is an error that names its variable.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, anyhow, bail};
use secrecy::SecretString;

use super::{
    BlobStoreChoice, Config, DEFAULT_SEARCH_MAX_SCORED_PAGES, HttpSettings, LogFormat,
    RateLimitSettings, SignupPolicy, TextractNotices, WebhookSettings, cores,
};
use crate::{
    domain::{
        Engine,
        ocr::{MIN_DPI, OcrMode, OcrSettings},
    },
    sealing::KeySource,
};

/// The variables as [`Config::from_lookup`] sees them: blank counts as unset.
struct Vars<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value as given, blank included (a blank prefix means the bucket's top).
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn parse_or<T: FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                anyhow!(
                    "{name}={raw:?} is not a valid {}",
                    std::any::type_name::<T>()
                )
            }),
        }
    }

    fn secs(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        self.parse_or(name, default).map(Duration::from_secs)
    }

    fn millis(&self, name: &str, default: u64) -> anyhow::Result<Duration> {
        self.parse_or(name, default).map(Duration::from_millis)
    }

    /// One of `choices` by name; `None` (unset) is one of the names when there is a default.
    fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(Option<&str>, T)],
        expected: &str,
    ) -> anyhow::Result<T> {
        let given = self.get(name);
        choices
            .iter()
            .find(|(choice, _)| *choice == given.as_deref())
            .map(|(_, value)| *value)
            .ok_or_else(|| anyhow!("{name}={:?} must be {expected}", given.unwrap_or_default()))
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let vars = Vars { lookup };
        let workers = vars.parse_or("LECTOR_WORKERS", cores())?;
        let database_url = database_url(&vars)?;
        let config = Config {
            bind: bind_address(&vars)?,
            database_max_connections: vars
                .parse_or("LECTOR_DATABASE_MAX_CONNECTIONS", workers as u32 + 8)?,
            secret_key: secret_key_source(&vars, &database_url)?,
            secret_key_previous: previous_secret_keys(&vars)?,
            database_url: SecretString::from(database_url),
            workers,
            max_upload_bytes: vars.parse_or("LECTOR_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)?,
            max_pages: vars.parse_or("LECTOR_MAX_PAGES", 2000)?,
            search_max_scored_pages: vars.parse_or(
                "LECTOR_SEARCH_MAX_SCORED_PAGES",
                DEFAULT_SEARCH_MAX_SCORED_PAGES,
            )?,
            search_phrase_index: vars.parse_or("LECTOR_SEARCH_PHRASE_INDEX", false)?,
            max_files_per_upload: vars.parse_or("LECTOR_MAX_FILES_PER_UPLOAD", 20)?,
            webhooks: webhooks(&vars)?,
            job_max_attempts: vars.parse_or("LECTOR_JOB_MAX_ATTEMPTS", 3)?,
            job_lease: vars.secs("LECTOR_JOB_LEASE_SECS", 60)?,
            job_retry_base: vars.secs("LECTOR_JOB_RETRY_BASE_SECS", 5)?,
            poll_interval: vars.millis("LECTOR_POLL_INTERVAL_MS", 1000)?,
            extract_timeout_base: vars.secs("LECTOR_EXTRACT_TIMEOUT_BASE_SECS", 30)?,
            extract_timeout_per_page: vars.millis("LECTOR_EXTRACT_TIMEOUT_PER_PAGE_MS", 2000)?,
            http: HttpSettings {
                header_timeout: vars.secs("LECTOR_HTTP_HEADER_TIMEOUT_SECS", 20)?,
                body_timeout: vars.secs("LECTOR_HTTP_BODY_TIMEOUT_SECS", 30)?,
            },
            inspect_timeout: vars.secs("LECTOR_INSPECT_TIMEOUT_SECS", 20)?,
            sandbox_memory_mb: vars.parse_or("LECTOR_SANDBOX_MEMORY_MB", 4096)?,
            sandbox_exe: match vars.get("LECTOR_SANDBOX_EXE") {
                Some(path) => PathBuf::from(path),
                None => {
                    std::env::current_exe().context("finding this executable for the sandbox")?
                }
            },
            shutdown_grace: vars.secs("LECTOR_SHUTDOWN_GRACE_SECS", 10)?,
            log_format: vars.choice(
                "LECTOR_LOG_FORMAT",
                &[
                    (None, LogFormat::Compact),
                    (Some("compact"), LogFormat::Compact),
                    (Some("json"), LogFormat::Json),
                ],
                "compact or json",
            )?,
            engine: match vars.get("LECTOR_ENGINE") {
                None => Engine::Local,
                Some(raw) => Engine::parse(&raw).with_context(|| {
                    format!("LECTOR_ENGINE={raw:?} must be local, textract or hybrid")
                })?,
            },
            blob_store: vars.choice(
                "LECTOR_BLOB_STORE",
                &[
                    (None, BlobStoreChoice::Database),
                    (Some("database"), BlobStoreChoice::Database),
                    (Some("s3"), BlobStoreChoice::S3),
                ],
                "database or s3",
            )?,
            s3_bucket: vars.get("LECTOR_S3_BUCKET"),
            s3_prefix: vars
                .raw("LECTOR_S3_PREFIX")
                .unwrap_or_else(|| "originals/".into()),
            aws_region: vars
                .get("AWS_REGION")
                .or_else(|| vars.get("AWS_DEFAULT_REGION")),
            aws_endpoint_url: vars.get("AWS_ENDPOINT_URL"),
            aws_endpoint_url_s3: vars.get("AWS_ENDPOINT_URL_S3"),
            aws_endpoint_url_textract: vars.get("AWS_ENDPOINT_URL_TEXTRACT"),
            aws_endpoint_url_sqs: vars.get("AWS_ENDPOINT_URL_SQS"),
            aws_static_credentials: vars
                .get("AWS_ACCESS_KEY_ID")
                .zip(vars.get("AWS_SECRET_ACCESS_KEY"))
                .map(|(id, secret)| (id, SecretString::from(secret))),
            textract_max_in_flight: vars.parse_or("LECTOR_TEXTRACT_MAX_IN_FLIGHT", 10)?,
            textract_poll_initial: vars.millis("LECTOR_TEXTRACT_POLL_INITIAL_MS", 1000)?,
            textract_poll_max: vars.millis("LECTOR_TEXTRACT_POLL_MAX_MS", 20000)?,
            textract_timeout: vars.secs("LECTOR_TEXTRACT_TIMEOUT_SECS", 1800)?,
            textract_notices: textract_notices(&vars)?,
            ingest_sqs_queue_url: vars.get("LECTOR_INGEST_SQS_QUEUE_URL"),
            ingest_s3_prefix: vars.raw("LECTOR_INGEST_S3_PREFIX").unwrap_or_default(),
            textract_price_per_1000_pages: vars
                .parse_or("LECTOR_TEXTRACT_PRICE_PER_1000_PAGES", 1.5)?,
            textract_monthly_page_budget: match vars.get("LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET") {
                None => None,
                Some(raw) => Some(raw.trim().parse().map_err(|_| {
                    anyhow!("LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET={raw:?} is not a number of pages")
                })?),
            },
            ocr: ocr(&vars)?,
            ocr_page_timeout: vars.secs("LECTOR_OCR_PAGE_TIMEOUT_SECS", 120)?,
            public_url: vars
                .get("LECTOR_PUBLIC_URL")
                .map(|url| url.trim_end_matches('/').to_owned()),
            signup: vars.choice(
                "LECTOR_SIGNUP",
                &[
                    (Some("open"), SignupPolicy::Open),
                    (None, SignupPolicy::FirstOnly),
                    (Some("first-only"), SignupPolicy::FirstOnly),
                    (Some("closed"), SignupPolicy::Closed),
                ],
                "open, first-only or closed",
            )?,
            password_min_length: vars.parse_or("LECTOR_PASSWORD_MIN_LENGTH", 10)?,
            rate_limits: rate_limits(&vars)?,
            trusted_proxy_hops: vars.parse_or("LECTOR_TRUSTED_PROXY_HOPS", 0)?,
            ingest_owner: vars.get("LECTOR_INGEST_OWNER"),
            metrics_token: vars.get("LECTOR_METRICS_TOKEN").map(SecretString::from),
        };
        check_together(&config)?;
        Ok(config)
    }
}

fn bind_address<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> anyhow::Result<SocketAddr> {
    Ok(match (vars.get("LECTOR_BIND"), vars.get("PORT")) {
        (Some(bind), _) => bind
            .parse()
            .with_context(|| format!("LECTOR_BIND={bind:?} is not an address like 0.0.0.0:8080"))?,
        (None, Some(port)) => {
            let port: u16 = port
                .parse()
                .with_context(|| format!("PORT={port:?} is not a port number"))?;
            SocketAddr::from(([0, 0, 0, 0], port))
        }
        (None, None) => SocketAddr::from(([0, 0, 0, 0], 8080)),
    })
}

fn database_url<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> anyhow::Result<String> {
    let url = match (vars.get("DATABASE_URL"), vars.get("RDS_HOSTNAME")) {
        (Some(url), _) => url,
        (None, Some(host)) => rds_url(vars, &host)?,
        (None, None) => "sqlite://data/lector.db".into(),
    };
    if !["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:");
    }
    Ok(url)
}

/// A Postgres URL from Elastic Beanstalk's `RDS_*` variables, user and password
/// percent-encoded, TLS required unless `LECTOR_DATABASE_SSLMODE` says otherwise.
fn rds_url<F: Fn(&str) -> Option<String>>(vars: &Vars<F>, host: &str) -> anyhow::Result<String> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let need = |name: &str| {
        vars.get(name)
            .ok_or_else(|| anyhow!("RDS_HOSTNAME is set, so {name} must be too"))
    };
    let user = need("RDS_USERNAME")?;
    let password = need("RDS_PASSWORD")?;
    let database = need("RDS_DB_NAME")?;
    let port: u16 = vars.parse_or("RDS_PORT", 5432)?;
    let sslmode = vars
        .get("LECTOR_DATABASE_SSLMODE")
        .unwrap_or_else(|| "require".into());
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

/// Where the key that seals stored secrets comes from (see [`Config::secret_key`]).
fn secret_key_source<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    database_url: &str,
) -> anyhow::Result<KeySource> {
    if let Some(key) = vars.get("LECTOR_SECRET_KEY") {
        crate::sealing::check_key(&key, "LECTOR_SECRET_KEY")?;
        return Ok(KeySource::Given(SecretString::from(key)));
    }
    if let Some(path) = vars.get("LECTOR_SECRET_KEY_FILE") {
        return Ok(KeySource::File(PathBuf::from(path)));
    }
    if !database_url.starts_with("sqlite:") {
        return Ok(KeySource::Missing);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(database_url)
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

/// Keys that sealed secrets before a rotation, comma-separated.
fn previous_secret_keys<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> anyhow::Result<Vec<SecretString>> {
    vars.get("LECTOR_SECRET_KEY_PREVIOUS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(|key| {
            crate::sealing::check_key(key, "LECTOR_SECRET_KEY_PREVIOUS")
                .map(|()| SecretString::from(key.to_owned()))
        })
        .collect()
}

fn webhooks<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> anyhow::Result<WebhookSettings> {
    Ok(WebhookSettings {
        allow_private: vars.parse_or("LECTOR_WEBHOOK_ALLOW_PRIVATE", false)?,
        senders: vars.parse_or("LECTOR_WEBHOOK_SENDERS", 2)?,
        timeout: vars.secs("LECTOR_WEBHOOK_TIMEOUT_SECS", 10)?,
        max_attempts: vars.parse_or("LECTOR_WEBHOOK_MAX_ATTEMPTS", 10)?,
        retry_base: vars.secs("LECTOR_WEBHOOK_RETRY_BASE_SECS", 30)?,
        retry_max: vars.secs("LECTOR_WEBHOOK_RETRY_MAX_SECS", 6 * 3600)?,
        log_days: vars.parse_or("LECTOR_WEBHOOK_LOG_DAYS", 30)?,
        per_user: vars.parse_or("LECTOR_WEBHOOKS_PER_USER", 20)?,
    })
}

fn textract_notices<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> anyhow::Result<Option<TextractNotices>> {
    match (
        vars.get("LECTOR_TEXTRACT_SNS_TOPIC_ARN"),
        vars.get("LECTOR_TEXTRACT_SNS_ROLE_ARN"),
        vars.get("LECTOR_TEXTRACT_SQS_QUEUE_URL"),
    ) {
        (Some(sns_topic_arn), Some(sns_role_arn), Some(sqs_queue_url)) => {
            Ok(Some(TextractNotices {
                sns_topic_arn,
                sns_role_arn,
                sqs_queue_url,
            }))
        }
        (None, None, None) => Ok(None),
        _ => bail!(
            "LECTOR_TEXTRACT_SNS_TOPIC_ARN, LECTOR_TEXTRACT_SNS_ROLE_ARN and \
             LECTOR_TEXTRACT_SQS_QUEUE_URL go together: set all three or none"
        ),
    }
}

fn ocr<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> anyhow::Result<OcrSettings> {
    let settings = OcrSettings {
        mode: match vars.get("LECTOR_OCR") {
            None => OcrMode::Auto,
            Some(raw) => OcrMode::parse(&raw)
                .ok_or_else(|| anyhow!("LECTOR_OCR={raw:?} must be auto, off or force"))?,
        },
        languages: vars
            .get("LECTOR_OCR_LANGUAGES")
            .unwrap_or_else(|| "eng".into()),
        dpi: vars.parse_or("LECTOR_OCR_DPI", 300)?,
        max_pixels: vars.parse_or("LECTOR_OCR_MAX_PIXELS", 50_000_000)?,
        min_chars: vars.parse_or("LECTOR_OCR_MIN_CHARS", 2)?,
        max_junk_ratio: vars.parse_or("LECTOR_OCR_MAX_JUNK_RATIO", 0.10)?,
        defer: false,
    };
    if !(MIN_DPI..=1200).contains(&settings.dpi) {
        bail!("LECTOR_OCR_DPI must be between {} and 1200", MIN_DPI);
    }
    if !(0.0..=1.0).contains(&settings.max_junk_ratio) {
        bail!("LECTOR_OCR_MAX_JUNK_RATIO must be between 0 and 1");
    }
    Ok(settings)
}

fn rate_limits<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> anyhow::Result<RateLimitSettings> {
    Ok(RateLimitSettings {
        login_per_ip: vars.parse_or("LECTOR_RATE_LOGIN_PER_IP", 20)?,
        login_failures_per_address: vars.parse_or("LECTOR_LOGIN_FAILURES_PER_ADDRESS", 5)?,
        login_failures_per_account: vars.parse_or("LECTOR_LOGIN_FAILURES_PER_ACCOUNT", 100)?,
        signups_per_hour: vars.parse_or("LECTOR_RATE_SIGNUPS_PER_HOUR", 5)?,
        uploads_per_user: vars.parse_or("LECTOR_RATE_UPLOADS_PER_USER", 120)?,
    })
}

/// The rules that hold between variables, and the lower bounds of single ones.
fn check_together(config: &Config) -> anyhow::Result<()> {
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
    Ok(())
}
