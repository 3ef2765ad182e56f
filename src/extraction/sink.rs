//! Where extracted pages go: batches stored in one transaction each, and only while the job's
//! lease is ours (the store checks the holder in the same statement).

use crate::{
    domain::PageSource,
    storage::{ClaimedJob, NewPage, Store},
};

/// Most pages stored in one transaction.
const PAGE_BATCH: usize = 64;

/// Pages of one job waiting to be stored, and where they go.
pub struct PageSink<'a> {
    store: &'a dyn Store,
    job: &'a ClaimedJob,
    holder: &'a str,
    pending: Vec<NewPage>,
}

impl<'a> PageSink<'a> {
    /// An empty sink for the pages of `job`, held by `holder`.
    pub fn new(store: &'a dyn Store, job: &'a ClaimedJob, holder: &'a str) -> Self {
        PageSink {
            store,
            job,
            holder,
            pending: Vec::new(),
        }
    }

    /// Adds a page to the next batch.
    pub fn push(&mut self, page: NewPage) {
        self.pending.push(page);
    }

    /// True when the next batch is as large as one transaction takes.
    pub fn is_full(&self) -> bool {
        self.pending.len() >= PAGE_BATCH
    }

    /// Stores the pending pages (then empties the batch) in one transaction, unless the job is
    /// no longer ours (then false, and none is stored).
    pub async fn flush(&mut self) -> anyhow::Result<bool> {
        if self.pending.is_empty() {
            return Ok(true);
        }
        let ours = self
            .store
            .insert_pages(self.job, self.holder, &self.pending)
            .await?;
        if ours {
            for page in &self.pending {
                count_page(page.source);
            }
        }
        self.pending.clear();
        Ok(ours)
    }
}

/// Counts a stored page by the engine that produced it.
fn count_page(source: PageSource) {
    metrics::counter!("lector_pages_extracted_total", "source" => source.as_str()).increment(1);
}
