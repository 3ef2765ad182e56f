//! What the templates show, prepared from domain types (formatting lives here, not in HTML).

use tower_sessions::Session;

use crate::{
    app::documents::human_bytes,
    domain::{
        ApiToken, Document, Page, User,
        search::{Fragment, Highlighted},
    },
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
            id: doc.id.to_string(),
            file_name: doc.file_name.clone(),
            page_count: doc.page_count,
            size: human_bytes(doc.size_bytes.max(0) as u64),
            status: doc.status.as_str(),
            status_label: doc.status_label(),
            engine: doc.engine.as_str().into(),
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

/// One page's text on the document page, in fragments so that search hits can be marked.
pub struct PageSection {
    pub number: i32,
    pub badge: String,
    pub details: String,
    pub fragments: Vec<Fragment>,
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
            source: page.source.as_str().into(),
            fragments: vec![Fragment {
                text: page.text,
                hit: false,
            }],
            char_count: page.char_count,
            error: page.error,
        }
    }
}

impl PageSection {
    /// The sections of `pages`, the text of those in `highlights` with its hits marked.
    pub fn highlighted(pages: Vec<Page>, highlights: Option<Vec<(i32, Highlighted)>>) -> Vec<Self> {
        let mut highlights: std::collections::HashMap<i32, Highlighted> =
            highlights.unwrap_or_default().into_iter().collect();
        pages
            .into_iter()
            .map(|page| {
                let marked = highlights.remove(&page.number);
                let mut section = PageSection::from(page);
                if let Some(marked) = marked.filter(|m| !m.0.is_empty()) {
                    section.fragments = marked.0;
                }
                section
            })
            .collect()
    }
}

/// "invoice" is on pages 3, 7: the banner of a document page opened from a search.
pub struct SearchNote {
    pub q: String,
    pub back_link: String,
    pub pages: Vec<i32>,
}

impl SearchNote {
    /// The banner for the search `q`, which matched `found`.
    pub fn new(q: &str, found: &[(i32, Highlighted)]) -> Self {
        SearchNote {
            q: q.to_owned(),
            back_link: format!(
                "/search?{}",
                serde_urlencoded::to_string([("q", q)]).unwrap_or_default()
            ),
            pages: found.iter().map(|(n, _)| *n).collect(),
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
            id: token.id.into(),
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

/// One webhook in the list and at the head of its page.
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub created_at: String,
}

impl From<crate::domain::webhook::Webhook> for WebhookRow {
    fn from(webhook: crate::domain::webhook::Webhook) -> Self {
        WebhookRow {
            id: webhook.id.into(),
            url: webhook.url,
            description: webhook.description,
            created_at: webhook.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// One delivery in a webhook's log.
pub struct DeliveryRow {
    pub id: i64,
    pub event: &'static str,
    pub document_id: Option<String>,
    pub file_name: String,
    pub status: &'static str,
    pub attempts: i32,
    /// What stands now, in words: "delivered", "next try at 12:03:10 UTC", the last error.
    pub summary: String,
    pub created_at: String,
    pub pending: bool,
    pub log: Vec<AttemptRow>,
}

/// One attempt of a delivery.
pub struct AttemptRow {
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: String,
    pub error: String,
    pub response_excerpt: String,
}

impl From<crate::domain::webhook::Delivery> for DeliveryRow {
    fn from(d: crate::domain::webhook::Delivery) -> Self {
        use crate::domain::webhook::DeliveryStatus;
        let last = d.last_error.clone().unwrap_or_default();
        let summary = match d.status {
            DeliveryStatus::Delivered => match d.last_status_code {
                Some(code) => format!("delivered ({code})"),
                None => "delivered".into(),
            },
            DeliveryStatus::Failed => format!("gave up: {last}"),
            DeliveryStatus::Sending => "being sent".into(),
            DeliveryStatus::Queued if d.attempts == 0 => "waiting to be sent".into(),
            DeliveryStatus::Queued => format!(
                "{last}; next try at {}",
                d.run_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        };
        let (document_id, file_name) = match d.document {
            Some(doc) => (Some(doc.id), doc.file_name),
            None => (None, String::new()),
        };
        DeliveryRow {
            id: d.id,
            event: d.event.as_str(),
            document_id,
            file_name,
            status: d.status.as_str(),
            attempts: d.attempts,
            summary,
            created_at: d.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            pending: matches!(d.status, DeliveryStatus::Queued | DeliveryStatus::Sending),
            log: d
                .log
                .into_iter()
                .map(|a| AttemptRow {
                    started_at: a.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    duration_ms: a.duration_ms,
                    status_code: a.status_code.map(|c| c.to_string()).unwrap_or_default(),
                    error: a.error.unwrap_or_default(),
                    response_excerpt: a.response_excerpt.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A choice of a `<select>`.
pub struct SelectOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

fn options(choices: &[(&'static str, &'static str)], current: Option<&str>) -> Vec<SelectOption> {
    choices
        .iter()
        .map(|&(value, label)| SelectOption {
            value,
            label,
            selected: current.unwrap_or_default() == value,
        })
        .collect()
}

/// The search form, filled in with what was sent.
pub struct SearchForm {
    pub q: String,
    pub statuses: Vec<SelectOption>,
    pub engines: Vec<SelectOption>,
    pub sorts: Vec<SelectOption>,
    pub from: String,
    pub to: String,
}

impl From<&crate::app::search::SearchParams> for SearchForm {
    fn from(params: &crate::app::search::SearchParams) -> Self {
        SearchForm {
            q: params.q.clone().unwrap_or_default(),
            statuses: options(
                &[
                    ("", "Any status"),
                    ("done", "Done"),
                    ("processing", "Processing"),
                    ("queued", "Queued"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                params.status.as_deref(),
            ),
            engines: options(
                &[
                    ("", "Any engine"),
                    ("local", "Local"),
                    ("textract", "Textract"),
                    ("hybrid", "Hybrid"),
                ],
                params.engine.as_deref(),
            ),
            sorts: options(
                &[("relevance", "Best match first"), ("date", "Newest first")],
                params.sort.as_deref().or(Some("relevance")),
            ),
            from: params.from.clone().unwrap_or_default(),
            to: params.to.clone().unwrap_or_default(),
        }
    }
}

/// A matching document on the search page.
pub struct SearchResultRow {
    pub id: String,
    pub file_name: String,
    pub link: String,
    pub details: String,
    pub hits: Vec<HitRow>,
}

/// One of its best pages, with the passage around the hits.
pub struct HitRow {
    pub page: i32,
    pub link: String,
    pub fragments: Vec<crate::domain::search::Fragment>,
}

impl SearchResultRow {
    /// The row of `found`, its links carrying `q` so that the hits are highlighted there.
    pub fn new(found: crate::app::search::DocumentResult, q: &str) -> Self {
        let doc = &found.document;
        let first_page = found.hits.first().map_or(1, |h| h.page_number);
        let matching = match found.matching_pages {
            1 => "1 matching page".to_owned(),
            n => format!("{n} matching pages"),
        };
        SearchResultRow {
            link: crate::http::links::page_link(doc.id.as_str(), q, first_page),
            details: format!(
                "{matching} of {} · {} · uploaded {}",
                doc.page_count,
                doc.status_label(),
                doc.created_at.format("%Y-%m-%d %H:%M UTC")
            ),
            id: doc.id.to_string(),
            file_name: doc.file_name.clone(),
            hits: found
                .hits
                .into_iter()
                .map(|hit| HitRow {
                    page: hit.page_number,
                    link: crate::http::links::page_link(doc.id.as_str(), q, hit.page_number),
                    fragments: hit.snippet.0,
                })
                .collect(),
        }
    }
}
