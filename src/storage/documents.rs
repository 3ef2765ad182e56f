//! Documents as the library shows them: stored with their original and job, listed,
//! re-processed, cancelled, deleted. Their pages are read in `pages.rs`.

use crate::domain::DocumentId;
use crate::domain::UserId;
use std::path::Path;

use async_trait::async_trait;
use secrecy::SecretString;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Error, Result, sql::Backend, sql::SqlStore};
use crate::domain::{
    Document, DocumentStatus, Engine,
    ocr::{OcrChoice, OcrMode},
};

/// A document about to be stored, with its original in a file on disk.
#[derive(Debug)]
pub struct NewDocument {
    /// UUIDv7.
    pub id: DocumentId,
    /// Cleaned file name.
    pub file_name: String,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Pages in the PDF.
    pub page_count: i32,
    /// Engine to use.
    pub engine: Engine,
    /// The user password that opens the PDF, kept so that workers (and re-process) can.
    pub pdf_password: Option<SecretString>,
    /// The S3 key of the original when it is stored on S3 (not in the database).
    pub blob_key: Option<String>,
    /// Tries before giving up.
    pub max_attempts: i32,
    /// When and in which languages to OCR.
    pub ocr: OcrChoice,
    /// The account it belongs to (none only for documents ingested before any account exists).
    pub owner_id: Option<UserId>,
}

/// Storage of documents.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Stores a document, its original bytes (read from `original`, unless they live on S3)
    /// and its extraction job in one transaction: either all of it is stored or nothing is.
    async fn create_document(&self, doc: &NewDocument, original: Option<&Path>)
    -> Result<Document>;
    /// The document of `owner_id` whose original has this SHA-256, if any.
    async fn find_document_by_sha256(
        &self,
        owner_id: Option<&UserId>,
        sha256: &str,
    ) -> Result<Option<Document>>;
    /// One document, whoever owns it (the HTTP layer checks ownership).
    async fn get_document(&self, id: &DocumentId) -> Result<Document>;
    /// The documents of these ids that exist, in no particular order.
    async fn documents_by_ids(&self, ids: &[String]) -> Result<Vec<Document>>;
    /// `owner_id`'s documents, newest first, strictly older than the document `before`
    /// (cursor pagination).
    async fn list_documents(
        &self,
        owner_id: &UserId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Document>>;
    /// `owner_id`'s documents, newest first, by offset (numbered pages in the web UI).
    async fn list_documents_at(
        &self,
        owner_id: &UserId,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Document>>;
    /// How many documents `owner_id` has.
    async fn count_documents(&self, owner_id: &UserId) -> Result<i64>;
    /// The password the user gave for an encrypted PDF.
    async fn document_password(&self, id: &DocumentId) -> Result<Option<SecretString>>;
    /// Removes a document with its original, pages and jobs.
    async fn delete_document(&self, id: &DocumentId) -> Result<()>;
    /// Clears the pages and queues the document again (re-process).
    async fn requeue_document(
        &self,
        id: &DocumentId,
        max_attempts: i32,
        ocr: Option<&OcrChoice>,
    ) -> Result<()>;
    /// Cancels a queued or running document. False when it had already finished.
    async fn cancel_document(&self, id: &DocumentId) -> Result<bool>;
    /// Sets (or clears) the note a document shows, such as why it was read locally.
    async fn set_document_note(&self, id: &DocumentId, note: Option<&str>) -> Result<()>;
}

/// A row of the documents query, as both backends return it.
#[derive(FromRow)]
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
        let status = DocumentStatus::parse(&row.status).ok_or_else(|| {
            anyhow::anyhow!("unknown document status {:?} in the database", row.status)
        })?;
        let engine = Engine::parse(&row.engine)
            .ok_or_else(|| anyhow::anyhow!("unknown engine {:?} in the database", row.engine))?;
        let mode = OcrMode::parse(&row.ocr_mode).ok_or_else(|| {
            anyhow::anyhow!("unknown OCR mode {:?} in the database", row.ocr_mode)
        })?;
        Ok(Document {
            id: row.id.into(),
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
            owner_id: row.owner_id.map(UserId::from),
            ocr: OcrChoice {
                mode,
                languages: row.ocr_languages,
            },
            note: row.note,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

/// `select` of every document column, with page progress counted from `pages`, from
/// `documents d` followed by `rest` (a where clause, an order).
fn select_documents(rest: &str) -> String {
    format!(
        "select d.id, d.file_name, d.sha256, d.size_bytes, d.page_count, d.status, \
         d.error, d.engine, d.blob_key, d.owner_id, d.ocr_mode, d.ocr_languages, d.note, d.created_at, d.started_at, d.finished_at, \
         (select count(*) from pages p where p.document_id = d.id) as pages_done, \
         (select count(*) from pages p where p.document_id = d.id and p.error is not null) as pages_failed \
         from documents d {rest}"
    )
}

/// Rows into documents, refusing a row with a value this build does not know.
fn documents(rows: Vec<DocumentRow>) -> Result<Vec<Document>> {
    rows.into_iter().map(TryInto::try_into).collect()
}

#[async_trait]
impl<DB: Backend> DocumentStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> chrono::DateTime<chrono::Utc>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_document(
        &self,
        doc: &NewDocument,
        original: Option<&Path>,
    ) -> Result<Document> {
        let mut file = match original {
            Some(path) => Some(
                tokio::fs::File::open(path)
                    .await
                    .map_err(|e| anyhow::Error::new(e).context("opening the uploaded file"))?,
            ),
            None => None,
        };
        let password = doc
            .pdf_password
            .as_ref()
            .map(|p| {
                let row = super::secret_row("documents.pdf_password", doc.id.as_str());
                super::seal(self.keyring(), p, &row)
            })
            .transpose()?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "insert into documents \
             (id, file_name, sha256, size_bytes, page_count, status, engine, pdf_password, blob_key, \
             ocr_mode, ocr_languages, owner_id) \
             values ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11)",
        )
        .bind(doc.id.as_str())
        .bind(&doc.file_name)
        .bind(&doc.sha256)
        .bind(doc.size_bytes)
        .bind(doc.page_count)
        .bind(doc.engine.as_str())
        .bind(password)
        .bind(&doc.blob_key)
        .bind(doc.ocr.mode.as_str())
        .bind(&doc.ocr.languages)
        .bind(doc.owner_id.as_ref().map(UserId::as_str))
        .execute(&mut *tx)
        .await?;
        if let Some(file) = file.as_mut() {
            super::originals::store_original::<DB>(&mut tx, doc.id.as_str(), file).await?;
        }
        sqlx::query(
            "insert into jobs (kind, document_id, status, max_attempts) values ('extract', $1, 'queued', $2)",
        )
        .bind(doc.id.as_str())
        .bind(doc.max_attempts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_document(&doc.id).await
    }

    async fn find_document_by_sha256(
        &self,
        owner_id: Option<&UserId>,
        sha256: &str,
    ) -> Result<Option<Document>> {
        let sql =
            select_documents("where d.sha256 = $1 and coalesce(d.owner_id, '') = coalesce($2, '')");
        let row: Option<DocumentRow> = sqlx::query_as(&sql)
            .bind(sha256)
            .bind(owner_id.map(UserId::as_str))
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn get_document(&self, id: &DocumentId) -> Result<Document> {
        let sql = select_documents("where d.id = $1");
        let row: DocumentRow = sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn documents_by_ids(&self, ids: &[String]) -> Result<Vec<Document>> {
        let sql = select_documents(&format!("where d.id in ({})", DB::JSON_LIST));
        let rows = sqlx::query_as(&sql)
            .bind(super::json_list(ids))
            .fetch_all(&self.pool)
            .await?;
        documents(rows)
    }

    async fn list_documents(
        &self,
        owner_id: &UserId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Document>> {
        let rows = match before {
            Some(cursor) => {
                let sql = select_documents(
                    "where d.owner_id = $3 and d.id < $1 order by d.id desc limit $2",
                );
                sqlx::query_as(&sql)
                    .bind(cursor)
                    .bind(limit)
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = select_documents("where d.owner_id = $2 order by d.id desc limit $1");
                sqlx::query_as(&sql)
                    .bind(limit)
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        documents(rows)
    }

    async fn list_documents_at(
        &self,
        owner_id: &UserId,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Document>> {
        let sql = select_documents("where d.owner_id = $3 order by d.id desc limit $1 offset $2");
        let rows = sqlx::query_as(&sql)
            .bind(limit)
            .bind(offset)
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?;
        documents(rows)
    }

    async fn count_documents(&self, owner_id: &UserId) -> Result<i64> {
        Ok(
            sqlx::query_scalar("select count(*) from documents where owner_id = $1")
                .bind(owner_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn document_password(&self, id: &DocumentId) -> Result<Option<SecretString>> {
        let password: Option<String> =
            sqlx::query_scalar("select pdf_password from documents where id = $1")
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await?;
        let row = super::secret_row("documents.pdf_password", id.as_str());
        password
            .map(|stored| super::open(self.keyring(), stored, &row))
            .transpose()
    }

    async fn delete_document(&self, id: &DocumentId) -> Result<()> {
        let done = sqlx::query("delete from documents where id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn requeue_document(
        &self,
        id: &DocumentId,
        max_attempts: i32,
        ocr: Option<&OcrChoice>,
    ) -> Result<()> {
        let now = DB::NOW;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!(
            "update documents set status = 'queued', error = null, started_at = null, \
             finished_at = null, note = null, ocr_mode = coalesce($2, ocr_mode), \
             ocr_languages = coalesce($3, ocr_languages), updated_at = {now} where id = $1"
        ))
        .bind(id.as_str())
        .bind(ocr.map(|o| o.mode.as_str()))
        .bind(ocr.map(|o| o.languages.as_str()))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&done) == 0 {
            return Err(Error::NotFound);
        }
        sqlx::query("delete from pages where document_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "insert into jobs (kind, document_id, status, max_attempts) values ('extract', $1, 'queued', $2) \
             on conflict (kind, document_id) do update set status = 'queued', attempts = 0, \
             max_attempts = excluded.max_attempts, run_at = {now}, locked_by = null, \
             locked_until = null, last_error = null, external_id = null, updated_at = {now}"
        ))
        .bind(id.as_str())
        .bind(max_attempts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn cancel_document(&self, id: &DocumentId) -> Result<bool> {
        let now = DB::NOW;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!(
            "update documents set status = 'cancelled', finished_at = {now}, updated_at = {now} \
             where id = $1 and status in ('queued', 'processing')"
        ))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&done) == 0 {
            let exists: i64 = sqlx::query_scalar("select count(*) from documents where id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            return if exists == 0 {
                Err(Error::NotFound)
            } else {
                Ok(false)
            };
        }
        sqlx::query(&format!(
            "update jobs set status = 'cancelled', locked_by = null, locked_until = null, \
             updated_at = {now} where document_id = $1"
        ))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_document_note(&self, id: &DocumentId, note: Option<&str>) -> Result<()> {
        sqlx::query("update documents set note = $2 where id = $1")
            .bind(id.as_str())
            .bind(note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
