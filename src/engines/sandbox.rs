//! Runs engines in a child process with resource limits (Apache Tika's forked-parser model).
//!
//! The parent starts `lector sandbox extract|split FILE` with an empty environment (but for
//! the few variables in [`PASSED_ON`]) and the password and the pages to skip on stdin; the
//! child confines itself ([`super::confine`]: limits, Landlock, seccomp), opens the PDF and
//! writes one JSON line per result on stdout. A crash, a hang (killed at the deadline) or an
//! allocation failure ends only the child, and the parent turns it into a readable reason.

use std::{
    ffi::OsString,
    io::Write,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdout, Command},
};

use super::{
    Inspection, OpenError, PageText,
    confine::{Allowance, confine},
    inspector::Inspectors,
};

/// What the parent sends on the child's stdin.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxRequest {
    /// The user password of an encrypted PDF.
    pub password: Option<String>,
    /// Pages already stored (a resumed job skips them).
    pub skip: Vec<u32>,
    /// When and how to OCR pages.
    pub ocr: super::ocr::OcrSettings,
    /// `split`: the pages to copy, in order, and the file to write them to.
    pub split: Option<(Vec<u32>, PathBuf)>,
}

/// One line the child writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMessage {
    /// The document opened; this is what it is.
    Opened(Inspection),
    /// It could not be opened.
    Refused(OpenError),
    /// OCR of this page is starting.
    OcrStarted(u32),
    /// This page needs OCR, left to the caller.
    OcrDeferred {
        /// 1-based page number.
        page: u32,
        /// Why it needs OCR.
        reason: String,
    },
    /// `split` wrote this many pages.
    Split(u32),
    /// One page is done.
    Page(PageText),
}

/// Why the sandbox gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The deadline passed and the child was killed.
    #[error("gave up after {}s (the time limit for this document)", .0.as_secs())]
    TimedOut(Duration),
    /// The child died: the reason says how, in words for a person.
    #[error("the PDF parser {0}")]
    Crashed(String),
    /// Starting or talking to the child failed (not the PDF's fault).
    #[error("the PDF parser could not be run: {0}")]
    Io(#[from] std::io::Error),
}

impl SandboxError {
    /// True when the failure comes from the document itself, so retrying cannot help.
    pub fn is_document_fault(&self) -> bool {
        !matches!(self, SandboxError::Io(_))
    }
}

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

/// Variables a child is given from the parent's environment, when the parent has them: where
/// Tesseract's models are (it reads this itself), where the loader finds libraries a
/// deployment put aside, and whether a panic prints a backtrace. Nothing else passes: the
/// parent's environment holds the database and AWS credentials and the metrics token.
/// `LLVM_PROFILE_FILE` is where a coverage build writes its profile (`scripts/coverage`); a
/// release build ignores it.
pub const PASSED_ON: &[&str] = &[
    "TESSDATA_PREFIX",
    "LD_LIBRARY_PATH",
    "RUST_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// `exe sandbox --memory-mb M --cpu-secs C`, to which the caller adds the mode and its
/// arguments: piped, with an empty environment but for what the child needs, killed when its
/// handle is dropped.
pub(super) fn child_command(exe: &Path, memory_mb: u64, cpu_secs: u64) -> Command {
    child_command_in(exe, memory_mb, cpu_secs, |name| std::env::var_os(name))
}

/// [`child_command`] from a parent whose environment `parent_env` looks up.
pub(super) fn child_command_in(
    exe: &Path,
    memory_mb: u64,
    cpu_secs: u64,
    parent_env: impl Fn(&str) -> Option<OsString>,
) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("sandbox")
        .arg("--memory-mb")
        .arg(memory_mb.to_string())
        .arg("--cpu-secs")
        .arg(cpu_secs.to_string())
        .env_clear()
        .envs(
            PASSED_ON
                .iter()
                .filter_map(|&name| Some((name, parent_env(name)?))),
        )
        // mimalloc reserves a 1 GiB arena at start-up, before the child lowers its
        // address-space limit, and would then grow inside it unchecked: small arenas make
        // every growth a new mapping that the limit can refuse.
        .env("MIMALLOC_ARENA_RESERVE", "4MiB")
        // Debian's Tesseract uses OpenMP, and a thread per core made a page 6-10x slower
        // (shared/ENGINES.md); and its RLIMIT_NPROC of 0 refuses threads to any user but root.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Keeps the end of a child's stderr: it holds the panic or allocation message of a crash.
pub(super) fn keep_stderr_tail(mut stderr: ChildStderr) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.len() > 16 * 1024 {
                all.drain(..all.len() - 8 * 1024);
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    })
}

/// A running sandboxed extraction. Dropping it kills the child.
pub struct SandboxRun {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stderr_tail: Option<tokio::task::JoinHandle<String>>,
    limit: Duration,
}

impl SandboxRun {
    /// The next message, or `None` when the child finished cleanly.
    /// True when a whole message has arrived and waits to be read (reading it will not wait).
    pub fn has_buffered_message(&mut self) -> bool {
        self.lines.get_mut().buffer().contains(&b'\n')
    }

    pub async fn next_message(&mut self) -> Result<Option<SandboxMessage>, SandboxError> {
        if let Some(line) = self.lines.next_line().await? {
            return serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| SandboxError::Crashed(format!("sent an unreadable answer ({e})")));
        }
        let status = self.child.wait().await?;
        if status.success() {
            return Ok(None);
        }
        let stderr = match self.stderr_tail.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        Err(SandboxError::Crashed(describe_exit(
            status, &stderr, self.limit,
        )))
    }

    /// Kills the child now.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A child's death in words for a person.
pub(super) fn describe_exit(status: ExitStatus, stderr: &str, limit: Duration) -> String {
    use std::os::unix::process::ExitStatusExt;
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return "ran out of memory on this file".into();
    }
    if let Some(line) = stderr.lines().find(|l| l.contains("panicked at")) {
        let detail = stderr
            .lines()
            .skip_while(|l| !l.contains("panicked at"))
            .nth(1)
            .unwrap_or(line);
        return format!("crashed on this file ({})", detail.trim());
    }
    match status.signal() {
        Some(24) | Some(9) => format!(
            "used more than its CPU time limit ({}s)",
            limit.as_secs() + 5
        ),
        Some(6) => "aborted on this file".into(),
        Some(25) => "wrote more than its file-size limit".into(),
        Some(11) => "crashed on this file (segmentation fault)".into(),
        Some(signal) => format!("was stopped by signal {signal}"),
        None => format!("failed with exit code {}", status.code().unwrap_or(-1)),
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
