//! `/api/v1/webhooks` handlers: register, list, delete, test, and read the delivery log.

use crate::domain::WebhookId;
use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    domain::webhook::{Delivery, DeliveryAttempt, DeliveryStatus, Webhook},
    http::{AppError, AppState, auth::ApiUser, error::Problem},
};

/// A webhook to register.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWebhookBody {
    /// Where to post events: an http(s) URL on a public address.
    pub url: String,
    /// What it is for (up to 200 characters).
    #[serde(default)]
    pub description: String,
}

/// A registered webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id (UUIDv7).
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Events sent to it: `document.done`, `document.failed` (and `ping` when asked).
    pub events: Vec<&'static str>,
    /// Its delivery log.
    pub deliveries: String,
}

impl From<Webhook> for WebhookView {
    fn from(webhook: Webhook) -> Self {
        WebhookView {
            deliveries: format!("/api/v1/webhooks/{}/deliveries", webhook.id),
            id: webhook.id.into(),
            url: webhook.url,
            description: webhook.description,
            created_at: webhook.created_at,
            events: vec!["document.done", "document.failed"],
        }
    }
}

/// A webhook just registered, with its signing secret (shown only in this answer).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewWebhookView {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Signs every delivery: `Lector-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>" with this secret>`.
    pub secret: String,
}

/// The caller's webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<WebhookView>,
}

/// One event owed to a webhook and what happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Sent as `Lector-Delivery`.
    pub id: i64,
    /// The event's id (the body's `id`): the same in every attempt.
    pub event_id: String,
    /// `document.done`, `document.failed` or `ping`.
    pub event: &'static str,
    /// The document it is about.
    pub document_id: Option<String>,
    /// `queued`, `sending`, `delivered` or `failed` (given up).
    pub status: &'static str,
    /// Attempts so far.
    pub attempts: i32,
    /// When the next attempt is due, while queued.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt, first first.
    pub log: Vec<AttemptView>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
    /// The receiver's HTTP status.
    pub status_code: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_excerpt: Option<String>,
}

impl From<DeliveryAttempt> for AttemptView {
    fn from(a: DeliveryAttempt) -> Self {
        AttemptView {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event: d.event.as_str(),
            document_id: d.document.map(|doc| doc.id),
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: (d.status == DeliveryStatus::Queued).then_some(d.run_at),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            finished_at: d.finished_at,
            log: d.log.into_iter().map(Into::into).collect(),
        }
    }
}

/// A webhook's newest deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first (at most 50).
    pub deliveries: Vec<DeliveryView>,
}

/// A test delivery, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingQueued {
    /// The delivery's id (see the delivery log).
    pub delivery_id: i64,
}

/// Register a webhook. Its secret is in this answer only.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateWebhookBody,
    responses(
        (status = 201, description = "Registered", body = NewWebhookView),
        (status = 400, description = "Not a JSON body with a url", body = Problem),
        (status = 408, description = "The body stopped arriving for LECTOR_HTTP_BODY_TIMEOUT_SECS; the connection is closed", body = Problem),
        (status = 422, description = "A URL Lector will not call, or too many webhooks", body = Problem),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    body: Result<Json<CreateWebhookBody>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    let (webhook, secret) = state
        .webhooks
        .register(&user, &body.url, &body.description)
        .await?;
    let location = format!("/api/v1/webhooks/{}", webhook.id);
    let view = NewWebhookView {
        webhook: webhook.into(),
        secret,
    };
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Json(view),
    )
        .into_response())
}

/// List the caller's webhooks.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList)))]
pub async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<WebhookList>, AppError> {
    let webhooks = state.webhooks.list(&user).await?;
    Ok(Json(WebhookList {
        webhooks: webhooks.into_iter().map(Into::into).collect(),
    }))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookView), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<WebhookId>,
) -> Result<Json<WebhookView>, AppError> {
    let webhook = state.webhooks.get(&user, &id).await?;
    Ok(Json(webhook.into()))
}

/// Delete a webhook and its delivery log.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<WebhookId>,
) -> Result<StatusCode, AppError> {
    state.webhooks.delete(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's delivery log: its newest 50 deliveries with every attempt.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<WebhookId>,
) -> Result<Json<DeliveryList>, AppError> {
    let (_, deliveries) = state.webhooks.with_log(&user, &id).await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.into_iter().map(Into::into).collect(),
    }))
}

/// Send a `ping` event to a webhook (to check the receiver and its signature check).
#[utoipa::path(post, path = "/webhooks/{id}/ping", tag = "webhooks",
    responses((status = 202, body = PingQueued), (status = 404, body = Problem)))]
pub async fn ping(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<WebhookId>,
) -> Result<(StatusCode, Json<PingQueued>), AppError> {
    let delivery_id = state.webhooks.ping(&user, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(PingQueued { delivery_id })))
}
