//! Sends webhook deliveries: claim one from the queue, post the signed event, log the
//! attempt, and retry with backoff until the receiver answers 2xx or the attempts run out.
//!
//! The HTTP client never follows redirects and ignores proxy settings, and it resolves
//! names through [`GuardedResolver`], which drops loopback, private and link-local
//! addresses: the address checked is the address connected to, so a name that resolves to a
//! public address at registration and to an internal one later (DNS rebinding) is refused.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, WebhookSettings},
    domain::webhook::{self, RESPONSE_EXCERPT_CHARS, UrlRefusal},
    storage::{
        Store,
        webhooks::{AttemptOutcome, ClaimedDelivery},
    },
};

/// The addresses `host` resolves to that Lector may call (all of them when `allow_private`).
/// Refuses a name that does not resolve or resolves only to internal addresses.
pub async fn callable_addresses(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlRefusal> {
    let unresolvable = || UrlRefusal::Unresolvable(host.to_owned());
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| unresolvable())?
        .collect();
    let Some(first) = resolved.first().copied() else {
        return Err(unresolvable());
    };
    if allow_private {
        return Ok(resolved);
    }
    let public: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| webhook::internal_kind(address.ip()).is_none())
        .collect();
    if public.is_empty() {
        webhook::check_address(host, first.ip())?;
    }
    Ok(public)
}

/// Resolves names for the webhook client, keeping only addresses Lector may call.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses = callable_addresses(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client every delivery is posted with.
pub fn http_client(settings: &WebhookSettings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("Lector-Webhooks/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .build()?)
}

/// Sends deliveries. Cheap to clone; each sender task holds one.
#[derive(Clone)]
pub struct WebhookSender {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    settings: WebhookSettings,
    base_url: String,
    poll_interval: Duration,
    id: String,
}

impl WebhookSender {
    /// A sender with a fresh id.
    pub fn new(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<Self> {
        Ok(WebhookSender {
            store,
            client: http_client(&config.webhooks)?,
            settings: config.webhooks.clone(),
            base_url: config.base_url(),
            poll_interval: config.poll_interval,
            id: format!("webhooks-{}", uuid::Uuid::now_v7().simple()),
        })
    }

    /// Claims and sends one due delivery. False when there was none. Public so tests can
    /// drain the queue deterministically.
    pub async fn deliver_next(&self) -> anyhow::Result<bool> {
        let lease = self.settings.timeout + Duration::from_secs(60);
        let Some(claimed) = self.store.claim_delivery(&self.id, lease).await? else {
            return Ok(false);
        };
        let outcome = self.attempt(&claimed).await;
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
        self.store
            .record_attempt(&claimed, &self.id, &outcome)
            .await?;
        Ok(true)
    }

    /// Posts the event once and says what became of it.
    async fn attempt(&self, claimed: &ClaimedDelivery) -> AttemptOutcome {
        let started = std::time::Instant::now();
        let attempts = claimed.delivery.attempts;
        let (status_code, error, response_excerpt, final_failure) = match self.post(claimed).await {
            Ok((status, excerpt)) if status.is_success() => {
                (Some(status.as_u16().into()), None, excerpt, false)
            }
            Ok((status, excerpt)) => {
                let error = if status.is_redirection() {
                    format!("answered {status}: redirects are not followed")
                } else {
                    format!("answered {status}")
                };
                (Some(status.as_u16().into()), Some(error), excerpt, false)
            }
            Err(Failure::Refused(refusal)) => (None, Some(refusal.to_string()), None, true),
            Err(Failure::Transport(reason)) => (None, Some(reason), None, false),
        };
        let retry_after =
            (error.is_some() && !final_failure && attempts < self.settings.max_attempts)
                .then(|| self.backoff(attempts));
        AttemptOutcome {
            duration: started.elapsed(),
            status_code,
            error,
            response_excerpt,
            retry_after,
        }
    }

    /// The POST itself: the receiver's status and the start of its answer.
    async fn post(
        &self,
        claimed: &ClaimedDelivery,
    ) -> Result<(reqwest::StatusCode, Option<String>), Failure> {
        // A literal address is connected to without the resolver: check it here (the URL may
        // predate a change of LECTOR_WEBHOOK_ALLOW_PRIVATE).
        let url = webhook::check_url(&claimed.webhook.url, self.settings.allow_private)
            .map_err(Failure::Refused)?;
        let body = webhook::event_body(&claimed.delivery, &claimed.webhook, &self.base_url);
        let timestamp = chrono::Utc::now().timestamp();
        let mut response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Lector-Event", claimed.delivery.event.as_str())
            .header("Lector-Delivery", claimed.delivery.id.to_string())
            .header(
                "Lector-Signature",
                webhook::signature(claimed.secret.expose_secret(), timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| self.failure(&e))?;
        let status = response.status();
        let mut excerpt = Vec::new();
        // Only the start of the answer is kept; a receiver that streams forever is cut off
        // by the client's timeout, and the status already decided the outcome.
        while excerpt.len() < RESPONSE_EXCERPT_CHARS * 4 {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text: String = String::from_utf8_lossy(&excerpt)
            .chars()
            .take(RESPONSE_EXCERPT_CHARS)
            .collect();
        Ok((status, (!text.trim().is_empty()).then_some(text)))
    }

    /// An error of the client in words for the delivery log.
    fn failure(&self, error: &reqwest::Error) -> Failure {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(refusal) = cause.downcast_ref::<UrlRefusal>() {
                return Failure::Refused(refusal.clone());
            }
            source = cause.source();
        }
        if error.is_timeout() {
            return Failure::Transport(format!(
                "no answer within {} s",
                self.settings.timeout.as_secs()
            ));
        }
        let mut root: &dyn std::error::Error = error;
        while let Some(next) = root.source() {
            root = next;
        }
        let reason = if error.is_connect() {
            format!("could not connect: {root}")
        } else {
            format!("the request failed: {root}")
        };
        Failure::Transport(reason)
    }

    /// The wait before the next try after `attempts` failed ones: doubling, capped.
    fn backoff(&self, attempts: i32) -> Duration {
        let exponent = attempts.clamp(1, 20) as u32 - 1;
        self.settings
            .retry_base
            .saturating_mul(1 << exponent)
            .min(self.settings.retry_max)
    }

    /// Sends deliveries until `shutdown`, looking for due ones every poll interval.
    pub async fn run_until(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.deliver_next().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, sender = %self.id, "webhook sender could not reach the queue")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}

/// Why an attempt got no answer.
enum Failure {
    /// The address is one Lector does not call: no retry will change that.
    Refused(UrlRefusal),
    /// The network, DNS or the receiver failed: worth another try.
    Transport(String),
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
    for _ in 0..config.webhooks.senders {
        let sender = WebhookSender {
            id: format!("webhooks-{}", uuid::Uuid::now_v7().simple()),
            ..sender.clone()
        };
        tokio::spawn(sender.run_until(shutdown.clone()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_of_internal_addresses_are_refused_unless_allowed() {
        let refused = callable_addresses("localhost", 80, false)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                UrlRefusal::Internal {
                    kind: "a loopback",
                    ..
                }
            ),
            "{refused:?}"
        );
        let allowed = callable_addresses("localhost", 80, true).await.unwrap();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()));
        let unknown = callable_addresses("no-such-host.invalid", 80, false)
            .await
            .unwrap_err();
        assert_eq!(
            unknown,
            UrlRefusal::Unresolvable("no-such-host.invalid".into())
        );
    }
}
