//! Persistence: the [`Store`] trait and its two implementations. All SQL lives in this folder.
//!
//! The Rust code of both backends is written once (in `sql_store.rs`, as a macro over the
//! pool type); each backend file holds only the SQL text that differs, so the two cannot
//! drift apart in behaviour without a contract test noticing.

use std::{path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Document, Page};

#[macro_use]
mod sql_store;
#[macro_use]
pub mod accounts;
#[macro_use]
pub mod webhooks;
pub mod postgres;
pub mod search;
pub mod sqlite;

/// Bytes of the original stored per row of the blob table: big enough to be cheap to
/// insert, small enough that a download never holds more than this in memory.
pub const BLOB_CHUNK_BYTES: usize = 1024 * 1024;

/// Storage errors, as the layers above need to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. the same file uploaded twice at once).
    #[error("conflicts with an existing row")]
    Conflict,
    /// Anything else: the database is down, a query is wrong, a file could not be read.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict,
            other => Error::Other(other.into()),
        }
    }
}

/// Storage results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a sealed secret lives, as the associated data it is sealed with: a sealed value
/// moved to another row or column does not open.
pub(crate) fn secret_row(column: &str, id: &str) -> String {
    format!("{column} {id}")
}

/// `secret` sealed for `row` (see [`crate::sealing`]); an error when no key is configured.
pub(crate) fn seal(
    keyring: Option<&crate::sealing::Keyring>,
    secret: &SecretString,
    row: &str,
) -> Result<String> {
    let keyring = keyring.ok_or_else(|| {
        Error::Other(anyhow::anyhow!(
            "no key to seal secrets with is configured (LECTOR_SECRET_KEY): a secret cannot be stored"
        ))
    })?;
    Ok(keyring.seal(secret.expose_secret(), row))
}

/// The secret stored for `row`: opened when sealed, as it is when a Lector that did not seal
/// stored it (until [`Store::seal_stored_secrets`] seals it).
pub(crate) fn open(
    keyring: Option<&crate::sealing::Keyring>,
    stored: String,
    row: &str,
) -> Result<SecretString> {
    if !crate::sealing::is_sealed(&stored) {
        return Ok(SecretString::from(stored));
    }
    let keyring = keyring.ok_or_else(|| {
        Error::Other(anyhow::anyhow!(
            "the secret of {row} is sealed and no key is configured (LECTOR_SECRET_KEY)"
        ))
    })?;
    keyring
        .open(&stored, row)
        .map_err(|e| Error::Other(anyhow::anyhow!("the secret of {row} cannot be opened: {e}")))
}

/// What `stored` should become under the current key, or `None` when it already is sealed
/// under it.
pub(crate) fn reseal(
    keyring: &crate::sealing::Keyring,
    stored: String,
    row: &str,
) -> Result<Option<String>> {
    if keyring.is_current(&stored) {
        return Ok(None);
    }
    let secret = open(Some(keyring), stored, row)?;
    Ok(Some(keyring.seal(secret.expose_secret(), row)))
}

/// Ids as a JSON array: how both backends take a list in one parameter (Postgres with
/// `jsonb_array_elements_text`, SQLite with `json_each`).
pub(crate) fn json_list<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// A document about to be stored, with its original in a file on disk.
#[derive(Debug)]
pub struct NewDocument {
    /// UUIDv7.
    pub id: String,
    /// Cleaned file name.
    pub file_name: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Pages in the PDF.
    pub page_count: i32,
    /// Engine to use.
    pub engine: crate::domain::Engine,
    /// The user password that opens the PDF, kept so that workers (and re-process) can.
    pub pdf_password: Option<SecretString>,
    /// The S3 key of the original when it is stored on S3 (not in the database).
    pub blob_key: Option<String>,
    /// Tries before giving up.
    pub max_attempts: i32,
    /// When and in which languages to OCR.
    pub ocr: crate::domain::ocr::OcrChoice,
    /// The account it belongs to (none only for documents ingested before any account exists).
    pub owner_id: Option<String>,
}

/// A page about to be stored.
#[derive(Debug, Clone)]
pub struct NewPage {
    /// 1-based page number.
    pub number: i32,
    /// Extracted text.
    pub text: String,
    /// Engine that produced it.
    pub source: crate::domain::PageSource,
    /// Milliseconds spent on it.
    pub extraction_ms: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The engine's mean confidence for the page (0–100), when it reports one.
    pub confidence: Option<f64>,
    /// The resolution an OCR'd page was read at.
    pub dpi: Option<i32>,
    /// Why the page went to OCR.
    pub ocr_reason: Option<String>,
}

/// A job a worker has claimed and now holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedJob {
    /// Job id.
    pub id: i64,
    /// The document to extract.
    pub document_id: String,
    /// Tries so far, including this one.
    pub attempts: i32,
    /// Tries allowed.
    pub max_attempts: i32,
    /// Why the previous attempt failed, if one did.
    pub last_error: Option<String>,
    /// The id of the job at an external service (Textract), once started.
    pub external_id: Option<String>,
}

/// Counts of jobs by state, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be claimed (including retries not yet due).
    pub queued: i64,
    /// Claimed by a worker.
    pub running: i64,
}

pub use accounts::{AccountStore, NewApiToken, NewUser};

/// Everything Lector stores. One implementation per database backend.
#[async_trait]
pub trait Store:
    AccountStore + search::SearchStore + webhooks::WebhookStore + Send + Sync + 'static
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Applies the migrations of this backend.
    async fn migrate(&self) -> Result<()>;
    /// Answers a trivial query (health checks).
    async fn ping(&self) -> Result<()>;
    /// How many of this build's migrations the database has not applied (readiness).
    async fn pending_migrations(&self) -> Result<usize>;

    /// Stores a document, its original bytes (read from `original`, unless they live on S3)
    /// and its extraction job in one transaction: either all of it is stored or nothing is.
    async fn create_document(&self, doc: &NewDocument, original: Option<&Path>)
    -> Result<Document>;
    /// How many documents keep their original under this S3 key.
    async fn count_documents_with_blob_key(&self, key: &str) -> Result<i64>;
    /// The document of `owner_id` whose original has this SHA-256, if any.
    async fn find_document_by_sha256(
        &self,
        owner_id: Option<&str>,
        sha256: &str,
    ) -> Result<Option<Document>>;
    /// One document, whoever owns it (the HTTP layer checks ownership).
    async fn get_document(&self, id: &str) -> Result<Document>;
    /// The documents of these ids that exist, in no particular order.
    async fn documents_by_ids(&self, ids: &[String]) -> Result<Vec<Document>>;
    /// `owner_id`'s documents, newest first, strictly older than the document `before`
    /// (cursor pagination).
    async fn list_documents(
        &self,
        owner_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Document>>;
    /// `owner_id`'s documents, newest first, by offset (numbered pages in the web UI).
    async fn list_documents_at(
        &self,
        owner_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Document>>;
    /// How many documents `owner_id` has.
    async fn count_documents(&self, owner_id: &str) -> Result<i64>;
    /// Every extracted page of a document, in page order.
    async fn list_pages(&self, id: &str) -> Result<Vec<Page>>;
    /// Numbers of the pages already stored (a resumed job skips them).
    async fn stored_page_numbers(&self, id: &str) -> Result<Vec<i32>>;
    /// How many chunks the original is stored in.
    async fn blob_chunk_count(&self, id: &str) -> Result<i64>;
    /// One chunk of the original, `seq` counting from 0.
    async fn blob_chunk(&self, id: &str, seq: i64) -> Result<Vec<u8>>;
    /// The password the user gave for an encrypted PDF.
    async fn document_password(&self, id: &str) -> Result<Option<SecretString>>;
    /// Removes a document with its original, pages and jobs.
    async fn delete_document(&self, id: &str) -> Result<()>;
    /// Clears the pages and queues the document again (re-process).
    async fn requeue_document(
        &self,
        id: &str,
        max_attempts: i32,
        ocr: Option<&crate::domain::ocr::OcrChoice>,
    ) -> Result<()>;
    /// Cancels a queued or running document. False when it had already finished.
    async fn cancel_document(&self, id: &str) -> Result<bool>;

    /// Atomically claims the next due job (or one whose lease expired) for `worker`.
    async fn claim_job(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>>;
    /// Extends the lease. False when the job is no longer this worker's (cancelled, taken over).
    async fn heartbeat(&self, job: &ClaimedJob, worker: &str, lease: Duration) -> Result<bool>;
    /// Marks the document as being processed.
    async fn start_document(&self, job: &ClaimedJob, worker: &str) -> Result<bool>;
    /// Stores `pages` in one transaction, unless the job is no longer this worker's (then
    /// stores none and returns false). A page already stored keeps its first copy.
    async fn insert_pages(&self, job: &ClaimedJob, worker: &str, pages: &[NewPage])
    -> Result<bool>;
    /// The job succeeded: the document is done. This and [`Store::fail_job`] queue the
    /// owner's webhooks in the same transaction.
    async fn complete_job(&self, job: &ClaimedJob, worker: &str) -> Result<bool>;
    /// The attempt failed but may succeed later: queue it again after `delay`.
    async fn retry_job(
        &self,
        job: &ClaimedJob,
        worker: &str,
        error: &str,
        delay: Duration,
    ) -> Result<()>;
    /// The job failed for good: the document is failed with `error`.
    async fn fail_job(&self, job: &ClaimedJob, worker: &str, error: &str) -> Result<()>;
    /// Hands the job back to the queue without counting the attempt, due again after
    /// `delay` (graceful shutdown; no Textract capacity free).
    async fn release_job(&self, job: &ClaimedJob, worker: &str, delay: Duration) -> Result<()>;
    /// Records the external service's job id (kept across attempts, cleared by re-process).
    async fn set_external_id(
        &self,
        job: &ClaimedJob,
        worker: &str,
        external_id: &str,
    ) -> Result<bool>;
    /// Makes sure slots 1..=`cap` exist for Textract jobs in flight.
    async fn ensure_textract_slots(&self, cap: u32) -> Result<()>;
    /// Takes one of the first `cap` slots for `job` (or confirms the one it holds). False
    /// when all are held by running jobs.
    async fn claim_textract_slot(&self, job: &ClaimedJob, worker: &str, cap: u32) -> Result<bool>;
    /// Frees the slot `job` holds, if any.
    async fn release_textract_slot(&self, job: &ClaimedJob) -> Result<()>;
    /// Jobs waiting and running.
    async fn queue_counts(&self) -> Result<QueueCounts>;
    /// When the job that has waited longest became due (queue age, for `/metrics`).
    async fn oldest_due_job(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
    /// How long the job that has waited longest has waited, in seconds (0 when none waits).
    async fn queue_age_seconds(&self) -> Result<f64> {
        Ok(self.oldest_due_job().await?.map_or(0.0, |due| {
            (chrono::Utc::now() - due).as_seconds_f64().max(0.0)
        }))
    }
    /// Records Textract's completion notice for job `textract_job_id` (`SUCCEEDED`,
    /// `PARTIAL_SUCCESS`, `FAILED`…). A notice delivered twice is recorded once.
    async fn record_textract_completion(&self, textract_job_id: &str, status: &str) -> Result<()>;
    /// The recorded completion status of a Textract job, if its notice has arrived.
    async fn textract_completion(&self, textract_job_id: &str) -> Result<Option<String>>;
    /// Documents per status (for `/metrics`).
    async fn documents_by_status(&self) -> Result<Vec<(String, i64)>>;
    /// Stored pages per source engine, over all documents (for `/metrics`).
    async fn pages_by_source(&self) -> Result<Vec<(String, i64)>>;
    /// Pages of one document per source engine (for its cost).
    async fn document_pages_by_source(&self, id: &str) -> Result<Vec<(String, i64)>>;
    /// Counts `pages` of the content `sha256` against this month's Textract budget. False
    /// when they would pass `budget`; true, without counting again, when this content was
    /// already counted this month.
    async fn reserve_textract_pages(
        &self,
        sha256: &str,
        document_id: &str,
        pages: i32,
        budget: i64,
    ) -> Result<bool>;
    /// Pages sent to Textract since the start of this calendar month (UTC).
    async fn textract_pages_this_month(&self) -> Result<i64>;
    /// Sets (or clears) the note a document shows, such as why it was read locally.
    async fn set_document_note(&self, id: &str, note: Option<&str>) -> Result<()>;
    /// Seals, under the current key, every stored secret that is not yet: plaintext left by
    /// a Lector that did not seal, and values sealed under a previous key. Returns how many
    /// were sealed again; an error when no key is configured.
    async fn seal_stored_secrets(&self) -> Result<u64>;
}

/// The store for `database_url`, connected and migrated.
pub async fn connect(
    database_url: &SecretString,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    let url = database_url.expose_secret();
    let store: Arc<dyn Store> = if url.starts_with("postgres") {
        Arc::new(postgres::PostgresStore::connect(url, max_connections).await?)
    } else {
        Arc::new(sqlite::SqliteStore::connect(url, max_connections).await?)
    };
    Ok(store)
}

/// A row of the documents query, as both backends return it.
#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: String,
    file_name: String,
    sha256: String,
    size_bytes: i64,
    page_count: i32,
    pages_done: i64,
    pages_failed: i64,
    status: String,
    error: Option<String>,
    engine: String,
    blob_key: Option<String>,
    owner_id: Option<String>,
    ocr_mode: String,
    ocr_languages: String,
    note: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<DocumentRow> for Document {
    type Error = Error;

    fn try_from(row: DocumentRow) -> Result<Self> {
        let status = crate::domain::DocumentStatus::parse(&row.status).ok_or_else(|| {
            anyhow::anyhow!("unknown document status {:?} in the database", row.status)
        })?;
        let engine = crate::domain::Engine::parse(&row.engine)
            .ok_or_else(|| anyhow::anyhow!("unknown engine {:?} in the database", row.engine))?;
        Ok(Document {
            id: row.id,
            file_name: row.file_name,
            sha256: row.sha256,
            size_bytes: row.size_bytes,
            page_count: row.page_count,
            pages_done: row.pages_done,
            pages_failed: row.pages_failed,
            status,
            error: row.error,
            engine,
            blob_key: row.blob_key,
            owner_id: row.owner_id,
            ocr: crate::domain::ocr::OcrChoice {
                mode: crate::domain::ocr::OcrMode::parse(&row.ocr_mode).ok_or_else(|| {
                    anyhow::anyhow!("unknown OCR mode {:?} in the database", row.ocr_mode)
                })?,
                languages: row.ocr_languages,
            },
            note: row.note,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

/// A row of the pages query.
#[derive(sqlx::FromRow)]
struct PageRow {
    page_number: i32,
    text: String,
    source: String,
    char_count: i32,
    extraction_ms: i64,
    error: Option<String>,
    confidence: Option<f64>,
    dpi: Option<i32>,
    ocr_reason: Option<String>,
}

impl TryFrom<PageRow> for Page {
    type Error = Error;

    fn try_from(row: PageRow) -> Result<Self> {
        let source = crate::domain::PageSource::parse(&row.source).ok_or_else(|| {
            anyhow::anyhow!("unknown page source {:?} in the database", row.source)
        })?;
        Ok(Page {
            number: row.page_number,
            text: row.text,
            source,
            char_count: row.char_count,
            extraction_ms: row.extraction_ms,
            error: row.error,
            confidence: row.confidence,
            dpi: row.dpi,
            ocr_reason: row.ocr_reason,
        })
    }
}

/// The columns every document query selects, with page progress counted from `pages`.
const DOCUMENT_COLUMNS: &str = "d.id, d.file_name, d.sha256, d.size_bytes, d.page_count, d.status, \
     d.error, d.engine, d.blob_key, d.owner_id, d.ocr_mode, d.ocr_languages, d.note, d.created_at, d.started_at, d.finished_at, \
     (select count(*) from pages p where p.document_id = d.id) as pages_done, \
     (select count(*) from pages p where p.document_id = d.id and p.error is not null) as pages_failed";
