//! Webhook use cases shared by the web UI and the API: register a URL (checked against the
//! address guard), list and delete them, queue a test event, read the delivery log.

pub mod delivery;

use std::sync::Arc;

use rand::Rng;

use crate::{
    config::Config,
    domain::{
        User, WebhookId,
        webhook::{Delivery, MAX_DESCRIPTION_CHARS, SECRET_PREFIX, UrlRefusal, Webhook, check_url},
    },
    storage::{self, Store, webhooks::NewWebhook},
};

/// Deliveries shown in a webhook's log.
pub const LOG_LENGTH: i64 = 50;

/// Why a webhook was not registered; the message is for its owner.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL is not one Lector will call.
    #[error(transparent)]
    Url(#[from] UrlRefusal),
    /// The description is too long.
    #[error("Keep the description to {MAX_DESCRIPTION_CHARS} characters.")]
    DescriptionTooLong,
    /// The account has as many webhooks as it may.
    #[error("An account may have {0} webhooks: delete one before adding another.")]
    TooMany(i64),
    /// No such webhook, or another account's.
    #[error("no such webhook")]
    NotFound,
    /// Our fault.
    #[error(transparent)]
    Storage(storage::Error),
}

impl From<storage::Error> for WebhookError {
    fn from(err: storage::Error) -> Self {
        match err {
            storage::Error::NotFound => WebhookError::NotFound,
            other => WebhookError::Storage(other),
        }
    }
}

/// Webhook use cases over one store.
#[derive(Clone)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    config: Arc<Config>,
}

impl Webhooks {
    /// Use cases over `store`.
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        Webhooks { store, config }
    }

    /// Registers `url` for `user`'s documents. Returns the webhook and its signing secret,
    /// which is shown this once.
    pub async fn register(
        &self,
        user: &User,
        url: &str,
        description: &str,
    ) -> Result<(Webhook, String), WebhookError> {
        let allow_private = self.config.webhooks.allow_private;
        let url = check_url(url, allow_private)?;
        if let Some(url::Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            delivery::callable_addresses(name, port, allow_private).await?;
        }
        let description = description.trim();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(WebhookError::DescriptionTooLong);
        }
        let limit = self.config.webhooks.per_user;
        if self.store.list_webhooks(&user.id).await?.len() as i64 >= limit {
            return Err(WebhookError::TooMany(limit));
        }
        let secret = format!(
            "{SECRET_PREFIX}{}",
            hex::encode(rand::rng().random::<[u8; 24]>())
        );
        let webhook = self
            .store
            .create_webhook(&NewWebhook {
                id: WebhookId::new(),
                owner_id: user.id.clone(),
                url: url.to_string(),
                description: description.to_owned(),
                secret: secret.clone().into(),
            })
            .await?;
        tracing::info!(webhook.id = %webhook.id, user.id = %user.id, "webhook registered");
        Ok((webhook, secret))
    }

    /// `user`'s webhooks, oldest first.
    pub async fn list(&self, user: &User) -> storage::Result<Vec<Webhook>> {
        self.store.list_webhooks(&user.id).await
    }

    /// One of `user`'s webhooks (`NotFound` for anyone else's).
    pub async fn get(&self, user: &User, id: &WebhookId) -> Result<Webhook, WebhookError> {
        Ok(self.store.webhook(&user.id, id).await?)
    }

    /// One of `user`'s webhooks with its newest deliveries (`NotFound` for anyone else's).
    pub async fn with_log(
        &self,
        user: &User,
        id: &WebhookId,
    ) -> Result<(Webhook, Vec<Delivery>), WebhookError> {
        let webhook = self.get(user, id).await?;
        let deliveries = self.store.list_deliveries(&webhook.id, LOG_LENGTH).await?;
        Ok((webhook, deliveries))
    }

    /// Deletes one of `user`'s webhooks and its log.
    pub async fn delete(&self, user: &User, id: &WebhookId) -> Result<(), WebhookError> {
        if self.store.delete_webhook(&user.id, id).await? {
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// Queues a `ping` event to one of `user`'s webhooks; returns the delivery's id.
    pub async fn ping(&self, user: &User, id: &WebhookId) -> Result<i64, WebhookError> {
        let webhook = self.get(user, id).await?;
        Ok(self
            .store
            .queue_ping(&webhook.id, &uuid::Uuid::now_v7().to_string())
            .await?)
    }
}
