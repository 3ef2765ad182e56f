//! The parser's confinement, seen from inside a child: `lector sandbox probe`, started the
//! way the server starts its parsers, from a parent whose environment holds the deployment's
//! secrets, tries what an exploit would try. Also the upload checker's allow-list and a split
//! written under confinement. Needs Linux with Landlock ABI ≥ 4 and seccomp filters (the CI
//! machine has 6.18, ABI 7).

use std::{
    ffi::OsString,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::harness::{self, fixture, lector_command, lector_exe};
use lector::engines::{
    Sandbox, SandboxError,
    inspector::Inspectors,
    probe::{ProbeRequest, probe},
    sandbox::PASSED_ON,
};

const EPERM: i32 = 1;
const EACCES: i32 = 13;

/// The secrets an Elastic Beanstalk instance has in the server's environment.
const SECRETS: &[(&str, &str)] = &[
    ("RDS_PASSWORD", "rds-password-d41d8cd9"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-8f00b204e98"),
    ("LECTOR_METRICS_TOKEN", "metrics-token-e9800998"),
    (
        "DATABASE_URL",
        "postgres://lector:db-password-ecf8427e@db.internal/lector",
    ),
];

/// This test process's environment with the secrets added, as the server's parent
/// environment would be (the process's own environment is never changed: tests run in
/// parallel threads).
fn parent_env_with_secrets(name: &str) -> Option<OsString> {
    SECRETS
        .iter()
        .find(|(secret, _)| *secret == name)
        .map(|(_, value)| value.into())
        .or_else(|| std::env::var_os(name))
}

/// A probe of a parser child started the way the server starts one, from a parent whose
/// environment holds [`SECRETS`]: it read its own file, the parent's environment and a
/// database beside it, tried to write a new file and its own, and to connect to `listener`.
struct Probed {
    report: lector::engines::probe::ProbeReport,
    file: PathBuf,
    parent_environ: PathBuf,
    database: PathBuf,
    written: PathBuf,
    listener: TcpListener,
    _dir: tempfile::TempDir,
}

async fn probed() -> Probed {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("lector.db");
    std::fs::write(&database, "SQLite format 3\0 accounts and sessions").unwrap();
    let written = dir.path().join("written.txt");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let parent_environ = PathBuf::from(format!("/proc/{}/environ", std::process::id()));
    let file = fixture("one_page.pdf");
    let request = ProbeRequest {
        file: file.clone(),
        try_write: vec![written.clone(), file.clone()],
        try_read: vec![file.clone(), parent_environ.clone(), database.clone()],
        try_connect: Some(listener.local_addr().unwrap()),
    };
    let report = probe(&lector_exe(), &request, parent_env_with_secrets)
        .await
        .unwrap();
    Probed {
        report,
        file,
        parent_environ,
        database,
        written,
        listener,
        _dir: dir,
    }
}

/// What got through the confinement: every expectation of a test is checked, and whatever
/// got through is listed at once.
#[derive(Default)]
struct GotThrough(Vec<String>);

impl GotThrough {
    fn expect(&mut self, ok: bool, what: String) {
        if !ok {
            self.0.push(what);
        }
    }

    fn assert_nothing(self) {
        assert!(self.0.is_empty(), "{:#?}", self.0);
    }
}

/// An empty environment but for the few variables the parser needs.
#[tokio::test]
async fn a_parser_child_has_no_secret_only_the_variables_it_needs() {
    let Probed { report, .. } = probed().await;
    let mut got_through = GotThrough::default();
    let allowed: Vec<&str> = PASSED_ON
        .iter()
        .copied()
        .chain(["MIMALLOC_ARENA_RESERVE", "OMP_THREAD_LIMIT"])
        .collect();
    for (name, value) in &report.environment {
        got_through.expect(
            allowed.contains(&name.as_str()),
            format!("{name}={value} reached it"),
        );
        for (_, secret) in SECRETS {
            got_through.expect(!value.contains(secret), format!("{name} holds a secret"));
        }
    }
    got_through.expect(
        report
            .environment
            .get("OMP_THREAD_LIMIT")
            .map(String::as_str)
            == Some("1"),
        "OMP_THREAD_LIMIT is not 1".into(),
    );
    got_through.assert_nothing();
}

/// It reads its own file, and nothing of the parent's or anyone else's (EACCES: Landlock).
#[tokio::test]
async fn a_parser_child_reads_its_file_and_nothing_of_the_parent_s_or_anyone_else_s() {
    let probed = probed().await;
    let mut got_through = GotThrough::default();
    let report = &probed.report;
    let read = |path: &Path| &report.reads.iter().find(|(p, _)| p == path).unwrap().1;
    let file = &probed.file;
    got_through.expect(
        read(file).succeeded(),
        format!("its file: {:?}", read(file)),
    );
    for other in [&probed.parent_environ, &probed.database] {
        let answer = read(other);
        got_through.expect(
            answer.errno() == Some(EACCES),
            format!("read {other:?}: {answer:?}"),
        );
    }
    got_through.assert_nothing();
}

/// It writes nowhere, not even to the file it reads, and may not grow a file.
#[tokio::test]
async fn a_parser_child_writes_nowhere() {
    let probed = probed().await;
    let mut got_through = GotThrough::default();
    for (path, attempt) in &probed.report.writes {
        got_through.expect(
            attempt.errno() == Some(EACCES),
            format!("write {path:?}: {attempt:?}"),
        );
    }
    let written = &probed.written;
    got_through.expect(!written.exists(), format!("{written:?} was created"));
    // (A coverage build lets the child write its profile: scripts/coverage.)
    got_through.expect(
        probed.report.limits["file_size"] == 0 || cfg!(tarpaulin),
        "a file may grow".into(),
    );
    got_through.assert_nothing();
}

/// No network: the socket itself is refused (EPERM: seccomp), and nothing arrives.
#[tokio::test]
async fn a_parser_child_cannot_connect() {
    let probed = probed().await;
    let mut got_through = GotThrough::default();
    let connect = probed.report.connect.as_ref().unwrap();
    got_through.expect(
        connect.errno() == Some(EPERM),
        format!("connect: {connect:?}"),
    );
    let accepted = probed.listener.accept();
    got_through.expect(
        accepted.is_err(),
        format!("the listener accepted {accepted:?}"),
    );
    got_through.assert_nothing();
}

/// No new program, nor any process (EPERM: seccomp; a process that was made would answer
/// ENOENT for the missing folder it is sent to); a thread still starts (as root:
/// RLIMIT_NPROC, 0 here, does not bind root, and refuses threads to anyone else); few open
/// files and no core file.
#[tokio::test]
async fn a_parser_child_cannot_start_programs_or_processes_and_is_held_to_its_limits() {
    let Probed { report, .. } = probed().await;
    let mut got_through = GotThrough::default();
    let (spawn, process) = (&report.spawn, &report.process);
    got_through.expect(
        spawn.errno() == Some(EPERM),
        format!("start a program: {spawn:?}"),
    );
    got_through.expect(
        process.errno() == Some(EPERM),
        format!("start a process: {process:?}"),
    );
    got_through.expect(
        report.limits["processes"] == 0,
        "processes are not limited".into(),
    );
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        let thread = &report.thread;
        got_through.expect(thread.succeeded(), format!("no thread: {thread:?}"));
    }
    got_through.expect(
        report.limits["open_files"] <= 64,
        "many files may be open".into(),
    );
    got_through.expect(
        report.limits["core"] == 0,
        "a core file may be written".into(),
    );
    got_through.assert_nothing();
}

#[tokio::test]
async fn this_kernel_gives_a_parser_child_every_protection() {
    let Probed { report, .. } = probed().await;
    let protections = &report.protections;
    assert!(
        protections.landlock_abi >= 4 && protections.landlock == "full" && protections.seccomp,
        "this kernel should give every protection: {protections}"
    );
}

#[tokio::test]
async fn tesseract_s_folder_is_passed_on_and_the_probe_follows_it() {
    let models = tempfile::tempdir().unwrap();
    let prefix = models.path().to_str().unwrap().to_owned();
    let env = move |name: &str| match name {
        "TESSDATA_PREFIX" => Some(OsString::from(&prefix)),
        _ => parent_env_with_secrets(name),
    };
    let model = models.path().join("eng.traineddata");
    std::fs::write(&model, "model").unwrap();
    let request = ProbeRequest {
        file: fixture("one_page.pdf"),
        try_read: vec![model.clone()],
        ..ProbeRequest::default()
    };
    let report = probe(&lector_exe(), &request, env).await.unwrap();
    assert_eq!(
        report.environment["TESSDATA_PREFIX"],
        models.path().to_str().unwrap()
    );
    assert!(report.reads[0].1.succeeded(), "{:?}", report.reads[0].1);
}

#[test]
fn an_upload_checker_reads_the_uploads_folder_and_nothing_else() {
    let uploads = tempfile::tempdir().unwrap();
    let inside = uploads.path().join("lector-upload-1.pdf");
    std::fs::copy(fixture("three_pages.pdf"), &inside).unwrap();
    let mut child = Command::new(lector_exe())
        .args([
            "sandbox",
            "inspector",
            "--memory-mb",
            "1024",
            "--cpu-secs",
            "20",
        ])
        .arg("--uploads")
        .arg(uploads.path())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut answers = BufReader::new(child.stdout.take().unwrap()).lines();
    let ask = |stdin: &mut std::process::ChildStdin, path: &Path| {
        let line = serde_json::json!({ "path": path, "password": null });
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    };
    ask(&mut stdin, &inside);
    let answer = answers.next().unwrap().unwrap();
    assert!(answer.contains(r#""pages":3"#), "{answer}");
    // A file outside the folder (here the fixture it was copied from) cannot be opened.
    ask(&mut stdin, &fixture("three_pages.pdf"));
    assert!(answers.next().is_none(), "the child answered");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[tokio::test]
async fn the_server_never_sends_a_checker_a_file_outside_the_uploads_folder() {
    let uploads = tempfile::tempdir().unwrap();
    let inspectors = Inspectors::new(lector_exe(), 1024, 1, uploads.path().into());
    let error = inspectors
        .inspect(&fixture("one_page.pdf"), None, Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(matches!(error, SandboxError::Io(_)), "{error:?}");
    assert!(error.to_string().contains("outside"), "{error}");
    assert_eq!(inspectors.started(), 0);
}

#[tokio::test]
async fn split_writes_its_pages_under_confinement() {
    let sandbox = Sandbox::new(lector_exe(), 1024).unwrap();
    let out = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
    let written = sandbox
        .split(
            &fixture("twelve_pages.pdf"),
            vec![2, 11],
            out.path(),
            Duration::from_secs(30),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(written, 2);
    let pages =
        lector::engines::validate_and_extract(&std::fs::read(out.path()).unwrap(), 50).unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[1].contains("This is page 11 of twelve."), "{pages:?}");
}

#[test]
fn lector_doctor_says_which_protections_are_in_force_and_what_got_through() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("doctor.db").display());
    let sandbox_line = |vars: &[(&str, &str)]| {
        let (_, stdout, _) = lector_command(&["doctor"])
            .env("DATABASE_URL", &url)
            .envs(vars)
            .run();
        stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some("sandbox"))
            .unwrap_or_else(|| panic!("no sandbox line in\n{stdout}"))
            .to_owned()
    };
    // Doctor's own environment holds the secrets, as the server's would, and it starts the
    // probe as the server starts its parsers.
    let secrets: Vec<_> = SECRETS
        .iter()
        .filter(|(name, _)| *name != "DATABASE_URL")
        .collect();
    let line = sandbox_line(&secrets.iter().map(|&&pair| pair).collect::<Vec<_>>());
    assert!(line.starts_with("ok "), "{line}");
    assert!(
        line.contains("Landlock ABI") && line.contains("seccomp filter on"),
        "{line}"
    );

    // A stand-in for a child that nothing confined.
    let unconfined = dir.path().join("unconfined");
    let report = serde_json::json!({
        "protections": { "landlock_abi": 0, "landlock": "none", "seccomp": false },
        "environment": { "RDS_PASSWORD": SECRETS[0].1, "OMP_THREAD_LIMIT": "1" },
        "limits": {},
        "writes": [["/tmp/written", "succeeded"]],
        "reads": [["/proc/1/environ", "succeeded"]],
        "connect": "succeeded",
        "spawn": "succeeded",
        "process": "succeeded",
        "thread": "succeeded",
    });
    harness::write_script(&unconfined, &format!("echo '{report}'"));
    let line = sandbox_line(&[("LECTOR_SANDBOX_EXE", unconfined.to_str().unwrap())]);
    assert!(line.starts_with("PROBLEM "), "{line}");
    for words in [
        "see RDS_PASSWORD",
        "write ",
        "read /proc/",
        "connect to 127.0.0.1",
        "start a program",
        "no Landlock",
    ] {
        assert!(line.contains(words), "{words:?} in {line}");
    }
    assert!(!line.contains("OMP_THREAD_LIMIT"), "{line}");
}
