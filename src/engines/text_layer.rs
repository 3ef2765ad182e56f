//! The local engine: the PDF's own text layer, read with `pdf_oxide` (see shared/ENGINES.md
//! for why this crate and the guards below).

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_oxide::{PdfDocument, converters::ConversionOptions};

use super::{Inspection, OpenDocument, OpenError};
use crate::domain::PageSource;

/// The engine's name, as recorded on documents.
pub const ENGINE_NAME: &str = "local";

/// The local text-layer engine.
pub struct TextLayer;

impl super::Engine for TextLayer {
    fn name(&self) -> &'static str {
        ENGINE_NAME
    }

    fn open(
        &self,
        bytes: Vec<u8>,
        password: Option<&str>,
    ) -> Result<Box<dyn OpenDocument>, OpenError> {
        Ok(Box::new(open(bytes, password)?))
    }
}

/// A PDF opened by `pdf_oxide`, its password (if any) already checked.
pub struct TextLayerDocument {
    doc: PdfDocument,
    inspection: Inspection,
}

/// Opens `bytes`, checking the password of an encrypted PDF.
///
/// `pdf_oxide` returns empty text rather than an error for a PDF it cannot decrypt, so the
/// password is checked here before any page is read.
pub fn open(bytes: Vec<u8>, password: Option<&str>) -> Result<TextLayerDocument, OpenError> {
    let doc = catch_unwind(|| PdfDocument::from_bytes(bytes))
        .map_err(|panic| {
            OpenError::Unreadable(format!("the parser failed ({})", panic_message(&panic)))
        })?
        .map_err(|e| OpenError::Unreadable(plain_reason(&e)))?;
    let encrypted = doc.is_encrypted();
    let user_password = encrypted && authenticate(&doc, password)?;
    let pages = catch_unwind(AssertUnwindSafe(|| doc.page_count()))
        .map_err(|panic| {
            OpenError::Unreadable(format!("the parser failed ({})", panic_message(&panic)))
        })?
        .map_err(|e| match e {
            pdf_oxide::Error::EncryptedPdf => OpenError::PasswordRequired,
            other => OpenError::Unreadable(plain_reason(&other)),
        })?;
    if pages == 0 {
        return Err(OpenError::NoPages);
    }
    let pages =
        u32::try_from(pages).map_err(|_| OpenError::Unreadable("absurd page count".into()))?;
    Ok(TextLayerDocument {
        doc,
        inspection: Inspection {
            pages,
            encrypted,
            user_password,
        },
    })
}

/// An owner-password-only PDF opens with the empty user password; anything else needs the
/// user's password. Returns whether the user's password was needed.
fn authenticate(doc: &PdfDocument, password: Option<&str>) -> Result<bool, OpenError> {
    let unsupported = |e: pdf_oxide::Error| {
        OpenError::Unreadable(format!("its encryption is not supported ({e})"))
    };
    if doc.authenticate(b"").map_err(unsupported)? {
        return Ok(false);
    }
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(OpenError::PasswordRequired);
    };
    if doc.authenticate(password.as_bytes()).map_err(unsupported)? {
        Ok(true)
    } else {
        Err(OpenError::WrongPassword)
    }
}

impl OpenDocument for TextLayerDocument {
    fn inspection(&self) -> Inspection {
        self.inspection
    }

    fn page_text(&self, number: u32) -> Result<String, String> {
        let index = number as usize - 1;
        // Do not use `to_plain_text`: it interleaves two-column pages line by line. Tables off:
        // table detection took a quarter of the time and cut ruled tables into columns, where
        // reading them as lines keeps each row whole (shared/ENGINES.md).
        let options = ConversionOptions {
            extract_tables: false,
            ..ConversionOptions::default()
        };
        let extracted = catch_unwind(AssertUnwindSafe(|| {
            self.doc.extract_text_with_options(index, &options)
        }));
        match extracted {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(format!("page {number} could not be read: {e}")),
            Err(panic) => Err(format!(
                "the parser failed on page {number} ({})",
                panic_message(&panic)
            )),
        }
    }

    fn source(&self) -> PageSource {
        PageSource::TextLayer
    }
}

/// The parser's reason without the byte dumps some of its errors carry, and not too long.
fn plain_reason(error: &pdf_oxide::Error) -> String {
    let full = error.to_string();
    let cut = ["Error {", "input: ["]
        .iter()
        .filter_map(|m| full.find(m))
        .min()
        .unwrap_or(full.len());
    let reason = full[..cut].trim_end_matches([' ', ':', '(', ',']).trim();
    let mut short: String = reason.chars().take(240).collect();
    if short.len() < reason.len() {
        short.push('…');
    }
    short
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "internal error".into())
}
