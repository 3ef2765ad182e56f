//! Taking an upload in: the checks a PDF must pass (signature, sandboxed inspection, page
//! and engine limits), the duplicate check, and storing it with its job in one go.

use secrecy::SecretString;

use super::{Documents, IncomingFile, OcrRequest, Uploaded, human_bytes};
use crate::{
    domain::{DocumentId, Engine, User, upload},
    engines::{Inspection, OpenError, SandboxError},
    storage::{self, NewDocument},
};

/// Textract's documented limits for asynchronous PDF jobs.
pub const TEXTRACT_MAX_BYTES: u64 = 500 * 1024 * 1024;
/// See [`TEXTRACT_MAX_BYTES`].
pub const TEXTRACT_MAX_PAGES: u32 = 3000;

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

impl Documents {
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
        let owner_id = owner.map(|user| &user.id);
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
        let inspection = self.inspect(&file, password.as_deref()).await?;
        let new = NewDocument {
            id: DocumentId::new(),
            file_name: upload::clean_file_name(&file.file_name),
            sha256,
            size_bytes: file.size as i64,
            page_count: inspection.pages as i32,
            engine: self.config.engine,
            blob_key: None,
            // Only a password that was needed is kept.
            pdf_password: password
                .filter(|_| inspection.encrypted)
                .map(SecretString::from),
            max_attempts: self.config.job_max_attempts,
            ocr,
            owner_id: owner_id.cloned(),
        };
        self.store_new(new, &file).await
    }

    /// Reads the PDF in the sandbox and holds it against the page limit and the engine's.
    async fn inspect(
        &self,
        file: &IncomingFile,
        password: Option<&str>,
    ) -> Result<Inspection, UploadError> {
        let inspection = self
            .sandbox
            .inspectors()
            .inspect(file.temp.path(), password, self.config.inspect_timeout)
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
        Ok(inspection)
    }

    /// Stores the original and the document with its job; when the same bytes arrived
    /// twice at once, the document the other request stored.
    async fn store_new(
        &self,
        mut new: NewDocument,
        file: &IncomingFile,
    ) -> Result<Uploaded, UploadError> {
        let stored = self.blobs.put(&new.sha256, file.temp.path()).await?;
        new.blob_key = stored.as_ref().map(|object| object.key.clone());
        let in_database = stored.is_none().then(|| file.temp.path());
        match self.store.create_document(&new, in_database).await {
            Ok(document) => {
                self.work_available.notify_one();
                Ok(Uploaded {
                    document,
                    duplicate: false,
                })
            }
            Err(storage::Error::Conflict) => {
                let owner_id = new.owner_id.as_ref();
                match self
                    .store
                    .find_document_by_sha256(owner_id, &new.sha256)
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
}
