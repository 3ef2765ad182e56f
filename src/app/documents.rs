//! The document use cases shared by the web UI and the API: upload (check, dedupe, store,
//! queue), re-process, cancel, delete. Handlers call these; these call storage and engines.

use std::{path::Path, sync::Arc};

use tokio::sync::Notify;

mod incoming;
mod upload;

pub use incoming::{IncomingFile, IncomingFileWriter, human_bytes};
pub use upload::{TEXTRACT_MAX_BYTES, TEXTRACT_MAX_PAGES, UploadError};

use crate::{
    blobs::{BlobStore, ByteStream},
    config::Config,
    domain::{
        Document, DocumentId, Page, PageSource, User,
        ocr::{OcrChoice, OcrMode, parse_languages},
    },
    engines::{Sandbox, ocr::OcrAvailability},
    storage::{self, Store},
};

/// Why a re-process was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// The OCR mode or languages asked for cannot be used.
    #[error("{0}")]
    InvalidOcr(String),
    /// Storage failed (or there is no such document).
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// OCR choices a person made for one upload or re-process; what is not given comes from
/// the configuration (upload) or stays as it was (re-process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcrRequest {
    /// `auto`, `off` or `force`, as typed.
    pub mode: Option<String>,
    /// Tesseract languages joined by `+`, as typed.
    pub languages: Option<String>,
}

impl OcrRequest {
    /// True when nothing was asked for.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.languages.is_none()
    }
}

/// The outcome of a successful upload.
#[derive(Debug)]
pub struct Uploaded {
    /// The stored (or already existing) document.
    pub document: Document,
    /// True when these bytes had been uploaded before and nothing new was stored.
    pub duplicate: bool,
}

/// One page of an account's documents.
#[derive(Debug)]
pub struct Listing {
    /// The documents on it, newest first.
    pub documents: Vec<Document>,
    /// Its number, from 1.
    pub page: i64,
    /// How many pages there are (at least 1).
    pub total_pages: i64,
}

/// Document use cases over one store.
#[derive(Clone)]
pub struct Documents {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    sandbox: Sandbox,
    ocr: OcrAvailability,
    config: Arc<Config>,
    work_available: Arc<Notify>,
}

impl Documents {
    /// Use cases over `store`; `work_available` wakes this process's workers.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        sandbox: Sandbox,
        ocr: OcrAvailability,
        config: Arc<Config>,
        work_available: Arc<Notify>,
    ) -> Self {
        Documents {
            store,
            blobs,
            sandbox,
            ocr,
            config,
            work_available,
        }
    }

    /// The folder uploads are received in before they are checked: see
    /// [`IncomingFileWriter::new`].
    pub fn uploads_dir(&self) -> &Path {
        self.sandbox.uploads_dir()
    }

    /// `user`'s document `id`. Someone else's document is `NotFound`, exactly like one that
    /// does not exist, so that ids cannot be probed.
    pub async fn get_owned(&self, user: &User, id: &DocumentId) -> storage::Result<Document> {
        let document = self.store.get_document(id).await?;
        if document.owner_id.as_ref() != Some(&user.id) {
            return Err(storage::Error::NotFound);
        }
        Ok(document)
    }

    /// How many documents `user` has.
    pub async fn count(&self, user: &User) -> storage::Result<i64> {
        self.store.count_documents(&user.id).await
    }

    /// Page `page` (from 1, clamped to the pages there are) of `user`'s documents, newest
    /// first, `per_page` a page: the web index.
    pub async fn listing(&self, user: &User, page: i64, per_page: i64) -> storage::Result<Listing> {
        let total = self.store.count_documents(&user.id).await?;
        let total_pages = ((total + per_page - 1) / per_page).max(1);
        let page = page.clamp(1, total_pages);
        let documents = self
            .store
            .list_documents_at(&user.id, (page - 1) * per_page, per_page)
            .await?;
        Ok(Listing {
            documents,
            page,
            total_pages,
        })
    }

    /// Up to `limit` of `user`'s documents, newest first, after the one whose id is `cursor`;
    /// the cursor of the next batch when there are more: the API's list.
    pub async fn list_after(
        &self,
        user: &User,
        cursor: Option<&str>,
        limit: i64,
    ) -> storage::Result<(Vec<Document>, Option<String>)> {
        let mut documents = self
            .store
            .list_documents(&user.id, cursor, limit + 1)
            .await?;
        let next_cursor = (documents.len() as i64 > limit)
            .then(|| {
                documents.truncate(limit as usize);
                documents.last().map(|d| d.id.to_string())
            })
            .flatten();
        Ok((documents, next_cursor))
    }

    /// The pages of a document already checked to be the caller's.
    pub async fn pages(&self, document: &Document) -> storage::Result<Vec<Page>> {
        self.store.list_pages(&document.id).await
    }

    /// How many of a document's stored pages Textract read (they are what it cost).
    pub async fn textract_pages(&self, document: &Document) -> storage::Result<i64> {
        let by_source = self.store.document_pages_by_source(&document.id).await?;
        Ok(by_source
            .iter()
            .find(|(source, _)| source == PageSource::Textract.as_str())
            .map_or(0, |(_, n)| *n))
    }

    /// The OCR choice for a document: what `request` asks for, the rest from `current` (a
    /// re-process) or the configuration (an upload). The error is for the user.
    pub fn ocr_choice(
        &self,
        request: &OcrRequest,
        current: Option<&OcrChoice>,
    ) -> Result<OcrChoice, String> {
        let mode = match request.mode.as_deref().filter(|m| !m.trim().is_empty()) {
            Some(raw) => OcrMode::parse(raw)
                .ok_or_else(|| format!("OCR mode {raw:?} must be auto, off or force"))?,
            None => current.map_or(self.config.ocr.mode, |c| c.mode),
        };
        let languages = match request
            .languages
            .as_deref()
            .filter(|l| !l.trim().is_empty())
        {
            Some(raw) => parse_languages(raw, self.ocr.languages())?,
            None => current.map_or_else(
                || self.config.ocr.languages.clone(),
                |c| c.languages.clone(),
            ),
        };
        Ok(OcrChoice { mode, languages })
    }

    /// Where originals are kept.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// What this machine can OCR.
    pub fn ocr_availability(&self) -> &OcrAvailability {
        &self.ocr
    }

    /// Clears the pages and extracts the document again, with other OCR choices if asked.
    #[tracing::instrument(skip(self, id), fields(document.id = %id), err(level = "info"))]
    pub async fn reprocess(
        &self,
        id: &DocumentId,
        ocr: &OcrRequest,
    ) -> Result<Document, ReprocessError> {
        let choice = if ocr.is_empty() {
            None
        } else {
            let document = self.store.get_document(id).await?;
            Some(
                self.ocr_choice(ocr, Some(&document.ocr))
                    .map_err(ReprocessError::InvalidOcr)?,
            )
        };
        self.store
            .requeue_document(id, self.config.job_max_attempts, choice.as_ref())
            .await?;
        self.work_available.notify_one();
        Ok(self.store.get_document(id).await?)
    }

    /// Stops a queued or running extraction. False when it had already finished.
    #[tracing::instrument(skip_all, fields(document.id = %id), err(level = "info"))]
    pub async fn cancel(&self, id: &DocumentId) -> storage::Result<bool> {
        self.store.cancel_document(id).await
    }

    /// Removes the document, its original and its pages.
    #[tracing::instrument(skip_all, fields(document.id = %document.id), err(level = "info"))]
    pub async fn delete(&self, document: &Document) -> storage::Result<()> {
        self.store.delete_document(&document.id).await?;
        self.blobs.forget(self.store.as_ref(), document).await
    }

    /// The original of a document, a piece at a time.
    pub async fn original(&self, document: &Document) -> storage::Result<ByteStream> {
        self.blobs.download(self.store.clone(), document).await
    }
}
