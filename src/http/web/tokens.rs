//! The API tokens page: create (shown once), list with last use, revoke.

use crate::domain::TokenId;
use askama::Template;
use axum::{
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    render, shown_once,
    views::{Nav, TokenRow},
};
use crate::{
    domain::User,
    http::{AppError, AppState, HtmlError, HtmlForm, RefusedOr, auth::CurrentUser},
    sessions::{set_flash, take_flash},
};

/// A token just created: its secret is on this one page and nowhere else.
pub struct NewToken {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "pages/tokens.html")]
struct TokensPage {
    nav: Nav,
    flash: Option<String>,
    error: Option<String>,
    new_token: Option<NewToken>,
    tokens: Vec<TokenRow>,
    api_base: String,
}

/// The create form's field.
#[derive(Deserialize)]
pub struct CreateTokenForm {
    #[serde(default)]
    name: String,
}

async fn page(
    state: &AppState,
    session: &Session,
    user: &User,
    error: Option<String>,
    new_token: Option<NewToken>,
) -> Result<TokensPage, HtmlError> {
    let tokens = state.accounts.tokens(user).await?;
    Ok(TokensPage {
        nav: Nav::new(session, Some(user)).await?,
        flash: take_flash(session).await,
        error,
        new_token,
        tokens: tokens.into_iter().map(TokenRow::from).collect(),
        api_base: state.config.base_url(),
    })
}

/// The list and the create form.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Response, HtmlError> {
    Ok(render(&page(&state, &session, &user, None, None).await?)?.into_response())
}

/// Creates a token and shows it once. The page is not cached anywhere.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    HtmlForm(form): HtmlForm<CreateTokenForm>,
) -> Result<Response, HtmlError> {
    match state
        .accounts
        .create_token(&user, &form.name)
        .await
        .or_refusal()?
    {
        Ok((record, secret)) => {
            let new_token = NewToken {
                name: record.name,
                secret,
            };
            let html = render(&page(&state, &session, &user, None, Some(new_token)).await?)?;
            Ok(shown_once(html))
        }
        Err(refused) => {
            let message = Some(refused.message.clone());
            let html = render(&page(&state, &session, &user, message, None).await?)?;
            Ok(refused.form_again(html))
        }
    }
}

/// Revokes one of the user's tokens (someone else's is not found).
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<TokenId>,
) -> Result<Redirect, HtmlError> {
    if !state.accounts.revoke_token(&user, &id).await? {
        return Err(AppError::NotFound.into());
    }
    set_flash(&session, "The token was revoked: it no longer works.").await;
    Ok(Redirect::to("/tokens"))
}
