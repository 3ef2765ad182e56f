//! The parent's side of a sandboxed child: what it is sent, what it answers, how it is
//! started (a cleared environment, piped, killed with its handle) and how its death is put
//! in words. The [`Sandbox`](super::Sandbox) and the [`Inspectors`](super::inspector) both
//! start children this way.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, BufReader, Lines},
    process::{Child, ChildStderr, ChildStdout, Command},
};

use super::{Inspection, OpenError, PageText};

/// What the parent sends on the child's stdin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// `batch`: the files and folders the child may read; the files to extract follow on
    /// stdin, one JSON line each.
    pub batch_reads: Vec<PathBuf>,
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
    /// `batch`: the file is done; the next may be sent.
    Finished,
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

/// Variables a child is given from the parent's environment, when the parent has them: where
/// Tesseract's models and its library are, where the loader finds libraries a
/// deployment put aside, and whether a panic prints a backtrace. Nothing else passes: the
/// parent's environment holds the database and AWS credentials and the metrics token.
/// `LLVM_PROFILE_FILE` is where a coverage build writes its profile (`scripts/coverage`); a
/// release build ignores it.
pub const PASSED_ON: &[&str] = &[
    "TESSDATA_PREFIX",
    "LECTOR_TESSERACT_LIBRARY",
    "LD_LIBRARY_PATH",
    "RUST_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

/// `exe sandbox --memory-mb M --cpu-secs C`, to which the caller adds the mode and its
/// arguments: piped, with an empty environment but for what the child needs, killed when its
/// handle is dropped.
pub(crate) fn child_command(exe: &Path, memory_mb: u64, cpu_secs: u64) -> Command {
    child_command_in(exe, memory_mb, cpu_secs, |name| std::env::var_os(name))
}

/// [`child_command`] from a parent whose environment `parent_env` looks up.
pub(crate) fn child_command_in(
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
pub(crate) fn keep_stderr_tail(mut stderr: ChildStderr) -> tokio::task::JoinHandle<String> {
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
    pub(super) child: Child,
    pub(super) lines: Lines<BufReader<ChildStdout>>,
    pub(super) stderr_tail: Option<tokio::task::JoinHandle<String>>,
    pub(super) limit: Duration,
}

impl SandboxRun {
    /// True when a whole message has arrived and waits to be read (reading it will not wait).
    pub fn has_buffered_message(&mut self) -> bool {
        self.lines.get_mut().buffer().contains(&b'\n')
    }

    /// The next message, or `None` when the child finished cleanly.
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
pub(crate) fn describe_exit(status: ExitStatus, stderr: &str, limit: Duration) -> String {
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
