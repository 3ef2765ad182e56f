//! `/api/v1/documents` handlers.

use crate::domain::DocumentId;
use axum::{
    Json,
    extract::{Multipart, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use validator::Validate;

use super::views::{DocumentList, DocumentView, ListQuery, PageList};
use crate::{
    app::documents::UploadError,
    http::{AppError, AppState, auth::ApiUser, downloads, error::Problem, upload::read_upload},
};

/// Upload a PDF (multipart field `file`, optional `password`).
#[utoipa::path(post, path = "/documents", tag = "documents",
    request_body(content = super::views::UploadBody, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Stored and queued", body = DocumentView),
        (status = 200, description = "The same bytes were uploaded before", body = DocumentView),
        (status = 400, description = "Not a multipart form, or no file in it", body = Problem),
        (status = 408, description = "The body stopped arriving for LECTOR_HTTP_BODY_TIMEOUT_SECS; the connection is closed", body = Problem),
        (status = 413, description = "Too large", body = Problem),
        (status = 415, description = "Not a PDF", body = Problem),
        (status = 422, description = "Empty, unreadable, password-protected or too many pages", body = Problem),
        (status = 429, description = "Too many uploads; see Retry-After", body = Problem),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    multipart: Multipart,
) -> Result<Response, AppError> {
    state.limits.check_upload(user.id.as_str())?;
    let dir = state.documents.uploads_dir();
    let form = read_upload(multipart, dir, state.config.max_upload_bytes, 1).await?;
    let file = form.files.into_iter().next().ok_or(UploadError::NoFile)?;
    let uploaded = state
        .documents
        .upload(Some(&user), file, form.password, &form.ocr)
        .await?;
    let location = format!("/api/v1/documents/{}", uploaded.document.id);
    let status = if uploaded.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let mut view = DocumentView::new(uploaded.document);
    view.duplicate = Some(uploaded.duplicate);
    Ok((status, [(header::LOCATION, location)], Json(view)).into_response())
}

/// List documents, newest first.
#[utoipa::path(get, path = "/documents", tag = "documents", params(ListQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<DocumentList>, AppError> {
    query
        .validate()
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let limit = query.limit.unwrap_or(50);
    let (documents, next_cursor) = state
        .documents
        .list_after(&user, query.cursor.as_deref(), limit)
        .await?;
    Ok(Json(DocumentList {
        documents: documents.into_iter().map(DocumentView::new).collect(),
        next_cursor,
    }))
}

/// One document: status, progress, error, timings.
#[utoipa::path(get, path = "/documents/{id}", tag = "documents",
    responses((status = 200, body = DocumentView), (status = 404, body = Problem)))]
pub async fn show(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<Json<DocumentView>, AppError> {
    Ok(Json(DocumentView::new(
        state.documents.get_owned(&user, &id).await?,
    )))
}

/// The pages extracted so far.
#[utoipa::path(get, path = "/documents/{id}/pages", tag = "documents",
    responses((status = 200, body = PageList), (status = 404, body = Problem)))]
pub async fn pages(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<Json<PageList>, AppError> {
    let document = state.documents.get_owned(&user, &id).await?;
    let pages = state.documents.pages(&document).await?;
    Ok(Json(PageList {
        document_id: document.id.into(),
        pages,
    }))
}

/// All text, pages separated by a form feed (`\f`).
#[utoipa::path(get, path = "/documents/{id}/text", tag = "documents",
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = Problem)))]
pub async fn text(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<Response, AppError> {
    let document = state.documents.get_owned(&user, &id).await?;
    downloads::plain_text(&state, document, false).await
}

/// The original PDF.
#[utoipa::path(get, path = "/documents/{id}/file", tag = "documents",
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = Problem)))]
pub async fn file(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<Response, AppError> {
    let document = state.documents.get_owned(&user, &id).await?;
    downloads::original_pdf(&state, document).await
}

/// Clear the pages and extract again, optionally with other OCR choices.
#[utoipa::path(post, path = "/documents/{id}/reprocess", tag = "documents",
    request_body(content = Option<super::views::ReprocessBody>, content_type = "application/json"),
    responses((status = 202, body = DocumentView), (status = 404, body = Problem),
        (status = 422, description = "Unknown OCR mode or language not installed", body = Problem)))]
pub async fn reprocess(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
    body: Option<Json<super::views::ReprocessBody>>,
) -> Result<Response, AppError> {
    state.documents.get_owned(&user, &id).await?;
    let ocr = body.map(|Json(b)| b).unwrap_or_default().into();
    let document = state.documents.reprocess(&id, &ocr).await?;
    Ok((StatusCode::ACCEPTED, Json(DocumentView::new(document))).into_response())
}

/// Stop a queued or running extraction.
#[utoipa::path(post, path = "/documents/{id}/cancel", tag = "documents",
    responses((status = 200, body = DocumentView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<Json<DocumentView>, AppError> {
    state.documents.get_owned(&user, &id).await?;
    if !state.documents.cancel(&id).await? {
        return Err(AppError::Conflict(
            "the document has already finished; nothing to cancel".into(),
        ));
    }
    Ok(Json(DocumentView::new(
        state.documents.get_owned(&user, &id).await?,
    )))
}

/// Delete the document, its original and its pages.
#[utoipa::path(delete, path = "/documents/{id}", tag = "documents",
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<DocumentId>,
) -> Result<StatusCode, AppError> {
    let document = state.documents.get_owned(&user, &id).await?;
    state.documents.delete(&document).await?;
    Ok(StatusCode::NO_CONTENT)
}
