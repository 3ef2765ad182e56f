//! Webhook deliveries: a durable queue of their own, claimed with a lease like extraction
//! jobs, with a log of every attempt. A document's events are queued in the same
//! transaction that finishes it (`finish` in `queue.rs`), so none is lost.

use crate::domain::WebhookId;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Result, sql::Backend, sql::SqlStore};
use crate::domain::webhook::{
    Delivery, DeliveryAttempt, DeliveryStatus, DocumentSnapshot, Webhook, WebhookEvent,
};

/// A delivery a sender has claimed, with where to send it and how to sign it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery (its `attempts` counts this one).
    pub delivery: Delivery,
    /// The webhook it goes to.
    pub webhook: Webhook,
    /// The webhook's signing secret (redacted from `Debug`).
    pub secret: secrecy::SecretString,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// How long it took.
    pub duration: Duration,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed; `None` when it was delivered.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_excerpt: Option<String>,
    /// What to do next: nothing (delivered or given up) or retry after this long.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    /// Where the delivery stands after this attempt.
    pub fn status(&self) -> DeliveryStatus {
        match (&self.error, self.retry_after) {
            (None, _) => DeliveryStatus::Delivered,
            (Some(_), Some(_)) => DeliveryStatus::Queued,
            (Some(_), None) => DeliveryStatus::Failed,
        }
    }
}

/// Storage of the delivery queue.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Queues a `ping` event for a webhook; returns the delivery's id.
    async fn queue_ping(&self, webhook_id: &WebhookId, event_id: &str) -> Result<i64>;
    /// A webhook's newest deliveries with their attempts, newest first.
    async fn list_deliveries(&self, webhook_id: &WebhookId, limit: i64) -> Result<Vec<Delivery>>;
    /// Claims the next due delivery (or one whose sender's lease expired) for `sender`.
    async fn claim_delivery(
        &self,
        sender: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedDelivery>>;
    /// Logs an attempt and marks the delivery delivered, failed, or queued again. False when
    /// the delivery is no longer `sender`'s (its lease expired and another took it).
    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        sender: &str,
        outcome: &AttemptOutcome,
    ) -> Result<bool>;
    /// Forgets deliveries that finished more than `age` ago; returns how many.
    async fn prune_deliveries(&self, age: Duration) -> Result<u64>;
}

/// A row of the deliveries table.
#[derive(FromRow)]
struct DeliveryRow {
    id: i64,
    webhook_id: String,
    event_id: String,
    event: String,
    document_id: Option<String>,
    file_name: Option<String>,
    document_status: Option<String>,
    page_count: Option<i32>,
    pages_done: Option<i64>,
    pages_failed: Option<i64>,
    document_error: Option<String>,
    status: String,
    attempts: i32,
    run_at: DateTime<Utc>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = super::Error;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        let event = WebhookEvent::parse(&row.event)
            .ok_or_else(|| anyhow::anyhow!("unknown webhook event {:?}", row.event))?;
        let status = DeliveryStatus::parse(&row.status)
            .ok_or_else(|| anyhow::anyhow!("unknown delivery status {:?}", row.status))?;
        let document = row.document_id.map(|id| DocumentSnapshot {
            id,
            file_name: row.file_name.unwrap_or_default(),
            status: row.document_status.unwrap_or_default(),
            page_count: row.page_count.unwrap_or_default(),
            pages_done: row.pages_done.unwrap_or_default(),
            pages_failed: row.pages_failed.unwrap_or_default(),
            error: row.document_error,
        });
        Ok(Delivery {
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event,
            document,
            status,
            attempts: row.attempts,
            run_at: row.run_at,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: row.created_at,
            finished_at: row.finished_at,
            log: Vec::new(),
        })
    }
}

/// A row of the attempts table.
#[derive(FromRow)]
struct AttemptRow {
    delivery_id: i64,
    attempt: i32,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    status_code: Option<i32>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

impl From<AttemptRow> for DeliveryAttempt {
    fn from(row: AttemptRow) -> Self {
        DeliveryAttempt {
            attempt: row.attempt,
            started_at: row.started_at,
            duration_ms: row.duration_ms,
            status_code: row.status_code,
            error: row.error,
            response_excerpt: row.response_excerpt,
        }
    }
}

/// The columns of a delivery.
const DELIVERY_COLUMNS: &str = "id, webhook_id, event_id, event, document_id, file_name, \
     document_status, page_count, pages_done, pages_failed, document_error, status, attempts, \
     run_at, last_status_code, last_error, created_at, finished_at";

/// Queues `document.<status>` for every webhook of document `$1`'s owner (event id `$2`),
/// with what the event reports about the document. Run in the transaction that finishes the
/// document (`finish` in `queue.rs`).
pub(super) fn queue_document_event<DB: Backend>() -> String {
    format!(
        "insert into webhook_deliveries (webhook_id, event_id, event, document_id, file_name, \
           document_status, page_count, pages_done, pages_failed, document_error, status, run_at, created_at) \
         select w.id, $2, 'document.' || d.status, d.id, d.file_name, d.status, d.page_count, \
           (select count(*) from pages p where p.document_id = d.id), \
           (select count(*) from pages p where p.document_id = d.id and p.error is not null), \
           d.error, 'queued', {now}, {now} \
         from documents d join webhooks w on w.owner_id = d.owner_id \
         where d.id = $1 and d.status in ('done', 'failed')",
        now = DB::NOW
    )
}

#[async_trait]
impl<DB: Backend> DeliveryStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Option<i32>: Encode<'q, DB>,
    for<'q> DateTime<Utc>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn queue_ping(&self, webhook_id: &WebhookId, event_id: &str) -> Result<i64> {
        let sql = format!(
            "insert into webhook_deliveries (webhook_id, event_id, event, status, run_at, created_at) \
             values ($1, $2, 'ping', 'queued', {now}, {now}) returning id",
            now = DB::NOW
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(webhook_id)
            .bind(event_id)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn list_deliveries(&self, webhook_id: &WebhookId, limit: i64) -> Result<Vec<Delivery>> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from webhook_deliveries where webhook_id = $1 order by id desc limit $2"
        );
        let rows: Vec<DeliveryRow> = sqlx::query_as(&sql)
            .bind(webhook_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut deliveries = rows
            .into_iter()
            .map(Delivery::try_from)
            .collect::<Result<Vec<_>>>()?;
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "select a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, \
             a.response_excerpt from webhook_attempts a join (select id from webhook_deliveries \
             where webhook_id = $1 order by id desc limit $2) d on d.id = a.delivery_id \
             order by a.delivery_id, a.attempt",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        for row in attempts {
            if let Some(delivery) = deliveries.iter_mut().find(|d| d.id == row.delivery_id) {
                delivery.log.push(row.into());
            }
        }
        Ok(deliveries)
    }

    async fn claim_delivery(
        &self,
        sender: &str,
        lease: Duration,
    ) -> Result<Option<ClaimedDelivery>> {
        let claim = format!(
            "update webhook_deliveries set status = 'sending', attempts = attempts + 1, \
             locked_by = $1, locked_until = {later} \
             where id = (select id from webhook_deliveries \
               where (status = 'queued' and run_at <= {now}) or (status = 'sending' and locked_until < {now}) \
               order by run_at, id limit 1 {skip}) \
             returning {DELIVERY_COLUMNS}",
            later = DB::later("$2"),
            now = DB::NOW,
            skip = DB::SKIP_LOCKED,
        );
        let mut tx = self.begin_write().await?;
        let Some(row): Option<DeliveryRow> = sqlx::query_as(&claim)
            .bind(sender)
            .bind(lease.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let delivery = Delivery::try_from(row)?;
        let (id, owner_id, url, description, created_at, secret): (
            String,
            String,
            String,
            String,
            DateTime<Utc>,
            String,
        ) = sqlx::query_as(
            "select id, owner_id, url, description, created_at, secret from webhooks where id = $1",
        )
        .bind(&delivery.webhook_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = super::secret_row("webhooks.secret", &id);
        let secret = super::open(self.keyring(), secret, &row)?;
        Ok(Some(ClaimedDelivery {
            delivery,
            webhook: Webhook {
                id: id.into(),
                owner_id: owner_id.into(),
                url,
                description,
                created_at,
            },
            secret,
        }))
    }

    async fn record_attempt(
        &self,
        claimed: &ClaimedDelivery,
        sender: &str,
        outcome: &AttemptOutcome,
    ) -> Result<bool> {
        let finish = format!(
            "update webhook_deliveries set status = $3, run_at = {later}, last_status_code = $5, \
             last_error = $6, locked_by = null, locked_until = null, \
             finished_at = case when $3 = 'queued' then null else {now} end \
             where id = $1 and locked_by = $2 and status = 'sending'",
            later = DB::later("$4"),
            now = DB::NOW,
        );
        // Started `$3` seconds from now: the attempt's duration ago.
        let log = format!(
            "insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt) \
             values ($1, $2, {started}, $4, $5, $6, $7) on conflict (delivery_id, attempt) do nothing",
            started = DB::later("$3"),
        );
        let delivery = &claimed.delivery;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&finish)
            .bind(delivery.id)
            .bind(sender)
            .bind(outcome.status().as_str())
            .bind(outcome.retry_after.unwrap_or_default().as_secs_f64())
            .bind(outcome.status_code)
            .bind(&outcome.error)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(false);
        }
        sqlx::query(&log)
            .bind(delivery.id)
            .bind(delivery.attempts)
            .bind(-outcome.duration.as_secs_f64())
            .bind(outcome.duration.as_millis() as i64)
            .bind(outcome.status_code)
            .bind(&outcome.error)
            .bind(&outcome.response_excerpt)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_deliveries(&self, age: Duration) -> Result<u64> {
        let sql = format!(
            "delete from webhook_deliveries where finished_at is not null and finished_at < {}",
            DB::later("$1")
        );
        let done = sqlx::query(&sql)
            .bind(-age.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }
}
