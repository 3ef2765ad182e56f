//! The durable job queue's workers: claim a job, hold its lease with a heartbeat, run the
//! extraction, and record success, a retry with backoff, or a failure.

use std::{sync::Arc, time::Duration};

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    blobs::BlobStore,
    config::Config,
    engines::{Sandbox, textract::Textract},
    storage::Store,
};

mod extract;
mod hybrid;
mod textract;
pub mod webhooks;

pub use extract::Outcome;

/// What workers extract with: where originals are, the local engine's sandbox, and Textract
/// when it is configured.
#[derive(Debug, Clone)]
pub struct Engines {
    /// Where originals are read from.
    pub blobs: BlobStore,
    /// Runs the local engine in a child process.
    pub sandbox: Sandbox,
    /// AWS Textract, when `LECTOR_ENGINE=textract` (or a bucket) is configured.
    pub textract: Option<Textract>,
    /// SQS, when Textract's completion notices are configured.
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// The OCR languages this machine has.
    pub ocr: crate::engines::ocr::OcrAvailability,
    /// One permit per core, shared by this process's workers: a job takes the free ones to
    /// read a long document's pages in parallel.
    pub cores: Arc<tokio::sync::Semaphore>,
}

/// Runs extraction jobs. Cheap to clone; each worker task holds one.
#[derive(Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    engines: Engines,
    config: Arc<Config>,
    /// Unique per worker task, so leases say who holds them.
    id: String,
}

impl Worker {
    /// A worker with a fresh id.
    pub fn new(store: Arc<dyn Store>, engines: Engines, config: Arc<Config>) -> Self {
        let id = format!("{}-{}", hostname(), uuid::Uuid::now_v7().simple());
        Worker {
            store,
            engines,
            config,
            id,
        }
    }

    /// This worker's id, as written in `jobs.locked_by`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims and runs one due job. Returns false when there was none. Public so tests can
    /// drain the queue deterministically.
    pub async fn run_next(&self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let Some(job) = self
            .store
            .claim_job(&self.id, self.config.job_lease)
            .await?
        else {
            return Ok(false);
        };
        let span = tracing::info_span!("job", job.id = job.id, document.id = %job.document_id, job.attempt = job.attempts);
        let started = std::time::Instant::now();
        let run = extract::run(self, &job, shutdown);
        // A panic in our own code fails the attempt (and is retried), never the worker.
        let outcome =
            match std::panic::AssertUnwindSafe(tracing::Instrument::instrument(run, span.clone()))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    Outcome::Retry(anyhow::anyhow!("internal error (panic) while extracting"))
                }
            };
        let seconds = started.elapsed().as_secs_f64();
        let result = outcome.metric_label();
        metrics::histogram!("lector_extraction_seconds", "outcome" => result).record(seconds);
        // Instrumented, not entered: a span guard held across an await is lost when the task
        // resumes on another thread, and the lines below would lose their document id.
        let record = async {
            tracing::info!(outcome = result, seconds, "job attempt ended");
            extract::record(self, &job, outcome).await
        };
        tracing::Instrument::instrument(record, span).await?;
        Ok(true)
    }

    /// Runs jobs until `shutdown` is cancelled, waking on `work_available` or every poll
    /// interval.
    pub async fn run_until(self, shutdown: CancellationToken, work_available: Arc<Notify>) {
        while !shutdown.is_cancelled() {
            match self.run_next(&shutdown).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, worker = %self.id, "worker could not reach the queue")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = work_available.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// The original of `document` in a temporary file (removed when dropped).
    async fn original_file(
        &self,
        document: &crate::domain::Document,
    ) -> anyhow::Result<tempfile::NamedTempFile> {
        let file = tempfile::Builder::new()
            .prefix("lector-job-")
            .suffix(".pdf")
            .tempfile()?;
        self.engines
            .blobs
            .copy_to_file(self.store.as_ref(), document, file.path())
            .await?;
        Ok(file)
    }

    /// The OCR settings a document is extracted with: its own choices over the defaults.
    fn ocr_settings(&self, document: &crate::domain::Document) -> crate::engines::ocr::OcrSettings {
        crate::engines::ocr::OcrSettings {
            mode: document.ocr.mode,
            languages: document.ocr.languages.clone(),
            ..self.config.ocr.clone()
        }
    }

    /// How long to wait before the next try after `attempts` failed tries.
    fn backoff(&self, attempts: i32) -> Duration {
        let exponent = attempts.clamp(1, 16) as u32 - 1;
        self.config.job_retry_base.saturating_mul(1 << exponent)
    }
}

/// Starts `count` workers; the handle finishes when all have stopped after `shutdown`.
pub fn spawn_workers(
    count: usize,
    store: Arc<dyn Store>,
    engines: Engines,
    config: Arc<Config>,
    shutdown: CancellationToken,
    work_available: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let worker = Worker::new(store.clone(), engines.clone(), config.clone());
            tokio::spawn(worker.run_until(shutdown.clone(), work_available.clone()))
        })
        .collect();
    tokio::spawn(async move {
        for handle in handles {
            let _ = handle.await;
        }
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lector".into())
}
