//! How a document is read: the engine it was queued with ([`Engine`]) chosen by one `match`,
//! the attempt's [`Context`] every reader takes, and the [`PageSink`] that stores pages in
//! batches while the job's lease is still ours. The engines themselves are in
//! [`crate::engines`]; claiming, retrying and recording attempts is the `jobs` runtime's work.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{
    blobs::BlobStore,
    config::Config,
    domain::Engine,
    engines::{Sandbox, textract::Textract},
    storage::{ClaimedJob, Store},
};

mod hybrid;
mod local;
mod outcome;
mod share;
mod sink;
mod textract;

pub use outcome::Outcome;
pub use sink::PageSink;

/// What documents are read with: where originals are, the local engine's sandbox, and
/// Textract when it is configured.
#[derive(Debug, Clone)]
pub struct Engines {
    /// Where originals are read from.
    pub blobs: BlobStore,
    /// Runs the local engine in a child process.
    pub sandbox: Sandbox,
    /// AWS Textract, when `LECTOR_ENGINE=textract` (or a bucket) is configured.
    pub textract: Option<Textract>,
    /// SQS, when Textract's completion notices are configured.
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// The OCR languages this machine has.
    pub ocr: crate::engines::ocr::OcrAvailability,
    /// One permit per core, shared by this process's workers: a job takes the free ones to
    /// read a long document's pages in parallel.
    pub cores: Arc<tokio::sync::Semaphore>,
}

/// One attempt at reading a claimed document: what every reader needs, passed as one.
pub struct Context<'a> {
    /// What the document is read with.
    pub engines: &'a Engines,
    /// Time limits, lease length, Textract's settings, the default OCR settings.
    pub config: &'a Config,
    /// Where the document, its password and its pages are.
    pub store: &'a dyn Store,
    /// The claimed job; every write about it says who holds its lease.
    pub job: &'a ClaimedJob,
    /// Who holds the job's lease, as written in `jobs.locked_by`.
    pub holder: &'a str,
    /// Shutting down: readers hand the job back (after the grace period, for local reading).
    pub shutdown: &'a CancellationToken,
}

impl Context<'_> {
    /// Reads the document of the job with the engine it was queued with. Errors outside the
    /// document (database, disk) are a retry.
    pub async fn read(&self) -> Outcome {
        match self.try_read().await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Retry(error),
        }
    }

    async fn try_read(&self) -> anyhow::Result<Outcome> {
        let document = self.store.get_document(&self.job.document_id).await?;
        match document.engine {
            Engine::Local => local::read(self, &document).await,
            Engine::Textract => textract::read(self, &document).await,
            Engine::Hybrid => hybrid::read(self, &document).await,
        }
    }
}
