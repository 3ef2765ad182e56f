//! The OCR choices a person makes for a document: when to OCR, and in which languages.

use serde::{Deserialize, Serialize};

/// When pages are read by OCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OcrMode {
    /// Only pages whose text layer is missing, too short or garbage.
    #[default]
    Auto,
    /// Never: the text layer is taken as it is.
    Off,
    /// Every page, whatever its text layer.
    Force,
}

impl OcrMode {
    /// Every mode.
    pub const ALL: [OcrMode; 3] = [OcrMode::Auto, OcrMode::Off, OcrMode::Force];

    /// The name stored in the database and used in forms and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OcrMode::Auto => "auto",
            OcrMode::Off => "off",
            OcrMode::Force => "force",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim() {
            "auto" => OcrMode::Auto,
            "off" => OcrMode::Off,
            "force" => OcrMode::Force,
            _ => return None,
        })
    }
}

/// The OCR choices a document is extracted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcrChoice {
    /// When pages are OCR'd.
    pub mode: OcrMode,
    /// Tesseract languages joined by `+`.
    pub languages: String,
}

/// Most languages one document may be read in at once (each one slows Tesseract down).
pub const MAX_LANGUAGES: usize = 8;

/// Checks a Tesseract language list such as `eng+deu` against the installed languages and
/// returns it normalised. The error is for the person who typed it.
pub fn parse_languages(raw: &str, installed: &[String]) -> Result<String, String> {
    let codes: Vec<&str> = raw
        .split(['+', ',', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if codes.is_empty() {
        return Err("give at least one OCR language, e.g. eng".into());
    }
    if codes.len() > MAX_LANGUAGES {
        return Err(format!("at most {MAX_LANGUAGES} OCR languages at once"));
    }
    let mut unknown = Vec::new();
    for code in &codes {
        // `script/Latin` names a script model; nothing else may hold a slash.
        let name = code.strip_prefix("script/").unwrap_or(code);
        let well_formed = (1..=32).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            return Err(format!("{code:?} is not a Tesseract language code"));
        }
        if !installed.iter().any(|i| i == code) {
            unknown.push(*code);
        }
    }
    if !unknown.is_empty() {
        let installed = if installed.is_empty() {
            "none".to_string()
        } else {
            installed.join(", ")
        };
        return Err(format!(
            "OCR language {} is not installed (installed: {installed})",
            unknown.join(", ")
        ));
    }
    Ok(codes.join("+"))
}

/// What the child needs to decide and run OCR, sent by the parent with each job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrSettings {
    /// `auto`, `off` or `force`.
    pub mode: OcrMode,
    /// Tesseract language codes joined by `+` (`eng`, `eng+deu`).
    pub languages: String,
    /// Resolution pages are rasterised at.
    pub dpi: u32,
    /// Largest image (width × height) a page may be rasterised to; a larger page is rendered
    /// at a lower resolution, and refused below [`MIN_DPI`].
    pub max_pixels: u64,
    /// A text layer with fewer non-blank characters than this is "too little text".
    pub min_chars: usize,
    /// A text layer with at least this share of junk characters is garbage.
    pub max_junk_ratio: f64,
    /// Report pages that need OCR instead of reading them (the hybrid engine sends them to
    /// Textract).
    #[serde(default)]
    pub defer: bool,
}

impl Default for OcrSettings {
    fn default() -> Self {
        OcrSettings {
            mode: OcrMode::Auto,
            languages: "eng".into(),
            dpi: 300,
            max_pixels: 50_000_000,
            min_chars: 2,
            max_junk_ratio: 0.10,
            defer: false,
        }
    }
}

/// Below this resolution OCR is not worth running.
pub const MIN_DPI: u32 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() -> Vec<String> {
        vec!["deu".into(), "eng".into()]
    }

    #[test]
    fn modes_round_trip() {
        for mode in [OcrMode::Auto, OcrMode::Off, OcrMode::Force] {
            assert_eq!(OcrMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(OcrMode::parse("always"), None);
    }

    #[test]
    fn languages_are_normalised_and_checked() {
        assert_eq!(
            parse_languages(" eng + deu ", &installed()).unwrap(),
            "eng+deu"
        );
        assert_eq!(parse_languages("eng,deu", &installed()).unwrap(), "eng+deu");
        let err = parse_languages("eng+xyz", &installed()).unwrap_err();
        assert!(err.contains("xyz is not installed"), "{err}");
        assert!(err.contains("deu, eng"), "{err}");
        assert!(parse_languages("", &installed()).is_err());
        assert!(parse_languages("../etc", &installed()).is_err());
        assert!(parse_languages("script/../x", &installed()).is_err());
        let scripts = vec!["Latin".to_string(), "script/Cyrillic".to_string()];
        assert_eq!(
            parse_languages("Latin+script/Cyrillic", &scripts).unwrap(),
            "Latin+script/Cyrillic"
        );
        assert!(parse_languages("eng", &[]).unwrap_err().contains("none"));
    }
}
