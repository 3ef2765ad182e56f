//! Local stand-ins for S3 and Textract, to watch Lector's Textract path without an AWS
//! account. They are the ones the tests use (`tests/it/harness/aws.rs`): an S3 server on the
//! filesystem, and a Textract server that answers with the PDF's own text layer, laid out in
//! Textract's blocks. Both are reached through the real AWS SDK, as AWS would be.
//!
//! Prints the environment for `lector serve` (one `export NAME=value` per line, then
//! `# ready`) and serves until Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example aws_standins
//! ```
//!
//! Settings (environment):
//! - `STANDIN_S3_DIR`: where S3 objects are kept, and left (default: a temporary directory,
//!   deleted on exit). Bucket `lector-test` is `$STANDIN_S3_DIR/lector-test/`.
//! - `STANDIN_S3_PORT`, `STANDIN_TEXTRACT_PORT`: ports on 127.0.0.1 (default: random).
//! - `STANDIN_IN_PROGRESS_POLLS`: how many times each Textract job answers `IN_PROGRESS`
//!   before it succeeds (default 3), so that a progress bar visibly waits.

#[path = "../tests/it/harness/aws.rs"]
#[allow(dead_code)] // the example uses only the stand-ins, not every helper the tests use
mod aws;

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use aws::{ACCESS_KEY, BUCKET, FakeS3, FakeTextract, REGION, SECRET_KEY};

fn setting<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={raw:?} is not valid")),
        _ => Ok(default),
    }
}

/// `value` quoted for a POSIX shell when it needs to be.
fn shell_word(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain && !value.is_empty() {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

async fn stop_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let s3_port: u16 = setting("STANDIN_S3_PORT", 0)?;
    let textract_port: u16 = setting("STANDIN_TEXTRACT_PORT", 0)?;
    let polls: u32 = setting("STANDIN_IN_PROGRESS_POLLS", 3)?;
    // A fixed directory is kept; the default temporary one is deleted on exit.
    let (dir, temporary) = match std::env::var_os("STANDIN_S3_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => (PathBuf::from(dir), None),
        None => {
            let temporary = tempfile::tempdir().context("a temporary directory for S3")?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let s3 = FakeS3::start_in(&dir, s3_port).await;
    let textract = FakeTextract::start_on(s3.root.clone(), textract_port).await;
    textract.in_progress_polls(polls);

    let exports = [
        ("LECTOR_ENGINE", "textract".to_owned()),
        ("LECTOR_S3_BUCKET", BUCKET.to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.clone()),
        ("AWS_ENDPOINT_URL_TEXTRACT", textract.endpoint.clone()),
        // Poll every second or two (instead of up to 20 s) so a demo does not drag.
        ("LECTOR_TEXTRACT_POLL_INITIAL_MS", "1000".to_owned()),
        ("LECTOR_TEXTRACT_POLL_MAX_MS", "2000".to_owned()),
    ];
    let mut out = String::new();
    for (name, value) in exports {
        out.push_str(&format!("export {name}={}\n", shell_word(&value)));
    }
    out.push_str("# ready\n");
    print!("{out}");
    use std::io::Write;
    std::io::stdout().flush()?;
    eprintln!(
        "S3 stand-in on {} (objects in {}), Textract stand-in on {} ({polls} IN_PROGRESS \
         answers per job). Ctrl-C stops them.",
        s3.endpoint,
        s3.root.display(),
        textract.endpoint
    );

    // Say what Textract is asked to do, as it happens.
    let mut seen = (0, 0);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let now = (textract.started_jobs().len(), textract.get_calls());
                if now != seen {
                    eprintln!(
                        "textract stand-in: {} jobs started, {} running, {} Get calls",
                        now.0,
                        textract.jobs_in_progress(),
                        now.1
                    );
                    seen = now;
                }
            }
        }
    }
    let objects = s3.object_keys().len();
    let started = textract.started_jobs().len();
    drop((textract, s3));
    match temporary {
        Some(temporary) => {
            temporary.close().context("deleting the S3 directory")?;
            eprintln!("stand-ins stopped: {started} Textract jobs started; S3 directory deleted");
        }
        None => eprintln!(
            "stand-ins stopped: {started} Textract jobs started; {objects} S3 objects kept in {}",
            dir.display()
        ),
    }
    Ok(())
}
