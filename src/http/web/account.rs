//! The owner's account page: change the password, log out everywhere, delete the account;
//! and the page of a one-time reset link an administrator issued.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{render, views::Nav};
use crate::{
    app::accounts::{PasswordChange, PasswordError},
    domain::User,
    http::{
        AppState, HtmlError, HtmlForm, Refusal, RefusedOr,
        auth::{ClientIp, CurrentUser, end_session, redirect_with_device, start_session},
    },
    sessions::{set_flash, take_flash},
};

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    nav: Nav,
    flash: Option<String>,
    email: String,
    created_at: String,
    min_length: usize,
    password_error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/confirm_account_delete.html")]
struct ConfirmDeletePage {
    nav: Nav,
    email: String,
    documents: i64,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPage {
    nav: Nav,
    token: String,
    email: Option<String>,
    min_length: usize,
    error: Option<String>,
}

/// The password change form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
    revoke_tokens: Option<String>,
}

/// The "log out everywhere" form's fields.
#[derive(Deserialize)]
pub struct EndSessionsForm {
    revoke_tokens: Option<String>,
}

/// The account deletion form's fields.
#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    password: String,
}

/// The reset form's fields.
#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// The account page.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Html<String>, HtmlError> {
    render(&account_page(&state, &session, &user, None).await?)
}

async fn account_page(
    state: &AppState,
    session: &Session,
    user: &User,
    password_error: Option<String>,
) -> Result<AccountPage, HtmlError> {
    Ok(AccountPage {
        nav: Nav::new(session, Some(user)).await?,
        flash: take_flash(session).await,
        email: user.email.clone(),
        created_at: user.created_at.format("%Y-%m-%d").to_string(),
        min_length: state.config.password_min_length,
        password_error,
    })
}

/// Changes the password; this session goes on under the account's new session epoch, every
/// other one is over.
pub async fn change_password(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    ClientIp(ip): ClientIp,
    HtmlForm(form): HtmlForm<PasswordForm>,
) -> Result<Response, HtmlError> {
    let change = PasswordChange {
        current: &form.current,
        new: &form.new,
        confirmation: &form.confirm,
        revoke_tokens: form.revoke_tokens.is_some(),
        address: &ip,
    };
    let changed = state.accounts.change_password(&user, &change).await;
    match changed.or_refusal()? {
        Ok((epoch, device)) => {
            start_session(&session, &user, epoch).await?;
            set_flash(&session, password_changed(change.revoke_tokens)).await;
            let secure = state.config.is_https();
            Ok(redirect_with_device("/account", Some(&device), secure))
        }
        Err(refused) => {
            let message = Some(refused.message.clone());
            let page = account_page(&state, &session, &user, message).await?;
            Ok(refused.form_again(render(&page)?))
        }
    }
}

fn password_changed(tokens_revoked: bool) -> String {
    let revoked = match tokens_revoked {
        true => " and every API token revoked",
        false => "",
    };
    format!("Your password was changed: every other session ended{revoked}.")
}

/// Ends every session of the account, this one included.
pub async fn end_sessions(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    HtmlForm(form): HtmlForm<EndSessionsForm>,
) -> Result<Redirect, HtmlError> {
    state
        .accounts
        .end_sessions(&user, form.revoke_tokens.is_some())
        .await?;
    end_session(&session).await?;
    set_flash(&session, "You were logged out everywhere.").await;
    Ok(Redirect::to("/login"))
}

/// "Delete your account?", with the password to confirm.
pub async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
) -> Result<Html<String>, HtmlError> {
    render(&delete_page(&state, &session, &user, None).await?)
}

async fn delete_page(
    state: &AppState,
    session: &Session,
    user: &User,
    error: Option<String>,
) -> Result<ConfirmDeletePage, HtmlError> {
    Ok(ConfirmDeletePage {
        nav: Nav::new(session, Some(user)).await?,
        email: user.email.clone(),
        documents: state.documents.count(user).await?,
        error,
    })
}

/// Deletes the account and everything it holds, once its password is confirmed.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    ClientIp(ip): ClientIp,
    HtmlForm(form): HtmlForm<DeleteForm>,
) -> Result<Response, HtmlError> {
    let checked = state
        .accounts
        .check_password(&user, &form.password, &ip)
        .await;
    // Here it is the account's only password, not the "current" one of a change.
    let wrong = matches!(checked, Err(PasswordError::WrongPassword));
    if let Err(mut refused) = checked.or_refusal()? {
        if wrong {
            refused.message = "The password is wrong.".into();
        }
        let page = delete_page(&state, &session, &user, Some(refused.message.clone())).await?;
        return Ok(refused.form_again(render(&page)?));
    }
    state
        .accounts
        .delete_account(&user, state.documents.blobs())
        .await?;
    end_session(&session).await?;
    set_flash(&session, "Your account and everything in it were deleted.").await;
    Ok(Redirect::to("/login").into_response())
}

/// The page of a reset link: the form while the link works, the reason when it does not.
pub async fn reset_page(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
) -> Result<Response, HtmlError> {
    let user = state.accounts.reset_link_user(&token).await?;
    let status = if user.is_some() {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    let page = reset_form(&state, &session, token, user.map(|u| u.email), None).await?;
    Ok(private(status, render(&page)?))
}

async fn reset_form(
    state: &AppState,
    session: &Session,
    token: String,
    email: Option<String>,
    error: Option<String>,
) -> Result<ResetPage, HtmlError> {
    Ok(ResetPage {
        nav: Nav::new(session, None).await?,
        token,
        email,
        min_length: state.config.password_min_length,
        error,
    })
}

/// Sets the new password through a reset link, which is then used up.
pub async fn reset(
    State(state): State<AppState>,
    session: Session,
    Path(token): Path<String>,
    HtmlForm(form): HtmlForm<ResetForm>,
) -> Result<Response, HtmlError> {
    match state
        .accounts
        .reset_password(&token, &form.password, &form.confirm)
        .await
        .or_refusal()?
    {
        Ok(user) => {
            end_session(&session).await?;
            let email = user.email;
            set_flash(
                &session,
                format!("The password of {email} was changed: log in with it."),
            )
            .await;
            Ok(Redirect::to("/login").into_response())
        }
        Err(refused) => reset_refused(&state, &session, token, refused).await,
    }
}

/// The reset form again with the refusal; a link that no longer works (410) shows its page
/// without the form.
async fn reset_refused(
    state: &AppState,
    session: &Session,
    token: String,
    refused: Refusal,
) -> Result<Response, HtmlError> {
    let email = state.accounts.reset_link_user(&token).await?;
    let email = email.map(|user| user.email);
    let message = email.is_some().then(|| refused.message.clone());
    let page = reset_form(state, session, token, email, message).await?;
    let mut response = refused.form_again(render(&page)?);
    (response.headers_mut()).insert(header::CACHE_CONTROL, NO_STORE);
    Ok(response)
}

/// A page that holds a reset link in its address: not kept by caches.
fn private(status: StatusCode, page: Html<String>) -> Response {
    (status, [(header::CACHE_CONTROL, NO_STORE)], page).into_response()
}

const NO_STORE: header::HeaderValue = header::HeaderValue::from_static("no-store");
