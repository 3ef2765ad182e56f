//! Text extraction engines and the process sandbox they run in.
//!
//! An engine opens a PDF (checking its password) and yields the text of one page at a time.
//! The web server and the workers never run an engine in their own process: they start
//! `lector sandbox …` as a child with resource limits ([`sandbox`]), so a PDF that crashes,
//! hangs or exhausts memory takes down only that child.

use serde::{Deserialize, Serialize};

mod child;
pub mod confine;
pub mod inspector;
pub mod ocr;
pub mod probe;
pub mod sandbox;
pub mod split;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageText {
    /// 1-based page number.
    pub number: u32,
    /// Extracted text; empty when `error` is set.
    pub text: String,
    /// Milliseconds spent on the page.
    pub ms: u64,
    /// Why the page failed, if it did.
    pub error: Option<String>,
    /// The engine that produced the text.
    pub source: crate::domain::PageSource,
    /// OCR's mean word confidence (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The resolution an OCR'd page was read at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
    /// Why the page went to OCR (set even when OCR then failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_reason: Option<String>,
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
    /// What each page's text is recorded as coming from.
    fn source(&self) -> crate::domain::PageSource;
}

/// Text longer than this on one page is cut: a hostile PDF must not make a row of gigabytes.
pub const MAX_PAGE_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Makes extracted text safe to store and searchable, the same for every engine: ligatures
/// spelled out, no NUL (Postgres refuses it), no trailing blanks, bounded length.
pub fn clean_text(mut text: String) -> String {
    if text.contains('\0') {
        text = text.replace('\0', "");
    }
    if text.chars().any(|c| ligature_letters(c).is_some()) {
        text = text
            .chars()
            .fold(String::with_capacity(text.len() + 8), |mut out, c| {
                match ligature_letters(c) {
                    Some(letters) => out.push_str(letters),
                    None => out.push(c),
                }
                out
            });
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

/// The letters of a ligature from Unicode's Alphabetic Presentation Forms (U+FB00–U+FB06,
/// U+FB13–U+FB17), one compatibility step as PDFium and pdftotext give them, so that "office"
/// finds "oﬃce". Nothing else is folded: full NFKC also rewrote what pages really show and
/// both references keep (ϕ, ², ½, µ, full-width CJK punctuation), measured as a loss on the
/// corpus; U+FB05 is "ſt" as PDFium spells it.
fn ligature_letters(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{FB00}' => "ff",
        '\u{FB01}' => "fi",
        '\u{FB02}' => "fl",
        '\u{FB03}' => "ffi",
        '\u{FB04}' => "ffl",
        '\u{FB05}' => "\u{17F}t",
        '\u{FB06}' => "st",
        '\u{FB13}' => "\u{574}\u{576}",
        '\u{FB14}' => "\u{574}\u{565}",
        '\u{FB15}' => "\u{574}\u{56B}",
        '\u{FB16}' => "\u{57E}\u{576}",
        '\u{FB17}' => "\u{574}\u{56D}",
        _ => return None,
    })
}

/// What page-by-page extraction reports as it goes.
#[derive(Debug)]
pub enum Progress {
    /// OCR of this page is starting (the slow, risky part: the parent times it).
    OcrStarted(u32),
    /// This page needs OCR, and OCR is left to someone else (the hybrid engine).
    OcrDeferred(u32, String),
    /// A page is finished.
    Page(PageText),
}

/// Extracts `pages` of `doc`, deciding page by page whether the text layer is enough or the
/// page must be read by OCR, and calls `report` as soon as each step happens. Shared by the
/// sandbox child and `lector extract`.
pub fn extract_pages(
    doc: &dyn OpenDocument,
    ocr: &mut ocr::OcrPipeline,
    pages: impl Iterator<Item = u32>,
    mut report: impl FnMut(Progress) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for number in pages {
        if let Some(page) = extract_page(doc, ocr, number, &mut report)? {
            report(Progress::Page(page))?;
        }
    }
    Ok(())
}

fn extract_page(
    doc: &dyn OpenDocument,
    ocr: &mut ocr::OcrPipeline,
    number: u32,
    report: &mut impl FnMut(Progress) -> std::io::Result<()>,
) -> std::io::Result<Option<PageText>> {
    let started = std::time::Instant::now();
    let layer = doc.page_text(number).map(clean_text);
    let settings = ocr.settings();
    let ocr_reason = match settings.mode {
        ocr::OcrMode::Off => None,
        ocr::OcrMode::Force => Some("OCR forced".to_string()),
        ocr::OcrMode::Auto => match &layer {
            Ok(text) => ocr::judge_text_layer(text, settings).reason(),
            Err(reason) => Some(format!("text layer unreadable ({reason})")),
        },
    };
    let page = |text: String, error: Option<String>| PageText {
        number,
        text,
        ms: 0,
        error,
        source: doc.source(),
        confidence: None,
        dpi: None,
        ocr_reason: ocr_reason.clone(),
    };
    let mut result = match (&ocr_reason, layer) {
        (None, Ok(text)) => page(text, None),
        (None, Err(reason)) => page(String::new(), Some(reason)),
        (Some(reason), _) if settings.defer => {
            report(Progress::OcrDeferred(number, reason.clone()))?;
            return Ok(None);
        }
        (Some(_), layer) => {
            report(Progress::OcrStarted(number))?;
            match ocr.read_page(number) {
                Ok(read) => PageText {
                    text: clean_text(read.text),
                    source: crate::domain::PageSource::Ocr,
                    confidence: read.confidence,
                    dpi: Some(read.dpi),
                    ocr_reason: ocr_reason
                        .as_ref()
                        .map(|why| match read.tables_read_by_rows {
                            true => format!("{why}; read as a table, row by row"),
                            false => why.clone(),
                        }),
                    ..page(String::new(), None)
                },
                // Keep whatever the text layer had, and say why OCR did not happen.
                Err(reason) => page(layer.unwrap_or_default(), Some(reason)),
            }
        }
    };
    result.ms = started.elapsed().as_millis() as u64;
    Ok(Some(result))
}

/// The upload check and the text-layer extraction, in this process, as one function over
/// bytes: the target of `fuzz/` (`scripts/fuzz`). The service runs the same steps in the
/// sandboxed child; here nothing contains a hang, a crash or a blown memory budget, which is
/// what the fuzzer is looking for. Returns the text of each page, or why the file was refused.
pub fn validate_and_extract(bytes: &[u8], max_pages: u32) -> Result<Vec<String>, OpenError> {
    if !crate::domain::upload::has_pdf_signature(bytes) {
        return Err(OpenError::Unreadable("not a PDF".into()));
    }
    let doc = text_layer::open(bytes.to_vec(), None)?;
    let pages = doc.inspection().pages.min(max_pages);
    Ok((1..=pages)
        .map(|number| doc.page_text(number).map(clean_text).unwrap_or_default())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_spells_out_ligatures_and_keeps_other_compatibility_characters() {
        assert_eq!(
            clean_text("The o\u{FB03}ce \u{FB01}nds \u{FB00}ects \u{FB05} ½ µ ²".into()),
            "The office finds ffects \u{17F}t ½ µ ²"
        );
    }

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

    #[test]
    fn validate_and_extract_reads_a_good_pdf_and_refuses_junk() {
        let fixture = |name: &str| {
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_owned() + name)
                .unwrap()
        };
        let pages = validate_and_extract(&fixture("three_pages.pdf"), 50).unwrap();
        assert_eq!(pages.len(), 3);
        assert!(pages[1].contains("zebras and quartz"));
        assert_eq!(
            validate_and_extract(&fixture("three_pages.pdf"), 2)
                .unwrap()
                .len(),
            2
        );
        assert!(validate_and_extract(b"hello", 50).is_err());
        assert!(validate_and_extract(&fixture("corrupt.pdf"), 50).is_err());
    }
}
