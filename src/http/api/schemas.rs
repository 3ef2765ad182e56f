//! The OpenAPI schemas of the domain types the API shows. The domain knows nothing of
//! OpenAPI, so each type's schema is derived here from a mirror with the same serde shape
//! (and the same name in the document); a test holds each mirror to its type's JSON.

#![allow(dead_code)] // The mirrors are only ever described, never built.

use std::borrow::Cow;

use serde::Serialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{RefOr, schema::Schema},
};

use crate::domain::{
    DocumentStatus, Engine, Page, PageSource,
    ocr::{OcrChoice, OcrMode},
};

/// Gives `$domain` the schema, name and nested schemas of its mirror `$mirror`.
macro_rules! described_by {
    ($($domain:ty => $mirror:ty),+ $(,)?) => {$(
        impl PartialSchema for $domain {
            fn schema() -> RefOr<Schema> {
                <$mirror as PartialSchema>::schema()
            }
        }

        impl ToSchema for $domain {
            fn name() -> Cow<'static, str> {
                <$mirror as ToSchema>::name()
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                <$mirror as ToSchema>::schemas(schemas)
            }
        }
    )+};
}

described_by!(
    DocumentStatus => DocumentStatusSchema,
    Engine => EngineSchema,
    PageSource => PageSourceSchema,
    OcrMode => OcrModeSchema,
    OcrChoice => OcrChoiceSchema,
    Page => PageSchema,
);

/// Where a document is in its life cycle.
#[derive(Serialize, ToSchema)]
#[schema(as = DocumentStatus)]
#[serde(rename_all = "snake_case")]
enum DocumentStatusSchema {
    /// Stored and waiting for a worker.
    Queued,
    /// A worker is extracting its pages.
    Processing,
    /// Every page has been extracted (some pages may carry an error of their own).
    Done,
    /// Extraction gave up; `error` says why.
    Failed,
    /// A user cancelled the work.
    Cancelled,
}

/// How a document is read; recorded on the document when it is queued.
#[derive(Serialize, ToSchema)]
#[schema(as = Engine)]
#[serde(rename_all = "snake_case")]
enum EngineSchema {
    /// The PDF's own text layer, and local OCR for pages without one.
    Local,
    /// AWS Textract, for every page.
    Textract,
    /// The text layer locally; only the pages that need OCR go to Textract.
    Hybrid,
}

/// Which engine produced a page's text.
#[derive(Serialize, ToSchema)]
#[schema(as = PageSource)]
#[serde(rename_all = "snake_case")]
enum PageSourceSchema {
    /// The PDF's own text layer.
    TextLayer,
    /// Local OCR (Tesseract) of the rendered page.
    Ocr,
    /// AWS Textract.
    Textract,
}

/// When pages are read by OCR.
#[derive(Serialize, ToSchema)]
#[schema(as = OcrMode)]
#[serde(rename_all = "snake_case")]
enum OcrModeSchema {
    /// Only pages whose text layer is missing, too short or garbage.
    Auto,
    /// Never: the text layer is taken as it is.
    Off,
    /// Every page, whatever its text layer.
    Force,
}

/// The OCR choices a document is extracted with.
#[derive(Serialize, ToSchema)]
#[schema(as = OcrChoice)]
struct OcrChoiceSchema {
    /// When pages are OCR'd.
    mode: OcrMode,
    /// Tesseract languages joined by `+`.
    languages: String,
}

/// The text of one page.
#[derive(Serialize, ToSchema)]
#[schema(as = Page)]
struct PageSchema {
    /// 1-based page number.
    number: i32,
    /// The extracted text (empty when the page failed or has no text).
    text: String,
    /// The engine that produced it.
    source: PageSource,
    /// Characters (not bytes) in `text`.
    char_count: i32,
    /// Milliseconds spent on this page.
    extraction_ms: i64,
    /// Why this page could not be extracted.
    error: Option<String>,
    /// The engine's mean confidence (0–100), when it reports one.
    confidence: Option<f64>,
    /// The resolution an OCR'd page was read at.
    dpi: Option<i32>,
    /// Why the page went to OCR.
    ocr_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn schema_json<T: ToSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    fn enum_values<T: ToSchema>() -> Value {
        schema_json::<T>()["enum"].clone()
    }

    fn property_names<T: ToSchema>() -> Vec<String> {
        let schema = schema_json::<T>();
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn json_keys(value: impl Serialize) -> Vec<String> {
        let mut keys: Vec<String> = serde_json::to_value(value)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn each_mirror_lists_what_its_domain_type_serializes_to() {
        let names = |values: Vec<Value>| Value::Array(values);
        assert_eq!(
            enum_values::<DocumentStatus>(),
            names(DocumentStatus::ALL.map(|s| json!(s)).to_vec())
        );
        assert_eq!(
            enum_values::<Engine>(),
            names(Engine::ALL.map(|e| json!(e)).to_vec())
        );
        assert_eq!(
            enum_values::<PageSource>(),
            names(PageSource::ALL.map(|s| json!(s)).to_vec())
        );
        assert_eq!(
            enum_values::<OcrMode>(),
            names(OcrMode::ALL.map(|m| json!(m)).to_vec())
        );
        let choice = OcrChoice {
            mode: OcrMode::Auto,
            languages: "eng".into(),
        };
        assert_eq!(property_names::<OcrChoice>(), json_keys(choice));
        let page = Page {
            number: 1,
            text: String::new(),
            source: PageSource::TextLayer,
            char_count: 0,
            extraction_ms: 0,
            error: None,
            confidence: None,
            dpi: None,
            ocr_reason: None,
        };
        assert_eq!(property_names::<Page>(), json_keys(page));
        assert_eq!(Page::name(), "Page");
    }
}
