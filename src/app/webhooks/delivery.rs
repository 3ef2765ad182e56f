//! Delivering one webhook event: the signed POST, what the receiver answered, and the
//! address guard. Claiming deliveries, retrying them and keeping the log is the queue's
//! (the `jobs` runtime); registering a URL checks it here first.
//!
//! The HTTP client never follows redirects and ignores proxy settings, and it resolves
//! names through [`GuardedResolver`], which drops loopback, private and link-local
//! addresses: the address checked is the address connected to, so a name that resolves to a
//! public address at registration and to an internal one later (DNS rebinding) is refused.

use std::{net::SocketAddr, sync::Arc};

use secrecy::ExposeSecret;

use crate::{
    config::{Config, WebhookSettings},
    domain::webhook::{self, RESPONSE_EXCERPT_CHARS, UrlRefusal},
    storage::webhooks::{AttemptOutcome, ClaimedDelivery},
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

/// Posts deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    settings: WebhookSettings,
    base_url: String,
}

/// What one attempt came to.
pub struct Sent {
    /// The attempt as the delivery log keeps it; whether and when to retry (`retry_after`)
    /// is left to the queue.
    pub outcome: AttemptOutcome,
    /// The address is one Lector does not call: no retry will change that.
    pub refused: bool,
}

impl Deliverer {
    /// A deliverer with the configured client.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Deliverer {
            client: http_client(&config.webhooks)?,
            settings: config.webhooks.clone(),
            base_url: config.base_url(),
        })
    }

    /// Posts the event once and says what became of it.
    pub async fn attempt(&self, claimed: &ClaimedDelivery) -> Sent {
        let started = std::time::Instant::now();
        let (status_code, error, response_excerpt, refused) = match self.post(claimed).await {
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
        let outcome = AttemptOutcome {
            duration: started.elapsed(),
            status_code,
            error,
            response_excerpt,
            retry_after: None,
        };
        Sent { outcome, refused }
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
}

/// Why an attempt got no answer.
enum Failure {
    /// The address is one Lector does not call: no retry will change that.
    Refused(UrlRefusal),
    /// The network, DNS or the receiver failed: worth another try.
    Transport(String),
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
