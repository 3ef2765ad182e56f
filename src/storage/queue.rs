//! The extraction queue: jobs claimed with a lease a heartbeat extends, and what a worker
//! holding one writes (pages, the outcome). Every write checks the job is still the
//! worker's, so a worker whose lease ran out changes nothing.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Result, sql::Backend, sql::SqlStore};
use crate::domain::PageSource;

/// A job a worker has claimed and now holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimedJob {
    /// Job id.
    pub id: i64,
    /// The document to extract.
    pub document_id: crate::domain::DocumentId,
    /// Tries so far, including this one.
    pub attempts: i32,
    /// Tries allowed.
    pub max_attempts: i32,
    /// Why the previous attempt failed, if one did.
    pub last_error: Option<String>,
    /// The id of the job at an external service (Textract), once started.
    pub external_id: Option<String>,
}

/// A page about to be stored.
#[derive(Debug, Clone)]
pub struct NewPage {
    /// 1-based page number.
    pub number: i32,
    /// Extracted text.
    pub text: String,
    /// Engine that produced it.
    pub source: PageSource,
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

/// The job queue, as workers use it.
#[async_trait]
pub trait QueueStore: Send + Sync {
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
    /// The job succeeded: the document is done. This and [`QueueStore::fail_job`] queue the
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
}

/// True while job `$1` is still worker `$2`'s.
pub(super) const JOB_IS_OURS: &str =
    "exists (select 1 from jobs j where j.id = $1 and j.locked_by = $2 and j.status = 'running')";

/// Puts the document of a job handed back to the queue back to `queued` (error `$2`).
fn requeue_document_status<DB: Backend>() -> String {
    format!(
        "update documents set status = 'queued', error = $2, updated_at = {now} where id = $1",
        now = DB::NOW
    )
}

#[async_trait]
impl<DB: Backend> QueueStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn claim_job(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let sql = format!(
            "update jobs set status = 'running', attempts = attempts + 1, locked_by = $1, \
             locked_until = {later}, updated_at = {now} \
             where id = (select id from jobs \
               where (status = 'queued' and run_at <= {now}) or (status = 'running' and locked_until < {now}) \
               order by run_at, id limit 1 {skip}) \
             returning id, document_id, attempts, max_attempts, last_error, external_id",
            later = DB::later("$2"),
            now = DB::NOW,
            skip = DB::SKIP_LOCKED,
        );
        Ok(sqlx::query_as(&sql)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn heartbeat(&self, job: &ClaimedJob, worker: &str, lease: Duration) -> Result<bool> {
        let sql = format!(
            "update jobs set locked_until = {later}, updated_at = {now} \
             where id = $1 and locked_by = $2 and status = 'running'",
            later = DB::later("$3"),
            now = DB::NOW,
        );
        let done = sqlx::query(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn start_document(&self, job: &ClaimedJob, worker: &str) -> Result<bool> {
        let sql = format!(
            "update documents set status = 'processing', error = null, finished_at = null, \
             started_at = coalesce(started_at, {now}), updated_at = {now} \
             where id = $3 and {JOB_IS_OURS}",
            now = DB::NOW,
        );
        let done = sqlx::query(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(&job.document_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_pages(
        &self,
        job: &ClaimedJob,
        worker: &str,
        pages: &[NewPage],
    ) -> Result<bool> {
        let insert = format!(
            "insert into pages (document_id, page_number, text, source, char_count, extraction_ms, error, confidence, dpi, ocr_reason) \
             select $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 where {JOB_IS_OURS} \
             on conflict (document_id, page_number) do nothing"
        );
        let ours = format!("select count(*) from jobs j where {JOB_IS_OURS}");
        let mut tx = self.begin_write().await?;
        for page in pages {
            let done = sqlx::query(&insert)
                .bind(job.id)
                .bind(worker)
                .bind(&job.document_id)
                .bind(page.number)
                .bind(&page.text)
                .bind(page.source.as_str())
                .bind(page.text.chars().count() as i32)
                .bind(page.extraction_ms)
                .bind(&page.error)
                .bind(page.confidence)
                .bind(page.dpi)
                .bind(&page.ocr_reason)
                .execute(&mut *tx)
                .await?;
            if DB::rows_affected(&done) == 1 {
                continue;
            }
            // Nothing inserted: either the page was already there (a resumed job) or the job
            // is no longer ours. Only the second should stop the worker (and the rollback on
            // drop stores none of these pages).
            let still_ours: i64 = sqlx::query_scalar(&ours)
                .bind(job.id)
                .bind(worker)
                .fetch_one(&mut *tx)
                .await?;
            if still_ours != 1 {
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn complete_job(&self, job: &ClaimedJob, worker: &str) -> Result<bool> {
        self.finish(job, worker, "done", None).await
    }

    async fn retry_job(
        &self,
        job: &ClaimedJob,
        worker: &str,
        error: &str,
        delay: Duration,
    ) -> Result<()> {
        let sql = format!(
            "update jobs set status = 'queued', last_error = $3, run_at = {later}, locked_by = null, \
             locked_until = null, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'",
            later = DB::later("$4"),
            now = DB::NOW,
        );
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(error)
            .bind(delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 1 {
            let message = format!("attempt {} failed, will retry: {error}", job.attempts);
            sqlx::query(&requeue_document_status::<DB>())
                .bind(&job.document_id)
                .bind(message)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fail_job(&self, job: &ClaimedJob, worker: &str, error: &str) -> Result<()> {
        self.finish(job, worker, "failed", Some(error))
            .await
            .map(|_| ())
    }

    async fn release_job(&self, job: &ClaimedJob, worker: &str, delay: Duration) -> Result<()> {
        let sql = format!(
            "update jobs set status = 'queued', attempts = attempts - 1, run_at = {later}, locked_by = null, \
             locked_until = null, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'",
            later = DB::later("$3"),
            now = DB::NOW,
        );
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(delay.as_secs_f64())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 1 {
            sqlx::query(&requeue_document_status::<DB>())
                .bind(&job.document_id)
                .bind(None::<String>)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_external_id(
        &self,
        job: &ClaimedJob,
        worker: &str,
        external_id: &str,
    ) -> Result<bool> {
        let sql = format!(
            "update jobs set external_id = $3, updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'",
            now = DB::NOW,
        );
        let done = sqlx::query(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(external_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) == 1)
    }
}

impl<DB: Backend> SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
{
    /// Ends the job (`done` or `failed`) and the document with it, if still ours.
    async fn finish(
        &self,
        job: &ClaimedJob,
        worker: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool> {
        let now = DB::NOW;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!(
            "update jobs set status = $3, last_error = $4, locked_by = null, locked_until = null, \
             updated_at = {now} where id = $1 and locked_by = $2 and status = 'running'"
        ))
        .bind(job.id)
        .bind(worker)
        .bind(status)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "update documents set status = $2, error = $3, finished_at = {now}, updated_at = {now} where id = $1"
        ))
        .bind(&job.document_id)
        .bind(status)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        // The webhooks' events are queued with the status they report: both land, or
        // neither does.
        sqlx::query(&super::deliveries::queue_document_event::<DB>())
            .bind(&job.document_id)
            .bind(uuid::Uuid::now_v7().to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
