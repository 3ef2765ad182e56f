//! Pure types and rules of Lector: accounts, documents, their status, pages and upload
//! checks. No I/O.

pub mod account;
pub mod address;
pub mod document;
pub mod engine;
pub mod ids;
pub mod ocr;
pub mod search;
pub mod upload;
pub mod webhook;

pub use account::{ApiToken, Credentials, User};
pub use document::{Document, DocumentStatus, Page};
pub use engine::{Engine, PageSource};
pub use ids::{DocumentId, TokenId, UserId, WebhookId};
