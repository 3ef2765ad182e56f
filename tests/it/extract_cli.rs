//! `lector extract` over many files: folders walked, one output file per PDF, several
//! documents at once, and a bad file listed at the end without stopping the rest.

use std::path::Path;

use serde_json::Value;

use crate::harness::{fixture, lector_command};

/// Copies fixtures into `dir` under new names (folders made as needed).
fn lay_out(dir: &Path, files: &[(&str, &str)]) {
    for (name, fixture_name) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(fixture(fixture_name), path).unwrap();
    }
}

fn extract(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    lector_command(&[&["extract", "--ocr", "off"], args].concat())
        .env_remove("LECTOR_OCR")
        .envs(env)
        .run()
}

#[test]
fn a_folder_is_read_recursively_into_one_text_file_per_pdf_and_bad_files_are_listed() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    lay_out(
        &input,
        &[
            ("a.pdf", "one_page.pdf"),
            ("reports/b.PDF", "three_pages.pdf"),
            ("reports/broken.pdf", "corrupt.pdf"),
            ("notes.txt", "one_page.pdf"),
        ],
    );
    let out = work.path().join("out");
    let (ok, stdout, stderr) = extract(
        &[
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "2",
        ],
        &[],
    );
    assert!(!ok, "a failed file fails the run: {stderr}");
    assert_eq!(stdout, "", "the text goes to files");
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "A single page about marmalade.\n"
    );
    let pages = std::fs::read_to_string(out.join("reports/b.txt")).unwrap();
    let pages: Vec<&str> = pages.split('\x0c').collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages[1].starts_with("Page two talks about zebras"),
        "{pages:?}"
    );
    assert!(!out.join("reports/broken.txt").exists());
    assert!(!out.join("notes.txt").exists(), "only PDFs are read");
    assert!(stderr.contains("3 files, 4 pages in "), "{stderr}");
    let failure = format!(
        "failed: {}: this file could not be read as a PDF",
        input.join("reports/broken.pdf").display()
    );
    assert!(stderr.contains(&failure), "{stderr}");
    assert!(stderr.contains("1 of 3 files failed"), "{stderr}");
}

#[test]
fn files_given_by_name_are_written_as_json_and_same_names_do_not_collide() {
    let work = tempfile::tempdir().unwrap();
    lay_out(
        work.path(),
        &[
            ("x/report.pdf", "one_page.pdf"),
            ("y/report.pdf", "three_pages.pdf"),
        ],
    );
    let out = work.path().join("out");
    let (ok, _, stderr) = extract(
        &[
            work.path().join("x/report.pdf").to_str().unwrap(),
            work.path().join("y/report.pdf").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    let first: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let second: Value =
        serde_json::from_slice(&std::fs::read(out.join("report-2.json")).unwrap()).unwrap();
    assert_eq!(first["pages"].as_array().unwrap().len(), 1);
    assert_eq!(first["pages"][0]["text"], "A single page about marmalade.");
    assert_eq!(second["pages"].as_array().unwrap().len(), 3);
    assert_eq!(second["pages"][2]["number"], 3);
    assert!(stderr.contains("2 files, 4 pages in "), "{stderr}");
}

#[test]
fn a_file_that_kills_its_child_fails_alone_and_the_next_gets_a_new_child() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    // Read in name order by one job: the middle file exhausts the child's memory limit.
    lay_out(
        &input,
        &[
            ("1.pdf", "one_page.pdf"),
            ("2.pdf", "inflates_to_96_mib.pdf"),
            ("3.pdf", "three_pages.pdf"),
        ],
    );
    let out = work.path().join("out");
    let (ok, _, stderr) = extract(
        &[
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "1",
        ],
        &[("LECTOR_SANDBOX_MEMORY_MB", "64")],
    );
    assert!(!ok);
    let failure = format!(
        "failed: {}: the PDF parser ran out of memory on this file",
        input.join("2.pdf").display()
    );
    assert!(stderr.contains(&failure), "{stderr}");
    assert!(out.join("1.txt").exists());
    assert!(
        std::fs::read_to_string(out.join("3.txt"))
            .unwrap()
            .contains("xylophone")
    );
}

#[test]
fn several_files_need_a_folder_to_go_to() {
    let one = fixture("one_page.pdf");
    let (ok, _, stderr) = extract(&[one.to_str().unwrap(), one.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("more than one PDF needs --out DIR"),
        "{stderr}"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = empty.path().join("out");
    let (ok, _, stderr) = extract(
        &[
            empty.path().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("no PDF found in"), "{stderr}");
}
