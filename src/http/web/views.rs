//! What the templates show, prepared from domain types (formatting lives here, not in HTML).

use tower_sessions::Session;

use crate::{
    documents::human_bytes,
    domain::{ApiToken, Document, Page, User},
    http::{AppError, csrf},
};

/// A document as a row of the index, or the header of its page.
pub struct DocumentSummary {
    pub id: String,
    pub file_name: String,
    pub page_count: i32,
    pub size: String,
    pub status: &'static str,
    pub status_label: String,
    pub engine: String,
    pub ocr_mode: &'static str,
    pub ocr_languages: String,
    pub uploaded_at: String,
    pub finished: bool,
    pub cancellable: bool,
    pub percent: u32,
    pub pages_done: i64,
    pub extraction: String,
}

impl From<&Document> for DocumentSummary {
    fn from(doc: &Document) -> Self {
        DocumentSummary {
            id: doc.id.clone(),
            file_name: doc.file_name.clone(),
            page_count: doc.page_count,
            size: human_bytes(doc.size_bytes.max(0) as u64),
            status: doc.status.as_str(),
            status_label: doc.status_label(),
            engine: doc.engine.clone(),
            ocr_mode: doc.ocr.mode.as_str(),
            ocr_languages: doc.ocr.languages.clone(),
            uploaded_at: doc.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            finished: doc.status.is_finished(),
            cancellable: doc.status.is_cancellable(),
            percent: doc.percent_done(),
            pages_done: doc.pages_done,
            extraction: doc
                .extraction_ms()
                .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                .unwrap_or_default(),
        }
    }
}

/// One page's text on the document page.
pub struct PageSection {
    pub number: i32,
    pub badge: String,
    pub details: String,
    pub text: String,
    pub source: String,
    pub char_count: i32,
    pub error: Option<String>,
}

impl From<Page> for PageSection {
    fn from(page: Page) -> Self {
        PageSection {
            number: page.number,
            badge: page.badge(),
            details: page.badge_title(),
            source: page.source.clone(),
            text: page.text,
            char_count: page.char_count,
            error: page.error,
        }
    }
}

/// What the header of every page needs: who is signed in, and the session's CSRF token for
/// the forms (and htmx) on the page.
#[derive(Debug, Default)]
pub struct Nav {
    pub user_email: Option<String>,
    pub csrf_token: String,
}

impl Nav {
    /// The header for `session`, signed in as `user` if given.
    pub async fn new(session: &Session, user: Option<&User>) -> Result<Nav, AppError> {
        Ok(Nav {
            user_email: user.map(|u| u.email.clone()),
            csrf_token: csrf::token(session).await?,
        })
    }
}

/// One row of the API tokens page.
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: String,
}

impl From<ApiToken> for TokenRow {
    fn from(token: ApiToken) -> Self {
        TokenRow {
            id: token.id,
            name: token.name,
            prefix: token.prefix,
            created_at: token.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_used_at: token.last_used_at.map_or_else(
                || "never".into(),
                |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
            ),
        }
    }
}
