//! Runs engines in a child process with resource limits (Apache Tika's forked-parser model).
//!
//! The parent starts `lector sandbox extract|split FILE` with an empty environment (but for
//! the few variables in [`PASSED_ON`]) and the password and the pages to skip on stdin; the
//! child confines itself ([`super::confine`]: limits, Landlock, seccomp), opens the PDF and
//! writes one JSON line per result on stdout. A crash, a hang (killed at the deadline) or an
//! allocation failure ends only the child, and the parent turns it into a readable reason.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub use super::child::{PASSED_ON, SandboxError, SandboxMessage, SandboxRequest, SandboxRun};
use super::{
    OpenError,
    child::{child_command, keep_stderr_tail},
    confine::{Allowance, confine},
    inspector::Inspectors,
};

/// Starts sandboxed engine runs.
#[derive(Debug, Clone)]
pub struct Sandbox {
    exe: PathBuf,
    memory_mb: u64,
    inspectors: Arc<Inspectors>,
    uploads: Arc<tempfile::TempDir>,
}

impl Sandbox {
    /// A sandbox that runs `exe sandbox …` with an address-space limit of `memory_mb`, and a
    /// new private folder (removed when the last clone is dropped) for uploads to be checked in.
    pub fn new(exe: PathBuf, memory_mb: u64) -> std::io::Result<Self> {
        // The upload checkers may read every file in this folder and nothing else in the
        // temporary directory: not the jobs' originals, nor other programs' files.
        let uploads = tempfile::Builder::new()
            .prefix("lector-uploads-")
            .tempdir()?;
        // Enough idle checkers for every core to be checking an upload while as many more
        // uploads arrive; beyond that a burst starts (and then retires) extra children.
        let max_idle = 2 * crate::config::cores();
        let inspectors = Inspectors::new(exe.clone(), memory_mb, max_idle, uploads.path().into());
        Ok(Sandbox {
            inspectors: Arc::new(inspectors),
            exe,
            memory_mb,
            uploads: Arc::new(uploads),
        })
    }

    /// The long-lived children that check uploads.
    pub fn inspectors(&self) -> &Inspectors {
        &self.inspectors
    }

    /// The folder uploads are received in: the only one the upload checkers may read.
    pub fn uploads_dir(&self) -> &Path {
        self.uploads.path()
    }

    /// Copies `pages` of the PDF at `path` into a new PDF at `out`, in a child (the parse of
    /// an untrusted file stays out of this process). The error is for the user.
    pub async fn split(
        &self,
        path: &Path,
        pages: Vec<u32>,
        out: &Path,
        limit: Duration,
    ) -> Result<Result<u32, String>, SandboxError> {
        let request = SandboxRequest {
            split: Some((pages, out.to_owned())),
            ..SandboxRequest::default()
        };
        match self.one_answer("split", path, &request, limit).await? {
            Some(SandboxMessage::Split(pages)) => Ok(Ok(pages)),
            Some(SandboxMessage::Refused(reason)) => Ok(Err(reason.to_string())),
            _ => Err(SandboxError::Crashed("gave no answer".into())),
        }
    }

    /// Runs a child that answers once (`split`) and returns its answer.
    async fn one_answer(
        &self,
        mode: &str,
        path: &Path,
        request: &SandboxRequest,
        limit: Duration,
    ) -> Result<Option<SandboxMessage>, SandboxError> {
        let mut run = self
            .start(mode, super::text_layer::ENGINE_NAME, path, request, limit)
            .await?;
        let answer = async {
            let first = run.next_message().await?;
            // The child exits right after answering; let it, rather than killing it mid-exit.
            run.next_message().await?;
            Ok::<_, SandboxError>(first)
        };
        match tokio::time::timeout(limit, answer).await {
            Err(_) => Err(SandboxError::TimedOut(limit)),
            Ok(answer) => answer,
        }
    }

    /// Starts extracting every page not in `request.skip` with `engine`; read the results
    /// from the returned run. The caller enforces the wall-clock deadline; `cpu_limit` is
    /// the child's CPU-time backstop.
    pub async fn extract(
        &self,
        engine: &str,
        path: &Path,
        request: &SandboxRequest,
        cpu_limit: Duration,
    ) -> Result<SandboxRun, SandboxError> {
        self.start("extract", engine, path, request, cpu_limit)
            .await
    }

    async fn start(
        &self,
        mode: &str,
        engine: &str,
        path: &Path,
        request: &SandboxRequest,
        limit: Duration,
    ) -> Result<SandboxRun, SandboxError> {
        // CPU time is a backstop behind the wall-clock deadline the parent enforces.
        let cpu_secs = limit.as_secs() + 5;
        let mut child = child_command(&self.exe, self.memory_mb, cpu_secs)
            .arg(mode)
            .arg(path)
            .arg("--engine")
            .arg(engine)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(&serde_json::to_vec(request).map_err(std::io::Error::other)?)
            .await?;
        drop(stdin);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = keep_stderr_tail(stderr);
        Ok(SandboxRun {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr_tail: Some(stderr_tail),
            limit,
        })
    }
}

/// The child side: `lector sandbox extract|split FILE`. Confines itself, then answers on
/// stdout.
pub fn run_child(
    mode: &str,
    engine: &str,
    path: &Path,
    memory_mb: u64,
    cpu_secs: u64,
) -> anyhow::Result<()> {
    let engine =
        super::engine_named(engine).ok_or_else(|| anyhow::anyhow!("unknown engine {engine:?}"))?;
    let request: SandboxRequest = serde_json::from_reader(std::io::stdin().lock())?;
    if mode == "split" {
        let (pages, out) = request
            .split
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("split needs its pages and output file"))?;
        // Opened before confinement, which leaves no file open for writing by name.
        let out = std::fs::File::create(out)?;
        confine(&Allowance::split(path, memory_mb, cpu_secs))?;
        let bytes = std::fs::read(path)?;
        let message = match super::split::split(&bytes, pages, out) {
            Ok(written) => SandboxMessage::Split(written),
            Err(reason) => SandboxMessage::Refused(OpenError::Unreadable(reason)),
        };
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &message)?;
        stdout.write_all(b"\n")?;
        return Ok(stdout.flush()?);
    }
    confine(&Allowance::extract(path, memory_mb, cpu_secs))?;
    let bytes = std::fs::read(path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut send = |message: &SandboxMessage| -> std::io::Result<()> {
        serde_json::to_writer(&mut out, message)?;
        out.write_all(b"\n")?;
        // Flush per message so the parent stores each page as soon as it exists.
        out.flush()
    };
    let doc = match engine.open(bytes, request.password.as_deref()) {
        Ok(doc) => doc,
        Err(reason) => return Ok(send(&SandboxMessage::Refused(reason))?),
    };
    send(&SandboxMessage::Opened(doc.inspection()))?;
    if mode == "extract" {
        let skip: std::collections::HashSet<u32> = request.skip.into_iter().collect();
        let pages = (1..=doc.inspection().pages).filter(|n| !skip.contains(n));
        let mut ocr = super::ocr::OcrPipeline::new(path, request.password, request.ocr);
        super::extract_pages(doc.as_ref(), &mut ocr, pages, |progress| {
            send(&match progress {
                super::Progress::OcrStarted(number) => SandboxMessage::OcrStarted(number),
                super::Progress::OcrDeferred(page, reason) => {
                    SandboxMessage::OcrDeferred { page, reason }
                }
                super::Progress::Page(page) => SandboxMessage::Page(page),
            })
        })?;
    }
    Ok(())
}
