//! The durable queue runtime, one for both queues: the extraction jobs and the webhook
//! deliveries. A [`Runner`] claims an item with a lease, runs one attempt in its span with a
//! panic caught as a failure, and has the queue record what became of it (done, a retry
//! after [`Backoff`], a failure, a hand-back); [`Runner::run_until`] does that until
//! shutdown. What an attempt *does* lives elsewhere: [`crate::extraction`] reads documents,
//! [`crate::app::webhooks::delivery`] posts events.

use std::{future::Future, sync::Arc, time::Duration};

use futures_util::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod extraction;
pub mod webhooks;

pub use extraction::{ExtractionJobs, Worker, spawn_workers};

/// One kind of durable work: how an item is claimed (with its lease), tried once, and how the
/// outcome of a try is written back.
pub trait Queue: Clone + Send + Sync + 'static {
    /// A claimed item.
    type Claimed: Send + Sync;
    /// How one attempt ended.
    type Outcome: Send;

    /// Claims the next due item for `holder` (as written in the item's lock column).
    fn claim(
        &self,
        holder: &str,
    ) -> impl Future<Output = anyhow::Result<Option<Self::Claimed>>> + Send;

    /// The span the attempt and its recording run in.
    fn span(&self, claimed: &Self::Claimed) -> tracing::Span;

    /// Tries the item once.
    fn attempt(
        &self,
        claimed: &Self::Claimed,
        holder: &str,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Self::Outcome> + Send;

    /// The outcome of an attempt that panicked.
    fn panicked(&self, claimed: &Self::Claimed) -> Self::Outcome;

    /// Writes the outcome of an attempt that took `elapsed` back to the queue.
    fn record(
        &self,
        claimed: &Self::Claimed,
        holder: &str,
        outcome: Self::Outcome,
        elapsed: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Logs that `holder` could not reach the queue (each queue names its runners its way).
    fn unreachable(&self, holder: &str, error: &anyhow::Error);
}

/// Runs the items of one queue. Cheap to clone; each task holds one.
#[derive(Clone)]
pub struct Runner<Q> {
    queue: Q,
    /// Unique per task, so leases say who holds them.
    id: String,
    /// How often an idle runner looks for due items.
    poll_interval: Duration,
}

impl<Q: Queue> Runner<Q> {
    /// A runner called `id`, looking for work every `poll_interval` when idle.
    pub fn with_id(queue: Q, id: String, poll_interval: Duration) -> Self {
        Runner {
            queue,
            id,
            poll_interval,
        }
    }

    /// This runner's id, as written in the claimed item's lock column.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Claims and runs one due item. Returns false when there was none. Public so tests can
    /// drain the queue deterministically.
    pub async fn run_next(&self, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let Some(claimed) = self.queue.claim(&self.id).await? else {
            return Ok(false);
        };
        let span = self.queue.span(&claimed);
        let started = std::time::Instant::now();
        let attempt = self.queue.attempt(&claimed, &self.id, shutdown);
        // A panic in our own code fails the attempt (and is retried), never the runner.
        let outcome = match std::panic::AssertUnwindSafe(attempt.instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => self.queue.panicked(&claimed),
        };
        // Instrumented, not entered: a span guard held across an await is lost when the task
        // resumes on another thread, and the lines logged while recording would lose its
        // fields.
        self.queue
            .record(&claimed, &self.id, outcome, started.elapsed())
            .instrument(span)
            .await?;
        Ok(true)
    }

    /// Runs items until `shutdown` is cancelled, waking on `work_available` or every poll
    /// interval.
    pub async fn run_until(self, shutdown: CancellationToken, work_available: Arc<Notify>) {
        while !shutdown.is_cancelled() {
            match self.run_next(&shutdown).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => self.queue.unreachable(&self.id, &error),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = work_available.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}

/// Starts `runners`, each in a task of its own; the handle finishes when all have stopped
/// after `shutdown`.
pub fn spawn<Q: Queue>(
    runners: impl IntoIterator<Item = Runner<Q>>,
    shutdown: &CancellationToken,
    work_available: &Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    let handles: Vec<_> = runners
        .into_iter()
        .map(|runner| tokio::spawn(runner.run_until(shutdown.clone(), work_available.clone())))
        .collect();
    tokio::spawn(async move {
        for handle in handles {
            let _ = handle.await;
        }
    })
}

/// The wait before the next try after `attempts` failed ones: `base`, doubling with each
/// failure up to `doublings` times, and never more than `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait after the first failure.
    pub base: Duration,
    /// Failures after which the wait stops growing.
    pub doublings: u32,
    /// The longest wait.
    pub cap: Duration,
}

impl Backoff {
    /// The wait after `attempts` failed tries.
    pub fn after(&self, attempts: i32) -> Duration {
        let exponent = attempts.clamp(1, self.doublings as i32 + 1) as u32 - 1;
        self.base.saturating_mul(1 << exponent).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_their_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(2),
            doublings: 3,
            cap: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (0..6).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [2, 2, 4, 8, 10, 10]);
    }
}
