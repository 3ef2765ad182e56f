//! Text extraction engines and the process sandbox they run in.
//!
//! An engine opens a PDF (checking its password) and yields the text of one page at a time.
//! The web server and the workers never run an engine in their own process: they start
//! `lector sandbox …` as a child with resource limits ([`sandbox`]), so a PDF that crashes,
//! hangs or exhausts memory takes down only that child.

use serde::{Deserialize, Serialize};

pub mod sandbox;
pub mod text_layer;
pub mod textract;

pub use sandbox::{Sandbox, SandboxError};

/// What the check of an upload learnt about a PDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    /// Pages in the document.
    pub pages: u32,
    /// Whether it is encrypted (with or without a user password).
    pub encrypted: bool,
    /// Whether opening it needed a user password.
    #[serde(default)]
    pub user_password: bool,
}

/// Why a PDF cannot be opened. Each message is meant for the person who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpenError {
    /// A user password is needed and none was given.
    #[error("this PDF is password-protected: give its password to upload it")]
    PasswordRequired,
    /// The password given does not open it.
    #[error("the password does not open this PDF")]
    WrongPassword,
    /// The parser could not read it; the reason is in the parser's words.
    #[error("this file could not be read as a PDF: {0}")]
    Unreadable(String),
    /// It has no pages.
    #[error("this PDF has no pages")]
    NoPages,
}

/// One page's result, as the sandbox reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageText {
    /// 1-based page number.
    pub number: u32,
    /// Extracted text; empty when `error` is set.
    pub text: String,
    /// Milliseconds spent on the page.
    pub ms: u64,
    /// Why the page failed, if it did.
    pub error: Option<String>,
    /// The engine that produced the text (`text_layer`, …).
    pub source: String,
}

/// An extraction engine: opens a PDF (checking its password) for page-by-page extraction.
/// The text layer is the first; OCR and Textract slot in beside it.
pub trait Engine: Send + Sync {
    /// The engine's name, as recorded on documents.
    fn name(&self) -> &'static str;
    /// Opens `bytes`, with the user password of an encrypted PDF.
    fn open(
        &self,
        bytes: Vec<u8>,
        password: Option<&str>,
    ) -> Result<Box<dyn OpenDocument>, OpenError>;
}

/// The engine a document is extracted with.
pub fn engine_named(name: &str) -> Option<&'static dyn Engine> {
    match name {
        text_layer::ENGINE_NAME => Some(&text_layer::TextLayer),
        _ => None,
    }
}

/// A PDF opened by an engine.
pub trait OpenDocument {
    /// What was learnt while opening it.
    fn inspection(&self) -> Inspection;
    /// The text of page `number` (1-based); the error says why it failed.
    fn page_text(&self, number: u32) -> Result<String, String>;
    /// The name recorded as each page's source.
    fn source(&self) -> &'static str;
}

/// Text longer than this on one page is cut: a hostile PDF must not make a row of gigabytes.
pub const MAX_PAGE_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Makes extracted text safe to store: no NUL (Postgres refuses it), no trailing blanks,
/// bounded length.
pub fn clean_text(mut text: String) -> String {
    if text.contains('\0') {
        text = text.replace('\0', "");
    }
    if text.len() > MAX_PAGE_TEXT_BYTES {
        let mut cut = MAX_PAGE_TEXT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    text
}

/// Opens `bytes` with the local text-layer engine and extracts `pages`, calling `emit` for
/// each page as soon as it is done. Shared by the sandbox child and `lector extract`.
pub fn extract_pages(
    doc: &dyn OpenDocument,
    pages: impl Iterator<Item = u32>,
    mut emit: impl FnMut(PageText) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for number in pages {
        let started = std::time::Instant::now();
        let (text, error) = match doc.page_text(number) {
            Ok(text) => (clean_text(text), None),
            Err(reason) => (String::new(), Some(reason)),
        };
        emit(PageText {
            number,
            text,
            ms: started.elapsed().as_millis() as u64,
            error,
            source: doc.source().into(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_removes_nul_and_trailing_blanks() {
        assert_eq!(clean_text("a\0b  \n\n".into()), "ab");
    }

    #[test]
    fn clean_text_cuts_on_a_character_boundary() {
        let long = "é".repeat(MAX_PAGE_TEXT_BYTES);
        let cut = clean_text(long);
        assert!(cut.len() <= MAX_PAGE_TEXT_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
