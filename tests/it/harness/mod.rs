//! Test support shared by every module: start the real application on `127.0.0.1:0` with a
//! fresh database (a new SQLite file, or a new database on the local Postgres server) and talk
//! to it over HTTP; the `lector` binary as a child process ([`process`]); the AWS stand-ins
//! ([`aws`]) and moto's SQS ([`MotoSqs`]); [`eventually`] for what a test waits on without a signal.

mod app;
pub mod aws;
mod database;
mod moto;
mod process;

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use lector::config::Config;

pub use app::{
    TestApp, TestUser, browser_client, client_with_token, create_account, csrf_from, log_in,
};
pub use database::{Backend, TestDatabase};
pub use moto::MotoSqs;
pub use process::{
    Lector, LectorServer, build_bundle, cli_token, free_port, lector_command, lector_exe,
    write_script,
};

/// The password of every test account.
pub const TEST_PASSWORD: &str = "a long test password";

/// A project fixture under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `../shared/corpus`, when it is there.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    dir.is_dir().then_some(dir)
}

/// The key that seals stored secrets in tests on Postgres, which has no default key (SQLite
/// tests use the key file made beside their database).
pub const TEST_SECRET_KEY: &str =
    "6c6563746f722074657374206b6579206f6e6c7920666f722074657374730a00";

/// True when Tesseract and the models for `languages` are installed; otherwise says that the
/// test is skipped and what to install. The test process looks as its children will (same
/// `LECTOR_TESSERACT_LIBRARY` and `TESSDATA_PREFIX`).
pub fn tesseract_with(languages: &[&str]) -> bool {
    let ocr = lector::engines::ocr::OcrAvailability::detect();
    if let Some(reason) = ocr.unavailable() {
        println!("skipped: {reason}");
        return false;
    }
    let missing: Vec<&str> = (languages.iter().copied())
        .filter(|wanted| !ocr.languages().iter().any(|have| have == wanted))
        .collect();
    if !missing.is_empty() {
        println!(
            "skipped: no Tesseract model for {} (Debian: tesseract-ocr-eng, tesseract-ocr-deu, \
             tesseract-ocr-script-latn)",
            missing.join(", ")
        );
        return false;
    }
    true
}

/// The settings of a test's app on `database_url`: defaults, no in-process workers unless
/// asked, then `vars`. In-process apps read them through [`test_config`]; a `lector` child
/// process is given them as its environment.
pub fn test_settings(database_url: &str, vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut map: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.into()),
        ("LECTOR_WORKERS".into(), "0".into()),
        (
            "LECTOR_SANDBOX_EXE".into(),
            lector_exe().display().to_string(),
        ),
        ("LECTOR_JOB_RETRY_BASE_SECS".into(), "0".into()),
        // Tests send webhook deliveries themselves (WebhookSender::deliver_next).
        ("LECTOR_WEBHOOK_SENDERS".into(), "0".into()),
        ("LECTOR_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
    ]);
    if database_url.starts_with("postgres") {
        map.insert("LECTOR_SECRET_KEY".into(), TEST_SECRET_KEY.into());
    }
    for (k, v) in vars {
        map.insert(k.to_string(), v.to_string());
    }
    map.into_iter().collect()
}

/// Configuration for a test: [`test_settings`], read the way `lector` reads its environment.
pub fn test_config(database_url: &str, vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = test_settings(database_url, vars).into_iter().collect();
    Config::from_lookup(move |name| map.get(name).cloned()).expect("valid test configuration")
}

/// Asks `check` every 20 ms until it gives an answer, for at most `limit`; `None` if it never
/// did. For what a test waits on without a signal to wait for (a queue, another process).
pub async fn eventually<T, F, Fut>(limit: Duration, check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(limit, Duration::from_millis(20), check).await
}

/// [`eventually`], asking every `every`: for a check that costs what it watches (every
/// document listed by a busy server, a new database connection).
pub async fn eventually_every<T, F, Fut>(
    limit: Duration,
    every: Duration,
    mut check: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(answer) = check().await {
            return Some(answer);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The same PDF with different bytes (a trailing comment), so it is not a duplicate.
pub fn distinct_copy(bytes: &[u8], nonce: usize) -> Vec<u8> {
    let mut copy = bytes.to_vec();
    copy.extend_from_slice(format!("\n% copy {nonce}\n").as_bytes());
    copy
}

/// Collapses every run of white space to one space (how the corpus samples compare).
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
