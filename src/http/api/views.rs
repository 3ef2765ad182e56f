//! JSON shapes of the API (and their OpenAPI schemas).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::domain::{Document, DocumentStatus, Page};

/// Where to find a document's parts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentLinks {
    /// This document.
    #[serde(rename = "self")]
    pub this: String,
    /// Its pages as JSON.
    pub pages: String,
    /// Its text as text/plain.
    pub text: String,
    /// The original PDF.
    pub file: String,
    /// The page for people.
    pub html: String,
}

/// A document and the state of its extraction.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    /// Id (UUIDv7).
    pub id: String,
    /// The uploaded file's name.
    pub file_name: String,
    /// Where it is in its life cycle.
    pub status: DocumentStatus,
    /// The status in words ("processing 3 of 12").
    pub status_label: String,
    /// Pages in the PDF.
    pub page_count: i32,
    /// Pages extracted so far.
    pub pages_done: i64,
    /// Pages whose extraction failed.
    pub pages_failed: i64,
    /// Size of the original.
    pub size_bytes: i64,
    /// Hex SHA-256 of the original.
    pub sha256: String,
    /// Engine used.
    pub engine: crate::domain::Engine,
    /// When and in which languages pages are OCR'd.
    pub ocr: crate::domain::ocr::OcrChoice,
    /// Something to know about how it was extracted (e.g. read locally because the Textract
    /// budget was spent).
    pub note: Option<String>,
    /// Why it failed (or why the last attempt did).
    pub error: Option<String>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// When the current extraction started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long the extraction took.
    pub extraction_ms: Option<i64>,
    /// True when an upload matched a document already stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Related resources.
    pub links: DocumentLinks,
}

impl DocumentView {
    /// The view of `doc`.
    pub fn new(doc: Document) -> Self {
        let base = format!("/api/v1/documents/{}", doc.id);
        DocumentView {
            links: DocumentLinks {
                pages: format!("{base}/pages"),
                text: format!("{base}/text"),
                file: format!("{base}/file"),
                html: format!("/documents/{}", doc.id),
                this: base,
            },
            status_label: doc.status_label(),
            extraction_ms: doc.extraction_ms(),
            id: doc.id.into(),
            file_name: doc.file_name,
            status: doc.status,
            page_count: doc.page_count,
            pages_done: doc.pages_done,
            pages_failed: doc.pages_failed,
            size_bytes: doc.size_bytes,
            sha256: doc.sha256,
            engine: doc.engine,
            ocr: doc.ocr,
            note: doc.note,
            error: doc.error,
            created_at: doc.created_at,
            started_at: doc.started_at,
            finished_at: doc.finished_at,
            duplicate: None,
        }
    }
}

/// One page of a list of documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    /// Newest first.
    pub documents: Vec<DocumentView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /documents`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
pub struct ListQuery {
    /// Documents per page, 1 to 200 (default 50).
    #[validate(range(min = 1, max = 200))]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[validate(length(max = 64))]
    pub cursor: Option<String>,
}

/// A document's pages.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageList {
    /// The document.
    pub document_id: String,
    /// Extracted pages so far, in page order.
    pub pages: Vec<Page>,
}

/// The multipart body of an upload (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadBody {
    /// The PDF.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// The user password of an encrypted PDF.
    pub password: Option<String>,
    /// When to OCR pages: `auto` (pages without usable text), `off` or `force` (every page).
    pub ocr: Option<String>,
    /// Tesseract languages joined by `+`, e.g. `eng+deu`.
    pub ocr_languages: Option<String>,
}

/// Optional new OCR choices for a re-process (JSON; an empty body keeps the current ones).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReprocessBody {
    /// `auto`, `off` or `force`.
    pub ocr: Option<String>,
    /// Tesseract languages joined by `+`.
    pub ocr_languages: Option<String>,
}

impl From<ReprocessBody> for crate::app::documents::OcrRequest {
    fn from(body: ReprocessBody) -> Self {
        crate::app::documents::OcrRequest {
            mode: body.ocr,
            languages: body.ocr_languages,
        }
    }
}
