//! The extraction queue: the `jobs` table, one job per document. An attempt gives up once its
//! attempts are spent, otherwise has [`crate::extraction`] read the document; its outcome
//! becomes the job's and the document's state.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Queue, Runner};
use crate::{
    config::Config,
    extraction::{Context, Engines, Outcome},
    storage::{ClaimedJob, Store},
};

/// Runs extraction jobs.
pub type Worker = Runner<ExtractionJobs>;

/// The extraction jobs and what they are read with.
#[derive(Clone)]
pub struct ExtractionJobs {
    store: Arc<dyn Store>,
    engines: Engines,
    config: Arc<Config>,
}

impl Runner<ExtractionJobs> {
    /// A worker with a fresh id.
    pub fn new(store: Arc<dyn Store>, engines: Engines, config: Arc<Config>) -> Self {
        let id = format!("{}-{}", hostname(), uuid::Uuid::now_v7().simple());
        let poll_interval = config.poll_interval;
        let jobs = ExtractionJobs {
            store,
            engines,
            config,
        };
        Runner::with_id(jobs, id, poll_interval)
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
    let workers = (0..count).map(|_| Worker::new(store.clone(), engines.clone(), config.clone()));
    super::spawn(workers.collect::<Vec<_>>(), &shutdown, &work_available)
}

impl Queue for ExtractionJobs {
    type Claimed = ClaimedJob;
    type Outcome = Outcome;

    async fn claim(&self, holder: &str) -> anyhow::Result<Option<ClaimedJob>> {
        Ok(self.store.claim_job(holder, self.config.job_lease).await?)
    }

    fn span(&self, job: &ClaimedJob) -> tracing::Span {
        tracing::info_span!("job", job.id = job.id, document.id = %job.document_id, job.attempt = job.attempts)
    }

    async fn attempt(
        &self,
        job: &ClaimedJob,
        holder: &str,
        shutdown: &CancellationToken,
    ) -> Outcome {
        if job.attempts > job.max_attempts {
            let last = job
                .last_error
                .as_deref()
                .unwrap_or("the worker stopped while extracting it");
            return Outcome::Failed(format!(
                "gave up after {} attempts: {last}",
                job.max_attempts
            ));
        }
        let cx = Context {
            engines: &self.engines,
            config: &self.config,
            store: self.store.as_ref(),
            job,
            holder,
            shutdown,
        };
        cx.read().await
    }

    fn panicked(&self, _: &ClaimedJob) -> Outcome {
        Outcome::Retry(anyhow::anyhow!("internal error (panic) while extracting"))
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        holder: &str,
        outcome: Outcome,
        elapsed: Duration,
    ) -> anyhow::Result<()> {
        let seconds = elapsed.as_secs_f64();
        let result = outcome.metric_label();
        metrics::histogram!("lector_extraction_seconds", "outcome" => result).record(seconds);
        tracing::info!(outcome = result, seconds, "job attempt ended");
        self.write(job, holder, outcome).await
    }

    fn unreachable(&self, holder: &str, error: &anyhow::Error) {
        tracing::warn!(%error, worker = %holder, "worker could not reach the queue");
    }
}

impl ExtractionJobs {
    /// Writes the outcome of an attempt to the queue and the document.
    async fn write(&self, job: &ClaimedJob, holder: &str, outcome: Outcome) -> anyhow::Result<()> {
        let store = &self.store;
        match outcome {
            Outcome::Done => {
                if store.complete_job(job, holder).await? {
                    tracing::info!("document extracted");
                } else {
                    tracing::info!("job was cancelled or taken over before it could be recorded");
                }
            }
            Outcome::Failed(reason) => {
                metrics::counter!("lector_documents_failed_total").increment(1);
                tracing::info!(%reason, "document failed");
                store.fail_job(job, holder, &reason).await?;
            }
            Outcome::Retry(error) if job.attempts < job.max_attempts => {
                let delay = self.backoff().after(job.attempts);
                tracing::warn!(error = %format!("{error:#}"), retry_in = ?delay, "attempt failed");
                store
                    .retry_job(job, holder, &format!("{error:#}"), delay)
                    .await?;
            }
            Outcome::Retry(error) => {
                metrics::counter!("lector_documents_failed_total").increment(1);
                let reason = format!("gave up after {} attempts: {error:#}", job.attempts);
                tracing::warn!(%reason, "document failed");
                store.fail_job(job, holder, &reason).await?;
            }
            Outcome::Lost => tracing::info!("job was cancelled or taken over; stopped"),
            Outcome::Released => {
                tracing::info!("shutting down: job handed back to the queue");
                store.release_job(job, holder, Duration::ZERO).await?;
            }
            Outcome::Deferred(delay) => {
                tracing::debug!(?delay, "no capacity now; job goes back to the queue");
                store.release_job(job, holder, delay).await?;
            }
        }
        Ok(())
    }

    /// Doubling from `LECTOR_JOB_RETRY_BASE_SECS`, growing for 15 failures, without a cap.
    fn backoff(&self) -> Backoff {
        Backoff {
            base: self.config.job_retry_base,
            doublings: 15,
            cap: Duration::MAX,
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lector".into())
}
