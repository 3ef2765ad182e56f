//! The AWS Textract engine: asynchronous text detection on an original stored on S3.
//!
//! The rules this follows, each a trap common clients fall into: the job is started with a
//! `ClientRequestToken` derived from the content hash (a retried or re-delivered job is never
//! billed twice) and `JobTag` = document id; results are read to the end of `NextToken`
//! (1,000 blocks per call); `PARTIAL_SUCCESS` is a finished job whose `Warnings` name the
//! pages that failed; throttling is retried with exponential backoff and jitter.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_sdk_textract::{
    error::ProvideErrorMetadata,
    types::{BlockType, DocumentLocation, JobStatus, NotificationChannel, S3Object},
};
use rand::Rng;

/// Blocks asked for per `GetDocumentTextDetection` call (Textract's maximum).
const BLOCKS_PER_CALL: i32 = 1000;
/// Tries of one call while Textract says it is throttling.
const THROTTLE_TRIES: u32 = 8;
/// A job id no job has (Textract's are 64 hex digits): asking about it costs nothing.
const PROBE_JOB_ID: &str = "lector-reachability-probe";

/// When Textract was last probed, and what it said.
type ProbeAnswer = (Instant, Result<(), String>);

/// Why a Textract call did not give a result.
#[derive(Debug, thiserror::Error)]
pub enum TextractError {
    /// Textract refused or failed the document itself; retrying cannot help.
    #[error("Textract could not read this document: {0}")]
    Document(String),
    /// Throttled, unreachable, or another service-side failure; try again later.
    #[error("Textract call failed: {0}")]
    Service(String),
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Still running.
    InProgress,
    /// Finished (`SUCCEEDED` or `PARTIAL_SUCCESS`).
    Finished,
    /// `FAILED`, with Textract's `StatusMessage`.
    Failed(String),
}

/// One page of a finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct TextractPage {
    /// 1-based page number.
    pub number: u32,
    /// Its LINE blocks, in order, one per line.
    pub text: String,
    /// Mean confidence of those lines (0–100).
    pub confidence: Option<f64>,
    /// Set when Textract's warnings name this page.
    pub error: Option<String>,
}

/// A Textract client with Lector's retry rules.
#[derive(Debug, Clone)]
pub struct Textract {
    client: aws_sdk_textract::Client,
    backoff_base: Duration,
    /// SNS topic and publishing role for completion notices, when configured.
    notify: Option<(String, String)>,
    /// The last probe's answer, so a readiness endpoint polled every few seconds does not
    /// spend the account's Get quota, which the jobs share.
    last_probe: Arc<Mutex<Option<ProbeAnswer>>>,
}

impl Textract {
    /// Calls Textract through `client`; throttled calls wait `backoff_base` × 2ⁿ (with jitter).
    pub fn new(client: aws_sdk_textract::Client, backoff_base: Duration) -> Self {
        Textract {
            client,
            backoff_base,
            notify: None,
            last_probe: Arc::default(),
        }
    }

    /// Asks Textract to announce finished jobs on `sns_topic_arn`, publishing as `role_arn`.
    pub fn with_notices(mut self, sns_topic_arn: String, role_arn: String) -> Self {
        self.notify = Some((sns_topic_arn, role_arn));
        self
    }

    /// True when finished jobs are announced (so polling Get can be rare).
    pub fn announces_completion(&self) -> bool {
        self.notify.is_some()
    }

    /// Checks that Textract answers with these credentials and region by asking about a job
    /// that does not exist: `InvalidJobIdException` is the healthy answer. Access denied,
    /// an unknown region or no route says what is wrong.
    pub async fn probe(&self) -> Result<(), String> {
        let answer = self
            .client
            .get_document_text_detection()
            .job_id(PROBE_JOB_ID)
            .max_results(1)
            .send()
            .await;
        let result = match answer {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("InvalidJobIdException") => Ok(()),
            Err(error) => Err(crate::aws::error_in_words(&error)),
        };
        *self.last_probe.lock().expect("probe cache") = Some((Instant::now(), result.clone()));
        result
    }

    /// [`Textract::probe`], answered from the last probe when it is younger than `max_age`.
    pub async fn probe_cached(&self, max_age: Duration) -> Result<(), String> {
        if let Some((at, result)) = self.last_probe.lock().expect("probe cache").as_ref()
            && at.elapsed() < max_age
        {
            return result.clone();
        }
        self.probe().await
    }

    /// Starts text detection of `s3://bucket/key`. The same `sha256` always gives the same
    /// request token, so Textract returns the same job instead of starting (and billing) a
    /// second one.
    pub async fn start(
        &self,
        bucket: &str,
        key: &str,
        sha256: &str,
        document_id: &str,
    ) -> Result<String, TextractError> {
        let location = DocumentLocation::builder()
            .s3_object(S3Object::builder().bucket(bucket).name(key).build())
            .build();
        let token: String = sha256.chars().take(64).collect();
        let channel = self
            .notify
            .as_ref()
            .map(|(topic, role)| {
                NotificationChannel::builder()
                    .sns_topic_arn(topic)
                    .role_arn(role)
                    .build()
            })
            .transpose()
            .map_err(|e| TextractError::Service(format!("invalid notification channel: {e}")))?;
        let output = self
            .with_backoff(|| {
                self.client
                    .start_document_text_detection()
                    .document_location(location.clone())
                    .client_request_token(token.clone())
                    .job_tag(document_id)
                    .set_notification_channel(channel.clone())
                    .send()
            })
            .await?;
        output.job_id().map(str::to_owned).ok_or_else(|| {
            TextractError::Service("StartDocumentTextDetection returned no JobId".into())
        })
    }

    /// Asks where job `job_id` is (one cheap call: a single block).
    pub async fn state(&self, job_id: &str) -> Result<JobState, TextractError> {
        let output = self
            .with_backoff(|| {
                self.client
                    .get_document_text_detection()
                    .job_id(job_id)
                    .max_results(1)
                    .send()
            })
            .await?;
        Ok(match output.job_status() {
            Some(JobStatus::Succeeded | JobStatus::PartialSuccess) => JobState::Finished,
            Some(JobStatus::Failed) => JobState::Failed(
                output
                    .status_message()
                    .unwrap_or("no reason given")
                    .to_owned(),
            ),
            _ => JobState::InProgress,
        })
    }

    /// Every page of a finished job, following `NextToken` to the end. `pages` is the
    /// document's page count (pages without lines come back empty).
    pub async fn pages(
        &self,
        job_id: &str,
        pages: u32,
    ) -> Result<Vec<TextractPage>, TextractError> {
        let mut lines: BTreeMap<u32, (Vec<String>, Vec<f64>)> = BTreeMap::new();
        let mut failed: BTreeMap<u32, String> = BTreeMap::new();
        let mut next_token: Option<String> = None;
        loop {
            let token = next_token.clone();
            let output = self
                .with_backoff(|| {
                    self.client
                        .get_document_text_detection()
                        .job_id(job_id)
                        .max_results(BLOCKS_PER_CALL)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            if output.job_status() == Some(&JobStatus::Failed) {
                let reason = output.status_message().unwrap_or("no reason given");
                return Err(TextractError::Document(reason.to_owned()));
            }
            for block in output.blocks() {
                if block.block_type() != Some(&BlockType::Line) {
                    continue;
                }
                let page = block.page().unwrap_or(1).max(1) as u32;
                let entry = lines.entry(page).or_default();
                entry.0.push(block.text().unwrap_or_default().to_owned());
                if let Some(confidence) = block.confidence() {
                    entry.1.push(f64::from(confidence));
                }
            }
            for warning in output.warnings() {
                let code = warning.error_code().unwrap_or("unknown error");
                for page in warning.pages() {
                    failed.insert((*page).max(1) as u32, code.to_owned());
                }
            }
            next_token = output.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok((1..=pages)
            .map(|number| {
                let (text, confidences) = lines.remove(&number).unwrap_or_default();
                let confidence = (!confidences.is_empty())
                    .then(|| confidences.iter().sum::<f64>() / confidences.len() as f64);
                TextractPage {
                    number,
                    text: text.join("\n"),
                    confidence,
                    error: failed
                        .get(&number)
                        .map(|code| format!("Textract could not read this page ({code})")),
                }
            })
            .collect())
    }

    /// Runs `call`, retrying throttling errors with exponential backoff and full jitter.
    async fn with_backoff<T, E, F, Fut>(&self, mut call: F) -> Result<T, TextractError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            metrics::counter!("lector_textract_calls_total").increment(1);
            match call().await {
                Ok(output) => return Ok(output),
                Err(error) => {
                    let code = error.code().unwrap_or_default().to_owned();
                    attempt += 1;
                    if is_throttling(&code) {
                        metrics::counter!("lector_textract_throttles_total").increment(1);
                    }
                    if is_throttling(&code) && attempt < THROTTLE_TRIES {
                        let ceiling = self.backoff_base.saturating_mul(1 << attempt.min(10));
                        let wait = rand::rng().random_range(Duration::ZERO..=ceiling);
                        tracing::info!(%code, attempt, ?wait, "Textract is throttling; backing off");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(classify(&code, &error));
                }
            }
        }
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException" | "ThrottlingException" | "LimitExceededException"
    )
}

/// Errors about the document fail it; everything else may pass if tried later.
fn classify(code: &str, error: &(dyn std::error::Error + 'static)) -> TextractError {
    let message = error_message(error);
    match code {
        "InvalidS3ObjectException" => TextractError::Document(format!(
            "the original could not be read from S3 ({message})"
        )),
        "UnsupportedDocumentException"
        | "BadDocumentException"
        | "DocumentTooLargeException"
        | "InvalidParameterException" => TextractError::Document(format!("{code}: {message}")),
        "" => TextractError::Service(message),
        _ => TextractError::Service(format!("{code}: {message}")),
    }
}

/// The innermost message of an SDK error chain (the outer ones say only "service error").
fn error_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_are_recognised() {
        assert!(is_throttling("ProvisionedThroughputExceededException"));
        assert!(is_throttling("ThrottlingException"));
        assert!(is_throttling("LimitExceededException"));
        assert!(!is_throttling("InvalidS3ObjectException"));
    }

    #[test]
    fn document_errors_fail_and_others_retry() {
        let error = std::io::Error::other("boom");
        assert!(matches!(
            classify("InvalidS3ObjectException", &error),
            TextractError::Document(_)
        ));
        assert!(matches!(
            classify("BadDocumentException", &error),
            TextractError::Document(_)
        ));
        assert!(matches!(
            classify("InternalServerError", &error),
            TextractError::Service(_)
        ));
        assert!(matches!(classify("", &error), TextractError::Service(_)));
    }
}
