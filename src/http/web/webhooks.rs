//! The webhooks pages: register (the secret shown once), list, delete, send a test event,
//! and each webhook's delivery log.

use crate::domain::WebhookId;
use askama::Template;
use axum::{
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    render, shown_once,
    views::{DeliveryRow, Nav, WebhookRow},
};
use crate::{
    domain::User,
    http::{AppState, HtmlError, HtmlForm, RefusedOr, auth::CurrentUser},
    sessions::{set_flash, take_flash},
};

/// A webhook just registered: its secret is on this one page and nowhere else.
pub struct NewSecret {
    pub url: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "pages/webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    flash: Option<String>,
    error: Option<String>,
    form: CreateWebhookForm,
    new_secret: Option<NewSecret>,
    webhooks: Vec<WebhookRow>,
}

#[derive(Template)]
#[template(path = "pages/webhook.html")]
struct WebhookPage {
    nav: Nav,
    flash: Option<String>,
    webhook: WebhookRow,
    deliveries: Vec<DeliveryRow>,
    /// True while a delivery waits or is being sent: the log refreshes itself.
    pending: bool,
}

/// The register form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct CreateWebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
}

async fn list_page(
    state: &AppState,
    session: &Session,
    user: &User,
    error: Option<String>,
    form: CreateWebhookForm,
    new_secret: Option<NewSecret>,
) -> Result<WebhooksPage, HtmlError> {
    let webhooks = state.webhooks.list(user).await?;
    Ok(WebhooksPage {
        nav: Nav::new(session, Some(user)).await?,
        flash: take_flash(session).await,
        error,
        form,
        new_secret,
        webhooks: webhooks.into_iter().map(WebhookRow::from).collect(),
    })
}

/// The list and the register form.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, HtmlError> {
    let page = list_page(
        &state,
        &session,
        &user,
        None,
        CreateWebhookForm::default(),
        None,
    )
    .await?;
    Ok(render(&page)?.into_response())
}

/// Registers a webhook and shows its secret once; a refused URL shows the form again.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    HtmlForm(form): HtmlForm<CreateWebhookForm>,
) -> Result<Response, HtmlError> {
    match state
        .webhooks
        .register(&user, &form.url, &form.description)
        .await
        .or_refusal()?
    {
        Ok((webhook, secret)) => {
            let new_secret = Some(NewSecret {
                url: webhook.url,
                secret,
            });
            let form = CreateWebhookForm::default();
            let page = list_page(&state, &session, &user, None, form, new_secret).await?;
            Ok(shown_once(render(&page)?))
        }
        Err(refused) => {
            let message = Some(refused.message.clone());
            let page = list_page(&state, &session, &user, message, form, None).await?;
            Ok(refused.form_again(render(&page)?))
        }
    }
}

/// One webhook with its delivery log.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<WebhookId>,
) -> Result<Response, HtmlError> {
    let (webhook, deliveries) = state.webhooks.with_log(&user, &id).await?;
    let deliveries: Vec<DeliveryRow> = deliveries.into_iter().map(DeliveryRow::from).collect();
    let page = WebhookPage {
        nav: Nav::new(&session, Some(&user)).await?,
        flash: take_flash(&session).await,
        webhook: webhook.into(),
        pending: deliveries.iter().any(|d| d.pending),
        deliveries,
    };
    Ok(render(&page)?.into_response())
}

/// Queues a test event and goes back to the log.
pub async fn ping(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<WebhookId>,
) -> Result<Redirect, HtmlError> {
    state.webhooks.ping(&user, &id).await?;
    set_flash(
        &session,
        "A test event (ping) is on its way: its delivery is below.",
    )
    .await;
    Ok(Redirect::to(&format!("/webhooks/{id}")))
}

/// Deletes a webhook with its log.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<WebhookId>,
) -> Result<Redirect, HtmlError> {
    state.webhooks.delete(&user, &id).await?;
    set_flash(
        &session,
        "The webhook was deleted: no more events go to it.",
    )
    .await;
    Ok(Redirect::to("/webhooks"))
}
