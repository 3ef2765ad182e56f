//! The HTTP layer's one error type, and its two renderings: problem+json for the API and an
//! HTML page for the browser.

use askama::Template;
use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    app::documents::{ReprocessError, UploadError},
    storage,
};

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such document (or route).
    #[error("not found")]
    NotFound,
    /// An upload was refused.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A request parameter is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The framework could not read the request: its content type, its body.
    #[error("{detail}")]
    Unreadable {
        /// 400, 408, 413, 415 or 422, as the reason calls for.
        status: StatusCode,
        /// What was wrong, for the client.
        detail: String,
    },
    /// A search that cannot be run (its query, a filter, the page).
    #[error("{0}")]
    InvalidSearch(String),
    /// A webhook that cannot be registered (its URL, its description, too many).
    #[error("{0}")]
    InvalidWebhook(String),
    /// No such webhook (or not the caller's).
    #[error("no such webhook")]
    NoSuchWebhook,
    /// The request conflicts with the document's state.
    #[error("{0}")]
    Conflict(String),
    /// No valid API token (`invalid` when one was sent but is wrong or revoked).
    #[error("{}", if *invalid { "the API token is invalid or has been revoked" } else { "an API token is required: send Authorization: Bearer <token>" })]
    Unauthorized {
        /// A token was sent but is not valid.
        invalid: bool,
    },
    /// Refused for the reason given (a forged or expired form).
    #[error("{0}")]
    Forbidden(String),
    /// Over a rate limit.
    #[error("too many requests: try again in {retry_after} s")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// Our fault. The client sees no detail.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<storage::Error> for AppError {
    fn from(err: storage::Error) -> Self {
        match err {
            storage::Error::NotFound => AppError::NotFound,
            storage::Error::Conflict => {
                AppError::Conflict("conflicts with an existing document".into())
            }
            storage::Error::Other(other) => AppError::Internal(other),
        }
    }
}

impl From<crate::app::search::SearchError> for AppError {
    fn from(err: crate::app::search::SearchError) -> Self {
        AppError::InvalidSearch(err.to_string())
    }
}

impl From<crate::app::webhooks::WebhookError> for AppError {
    fn from(err: crate::app::webhooks::WebhookError) -> Self {
        match err {
            crate::app::webhooks::WebhookError::Storage(storage) => storage.into(),
            crate::app::webhooks::WebhookError::NotFound => AppError::NoSuchWebhook,
            refused => AppError::InvalidWebhook(refused.to_string()),
        }
    }
}

impl From<ReprocessError> for AppError {
    fn from(err: ReprocessError) -> Self {
        match err {
            ReprocessError::InvalidOcr(reason) => AppError::Upload(UploadError::InvalidOcr(reason)),
            ReprocessError::Storage(storage) => storage.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, for a person.
    pub detail: String,
    /// A stable machine-readable name (`not-a-pdf`, `too-large`, …).
    pub code: String,
}

impl AppError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound | AppError::NoSuchWebhook => StatusCode::NOT_FOUND,
            AppError::InvalidWebhook(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) | AppError::InvalidSearch(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unreadable { status, .. } => *status,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Upload(upload) => match upload {
                UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                UploadError::NotPdf => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                UploadError::NoFile
                | UploadError::BadRequest(_)
                | UploadError::TooManyFiles { .. } => StatusCode::BAD_REQUEST,
                UploadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::NotFound | AppError::NoSuchWebhook => "not-found",
            AppError::InvalidWebhook(_) => "invalid-webhook",
            AppError::BadRequest(_) => "bad-request",
            AppError::InvalidSearch(_) => "invalid-search",
            AppError::Conflict(_) => "conflict",
            AppError::Unreadable { status, .. } => super::extract::rejection_code(*status),
            AppError::Unauthorized { .. } => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::TooManyRequests { .. } => "rate-limited",
            AppError::Internal(_) => "internal",
            AppError::Upload(upload) => upload_code(upload),
        }
    }

    /// What the client may be told: internal errors stay opaque.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) | AppError::Upload(UploadError::Internal(_)) => {
                "something went wrong on our side; it has been logged".into()
            }
            AppError::NotFound => "no such document".into(),
            other => other.to_string(),
        }
    }

    /// Logs the error once: 5xx as errors with the full chain, 4xx at debug.
    fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(error = %format!("{self:#}"), "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
    }

    /// `WWW-Authenticate` on 401 (RFC 6750) and `Retry-After` on 429.
    fn add_headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        match self {
            AppError::Unauthorized { invalid } => {
                let challenge = if *invalid {
                    r#"Bearer realm="lector", error="invalid_token""#
                } else {
                    r#"Bearer realm="lector""#
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(challenge),
                );
            }
            AppError::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after));
            }
            _ => {}
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            kind: format!("/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: self.public_message(),
            code: self.code().into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        self.add_headers(&mut response);
        response
    }
}

/// An [`AppError`] shown to a browser as a page.
#[derive(Debug)]
pub struct HtmlError(pub AppError);

impl<E: Into<AppError>> From<E> for HtmlError {
    fn from(err: E) -> Self {
        HtmlError(err.into())
    }
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage {
    nav: super::web::Nav,
    status: u16,
    title: String,
    message: String,
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let page = ErrorPage {
            nav: super::web::Nav::default(),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            message: self.0.public_message(),
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, self.0.public_message()).into_response(),
        };
        self.0.add_headers(&mut response);
        response
    }
}

/// A stable machine-readable name for an upload's refusal, for the API.
fn upload_code(error: &UploadError) -> &'static str {
    match error {
        UploadError::NoFile => "no-file",
        UploadError::Empty => "empty-file",
        UploadError::NotPdf => "not-a-pdf",
        UploadError::TooLarge { .. } => "too-large",
        UploadError::TooManyPages { .. } => "too-many-pages",
        UploadError::TooManyFiles { .. } => "too-many-files",
        UploadError::EngineLimit(_) => "engine-limit",
        UploadError::InvalidOcr(_) => "invalid-ocr-settings",
        UploadError::Refused(crate::engines::OpenError::PasswordRequired) => "password-required",
        UploadError::Refused(crate::engines::OpenError::WrongPassword) => "wrong-password",
        UploadError::Refused(crate::engines::OpenError::NoPages) => "no-pages",
        UploadError::Refused(crate::engines::OpenError::Unreadable(_))
        | UploadError::ParserFailed(_) => "unreadable-pdf",
        UploadError::BadRequest(_) => "bad-request",
        UploadError::Internal(_) => "internal",
    }
}
