//! The closed sets of extraction: which engine reads a document, and which one produced a
//! page's text. Parsed once where they enter (configuration, the database, a query string,
//! the sandbox's answer) and matched everywhere else.

use serde::{Deserialize, Serialize};

/// How a document is read; recorded on the document when it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// The PDF's own text layer, and local OCR for pages without one.
    Local,
    /// AWS Textract, for every page.
    Textract,
    /// The text layer locally; only the pages that need OCR go to Textract.
    Hybrid,
}

impl Engine {
    /// Every engine, in the order they are offered.
    pub const ALL: [Engine; 3] = [Engine::Local, Engine::Textract, Engine::Hybrid];

    /// The name stored in the database, shown in the API and read from `LECTOR_ENGINE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Local => "local",
            Engine::Textract => "textract",
            Engine::Hybrid => "hybrid",
        }
    }

    /// Parses a stored or configured name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|engine| engine.as_str() == raw)
    }

    /// True when pages of documents read this way may go to Textract.
    pub fn uses_textract(self) -> bool {
        self != Engine::Local
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which engine produced a page's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSource {
    /// The PDF's own text layer.
    TextLayer,
    /// Local OCR (Tesseract) of the rendered page.
    Ocr,
    /// AWS Textract.
    Textract,
}

impl PageSource {
    /// Every source.
    pub const ALL: [PageSource; 3] = [Self::TextLayer, Self::Ocr, Self::Textract];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TextLayer => "text_layer",
            Self::Ocr => "ocr",
            Self::Textract => "textract",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|source| source.as_str() == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_their_json() {
        for engine in Engine::ALL {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            assert_eq!(
                serde_json::to_value(engine).unwrap(),
                serde_json::json!(engine.as_str())
            );
        }
        for source in PageSource::ALL {
            assert_eq!(PageSource::parse(source.as_str()), Some(source));
            assert_eq!(
                serde_json::to_value(source).unwrap(),
                serde_json::json!(source.as_str())
            );
        }
        assert_eq!(Engine::parse("Local"), None);
        assert_eq!(PageSource::parse("text layer"), None);
    }
}
