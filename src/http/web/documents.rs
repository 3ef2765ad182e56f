//! Pages and fragments about documents.

use crate::domain::DocumentId;
use askama::Template;
use axum::{
    extract::{Multipart, Path, Query, State},
    http::HeaderMap,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    render,
    views::{DocumentSummary, Nav, PageSection, SearchNote},
};
use crate::{
    app::documents::{OcrRequest, UploadError, Uploaded, human_bytes},
    config::Config,
    domain::{User, upload::clean_file_name},
    http::{
        AppState, HtmlError, HtmlForm, Refusal, RefusedOr,
        auth::CurrentUser,
        downloads,
        upload::{UploadForm, read_upload},
    },
    sessions::{set_flash, take_flash},
};

const PER_PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "pages/index.html")]
struct IndexPage {
    nav: Nav,
    flash: Option<String>,
    documents: Vec<DocumentSummary>,
    page: i64,
    total_pages: i64,
    errors: Vec<String>,
    max_upload: String,
    max_pages: u32,
    ocr_mode: &'static str,
    ocr_languages: String,
    installed_languages: String,
}

#[derive(Template)]
#[template(path = "pages/document.html")]
struct DocumentPage {
    nav: Nav,
    flash: Option<String>,
    textract_note: Option<String>,
    form_error: Option<String>,
    ocr_languages: String,
    note: Option<String>,
    doc: DocumentSummary,
    error: Option<String>,
    pages: Vec<PageSection>,
    search: Option<SearchNote>,
}

#[derive(Template)]
#[template(path = "partials/progress.html")]
pub(super) struct ProgressFragment {
    pub(super) doc: DocumentSummary,
}

#[derive(Template)]
#[template(path = "partials/document_row.html")]
struct RowFragment {
    doc: DocumentSummary,
}

#[derive(Template)]
#[template(path = "pages/confirm_delete.html")]
struct ConfirmDeletePage {
    nav: Nav,
    doc: DocumentSummary,
}

/// `?page=N` of the index.
#[derive(Deserialize)]
pub struct IndexQuery {
    page: Option<i64>,
}

/// The index: upload form and the user's documents, newest first.
pub async fn index(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Query(query): Query<IndexQuery>,
) -> Result<Html<String>, HtmlError> {
    let page = query.page.unwrap_or(1);
    render(&index_page(&state, &session, &user, page, vec![]).await?)
}

async fn index_page(
    state: &AppState,
    session: &Session,
    user: &User,
    page: i64,
    errors: Vec<String>,
) -> Result<IndexPage, HtmlError> {
    let listing = state.documents.listing(user, page, PER_PAGE).await?;
    Ok(IndexPage {
        nav: Nav::new(session, Some(user)).await?,
        flash: take_flash(session).await,
        documents: listing
            .documents
            .iter()
            .map(DocumentSummary::from)
            .collect(),
        page: listing.page,
        total_pages: listing.total_pages,
        errors,
        max_upload: human_bytes(state.config.max_upload_bytes),
        max_pages: state.config.max_pages,
        ocr_mode: state.config.ocr.mode.as_str(),
        ocr_languages: state.config.ocr.languages.clone(),
        installed_languages: state.documents.ocr_availability().languages().join(", "),
    })
}

/// The upload form's target: one or several PDFs (rate-limited per user).
pub async fn upload(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    multipart: Multipart,
) -> Result<Response, HtmlError> {
    state.limits.check_upload(user.id.as_str())?;
    let form = match read_form(&state, multipart).await? {
        Ok(form) => form,
        Err(refused) => {
            let errors = vec![refused.message.clone()];
            return form_error(&state, &session, &user, errors, refused).await;
        }
    };
    let (stored, errors) = store_files(&state, &user, form).await?;
    if !errors.is_empty() {
        let refused = Refusal::new(errors.join(" "));
        return form_error(&state, &session, &user, errors, refused).await;
    }
    set_flash(&session, uploaded_flash(&stored)).await;
    match stored.as_slice() {
        [only] => Ok(Redirect::to(&format!("/documents/{}", only.document.id)).into_response()),
        _ => Ok(Redirect::to("/").into_response()),
    }
}

/// The files and fields of the form, or why they were refused (a form without a file too).
async fn read_form(
    state: &AppState,
    multipart: Multipart,
) -> Result<Result<UploadForm, Refusal>, HtmlError> {
    let config = &state.config;
    let read = read_upload(
        multipart,
        state.documents.uploads_dir(),
        config.max_upload_bytes,
        config.max_files_per_upload,
    );
    Ok(match read.await.or_refusal()? {
        Ok(form) if form.files.is_empty() => Err(Refusal::new(UploadError::NoFile.to_string())),
        read => read,
    })
}

fn uploaded_flash(stored: &[Uploaded]) -> String {
    match stored {
        [only] if only.duplicate => format!("{} was already uploaded.", only.document.file_name),
        [only] => format!("{} was uploaded.", only.document.file_name),
        _ => format!("{} files were uploaded.", stored.len()),
    }
}

/// Stores each file of the form; the refused ones are listed by name (with a word on the
/// others, which were stored anyway).
async fn store_files(
    state: &AppState,
    user: &User,
    form: UploadForm,
) -> Result<(Vec<Uploaded>, Vec<String>), HtmlError> {
    let (mut stored, mut errors) = (Vec::new(), Vec::new());
    for file in form.files {
        let name = clean_file_name(&file.file_name);
        let upload = (state.documents).upload(Some(user), file, form.password.clone(), &form.ocr);
        match upload.await.or_refusal()? {
            Ok(uploaded) => stored.push(uploaded),
            Err(refused) => errors.push(format!("{name}: {}", refused.message)),
        }
    }
    if !errors.is_empty() && !stored.is_empty() {
        errors.push(format!("The other {} file(s) were uploaded.", stored.len()));
    }
    Ok((stored, errors))
}

/// The index again with every file's refusal listed above the form.
async fn form_error(
    state: &AppState,
    session: &Session,
    user: &User,
    errors: Vec<String>,
    refused: Refusal,
) -> Result<Response, HtmlError> {
    let page = index_page(state, session, user, 1, errors).await?;
    Ok(refused.form_again(render(&page)?))
}

/// `?q=` of a document page opened from a search result.
#[derive(Deserialize)]
pub struct ShowQuery {
    q: Option<String>,
}

/// A document: progress while it runs, then the text of every page; with `?q=`, the pages
/// that match are listed and their hits highlighted.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
    Query(query): Query<ShowQuery>,
) -> Result<Html<String>, HtmlError> {
    document_page(&state, &session, &user, &id, None, query.q.as_deref()).await
}

async fn document_page(
    state: &AppState,
    session: &Session,
    user: &User,
    id: &DocumentId,
    form_error: Option<String>,
    search: Option<&str>,
) -> Result<Html<String>, HtmlError> {
    let document = state.documents.get_owned(user, id).await?;
    let pages = state.documents.pages(&document).await?;
    let highlights = match search.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) => (state.search.highlight(&document, q).await?).map(|pages| (q, pages)),
        None => None,
    };
    let textract_pages = state.documents.textract_pages(&document).await?;
    render(&DocumentPage {
        nav: Nav::new(session, Some(user)).await?,
        textract_note: textract_note(textract_pages, &state.config),
        flash: take_flash(session).await,
        form_error,
        ocr_languages: state.documents.ocr_availability().languages().join(", "),
        error: document.error.clone(),
        note: document.note.clone(),
        doc: DocumentSummary::from(&document),
        search: highlights
            .as_ref()
            .map(|(q, found)| SearchNote::new(q, found)),
        pages: PageSection::highlighted(pages, highlights.map(|(_, found)| found)),
    })
}

/// "12 pages read by Textract · estimated cost $0.0180", when any were.
fn textract_note(textract_pages: i64, config: &Config) -> Option<String> {
    let price = config.textract_price_per_1000_pages;
    let cost = crate::app::status::estimated_cost(textract_pages, price);
    (textract_pages > 0)
        .then(|| format!("{textract_pages} pages read by Textract · estimated cost ${cost:.4}"))
}

/// The progress fragment the document page polls; tells htmx to reload once finished so
/// the text appears.
pub async fn progress(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
    headers: HeaderMap,
) -> Result<Response, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    let html = render(&ProgressFragment {
        doc: DocumentSummary::from(&document),
    })?;
    if document.status.is_finished() && headers.contains_key("hx-request") {
        return Ok(([("hx-refresh", "true")], html).into_response());
    }
    Ok(html.into_response())
}

/// One row of the index, for htmx to refresh.
pub async fn row(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Html<String>, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    render(&RowFragment {
        doc: DocumentSummary::from(&document),
    })
}

/// The original, as a download.
pub async fn original(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Response, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    Ok(downloads::original_pdf(&state, document).await?)
}

/// The text, as a `.txt` download.
pub async fn text(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Response, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    Ok(downloads::plain_text(&state, document, true).await?)
}

/// The re-process form's fields; empty ones keep the document's current choices.
#[derive(Debug, Default, Deserialize)]
pub struct ReprocessForm {
    ocr: Option<String>,
    ocr_languages: Option<String>,
}

/// Queue the document again, with the OCR choices of the form. A bad choice shows the
/// document page again with the message.
pub async fn reprocess(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
    HtmlForm(form): HtmlForm<ReprocessForm>,
) -> Result<Response, HtmlError> {
    state.documents.get_owned(&user, &id).await?;
    let ocr = OcrRequest {
        mode: form.ocr,
        languages: form.ocr_languages,
    };
    match state.documents.reprocess(&id, &ocr).await.or_refusal()? {
        Ok(document) => {
            set_flash(
                &session,
                format!("{} was queued again.", document.file_name),
            )
            .await;
            Ok(Redirect::to(&format!("/documents/{id}")).into_response())
        }
        Err(refused) => {
            let message = Some(refused.message.clone());
            let page = document_page(&state, &session, &user, &id, message, None).await?;
            Ok(refused.form_again(page))
        }
    }
}

/// Stop the work on a document.
pub async fn cancel(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Redirect, HtmlError> {
    state.documents.get_owned(&user, &id).await?;
    let message = if state.documents.cancel(&id).await? {
        "Cancelled."
    } else {
        "It had already finished."
    };
    set_flash(&session, message).await;
    Ok(Redirect::to(&format!("/documents/{id}")))
}

/// "Delete this document?"
pub async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Html<String>, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    render(&ConfirmDeletePage {
        nav: Nav::new(&session, Some(&user)).await?,
        doc: DocumentSummary::from(&document),
    })
}

/// Delete, then back to the index.
pub async fn delete(
    State(state): State<AppState>,
    session: Session,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<Redirect, HtmlError> {
    let document = state.documents.get_owned(&user, &id).await?;
    state.documents.delete(&document).await?;
    set_flash(&session, format!("{} was deleted.", document.file_name)).await;
    Ok(Redirect::to("/"))
}
