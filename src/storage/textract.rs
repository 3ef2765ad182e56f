//! The Textract ledger: the slots that cap the jobs in flight at AWS, the monthly page
//! budget, and the completion notices AWS sends.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::{ClaimedJob, Result, queue::JOB_IS_OURS, sql::Backend, sql::SqlStore};

/// What Lector keeps about its use of Textract.
#[async_trait]
pub trait TextractStore: Send + Sync {
    /// Makes sure slots 1..=`cap` exist for Textract jobs in flight.
    async fn ensure_textract_slots(&self, cap: u32) -> Result<()>;
    /// Takes one of the first `cap` slots for `job` (or confirms the one it holds). False
    /// when all are held by running jobs.
    async fn claim_textract_slot(&self, job: &ClaimedJob, worker: &str, cap: u32) -> Result<bool>;
    /// Frees the slot `job` holds, if any.
    async fn release_textract_slot(&self, job: &ClaimedJob) -> Result<()>;
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
    /// Records Textract's completion notice for job `textract_job_id` (`SUCCEEDED`,
    /// `PARTIAL_SUCCESS`, `FAILED`…). A notice delivered twice is recorded once.
    async fn record_textract_completion(&self, textract_job_id: &str, status: &str) -> Result<()>;
    /// The recorded completion status of a Textract job, if its notice has arrived.
    async fn textract_completion(&self, textract_job_id: &str) -> Result<Option<String>>;
}

#[async_trait]
impl<DB: Backend> TextractStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn ensure_textract_slots(&self, cap: u32) -> Result<()> {
        for slot in 1..=cap as i32 {
            sqlx::query(
                "insert into textract_slots (slot) values ($1) on conflict (slot) do nothing",
            )
            .bind(slot)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn claim_textract_slot(&self, job: &ClaimedJob, worker: &str, cap: u32) -> Result<bool> {
        let sql = format!(
            "update textract_slots set job_id = $1, claimed_at = {now} \
             where slot = (select s.slot from textract_slots s \
               where s.slot <= $3 and (s.job_id is null or s.job_id = $1 or not exists \
                 (select 1 from jobs j where j.id = s.job_id and j.status = 'running' and j.locked_until > {now})) \
               order by case when s.job_id = $1 then 0 else 1 end, s.slot limit 1 {skip}) \
             and {JOB_IS_OURS} returning slot",
            now = DB::NOW,
            skip = DB::SKIP_LOCKED,
        );
        let slot: Option<i32> = sqlx::query_scalar(&sql)
            .bind(job.id)
            .bind(worker)
            .bind(cap as i32)
            .fetch_optional(&self.pool)
            .await?;
        Ok(slot.is_some())
    }

    async fn release_textract_slot(&self, job: &ClaimedJob) -> Result<()> {
        sqlx::query("update textract_slots set job_id = null, claimed_at = null where job_id = $1")
            .bind(job.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reserve_textract_pages(
        &self,
        sha256: &str,
        document_id: &str,
        pages: i32,
        budget: i64,
    ) -> Result<bool> {
        let month = DB::MONTH_START;
        // Reserves a document's pages unless the month's budget would be passed; the same
        // content is counted once a month. Concurrent reservations can pass the budget by
        // at most the pages of the documents reserved at the same instant.
        let reserve = format!(
            "insert into textract_usage (sha256, document_id, pages) select $1, $2, $3 \
             where not exists (select 1 from textract_usage where sha256 = $1 and created_at >= {month}) \
             and coalesce((select sum(pages) from textract_usage where created_at >= {month}), 0) + $3 <= $4"
        );
        let inserted = sqlx::query(&reserve)
            .bind(sha256)
            .bind(document_id)
            .bind(pages)
            .bind(budget)
            .execute(&self.pool)
            .await?;
        if DB::rows_affected(&inserted) == 1 {
            return Ok(true);
        }
        let reserved: i64 = sqlx::query_scalar(&format!(
            "select count(*) from textract_usage where sha256 = $1 and created_at >= {month}"
        ))
        .bind(sha256)
        .fetch_one(&self.pool)
        .await?;
        Ok(reserved > 0)
    }

    async fn textract_pages_this_month(&self) -> Result<i64> {
        let sql = format!(
            "select cast(coalesce(sum(pages), 0) as bigint) from textract_usage where created_at >= {month}",
            month = DB::MONTH_START,
        );
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool).await?)
    }

    async fn record_textract_completion(&self, textract_job_id: &str, status: &str) -> Result<()> {
        sqlx::query(
            "insert into textract_completions (textract_job_id, status) values ($1, $2) \
             on conflict (textract_job_id) do nothing",
        )
        .bind(textract_job_id)
        .bind(status)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn textract_completion(&self, textract_job_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "select status from textract_completions where textract_job_id = $1",
            )
            .bind(textract_job_id)
            .fetch_optional(&self.pool)
            .await?,
        )
    }
}
