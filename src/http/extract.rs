//! Extractors whose rejections go through [`AppError`], so that a body the framework cannot
//! read gets the same page (or problem) as any other refusal, with the framework's status.

use axum::{
    extract::{FromRequest, Request, rejection::FormRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use super::{AppError, HtmlError};

/// A url-encoded form (`application/x-www-form-urlencoded` only: a form in any other format
/// is refused with 415, never read as this one).
pub struct HtmlForm<T>(pub T);

impl<T, S> FromRequest<S> for HtmlForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HtmlError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(HtmlForm(value)),
            Err(rejection) => Err(HtmlError(rejection.into())),
        }
    }
}

impl From<FormRejection> for AppError {
    fn from(rejection: FormRejection) -> Self {
        AppError::Unreadable {
            status: rejection.status(),
            detail: rejection.body_text(),
        }
    }
}

/// The stable problem code of a framework rejection's status.
pub(super) fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::REQUEST_TIMEOUT => "request-timeout",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ => "bad-request",
    }
}
