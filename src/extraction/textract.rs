//! Textract reads the document: take a slot (the cap on jobs in flight is counted in the
//! database, across every worker), make sure the original is on S3, start the Textract job
//! once (its id is kept on the job row, so a resumed attempt polls the same job), poll with
//! backoff, then store every page.

use std::collections::HashSet;

use super::{Context, Outcome, PageSink, local};
use crate::{
    blobs::S3Originals,
    domain::{Document, PageSource},
    engines::textract::{JobState, Textract, TextractError},
    storage::NewPage,
};

/// Runs one attempt of a Textract document; read locally when the page budget is spent.
pub(super) async fn read(cx: &Context<'_>, document: &Document) -> anyhow::Result<Outcome> {
    match over_budget(cx, document, document.page_count).await? {
        // Textract takes a slot first: a document waiting for one stays `queued`.
        None => run(cx, document).await,
        Some(note) => {
            tracing::info!(%note, "reading the document locally");
            cx.store
                .set_document_note(&document.id, Some(&note))
                .await?;
            local::read(cx, document).await
        }
    }
}

/// Counts `pages` of the document against the monthly page budget before its Textract job
/// starts. Returns the note the document shows when the budget is spent and it must be read
/// locally instead.
pub(super) async fn over_budget(
    cx: &Context<'_>,
    document: &Document,
    pages: i32,
) -> anyhow::Result<Option<String>> {
    if cx.job.external_id.is_some() {
        // Already started (and counted): a resumed attempt only collects the result.
        return Ok(None);
    }
    let budget = cx.config.textract_monthly_page_budget;
    let limit = budget.map_or(i64::MAX, |pages| i64::try_from(pages).unwrap_or(i64::MAX));
    let reserved = cx
        .store
        .reserve_textract_pages(&document.sha256, document.id.as_str(), pages, limit)
        .await?;
    Ok((!reserved).then(|| {
        format!(
            "Textract's monthly budget of {limit} pages is spent: this document was read \
             locally (text layer, and OCR where pages need it)"
        )
    }))
}

/// This worker's Textract and S3 clients, or the retry that says they are missing.
pub(super) fn clients<'e>(cx: &Context<'e>) -> Result<(&'e Textract, &'e S3Originals), Outcome> {
    match (&cx.engines.textract, cx.engines.blobs.s3()) {
        (Some(textract), Some(s3)) => Ok((textract, s3)),
        _ => Err(Outcome::Retry(anyhow::anyhow!(
            "this worker is not configured for Textract (set LECTOR_S3_BUCKET)"
        ))),
    }
}

async fn run(cx: &Context<'_>, document: &Document) -> anyhow::Result<Outcome> {
    let (textract, s3) = match clients(cx) {
        Ok(clients) => clients,
        Err(outcome) => return Ok(outcome),
    };
    let (store, job, holder) = (cx.store, cx.job, cx.holder);
    if !store
        .claim_textract_slot(job, holder, cx.config.textract_max_in_flight)
        .await?
    {
        return Ok(Outcome::Deferred(cx.config.textract_poll_initial));
    }
    if !cx.store.start_document(cx.job, cx.holder).await? {
        store.release_textract_slot(job).await?;
        return Ok(Outcome::Lost);
    }
    let outcome = drive(cx, textract, s3, document).await;
    store.release_textract_slot(job).await?;
    outcome
}

async fn drive(
    cx: &Context<'_>,
    textract: &Textract,
    s3: &S3Originals,
    document: &Document,
) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let key = match &document.blob_key {
        Some(key) => key.clone(),
        None => {
            let original = local::original_file(cx, document).await?;
            s3.ensure(&document.sha256, original.path()).await?.key
        }
    };
    if !cx
        .store
        .heartbeat(cx.job, cx.holder, cx.config.job_lease)
        .await?
    {
        return Ok(Outcome::Lost);
    }
    let job_id = match &cx.job.external_id {
        Some(id) => id.clone(),
        None => match textract
            .start(s3.bucket(), &key, &document.sha256, document.id.as_str())
            .await
        {
            Ok(id) => {
                if !cx.store.set_external_id(cx.job, cx.holder, &id).await? {
                    return Ok(Outcome::Lost);
                }
                tracing::info!(textract.job_id = %id, "Textract job started");
                id
            }
            Err(error) => return Ok(textract_outcome(error)),
        },
    };
    let result = TextractResult {
        job_id: &job_id,
        page_map: None,
        started,
    };
    wait_and_store(cx, textract, document, &result).await
}

/// A started Textract job whose pages are to be stored.
pub(super) struct TextractResult<'a> {
    /// Textract's job id.
    pub job_id: &'a str,
    /// Page `n` of the result is page `page_map[n - 1]` of the document (or page `n`
    /// without a map).
    pub page_map: Option<&'a [u32]>,
    /// When this attempt started: the pages' extraction time is shared out of it.
    pub started: std::time::Instant,
}

/// Waits for the Textract job and stores its pages.
pub(super) async fn wait_and_store(
    cx: &Context<'_>,
    textract: &Textract,
    document: &Document,
    result: &TextractResult<'_>,
) -> anyhow::Result<Outcome> {
    if let Some(outcome) = wait(cx, textract, result.job_id).await? {
        return Ok(outcome);
    }
    let expected = result
        .page_map
        .map_or(document.page_count.max(0) as u32, |m| m.len() as u32);
    let pages = match textract.pages(result.job_id, expected).await {
        Ok(pages) => pages,
        Err(error) => return Ok(textract_outcome(error)),
    };
    let stored: HashSet<i32> = cx
        .store
        .stored_page_numbers(&document.id)
        .await?
        .into_iter()
        .collect();
    let per_page_ms = result.started.elapsed().as_millis() as i64 / i64::from(expected.max(1));
    let mut sink = PageSink::new(cx.store, cx.job, cx.holder);
    for page in pages {
        let number = match result.page_map {
            None => page.number,
            Some(map) => match map.get(page.number as usize - 1) {
                Some(&number) => number,
                None => continue,
            },
        };
        if stored.contains(&(number as i32)) {
            continue;
        }
        sink.push(NewPage {
            number: number as i32,
            text: crate::engines::clean_text(page.text),
            source: PageSource::Textract,
            extraction_ms: per_page_ms,
            error: page.error,
            confidence: page.confidence,
            dpi: None,
            ocr_reason: None,
        });
        if sink.is_full() && !sink.flush().await? {
            return Ok(Outcome::Lost);
        }
    }
    if !sink.flush().await? {
        return Ok(Outcome::Lost);
    }
    Ok(Outcome::Done)
}

/// Polls Textract job `job_id` with backoff, holding the lease, until it has finished (then
/// `None`) or the attempt ends (the outcome).
async fn wait(
    cx: &Context<'_>,
    textract: &Textract,
    job_id: &str,
) -> anyhow::Result<Option<Outcome>> {
    let config = cx.config;
    let deadline = tokio::time::Instant::now() + config.textract_timeout;
    let mut wait = config.textract_poll_initial;
    let mut checks: u32 = 0;
    loop {
        checks += 1;
        // With completion notices, Textract is asked only once its notice has arrived (or,
        // as a safety net against a lost notice, every tenth check).
        let ask = !textract.announces_completion()
            || checks.is_multiple_of(10)
            || cx.store.textract_completion(job_id).await?.is_some();
        let state = if ask {
            textract.state(job_id).await
        } else {
            Ok(JobState::InProgress)
        };
        match state {
            Ok(JobState::Finished) => return Ok(None),
            Ok(JobState::Failed(reason)) => {
                return Ok(Some(Outcome::Failed(format!("Textract failed: {reason}"))));
            }
            Ok(JobState::InProgress) => {}
            Err(error) => return Ok(Some(textract_outcome(error))),
        }
        if tokio::time::Instant::now() + wait > deadline {
            let limit = config.textract_timeout.as_secs();
            let reason = format!("Textract did not finish within {limit}s");
            return Ok(Some(Outcome::Failed(reason)));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // The Textract job goes on; its id stays on the job row for whoever resumes.
            _ = cx.shutdown.cancelled() => return Ok(Some(Outcome::Released)),
        }
        if !cx
            .store
            .heartbeat(cx.job, cx.holder, cx.config.job_lease)
            .await?
        {
            return Ok(Some(Outcome::Lost));
        }
        wait = (wait * 2).min(config.textract_poll_max);
    }
}

fn textract_outcome(error: TextractError) -> Outcome {
    match error {
        TextractError::Document(_) => Outcome::Failed(error.to_string()),
        TextractError::Service(_) => Outcome::Retry(error.into()),
    }
}
