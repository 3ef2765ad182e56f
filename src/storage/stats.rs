//! Counts for health checks and `/metrics`: the queue, documents by status, pages by engine.

use crate::domain::DocumentId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::{Result, sql::Backend, sql::SqlStore};

/// Counts of jobs by state, for health and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be claimed (including retries not yet due).
    pub queued: i64,
    /// Claimed by a worker.
    pub running: i64,
}

/// What the operators' numbers are made of.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Jobs waiting and running.
    async fn queue_counts(&self) -> Result<QueueCounts>;
    /// When the job that has waited longest became due (queue age, for `/metrics`).
    async fn oldest_due_job(&self) -> Result<Option<DateTime<Utc>>>;
    /// How long the job that has waited longest has waited, in seconds (0 when none waits).
    async fn queue_age_seconds(&self) -> Result<f64> {
        Ok(self
            .oldest_due_job()
            .await?
            .map_or(0.0, |due| (Utc::now() - due).as_seconds_f64().max(0.0)))
    }
    /// Documents per status (for `/metrics`).
    async fn documents_by_status(&self) -> Result<Vec<(String, i64)>>;
    /// Stored pages per source engine, over all documents (for `/metrics`).
    async fn pages_by_source(&self) -> Result<Vec<(String, i64)>>;
    /// Pages of one document per source engine (for its cost).
    async fn document_pages_by_source(&self, id: &DocumentId) -> Result<Vec<(String, i64)>>;
}

#[async_trait]
impl<DB: Backend> StatsStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn queue_counts(&self) -> Result<QueueCounts> {
        let (queued, running): (i64, i64) = sqlx::query_as(
            "select \
             coalesce(sum(case when status = 'queued' then 1 else 0 end), 0), \
             coalesce(sum(case when status = 'running' then 1 else 0 end), 0) from jobs",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueCounts { queued, running })
    }

    async fn oldest_due_job(&self) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "select min(run_at) from jobs where status = 'queued' and run_at <= {now}",
            now = DB::NOW
        );
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool).await?)
    }

    async fn documents_by_status(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as(
                "select status, count(*) from documents group by status order by status",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn pages_by_source(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("select source, count(*) from pages group by source order by source")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn document_pages_by_source(&self, id: &DocumentId) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "select source, count(*) from pages where document_id = $1 group by source order by source",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?)
    }
}
