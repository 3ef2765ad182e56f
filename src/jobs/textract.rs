//! The extraction job on Textract: take a slot (the cap on jobs in flight is counted in the
//! database, across every worker), make sure the original is on S3, start the Textract job
//! once (its id is kept on the job row, so a resumed attempt polls the same job), poll with
//! backoff, then store every page.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;

use super::{Outcome, Worker};
use crate::{
    blobs::S3Originals,
    domain::Document,
    engines::textract::{JobState, Textract, TextractError},
    storage::{ClaimedJob, NewPage},
};

/// Counts the document's pages against the monthly page budget before its Textract job
/// starts. Returns the note the document shows when the budget is spent and it must be read
/// locally instead.
pub(super) async fn over_budget(
    worker: &Worker,
    job: &ClaimedJob,
    document: &Document,
    pages: i32,
) -> anyhow::Result<Option<String>> {
    if job.external_id.is_some() {
        // Already started (and counted): a resumed attempt only collects the result.
        return Ok(None);
    }
    let budget = worker.config.textract_monthly_page_budget;
    let limit = budget.map_or(i64::MAX, |pages| i64::try_from(pages).unwrap_or(i64::MAX));
    let reserved = worker
        .store
        .reserve_textract_pages(&document.sha256, &document.id, pages, limit)
        .await?;
    Ok((!reserved).then(|| {
        format!(
            "Textract's monthly budget of {limit} pages is spent: this document was read \
             locally (text layer, and OCR where pages need it)"
        )
    }))
}

/// This worker's Textract and S3 clients, or the retry that says they are missing.
pub(super) fn clients(worker: &Worker) -> Result<(&Textract, &S3Originals), Outcome> {
    match (&worker.engines.textract, worker.engines.blobs.s3()) {
        (Some(textract), Some(s3)) => Ok((textract, s3)),
        _ => Err(Outcome::Retry(anyhow::anyhow!(
            "this worker is not configured for Textract (set LECTOR_S3_BUCKET)"
        ))),
    }
}

/// Runs one attempt of a Textract document.
pub(super) async fn run(
    worker: &Worker,
    job: &ClaimedJob,
    document: &Document,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let (textract, s3) = match clients(worker) {
        Ok(clients) => clients,
        Err(outcome) => return Ok(outcome),
    };
    let store = &worker.store;
    if !store
        .claim_textract_slot(job, &worker.id, worker.config.textract_max_in_flight)
        .await?
    {
        return Ok(Outcome::Deferred(worker.config.textract_poll_initial));
    }
    if !store.start_document(job, &worker.id).await? {
        store.release_textract_slot(job).await?;
        return Ok(Outcome::Lost);
    }
    let outcome = drive(worker, textract, s3, job, document, shutdown).await;
    store.release_textract_slot(job).await?;
    outcome
}

async fn drive(
    worker: &Worker,
    textract: &Textract,
    s3: &S3Originals,
    job: &ClaimedJob,
    document: &Document,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let store = &worker.store;
    let started = std::time::Instant::now();
    let key = match &document.blob_key {
        Some(key) => key.clone(),
        None => {
            let original = worker.original_file(document).await?;
            s3.ensure(&document.sha256, original.path()).await?.key
        }
    };
    if !store
        .heartbeat(job, &worker.id, worker.config.job_lease)
        .await?
    {
        return Ok(Outcome::Lost);
    }
    let job_id = match &job.external_id {
        Some(id) => id.clone(),
        None => match textract
            .start(s3.bucket(), &key, &document.sha256, &document.id)
            .await
        {
            Ok(id) => {
                if !store.set_external_id(job, &worker.id, &id).await? {
                    return Ok(Outcome::Lost);
                }
                tracing::info!(textract.job_id = %id, "Textract job started");
                id
            }
            Err(error) => return Ok(textract_outcome(error)),
        },
    };
    wait_and_store(
        worker, textract, job, document, &job_id, None, started, shutdown,
    )
    .await
}

/// Waits for Textract job `job_id` and stores its pages: page `n` of its result is page
/// `page_map[n - 1]` of the document (or page `n` without a map).
#[allow(clippy::too_many_arguments)]
pub(super) async fn wait_and_store(
    worker: &Worker,
    textract: &Textract,
    job: &ClaimedJob,
    document: &Document,
    job_id: &str,
    page_map: Option<&[u32]>,
    started: std::time::Instant,
    shutdown: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let store = &worker.store;
    let job_id = job_id.to_owned();
    let expected = page_map.map_or(document.page_count.max(0) as u32, |m| m.len() as u32);
    let deadline = tokio::time::Instant::now() + worker.config.textract_timeout;
    let mut wait = worker.config.textract_poll_initial;
    let mut checks: u32 = 0;
    loop {
        checks += 1;
        // With completion notices, Textract is asked only once its notice has arrived (or,
        // as a safety net against a lost notice, every tenth check).
        let ask = !textract.announces_completion()
            || checks.is_multiple_of(10)
            || store.textract_completion(&job_id).await?.is_some();
        let state = if ask {
            textract.state(&job_id).await
        } else {
            Ok(JobState::InProgress)
        };
        match state {
            Ok(JobState::Finished) => break,
            Ok(JobState::Failed(reason)) => {
                return Ok(Outcome::Failed(format!("Textract failed: {reason}")));
            }
            Ok(JobState::InProgress) => {}
            Err(error) => return Ok(textract_outcome(error)),
        }
        if tokio::time::Instant::now() + wait > deadline {
            let limit = worker.config.textract_timeout.as_secs();
            return Ok(Outcome::Failed(format!(
                "Textract did not finish within {limit}s"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // The Textract job goes on; its id stays on the job row for whoever resumes.
            _ = shutdown.cancelled() => return Ok(Outcome::Released),
        }
        if !store
            .heartbeat(job, &worker.id, worker.config.job_lease)
            .await?
        {
            return Ok(Outcome::Lost);
        }
        wait = (wait * 2).min(worker.config.textract_poll_max);
    }

    let pages = match textract.pages(&job_id, expected).await {
        Ok(pages) => pages,
        Err(error) => return Ok(textract_outcome(error)),
    };
    let stored: HashSet<i32> = store
        .stored_page_numbers(&document.id)
        .await?
        .into_iter()
        .collect();
    let per_page_ms = started.elapsed().as_millis() as i64 / i64::from(expected.max(1));
    let mut batch = Vec::new();
    for page in pages {
        let number = match page_map {
            None => page.number,
            Some(map) => match map.get(page.number as usize - 1) {
                Some(&number) => number,
                None => continue,
            },
        };
        if stored.contains(&(number as i32)) {
            continue;
        }
        let page = NewPage {
            number: number as i32,
            text: crate::engines::clean_text(page.text),
            source: crate::domain::PageSource::Textract,
            extraction_ms: per_page_ms,
            error: page.error,
            confidence: page.confidence,
            dpi: None,
            ocr_reason: None,
        };
        batch.push(page);
        if batch.len() >= super::extract::PAGE_BATCH
            && !super::extract::store_pages(worker, job, &mut batch).await?
        {
            return Ok(Outcome::Lost);
        }
    }
    if !super::extract::store_pages(worker, job, &mut batch).await? {
        return Ok(Outcome::Lost);
    }
    Ok(Outcome::Done)
}

fn textract_outcome(error: TextractError) -> Outcome {
    match error {
        TextractError::Document(_) => Outcome::Failed(error.to_string()),
        TextractError::Service(_) => Outcome::Retry(error.into()),
    }
}
