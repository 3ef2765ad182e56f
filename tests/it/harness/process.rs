//! The `lector` binary as a child process: commands run to their end ([`lector_command`]:
//! `lector user add`, `lector doctor` …) and services left running ([`Lector`]: `serve`,
//! `worker`) whose log is kept for the test to read and printed when it fails; and free ports
//! for them to bind.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use serde_json::Value;

use super::{TEST_PASSWORD, eventually};

/// The `lector` binary cargo built for these tests (also the sandbox child).
pub fn lector_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lector"))
}

/// A port on 127.0.0.1 that nothing listens on: bound, then released (for a child to bind,
/// or as an address where nothing answers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes an executable shell script at `path`. The file is written by a `sh` child, never
/// through a descriptor of this process: tests run in parallel threads, and a thread that forks
/// while another holds a script open for writing hands that descriptor to its child until the
/// child's exec, so running the script in that window fails with "Text file busy" (ETXTBSY).
pub fn write_script(path: &Path, body: &str) {
    let mut writer = std::process::Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    write!(stdin, "#!/bin/sh\n{body}\n").unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success(), "writing {path:?}");
}

/// `scripts/build-eb-bundle --binary BINARY --out OUT`, uncompressed (fast), which must succeed.
pub fn build_bundle(binary: &Path, out: &Path) {
    let built = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-eb-bundle"),
    )
    .arg("--binary")
    .arg(binary)
    .arg("--out")
    .arg(out)
    .env("BUNDLE_COMPRESSLEVEL", "0")
    .output()
    .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
}

/// `lector ARGS…` as an administrator runs it, to its end: the test's environment without
/// `RUST_LOG` (the logs' level is the default), then what the test adds.
pub fn lector_command(args: &[&str]) -> LectorCommand {
    let mut command = std::process::Command::new(lector_exe());
    command.args(args).env_remove("RUST_LOG");
    LectorCommand {
        command,
        stdin: None,
    }
}

/// A `lector` command to run to its end; see [`lector_command`].
pub struct LectorCommand {
    command: std::process::Command,
    stdin: Option<String>,
}

impl LectorCommand {
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Self {
        self.command.envs(vars.into_iter().copied());
        self
    }

    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    /// Nothing of the test's environment but `PATH`.
    pub fn env_clear(mut self) -> Self {
        self.command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        self
    }

    /// What the command reads on its standard input (nothing by default).
    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs it, blocking this thread: (success, stdout, stderr).
    pub fn run(mut self) -> (bool, String, String) {
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("the lector binary starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(self.stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(stdin);
        finished(child.wait_with_output().unwrap())
    }

    /// Runs it, awaited: for a command that talks to a stand-in served on this test's runtime,
    /// which a blocked thread would never let answer. (success, stdout, stderr).
    pub async fn run_async(self) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut command = tokio::process::Command::from(self.command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the lector binary starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(self.stdin.unwrap_or_default().as_bytes())
            .await
            .unwrap();
        drop(stdin);
        finished(child.wait_with_output().await.unwrap())
    }
}

fn finished(output: std::process::Output) -> (bool, String, String) {
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// An API token for a database, made the administrator's way: `lector user add` (the account
/// is kept if it exists) and `lector token create`, run as separate processes.
pub fn cli_token(database_url: &str) -> String {
    let (added, _, stderr) =
        lector_command(&["user", "add", "owner@example.com", "--password-stdin"])
            .env("DATABASE_URL", database_url)
            .stdin(&format!("{TEST_PASSWORD}\n"))
            .run();
    assert!(
        added || stderr.contains("already exists"),
        "lector user add: {stderr}"
    );
    let (created, stdout, stderr) =
        lector_command(&["token", "create", "owner@example.com", "--name", "tests"])
            .env("DATABASE_URL", database_url)
            .run();
    assert!(created, "lector token create: {stderr}");
    let token = stdout.trim().to_owned();
    assert!(token.starts_with("lector_"), "{token}");
    token
}

/// A running `lector` process (`serve`, `worker`); killed (SIGKILL) and reaped when dropped.
/// Its stdout and stderr (the log lines) go to a file, whose tail is printed when the test
/// fails.
pub struct Lector {
    child: Mutex<Child>,
    what: String,
    log: tempfile::NamedTempFile,
}

impl Lector {
    /// Starts `lector <command>` with the test's environment, compact uncoloured logs at the
    /// default level and no AWS settings of the machine's, then `vars`.
    pub fn start<K: AsRef<str>, V: AsRef<str>>(command: &str, vars: &[(K, V)]) -> Self {
        let log = tempfile::Builder::new()
            .prefix("lector-process-")
            .suffix(".log")
            .tempfile()
            .unwrap();
        let child = std::process::Command::new(lector_exe())
            .arg(command)
            .env("LECTOR_LOG_FORMAT", "compact")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .envs(vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.reopen().unwrap()))
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .expect("the lector binary starts");
        Lector {
            child: Mutex::new(child),
            what: format!(
                "lector {command} {:?}",
                vars.iter()
                    .map(|(k, v)| format!("{}={}", k.as_ref(), v.as_ref()))
                    .collect::<Vec<_>>()
            ),
            log,
        }
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap()
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.child().try_wait().unwrap() {
            panic!("{} exited with {status}:\n{}", self.what, self.log());
        }
    }

    /// SIGKILL, as the OOM killer or a power cut would.
    pub fn kill_hard(&self) {
        let mut child = self.child();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends SIGTERM, as a deploy or scale-in does.
    pub fn terminate(&self) {
        let pid = self.child().id();
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub async fn wait_for_exit(&self, limit: Duration) -> Option<ExitStatus> {
        eventually(limit, || {
            std::future::ready(self.child().try_wait().unwrap())
        })
        .await
    }

    /// Waits (bounded) until the log contains `words`; panics if the process exits first.
    pub async fn wait_for_log(&self, words: &str, limit: Duration) {
        let logged = eventually(limit, || {
            self.assert_running();
            std::future::ready(self.log().contains(words).then_some(()))
        })
        .await;
        assert!(logged.is_some(), "{} never logged {words:?}", self.what);
    }
}

impl Drop for Lector {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.what);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// `lector serve` on a free port of 127.0.0.1.
pub struct LectorServer {
    pub process: Lector,
    /// `http://127.0.0.1:PORT`
    pub address: String,
}

impl LectorServer {
    /// Starts `lector serve` with `vars` and waits until `/healthz` answers (panicking with
    /// the log if it exits first).
    pub async fn start<K: AsRef<str>, V: AsRef<str>>(vars: &[(K, V)]) -> Self {
        let server = Self::start_without_waiting(vars);
        server.wait_until_healthy().await;
        server
    }

    /// Starts `lector serve` with `vars`; [`LectorServer::wait_until_healthy`] waits for it.
    pub fn start_without_waiting<K: AsRef<str>, V: AsRef<str>>(vars: &[(K, V)]) -> Self {
        let bind = format!("127.0.0.1:{}", free_port());
        let mut all = vec![("LECTOR_BIND", bind.as_str())];
        all.extend(vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        LectorServer {
            process: Lector::start("serve", &all),
            address: format!("http://{bind}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Posts the upload `form` (of `file_name`) as `client`; it must be accepted. The new
    /// document, as the API describes it.
    pub async fn upload(
        &self,
        client: &reqwest::Client,
        form: reqwest::multipart::Form,
        file_name: &str,
    ) -> Value {
        let response = client
            .post(self.url("/api/v1/documents"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "uploading {file_name}: {body}");
        body
    }

    /// The documents of the account `client` is signed in as (200 at most), by id.
    pub async fn documents(&self, client: &reqwest::Client) -> BTreeMap<String, Value> {
        let body: Value = client
            .get(self.url("/api/v1/documents?limit=200"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|doc| (doc["id"].as_str().unwrap().to_owned(), doc.clone()))
            .collect()
    }

    /// Waits (bounded) until `/healthz` answers; panics with the log if the process exits.
    pub async fn wait_until_healthy(&self) {
        let client = reqwest::Client::new();
        let url = self.url("/healthz");
        let healthy = eventually(Duration::from_secs(60), || {
            self.process.assert_running();
            let request = client.get(&url).timeout(Duration::from_secs(1)).send();
            async move {
                let response = request.await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
        assert!(
            healthy.is_some(),
            "lector serve did not become healthy:\n{}",
            self.process.log()
        );
    }
}
