//! The extraction job: copy the original out of storage, run the sandboxed engine on the
//! pages not yet stored, and store each page as it arrives.

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::{
    engines::{SandboxError, sandbox::SandboxMessage},
    storage::{ClaimedJob, NewPage},
};

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every page is stored.
    Done,
    /// The document itself cannot be extracted; retrying would not help.
    Failed(String),
    /// Something outside the document went wrong (database, disk); try again later.
    Retry(anyhow::Error),
    /// The job is no longer ours (cancelled, re-queued, or the lease was taken over).
    Lost,
    /// Shutting down: hand the job back to the queue.
    Released,
    /// Not now (no Textract capacity free): back to the queue, due again after this long,
    /// without counting an attempt.
    Deferred(std::time::Duration),
}

/// Runs one attempt of `job`.
pub(super) async fn run(
    worker: &Worker,
    job: &ClaimedJob,
    shutdown: &CancellationToken,
) -> Outcome {
    match try_run(worker, job, shutdown).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Retry(error),
    }
}

async fn try_run(
    worker: &Worker,
    job: &ClaimedJob,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    if job.attempts > job.max_attempts {
        let last = job
            .last_error
            .as_deref()
            .unwrap_or("the worker stopped while extracting it");
        return Ok(Outcome::Failed(format!(
            "gave up after {} attempts: {last}",
            job.max_attempts
        )));
    }
    let store = &worker.store;
    let document = store.get_document(&job.document_id).await?;
    if document.engine == crate::engines::textract::SOURCE {
        // Textract takes a slot first: a document waiting for one stays `queued`.
        return super::textract::run(worker, job, &document, shutdown).await;
    }
    if !store.start_document(job, &worker.id).await? {
        return Ok(Outcome::Lost);
    }
    let skip: Vec<u32> = store
        .stored_page_numbers(&job.document_id)
        .await?
        .into_iter()
        .map(|n| n as u32)
        .collect();
    if skip.len() >= document.page_count as usize {
        return Ok(Outcome::Done);
    }
    let password = store
        .document_password(&job.document_id)
        .await?
        .map(|p| p.expose_secret().to_owned());
    let original = worker.original_file(&document).await?;
    // Copying a large original can take a while: renew the lease before the long part.
    if !store
        .heartbeat(job, &worker.id, worker.config.job_lease)
        .await?
    {
        return Ok(Outcome::Lost);
    }

    let limit = worker.config.extract_timeout(document.page_count as u32);
    let deadline = tokio::time::Instant::now() + limit;
    let mut run = match worker
        .engines
        .sandbox
        .extract(&document.engine, original.path(), password, skip, limit)
        .await
    {
        Ok(run) => run,
        Err(error) => return Ok(sandbox_outcome(error)),
    };
    let heartbeat_every = (worker.config.job_lease / 3).min(std::time::Duration::from_secs(5));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    let grace = worker.config.shutdown_grace;
    let hand_back = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(hand_back);
    loop {
        tokio::select! {
            message = run.next_message() => match message {
                Ok(Some(SandboxMessage::Page(page))) => {
                    let page = NewPage {
                        number: page.number as i32,
                        text: page.text,
                        source: page.source,
                        extraction_ms: page.ms as i64,
                        error: page.error,
                        confidence: None,
                    };
                    if !store.insert_page(job, &worker.id, &page).await? {
                        run.kill().await;
                        return Ok(Outcome::Lost);
                    }
                }
                Ok(Some(SandboxMessage::Opened(_))) => {}
                Ok(Some(SandboxMessage::Refused(reason))) => return Ok(Outcome::Failed(reason.to_string())),
                Ok(None) => return Ok(Outcome::Done),
                Err(error) => return Ok(sandbox_outcome(error)),
            },
            _ = heartbeat.tick() => {
                if !store.heartbeat(job, &worker.id, worker.config.job_lease).await? {
                    run.kill().await;
                    return Ok(Outcome::Lost);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                run.kill().await;
                return Ok(Outcome::Failed(SandboxError::TimedOut(limit).to_string()));
            }
            _ = &mut hand_back => {
                run.kill().await;
                return Ok(Outcome::Released);
            }
        }
    }
}

fn sandbox_outcome(error: SandboxError) -> Outcome {
    if error.is_document_fault() {
        Outcome::Failed(error.to_string())
    } else {
        Outcome::Retry(error.into())
    }
}

/// Writes the outcome of an attempt to the queue and the document.
pub(super) async fn record(
    worker: &Worker,
    job: &ClaimedJob,
    outcome: Outcome,
) -> anyhow::Result<()> {
    let store = &worker.store;
    match outcome {
        Outcome::Done => {
            if store.complete_job(job, &worker.id).await? {
                tracing::info!("document extracted");
            } else {
                tracing::info!("job was cancelled or taken over before it could be recorded");
            }
        }
        Outcome::Failed(reason) => {
            tracing::info!(%reason, "document failed");
            store.fail_job(job, &worker.id, &reason).await?;
        }
        Outcome::Retry(error) if job.attempts < job.max_attempts => {
            let delay = worker.backoff(job.attempts);
            tracing::warn!(error = %format!("{error:#}"), retry_in = ?delay, "attempt failed");
            store
                .retry_job(job, &worker.id, &format!("{error:#}"), delay)
                .await?;
        }
        Outcome::Retry(error) => {
            let reason = format!("gave up after {} attempts: {error:#}", job.attempts);
            tracing::warn!(%reason, "document failed");
            store.fail_job(job, &worker.id, &reason).await?;
        }
        Outcome::Lost => tracing::info!("job was cancelled or taken over; stopped"),
        Outcome::Released => {
            tracing::info!("shutting down: job handed back to the queue");
            store
                .release_job(job, &worker.id, std::time::Duration::ZERO)
                .await?;
        }
        Outcome::Deferred(delay) => {
            tracing::debug!(?delay, "no capacity now; job goes back to the queue");
            store.release_job(job, &worker.id, delay).await?;
        }
    }
    Ok(())
}
