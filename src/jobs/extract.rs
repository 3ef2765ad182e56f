//! The extraction job: copy the original out of storage, run the sandboxed engine on the
//! pages not yet stored, and store each page as it arrives.

use secrecy::ExposeSecret;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::{
    domain::{Engine, PageSource},
    engines::{
        SandboxError,
        ocr::OcrSettings,
        sandbox::{SandboxMessage, SandboxRequest},
        text_layer,
    },
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

impl Outcome {
    /// The `outcome` label of the extraction-time histogram.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retry",
            Outcome::Lost => "lost",
            Outcome::Released => "released",
            Outcome::Deferred(_) => "deferred",
        }
    }
}

/// Counts a stored page by the engine that produced it.
pub(super) fn count_page(source: PageSource) {
    metrics::counter!("lector_pages_extracted_total", "source" => source.as_str()).increment(1);
}

/// Most pages stored in one transaction.
pub(super) const PAGE_BATCH: usize = 64;

/// Stores `pages` (then empties it) in one transaction, unless the job is no longer this
/// worker's (then false).
pub(super) async fn store_pages(
    worker: &Worker,
    job: &ClaimedJob,
    pages: &mut Vec<NewPage>,
) -> anyhow::Result<bool> {
    if pages.is_empty() {
        return Ok(true);
    }
    let ours = worker.store.insert_pages(job, &worker.id, pages).await?;
    if ours {
        for page in pages.iter() {
            count_page(page.source);
        }
    }
    pages.clear();
    Ok(ours)
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
    match document.engine {
        Engine::Textract => {
            match super::textract::over_budget(worker, job, &document, document.page_count).await? {
                // Textract takes a slot first: a document waiting for one stays `queued`.
                None => return super::textract::run(worker, job, &document, shutdown).await,
                Some(note) => {
                    tracing::info!(%note, "reading the document locally");
                    store.set_document_note(&document.id, Some(&note)).await?;
                }
            }
        }
        Engine::Hybrid => return super::hybrid::run(worker, job, &document, shutdown).await,
        Engine::Local => {}
    }
    if !store.start_document(job, &worker.id).await? {
        return Ok(Outcome::Lost);
    }
    let original = worker.original_file(&document).await?;
    let ocr = worker.ocr_settings(&document);
    run_local(
        worker,
        job,
        &document,
        original.path(),
        ocr,
        shutdown,
        &mut Vec::new(),
    )
    .await
}

/// Extracts the pages of `document` (its original at `original`) not yet stored with the
/// local engine in the sandbox. Pages the child leaves to someone else (`ocr.defer`) are
/// added to `deferred`.
pub(super) async fn run_local(
    worker: &Worker,
    job: &ClaimedJob,
    document: &crate::domain::Document,
    original: &std::path::Path,
    ocr: OcrSettings,
    shutdown: &CancellationToken,
    deferred: &mut Vec<u32>,
) -> anyhow::Result<Outcome> {
    let store = &worker.store;
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
    // Copying a large original can take a while: renew the lease before the long part.
    if !store
        .heartbeat(job, &worker.id, worker.config.job_lease)
        .await?
    {
        return Ok(Outcome::Lost);
    }

    let pages = document.page_count as u32;
    // Cores no other job is using read this document's pages in parallel, in interleaved
    // shares, each share in a child of its own; one core (or none free) reads them all.
    let remaining = (pages as usize).saturating_sub(skip.len());
    let per_part = if ocr.mode == crate::domain::ocr::OcrMode::Force {
        1
    } else {
        MIN_PAGES_PER_PART
    };
    let cores = worker.engines.cores.clone();
    let held: Vec<_> = (0..(remaining / per_part).max(1))
        .map_while(|_| cores.clone().try_acquire_owned().ok())
        .collect();
    let parts = held.len().max(1) as u32;
    let stop = CancellationToken::new();
    let shares = (0..parts).map(|part| {
        let mut skip = skip.clone();
        skip.extend((1..=pages).filter(|page| (page - 1) % parts != part));
        let request = SandboxRequest {
            password: password.clone(),
            skip,
            ocr: ocr.clone(),
            split: None,
        };
        let stop = &stop;
        async move {
            let mut deferred = Vec::new();
            let outcome = run_share(
                worker,
                job,
                original,
                pages,
                request,
                shutdown,
                stop,
                &mut deferred,
            )
            .await;
            // One share that cannot finish stops the others: the document's outcome is its.
            if !matches!(outcome, Ok(Outcome::Done)) {
                stop.cancel();
            }
            (outcome, deferred)
        }
    });
    let mut outcomes = Vec::new();
    for (outcome, share_deferred) in futures_util::future::join_all(shares).await {
        deferred.extend(share_deferred);
        outcomes.push(outcome?);
    }
    drop(held);
    deferred.sort_unstable();
    Ok(merge(outcomes))
}

/// Pages a share of a document should have before another core is worth a child of its own
/// (about 13 ms of CPU to start, and the document parsed again).
const MIN_PAGES_PER_PART: usize = 8;

/// The document's outcome from its shares': the first that did not finish decides (a share
/// stopped because another could not finish reports `Released`, which yields to it).
fn merge(outcomes: Vec<Outcome>) -> Outcome {
    let rank = |outcome: &Outcome| match outcome {
        Outcome::Failed(_) => 0,
        Outcome::Lost => 1,
        Outcome::Retry(_) => 2,
        Outcome::Deferred(_) => 3,
        Outcome::Released => 4,
        Outcome::Done => 5,
    };
    outcomes
        .into_iter()
        .min_by_key(rank)
        .unwrap_or(Outcome::Done)
}

/// Runs children over the pages of `request` not skipped, storing each as it arrives, until
/// all are stored, the document fails, the job is lost, or `stop` or shutdown ends it.
#[allow(clippy::too_many_arguments)]
async fn run_share(
    worker: &Worker,
    job: &ClaimedJob,
    original: &std::path::Path,
    pages: u32,
    mut request: SandboxRequest,
    shutdown: &CancellationToken,
    stop: &CancellationToken,
    deferred: &mut Vec<u32>,
) -> anyhow::Result<Outcome> {
    let store = &worker.store;
    let config = &worker.config;
    let cpu_limit = config.extract_cpu_limit(pages, request.ocr.mode);
    // The document's limit covers reading text layers; time spent on OCR is added to it as
    // it is spent, since each OCR'd page has a limit of its own.
    let mut deadline = Instant::now() + config.extract_timeout(pages);
    let heartbeat_every = config.heartbeat_interval();
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    let grace = config.shutdown_grace;
    // Shutdown (after its grace period) or another share that could not finish: store what
    // came and hand the rest back.
    let hand_back = async {
        tokio::select! {
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {}
            _ = stop.cancelled() => {}
        }
    };
    tokio::pin!(hand_back);
    // Each pass runs one child over the pages not yet stored. A page that crashes or hangs
    // the OCR is stored as failed and a new child carries on after it.
    loop {
        let mut run = match worker
            .engines
            .sandbox
            .extract(text_layer::ENGINE_NAME, original, &request, cpu_limit)
            .await
        {
            Ok(run) => run,
            Err(error) => return Ok(sandbox_outcome(error)),
        };
        let mut ocr_page: Option<(u32, Instant)> = None;
        let mut pending: Vec<NewPage> = Vec::new();
        let failed_page = loop {
            let wake_at = match ocr_page {
                Some((_, started)) => started + config.ocr_page_timeout,
                None => deadline,
            };
            tokio::select! {
                message = run.next_message() => {
                    // Anything but a page: first store the pages received before it.
                    if !matches!(message, Ok(Some(SandboxMessage::Page(_))))
                        && !store_pages(worker, job, &mut pending).await?
                    {
                        run.kill().await;
                        return Ok(Outcome::Lost);
                    }
                    match message {
                        Ok(Some(SandboxMessage::Page(page))) => {
                            if let Some((_, started)) = ocr_page.take() {
                                deadline += started.elapsed();
                            }
                            pending.push(NewPage {
                                number: page.number as i32,
                                text: page.text,
                                source: page.source,
                                extraction_ms: page.ms as i64,
                                error: page.error,
                                confidence: page.confidence,
                                dpi: page.dpi.map(|d| d as i32),
                                ocr_reason: page.ocr_reason,
                            });
                            // Pages the child has already sent are stored together, in one
                            // transaction: one commit per batch instead of one per page.
                            if (pending.len() >= PAGE_BATCH || !run.has_buffered_message())
                                && !store_pages(worker, job, &mut pending).await?
                            {
                                run.kill().await;
                                return Ok(Outcome::Lost);
                            }
                        }
                        Ok(Some(SandboxMessage::OcrStarted(number))) => {
                            ocr_page = Some((number, Instant::now()));
                        }
                        Ok(Some(SandboxMessage::OcrDeferred { page, .. })) => deferred.push(page),
                        Ok(Some(SandboxMessage::Opened(_) | SandboxMessage::Split(_))) => {}
                        Ok(Some(SandboxMessage::Refused(reason))) => {
                            return Ok(Outcome::Failed(reason.to_string()));
                        }
                        Ok(None) => return Ok(Outcome::Done),
                        Err(error) => match ocr_page {
                            Some((number, started)) if error.is_document_fault() => {
                                let how = match error {
                                    SandboxError::Crashed(how) => format!("the OCR process {how}"),
                                    other => other.to_string(),
                                };
                                break (number, started, format!("OCR of this page failed: {how}"));
                            }
                            _ => return Ok(sandbox_outcome(error)),
                        },
                    }
                },
                _ = heartbeat.tick() => {
                    if !store_pages(worker, job, &mut pending).await?
                        || !store.heartbeat(job, &worker.id, config.job_lease).await?
                    {
                        run.kill().await;
                        return Ok(Outcome::Lost);
                    }
                }
                _ = tokio::time::sleep_until(wake_at) => {
                    run.kill().await;
                    if !store_pages(worker, job, &mut pending).await? {
                        return Ok(Outcome::Lost);
                    }
                    match ocr_page {
                        Some((number, started)) => break (number, started, format!(
                            "OCR gave up after {}s (the time limit per page)",
                            config.ocr_page_timeout.as_secs()
                        )),
                        None => {
                            let limit = config.extract_timeout(pages);
                            return Ok(Outcome::Failed(SandboxError::TimedOut(limit).to_string()));
                        }
                    }
                }
                _ = &mut hand_back => {
                    run.kill().await;
                    if !store_pages(worker, job, &mut pending).await? {
                        return Ok(Outcome::Lost);
                    }
                    return Ok(Outcome::Released);
                }
            }
        };
        let (number, started, reason) = failed_page;
        tracing::warn!(page = number, %reason, "page failed in OCR; going on with the next");
        deadline += started.elapsed();
        let page = NewPage {
            number: number as i32,
            text: String::new(),
            source: crate::domain::PageSource::Ocr,
            extraction_ms: started.elapsed().as_millis() as i64,
            error: Some(reason),
            confidence: None,
            dpi: None,
            ocr_reason: None,
        };
        if !store_pages(worker, job, &mut vec![page]).await? {
            return Ok(Outcome::Lost);
        }
        request.skip.push(number);
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
            metrics::counter!("lector_documents_failed_total").increment(1);
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
            metrics::counter!("lector_documents_failed_total").increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(outcome: &Outcome) -> &'static str {
        match outcome {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retry",
            Outcome::Lost => "lost",
            Outcome::Released => "released",
            Outcome::Deferred(_) => "deferred",
        }
    }

    #[test]
    fn the_share_that_could_not_finish_decides_the_document() {
        // A failed share stopped the others, which report Released: the failure wins.
        let outcome = merge(vec![
            Outcome::Released,
            Outcome::Failed("unreadable".into()),
            Outcome::Done,
        ]);
        assert!(matches!(&outcome, Outcome::Failed(reason) if reason == "unreadable"));
        // A lost job outranks a retry; a retry outranks a hand-back.
        let outcome = merge(vec![
            Outcome::Retry(anyhow::anyhow!("disk")),
            Outcome::Lost,
            Outcome::Released,
        ]);
        assert_eq!(name(&outcome), "lost");
        let outcome = merge(vec![
            Outcome::Released,
            Outcome::Retry(anyhow::anyhow!("disk")),
        ]);
        assert_eq!(name(&outcome), "retry");
        // Shutdown stopped one share while the other finished: the job goes back.
        assert_eq!(
            name(&merge(vec![Outcome::Done, Outcome::Released])),
            "released"
        );
        assert_eq!(name(&merge(vec![Outcome::Done, Outcome::Done])), "done");
    }
}
