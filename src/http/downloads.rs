//! Responses that hand a document back: the original PDF, its text, its pages as JSON.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{AppError, AppState};
use crate::domain::{Document, upload::ascii_file_name};

/// `attachment; filename="…"; filename*=UTF-8''…` from an already cleaned file name.
pub fn attachment(file_name: &str) -> HeaderValue {
    let ascii = ascii_file_name(file_name);
    let utf8 = utf8_percent_encode(file_name, NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{utf8}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The original PDF, streamed from storage chunk by chunk.
pub async fn original_pdf(state: &AppState, document: Document) -> Result<Response, AppError> {
    let body = axum::body::Body::from_stream(state.documents.original(&document).await?);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, attachment(&document.file_name)),
            (
                header::CONTENT_LENGTH,
                HeaderValue::from(document.size_bytes),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response())
}

/// Every page's text, pages separated by a form feed.
pub async fn plain_text(
    state: &AppState,
    document: Document,
    as_attachment: bool,
) -> Result<Response, AppError> {
    let pages = state.documents.pages(&document).await?;
    let text = pages
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\x0c");
    let mut response =
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    if as_attachment {
        let name = format!(
            "{}.txt",
            document
                .file_name
                .trim_end_matches(".pdf")
                .trim_end_matches(".PDF")
        );
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, attachment(&name));
    }
    Ok(response)
}
