//! A document, its life cycle and its extracted pages.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a document is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Stored and waiting for a worker.
    Queued,
    /// A worker is extracting its pages.
    Processing,
    /// Every page has been extracted (some pages may carry an error of their own).
    Done,
    /// Extraction gave up; `error` says why.
    Failed,
    /// A user cancelled the work.
    Cancelled,
}

impl DocumentStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [DocumentStatus; 5] = [
        Self::Queued,
        Self::Processing,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// True once no more work will happen without a user asking for it.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }

    /// True while a cancel makes sense.
    pub fn is_cancellable(self) -> bool {
        !self.is_finished()
    }
}

/// A stored PDF and the state of its extraction.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// UUIDv7, so ids sort by upload time.
    pub id: super::DocumentId,
    /// The name the file had on the user's machine: display only, never a path.
    pub file_name: String,
    /// Hex SHA-256 of the original bytes.
    pub sha256: String,
    /// Size of the original in bytes.
    pub size_bytes: i64,
    /// Pages in the PDF.
    pub page_count: i32,
    /// Pages extracted so far (including pages that failed on their own).
    pub pages_done: i64,
    /// Pages whose extraction failed.
    pub pages_failed: i64,
    /// Where the document is in its life cycle.
    pub status: DocumentStatus,
    /// Why the document failed, in words for a person.
    pub error: Option<String>,
    /// The engine configured when it was queued.
    pub engine: super::Engine,
    /// The S3 key of the original, when it is on S3 rather than in the database.
    pub blob_key: Option<String>,
    /// The account it belongs to.
    pub owner_id: Option<super::UserId>,
    /// When and in which languages its pages are OCR'd.
    pub ocr: super::ocr::OcrChoice,
    /// Something the reader should know about how it was extracted (e.g. read locally
    /// because the Textract budget was spent).
    pub note: Option<String>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// When its current extraction started.
    pub started_at: Option<DateTime<Utc>>,
    /// When its current extraction ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Document {
    /// Percentage of pages extracted, for the progress bar.
    pub fn percent_done(&self) -> u32 {
        if self.status == DocumentStatus::Done {
            return 100;
        }
        if self.page_count <= 0 {
            return 0;
        }
        ((self.pages_done.max(0) as f64 / self.page_count as f64) * 100.0).min(100.0) as u32
    }

    /// The status as a person reads it: "processing 3 of 12", "failed: …".
    pub fn status_label(&self) -> String {
        match self.status {
            DocumentStatus::Processing => {
                format!("processing {} of {}", self.pages_done, self.page_count)
            }
            DocumentStatus::Failed => match &self.error {
                Some(reason) => format!("failed: {reason}"),
                None => "failed".into(),
            },
            DocumentStatus::Done if self.pages_failed > 0 => {
                format!(
                    "done ({} of {} pages failed)",
                    self.pages_failed, self.page_count
                )
            }
            other => other.as_str().into(),
        }
    }

    /// Milliseconds the last extraction took, when it has finished.
    pub fn extraction_ms(&self) -> Option<i64> {
        Some((self.finished_at? - self.started_at?).num_milliseconds())
    }
}

/// The text of one page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// 1-based page number.
    pub number: i32,
    /// The extracted text (empty when the page failed or has no text).
    pub text: String,
    /// The engine that produced it.
    pub source: super::PageSource,
    /// Characters (not bytes) in `text`.
    pub char_count: i32,
    /// Milliseconds spent on this page.
    pub extraction_ms: i64,
    /// Why this page could not be extracted.
    pub error: Option<String>,
    /// The engine's mean confidence (0–100), when it reports one.
    pub confidence: Option<f64>,
    /// The resolution an OCR'd page was read at.
    pub dpi: Option<i32>,
    /// Why the page went to OCR.
    pub ocr_reason: Option<String>,
}

impl Page {
    /// The badge shown beside the page: "OCR 93 %", or "text layer".
    pub fn badge(&self) -> String {
        use super::PageSource;
        match (self.source, self.confidence) {
            (PageSource::Ocr, Some(confidence)) => format!("OCR {confidence:.0} %"),
            (PageSource::Ocr, None) => "OCR (blank)".into(),
            (PageSource::Textract, Some(confidence)) => format!("Textract {confidence:.0} %"),
            (PageSource::Textract, None) => "textract".into(),
            (PageSource::TextLayer, _) => "text layer".into(),
        }
    }

    /// The details behind the badge: why OCR, at what resolution, how long.
    pub fn badge_title(&self) -> String {
        let mut parts = Vec::new();
        if let Some(reason) = &self.ocr_reason {
            parts.push(reason.clone());
        }
        if let Some(dpi) = self.dpi {
            parts.push(format!("{dpi} dpi"));
        }
        parts.push(format!("{:.1} s", self.extraction_ms as f64 / 1000.0));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(status: DocumentStatus, pages_done: i64) -> Document {
        Document {
            id: "d".into(),
            file_name: "a.pdf".into(),
            sha256: "00".into(),
            size_bytes: 10,
            page_count: 4,
            pages_done,
            pages_failed: 0,
            status,
            error: None,
            engine: crate::domain::Engine::Local,
            blob_key: None,
            owner_id: None,
            ocr: crate::domain::ocr::OcrChoice {
                mode: crate::domain::ocr::OcrMode::Auto,
                languages: "eng".into(),
            },
            note: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in [
            DocumentStatus::Queued,
            DocumentStatus::Processing,
            DocumentStatus::Done,
            DocumentStatus::Failed,
            DocumentStatus::Cancelled,
        ] {
            assert_eq!(DocumentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DocumentStatus::parse("nonsense"), None);
    }

    #[test]
    fn progress_is_reported_as_pages_of_total() {
        let doc = document(DocumentStatus::Processing, 1);
        assert_eq!(doc.percent_done(), 25);
        assert_eq!(doc.status_label(), "processing 1 of 4");
        assert_eq!(document(DocumentStatus::Done, 4).percent_done(), 100);
    }

    #[test]
    fn a_failed_document_says_why() {
        let mut doc = document(DocumentStatus::Failed, 0);
        doc.error = Some("timed out".into());
        assert_eq!(doc.status_label(), "failed: timed out");
        assert!(doc.status.is_finished());
        assert!(!doc.status.is_cancellable());
    }

    #[test]
    fn page_badges_show_the_source_and_confidence() {
        let mut page = Page {
            number: 1,
            text: "x".into(),
            source: crate::domain::PageSource::Ocr,
            char_count: 1,
            extraction_ms: 1_650,
            error: None,
            confidence: Some(93.4),
            dpi: Some(300),
            ocr_reason: Some("no text layer".into()),
        };
        assert_eq!(page.badge(), "OCR 93 %");
        assert_eq!(page.badge_title(), "no text layer, 300 dpi, 1.6 s");
        page.confidence = None;
        assert_eq!(page.badge(), "OCR (blank)");
        page.source = crate::domain::PageSource::TextLayer;
        assert_eq!(page.badge(), "text layer");
        page.source = crate::domain::PageSource::Textract;
        page.confidence = Some(99.0);
        assert_eq!(page.badge(), "Textract 99 %");
    }

    #[test]
    fn failed_pages_are_counted_in_the_label() {
        let mut doc = document(DocumentStatus::Done, 4);
        doc.pages_failed = 1;
        assert_eq!(doc.status_label(), "done (1 of 4 pages failed)");
    }
}
