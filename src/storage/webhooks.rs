//! Webhooks in the database: where each account wants to hear about its documents, and the
//! secret their deliveries are signed with (sealed at rest). The deliveries themselves, a
//! durable queue, are in `deliveries.rs`.

use crate::domain::{UserId, WebhookId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Result, sql::Backend, sql::SqlStore};
use crate::domain::webhook::Webhook;

pub use super::deliveries::{AttemptOutcome, ClaimedDelivery};

/// A webhook about to be stored.
#[derive(Debug)]
pub struct NewWebhook {
    /// UUIDv7.
    pub id: WebhookId,
    /// Its owner.
    pub owner_id: UserId,
    /// Where to post.
    pub url: String,
    /// What its owner calls it.
    pub description: String,
    /// The signing secret (redacted from `Debug`, so no log line can carry it).
    pub secret: secrecy::SecretString,
}

/// Storage of webhooks (their deliveries are in `deliveries.rs`).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook.
    async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook>;
    /// `owner_id`'s webhooks, oldest first.
    async fn list_webhooks(&self, owner_id: &UserId) -> Result<Vec<Webhook>>;
    /// One of `owner_id`'s webhooks (`NotFound` for anyone else's).
    async fn webhook(&self, owner_id: &UserId, id: &WebhookId) -> Result<Webhook>;
    /// Deletes one of `owner_id`'s webhooks with its deliveries. False when there is none.
    async fn delete_webhook(&self, owner_id: &UserId, id: &WebhookId) -> Result<bool>;
}

/// A row of the webhooks table.
#[derive(FromRow)]
struct WebhookRow {
    id: String,
    owner_id: String,
    url: String,
    description: String,
    created_at: DateTime<Utc>,
}

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            id: row.id.into(),
            owner_id: row.owner_id.into(),
            url: row.url,
            description: row.description,
            created_at: row.created_at,
        }
    }
}

#[async_trait]
impl<DB: Backend> WebhookStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Decode<'q, DB> + Type<DB>,
{
    async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook> {
        let row = super::secret_row("webhooks.secret", webhook.id.as_str());
        let secret = super::seal(self.keyring(), &webhook.secret, &row)?;
        sqlx::query(
            "insert into webhooks (id, owner_id, url, description, secret) values ($1, $2, $3, $4, $5)",
        )
        .bind(&webhook.id)
        .bind(&webhook.owner_id)
        .bind(&webhook.url)
        .bind(&webhook.description)
        .bind(secret)
        .execute(&self.pool)
        .await?;
        self.webhook(&webhook.owner_id, &webhook.id).await
    }

    async fn list_webhooks(&self, owner_id: &UserId) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(
            "select id, owner_id, url, description, created_at from webhooks where owner_id = $1 order by id",
        )
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn webhook(&self, owner_id: &UserId, id: &WebhookId) -> Result<Webhook> {
        let row: WebhookRow = sqlx::query_as(
            "select id, owner_id, url, description, created_at from webhooks where id = $1 and owner_id = $2",
        )
        .bind(id)
        .bind(owner_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn delete_webhook(&self, owner_id: &UserId, id: &WebhookId) -> Result<bool> {
        let done = sqlx::query("delete from webhooks where id = $1 and owner_id = $2")
            .bind(id)
            .bind(owner_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }
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
