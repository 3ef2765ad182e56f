//! OCR of pages whose text layer is missing or junk: the page is rasterised with `hayro`
//! (pure Rust) and read by Tesseract through its C API (shared/ENGINES.md has the
//! measurements behind each choice here).
//!
//! This runs only inside the sandbox child: Tesseract is C, and a page that crashes or
//! exhausts it must take down only that child.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

pub use crate::domain::ocr::{MIN_DPI, OcrMode, OcrSettings};

/// How good a page's text layer is.
#[derive(Debug, Clone, PartialEq)]
pub enum TextLayerVerdict {
    /// Enough real text: take it as is.
    Good,
    /// Nothing but white space.
    Empty,
    /// Fewer non-blank characters than the threshold.
    TooLittle(usize),
    /// Mostly replacement, private-use, control or `(cid:…)` characters.
    Junk(f64),
}

impl TextLayerVerdict {
    /// Why a page with this text layer goes to OCR, in words for a person.
    pub fn reason(&self) -> Option<String> {
        match self {
            TextLayerVerdict::Good => None,
            TextLayerVerdict::Empty => Some("no text layer".into()),
            TextLayerVerdict::TooLittle(n) => Some(format!("text layer has only {n} characters")),
            TextLayerVerdict::Junk(ratio) => Some(format!(
                "text layer is garbage ({:.0} % unreadable characters)",
                ratio * 100.0
            )),
        }
    }
}

/// Judges a page's text layer: is it enough real text to skip OCR?
pub fn judge_text_layer(text: &str, settings: &OcrSettings) -> TextLayerVerdict {
    let visible = text.chars().filter(|c| !c.is_whitespace()).count();
    if visible == 0 {
        return TextLayerVerdict::Empty;
    }
    let junk = junk_characters(text);
    let ratio = junk as f64 / visible as f64;
    if ratio >= settings.max_junk_ratio {
        return TextLayerVerdict::Junk(ratio);
    }
    if visible - junk < settings.min_chars {
        return TextLayerVerdict::TooLittle(visible - junk);
    }
    TextLayerVerdict::Good
}

/// Counts the non-blank characters that carry no text: U+FFFD, private-use glyphs, control
/// characters, and `(cid:123)` placeholders that some extractors print for unmapped glyphs.
fn junk_characters(text: &str) -> usize {
    let mut junk = 0;
    let mut rest = text;
    while let Some(at) = rest.find("(cid:") {
        let after = &rest[at + 5..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after.as_bytes().get(digits) == Some(&b')') {
            junk += 5 + digits + 1;
            rest = &after[digits + 1..];
        } else {
            rest = after;
        }
    }
    junk + text
        .chars()
        .filter(|&c| {
            c == '\u{FFFD}'
                || (c.is_control() && !c.is_whitespace())
                || ('\u{E000}'..='\u{F8FF}').contains(&c)
                || c >= '\u{F0000}'
        })
        .count()
}

/// A page read by OCR.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrPage {
    /// The recognised text.
    pub text: String,
    /// Tesseract's mean word confidence (0–100); `None` for a blank page.
    pub confidence: Option<f64>,
    /// The resolution the page was read at.
    pub dpi: u32,
    /// True when the page looked like a table and was read row by row.
    pub tables_read_by_rows: bool,
}

/// A page rasterised to 8-bit grey, one byte per pixel, rows top to bottom.
pub struct GreyImage {
    /// Pixels.
    pub pixels: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The resolution it was rendered at.
    pub dpi: u32,
}

impl GreyImage {
    /// True when nothing is printed on the page (no pixel clearly darker than paper).
    pub fn is_blank(&self) -> bool {
        self.pixels.iter().all(|&p| p > 200)
    }
}

/// Renders pages of one PDF. Opened lazily, only when a page needs OCR, so text PDFs never
/// pay for a second parse.
pub struct Rasteriser {
    pdf: hayro::hayro_syntax::Pdf,
}

impl Rasteriser {
    /// Opens the PDF at `path` (with the user password of an encrypted one).
    pub fn open(path: &Path, password: Option<&str>) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("could not read the file: {e}"))?;
        let pdf = hayro::hayro_syntax::Pdf::new_with_password(
            std::sync::Arc::new(bytes),
            password.unwrap_or(""),
        )
        .map_err(|e| format!("the page renderer could not open this PDF ({e:?})"))?;
        Ok(Rasteriser { pdf })
    }

    /// Renders page `number` (1-based) at `dpi`, or lower if the page would exceed
    /// `max_pixels` at that resolution.
    pub fn render(&self, number: u32, dpi: u32, max_pixels: u64) -> Result<GreyImage, String> {
        use hayro::{
            PixmapSettings, RenderCache, RenderSettings, hayro_interpret::InterpreterSettings,
            vello_cpu::color::palette::css::WHITE,
        };
        let pages = self.pdf.pages();
        let page = pages
            .get(number as usize - 1)
            .ok_or_else(|| format!("the page renderer found no page {number}"))?;
        let (width_pt, height_pt) = page.render_dimensions();
        let dpi = fit_dpi(width_pt, height_pt, dpi, max_pixels).ok_or_else(|| {
            format!(
                "the page is too large to OCR ({width_pt:.0} × {height_pt:.0} pt; \
                 limit {max_pixels} pixels)"
            )
        })?;
        let scale = dpi as f32 / 72.0;
        let cache = RenderCache::new();
        let pixmap = hayro::render(
            page,
            &cache,
            &InterpreterSettings::default(),
            &RenderSettings::default(),
            &PixmapSettings {
                x_scale: scale,
                y_scale: scale,
                bg_color: WHITE,
            },
        );
        let (width, height) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
        if width == 0 || height == 0 {
            return Err("the page has no area to render".into());
        }
        // The background is opaque white, so premultiplied RGBA is plain RGBA here.
        let pixels = pixmap
            .data_as_u8_slice()
            .chunks_exact(4)
            .map(|p| {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                    as u8
            })
            .collect();
        Ok(GreyImage {
            pixels,
            width,
            height,
            dpi,
        })
    }
}

/// The resolution to render a `width_pt` × `height_pt` page at: `dpi`, lowered until the
/// image fits in `max_pixels` (and under the renderer's 65,535-pixel side); `None` when that
/// is below [`MIN_DPI`].
pub fn fit_dpi(width_pt: f32, height_pt: f32, dpi: u32, max_pixels: u64) -> Option<u32> {
    let (w_in, h_in) = (f64::from(width_pt) / 72.0, f64::from(height_pt) / 72.0);
    if !(w_in > 0.0 && h_in > 0.0) {
        return None;
    }
    let by_area = (max_pixels as f64 / (w_in * h_in)).sqrt();
    let by_side = 65_535.0 / w_in.max(h_in);
    let fitted = f64::from(dpi).min(by_area).min(by_side).floor() as u32;
    (fitted >= MIN_DPI).then_some(fitted)
}

/// Where Tesseract's language files may be, in the order Tesseract itself looks.
pub(crate) fn tessdata_dirs() -> Vec<PathBuf> {
    if let Some(prefix) = std::env::var_os("TESSDATA_PREFIX") {
        // Tesseract looks nowhere else when this is set.
        let prefix = PathBuf::from(prefix);
        return vec![prefix.join("tessdata"), prefix];
    }
    [
        "/usr/share/tesseract-ocr/5/tessdata",
        "/usr/share/tesseract-ocr/4.00/tessdata",
        "/usr/share/tessdata",
        "/usr/local/share/tessdata",
        "/opt/homebrew/share/tessdata",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// The folder to load `languages` from: the first that holds the first one's model. Passed to
/// Tesseract rather than left to its built-in default, which is wherever its library was built
/// to look (a wheel's copy looks under `/usr/local`).
fn tessdata_dir_for(languages: &str) -> Option<PathBuf> {
    let first = languages.split('+').next()?;
    tessdata_dirs()
        .into_iter()
        .find(|dir| dir.join(format!("{first}.traineddata")).is_file())
}

/// The OCR languages whose models are installed, or why there are none.
fn installed_languages() -> Result<Vec<String>, String> {
    // Script models (`Latin`, `Cyrillic`, …) sit beside the languages on Debian and in a
    // `script/` folder upstream, where Tesseract names them `script/Latin`.
    let mut languages: Vec<String> = tessdata_dirs()
        .iter()
        .flat_map(|dir| [(dir.clone(), ""), (dir.join("script"), "script/")])
        .filter_map(|(dir, prefix)| Some((std::fs::read_dir(dir).ok()?, prefix)))
        .flat_map(|(entries, prefix)| {
            entries.flatten().filter_map(move |entry| {
                let name = entry.file_name().into_string().ok()?;
                let code = name.strip_suffix(".traineddata")?;
                (code != "osd").then(|| format!("{prefix}{code}"))
            })
        })
        .collect();
    languages.sort();
    languages.dedup();
    if languages.is_empty() {
        return Err(UNAVAILABLE_MISSING.into());
    }
    Ok(languages)
}

/// The variable naming the Tesseract library to open instead of the system's.
pub const LIBRARY_VARIABLE: &str = "LECTOR_TESSERACT_LIBRARY";

/// The one command that installs Tesseract and its English model on Debian and Ubuntu.
pub const INSTALL_COMMAND: &str = "sudo apt-get install tesseract-ocr tesseract-ocr-eng";

/// What a page that needs OCR says when Tesseract's language data is missing.
pub const UNAVAILABLE_MISSING: &str = "OCR unavailable: install tesseract-ocr \
    (sudo apt-get install tesseract-ocr tesseract-ocr-eng): no language data was found";

/// Tesseract's library, opened once per process: the one `LECTOR_TESSERACT_LIBRARY` names if
/// it is set (and no other, so that a wrong path is reported rather than passed over), else
/// the system's. The sandbox child opens it before it confines itself, since afterwards it
/// may not read the library's files.
pub fn tesseract_library() -> Result<Arc<tesseract_runtime::Library>, String> {
    static LIBRARY: OnceLock<Result<Arc<tesseract_runtime::Library>, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let candidates = match std::env::var_os(LIBRARY_VARIABLE) {
                Some(named) => vec![PathBuf::from(named)],
                None => tesseract_runtime::usual_locations(),
            };
            tesseract_runtime::Library::open_first(candidates).map_err(|error| {
                format!(
                    "OCR unavailable: install tesseract-ocr ({INSTALL_COMMAND}, or name the \
                     library in {LIBRARY_VARIABLE}): {error}"
                )
            })
        })
        .clone()
}

/// What this machine can OCR, found once at startup.
#[derive(Debug, Clone)]
pub struct OcrAvailability(Arc<Result<Installed, String>>);

/// A Tesseract that can run.
#[derive(Debug)]
struct Installed {
    version: String,
    location: String,
    languages: Vec<String>,
}

impl OcrAvailability {
    /// Opens Tesseract's library and looks for its language files.
    pub fn detect() -> Self {
        let installed = tesseract_library().and_then(|library| {
            Ok(Installed {
                version: library.version().to_owned(),
                location: library.location().to_owned(),
                languages: installed_languages()?,
            })
        });
        OcrAvailability(Arc::new(installed))
    }

    /// The installed languages (empty when OCR is unavailable).
    pub fn languages(&self) -> &[String] {
        match self.0.as_ref() {
            Ok(installed) => &installed.languages,
            Err(_) => &[],
        }
    }

    /// Which Tesseract runs, e.g. `Tesseract 5.3.0 (libtesseract.so.5)`.
    pub fn library(&self) -> Option<String> {
        let installed = self.0.as_ref().as_ref().ok()?;
        Some(format!(
            "Tesseract {} ({})",
            installed.version, installed.location
        ))
    }

    /// Why OCR cannot run here, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.0.as_ref().as_ref().err().map(String::as_str)
    }
}

/// Reads rasterised pages with Tesseract; one instance per child, reused for every page.
pub struct Recogniser {
    tesseract: tesseract_runtime::Engine,
}

impl Recogniser {
    /// Loads Tesseract's models for `languages` (e.g. `eng+deu`).
    pub fn new(languages: &str) -> Result<Self, String> {
        let library = tesseract_library()?;
        let datapath = tessdata_dir_for(languages);
        let tesseract = tesseract_runtime::Engine::new(library, datapath.as_deref(), languages)
            .map_err(|_| match installed_languages() {
                Ok(installed) => format!(
                    "OCR unavailable: language {languages:?} is not installed (installed: {}; \
                     on Debian/Ubuntu install tesseract-ocr-<code>)",
                    installed.join(", ")
                ),
                Err(reason) => reason,
            })?;
        Ok(Recogniser { tesseract })
    }

    /// Reads `image`: its text and mean word confidence. Pages are read with automatic
    /// layout analysis; a page that comes out as columns of single words is a table read
    /// column by column, and is read again row by row.
    pub fn read(&mut self, image: &GreyImage) -> Result<OcrPage, String> {
        let first = self.read_with(image, Layout::Auto)?;
        if !looks_like_a_table_read_by_columns(&first.text) {
            return Ok(first);
        }
        let rows = self.read_with(image, Layout::SingleColumn)?;
        Ok(OcrPage {
            tables_read_by_rows: true,
            ..rows
        })
    }

    fn read_with(&mut self, image: &GreyImage, layout: Layout) -> Result<OcrPage, String> {
        let mode = match layout {
            Layout::Auto => tesseract_runtime::PageSegMode::Auto,
            Layout::SingleColumn => tesseract_runtime::PageSegMode::SingleColumn,
        };
        let page =
            tesseract_runtime::Image::grey(&image.pixels, image.width, image.height, image.dpi);
        let read = self
            .tesseract
            .recognise(&page, mode)
            .map_err(|e| format!("OCR failed on this page: {e}"))?;
        Ok(OcrPage {
            text: read.text,
            confidence: Some(f64::from(read.mean_confidence.clamp(0, 100))),
            dpi: image.dpi,
            tables_read_by_rows: false,
        })
    }
}

/// How Tesseract finds the text on a page.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Mode 3, automatic layout analysis (columns, blocks). The library's default, mode 6
    /// (one block), reads straight across two-column pages.
    Auto,
    /// Mode 4, one column of lines: reads a table row by row.
    SingleColumn,
}

/// True when automatic layout analysis cut a page into columns of one or two words per line:
/// what it makes of a table (measured on the corpus's scanned invoice table: word recall 0.67
/// to 0.79 that way, 0.99 read row by row). Prose, headings and two-column text have longer
/// lines.
pub fn looks_like_a_table_read_by_columns(text: &str) -> bool {
    let lines: Vec<usize> = text
        .lines()
        .map(|line| line.split_whitespace().count())
        .filter(|&words| words > 0)
        .collect();
    let short = lines.iter().filter(|&&words| words <= 2).count();
    lines.len() >= 15 && short * 10 >= lines.len() * 7
}

/// Rasterises and reads pages of one document, opening the renderer and Tesseract on the
/// first page that needs them.
pub struct OcrPipeline {
    path: PathBuf,
    password: Option<String>,
    settings: OcrSettings,
    rasteriser: Option<Result<Rasteriser, String>>,
    recogniser: Option<Result<Recogniser, String>>,
}

impl OcrPipeline {
    /// A pipeline over the PDF at `path`.
    pub fn new(path: &Path, password: Option<String>, settings: OcrSettings) -> Self {
        OcrPipeline {
            path: path.to_owned(),
            password,
            settings,
            rasteriser: None,
            recogniser: None,
        }
    }

    /// Turns to another PDF, keeping Tesseract's loaded models (a batch reads many files).
    pub fn switch_to(&mut self, path: &Path, password: Option<String>) {
        self.path = path.to_owned();
        self.password = password;
        self.rasteriser = None;
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &OcrSettings {
        &self.settings
    }

    fn rasteriser(&mut self) -> Result<&Rasteriser, String> {
        self.rasteriser
            .get_or_insert_with(|| Rasteriser::open(&self.path, self.password.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Rasterises page `number` and reads it. A blank page is not sent to Tesseract.
    pub fn read_page(&mut self, number: u32) -> Result<OcrPage, String> {
        let (dpi, max_pixels) = (self.settings.dpi, self.settings.max_pixels);
        let image = self.rasteriser()?.render(number, dpi, max_pixels)?;
        if image.is_blank() {
            return Ok(OcrPage {
                text: String::new(),
                confidence: None,
                dpi: image.dpi,
                tables_read_by_rows: false,
            });
        }
        let languages = &self.settings.languages;
        let recogniser = self
            .recogniser
            .get_or_insert_with(|| Recogniser::new(languages))
            .as_mut()
            .map_err(|e| e.clone())?;
        recogniser.read(&image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OcrSettings {
        OcrSettings::default()
    }

    #[test]
    fn real_text_is_good() {
        assert_eq!(
            judge_text_layer("The quick brown fox jumps over the lazy dog.", &settings()),
            TextLayerVerdict::Good
        );
    }

    #[test]
    fn blank_and_short_text_layers_go_to_ocr() {
        assert_eq!(
            judge_text_layer(" \n\t ", &settings()),
            TextLayerVerdict::Empty
        );
        assert_eq!(
            judge_text_layer(" 7 ", &settings()),
            TextLayerVerdict::TooLittle(1)
        );
        // Short but real text (a CJK line, a slide number) is kept.
        assert_eq!(
            judge_text_layer("あいうえお", &settings()),
            TextLayerVerdict::Good
        );
        assert_eq!(judge_text_layer("29", &settings()), TextLayerVerdict::Good);
    }

    #[test]
    fn replacement_private_use_and_cid_junk_is_garbage() {
        let replacement = "\u{FFFD}".repeat(30) + "abc";
        assert!(matches!(
            judge_text_layer(&replacement, &settings()),
            TextLayerVerdict::Junk(r) if r > 0.9
        ));
        let private = "\u{E001}\u{E002}\u{E003} some words here and more";
        assert!(matches!(
            judge_text_layer(private, &settings()),
            TextLayerVerdict::Junk(_)
        ));
        let cid = "(cid:12)(cid:40)(cid:7) (cid:99) header";
        assert!(matches!(
            judge_text_layer(cid, &settings()),
            TextLayerVerdict::Junk(_)
        ));
        // A stray replacement character in a real page is not junk.
        let mostly_fine = "A long paragraph of ordinary text with one \u{FFFD} glyph in it.";
        assert_eq!(
            judge_text_layer(mostly_fine, &settings()),
            TextLayerVerdict::Good
        );
    }

    #[test]
    fn reasons_are_in_words() {
        assert_eq!(TextLayerVerdict::Good.reason(), None);
        assert_eq!(
            TextLayerVerdict::Empty.reason().as_deref(),
            Some("no text layer")
        );
        assert!(
            TextLayerVerdict::Junk(0.5)
                .reason()
                .unwrap()
                .contains("50 %")
        );
    }

    #[test]
    fn large_pages_are_rendered_at_a_lower_resolution() {
        // A4 at 300 dpi is about 8.7 million pixels.
        assert_eq!(fit_dpi(595.0, 842.0, 300, 50_000_000), Some(300));
        let lowered = fit_dpi(595.0 * 4.0, 842.0 * 4.0, 300, 50_000_000).unwrap();
        assert!((MIN_DPI..300).contains(&lowered), "{lowered}");
        // A page of 200 × 200 inches cannot be read at any useful resolution.
        assert_eq!(fit_dpi(14_400.0, 14_400.0, 300, 50_000_000), None);
        assert_eq!(fit_dpi(0.0, 842.0, 300, 50_000_000), None);
    }

    #[test]
    fn columns_of_single_words_look_like_a_table() {
        let table_by_columns = "Invoice\n\nINV-1\nINV-2\nINV-3\nINV-4\nINV-5\nINV-6\n\nDate\n\n\
            2024-01-01\n2024-01-02\n2024-01-03\n2024-01-04\n2024-01-05\n2024-01-06\n\nTotal\n1\n2";
        assert!(looks_like_a_table_read_by_columns(table_by_columns));
        let prose = "The quick brown fox jumps over the lazy dog and keeps running on\n".repeat(20);
        assert!(!looks_like_a_table_read_by_columns(&prose));
        // A short page is left alone.
        assert!(!looks_like_a_table_read_by_columns("Title\n\n42"));
    }

    #[test]
    fn a_white_image_is_blank() {
        let image = GreyImage {
            pixels: vec![255; 100],
            width: 10,
            height: 10,
            dpi: 300,
        };
        assert!(image.is_blank());
        let mut inked = image.pixels.clone();
        inked[5] = 0;
        assert!(
            !GreyImage {
                pixels: inked,
                ..image
            }
            .is_blank()
        );
    }
}
