//! Pure types and rules of Lector: documents, their status, pages and upload checks. No I/O.

pub mod document;
pub mod ocr;
pub mod upload;

pub use document::{Document, DocumentStatus, Page, PageSource};
