//! Runs engines in a child process with resource limits (Apache Tika's forked-parser model).
//!
//! The parent starts `lector sandbox extract|split FILE` with an empty environment (but for
//! the few variables in [`PASSED_ON`]) and the password and the pages to skip on stdin; the
//! child confines itself ([`super::confine`]: limits, Landlock, seccomp), opens the PDF and
//! writes one JSON line per result on stdout. A crash, a hang (killed at the deadline) or an
//! allocation failure ends only the child, and the parent turns it into a readable reason.

use std::{
    collections::HashSet,
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

    /// Starts a child that extracts the files it is given one after another, reading only
    /// beneath `request.batch_reads`. `cpu_limit` is its CPU-time backstop over all of them.
    pub async fn batch(
        &self,
        engine: &str,
        request: &SandboxRequest,
        cpu_limit: Duration,
    ) -> Result<BatchRun, SandboxError> {
        let mut child = child_command(&self.exe, self.memory_mb, cpu_limit.as_secs())
            .arg("batch")
            .arg("--engine")
            .arg(engine)
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut first = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        first.push(b'\n');
        stdin.write_all(&first).await?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_tail = keep_stderr_tail(child.stderr.take().expect("stderr is piped"));
        let run = SandboxRun {
            child,
            lines: BufReader::new(stdout).lines(),
            stderr_tail: Some(stderr_tail),
            limit: cpu_limit,
        };
        Ok(BatchRun { run, stdin })
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

/// A child extracting files one after another ([`Sandbox::batch`]). Dropping it kills the
/// child; after an error it must be dropped (the child may be dead or mid-file).
pub struct BatchRun {
    run: SandboxRun,
    stdin: tokio::process::ChildStdin,
}

/// What became of one file of a batch.
#[derive(Debug)]
pub enum BatchFile {
    /// It could not be opened.
    Refused(OpenError),
    /// Its pages, in order.
    Pages(Vec<super::PageText>),
}

impl BatchRun {
    /// Extracts the PDF at `path` within `limit`; `on_page` sees each page as it comes.
    pub async fn extract(
        &mut self,
        path: &Path,
        limit: Duration,
        mut on_page: impl FnMut(&super::PageText),
    ) -> Result<BatchFile, SandboxError> {
        let mut line = serde_json::to_vec(path).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        let answer = async {
            let mut outcome = BatchFile::Pages(Vec::new());
            loop {
                match self.run.next_message().await? {
                    Some(SandboxMessage::Finished) => return Ok(outcome),
                    Some(SandboxMessage::Refused(reason)) => outcome = BatchFile::Refused(reason),
                    Some(SandboxMessage::Page(page)) => {
                        on_page(&page);
                        if let BatchFile::Pages(pages) = &mut outcome {
                            pages.push(page);
                        }
                    }
                    Some(_) => {}
                    None => {
                        return Err(SandboxError::Crashed(
                            "stopped before the file's end".into(),
                        ));
                    }
                }
            }
        };
        match tokio::time::timeout(limit, answer).await {
            Ok(answer) => answer,
            Err(_) => {
                self.run.kill().await;
                Err(SandboxError::TimedOut(limit))
            }
        }
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
    if request.ocr.mode != crate::domain::ocr::OcrMode::Off {
        // Opened now, while the library's files may still be read; a failure is the first
        // OCR page's to report.
        let _ = super::ocr::tesseract_library();
    }
    confine(&Allowance::extract(path, memory_mb, cpu_secs))?;
    let bytes = std::fs::read(path)?;
    let mut out = Answers::new();
    let skip: HashSet<u32> = request.skip.iter().copied().collect();
    let password = request.password.clone();
    let mut ocr = super::ocr::OcrPipeline::new(path, request.password, request.ocr);
    extract_file(
        engine,
        bytes,
        password.as_deref(),
        &skip,
        &mut ocr,
        &mut out,
    )
}

/// The child side of `lector sandbox batch`: the request on stdin's first line, then the
/// files to extract, one JSON line each; each file's answers end with `Finished`. Confined
/// once, to the folders and files the request names, so that one child reads many files
/// without a process start for each.
pub fn run_batch_child(engine: &str, memory_mb: u64, cpu_secs: u64) -> anyhow::Result<()> {
    use std::io::BufRead;
    let engine =
        super::engine_named(engine).ok_or_else(|| anyhow::anyhow!("unknown engine {engine:?}"))?;
    let mut lines = std::io::stdin().lock().lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("no request on stdin"))??;
    let request: SandboxRequest = serde_json::from_str(&first)?;
    if request.ocr.mode != crate::domain::ocr::OcrMode::Off {
        let _ = super::ocr::tesseract_library();
    }
    confine(&Allowance::batch(&request.batch_reads, memory_mb, cpu_secs))?;
    let mut out = Answers::new();
    let mut ocr = super::ocr::OcrPipeline::new(Path::new(""), None, request.ocr);
    let password = request.password.as_deref();
    for line in lines {
        let path: PathBuf = serde_json::from_str(&line?)?;
        ocr.switch_to(&path, request.password.clone());
        match std::fs::read(&path) {
            Ok(bytes) => {
                extract_file(engine, bytes, password, &HashSet::new(), &mut ocr, &mut out)?
            }
            Err(e) => out.send(&SandboxMessage::Refused(OpenError::Unreadable(format!(
                "could not read the file ({e})"
            ))))?,
        }
        out.send(&SandboxMessage::Finished)?;
    }
    Ok(())
}

/// The child's answers on stdout, one JSON line each, flushed per message so that the parent
/// stores each page as soon as it exists.
struct Answers(std::io::BufWriter<std::io::StdoutLock<'static>>);

impl Answers {
    fn new() -> Self {
        Answers(std::io::BufWriter::new(std::io::stdout().lock()))
    }

    fn send(&mut self, message: &SandboxMessage) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, message)?;
        self.0.write_all(b"\n")?;
        self.0.flush()
    }
}

/// Opens the PDF in `bytes` and extracts every page not in `skip`.
fn extract_file(
    engine: &dyn super::Engine,
    bytes: Vec<u8>,
    password: Option<&str>,
    skip: &HashSet<u32>,
    ocr: &mut super::ocr::OcrPipeline,
    out: &mut Answers,
) -> anyhow::Result<()> {
    let doc = match engine.open(bytes, password) {
        Ok(doc) => doc,
        Err(reason) => return Ok(out.send(&SandboxMessage::Refused(reason))?),
    };
    out.send(&SandboxMessage::Opened(doc.inspection()))?;
    let pages = (1..=doc.inspection().pages).filter(|n| !skip.contains(n));
    super::extract_pages(doc.as_ref(), ocr, pages, |progress| {
        out.send(&match progress {
            super::Progress::OcrStarted(number) => SandboxMessage::OcrStarted(number),
            super::Progress::OcrDeferred(page, reason) => {
                SandboxMessage::OcrDeferred { page, reason }
            }
            super::Progress::Page(page) => SandboxMessage::Page(page),
        })
    })?;
    Ok(())
}
