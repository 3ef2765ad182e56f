//! The webhook delivery queue: claim a due delivery, have
//! [`crate::app::webhooks::delivery`] post the signed event, log the attempt, and retry with
//! backoff until the receiver answers 2xx or the attempts run out. Also the hourly pruning
//! of the delivery log.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Queue, Runner};
use crate::{
    app::webhooks::delivery::{Deliverer, Sent},
    config::Config,
    storage::{
        Store,
        webhooks::{AttemptOutcome, ClaimedDelivery},
    },
};

/// Sends deliveries.
pub type WebhookSender = Runner<Deliveries>;

/// The webhook deliveries and what they are posted with.
#[derive(Clone)]
pub struct Deliveries {
    store: Arc<dyn Store>,
    deliverer: Deliverer,
    /// How long a claimed delivery stays this sender's.
    lease: Duration,
    max_attempts: i32,
    backoff: Backoff,
}

impl Runner<Deliveries> {
    /// A sender with a fresh id.
    pub fn new(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<Self> {
        let settings = &config.webhooks;
        let deliveries = Deliveries {
            store,
            deliverer: Deliverer::new(config)?,
            lease: settings.timeout + Duration::from_secs(60),
            max_attempts: settings.max_attempts,
            // Doubling, capped by LECTOR_WEBHOOK_RETRY_MAX_SECS.
            backoff: Backoff {
                base: settings.retry_base,
                doublings: 19,
                cap: settings.retry_max,
            },
        };
        Ok(Runner::with_id(
            deliveries,
            sender_id(),
            config.poll_interval,
        ))
    }

    /// Claims and sends one due delivery. False when there was none. Public so tests can
    /// drain the queue deterministically.
    pub async fn deliver_next(&self) -> anyhow::Result<bool> {
        self.run_next(&CancellationToken::new()).await
    }
}

impl Queue for Deliveries {
    type Claimed = ClaimedDelivery;
    type Outcome = AttemptOutcome;

    async fn claim(&self, holder: &str) -> anyhow::Result<Option<ClaimedDelivery>> {
        Ok(self.store.claim_delivery(holder, self.lease).await?)
    }

    fn span(&self, _: &ClaimedDelivery) -> tracing::Span {
        // The attempt's line carries the delivery's fields itself.
        tracing::Span::none()
    }

    async fn attempt(
        &self,
        claimed: &ClaimedDelivery,
        _: &str,
        _: &CancellationToken,
    ) -> AttemptOutcome {
        let Sent {
            mut outcome,
            refused,
        } = self.deliverer.attempt(claimed).await;
        let attempts = claimed.delivery.attempts;
        if outcome.error.is_some() && !refused && attempts < self.max_attempts {
            outcome.retry_after = Some(self.backoff.after(attempts));
        }
        outcome
    }

    fn panicked(&self, claimed: &ClaimedDelivery) -> AttemptOutcome {
        let attempts = claimed.delivery.attempts;
        AttemptOutcome {
            duration: Duration::ZERO,
            status_code: None,
            error: Some("internal error (panic) while sending".into()),
            response_excerpt: None,
            retry_after: (attempts < self.max_attempts).then(|| self.backoff.after(attempts)),
        }
    }

    async fn record(
        &self,
        claimed: &ClaimedDelivery,
        holder: &str,
        outcome: AttemptOutcome,
        _: Duration,
    ) -> anyhow::Result<()> {
        let result = outcome.status().as_str();
        metrics::counter!("lector_webhook_attempts_total", "outcome" => result).increment(1);
        tracing::info!(
            delivery.id = claimed.delivery.id,
            webhook.id = %claimed.webhook.id,
            event = claimed.delivery.event.as_str(),
            attempt = claimed.delivery.attempts,
            status_code = outcome.status_code,
            error = outcome.error.as_deref().unwrap_or(""),
            outcome = result,
            "webhook attempt ended"
        );
        self.store.record_attempt(claimed, holder, &outcome).await?;
        Ok(())
    }

    fn unreachable(&self, holder: &str, error: &anyhow::Error) {
        tracing::warn!(%error, sender = %holder, "webhook sender could not reach the queue");
    }
}

fn sender_id() -> String {
    format!("webhooks-{}", uuid::Uuid::now_v7().simple())
}

/// Starts the configured number of senders, and the hourly pruning of the delivery log.
pub fn spawn_senders(
    store: Arc<dyn Store>,
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.webhooks.senders == 0 {
        return Ok(());
    }
    let sender = WebhookSender::new(store.clone(), config)?;
    let senders: Vec<_> = (0..config.webhooks.senders)
        .map(|_| Runner::with_id(sender.queue.clone(), sender_id(), config.poll_interval))
        .collect();
    // Senders look for due deliveries every poll interval; nothing wakes them sooner.
    super::spawn(senders, &shutdown, &Arc::new(Notify::new()));
    let keep = Duration::from_secs(u64::from(config.webhooks.log_days) * 86_400);
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = hourly.tick() => {}
            }
            match store.prune_deliveries(keep).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old webhook deliveries removed from the log"),
                Err(error) => tracing::warn!(%error, "could not prune the webhook delivery log"),
            }
        }
    });
    Ok(())
}
