//! Reading an upload form: each file is streamed to a temporary file (hashed and counted as
//! it arrives) and refused with 413 the moment it passes the size limit.

use std::path::Path;

use axum::extract::{Multipart, multipart::Field};

use super::AppError;
use crate::app::documents::{IncomingFile, IncomingFileWriter, OcrRequest, UploadError};

/// The fields of an upload: one or more files and an optional password.
pub struct UploadForm {
    /// The files, in the order sent.
    pub files: Vec<IncomingFile>,
    /// The password for encrypted PDFs.
    pub password: Option<String>,
    /// OCR choices (`ocr`, `ocr_languages`), when given.
    pub ocr: OcrRequest,
}

/// Reads every field of `multipart` into files in `dir`. Files are named `file` (or `files`).
/// A browser form's `csrf_token` field was checked before the body reached the handler, and
/// is skipped.
pub async fn read_upload(
    mut multipart: Multipart,
    dir: &Path,
    limit: u64,
    max_files: usize,
) -> Result<UploadForm, AppError> {
    let mut files = Vec::new();
    let mut password = None;
    let mut ocr = OcrRequest::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| UploadError::BadRequest(e.body_text()))?
    {
        match field.name() {
            Some("file" | "files") => {
                let file = read_file(field, dir, limit).await?;
                // Browsers send an empty, nameless part when no file was chosen.
                if file.file_name.is_empty() && file.size == 0 {
                    continue;
                }
                if files.len() == max_files {
                    return Err(UploadError::TooManyFiles { limit: max_files }.into());
                }
                files.push(file);
            }
            Some("password") => password = Some(read_text(field, 1024).await?),
            Some("ocr") => ocr.mode = non_empty(read_text(field, 64).await?),
            Some("ocr_languages") => ocr.languages = non_empty(read_text(field, 256).await?),
            _ => {}
        }
    }
    Ok(UploadForm {
        files,
        password: password.filter(|p| !p.is_empty()),
        ocr,
    })
}

fn non_empty(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

async fn read_file(
    mut field: Field<'_>,
    dir: &Path,
    limit: u64,
) -> Result<IncomingFile, UploadError> {
    let name = field.file_name().unwrap_or_default().to_owned();
    let mut writer =
        IncomingFileWriter::new(dir, &name, limit).map_err(|e| UploadError::Internal(e.into()))?;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| UploadError::BadRequest(e.body_text()))?
    {
        writer.write(&chunk).await?;
    }
    writer.finish().await
}

async fn read_text(mut field: Field<'_>, limit: usize) -> Result<String, UploadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| UploadError::BadRequest(e.body_text()))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return Err(UploadError::BadRequest("a form field is too long".into()));
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| UploadError::BadRequest("a form field is not UTF-8".into()))
}
