//! The use cases: what the web UI, the JSON API, the command line and the S3 consumer all
//! call. Each service holds what it needs (the store, the blob store, the configuration) and
//! answers in domain types; nothing here knows HTTP.

pub mod accounts;
pub mod documents;
pub mod search;
pub mod status;
pub mod webhooks;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{config::Config, extraction::Engines, storage::Store};

/// Every use-case service of one process, over one store.
#[derive(Clone)]
pub struct App {
    /// Upload, list, read, re-process, cancel and delete documents.
    pub documents: documents::Documents,
    /// Sign-up, log-in, tokens, passwords and account deletion.
    pub accounts: accounts::Accounts,
    /// Searching the text of an account's documents.
    pub search: search::Search,
    /// Completion webhooks and their deliveries.
    pub webhooks: webhooks::Webhooks,
    /// Readiness and the figures operators watch.
    pub status: status::Status,
}

impl App {
    /// The services over `store` and `engines`; `work_available` wakes this process's
    /// workers when a document is queued.
    pub fn new(
        store: Arc<dyn Store>,
        engines: &Engines,
        config: Arc<Config>,
        work_available: Arc<Notify>,
    ) -> Self {
        App {
            documents: documents::Documents::new(
                store.clone(),
                engines.blobs.clone(),
                engines.sandbox.clone(),
                engines.ocr.clone(),
                config.clone(),
                work_available,
            ),
            accounts: accounts::Accounts::new(store.clone(), config.clone()),
            search: search::Search::new(store.clone(), &config),
            webhooks: webhooks::Webhooks::new(store.clone(), config.clone()),
            status: status::Status::new(
                store,
                engines.blobs.clone(),
                engines.textract.clone(),
                engines.ocr.clone(),
                config,
            ),
        }
    }
}
