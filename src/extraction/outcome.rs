//! How an attempt at reading a document ended: what the queue then records.

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every page is stored.
    Done,
    /// The document itself cannot be extracted; retrying would not help.
    Failed(String),
    /// Something outside the document went wrong (database, disk); try again later.
    Retry(anyhow::Error),
    /// The job is no longer ours (cancelled, re-queued, or the lease was taken over).
    Lost,
    /// Shutting down: hand the job back to the queue.
    Released,
    /// Not now (no Textract capacity free): back to the queue, due again after this long,
    /// without counting an attempt.
    Deferred(std::time::Duration),
}

impl Outcome {
    /// The `outcome` label of the extraction-time histogram.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed(_) => "failed",
            Outcome::Retry(_) => "retry",
            Outcome::Lost => "lost",
            Outcome::Released => "released",
            Outcome::Deferred(_) => "deferred",
        }
    }
}
