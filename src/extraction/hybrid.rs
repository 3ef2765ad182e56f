//! The hybrid engine: pages whose text layer is good are taken locally, for free; only the
//! pages that need OCR are copied into a small PDF and sent to Textract. When Textract cannot
//! take them (the monthly page budget is spent, the PDF has a password, the pages cannot be
//! copied), they are read by local OCR and the document says why.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{
    Context, Outcome, local,
    textract::{self, TextractResult},
};
use crate::{
    blobs::S3Originals,
    domain::Document,
    engines::textract::{Textract, TextractError},
};

/// How long copying the pages may take.
const SPLIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The Textract job of a hybrid document, as kept in `jobs.external_id`: the job id and the
/// document pages its result pages stand for (`<job id>@3,5,9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagesJob {
    /// Textract's job id.
    pub job_id: String,
    /// Result page `n` is document page `pages[n - 1]`.
    pub pages: Vec<u32>,
}

impl PagesJob {
    /// Reads the stored form back; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        let (job_id, pages) = raw.split_once('@')?;
        let pages = pages
            .split(',')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        (!job_id.is_empty() && !pages.is_empty()).then(|| PagesJob {
            job_id: job_id.to_owned(),
            pages,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        let pages: Vec<String> = self.pages.iter().map(u32::to_string).collect();
        format!("{}@{}", self.job_id, pages.join(","))
    }
}

/// Runs one attempt of a hybrid document.
pub(super) async fn read(cx: &Context<'_>, document: &Document) -> anyhow::Result<Outcome> {
    let (textract, s3) = match textract::clients(cx) {
        Ok(clients) => clients,
        Err(outcome) => return Ok(outcome),
    };
    if !cx.store.start_document(cx.job, cx.holder).await? {
        return Ok(Outcome::Lost);
    }
    let started = std::time::Instant::now();
    // A Textract job already started for this document's OCR pages: collect its result.
    if let Some(pages_job) = cx.job.external_id.as_deref().and_then(PagesJob::parse) {
        return collect(cx, textract, document, &pages_job, started).await;
    }

    // Copied out of storage once for every step below.
    let original = local::original_file(cx, document).await?;
    let original = original.path();
    // The text layer, locally; the pages that need OCR are only listed.
    let mut ocr = local::ocr_settings(cx, document);
    ocr.defer = true;
    let mut deferred = Vec::new();
    match local::read_pages(cx, document, original, ocr, &mut deferred).await? {
        Outcome::Done => {}
        other => return Ok(other),
    }
    if deferred.is_empty() {
        return Ok(Outcome::Done);
    }
    deferred.sort_unstable();
    let pages = Pages {
        document,
        original,
        deferred,
        started,
    };
    read_ocr_pages(cx, textract, s3, pages).await
}

/// The pages of a hybrid document that need OCR.
struct Pages<'a> {
    document: &'a Document,
    original: &'a Path,
    /// Their page numbers, in order.
    deferred: Vec<u32>,
    /// When this attempt started.
    started: std::time::Instant,
}

/// Has Textract read the pages that need OCR (copied into a small PDF of their own), or local
/// OCR when Textract cannot take them.
async fn read_ocr_pages(
    cx: &Context<'_>,
    textract: &Textract,
    s3: &S3Originals,
    pages: Pages<'_>,
) -> anyhow::Result<Outcome> {
    let (document, original) = (pages.document, pages.original);
    let fallback = if cx.store.document_password(&document.id).await?.is_some() {
        Some("this PDF has a password, which Textract refuses: its scanned pages were read by local OCR".to_owned())
    } else {
        textract::over_budget(cx, document, pages.deferred.len() as i32).await?
    };
    if let Some(note) = fallback {
        return read_locally(cx, document, original, &note).await;
    }

    // Copy the pages into a small PDF, in a sandbox child.
    let part = tempfile::Builder::new()
        .prefix("lector-pages-")
        .suffix(".pdf")
        .tempfile()?;
    match cx
        .engines
        .sandbox
        .split(original, pages.deferred.clone(), part.path(), SPLIT_LIMIT)
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(reason)) => {
            let note = format!("its scanned pages were read by local OCR ({reason})");
            return read_locally(cx, document, original, &note).await;
        }
        Err(error) => return Ok(Outcome::Retry(error.into())),
    }
    let max_in_flight = cx.config.textract_max_in_flight;
    if !cx
        .store
        .claim_textract_slot(cx.job, cx.holder, max_in_flight)
        .await?
    {
        return Ok(Outcome::Deferred(cx.config.textract_poll_initial));
    }
    let outcome = send(cx, textract, s3, pages, part.path()).await;
    cx.store.release_textract_slot(cx.job).await?;
    outcome
}

/// Sends `part`, the PDF of the pages, to Textract (holding a slot) and collects its pages.
async fn send(
    cx: &Context<'_>,
    textract: &Textract,
    s3: &S3Originals,
    pages: Pages<'_>,
    part: &Path,
) -> anyhow::Result<Outcome> {
    let document = pages.document;
    let bytes = tokio::fs::read(part).await?;
    let part_sha = hex::encode(Sha256::digest(&bytes));
    let object = s3.ensure(&part_sha, part).await?;
    let job_id = match textract
        .start(s3.bucket(), &object.key, &part_sha, document.id.as_str())
        .await
    {
        Ok(id) => id,
        Err(TextractError::Document(reason)) => {
            let _ = s3.delete(&object.key).await;
            let note = format!(
                "Textract refused its scanned pages ({reason}): they were read by local OCR"
            );
            return read_locally(cx, document, pages.original, &note).await;
        }
        Err(error @ TextractError::Service(_)) => return Ok(Outcome::Retry(error.into())),
    };
    let pages_job = PagesJob {
        job_id,
        pages: pages.deferred,
    };
    if !cx
        .store
        .set_external_id(cx.job, cx.holder, &pages_job.encode())
        .await?
    {
        return Ok(Outcome::Lost);
    }
    tracing::info!(textract.job_id = %pages_job.job_id, pages = pages_job.pages.len(), "Textract job started for the pages that need OCR");
    let outcome = collect(cx, textract, document, &pages_job, pages.started).await?;
    if matches!(outcome, Outcome::Done) {
        // The part is not an original: nothing else refers to it.
        let _ = s3.delete(&object.key).await;
    }
    Ok(outcome)
}

/// Waits for the Textract job and stores its pages under their document page numbers.
async fn collect(
    cx: &Context<'_>,
    textract: &Textract,
    document: &Document,
    pages_job: &PagesJob,
    started: std::time::Instant,
) -> anyhow::Result<Outcome> {
    let result = TextractResult {
        job_id: &pages_job.job_id,
        page_map: Some(&pages_job.pages),
        started,
    };
    textract::wait_and_store(cx, textract, document, &result).await
}

/// Reads the pages still missing with local OCR, noting why on the document.
async fn read_locally(
    cx: &Context<'_>,
    document: &Document,
    original: &Path,
    note: &str,
) -> anyhow::Result<Outcome> {
    tracing::info!(%note, "reading the pages that need OCR locally");
    cx.store.set_document_note(&document.id, Some(note)).await?;
    let ocr = local::ocr_settings(cx, document);
    local::read_pages(cx, document, original, ocr, &mut Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_map_round_trips_through_the_job_row() {
        let job = PagesJob {
            job_id: "a1b2".into(),
            pages: vec![2, 5, 9],
        };
        assert_eq!(job.encode(), "a1b2@2,5,9");
        assert_eq!(PagesJob::parse(&job.encode()), Some(job));
        assert_eq!(
            PagesJob::parse("a1b2"),
            None,
            "a whole-document Textract job id"
        );
        assert_eq!(PagesJob::parse("a1b2@"), None);
        assert_eq!(PagesJob::parse("@1"), None);
        assert_eq!(PagesJob::parse("a@1,x"), None);
    }
}
