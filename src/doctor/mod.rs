//! `lector doctor`: checks how a deployment is wired and says what is wrong in plain words —
//! the database (reachable, migrated, encrypted), the bucket (there, allowed, in Textract's
//! region), Textract and its completion notices, the queues, OCR, the parser's sandbox, the
//! time limits against each other, and the Elastic Beanstalk bundle's nginx limits against
//! Lector's.
//!
//! It only looks: nothing is migrated, created or sent for extraction.

pub mod bundle;
mod sandbox;

use std::{fmt, future::Future, path::Path, time::Duration};

use secrecy::ExposeSecret;

use crate::{
    config::{BlobStoreChoice, Config},
    domain::{Engine, ocr::OcrMode},
    engines::ocr::OcrAvailability,
    extraction::Engines,
    startup,
};
use bundle::{Bundle, NGINX_DEFAULT_TIMEOUT};

/// A check that has not answered by then has failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for the multipart framing around the largest accepted file.
const MULTIPART_FRAMING: u64 = 64 * 1024;
/// Time an upload's answer may need after its last byte, besides the inspection: storing
/// the original in the database or on S3.
const STORE_ALLOWANCE: Duration = Duration::from_secs(60);
/// A shorter lease lets a slow database write cost a worker its job.
const MIN_LEASE: Duration = Duration::from_secs(10);
/// Textract publishes completion notices only to topics whose name starts with this (the
/// `AmazonTextractServiceRole` policy allows no other).
const TEXTRACT_TOPIC_PREFIX: &str = "AmazonTextract";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Wrong: the deployment will fail or misbehave until it is fixed.
    Problem,
    /// Not checked, and why is in the detail.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was checked.
    pub check: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found, or what is wrong and how to fix it.
    pub detail: String,
}

/// Everything `lector doctor` found, in the order it looked.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, check: &'static str, verdict: Verdict, detail: impl Into<String>) {
        self.findings.push(Finding {
            check,
            verdict,
            detail: detail.into(),
        });
    }

    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Ok, detail);
    }

    fn problem(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Problem, detail);
    }

    fn skipped(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Skipped, detail);
    }

    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Problem)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let verdict = match finding.verdict {
                Verdict::Ok => "ok",
                Verdict::Problem => "PROBLEM",
                Verdict::Skipped => "skipped",
            };
            writeln!(f, "{verdict:<8} {:<13} {}", finding.check, finding.detail)?;
        }
        Ok(())
    }
}

async fn within<T, E: fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

/// Runs every check for `config`; `bundle` is the Elastic Beanstalk bundle (zip or directory)
/// whose nginx and Procfile are checked, if any.
pub async fn examine(config: &Config, bundle: Option<&Path>) -> Report {
    let mut report = Report::default();
    database(config, &mut report).await;
    let engines = match startup::engines(config).await {
        Ok(engines) => engines,
        Err(error) => {
            report.problem("sandbox", format!("{error:#}"));
            return report;
        }
    };
    aws(config, &engines, &mut report).await;
    ocr(config, &engines.ocr, &mut report);
    sandbox::check(config, &mut report).await;
    time_limits(config, &mut report);
    match bundle {
        None => report.skipped(
            "bundle",
            "no bundle given (--bundle dist/lector-eb.zip, or run from the unpacked bundle)",
        ),
        Some(path) => match Bundle::open(path) {
            Ok(bundle) => check_bundle(config, &bundle, &mut report),
            Err(error) => report.problem("bundle", format!("{error:#}")),
        },
    }
    report
}

async fn database(config: &Config, report: &mut Report) {
    let connected =
        match within(async { startup::open(config).await.map_err(|e| format!("{e:#}")) }).await {
            Ok(connected) => connected,
            Err(reason) => {
                report.problem("database", format!("cannot connect: {reason}"));
                report.skipped("migrations", "no database");
                return;
            }
        };
    secret_key(config, connected.can_seal, report);
    let store = connected.store;
    match within(store.ping()).await {
        Ok(()) => report.ok("database", format!("{} answers", store.backend())),
        Err(reason) => report.problem(
            "database",
            format!("connected but a query failed: {reason}"),
        ),
    }
    if config.is_postgres() {
        database_tls(config, report);
    }
    match within(store.pending_migrations()).await {
        Ok(0) => report.ok("migrations", "all applied"),
        Ok(n) => report.problem(
            "migrations",
            format!("{n} not applied: run `lector migrate` (serve and worker apply them at start)"),
        ),
        Err(reason) => report.problem(
            "migrations",
            format!(
                "cannot read which are applied ({reason}): a new database needs `lector migrate`"
            ),
        ),
    }
}

/// The key that seals the secrets kept in the database (see [`crate::sealing`]).
fn secret_key(config: &Config, can_seal: bool, report: &mut Report) {
    use crate::sealing::KeySource;
    match (&config.secret_key, can_seal) {
        (KeySource::Given(_), true) => report.ok("secret-key", "from LECTOR_SECRET_KEY"),
        (KeySource::File(path), true) => report.ok("secret-key", format!("in {}", path.display())),
        (KeySource::Ephemeral, true) => report.ok("secret-key", "made for this in-memory database"),
        _ => report.problem(
            "secret-key",
            "no LECTOR_SECRET_KEY: Postgres needs one to seal PDF passwords and webhook \
             secrets, the same for every instance (`openssl rand -hex 32`)",
        ),
    }
}

/// Production databases are reached over TLS; a loopback or socket connection need not be.
fn database_tls(config: &Config, report: &mut Report) {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr;
    let Ok(options) = PgConnectOptions::from_str(config.database_url.expose_secret()) else {
        return;
    };
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match options.get_ssl_mode() {
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
            report.ok("database-tls", format!("required for {host}"));
        }
        _ if local => report.ok("database-tls", format!("not required for local {host}")),
        _ => report.problem(
            "database-tls",
            format!(
                "{host} is reached without requiring TLS: add sslmode=require (or verify-full) \
                 to DATABASE_URL, or set LECTOR_DATABASE_SSLMODE with RDS_*"
            ),
        ),
    }
}

async fn aws(config: &Config, engines: &Engines, report: &mut Report) {
    let uses_textract = config.engine.uses_textract();
    let uses_s3 = config.blob_store == BlobStoreChoice::S3 || uses_textract;
    if !uses_s3 && config.ingest_sqs_queue_url.is_none() {
        report.skipped(
            "aws",
            "not used: originals in the database, local engine, no S3 ingestion",
        );
        return;
    }
    match engines.blobs.s3() {
        None => report.problem("s3", "no LECTOR_S3_BUCKET, which this configuration needs"),
        Some(s3) => {
            match within(s3.check_access()).await {
                Ok(()) => report.ok(
                    "s3",
                    format!("bucket {} is there and may be listed", s3.bucket()),
                ),
                Err(reason) => report.problem("s3", reason),
            }
            match (s3.client_region(), within(s3.bucket_region()).await) {
                (None, _) => report.problem("region", "no AWS region: set AWS_REGION"),
                (Some(region), Ok(bucket)) if region == bucket => {
                    report.ok("region", format!("bucket and Textract both in {region}"));
                }
                (Some(region), Ok(bucket)) => report.problem(
                    "region",
                    format!(
                        "the bucket {} is in {bucket} but Lector calls Textract in {region}: \
                         Textract reads only buckets in its own region (set AWS_REGION={bucket})",
                        s3.bucket()
                    ),
                ),
                (Some(_), Err(reason)) => report.problem(
                    "region",
                    format!(
                        "cannot read the bucket's region ({reason}): the role needs \
                         s3:GetBucketLocation"
                    ),
                ),
            }
        }
    }
    match (&engines.textract, uses_textract) {
        (_, false) => report.skipped("textract", "not used by the local engine"),
        (None, true) => report.problem("textract", "needs LECTOR_S3_BUCKET"),
        (Some(textract), true) => match within(textract.probe()).await {
            Ok(()) => report.ok("textract", "answers with these credentials"),
            Err(reason) => report.problem(
                "textract",
                format!("Textract did not answer as it should: {reason}"),
            ),
        },
    }
    match &config.textract_notices {
        None if uses_textract => report.skipped(
            "notices",
            "no completion notices: workers poll Textract (set LECTOR_TEXTRACT_SNS_TOPIC_ARN, \
             _SNS_ROLE_ARN and _SQS_QUEUE_URL to be told instead)",
        ),
        None => {}
        Some(notices) => {
            let topic = notices.sns_topic_arn.rsplit(':').next().unwrap_or_default();
            if topic.starts_with(TEXTRACT_TOPIC_PREFIX) {
                report.ok("notices", format!("topic {topic}"));
            } else {
                report.problem(
                    "notices",
                    format!(
                        "the SNS topic {topic:?} does not start with {TEXTRACT_TOPIC_PREFIX}: \
                         Textract's service role may publish only to such topics, so no \
                         notice would arrive"
                    ),
                );
            }
            if !notices.sns_role_arn.starts_with("arn:") || !notices.sns_role_arn.contains(":role/")
            {
                report.problem(
                    "notices",
                    format!(
                        "LECTOR_TEXTRACT_SNS_ROLE_ARN {:?} is not an IAM role ARN",
                        notices.sns_role_arn
                    ),
                );
            }
            queue(engines, "notices-queue", &notices.sqs_queue_url, report).await;
        }
    }
    if let Some(url) = &config.ingest_sqs_queue_url {
        queue(engines, "ingest-queue", url, report).await;
    }
}

async fn queue(engines: &Engines, check: &'static str, url: &str, report: &mut Report) {
    let Some(sqs) = &engines.sqs else {
        report.problem(check, "no SQS client (needs LECTOR_S3_BUCKET)");
        return;
    };
    let answer = within(async {
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| crate::aws::error_in_words(&e))
    })
    .await;
    match answer {
        Ok(_) => report.ok(check, format!("{url} may be read")),
        Err(reason) => report.problem(check, format!("{url}: {reason}")),
    }
}

fn ocr(config: &Config, ocr: &OcrAvailability, report: &mut Report) {
    let needed = config.engine == Engine::Local && config.ocr.mode != OcrMode::Off;
    match ocr.unavailable() {
        Some(reason) if needed => report.problem(
            "ocr",
            format!(
                "{reason}: scanned pages cannot be read (Debian/Ubuntu: apt-get install \
                 tesseract-ocr tesseract-ocr-eng; or use LECTOR_ENGINE=hybrid)"
            ),
        ),
        Some(reason) => report.skipped("ocr", format!("not needed by this engine ({reason})")),
        None => match startup::check_ocr(config, ocr) {
            Ok(()) => report.ok(
                "ocr",
                format!(
                    "{} with {} (installed: {})",
                    config.ocr.mode.as_str(),
                    config.ocr.languages,
                    ocr.languages().join(", ")
                ),
            ),
            Err(error) => report.problem("ocr", format!("{error:#}")),
        },
    }
}

/// The job lease against the waits that happen while a worker holds it.
fn time_limits(config: &Config, report: &mut Report) {
    let lease = config.job_lease;
    let mut fine = true;
    if lease < MIN_LEASE {
        fine = false;
        report.problem(
            "lease",
            format!(
                "LECTOR_JOB_LEASE_SECS={} is under {} s: one slow database write and another \
                 worker takes the job over",
                lease.as_secs(),
                MIN_LEASE.as_secs()
            ),
        );
    }
    // A worker waiting on Textract renews its lease once per poll.
    if config.engine.uses_textract() && config.textract_poll_max >= lease {
        fine = false;
        report.problem(
            "lease",
            format!(
                "LECTOR_TEXTRACT_POLL_MAX_MS ({} s) is not shorter than LECTOR_JOB_LEASE_SECS \
                 ({} s): a worker waiting on Textract would lose its job between two polls and \
                 another would take it over",
                config.textract_poll_max.as_secs_f64(),
                lease.as_secs()
            ),
        );
    }
    if fine {
        let textract = if config.engine == Engine::Local {
            String::new()
        } else {
            format!(
                " and after each Textract poll (at most {} s apart)",
                config.textract_poll_max.as_secs_f64()
            )
        };
        report.ok(
            "lease",
            format!(
                "{} s, renewed every {} s while a job runs{textract}",
                lease.as_secs(),
                config.heartbeat_interval().as_secs_f64()
            ),
        );
    }
}

fn check_bundle(config: &Config, bundle: &Bundle, report: &mut Report) {
    let source = bundle.source.display();
    match bundle.web_command() {
        Some(command) if command.contains("lector") && !command.contains("worker") => {
            report.ok("procfile", format!("web: {command}"));
        }
        Some(command) => report.problem(
            "procfile",
            format!("the web process runs {command:?}, not `./lector serve`"),
        ),
        None => report.problem(
            "procfile",
            format!("{source} has no Procfile with a `web:` process (web: ./lector serve)"),
        ),
    }
    match bundle.binary {
        Some(true) => report.ok("binary", "lector is there and executable"),
        Some(false) => report.problem(
            "binary",
            "lector is there but not executable: build the bundle with scripts/build-eb-bundle",
        ),
        None => report.problem(
            "binary",
            format!("{source} has no lector binary at its top"),
        ),
    }
    let nginx = bundle.nginx();
    let body = nginx.body_limit();
    let mut limits = vec![(
        "this environment's LECTOR_MAX_UPLOAD_BYTES",
        config.max_upload_bytes,
    )];
    if let Some(limit) = bundle
        .environment_property("LECTOR_MAX_UPLOAD_BYTES")
        .and_then(|v| v.parse().ok())
    {
        limits.push(("LECTOR_MAX_UPLOAD_BYTES in .ebextensions", limit));
    }
    let too_small: Vec<String> = limits
        .iter()
        .filter(|(_, limit)| body != 0 && body < limit + MULTIPART_FRAMING)
        .map(|(name, limit)| format!("{name} ({})", mib(*limit)))
        .collect();
    let set = if nginx.client_max_body_size.is_some() {
        "client_max_body_size"
    } else {
        "nginx's default client_max_body_size"
    };
    if too_small.is_empty() {
        report.ok(
            "nginx-body",
            if body == 0 {
                "client_max_body_size 0: nginx does not limit uploads".to_owned()
            } else {
                format!("{set} {} covers the upload limit", mib(body))
            },
        );
    } else {
        report.problem(
            "nginx-body",
            format!(
                "{set} {} is smaller than {}: nginx would answer 413 before Lector sees the \
                 file (set it in .platform/nginx/conf.d/)",
                mib(body),
                too_small.join(" and ")
            ),
        );
    }
    let needed = config.inspect_timeout + STORE_ALLOWANCE;
    let read = nginx.proxy_read_timeout.unwrap_or(NGINX_DEFAULT_TIMEOUT);
    if read >= needed {
        report.ok(
            "nginx-timeout",
            format!("proxy_read_timeout {} s", read.as_secs()),
        );
    } else {
        report.problem(
            "nginx-timeout",
            format!(
                "proxy_read_timeout {} s{}: an upload is answered after it is stored and \
                 inspected (LECTOR_INSPECT_TIMEOUT_SECS={} s), so allow at least {} s",
                read.as_secs(),
                if nginx.proxy_read_timeout.is_none() {
                    " (nginx's default)"
                } else {
                    ""
                },
                config.inspect_timeout.as_secs(),
                needed.as_secs()
            ),
        );
    }
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap()
    }

    fn verdicts(report: &Report, check: &str) -> Vec<(Verdict, String)> {
        report
            .findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| (f.verdict, f.detail.clone()))
            .collect()
    }

    #[test]
    fn a_short_lease_and_a_poll_longer_than_the_lease_are_problems() {
        let mut report = Report::default();
        time_limits(&config(&[]), &mut report);
        assert_eq!(verdicts(&report, "lease")[0].0, Verdict::Ok, "{report}");

        let mut report = Report::default();
        time_limits(
            &config(&[
                ("LECTOR_ENGINE", "textract"),
                ("LECTOR_S3_BUCKET", "b"),
                ("LECTOR_JOB_LEASE_SECS", "5"),
                ("LECTOR_TEXTRACT_POLL_MAX_MS", "20000"),
            ]),
            &mut report,
        );
        let lease = verdicts(&report, "lease");
        assert_eq!(lease.len(), 2, "{report}");
        assert!(lease.iter().all(|(v, _)| *v == Verdict::Problem));
        assert!(lease[0].1.contains("under 10 s"), "{}", lease[0].1);
        assert!(
            lease[1].1.contains("lose its job between two polls"),
            "{}",
            lease[1].1
        );
        assert_eq!(report.problems(), 2);
    }

    #[test]
    fn nginx_limits_are_held_against_the_upload_limit_and_the_inspection_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".platform/nginx/conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
        std::fs::write(dir.path().join("Procfile"), "web: ./lector worker\n").unwrap();
        std::fs::write(dir.path().join("lector"), "not really").unwrap();
        std::fs::write(
            dir.path().join(".platform/nginx/conf.d/lector.conf"),
            "client_max_body_size 50m;\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".ebextensions/01.config"),
            "option_settings:\n  aws:elasticbeanstalk:application:environment:\n    \
             LECTOR_MAX_UPLOAD_BYTES: \"209715200\"\n",
        )
        .unwrap();
        let bundle = Bundle::open(dir.path()).unwrap();
        let mut report = Report::default();
        check_bundle(
            &config(&[("LECTOR_MAX_UPLOAD_BYTES", "10485760")]),
            &bundle,
            &mut report,
        );
        let (verdict, detail) = verdicts(&report, "nginx-body").remove(0);
        assert_eq!(verdict, Verdict::Problem);
        assert!(
            detail.contains("client_max_body_size 50 MiB is smaller than LECTOR_MAX_UPLOAD_BYTES in .ebextensions (200 MiB)"),
            "{detail}"
        );
        assert!(
            !detail.contains("this environment"),
            "10 MiB fits: {detail}"
        );
        let (verdict, detail) = verdicts(&report, "nginx-timeout").remove(0);
        assert_eq!(verdict, Verdict::Problem);
        assert!(detail.contains("60 s (nginx's default)"), "{detail}");
        assert_eq!(verdicts(&report, "procfile")[0].0, Verdict::Problem);
        assert_eq!(
            verdicts(&report, "binary")[0].0,
            Verdict::Problem,
            "not executable"
        );
        assert_eq!(report.problems(), 4, "{report}");
    }

    #[test]
    fn the_report_reads_as_one_line_per_check() {
        let mut report = Report::default();
        report.ok("database", "postgres answers");
        report.problem("s3", "the bucket b does not exist");
        report.skipped("bundle", "no bundle given");
        assert_eq!(
            report.to_string(),
            "ok       database      postgres answers\n\
             PROBLEM  s3            the bucket b does not exist\n\
             skipped  bundle        no bundle given\n"
        );
        assert_eq!(report.problems(), 1);
    }
}
