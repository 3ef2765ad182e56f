//! The local engine: the PDF's text layer, and local OCR for pages without one, read in
//! sandbox children. Cores no other job is using read the document's pages in parallel, in
//! interleaved shares, each share in a child of its own.

use std::path::Path;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::{Context, Outcome, share::Share};
use crate::{
    domain::{Document, ocr::OcrMode},
    engines::{ocr::OcrSettings, sandbox::SandboxRequest},
};

/// Pages a share of a document should have before another core is worth a child of its own
/// (about 13 ms of CPU to start, and the document parsed again).
const MIN_PAGES_PER_PART: usize = 8;

/// Runs one attempt of a document read locally.
pub(super) async fn read(cx: &Context<'_>, document: &Document) -> anyhow::Result<Outcome> {
    if !cx.store.start_document(cx.job, cx.holder).await? {
        return Ok(Outcome::Lost);
    }
    let original = original_file(cx, document).await?;
    let ocr = ocr_settings(cx, document);
    read_pages(cx, document, original.path(), ocr, &mut Vec::new()).await
}

/// The original of `document` in a temporary file (removed when dropped).
pub(super) async fn original_file(
    cx: &Context<'_>,
    document: &Document,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("lector-job-")
        .suffix(".pdf")
        .tempfile()?;
    cx.engines
        .blobs
        .copy_to_file(cx.store, document, file.path())
        .await?;
    Ok(file)
}

/// The OCR settings a document is extracted with: its own choices over the defaults.
pub(super) fn ocr_settings(cx: &Context<'_>, document: &Document) -> OcrSettings {
    OcrSettings {
        mode: document.ocr.mode,
        languages: document.ocr.languages.clone(),
        ..cx.config.ocr.clone()
    }
}

/// Extracts the pages of `document` (its original at `original`) not yet stored. Pages the
/// child leaves to someone else (`ocr.defer`) are added to `deferred`, in order.
pub(super) async fn read_pages(
    cx: &Context<'_>,
    document: &Document,
    original: &Path,
    ocr: OcrSettings,
    deferred: &mut Vec<u32>,
) -> anyhow::Result<Outcome> {
    let store = cx.store;
    let skip: Vec<u32> = store
        .stored_page_numbers(&cx.job.document_id)
        .await?
        .into_iter()
        .map(|n| n as u32)
        .collect();
    if skip.len() >= document.page_count as usize {
        return Ok(Outcome::Done);
    }
    let password = store
        .document_password(&cx.job.document_id)
        .await?
        .map(|p| p.expose_secret().to_owned());
    // Copying a large original can take a while: renew the lease before the long part.
    if !cx
        .store
        .heartbeat(cx.job, cx.holder, cx.config.job_lease)
        .await?
    {
        return Ok(Outcome::Lost);
    }
    let request = SandboxRequest {
        password,
        skip,
        ocr,
        ..SandboxRequest::default()
    };
    let pages = document.page_count as u32;
    read_in_shares(cx, original, pages, request, deferred).await
}

/// Reads the pages `request` does not skip in as many shares as there are free cores (one
/// when none is free).
async fn read_in_shares(
    cx: &Context<'_>,
    original: &Path,
    pages: u32,
    request: SandboxRequest,
    deferred: &mut Vec<u32>,
) -> anyhow::Result<Outcome> {
    let remaining = (pages as usize).saturating_sub(request.skip.len());
    let per_part = if request.ocr.mode == OcrMode::Force {
        1
    } else {
        MIN_PAGES_PER_PART
    };
    let cores = cx.engines.cores.clone();
    let held: Vec<_> = (0..(remaining / per_part).max(1))
        .map_while(|_| cores.clone().try_acquire_owned().ok())
        .collect();
    let parts = held.len().max(1) as u32;
    let stop = CancellationToken::new();
    let shares = (0..parts).map(|part| {
        let mut skip = request.skip.clone();
        skip.extend((1..=pages).filter(|page| (page - 1) % parts != part));
        let request = SandboxRequest {
            skip,
            ..request.clone()
        };
        let share = Share {
            cx,
            original,
            pages,
            stop: &stop,
        };
        async move {
            let mut deferred = Vec::new();
            let outcome = share.read(request, &mut deferred).await;
            // One share that cannot finish stops the others: the document's outcome is its.
            if !matches!(outcome, Ok(Outcome::Done)) {
                share.stop.cancel();
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
