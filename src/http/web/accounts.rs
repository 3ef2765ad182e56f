//! Sign up, log in, log out.

use askama::Template;
use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{render, views::Nav};
use crate::{
    app::accounts::{LogIn, LogInAttempt, SignUpError},
    domain::User,
    http::{
        AppError, AppState, HtmlError, HtmlForm, Refusal, RefusedOr,
        auth::{
            ClientIp, device_cookie, end_session, redirect_with_device, session_user, start_session,
        },
    },
    sessions::{set_flash, take_flash},
};

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage {
    nav: Nav,
    flash: Option<String>,
    error: Option<String>,
    email: String,
    signup_open: bool,
}

#[derive(Template)]
#[template(path = "pages/signup.html")]
struct SignupPage {
    nav: Nav,
    error: Option<String>,
    email: String,
    min_length: usize,
    first: bool,
}

/// The log-in form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The sign-up form's fields.
#[derive(Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

impl LoginForm {
    /// The attempt this form makes from `address`, with the browser's `device` cookie.
    fn attempt<'a>(&'a self, address: &'a str, device: Option<&'a str>) -> LogInAttempt<'a> {
        LogInAttempt {
            email: &self.email,
            password: &self.password,
            address,
            device,
        }
    }
}

/// The log-in page; someone already signed in goes to their documents, and the very first
/// visitor (no account yet, sign-up allowed) to the sign-up page.
pub async fn login_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, HtmlError> {
    if session_user(&session, &state).await?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let signup = state.accounts.signup_state().await?;
    if signup.open && signup.first {
        return Ok(Redirect::to("/signup").into_response());
    }
    let page = LoginPage {
        nav: Nav::new(&session, None).await?,
        flash: take_flash(&session).await,
        error: None,
        email: String::new(),
        signup_open: signup.open,
    };
    Ok(render(&page)?.into_response())
}

/// Checks the credentials: attempts are limited per client address, and wrong passwords
/// slow down further tries for the account (see [`crate::app::accounts::throttle`]).
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<LoginForm>,
) -> Result<Response, HtmlError> {
    if let Err(limited) = state.limits.check_login(&ip) {
        tracing::warn!(client.ip = %ip, "log-in attempts over the limit");
        return login_error(&state, &session, form.email, too_many_attempts(limited)).await;
    }
    let device = device_cookie(&headers);
    let attempt = form.attempt(&ip, device.as_deref());
    match state.accounts.log_in(attempt).await? {
        LogIn::Welcome {
            user,
            session_epoch,
            new_device,
        } => {
            start_session(&session, &user, session_epoch).await?;
            tracing::info!(user.id = %user.id, "logged in");
            let secure = state.config.is_https();
            Ok(redirect_with_device("/", new_device.as_deref(), secure))
        }
        refused => login_error(&state, &session, form.email, refusal(refused, &ip)).await,
    }
}

/// Why a log-in that did not welcome the person was refused, in their words.
fn refusal(answer: LogIn, ip: &str) -> Refusal {
    match answer {
        LogIn::Wait(wait) => {
            tracing::warn!(client.ip = %ip, "log-in held back after wrong passwords");
            let seconds = wait.as_secs().max(1);
            Refusal::new(format!(
                "Too many wrong passwords for this account: wait {seconds} seconds and try again."
            ))
            .wait(seconds)
        }
        _ => {
            tracing::info!(client.ip = %ip, "log-in refused");
            Refusal::new("The e-mail or the password is wrong.")
        }
    }
}

/// The refusal for a client over the log-in rate limit.
fn too_many_attempts(limited: AppError) -> Refusal {
    let retry_after = match limited {
        AppError::TooManyRequests { retry_after } => retry_after,
        _ => 60,
    };
    Refusal::new(format!(
        "Too many log-in attempts: wait {retry_after} seconds and try again."
    ))
    .wait(retry_after)
}

/// The log-in page again with the refusal: 422, or 429 with `Retry-After` when held back.
async fn login_error(
    state: &AppState,
    session: &Session,
    email: String,
    refused: Refusal,
) -> Result<Response, HtmlError> {
    let page = LoginPage {
        nav: Nav::new(session, None).await?,
        flash: None,
        error: Some(refused.message.clone()),
        email,
        signup_open: state.accounts.signup_state().await?.open,
    };
    Ok(refused.form_again(render(&page)?))
}

/// The sign-up page, when the policy allows one now.
pub async fn signup_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, HtmlError> {
    let signup = state.accounts.signup_state().await?;
    if !signup.open {
        set_flash(&session, SignUpError::Closed.to_string()).await;
        return Ok(Redirect::to("/login").into_response());
    }
    let page = signup_form(&state, &session, signup.first, None, String::new()).await?;
    Ok(render(&page)?.into_response())
}

async fn signup_form(
    state: &AppState,
    session: &Session,
    first: bool,
    error: Option<String>,
    email: String,
) -> Result<SignupPage, HtmlError> {
    Ok(SignupPage {
        nav: Nav::new(session, None).await?,
        error,
        email,
        min_length: state.config.password_min_length,
        first,
    })
}

/// Creates the account and signs it in; a bad field shows the form again with the reason.
/// Each sign-up from an address counts against a tight hourly limit, since its answer says
/// whether the e-mail has an account.
pub async fn signup(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    HtmlForm(form): HtmlForm<SignupForm>,
) -> Result<Response, HtmlError> {
    match sign_up(&state, &ip, &form).await?.or_refusal()? {
        Ok(user) => {
            start_session(&session, &user, 0).await?;
            set_flash(&session, "Welcome! Upload a PDF to begin.").await;
            let device = state.accounts.remember_device(&user).await?;
            let secure = state.config.is_https();
            Ok(redirect_with_device("/", Some(&device), secure))
        }
        Err(refused) => {
            let first = state.accounts.signup_state().await?.first;
            let message = Some(refused.message.clone());
            let page = signup_form(&state, &session, first, message, form.email).await?;
            Ok(refused.form_again(render(&page)?))
        }
    }
}

/// Checks the form before counting the sign-up against the address's hourly limit, so a
/// typo costs nothing.
async fn sign_up(
    state: &AppState,
    ip: &str,
    form: &SignupForm,
) -> Result<Result<User, SignUpError>, HtmlError> {
    let accounts = &state.accounts;
    if let Err(refused) = accounts.check_sign_up(&form.email, &form.password, &form.confirm) {
        return Ok(Err(refused));
    }
    state.limits.check_signup(ip)?;
    Ok(accounts
        .sign_up(&form.email, &form.password, &form.confirm)
        .await)
}

/// Signs out and deletes the session.
pub async fn logout(session: Session) -> Result<Redirect, HtmlError> {
    end_session(&session).await?;
    Ok(Redirect::to("/login"))
}
