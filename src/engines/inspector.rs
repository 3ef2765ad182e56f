//! Long-lived sandboxed children that check uploads (the model of Apache Tika's ForkParser,
//! which keeps its forked parser alive between files).
//!
//! Opening a PDF to count its pages takes well under a millisecond; starting a process of
//! this binary takes about 13 ms of CPU (the dynamic loader binding ~57 shared libraries,
//! most of them Tesseract's, and the page faults that follow). Under upload load the
//! children's start-up was two thirds of the machine's CPU, so a checked child answers many
//! uploads, one at a time, under the same memory limit and a wall-clock deadline per file.
//! A child is retired after any refusal (a malformed file may have left the parser in a bad
//! state), after [`MAX_FILES`] files, and before its CPU-time limit, which counts over its
//! whole life, could cut short a file that should fit in it.

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout},
    task::JoinHandle,
};

use super::{
    Inspection, OpenError,
    child::{SandboxError, SandboxMessage, child_command, describe_exit, keep_stderr_tail},
};

/// Files one child checks before it is replaced.
pub const MAX_FILES: u32 = 1000;

/// One file to check, as a line on the child's stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct InspectRequest {
    /// The PDF.
    pub path: PathBuf,
    /// The user password of an encrypted PDF.
    pub password: Option<String>,
}

/// Idle checked children, reused by uploads.
#[derive(Debug)]
pub struct Inspectors {
    exe: PathBuf,
    memory_mb: u64,
    uploads: PathBuf,
    idle: Mutex<Vec<Inspector>>,
    max_idle: usize,
    started: AtomicU64,
}

impl Inspectors {
    /// Children of `exe` limited to `memory_mb`, which may read the files in `uploads` and no
    /// others; at most `max_idle` are kept waiting.
    pub fn new(exe: PathBuf, memory_mb: u64, max_idle: usize, uploads: PathBuf) -> Self {
        Inspectors {
            exe,
            memory_mb,
            uploads,
            idle: Mutex::new(Vec::new()),
            max_idle,
            started: AtomicU64::new(0),
        }
    }

    /// Opens the PDF at `path` in an idle child (or a new one) and reports what it is.
    pub async fn inspect(
        &self,
        path: &Path,
        password: Option<&str>,
        limit: Duration,
    ) -> Result<Result<Inspection, OpenError>, SandboxError> {
        // The child could not read it: say so here rather than lose a child to it.
        if !path.starts_with(&self.uploads) {
            return Err(SandboxError::Io(std::io::Error::other(format!(
                "{} is outside {}, the only folder upload checkers may read",
                path.display(),
                self.uploads.display()
            ))));
        }
        let request = InspectRequest {
            path: path.to_owned(),
            password: password.map(str::to_owned),
        };
        let idle = self.idle.lock().expect("inspector pool lock").pop();
        let (inspector, answer) = match idle {
            Some(mut inspector) => match inspector.ask(&request, limit).await {
                // A child that died while it waited, not on this file, is replaced.
                Err(Fault::Died) => {
                    let mut fresh = self.start(limit)?;
                    let answer = fresh.ask(&request, limit).await;
                    (fresh, answer)
                }
                answer => (inspector, answer),
            },
            None => {
                let mut fresh = self.start(limit)?;
                let answer = fresh.ask(&request, limit).await;
                (fresh, answer)
            }
        };
        // Dropping an inspector (on every early return) kills its child.
        let answer = match answer {
            Ok(answer) => answer,
            Err(Fault::TimedOut) => return Err(SandboxError::TimedOut(limit)),
            Err(Fault::Io(io)) => return Err(SandboxError::Io(io)),
            Err(Fault::Died) => return Err(inspector.death(limit).await),
            Err(Fault::Garbled(reason)) => return Err(SandboxError::Crashed(reason)),
        };
        let result = match answer {
            SandboxMessage::Opened(inspection) => Ok(inspection),
            SandboxMessage::Refused(reason) => Err(reason),
            _ => return Err(SandboxError::Crashed("gave an answer out of turn".into())),
        };
        if result.is_ok() && inspector.files < MAX_FILES && inspector.busy < limit / 2 {
            let mut idle = self.idle.lock().expect("inspector pool lock");
            if idle.len() < self.max_idle {
                idle.push(inspector);
            }
        }
        Ok(result)
    }

    /// Starts up to `count` children now, so that the first uploads do not wait for them.
    pub fn warm(&self, count: usize, limit: Duration) -> Result<(), SandboxError> {
        for _ in self.idle_count()..count.min(self.max_idle) {
            let inspector = self.start(limit)?;
            self.idle
                .lock()
                .expect("inspector pool lock")
                .push(inspector);
        }
        Ok(())
    }

    /// Children started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Children waiting for a file.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("inspector pool lock").len()
    }

    fn start(&self, limit: Duration) -> Result<Inspector, SandboxError> {
        // The CPU limit covers the child's whole life: retiring it once half the per-file
        // limit is spent keeps a full per-file allowance for every file it is given.
        let cpu_secs = limit.as_secs() + 5;
        let mut child = child_command(&self.exe, self.memory_mb, cpu_secs)
            .arg("inspector")
            .arg("--uploads")
            .arg(&self.uploads)
            .spawn()?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok(Inspector {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            stderr_tail: Some(keep_stderr_tail(stderr)),
            files: 0,
            busy: Duration::ZERO,
        })
    }
}

/// One child and what it has done so far. Dropping it kills the child.
#[derive(Debug)]
struct Inspector {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    stderr_tail: Option<JoinHandle<String>>,
    files: u32,
    busy: Duration,
}

enum Fault {
    TimedOut,
    Io(std::io::Error),
    Died,
    Garbled(String),
}

impl Inspector {
    /// Sends one file and waits, at most `limit`, for the child's answer.
    async fn ask(
        &mut self,
        request: &InspectRequest,
        limit: Duration,
    ) -> Result<SandboxMessage, Fault> {
        let started = Instant::now();
        let answer = match tokio::time::timeout(limit, self.exchange(request)).await {
            Err(_) => Err(Fault::TimedOut),
            Ok(answer) => answer,
        };
        self.files += 1;
        self.busy += started.elapsed();
        answer
    }

    async fn exchange(&mut self, request: &InspectRequest) -> Result<SandboxMessage, Fault> {
        let mut line = serde_json::to_vec(request).map_err(|e| Fault::Io(e.into()))?;
        line.push(b'\n');
        // A dead child shows as a broken pipe here or as the end of its output below.
        if self.stdin.write_all(&line).await.is_err() || self.stdin.flush().await.is_err() {
            return Err(Fault::Died);
        }
        match self.lines.next_line().await {
            Ok(Some(line)) => serde_json::from_str(&line)
                .map_err(|e| Fault::Garbled(format!("sent an unreadable answer ({e})"))),
            Ok(None) => Err(Fault::Died),
            Err(io) => Err(Fault::Io(io)),
        }
    }

    /// How the child died, in words for a person.
    async fn death(mut self, limit: Duration) -> SandboxError {
        let status = match self.child.wait().await {
            Ok(status) => status,
            Err(io) => return SandboxError::Io(io),
        };
        let stderr = match self.stderr_tail.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        SandboxError::Crashed(describe_exit(status, &stderr, limit))
    }
}

/// The child side: `lector sandbox inspector --uploads DIR`. Confines itself to reading the
/// files in `uploads`, then answers one line per request line until its stdin closes.
pub fn serve(uploads: &Path, memory_mb: u64, cpu_secs: u64) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let allowance = super::confine::Allowance::inspector(uploads, memory_mb, cpu_secs);
    super::confine::confine(&allowance)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let request: InspectRequest = serde_json::from_str(&line?)?;
        let bytes = std::fs::read(&request.path)?;
        let message = match super::text_layer::open(bytes, request.password.as_deref()) {
            Ok(doc) => SandboxMessage::Opened(super::OpenDocument::inspection(&doc)),
            Err(reason) => SandboxMessage::Refused(reason),
        };
        serde_json::to_writer(&mut out, &message)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    Ok(())
}
