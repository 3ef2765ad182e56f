//! Webhooks and their deliveries in the database. Deliveries are a durable queue of their
//! own, claimed with a lease like extraction jobs; a document's events are queued in the
//! same transaction that finishes it (see `finish` in `sql_store.rs`), so none is lost.

use std::time::Duration;

use async_trait::async_trait;

use super::Result;
use crate::domain::webhook::{
    Delivery, DeliveryAttempt, DeliveryStatus, DocumentSnapshot, Webhook, WebhookEvent,
};

/// A webhook about to be stored.
#[derive(Debug)]
pub struct NewWebhook {
    /// UUIDv7.
    pub id: String,
    /// Its owner.
    pub owner_id: String,
    /// Where to post.
    pub url: String,
    /// What its owner calls it.
    pub description: String,
    /// The signing secret (redacted from `Debug`, so no log line can carry it).
    pub secret: secrecy::SecretString,
}

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

/// Storage of webhooks and their delivery queue.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook.
    async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook>;
    /// `owner_id`'s webhooks, oldest first.
    async fn list_webhooks(&self, owner_id: &str) -> Result<Vec<Webhook>>;
    /// One of `owner_id`'s webhooks (`NotFound` for anyone else's).
    async fn webhook(&self, owner_id: &str, id: &str) -> Result<Webhook>;
    /// Deletes one of `owner_id`'s webhooks with its deliveries. False when there is none.
    async fn delete_webhook(&self, owner_id: &str, id: &str) -> Result<bool>;
    /// Queues a `ping` event for a webhook; returns the delivery's id.
    async fn queue_ping(&self, webhook_id: &str, event_id: &str) -> Result<i64>;
    /// A webhook's newest deliveries with their attempts, newest first.
    async fn list_deliveries(&self, webhook_id: &str, limit: i64) -> Result<Vec<Delivery>>;
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

/// A row of the webhooks table.
#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    pub id: String,
    pub owner_id: String,
    pub url: String,
    pub description: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            id: row.id,
            owner_id: row.owner_id,
            url: row.url,
            description: row.description,
            created_at: row.created_at,
        }
    }
}

/// A row of the deliveries table.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub id: i64,
    pub webhook_id: String,
    pub event_id: String,
    pub event: String,
    pub document_id: Option<String>,
    pub file_name: Option<String>,
    pub document_status: Option<String>,
    pub page_count: Option<i32>,
    pub pages_done: Option<i64>,
    pub pages_failed: Option<i64>,
    pub document_error: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub run_at: chrono::DateTime<chrono::Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
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
#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: i32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
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

/// Statements over webhooks.
pub(crate) struct WebhookQueries {
    pub insert: &'static str,
    pub by_id: &'static str,
    pub of_owner: &'static str,
    pub delete: &'static str,
    pub queue_ping: String,
    pub deliveries: String,
    pub attempts: &'static str,
    pub claim: String,
    pub claimed_target: &'static str,
    pub insert_attempt: String,
    pub finish_attempt: String,
    pub prune: String,
    /// Queues `document.<status>` for every webhook of document `$1`'s owner (event id `$2`),
    /// with what the event reports about the document.
    pub queue_document_event: String,
}

impl WebhookQueries {
    pub(crate) fn new(d: &super::sql_store::Dialect) -> Self {
        let now = d.now;
        WebhookQueries {
            insert: "insert into webhooks (id, owner_id, url, description, secret) values ($1, $2, $3, $4, $5)",
            by_id: "select id, owner_id, url, description, created_at from webhooks where id = $1 and owner_id = $2",
            of_owner: "select id, owner_id, url, description, created_at from webhooks where owner_id = $1 order by id",
            delete: "delete from webhooks where id = $1 and owner_id = $2",
            queue_ping: format!(
                "insert into webhook_deliveries (webhook_id, event_id, event, status, run_at, created_at) \
                 values ($1, $2, 'ping', 'queued', {now}, {now}) returning id"
            ),
            deliveries: format!(
                "select {DELIVERY_COLUMNS} from webhook_deliveries where webhook_id = $1 order by id desc limit $2"
            ),
            attempts: "select a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, \
                 a.response_excerpt from webhook_attempts a join (select id from webhook_deliveries \
                 where webhook_id = $1 order by id desc limit $2) d on d.id = a.delivery_id \
                 order by a.delivery_id, a.attempt",
            claim: format!(
                "update webhook_deliveries set status = 'sending', attempts = attempts + 1, \
                 locked_by = $1, locked_until = {later} \
                 where id = (select id from webhook_deliveries \
                   where (status = 'queued' and run_at <= {now}) or (status = 'sending' and locked_until < {now}) \
                   order by run_at, id limit 1 {skip}) \
                 returning {DELIVERY_COLUMNS}",
                later = (d.later)("$2"),
                skip = d.skip_locked,
            ),
            claimed_target: "select id, owner_id, url, description, created_at, secret from webhooks where id = $1",
            insert_attempt: format!(
                "insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt) \
                 values ($1, $2, {started}, $4, $5, $6, $7) on conflict (delivery_id, attempt) do nothing",
                started = (d.later)("$3"),
            ),
            finish_attempt: format!(
                "update webhook_deliveries set status = $3, run_at = {later}, last_status_code = $5, \
                 last_error = $6, locked_by = null, locked_until = null, \
                 finished_at = case when $3 = 'queued' then null else {now} end \
                 where id = $1 and locked_by = $2 and status = 'sending'",
                later = (d.later)("$4"),
            ),
            prune: format!(
                "delete from webhook_deliveries where finished_at is not null and finished_at < {}",
                (d.later)("$1")
            ),
            queue_document_event: format!(
                "insert into webhook_deliveries (webhook_id, event_id, event, document_id, file_name, \
                   document_status, page_count, pages_done, pages_failed, document_error, status, run_at, created_at) \
                 select w.id, $2, 'document.' || d.status, d.id, d.file_name, d.status, d.page_count, \
                   (select count(*) from pages p where p.document_id = d.id), \
                   (select count(*) from pages p where p.document_id = d.id and p.error is not null), \
                   d.error, 'queued', {now}, {now} \
                 from documents d join webhooks w on w.owner_id = d.owner_id \
                 where d.id = $1 and d.status in ('done', 'failed')"
            ),
        }
    }
}

/// Implements [`WebhookStore`] for `$store`, a struct with `pool` and `sql` fields.
macro_rules! webhook_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::webhooks::WebhookStore for $store {
            async fn create_webhook(
                &self,
                webhook: &$crate::storage::webhooks::NewWebhook,
            ) -> $crate::storage::Result<$crate::domain::webhook::Webhook> {
                sqlx::query(self.sql.webhooks.insert)
                    .bind(&webhook.id)
                    .bind(&webhook.owner_id)
                    .bind(&webhook.url)
                    .bind(&webhook.description)
                    .bind($crate::storage::seal(
                        self.keyring.as_deref(),
                        &webhook.secret,
                        &$crate::storage::secret_row("webhooks.secret", &webhook.id),
                    )?)
                    .execute(&self.pool)
                    .await?;
                self.webhook(&webhook.owner_id, &webhook.id).await
            }

            async fn list_webhooks(
                &self,
                owner_id: &str,
            ) -> $crate::storage::Result<Vec<$crate::domain::webhook::Webhook>> {
                let rows = sqlx::query_as::<_, $crate::storage::webhooks::WebhookRow>(
                    self.sql.webhooks.of_owner,
                )
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn webhook(
                &self,
                owner_id: &str,
                id: &str,
            ) -> $crate::storage::Result<$crate::domain::webhook::Webhook> {
                let row = sqlx::query_as::<_, $crate::storage::webhooks::WebhookRow>(
                    self.sql.webhooks.by_id,
                )
                .bind(id)
                .bind(owner_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.into())
            }

            async fn delete_webhook(
                &self,
                owner_id: &str,
                id: &str,
            ) -> $crate::storage::Result<bool> {
                let done = sqlx::query(self.sql.webhooks.delete)
                    .bind(id)
                    .bind(owner_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn queue_ping(
                &self,
                webhook_id: &str,
                event_id: &str,
            ) -> $crate::storage::Result<i64> {
                Ok(sqlx::query_scalar(&self.sql.webhooks.queue_ping)
                    .bind(webhook_id)
                    .bind(event_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn list_deliveries(
                &self,
                webhook_id: &str,
                limit: i64,
            ) -> $crate::storage::Result<Vec<$crate::domain::webhook::Delivery>> {
                let rows = sqlx::query_as::<_, $crate::storage::webhooks::DeliveryRow>(
                    &self.sql.webhooks.deliveries,
                )
                .bind(webhook_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut deliveries = rows
                    .into_iter()
                    .map($crate::domain::webhook::Delivery::try_from)
                    .collect::<$crate::storage::Result<Vec<_>>>()?;
                let attempts = sqlx::query_as::<_, $crate::storage::webhooks::AttemptRow>(
                    self.sql.webhooks.attempts,
                )
                .bind(webhook_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                for row in attempts {
                    if let Some(delivery) = deliveries.iter_mut().find(|d| d.id == row.delivery_id)
                    {
                        delivery.log.push(row.into());
                    }
                }
                Ok(deliveries)
            }

            async fn claim_delivery(
                &self,
                sender: &str,
                lease: std::time::Duration,
            ) -> $crate::storage::Result<Option<$crate::storage::webhooks::ClaimedDelivery>> {
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let Some(row) = sqlx::query_as::<_, $crate::storage::webhooks::DeliveryRow>(
                    &self.sql.webhooks.claim,
                )
                .bind(sender)
                .bind(lease.as_secs_f64())
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(None);
                };
                let delivery = $crate::domain::webhook::Delivery::try_from(row)?;
                let (id, owner_id, url, description, created_at, secret): (
                    String,
                    String,
                    String,
                    String,
                    chrono::DateTime<chrono::Utc>,
                    String,
                ) = sqlx::query_as(self.sql.webhooks.claimed_target)
                    .bind(&delivery.webhook_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                let secret = $crate::storage::open(
                    self.keyring.as_deref(),
                    secret,
                    &$crate::storage::secret_row("webhooks.secret", &id),
                )?;
                Ok(Some($crate::storage::webhooks::ClaimedDelivery {
                    delivery,
                    webhook: $crate::domain::webhook::Webhook {
                        id,
                        owner_id,
                        url,
                        description,
                        created_at,
                    },
                    secret,
                }))
            }

            async fn record_attempt(
                &self,
                claimed: &$crate::storage::webhooks::ClaimedDelivery,
                sender: &str,
                outcome: &$crate::storage::webhooks::AttemptOutcome,
            ) -> $crate::storage::Result<bool> {
                let delivery = &claimed.delivery;
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                let done = sqlx::query(&self.sql.webhooks.finish_attempt)
                    .bind(delivery.id)
                    .bind(sender)
                    .bind(outcome.status().as_str())
                    .bind(outcome.retry_after.unwrap_or_default().as_secs_f64())
                    .bind(outcome.status_code)
                    .bind(&outcome.error)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(&self.sql.webhooks.insert_attempt)
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

            async fn prune_deliveries(
                &self,
                age: std::time::Duration,
            ) -> $crate::storage::Result<u64> {
                let done = sqlx::query(&self.sql.webhooks.prune)
                    .bind(-age.as_secs_f64())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::NewWebhook;

    #[test]
    fn the_signing_secret_stays_out_of_debug_output() {
        let webhook = NewWebhook {
            id: "w".into(),
            owner_id: "u".into(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            secret: "whsec_do-not-log-me".to_owned().into(),
        };
        let printed = format!("{webhook:?}");
        assert!(printed.contains("https://example.com/hook"), "{printed}");
        assert!(!printed.contains("do-not-log-me"), "{printed}");
    }
}
