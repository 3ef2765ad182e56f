//! `lector extract FILE_OR_DIR… --out DIR`: many PDFs at once, each still parsed in the
//! sandbox, `--jobs` of them at a time. A child reads one file after another (a batch of small
//! files would otherwise spend its time starting processes); a file that crashes or hangs its
//! child fails alone, and a new child takes the next file.

use std::{
    collections::{HashSet, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

use super::engine::{ExtractOutput, ExtractSettings, write_page};
use crate::engines::{
    PageText, Sandbox,
    sandbox::{BatchFile, BatchRun},
    text_layer,
};

/// A PDF to read and where its text goes.
struct Item {
    input: PathBuf,
    output: PathBuf,
}

/// What the batch did.
#[derive(Default)]
struct Tally {
    pages: u64,
    files: u64,
    failures: Vec<(PathBuf, String)>,
}

/// Extracts every PDF of `inputs` (folders recursively) into `out`, `jobs` at a time; lists
/// the files that failed at the end and fails if any did.
pub(super) fn extract(
    inputs: &[PathBuf],
    out: &Path,
    jobs: Option<usize>,
    settings: ExtractSettings,
) -> anyhow::Result<()> {
    let extension = if settings.json { "json" } else { "txt" };
    let items = plan(inputs, out, extension)?;
    let jobs = jobs
        .unwrap_or_else(crate::config::cores)
        .clamp(1, items.len().max(1));
    let sandbox = settings.sandbox()?;
    let progress = progress_bar(items.len() as u64);
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let settings = Arc::new(settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let reads = Arc::new(inputs.to_vec());
        let workers = (0..jobs).map(|_| {
            let (queue, tally, settings) = (queue.clone(), tally.clone(), settings.clone());
            let (sandbox, progress, reads) = (sandbox.clone(), progress.clone(), reads.clone());
            tokio::spawn(work(sandbox, settings, reads, queue, tally, progress))
        });
        for worker in futures_util::future::join_all(workers.collect::<Vec<_>>()).await {
            worker??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    progress.finish_and_clear();
    let tally = std::mem::take(&mut *tally.lock().expect("not poisoned"));
    report(&tally, started.elapsed(), out)
}

/// Every PDF of `inputs` with the file its text goes to: a file given by name lands at the
/// top of `out`, a folder's PDFs keep their place beneath it.
fn plan(inputs: &[PathBuf], out: &Path, extension: &str) -> anyhow::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut taken = HashSet::new();
    for input in inputs {
        let found: Vec<(PathBuf, PathBuf)> = if input.is_dir() {
            let mut pdfs = Vec::new();
            for entry in walkdir::WalkDir::new(input).sort_by_file_name() {
                let entry =
                    entry.map_err(|e| anyhow::anyhow!("reading {}: {e}", input.display()))?;
                let is_pdf =
                    (entry.path().extension()).is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
                if entry.file_type().is_file() && is_pdf {
                    let relative = entry.path().strip_prefix(input)?.to_owned();
                    pdfs.push((entry.into_path(), relative));
                }
            }
            pdfs
        } else {
            std::fs::metadata(input)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", input.display()))?;
            let name = input
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("{} is not a file", input.display()))?;
            vec![(input.clone(), PathBuf::from(name))]
        };
        for (input, relative) in found {
            let mut output = out.join(relative.with_extension(extension));
            // Two inputs of the same name (from two folders given): the second gets a number.
            let mut n = 1;
            while !taken.insert(output.clone()) {
                n += 1;
                let stem = relative.file_stem().unwrap_or_default().to_string_lossy();
                output = out.join(relative.with_file_name(format!("{stem}-{n}.{extension}")));
            }
            items.push(Item { input, output });
        }
    }
    if items.is_empty() {
        anyhow::bail!(
            "no PDF found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(items)
}

/// The bar on a terminal (none when stderr is not one): files done, pages and pages/s.
fn progress_bar(files: u64) -> ProgressBar {
    let bar = ProgressBar::new(files);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} {wide_bar} {pos}/{len} files · {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// One job: takes files off the queue until it is empty, one child reading them in turn.
/// Its child may read beneath the inputs as given (`reads`), nothing else.
async fn work(
    sandbox: Sandbox,
    settings: Arc<ExtractSettings>,
    reads: Arc<Vec<PathBuf>>,
    queue: Arc<Mutex<VecDeque<Item>>>,
    tally: Arc<Mutex<Tally>>,
    progress: ProgressBar,
) -> anyhow::Result<()> {
    let mut child: Option<BatchRun> = None;
    let limit = settings.document_limit();
    let started = Instant::now();
    loop {
        let Some(item) = queue.lock().expect("not poisoned").pop_front() else {
            return Ok(());
        };
        if child.is_none() {
            let mut request = settings.request.clone();
            request.batch_reads = reads.to_vec();
            // The child's CPU backstop covers every file it may still be given; each file has
            // its own deadline here.
            let left = queue.lock().expect("not poisoned").len() as u32 + 1;
            let backstop = limit.saturating_mul(left);
            child = Some(
                sandbox
                    .batch(text_layer::ENGINE_NAME, &request, backstop)
                    .await?,
            );
        }
        let run = child.as_mut().expect("started above");
        let on_page = |_: &PageText| {
            let mut tally = tally.lock().expect("not poisoned");
            tally.pages += 1;
            let rate = tally.pages as f64 / started.elapsed().as_secs_f64().max(1e-3);
            progress.set_message(format!("{} pages, {rate:.0} pages/s", tally.pages));
        };
        let outcome = run.extract(&item.input, limit, on_page).await;
        let failure = match outcome {
            Ok(BatchFile::Pages(pages)) => write_output(&item, pages, settings.json).err(),
            Ok(BatchFile::Refused(reason)) => Some(reason.to_string()),
            Err(error) => {
                child = None; // killed, or dead: the next file gets a new one
                Some(error.to_string())
            }
        };
        let mut tally = tally.lock().expect("not poisoned");
        tally.files += 1;
        if let Some(reason) = failure {
            tally.failures.push((item.input, reason));
        }
        progress.inc(1);
    }
}

/// Writes one PDF's pages where its item says.
fn write_output(item: &Item, pages: Vec<PageText>, json: bool) -> Result<(), String> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        if let Some(parent) = item.output.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(&item.output)?);
        if json {
            let output = ExtractOutput {
                file: item.input.display().to_string(),
                pages,
            };
            serde_json::to_writer_pretty(&mut file, &output)?;
            writeln!(file)?;
        } else {
            for page in &pages {
                write_page(&mut file, page)?;
            }
        }
        file.flush()
    };
    write().map_err(|e| format!("writing {}: {e}", item.output.display()))
}

/// The summary on stderr, and the failures with their reasons; an error if any.
fn report(tally: &Tally, elapsed: Duration, out: &Path) -> anyhow::Result<()> {
    let seconds = elapsed.as_secs_f64();
    eprintln!(
        "{} files, {} pages in {seconds:.1} s ({:.0} pages/s) into {}",
        tally.files,
        tally.pages,
        tally.pages as f64 / seconds.max(1e-3),
        out.display()
    );
    if tally.failures.is_empty() {
        return Ok(());
    }
    let mut failures = tally.failures.clone();
    failures.sort();
    for (file, reason) in &failures {
        eprintln!("failed: {}: {reason}", file.display());
    }
    anyhow::bail!("{} of {} files failed", failures.len(), tally.files)
}
