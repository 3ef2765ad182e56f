//! Sign up, log in, log out.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{render, views::Nav};
use crate::{
    app::accounts::{LogIn, LogInAttempt, SignUpError},
    http::{
        AppError, AppState, HtmlError, HtmlForm,
        auth::{
            ClientIp, device_cookie, end_session, session_user, set_device_cookie, start_session,
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
        let retry_after = match limited {
            AppError::TooManyRequests { retry_after } => retry_after,
            _ => 60,
        };
        let message =
            format!("Too many log-in attempts: wait {retry_after} seconds and try again.");
        return login_error(&state, &session, form.email, message, Some(retry_after)).await;
    }
    let device = device_cookie(&headers);
    let attempt = LogInAttempt {
        email: &form.email,
        password: &form.password,
        address: &ip,
        device: device.as_deref(),
    };
    match state.accounts.log_in(attempt).await? {
        LogIn::Welcome {
            user,
            session_epoch,
            new_device,
        } => {
            start_session(&session, &user, session_epoch).await?;
            tracing::info!(user.id = %user.id, "logged in");
            let mut response = Redirect::to("/").into_response();
            if let Some(token) = new_device {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    set_device_cookie(&token, state.config.is_https()),
                );
            }
            Ok(response)
        }
        LogIn::Refused => {
            tracing::info!(client.ip = %ip, "log-in refused");
            let message = "The e-mail or the password is wrong.".to_owned();
            login_error(&state, &session, form.email, message, None).await
        }
        LogIn::Wait(wait) => {
            tracing::warn!(client.ip = %ip, "log-in held back after wrong passwords");
            let retry_after = wait.as_secs().max(1);
            let message = format!(
                "Too many wrong passwords for this account: wait {retry_after} seconds and try again."
            );
            login_error(&state, &session, form.email, message, Some(retry_after)).await
        }
    }
}

/// The log-in page again with `message`: 422, or 429 with `Retry-After` when rate-limited.
async fn login_error(
    state: &AppState,
    session: &Session,
    email: String,
    message: String,
    retry_after: Option<u64>,
) -> Result<Response, HtmlError> {
    let page = LoginPage {
        nav: Nav::new(session, None).await?,
        flash: None,
        error: Some(message),
        email,
        signup_open: state.accounts.signup_state().await?.open,
    };
    let Some(retry_after) = retry_after else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    };
    Ok((
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, retry_after)],
        render(&page)?,
    )
        .into_response())
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
    let result = match state
        .accounts
        .check_sign_up(&form.email, &form.password, &form.confirm)
    {
        Ok(()) => {
            state.limits.check_signup(&ip)?;
            state
                .accounts
                .sign_up(&form.email, &form.password, &form.confirm)
                .await
        }
        Err(refused) => Err(refused),
    };
    match result {
        Ok(user) => {
            start_session(&session, &user, 0).await?;
            set_flash(&session, "Welcome! Upload a PDF to begin.").await;
            let device = state.accounts.remember_device(&user).await?;
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_device_cookie(&device, state.config.is_https()),
            );
            Ok(response)
        }
        Err(SignUpError::Internal(error)) => Err(AppError::Internal(error).into()),
        Err(refused) => {
            let status = match refused {
                SignUpError::Closed => StatusCode::FORBIDDEN,
                SignUpError::Taken => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let first = state.accounts.signup_state().await?.first;
            let page = signup_form(
                &state,
                &session,
                first,
                Some(refused.to_string()),
                form.email,
            )
            .await?;
            Ok((status, render(&page)?).into_response())
        }
    }
}

/// Signs out and deletes the session.
pub async fn logout(session: Session) -> Result<Redirect, HtmlError> {
    end_session(&session).await?;
    Ok(Redirect::to("/login"))
}
