//! Completion webhooks: what a registered URL is, which addresses Lector refuses to call,
//! how an event is written and signed. No I/O (resolving names happens in the sender).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// A URL a user asked Lector to call when their documents finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// UUIDv7.
    pub id: super::WebhookId,
    /// The account it belongs to.
    pub owner_id: super::UserId,
    /// Where events are posted.
    pub url: String,
    /// What its owner calls it.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// Every signing secret starts with this, so a leaked one is easy to recognise.
pub const SECRET_PREFIX: &str = "whsec_";

/// The longest URL accepted.
pub const MAX_URL_CHARS: usize = 2000;

/// The longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// What happened. `document.done` and `document.failed` are sent when extraction ends;
/// `ping` when the owner asks for a test delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    /// The document's text is ready (some pages may have failed: see `pages_failed`).
    DocumentDone,
    /// Extraction failed for good.
    DocumentFailed,
    /// A test delivery.
    Ping,
}

impl WebhookEvent {
    /// The name sent in the body's `type` and the `Lector-Event` header.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::DocumentDone => "document.done",
            WebhookEvent::DocumentFailed => "document.failed",
            WebhookEvent::Ping => "ping",
        }
    }

    /// The event of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::DocumentDone, Self::DocumentFailed, Self::Ping]
            .into_iter()
            .find(|event| event.as_str() == name)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or its next retry.
    Queued,
    /// A sender holds it now.
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; no more will be made.
    Failed,
}

impl DeliveryStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Queued, Self::Sending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// The document an event is about, as it was when the event happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSnapshot {
    /// Its id.
    pub id: String,
    /// Its file name.
    pub file_name: String,
    /// `done` or `failed`.
    pub status: String,
    /// Pages in the PDF.
    pub page_count: i32,
    /// Pages stored.
    pub pages_done: i64,
    /// Pages that could not be read.
    pub pages_failed: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One event owed to one webhook, with what happened to it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Sequential id; sent as `Lector-Delivery`.
    pub id: i64,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// The event's id (UUIDv7), the same in every delivery of one event: receivers can use it
    /// to ignore a repeat.
    pub event_id: String,
    /// What happened.
    pub event: WebhookEvent,
    /// The document, for document events.
    pub document: Option<DocumentSnapshot>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made (or being made).
    pub attempts: i32,
    /// When the next attempt is due (while queued).
    pub run_at: DateTime<Utc>,
    /// The last attempt's HTTP status, if it got one.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, first first (filled by the delivery log, empty elsewhere).
    pub log: Vec<DeliveryAttempt>,
}

/// One try at a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why it failed (no answer, a refused address, a non-2xx status).
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_excerpt: Option<String>,
}

/// Characters of a receiver's answer kept in the log.
pub const RESPONSE_EXCERPT_CHARS: usize = 500;

/// The body of an event, as sent on every attempt. `base_url` makes the links absolute.
pub fn event_body(delivery: &Delivery, webhook: &Webhook, base_url: &str) -> Vec<u8> {
    let mut body = json!({
        "id": delivery.event_id,
        "type": delivery.event.as_str(),
        "created_at": delivery.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "webhook": { "id": webhook.id },
    });
    if let Some(document) = &delivery.document {
        let id = &document.id;
        body["document"] = json!({
            "id": id,
            "file_name": document.file_name,
            "status": document.status,
            "page_count": document.page_count,
            "pages_done": document.pages_done,
            "pages_failed": document.pages_failed,
            "error": document.error,
        });
        body["links"] = json!({
            "document": format!("{base_url}/documents/{id}"),
            "api": format!("{base_url}/api/v1/documents/{id}"),
            "pages": format!("{base_url}/api/v1/documents/{id}/pages"),
            "text": format!("{base_url}/api/v1/documents/{id}/text"),
        });
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The `Lector-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
/// under the webhook's secret. The timestamp is signed too, so a receiver that refuses old
/// timestamps cannot be sent a recorded delivery again later.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Why a webhook URL was refused, in words for its owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Not a URL at all.
    #[error("This is not a URL: give a full address such as https://example.com/hooks/lector.")]
    Unparsable,
    /// Too long.
    #[error("The URL is longer than {MAX_URL_CHARS} characters.")]
    TooLong,
    /// Another scheme than http(s).
    #[error("Webhook URLs must start with https:// or http:// (not {0}:).")]
    Scheme(String),
    /// A user name or password in the URL.
    #[error(
        "Leave the user name and password out of the URL: every delivery is signed instead (see the secret)."
    )]
    Credentials,
    /// A name that does not resolve.
    #[error("The host {0} could not be found.")]
    Unresolvable(String),
    /// The host is (or resolves to) an address Lector will not call.
    #[error(
        "{host} is {kind} address ({address}): Lector does not call loopback, private, link-local or other internal addresses (an administrator can allow them with LECTOR_WEBHOOK_ALLOW_PRIVATE=true)."
    )]
    Internal {
        /// The host as written in the URL.
        host: String,
        /// The address it is or resolves to.
        address: IpAddr,
        /// "a loopback", "a private"…
        kind: &'static str,
    },
}

/// Checks what can be checked of a URL without the network: its length, scheme, the
/// absence of credentials, and the address when the host is one. Returns the parsed URL.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, UrlRefusal> {
    let raw = raw.trim();
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(UrlRefusal::TooLong);
    }
    let url = url::Url::parse(raw).map_err(|_| UrlRefusal::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefusal::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    let host = match url.host() {
        Some(host) => host,
        None => return Err(UrlRefusal::Unparsable),
    };
    if allow_private {
        return Ok(url);
    }
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    if let Some(address) = literal {
        check_address(&host.to_string(), address)?;
    }
    Ok(url)
}

/// Refuses `address` (which `host` is or resolves to) when it is internal.
pub fn check_address(host: &str, address: IpAddr) -> Result<(), UrlRefusal> {
    match internal_kind(address) {
        Some(kind) => Err(UrlRefusal::Internal {
            host: host.to_owned(),
            address,
            kind,
        }),
        None => Ok(()),
    }
}

pub use super::address::internal_kind;

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> UrlRefusal {
        check_url(url, false).expect_err(url)
    }

    #[test]
    fn only_http_and_https_urls_without_credentials_are_accepted() {
        assert!(check_url("https://hooks.example.com/lector?x=1", false).is_ok());
        assert!(check_url(" http://93.184.216.34:8080/in ", false).is_ok());
        assert_eq!(
            refused("ftp://example.com/"),
            UrlRefusal::Scheme("ftp".into())
        );
        assert_eq!(
            refused("file:///etc/passwd"),
            UrlRefusal::Scheme("file".into())
        );
        assert_eq!(
            refused("gopher://127.0.0.1:6379/_"),
            UrlRefusal::Scheme("gopher".into())
        );
        assert_eq!(refused("example.com/hook"), UrlRefusal::Unparsable);
        assert_eq!(
            refused("https://user:pw@example.com/"),
            UrlRefusal::Credentials
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(refused(&long), UrlRefusal::TooLong);
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:9000/",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            // Less common IPv6 spellings of an internal address (all of IANA's registries
            // are covered in domain::address).
            "http://[64:ff9b:1::7f00:1]/",
            "http://[2001::7f00:1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[100::1]/",
            // Decimal, octal and hexadecimal forms of 127.0.0.1 are parsed as the address.
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(
                matches!(refused(url), UrlRefusal::Internal { .. }),
                "{url} must be refused"
            );
        }
        let message = refused("http://169.254.169.254/").to_string();
        assert!(
            message.contains("a link-local address (169.254.169.254)"),
            "{message}"
        );
    }

    #[test]
    fn internal_addresses_are_allowed_when_configured() {
        assert!(check_url("http://127.0.0.1:3000/hook", true).is_ok());
        assert!(check_url("http://[::1]/hook", true).is_ok());
        // Scheme and credentials rules hold either way.
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for ip in [
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(internal_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference value computed independently:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let header = signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn event_names_and_statuses_round_trip() {
        for event in [
            WebhookEvent::DocumentDone,
            WebhookEvent::DocumentFailed,
            WebhookEvent::Ping,
        ] {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
        }
        for status in [
            DeliveryStatus::Queued,
            DeliveryStatus::Sending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(WebhookEvent::parse("document.cancelled"), None);
    }
}
