//! The one way an HTML handler shows a use case's refusal: the form again, with the reason
//! above it and the status that says why (422, or 409, 403, 410, 429 with `Retry-After`),
//! while an error that is ours goes on to the 500 page. Each use-case error says here which
//! of its kinds are the user's to fix.

use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use super::{AppError, HtmlError};
use crate::app::{
    accounts::{PasswordError, SignUpError, TokenError},
    documents::{ReprocessError, UploadError},
    webhooks::WebhookError,
};

/// Why the form is shown again.
#[derive(Debug)]
pub struct Refusal {
    /// The reason, for the person who filled the form.
    pub message: String,
    status: StatusCode,
    retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal the user can fix by changing the form (422).
    pub fn new(message: impl Into<String>) -> Self {
        Refusal {
            message: message.into(),
            status: StatusCode::UNPROCESSABLE_ENTITY,
            retry_after: None,
        }
    }

    /// The same refusal answered with `status`.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same refusal answered with 429 and `Retry-After`.
    pub fn wait(mut self, seconds: u64) -> Self {
        self.status = StatusCode::TOO_MANY_REQUESTS;
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// `page` (the form again, showing [`Refusal::message`]) with the refusal's status.
    pub fn form_again(&self, page: Html<String>) -> Response {
        let mut response = (self.status, page).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// A use-case error, split into what the user can fix and what is ours.
pub trait Refusable {
    /// The refusal to show with the form, or the error for the error page.
    fn into_refusal(self) -> Result<Refusal, AppError>;
}

/// `result?`, keeping refusals for the form: `Ok(Err(refusal))` shows the form again.
pub trait RefusedOr<T> {
    /// Splits off the refusals; any other error ends the handler with the error page.
    fn or_refusal(self) -> Result<Result<T, Refusal>, HtmlError>;
}

impl<T, E: Refusable> RefusedOr<T> for Result<T, E> {
    fn or_refusal(self) -> Result<Result<T, Refusal>, HtmlError> {
        match self {
            Ok(value) => Ok(Ok(value)),
            Err(error) => error.into_refusal().map(Err).map_err(HtmlError::from),
        }
    }
}

impl Refusable for WebhookError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            WebhookError::Storage(_) | WebhookError::NotFound => Err(self.into()),
            refused => Ok(Refusal::new(refused.to_string())),
        }
    }
}

impl Refusable for PasswordError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            PasswordError::Internal(error) => Err(AppError::Internal(error)),
            PasswordError::Wait(wait) => Ok(Refusal::new(self.to_string()).wait(wait.as_secs())),
            PasswordError::LinkExpired => {
                Ok(Refusal::new(self.to_string()).with_status(StatusCode::GONE))
            }
            refused => Ok(Refusal::new(refused.to_string())),
        }
    }
}

impl Refusable for SignUpError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        let status = match self {
            SignUpError::Internal(error) => return Err(AppError::Internal(error)),
            SignUpError::Closed => StatusCode::FORBIDDEN,
            SignUpError::Taken => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Ok(Refusal::new(self.to_string()).with_status(status))
    }
}

impl Refusable for TokenError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            TokenError::Storage(error) => Err(error.into()),
            refused => Ok(Refusal::new(refused.to_string())),
        }
    }
}

impl Refusable for ReprocessError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            ReprocessError::Storage(error) => Err(error.into()),
            refused => Ok(Refusal::new(refused.to_string())),
        }
    }
}

impl Refusable for UploadError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            UploadError::Internal(error) => Err(AppError::Internal(error)),
            refused => Ok(Refusal::new(refused.to_string())),
        }
    }
}

/// What the HTTP layer itself refuses while reading a form (a file too large, a broken
/// multipart body), with the status the API would answer.
impl Refusable for AppError {
    fn into_refusal(self) -> Result<Refusal, AppError> {
        match self {
            AppError::Forbidden(_)
            | AppError::Internal(_)
            | AppError::Upload(UploadError::Internal(_)) => Err(self),
            refused => Ok(Refusal::new(refused.public_message()).with_status(refused.status())),
        }
    }
}
