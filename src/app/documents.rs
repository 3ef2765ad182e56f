//! The document use cases shared by the web UI and the API: upload (check, dedupe, store,
//! queue), re-process, cancel, delete. Handlers call these; these call storage and engines.

use std::{path::Path, sync::Arc};

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::{
    blobs::{BlobStore, ByteStream},
    config::Config,
    domain::{
        Document, Engine, Page, PageSource, User,
        ocr::{OcrChoice, OcrMode, parse_languages},
        upload,
    },
    engines::{Inspection, OpenError, Sandbox, SandboxError, ocr::OcrAvailability},
    storage::{self, NewDocument, Store},
};

/// Textract's documented limits for asynchronous PDF jobs.
pub const TEXTRACT_MAX_BYTES: u64 = 500 * 1024 * 1024;
/// See [`TEXTRACT_MAX_BYTES`].
pub const TEXTRACT_MAX_PAGES: u32 = 3000;

/// An uploaded file, already streamed to a temporary file and hashed.
#[derive(Debug)]
pub struct IncomingFile {
    /// The name the user's browser sent (cleaned before use).
    pub file_name: String,
    /// The bytes, on disk; removed when this is dropped.
    pub temp: tempfile::NamedTempFile,
    /// Bytes received.
    pub size: u64,
    /// The first bytes, for the signature check.
    pub head: Vec<u8>,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// Streams an upload into a temporary file while hashing and counting it.
pub struct IncomingFileWriter {
    file_name: String,
    temp: tempfile::NamedTempFile,
    out: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    limit: u64,
}

impl IncomingFileWriter {
    /// Starts receiving `file_name` in the folder `dir` (the sandbox's
    /// [`uploads_dir`](crate::engines::Sandbox::uploads_dir), the only one its upload checkers
    /// may read); more than `limit` bytes is refused.
    pub fn new(dir: &Path, file_name: &str, limit: u64) -> std::io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("lector-upload-")
            .suffix(".pdf")
            .tempfile_in(dir)?;
        let out = tokio::fs::File::from_std(temp.reopen()?);
        Ok(IncomingFileWriter {
            file_name: file_name.to_owned(),
            temp,
            out,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            limit,
        })
    }

    /// Adds the next piece of the body. Fails as soon as the size limit is passed.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        use tokio::io::AsyncWriteExt;
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        if self.head.len() < 1024 {
            let take = (1024 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.out
            .write_all(chunk)
            .await
            .map_err(|e| UploadError::Internal(e.into()))
    }

    /// The whole file has arrived.
    pub async fn finish(mut self) -> Result<IncomingFile, UploadError> {
        use tokio::io::AsyncWriteExt;
        self.out
            .flush()
            .await
            .map_err(|e| UploadError::Internal(e.into()))?;
        Ok(IncomingFile {
            file_name: self.file_name,
            temp: self.temp,
            size: self.size,
            head: self.head,
            sha256: self.hasher.finalize().into(),
        })
    }
}

/// Why an upload was refused. Every message but `Internal` is for the user.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No file in the request.
    #[error("choose a PDF file to upload")]
    NoFile,
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// No `%PDF-` signature.
    #[error("this file is not a PDF (it does not start with %PDF-)")]
    NotPdf,
    /// Over the size limit.
    #[error("the file is larger than the limit of {}", human_bytes(*limit))]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Over the page limit.
    #[error("the PDF has {pages} pages; the limit is {limit}")]
    TooManyPages {
        /// Pages in the PDF.
        pages: u32,
        /// The limit.
        limit: u32,
    },
    /// Too many files in one request.
    #[error("at most {limit} files can be uploaded at once")]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
    /// The parser refused it (password, unreadable, no pages).
    #[error(transparent)]
    Refused(#[from] OpenError),
    /// The configured engine cannot take this document (e.g. over Textract's limits).
    #[error("{0}")]
    EngineLimit(String),
    /// The parser crashed or timed out on it.
    #[error("this file could not be read as a PDF: {0}")]
    ParserFailed(String),
    /// The OCR mode or languages asked for cannot be used.
    #[error("{0}")]
    InvalidOcr(String),
    /// The request itself was malformed (bad multipart).
    #[error("the upload could not be read: {0}")]
    BadRequest(String),
    /// Our fault, not the user's.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<storage::Error> for UploadError {
    fn from(err: storage::Error) -> Self {
        UploadError::Internal(anyhow::Error::new(err))
    }
}

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

/// "100 MiB", "512 KiB", "12 bytes".
pub fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} bytes")
    }
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
    pub async fn get_owned(&self, user: &User, id: &str) -> storage::Result<Document> {
        let document = self.store.get_document(id).await?;
        if document.owner_id.as_deref() != Some(user.id.as_str()) {
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
                documents.last().map(|d| d.id.clone())
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

    /// Checks an upload and stores it with its job, or finds the same bytes already stored.
    #[tracing::instrument(skip_all, fields(file.size = file.size), err(level = "info"))]
    pub async fn upload(
        &self,
        owner: Option<&User>,
        file: IncomingFile,
        password: Option<String>,
        ocr: &OcrRequest,
    ) -> Result<Uploaded, UploadError> {
        let ocr = self
            .ocr_choice(ocr, None)
            .map_err(UploadError::InvalidOcr)?;
        if file.size == 0 {
            return Err(UploadError::Empty);
        }
        if !upload::has_pdf_signature(&file.head) {
            return Err(UploadError::NotPdf);
        }
        let sha256 = hex::encode(file.sha256);
        let owner_id = owner.map(|user| user.id.as_str());
        if let Some(document) = self
            .store
            .find_document_by_sha256(owner_id, &sha256)
            .await?
        {
            return Ok(Uploaded {
                document,
                duplicate: true,
            });
        }
        let password = password.filter(|p| !p.is_empty());
        let inspection = self
            .sandbox
            .inspectors()
            .inspect(
                file.temp.path(),
                password.as_deref(),
                self.config.inspect_timeout,
            )
            .await
            .map_err(|e| match e {
                SandboxError::Io(io) => UploadError::Internal(io.into()),
                other => UploadError::ParserFailed(other.to_string()),
            })??;
        if inspection.pages > self.config.max_pages {
            return Err(UploadError::TooManyPages {
                pages: inspection.pages,
                limit: self.config.max_pages,
            });
        }
        if self.config.engine == Engine::Textract {
            check_textract_limits(file.size, &inspection)?;
        }
        let stored = self.blobs.put(&sha256, file.temp.path()).await?;
        let new = NewDocument {
            id: uuid::Uuid::now_v7().to_string(),
            file_name: upload::clean_file_name(&file.file_name),
            sha256: sha256.clone(),
            size_bytes: file.size as i64,
            page_count: inspection.pages as i32,
            engine: self.config.engine,
            blob_key: stored.as_ref().map(|object| object.key.clone()),
            // Only a password that was needed is kept.
            pdf_password: password
                .filter(|_| inspection.encrypted)
                .map(SecretString::from),
            max_attempts: self.config.job_max_attempts,
            ocr,
            owner_id: owner_id.map(str::to_owned),
        };
        let in_database = stored.is_none().then(|| file.temp.path());
        match self.store.create_document(&new, in_database).await {
            Ok(document) => {
                self.work_available.notify_one();
                Ok(Uploaded {
                    document,
                    duplicate: false,
                })
            }
            // The same bytes arrived twice at once: the other request stored them.
            Err(storage::Error::Conflict) => {
                match self
                    .store
                    .find_document_by_sha256(owner_id, &sha256)
                    .await?
                {
                    Some(document) => Ok(Uploaded {
                        document,
                        duplicate: true,
                    }),
                    None => Err(UploadError::Internal(anyhow::anyhow!(
                        "conflicting upload vanished"
                    ))),
                }
            }
            Err(other) => {
                // Leave nothing behind: an object this upload created goes with it.
                if let (Some(object), Some(s3)) = (stored.filter(|o| o.created), self.blobs.s3()) {
                    let _ = s3.delete(&object.key).await;
                }
                Err(other.into())
            }
        }
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
    #[tracing::instrument(skip(self), err(level = "info"))]
    pub async fn reprocess(&self, id: &str, ocr: &OcrRequest) -> Result<Document, ReprocessError> {
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
    #[tracing::instrument(skip(self), err(level = "info"))]
    pub async fn cancel(&self, id: &str) -> storage::Result<bool> {
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

/// Textract refuses files over 500 MB, over 3,000 pages, or with a password: say so at upload.
fn check_textract_limits(size: u64, inspection: &Inspection) -> Result<(), UploadError> {
    if size > TEXTRACT_MAX_BYTES {
        return Err(UploadError::EngineLimit(format!(
            "Textract reads PDFs of up to {}; this one is {}",
            human_bytes(TEXTRACT_MAX_BYTES),
            human_bytes(size)
        )));
    }
    if inspection.pages > TEXTRACT_MAX_PAGES {
        return Err(UploadError::EngineLimit(format!(
            "Textract reads PDFs of up to {TEXTRACT_MAX_PAGES} pages; this one has {}",
            inspection.pages
        )));
    }
    if inspection.user_password {
        return Err(UploadError::EngineLimit(
            "Textract cannot read password-protected PDFs".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textract_limits_are_checked_before_anything_is_sent() {
        let fine = Inspection {
            pages: 3,
            encrypted: false,
            user_password: false,
        };
        assert!(check_textract_limits(1000, &fine).is_ok());
        let too_big = check_textract_limits(TEXTRACT_MAX_BYTES + 1, &fine).unwrap_err();
        assert!(too_big.to_string().contains("500.0 MiB"), "{too_big}");
        let long = Inspection {
            pages: 3001,
            ..fine
        };
        assert!(
            check_textract_limits(1000, &long)
                .unwrap_err()
                .to_string()
                .contains("3000 pages")
        );
        let locked = Inspection {
            user_password: true,
            encrypted: true,
            ..fine
        };
        assert!(matches!(
            check_textract_limits(1000, &locked),
            Err(UploadError::EngineLimit(_))
        ));
        let owner_only = Inspection {
            encrypted: true,
            ..fine
        };
        assert!(check_textract_limits(1000, &owner_only).is_ok());
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(12), "12 bytes");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100.0 MiB");
    }

    #[tokio::test]
    async fn the_writer_refuses_a_file_over_the_limit_as_it_streams() {
        let mut writer = IncomingFileWriter::new(&std::env::temp_dir(), "a.pdf", 10).unwrap();
        writer.write(b"%PDF-1.4").await.unwrap();
        let err = writer.write(b"more than ten").await.unwrap_err();
        assert!(matches!(err, UploadError::TooLarge { limit: 10 }));
    }

    #[tokio::test]
    async fn the_writer_hashes_and_keeps_the_head() {
        let mut writer = IncomingFileWriter::new(&std::env::temp_dir(), "a.pdf", 100).unwrap();
        writer.write(b"%PDF-").await.unwrap();
        writer.write(b"1.4").await.unwrap();
        let file = writer.finish().await.unwrap();
        assert_eq!(file.size, 8);
        assert_eq!(file.head, b"%PDF-1.4");
        assert_eq!(
            hex::encode(file.sha256),
            hex::encode(Sha256::digest(b"%PDF-1.4"))
        );
        assert_eq!(std::fs::read(file.temp.path()).unwrap(), b"%PDF-1.4");
    }
}
