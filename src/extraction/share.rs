//! One share of a document's pages read locally: sandbox children in turn over the pages not
//! yet stored, each page stored as it arrives, until all are stored, the document fails, the
//! job is lost, or shutdown or another share ends it. A page that crashes or hangs the OCR is
//! stored as failed and a new child carries on after it.

use std::{future::Future, path::Path, pin::Pin};

use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::{Context, Outcome, PageSink};
use crate::{
    domain::PageSource,
    engines::{
        PageText, SandboxError,
        sandbox::{SandboxMessage, SandboxRequest, SandboxRun},
        text_layer,
    },
    storage::NewPage,
};

/// A share of the pages of one document, whose original is at `original`.
pub(super) struct Share<'c> {
    pub cx: &'c Context<'c>,
    pub original: &'c Path,
    /// Pages in the whole document (its time limits depend on them).
    pub pages: u32,
    /// Another share could not finish: store what came and hand the rest back.
    pub stop: &'c CancellationToken,
}

impl Share<'_> {
    /// Reads the pages `request` does not skip. Pages the child leaves to someone else
    /// (`ocr.defer`) are added to `deferred`.
    pub async fn read(
        &self,
        mut request: SandboxRequest,
        deferred: &mut Vec<u32>,
    ) -> anyhow::Result<Outcome> {
        let config = self.cx.config;
        let cpu_limit = config.extract_cpu_limit(self.pages, request.ocr.mode);
        // The document's limit covers reading text layers; time spent on OCR is added to it as
        // it is spent, since each OCR'd page has a limit of its own.
        let mut deadline = Instant::now() + config.extract_timeout(self.pages);
        let mut heartbeat = tokio::time::interval(config.heartbeat_interval());
        heartbeat.tick().await;
        let hand_back = self.hand_back();
        tokio::pin!(hand_back);
        let mut sink = PageSink::new(self.cx.store, self.cx.job, self.cx.holder);
        // Each pass runs one child over the pages not yet stored.
        loop {
            let run = match self
                .cx
                .engines
                .sandbox
                .extract(text_layer::ENGINE_NAME, self.original, &request, cpu_limit)
                .await
            {
                Ok(run) => run,
                Err(error) => return Ok(sandbox_outcome(error)),
            };
            let mut pass = Pass {
                share: self,
                run,
                sink: &mut sink,
                deferred,
                deadline: &mut deadline,
                ocr_page: None,
            };
            let failed = loop {
                match pass.step(&mut heartbeat, hand_back.as_mut()).await? {
                    Step::Go => {}
                    Step::End(outcome) => return Ok(outcome),
                    Step::PageFailed(failed) => break failed,
                }
            };
            tracing::warn!(page = failed.number, reason = %failed.reason, "page failed in OCR; going on with the next");
            deadline += failed.started.elapsed();
            sink.push(NewPage {
                number: failed.number as i32,
                text: String::new(),
                source: PageSource::Ocr,
                extraction_ms: failed.started.elapsed().as_millis() as i64,
                error: Some(failed.reason),
                confidence: None,
                dpi: None,
                ocr_reason: None,
            });
            if !sink.flush().await? {
                return Ok(Outcome::Lost);
            }
            request.skip.push(failed.number);
        }
    }

    /// Ends when shutdown's grace period is over or another share could not finish.
    fn hand_back(&self) -> impl Future<Output = ()> + use<'_> {
        let grace = self.cx.config.shutdown_grace;
        let (shutdown, stop) = (self.cx.shutdown, self.stop);
        async move {
            tokio::select! {
                _ = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(grace).await;
                } => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

/// What the pass does next.
enum Step {
    /// Wait for the next event.
    Go,
    /// The share is over.
    End(Outcome),
    /// A page failed in OCR: store it as failed and start a new child after it.
    PageFailed(FailedPage),
}

struct FailedPage {
    number: u32,
    started: Instant,
    reason: String,
}

/// One child's run over the share's pages not yet stored.
struct Pass<'p, 'c> {
    share: &'p Share<'c>,
    run: SandboxRun,
    sink: &'p mut PageSink<'c>,
    deferred: &'p mut Vec<u32>,
    deadline: &'p mut Instant,
    /// The page being OCR'd, since when.
    ocr_page: Option<(u32, Instant)>,
}

impl Pass<'_, '_> {
    /// Waits for the child's next message, the heartbeat, a time limit or the hand-back.
    async fn step(
        &mut self,
        heartbeat: &mut Interval,
        hand_back: Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<Step> {
        let wake_at = match self.ocr_page {
            Some((_, started)) => started + self.share.cx.config.ocr_page_timeout,
            None => *self.deadline,
        };
        tokio::select! {
            message = self.run.next_message() => self.on_message(message).await,
            _ = heartbeat.tick() => {
                let cx = self.share.cx;
                if !self.sink.flush().await? || !cx.store.heartbeat(cx.job, cx.holder, cx.config.job_lease).await? {
                    return Ok(self.lost().await);
                }
                Ok(Step::Go)
            }
            _ = tokio::time::sleep_until(wake_at) => self.on_time_up().await,
            _ = hand_back => {
                self.run.kill().await;
                if !self.sink.flush().await? {
                    return Ok(Step::End(Outcome::Lost));
                }
                Ok(Step::End(Outcome::Released))
            }
        }
    }

    async fn on_message(
        &mut self,
        message: Result<Option<SandboxMessage>, SandboxError>,
    ) -> anyhow::Result<Step> {
        // Anything but a page: first store the pages received before it.
        if !matches!(message, Ok(Some(SandboxMessage::Page(_)))) && !self.sink.flush().await? {
            return Ok(self.lost().await);
        }
        Ok(match message {
            Ok(Some(SandboxMessage::Page(page))) => return self.on_page(page).await,
            Ok(Some(SandboxMessage::OcrStarted(number))) => {
                self.ocr_page = Some((number, Instant::now()));
                Step::Go
            }
            Ok(Some(SandboxMessage::OcrDeferred { page, .. })) => {
                self.deferred.push(page);
                Step::Go
            }
            Ok(Some(
                SandboxMessage::Opened(_) | SandboxMessage::Split(_) | SandboxMessage::Finished,
            )) => Step::Go,
            Ok(Some(SandboxMessage::Refused(reason))) => {
                Step::End(Outcome::Failed(reason.to_string()))
            }
            Ok(None) => Step::End(Outcome::Done),
            Err(error) => match self.ocr_page {
                Some((number, started)) if error.is_document_fault() => {
                    let how = match error {
                        SandboxError::Crashed(how) => format!("the OCR process {how}"),
                        other => other.to_string(),
                    };
                    let reason = format!("OCR of this page failed: {how}");
                    Step::PageFailed(FailedPage {
                        number,
                        started,
                        reason,
                    })
                }
                _ => Step::End(sandbox_outcome(error)),
            },
        })
    }

    async fn on_page(&mut self, page: PageText) -> anyhow::Result<Step> {
        if let Some((_, started)) = self.ocr_page.take() {
            *self.deadline += started.elapsed();
        }
        self.sink.push(NewPage {
            number: page.number as i32,
            text: page.text,
            source: page.source,
            extraction_ms: page.ms as i64,
            error: page.error,
            confidence: page.confidence,
            dpi: page.dpi.map(|d| d as i32),
            ocr_reason: page.ocr_reason,
        });
        // Pages the child has already sent are stored together, in one transaction: one
        // commit per batch instead of one per page.
        if (self.sink.is_full() || !self.run.has_buffered_message()) && !self.sink.flush().await? {
            return Ok(self.lost().await);
        }
        Ok(Step::Go)
    }

    /// The page in OCR, or the document, ran out of time.
    async fn on_time_up(&mut self) -> anyhow::Result<Step> {
        self.run.kill().await;
        if !self.sink.flush().await? {
            return Ok(Step::End(Outcome::Lost));
        }
        let config = self.share.cx.config;
        Ok(match self.ocr_page {
            Some((number, started)) => Step::PageFailed(FailedPage {
                number,
                started,
                reason: format!(
                    "OCR gave up after {}s (the time limit per page)",
                    config.ocr_page_timeout.as_secs()
                ),
            }),
            None => {
                let limit = config.extract_timeout(self.share.pages);
                Step::End(Outcome::Failed(SandboxError::TimedOut(limit).to_string()))
            }
        })
    }

    async fn lost(&mut self) -> Step {
        self.run.kill().await;
        Step::End(Outcome::Lost)
    }
}

fn sandbox_outcome(error: SandboxError) -> Outcome {
    if error.is_document_fault() {
        Outcome::Failed(error.to_string())
    } else {
        Outcome::Retry(error.into())
    }
}
