//! The shared corpus (`../shared/corpus`) through the real app with real workers: real-world
//! and generated PDFs must come out with their pages and phrases, hostile files must be
//! refused or fail cleanly, and the 500-page file must come out whole. Both backends.
//!
//! Each test prints a summary; run with `--nocapture` to read it. Without the corpus each
//! test says it was skipped and passes.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::harness::{Backend, TestApp, collapse_whitespace, corpus_dir};
use rstest::rstest;
use serde_json::Value;

/// How long one corpus document may take from upload to a finished status (generous: two
/// backends run at once on two cores, in a debug build).
const FINISH_LIMIT: Duration = Duration::from_secs(300);

/// Characters of each ground-truth page that must appear in the extracted page.
const GROUND_TRUTH_PREFIX: usize = 40;

/// Share of a ground-truth page's words (counted with repeats) that must be in the extracted
/// page. Measured: 0.9953 at the lowest (syn04; a hyphenated word joined), 0.9956 on the
/// 500-page file, 1.0 on most pages.
const MIN_WORD_RECALL: f64 = 0.98;

fn corpus_or_skip() -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        println!("skipped: ../shared/corpus is not present");
    }
    dir
}

/// The PDFs in `dir`, sorted by name.
fn pdfs_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pdf"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The expected page count (one expected file spells it as a string: `"25"`).
fn page_count_of(expected: &Value, name: &str) -> i64 {
    let pages = &expected["pages"];
    pages
        .as_i64()
        .or_else(|| pages.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name}: no page count in its expected file: {pages}"))
}

/// The first `n` characters of the collapsed text.
fn prefix(text: &str, n: usize) -> String {
    collapse_whitespace(text).chars().take(n).collect()
}

/// The share of `truth`'s words, counted with repeats, that also occur in `got`.
fn word_recall(truth: &str, got: &str) -> f64 {
    let mut available: HashMap<&str, usize> = HashMap::new();
    for word in got.split_whitespace() {
        *available.entry(word).or_default() += 1;
    }
    let (mut total, mut found) = (0_usize, 0_usize);
    for word in truth.split_whitespace() {
        total += 1;
        if let Some(n) = available.get_mut(word).filter(|n| **n > 0) {
            *n -= 1;
            found += 1;
        }
    }
    if total == 0 {
        return 1.0;
    }
    found as f64 / total as f64
}

/// Uploads a file from disk; returns the HTTP status, the JSON body and the content type.
async fn upload_file(app: &TestApp, path: &Path, password: Option<&str>) -> (u16, Value, String) {
    let response = app
        .upload_bytes(std::fs::read(path).unwrap(), &file_name(path), password)
        .await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, content_type)
}

/// The pages of a document, by number, with their text.
async fn page_texts(app: &TestApp, id: &str) -> BTreeMap<i64, String> {
    page_details(app, id).await.0
}

/// The pages of a document, by number, with their text; and the pages that went to OCR,
/// with the reason (`p3: no text layer`).
async fn page_details(app: &TestApp, id: &str) -> (BTreeMap<i64, String>, Vec<String>) {
    let (status, body) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
    assert_eq!(status, 200, "pages of {id}");
    let pages = body["pages"].as_array().unwrap();
    let texts = pages
        .iter()
        .map(|page| {
            (
                page["number"].as_i64().unwrap(),
                page["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ocr = pages
        .iter()
        .filter(|page| !page["ocr_reason"].is_null())
        .map(|page| {
            format!(
                "p{}: {}",
                page["number"],
                page["ocr_reason"].as_str().unwrap()
            )
        })
        .collect();
    (texts, ocr)
}

/// What became of one corpus file.
struct FileOutcome {
    name: String,
    expected_pages: i64,
    /// `done`, `failed: …`, or `refused 422 unreadable-pdf`.
    outcome: String,
    page_count: Option<i64>,
    pages: BTreeMap<i64, String>,
    /// Pages that went to OCR, with the reason.
    ocr: Vec<String>,
}

impl FileOutcome {
    fn done_with_right_page_count(&self) -> bool {
        self.outcome == "done" && self.page_count == Some(self.expected_pages)
    }

    /// The collapsed text of page `number` (empty when missing).
    fn page(&self, number: i64) -> String {
        self.pages
            .get(&number)
            .map(|text| collapse_whitespace(text))
            .unwrap_or_default()
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_real_world_text_pdf_gets_its_page_count_and_sample_phrases(
    #[case] backend: Backend,
) {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let started = Instant::now();
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WORKERS", "2")]).await else {
        return;
    };
    let text_dir = corpus.join("text");
    let outcomes = extract_every_file(&app, &text_dir).await;
    let total_secs = started.elapsed().as_secs_f64();
    println!("{backend:?}: per file (expected pages, page count, outcome, samples found)");
    let score = Score::of(&outcomes, &text_dir);
    let ocr_pages = report(backend, &outcomes, &score, total_secs);
    let files_total = outcomes.len();
    let good = outcomes
        .iter()
        .filter(|f| f.done_with_right_page_count())
        .count();

    // Measured on SQLite and Postgres alike: 63 of 65 files accepted and done with the right
    // page count (96.9%; pdfjs__operator_list_cycle.pdf is refused as having no pages and
    // pdfminer__175.pdf as unreadable), 51 of 63 sample phrases found (81.0%; the misses are
    // tables, forms, running headers and CJK slides whose reading order or spacing differs
    // from the two reference engines'), every generated page within the word-recall and
    // prefix limits. The thresholds sit a little below that.
    assert!(
        good * 100 >= files_total * 95,
        "only {good} of {files_total} files were accepted and done with the right page count",
    );
    assert!(
        score.samples_found * 100 >= score.samples_total * 78,
        "only {} of {} sample phrases were found",
        score.samples_found,
        score.samples_total
    );
    assert!(
        score.truth_misses.is_empty(),
        "ground-truth pages missed: {:#?}",
        score.truth_misses
    );
    // Measured: 6 of 927 pages have an empty text layer (a cover image, a JBIG2 scan, a
    // blank page, vertical CJK pages the text layer misses) and none is junk. No generated
    // page, and no page with real text, may be OCR'd.
    assert!(
        ocr_pages.iter().all(|p| !p.starts_with("syn")),
        "generated text PDFs went to OCR: {ocr_pages:#?}"
    );
    assert!(
        ocr_pages
            .iter()
            .all(|p| p.ends_with("no text layer") || p.contains("text layer is garbage")),
        "pages with real text went to OCR: {ocr_pages:#?}"
    );
    assert!(
        ocr_pages.len() <= 8,
        "too many pages went to OCR: {ocr_pages:#?}"
    );
}

/// Uploads every PDF of `text_dir` first, so the workers extract while the rest is being
/// uploaded, then waits for each; what became of each, sorted by name.
async fn extract_every_file(app: &TestApp, text_dir: &Path) -> Vec<FileOutcome> {
    let started = Instant::now();
    let files = pdfs_in(text_dir);
    assert!(!files.is_empty(), "no PDFs in {}", text_dir.display());
    let mut uploaded = Vec::new();
    let mut outcomes = Vec::new();
    for path in &files {
        let name = file_name(path);
        let expected = read_json(&text_dir.join("expected").join(format!("{name}.json")));
        let expected_pages = page_count_of(&expected, &name);
        let (status, body, _) = upload_file(app, path, None).await;
        if status == 202 {
            uploaded.push((
                name,
                expected_pages,
                body["id"].as_str().unwrap().to_owned(),
            ));
        } else {
            outcomes.push(FileOutcome {
                name,
                expected_pages,
                outcome: format!("refused {status} {}: {}", body["code"], body["detail"]),
                page_count: None,
                pages: BTreeMap::new(),
                ocr: Vec::new(),
            });
        }
    }
    println!("uploads took {:.1}s", started.elapsed().as_secs_f64());
    for (name, expected_pages, id) in uploaded {
        let doc = app.wait_until_finished(&id, FINISH_LIMIT).await;
        let status = doc["status"].as_str().unwrap();
        let outcome = match status {
            "done" => "done".to_owned(),
            other => format!("{other}: {}", doc["error"]),
        };
        let (pages, ocr) = page_details(app, &id).await;
        outcomes.push(FileOutcome {
            name,
            expected_pages,
            outcome,
            page_count: doc["page_count"].as_i64(),
            pages,
            ocr,
        });
    }
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    outcomes
}

/// How the extracted text compares with the sample phrases (real-world files) and the ground
/// truth (generated `syn*` files) of each file's expected file.
#[derive(Default)]
struct Score {
    samples_total: usize,
    samples_found: usize,
    sample_misses: Vec<String>,
    truth_total: usize,
    truth_found: usize,
    truth_misses: Vec<String>,
    /// The lowest word recall of a page, per generated file.
    syn_recall: Vec<String>,
}

impl Score {
    /// Scores every file, printing a line per file.
    fn of(outcomes: &[FileOutcome], text_dir: &Path) -> Score {
        let mut score = Score::default();
        for file in outcomes {
            let expected = read_json(
                &text_dir
                    .join("expected")
                    .join(format!("{}.json", file.name)),
            );
            let (samples_found, samples) = score.samples(file, &expected);
            let (truth_found, truth) = score.ground_truth(file, &expected);
            println!(
                "  {:<58} {:>4} {:>5} {:<10} {}/{}",
                file.name,
                file.expected_pages,
                file.page_count
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                file.outcome,
                samples_found + truth_found,
                samples + truth,
            );
        }
        score
    }

    /// Counts the file's sample phrases and those found on their page.
    fn samples(&mut self, file: &FileOutcome, expected: &Value) -> (usize, usize) {
        let (mut found, mut total) = (0, 0);
        for sample in expected["samples"].as_array().into_iter().flatten() {
            let page = sample["page"].as_i64().unwrap();
            let phrase = collapse_whitespace(sample["contains"].as_str().unwrap());
            total += 1;
            if file.page(page).contains(&phrase) {
                found += 1;
            } else {
                self.sample_misses
                    .push(format!("{} p{page}: {phrase:?}", file.name));
            }
        }
        self.samples_total += total;
        self.samples_found += found;
        (found, total)
    }

    /// Counts the file's ground-truth pages and those extracted well enough: most of their
    /// words, and their start (tables come out column by column, a known pdf_oxide trait,
    /// shared/ENGINES.md, so a table's page starts differently; its words must still all be
    /// there).
    fn ground_truth(&mut self, file: &FileOutcome, expected: &Value) -> (usize, usize) {
        let Some(truth) = expected["ground_truth"].as_array() else {
            return (0, 0);
        };
        let is_table = expected["category"]
            .as_str()
            .is_some_and(|c| c.contains("table"))
            || file.name.contains("table");
        let (mut found, mut lowest) = (0, 1.0_f64);
        for (index, page_truth) in truth.iter().enumerate() {
            let number = index as i64 + 1;
            let page_truth = page_truth.as_str().unwrap();
            let got = file.page(number);
            let want = prefix(page_truth, GROUND_TRUTH_PREFIX);
            let recall = word_recall(page_truth, &got);
            lowest = lowest.min(recall);
            if recall >= MIN_WORD_RECALL && (got.contains(&want) || is_table) {
                found += 1;
            } else {
                self.truth_misses.push(format!(
                    "{} p{number}: word recall {recall:.4}, want {want:?}, got {:?}",
                    file.name,
                    prefix(&got, GROUND_TRUTH_PREFIX * 2)
                ));
            }
        }
        self.truth_total += truth.len();
        self.truth_found += found;
        self.syn_recall.push(format!("{} {lowest:.4}", file.name));
        (found, truth.len())
    }
}

/// Prints the counts, the files not done right, the generated files' lowest recall, the pages
/// that went to OCR and what was missed; returns the OCR'd pages (`file pN: reason`).
fn report(
    backend: Backend,
    outcomes: &[FileOutcome],
    score: &Score,
    total_secs: f64,
) -> Vec<String> {
    let files_total = outcomes.len();
    let refused = outcomes
        .iter()
        .filter(|f| f.outcome.starts_with("refused"))
        .count();
    let good = outcomes
        .iter()
        .filter(|f| f.done_with_right_page_count())
        .count();
    let pages_extracted: usize = outcomes.iter().map(|f| f.pages.len()).sum();
    println!(
        "{backend:?}: {files_total} files, {} accepted ({refused} refused), {good} done with the \
         right page count; {pages_extracted} pages; samples found {}/{} ({:.1}%); ground-truth \
         pages found {}/{}; everything {total_secs:.1}s",
        files_total - refused,
        score.samples_found,
        score.samples_total,
        100.0 * score.samples_found as f64 / score.samples_total.max(1) as f64,
        score.truth_found,
        score.truth_total,
    );
    for file in outcomes {
        if !file.done_with_right_page_count() {
            println!(
                "  not done right: {} ({}; page count {:?}, expected {})",
                file.name, file.outcome, file.page_count, file.expected_pages
            );
        }
    }
    println!(
        "{backend:?}: lowest word recall per page of the generated files: {}",
        score.syn_recall.join(", ")
    );
    // OCR in `auto` mode: only pages whose text layer is empty or junk may go to it.
    let ocr_pages: Vec<String> = outcomes
        .iter()
        .flat_map(|f| f.ocr.iter().map(move |p| format!("{} {p}", f.name)))
        .collect();
    println!(
        "{backend:?}: {} of {pages_extracted} pages went to OCR:",
        ocr_pages.len()
    );
    for page in &ocr_pages {
        println!("  ocr: {page}");
    }
    for miss in &score.sample_misses {
        println!("  sample missed: {miss}");
    }
    for miss in &score.truth_misses {
        println!("  ground truth missed: {miss}");
    }
    ocr_pages
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_file_is_refused_or_fails_cleanly_and_the_server_stays_up(
    #[case] backend: Backend,
) {
    if !crate::harness::tesseract_with(&["eng"]) {
        return;
    }
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let started = Instant::now();
    // Scanned mutants go through OCR too; 150 dpi keeps that path exercised at half the cost.
    let Some(app) = TestApp::spawn_with(
        backend,
        &[("LECTOR_WORKERS", "2"), ("LECTOR_OCR_DPI", "150")],
    )
    .await
    else {
        return;
    };
    let hostile_dir = corpus.join("hostile");
    let mut uploads = upload_hostile_files(&app, &hostile_dir).await;
    for (name, id) in &uploads.accepted {
        let outcome = hostile_outcome(&app, name, id).await;
        uploads.rows.push((name.clone(), outcome));
    }
    for (name, id) in &uploads.unlocked {
        let outcome = unlocked_outcome(&app, name, id).await;
        uploads.rows.push((name.clone(), outcome));
    }
    let mut rows = uploads.rows;
    rows.sort();
    println!(
        "{backend:?}: {} hostile files in {:.1}s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    for (name, outcome) in &rows {
        println!("  {name:<62} {outcome}");
    }
    let count = |prefix: &str| rows.iter().filter(|(_, o)| o.starts_with(prefix)).count();
    println!(
        "{backend:?}: refused {}, accepted and done {}, accepted and failed {}, password files {}",
        count("refused"),
        count("accepted, done"),
        count("accepted, failed"),
        count("422 password-required"),
    );

    // The server is still up and still extracts.
    let (status, health) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "{health}");
    let id = app.upload_ok("three_pages.pdf").await;
    let doc = app.wait_until_finished(&id, FINISH_LIMIT).await;
    assert_eq!(doc["status"], "done", "{doc}");
    let pages = page_texts(&app, &id).await;
    assert!(pages[&3].contains("xylophone"), "{pages:?}");
}

/// The hostile files as uploaded: those refused (with the refusal), those accepted, and
/// those that needed their password (accepted with it).
#[derive(Default)]
struct HostileUploads {
    /// (file name, outcome), for the summary.
    rows: Vec<(String, String)>,
    /// (file name, document id)
    accepted: Vec<(String, String)>,
    /// (file name, document id)
    unlocked: Vec<(String, String)>,
}

/// Uploads every file of `dir` without a password (documents are waited for afterwards): a
/// refusal must be a problem that says why, and a file with a password in its expectation
/// must be refused for the want of it; then uploads those again with their password.
async fn upload_hostile_files(app: &TestApp, dir: &Path) -> HostileUploads {
    let files = pdfs_in(dir);
    assert!(!files.is_empty(), "no PDFs in {}", dir.display());
    let mut uploads = HostileUploads::default();
    let mut with_password = Vec::new();
    for path in &files {
        let name = file_name(path);
        let expectation = dir.join(format!("{name}.json"));
        let password = expectation
            .is_file()
            .then(|| {
                read_json(&expectation)["password"]
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten();
        let (status, body, content_type) = upload_file(app, path, None).await;
        if let Some(password) = password {
            assert_eq!(status, 422, "{name} without its password: {body}");
            assert_eq!(body["code"], "password-required", "{name}: {body}");
            assert_eq!(content_type, "application/problem+json", "{name}");
            with_password.push((name, path.clone(), password));
            continue;
        }
        match status {
            200 | 202 => uploads
                .accepted
                .push((name, body["id"].as_str().unwrap().to_owned())),
            400..=499 => {
                assert_eq!(content_type, "application/problem+json", "{name}: {body}");
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(!detail.trim().is_empty(), "{name}: {body}");
                let code = body["code"].as_str().unwrap();
                uploads
                    .rows
                    .push((name, format!("refused {status} {code}: {detail}")));
            }
            other => panic!("{name}: unexpected status {other}: {body}"),
        }
    }
    for (name, path, password) in &with_password {
        let (status, body, _) = upload_file(app, path, Some(password)).await;
        assert_eq!(status, 202, "{name} with its password: {body}");
        let id = body["id"].as_str().unwrap().to_owned();
        uploads.unlocked.push((name.clone(), id));
    }
    uploads
}

/// What became of an accepted hostile file: done (its pages and text), or failed with a
/// reason; nothing else.
async fn hostile_outcome(app: &TestApp, name: &str, id: &str) -> String {
    let doc = app.wait_until_finished(id, FINISH_LIMIT).await;
    match doc["status"].as_str().unwrap() {
        "done" => {
            let text: usize = page_texts(app, id)
                .await
                .values()
                .map(|t| t.trim().len())
                .sum();
            format!(
                "accepted, done: {} pages ({} failed), {text} bytes of text",
                doc["page_count"], doc["pages_failed"]
            )
        }
        "failed" => {
            let error = doc["error"].as_str().unwrap_or_default();
            assert!(
                !error.trim().is_empty(),
                "{name} failed without a reason: {doc}"
            );
            format!("accepted, failed: {error}")
        }
        other => panic!("{name} ended as {other}: {doc}"),
    }
}

/// What became of a file uploaded with its password: it must be done, with text.
async fn unlocked_outcome(app: &TestApp, name: &str, id: &str) -> String {
    let doc = app.wait_until_finished(id, FINISH_LIMIT).await;
    assert_eq!(doc["status"], "done", "{name} with its password: {doc}");
    let text = collapse_whitespace(
        &page_texts(app, id)
            .await
            .into_values()
            .collect::<Vec<_>>()
            .join(" "),
    );
    let preview: String = text.chars().take(40).collect();
    // The trap this guards against: an encrypted PDF read without its key gives empty text and
    // no error (shared/ENGINES.md). Measured: text from all four.
    assert!(!text.is_empty(), "{name} with its password gave no text");
    format!(
        "422 password-required; with the password done, {} pages, {} chars of text {preview:?}",
        doc["page_count"],
        text.chars().count()
    )
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_500_page_file_is_extracted_completely(#[case] backend: Backend) {
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let started = Instant::now();
    let Some(app) = TestApp::spawn_with(backend, &[("LECTOR_WORKERS", "2")]).await else {
        return;
    };
    let path = corpus.join("text/syn_large_500p.pdf");
    let truth = read_json(&corpus.join("text/expected/syn_large_500p.pdf.json"));
    let truth = truth["ground_truth"].as_array().unwrap();
    assert_eq!(truth.len(), 500);
    let (status, body, _) = upload_file(&app, &path, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["page_count"], 500);
    let id = body["id"].as_str().unwrap();
    let doc = app.wait_until_finished(id, FINISH_LIMIT).await;
    println!(
        "{backend:?}: 500 pages {} in {:.1}s (extraction_ms {})",
        doc["status"],
        started.elapsed().as_secs_f64(),
        doc["extraction_ms"]
    );
    assert_eq!(doc["status"], "done", "{doc}");
    assert_eq!(doc["pages_done"], 500, "{doc}");
    assert_eq!(doc["pages_failed"], 0, "{doc}");
    let pages = page_texts(&app, id).await;
    assert_eq!(pages.len(), 500);
    assert_eq!(
        pages.keys().copied().collect::<Vec<_>>(),
        (1..=500).collect::<Vec<_>>()
    );
    for number in [1_i64, 250, 500] {
        let want = prefix(
            truth[number as usize - 1].as_str().unwrap(),
            GROUND_TRUTH_PREFIX,
        );
        let got = collapse_whitespace(&pages[&number]);
        assert!(
            got.contains(&want),
            "page {number}: want {want:?} in {got:?}"
        );
    }
    assert_eq!(
        app.db
            .query_i64(&format!(
                "select count(*) from pages where document_id = '{id}'"
            ))
            .await,
        500
    );
}

/// Edits (insertions, deletions, substitutions) that turn `a` into `b`, by character.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Largest character error rate allowed on a scanned file (the bar; Tesseract
/// measured about 0.7 % on these files).
const MAX_CER: f64 = 0.015;
/// Tesseract's Latin-script model (Debian: tesseract-ocr-script-latn).
const OCR_LANGUAGES: &str = "Latin";
/// The table is read cell by cell in another order: its words must be there.
const MIN_TABLE_WORD_RECALL: f64 = 0.97;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scanned_page_is_read_by_ocr_within_the_error_rate() {
    if !crate::harness::tesseract_with(&["Latin"]) {
        return;
    }
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let started = Instant::now();
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &[("LECTOR_WORKERS", "2")]).await else {
        return;
    };
    let dir = corpus.join("scanned");
    let files = pdfs_in(&dir);
    assert!(!files.is_empty(), "no PDFs in {}", dir.display());
    let mut uploaded = Vec::new();
    for path in &files {
        uploaded.push((file_name(path), upload_scan(&app, path).await));
    }
    let mut failures = Vec::new();
    let mut pages_read = 0;
    println!("scanned: per file (CER, or word recall for the table)");
    for (name, id) in &uploaded {
        let doc = app.wait_until_finished(id, FINISH_LIMIT).await;
        assert_eq!(doc["status"], "done", "{name}: {doc}");
        let (status, body) = app.get_json(&format!("/api/v1/documents/{id}/pages")).await;
        assert_eq!(status, 200);
        let pages = body["pages"].as_array().unwrap();
        let expected = read_json(&dir.join("expected").join(format!("{name}.json")));
        let truth = expected["ground_truth"].as_array().unwrap();
        assert_eq!(pages.len(), truth.len(), "{name}: page count");
        pages_read += pages.len();
        let read = ReadScan::of(name, pages, truth);
        if name.contains("syn05_courier_table") {
            let recall = word_recall(&read.truth, &read.got);
            println!(
                "  {name:<44} CER {:>6.2} %  word recall {:.4}",
                read.cer() * 100.0,
                recall
            );
            if recall < MIN_TABLE_WORD_RECALL {
                failures.push(format!("{name}: word recall {recall:.4}"));
            }
        } else {
            println!("  {name:<44} CER {:>6.2} %", read.cer() * 100.0);
            if read.cer() > MAX_CER {
                failures.push(format!("{name}: CER {:.2} %", read.cer() * 100.0));
            }
        }
    }
    println!(
        "scanned: {} files, {pages_read} pages in {:.1}s",
        uploaded.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "over the limits: {failures:#?}");
}

/// Uploads a scanned file to be read with Tesseract's Latin-script model; returns its id.
async fn upload_scan(app: &TestApp, path: &Path) -> String {
    // The documents mix European diacritics (ł, ø, ő, ñ …) that the English model does not
    // know (measured: 2.9 % CER with `eng`): read them with Tesseract's Latin-script model, as
    // a user with such documents would.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
                .file_name(file_name(path)),
        )
        .text("ocr_languages", OCR_LANGUAGES);
    let response = app
        .client
        .post(app.url("/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{}: {body}", file_name(path));
    body["id"].as_str().unwrap().to_owned()
}

/// A scanned file's pages as OCR read them, against the ground truth.
struct ReadScan {
    /// Character edits from the truth to what was read, over all pages.
    edits: usize,
    /// Characters of the truth.
    length: usize,
    /// All pages' truth, and all pages as read, one after the other.
    truth: String,
    got: String,
}

impl ReadScan {
    /// Compares each page (which must come from OCR) with its truth, white space collapsed.
    fn of(name: &str, pages: &[Value], truth: &[Value]) -> ReadScan {
        let mut read = ReadScan {
            edits: 0,
            length: 0,
            truth: String::new(),
            got: String::new(),
        };
        for (page, page_truth) in pages.iter().zip(truth) {
            assert_eq!(page["source"], "ocr", "{name}: {page}");
            let want: Vec<char> = collapse_whitespace(page_truth.as_str().unwrap())
                .chars()
                .collect();
            let got = collapse_whitespace(page["text"].as_str().unwrap());
            read.edits += edit_distance(&want, &got.chars().collect::<Vec<_>>());
            read.length += want.len();
            read.truth.push_str(page_truth.as_str().unwrap());
            read.truth.push(' ');
            read.got.push_str(&got);
            read.got.push(' ');
        }
        read
    }

    /// The character error rate.
    fn cer(&self) -> f64 {
        self.edits as f64 / self.length.max(1) as f64
    }
}

#[test]
fn edit_distance_counts_character_edits() {
    let chars = |s: &str| s.chars().collect::<Vec<_>>();
    assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
    assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
    assert_eq!(edit_distance(&chars("Köln"), &chars("Koln")), 1);
}

/// Files whose text the vendored parser's reading fixes change on purpose (vendor/README.md,
/// part 2 of the patch), each to what PDFium and pdftotext read.
const FIXED_ON_PURPOSE: &[&str] = &[
    "pdfjs__ContentStreamNoCycleType3insideType3.pdf",
    "pdfjs__TAMReview.pdf",
    "pdfjs__french_diacritics.pdf",
    "pdfjs__simpletype3font.pdf",
];

/// The vendored parser's patch (vendor/README.md) skips two passes it measured plain text never
/// reads: every other page of the corpus must still come out as the published crate gives it,
/// whose text's SHA-256 per page is in `tests/fixtures/text_layer_digests.tsv`.
#[test]
fn the_patched_parser_gives_the_published_crate_s_text_on_every_page() {
    use lector::engines::OpenDocument;
    use sha2::Digest;
    let Some(corpus) = corpus_or_skip() else {
        return;
    };
    let digests =
        std::fs::read_to_string(crate::harness::fixture("text_layer_digests.tsv")).unwrap();
    let mut expected: BTreeMap<&str, Vec<(u32, &str)>> = BTreeMap::new();
    for line in digests.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split('\t');
        let (file, page, digest) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        expected
            .entry(file)
            .or_default()
            .push((page.parse().unwrap(), digest));
    }
    let (mut checked, mut differing) = (0, Vec::new());
    for (file, pages) in expected
        .iter()
        .filter(|(f, _)| !FIXED_ON_PURPOSE.contains(f))
    {
        let bytes = std::fs::read(corpus.join("text").join(file)).unwrap();
        let doc = lector::engines::text_layer::open(bytes, None)
            .unwrap_or_else(|e| panic!("{file} no longer opens: {e}"));
        for (page, digest) in pages {
            let text = doc.page_text(*page).unwrap_or_default();
            if hex::encode(sha2::Sha256::digest(text.as_bytes())) != *digest {
                differing.push(format!("{file} p{page}"));
            }
            checked += 1;
        }
    }
    assert!(
        differing.is_empty(),
        "pages whose text changed: {differing:?}"
    );
    assert_eq!(checked, 1401);
}
