//! `lector sandbox probe FILE`: a child started and confined exactly as the parser's children
//! are (the same [`child_command`](super::sandbox) and [`confine`] as `extract` of FILE), which
//! then tries what an exploit would try and reports, as one JSON line, what got through.
//! `lector doctor` and `tests/sandbox.rs` run it.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    SandboxError,
    child::{child_command_in, keep_stderr_tail},
    confine::{Allowance, Protections, confine},
};

/// What the probe tries, besides starting a process and a thread.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// The PDF it is confined as if to extract (the one file it should be able to read).
    pub file: PathBuf,
    /// Files to open for writing (created when missing).
    pub try_write: Vec<PathBuf>,
    /// Files to read.
    pub try_read: Vec<PathBuf>,
    /// A TCP address to connect to.
    pub try_connect: Option<SocketAddr>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attempt {
    /// It worked: the confinement let it through.
    Succeeded,
    /// It was refused.
    Failed {
        /// The OS error number, when there is one (EPERM 1 is seccomp's answer, EACCES 13
        /// Landlock's).
        errno: Option<i32>,
        /// The error in words.
        error: String,
    },
}

impl Attempt {
    fn of<T>(result: std::io::Result<T>) -> Self {
        match result {
            Ok(_) => Attempt::Succeeded,
            Err(e) => Attempt::Failed {
                errno: e.raw_os_error(),
                error: e.to_string(),
            },
        }
    }

    /// Whether the attempt got through.
    pub fn succeeded(&self) -> bool {
        matches!(self, Attempt::Succeeded)
    }

    /// The OS error number of a refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Attempt::Succeeded => None,
            Attempt::Failed { errno, .. } => *errno,
        }
    }
}

/// What the probe saw from inside its confinement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The protections in force.
    pub protections: Protections,
    /// Its whole environment.
    pub environment: BTreeMap<String, String>,
    /// Its soft resource limits (`address_space`, `cpu_seconds`, `core`, `file_size`,
    /// `open_files`, `processes`); `u64::MAX` is unlimited.
    pub limits: BTreeMap<String, u64>,
    /// Opening each `try_write` file for writing.
    pub writes: Vec<(PathBuf, Attempt)>,
    /// Reading each `try_read` file.
    pub reads: Vec<(PathBuf, Attempt)>,
    /// Connecting to `try_connect`.
    pub connect: Option<Attempt>,
    /// Starting a program (itself, with `--version`).
    pub spawn: Attempt,
    /// Making a process that then fails before it could run a program (it changes to a
    /// folder that does not exist): EPERM when no process may be made; ENOENT means the
    /// process was made.
    pub process: Attempt,
    /// Starting a thread, which the parser may still do.
    pub thread: Attempt,
}

/// Starts the probe as the server starts its parsers, from a parent whose environment
/// `parent_env` looks up, and returns its report.
pub async fn probe(
    exe: &Path,
    request: &ProbeRequest,
    parent_env: impl Fn(&str) -> Option<OsString>,
) -> Result<ProbeReport, SandboxError> {
    const LIMIT: Duration = Duration::from_secs(30);
    let mut command = child_command_in(exe, 1024, LIMIT.as_secs(), parent_env);
    command.arg("probe").arg(&request.file);
    for path in &request.try_write {
        command.arg("--try-write").arg(path);
    }
    for path in &request.try_read {
        command.arg("--try-read").arg(path);
    }
    if let Some(address) = request.try_connect {
        command.arg("--try-connect").arg(address.to_string());
    }
    let mut child = command.spawn()?;
    drop(child.stdin.take());
    let stderr = keep_stderr_tail(child.stderr.take().expect("stderr is piped"));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let output = async {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
        Ok::<_, std::io::Error>((child.wait().await?, out))
    };
    let (status, out) = tokio::time::timeout(LIMIT, output)
        .await
        .map_err(|_| SandboxError::TimedOut(LIMIT))??;
    match serde_json::from_slice(&out) {
        Ok(report) => Ok(report),
        Err(e) => {
            let stderr = stderr.await.unwrap_or_default();
            Err(SandboxError::Crashed(format!(
                "probe gave no report ({status}; {e}): {}",
                stderr.trim()
            )))
        }
    }
}

/// The child side: `lector sandbox probe FILE [--try-write PATH] [--try-read PATH]
/// [--try-connect ADDR]`. Confines itself as `extract` of FILE would, tries each thing, and
/// prints the report.
pub fn run(request: &ProbeRequest, memory_mb: u64, cpu_secs: u64) -> anyhow::Result<()> {
    let protections = confine(&Allowance::extract(&request.file, memory_mb, cpu_secs))?;
    let attempts = |paths: &[PathBuf], attempt: fn(&Path) -> Attempt| {
        paths.iter().map(|p| (p.clone(), attempt(p))).collect()
    };
    let report = ProbeReport {
        protections,
        environment: std::env::vars_os()
            // A coverage build's profiling runtime sets this in the child itself at start.
            .filter(|(k, _)| k != "__LLVM_PROFILE_RT_INIT_ONCE")
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect(),
        limits: limits(),
        writes: attempts(&request.try_write, |path| {
            Attempt::of(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path),
            )
        }),
        reads: attempts(&request.try_read, |path| Attempt::of(std::fs::read(path))),
        connect: request.try_connect.map(|address| {
            Attempt::of(std::net::TcpStream::connect_timeout(
                &address,
                Duration::from_secs(5),
            ))
        }),
        spawn: start(std::process::Command::new("/proc/self/exe")),
        process: start({
            let mut command = std::process::Command::new("/proc/self/exe");
            command.current_dir("/nonexistent/lector-probe");
            command
        }),
        thread: Attempt::of(std::thread::Builder::new().spawn(|| ()).map(|t| t.join())),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn start(mut command: std::process::Command) -> Attempt {
    // Pipes rather than /dev/null, which the confinement does not let it open: the attempt
    // is to start a process.
    Attempt::of(
        command
            .arg("--version")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|child| child.wait_with_output()),
    )
}

fn limits() -> BTreeMap<String, u64> {
    use rlimit::Resource;
    [
        ("address_space", Resource::AS),
        ("cpu_seconds", Resource::CPU),
        ("core", Resource::CORE),
        ("file_size", Resource::FSIZE),
        ("open_files", Resource::NOFILE),
        ("processes", Resource::NPROC),
    ]
    .into_iter()
    .filter_map(|(name, resource)| Some((name.into(), rlimit::getrlimit(resource).ok()?.0)))
    .collect()
}
