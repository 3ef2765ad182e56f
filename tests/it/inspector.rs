//! The long-lived children that check uploads: one child answers many files, a refusal or a
//! crash retires it, a hang is cut at the deadline, and a child that died while idle is
//! replaced without failing the next upload.

use std::time::Duration;

use crate::harness::{self, fixture};
use lector::engines::{OpenError, SandboxError, inspector::Inspectors};

const LIMIT: Duration = Duration::from_secs(20);

/// The folder the checkers may read: where the fixtures are.
fn fixtures() -> std::path::PathBuf {
    fixture("one_page.pdf").parent().unwrap().to_owned()
}

fn real(max_idle: usize) -> Inspectors {
    Inspectors::new(
        env!("CARGO_BIN_EXE_lector").into(),
        1024,
        max_idle,
        fixtures(),
    )
}

/// A stand-in for the inspector child that behaves in a given way.
fn scripted(dir: &tempfile::TempDir, body: &str) -> Inspectors {
    let path = dir.path().join("inspector");
    harness::write_script(&path, body);
    Inspectors::new(path, 1024, 2, fixtures())
}

#[tokio::test]
async fn one_child_checks_many_files_and_says_what_each_is() {
    let inspectors = real(2);
    for (name, pages) in [
        ("three_pages.pdf", 3),
        ("one_page.pdf", 1),
        ("twelve_pages.pdf", 12),
        ("three_pages.pdf", 3),
    ] {
        let inspection = inspectors
            .inspect(&fixture(name), None, LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inspection.pages, pages, "{name}");
        assert!(!inspection.encrypted);
    }
    let with_password = inspectors
        .inspect(&fixture("user_password.pdf"), Some("open-sesame"), LIMIT)
        .await
        .unwrap()
        .unwrap();
    assert!(with_password.encrypted && with_password.user_password);
    assert_eq!(inspectors.started(), 1);
    assert_eq!(inspectors.idle_count(), 1);
}

#[tokio::test]
async fn a_refused_file_is_answered_and_its_child_retired() {
    let inspectors = real(2);
    inspectors
        .inspect(&fixture("one_page.pdf"), None, LIMIT)
        .await
        .unwrap()
        .unwrap();
    let refused = inspectors
        .inspect(&fixture("corrupt.pdf"), None, LIMIT)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(refused, OpenError::Unreadable(_)), "{refused:?}");
    let locked = inspectors
        .inspect(&fixture("user_password.pdf"), None, LIMIT)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(locked, OpenError::PasswordRequired);
    assert_eq!(inspectors.idle_count(), 0);
    // The next file gets a fresh child and a right answer.
    let next = inspectors
        .inspect(&fixture("three_pages.pdf"), None, LIMIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.pages, 3);
    assert_eq!(inspectors.started(), 3);
}

#[tokio::test]
async fn concurrent_uploads_each_get_their_own_answer_and_the_pool_stays_bounded() {
    let inspectors = std::sync::Arc::new(real(2));
    inspectors.warm(2, LIMIT).unwrap();
    assert_eq!((inspectors.started(), inspectors.idle_count()), (2, 2));
    let checks = (0..6).map(|i| {
        let inspectors = inspectors.clone();
        let (name, pages) = if i % 2 == 0 {
            ("twelve_pages.pdf", 12)
        } else {
            ("one_page.pdf", 1)
        };
        tokio::spawn(async move {
            let inspection = inspectors
                .inspect(&fixture(name), None, LIMIT)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(inspection.pages, pages, "{name}");
        })
    });
    for check in futures_util::future::join_all(checks).await {
        check.unwrap();
    }
    // Six files at once on two warm children: the extra children started for the burst are
    // not kept.
    assert!(inspectors.idle_count() <= 2);
}

#[tokio::test]
async fn a_crash_is_reported_in_words_and_the_child_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let inspectors = scripted(&dir, "read request\nkill -SEGV $$");
    let error = inspectors
        .inspect(&fixture("one_page.pdf"), None, LIMIT)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the PDF parser crashed on this file (segmentation fault)"
    );
    assert!(error.is_document_fault());
    assert_eq!(inspectors.idle_count(), 0);
}

#[tokio::test]
async fn a_hang_is_cut_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let inspectors = scripted(&dir, "read request\nexec sleep 60");
    let started = std::time::Instant::now();
    let error = inspectors
        .inspect(&fixture("one_page.pdf"), None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(error, SandboxError::TimedOut(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(inspectors.idle_count(), 0);
}

#[tokio::test]
async fn an_unreadable_answer_is_a_parser_failure() {
    let dir = tempfile::tempdir().unwrap();
    let inspectors = scripted(&dir, "read request\necho 'not json'\nsleep 5");
    let error = inspectors
        .inspect(&fixture("one_page.pdf"), None, LIMIT)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the PDF parser sent an unreadable answer"),
        "{error}"
    );
}

#[tokio::test]
async fn a_child_that_died_while_idle_is_replaced_without_failing_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    // Answers one file, then exits: the next file finds it dead.
    let inspectors = scripted(
        &dir,
        r#"read request
echo '{"opened":{"pages":7,"encrypted":false,"user_password":false}}'"#,
    );
    for _ in 0..3 {
        let inspection = inspectors
            .inspect(&fixture("one_page.pdf"), None, LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inspection.pages, 7);
    }
    assert_eq!(inspectors.started(), 3);
}
