//! The storage contract: every method of [`Store`] and of its super-traits (one per concern:
//! `DocumentStore`, `PageStore`, `OriginalStore`, `QueueStore`, `TextractStore`, `StatsStore`,
//! `AccountStore`, `TokenStore`, `SearchStore`, `WebhookStore`, `DeliveryStore`) called
//! straight on the store, on SQLite and on Postgres, with the same expectations on what comes
//! back (rows, counts, booleans, `NotFound`, `Conflict`). It is the safety net STYLE.md
//! promises for the storage layer: a rewrite of `src/storage/` (per-concern traits, no
//! `macro_rules!` bodies) must keep it passing on both backends. The last test fails, naming
//! them, when a trait method is called nowhere here.
//!
//! Concerns, in order: documents and originals, pages, the job queue and its leases, Textract
//! (slots, budget, completions), metrics counts, notes, accounts, search, webhooks and their
//! deliveries, sealed secrets, migrations.

use lector::domain::{DocumentId, TokenId, UserId, WebhookId};
use std::{fmt::Debug, sync::Arc, time::Duration};

use crate::harness::{Backend, TestDatabase};
use chrono::{TimeDelta, TimeZone, Utc};
use lector::{
    domain::{
        Document, DocumentStatus, Engine, Page, PageSource, User,
        ocr::{OcrChoice, OcrMode},
        search::{SearchFilters, SearchQuery, SearchSort},
        webhook::{DeliveryAttempt, DeliveryStatus, DocumentSnapshot, Webhook, WebhookEvent},
    },
    storage::{
        BLOB_CHUNK_BYTES, ClaimedJob, Error, NewApiToken, NewDocument, NewPage, NewUser,
        QueueCounts, Result, Store,
        accounts::{NewPasswordReset, UserSummary},
        search::{DocumentMatches, SearchRequest},
        webhooks::{AttemptOutcome, NewWebhook},
    },
};
use rstest::rstest;
use secrecy::ExposeSecret;

/// The worker that holds the jobs in these tests.
const WORKER: &str = "worker-1";
/// A worker that does not hold the job it names.
const INTRUDER: &str = "someone-else";
const LEASE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// A migrated store on a fresh database of one backend. The store is dropped before the
/// database (fields drop in order).
struct Contract {
    store: Arc<dyn Store>,
    db: TestDatabase,
}

impl Contract {
    async fn new(backend: Backend) -> Option<Self> {
        let db = TestDatabase::new(backend).await?;
        let config = crate::harness::test_config(&db.url, &[]);
        let store = lector::startup::connect(&config).await.unwrap().store;
        Some(Contract { store, db })
    }

    /// An account `id` with the e-mail `<id>@example.com`.
    async fn user(&self, id: &str) -> User {
        self.store
            .create_user(&new_user(id, &format!("{id}@example.com")), false)
            .await
            .unwrap()
            .expect("stored")
    }

    /// A document `id` of `owner` with no original in the database, queued.
    async fn document(&self, id: &str, owner: &str) -> Document {
        self.store
            .create_document(&new_document(id, Some(owner)), None)
            .await
            .unwrap()
    }

    /// Claims the next due job for `worker`, which must exist.
    async fn claim(&self, worker: &str) -> ClaimedJob {
        self.store
            .claim_job(worker, LEASE)
            .await
            .unwrap()
            .expect("a job is due")
    }

    /// Stores `doc`, claims its job (it must be the only one due), stores `texts` as its pages
    /// and, when `finish`, completes the job. Returns the claimed job.
    async fn extracted(&self, doc: NewDocument, texts: &[&str], finish: bool) -> ClaimedJob {
        self.store.create_document(&doc, None).await.unwrap();
        let job = self.claim(WORKER).await;
        assert_eq!(job.document_id, doc.id, "the only job due");
        assert!(self.store.start_document(&job, WORKER).await.unwrap());
        let pages: Vec<NewPage> = (1..)
            .zip(texts)
            .map(|(number, text)| page(number, text))
            .collect();
        assert!(self.store.insert_pages(&job, WORKER, &pages).await.unwrap());
        if finish {
            assert!(self.store.complete_job(&job, WORKER).await.unwrap());
        }
        job
    }

    /// Sets `column` of every row of `table` that has one to 2000-01-01 (raw SQL): what a
    /// dead worker's lease, or a row finished long ago, looks like.
    async fn set_long_ago(&self, table: &str, column: &str) {
        let long_ago = match self.db.backend {
            Backend::Sqlite => "2000-01-01 00:00:00.000",
            Backend::Postgres => "2000-01-01 00:00:00+00",
        };
        self.db
            .execute(&format!(
                "update {table} set {column} = '{long_ago}' where {column} is not null"
            ))
            .await;
    }

    /// The password hash and session epoch of account `id`.
    async fn credentials(&self, id: &str) -> (String, i64) {
        let found = (self.store.credentials_by_id(&UserId::from(id)).await)
            .unwrap()
            .unwrap();
        (found.password_hash, found.session_epoch)
    }
}

fn new_user(id: &str, email: &str) -> NewUser {
    NewUser {
        id: id.into(),
        email: email.into(),
        password_hash: format!("hash-of-{id}"),
    }
}

fn new_document(id: &str, owner: Option<&str>) -> NewDocument {
    NewDocument {
        id: id.into(),
        file_name: format!("{id}.pdf"),
        sha256: format!("sha-{id}"),
        size_bytes: 1234,
        page_count: 3,
        engine: Engine::Local,
        pdf_password: None,
        blob_key: None,
        max_attempts: 3,
        ocr: OcrChoice {
            mode: OcrMode::Auto,
            languages: "eng".into(),
        },
        owner_id: owner.map(Into::into),
    }
}

fn page(number: i32, text: &str) -> NewPage {
    NewPage {
        number,
        text: text.into(),
        source: PageSource::TextLayer,
        extraction_ms: 5,
        error: None,
        confidence: None,
        dpi: None,
        ocr_reason: None,
    }
}

fn new_webhook(id: &str, owner: &str, secret: &str) -> NewWebhook {
    NewWebhook {
        id: id.into(),
        owner_id: owner.into(),
        url: format!("https://example.com/hooks/{id}"),
        description: format!("the {id} hook"),
        secret: secret.to_owned().into(),
    }
}

fn ids(documents: &[Document]) -> Vec<&str> {
    documents.iter().map(|d| d.id.as_str()).collect()
}

#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T>) {
    match result {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(result: Result<T>) {
    match result {
        Err(Error::Conflict) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_other<T: Debug>(result: Result<T>) {
    match result {
        Err(Error::Other(_)) => {}
        other => panic!("expected an Other error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Documents and originals
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_stored_document_is_read_back_with_its_original_in_chunks(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("original.pdf");
    let bytes: Vec<u8> = (0..BLOB_CHUNK_BYTES + 10)
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let new = NewDocument {
        engine: Engine::Hybrid,
        ocr: OcrChoice {
            mode: OcrMode::Force,
            languages: "eng+deu".into(),
        },
        ..new_document("d1", Some("u1"))
    };

    let stored = c.store.create_document(&new, Some(&path)).await.unwrap();
    assert_eq!(
        (
            stored.id.as_str(),
            stored.file_name.as_str(),
            stored.sha256.as_str()
        ),
        ("d1", "d1.pdf", "sha-d1")
    );
    assert_eq!((stored.size_bytes, stored.page_count), (1234, 3));
    assert_eq!((stored.pages_done, stored.pages_failed), (0, 0));
    assert_eq!(stored.status, DocumentStatus::Queued);
    assert_eq!(stored.engine, Engine::Hybrid);
    assert_eq!(stored.ocr, new.ocr);
    assert_eq!(stored.owner_id, Some(UserId::from("u1")));
    assert_eq!(
        (&stored.error, &stored.blob_key, &stored.note),
        (&None, &None, &None)
    );
    assert_eq!((stored.started_at, stored.finished_at), (None, None));
    assert_eq!(
        c.store.get_document(&DocumentId::from("d1")).await.unwrap(),
        stored
    );

    assert_eq!(
        c.store
            .blob_chunk_count(&DocumentId::from("d1"))
            .await
            .unwrap(),
        2
    );
    let first = c
        .store
        .blob_chunk(&DocumentId::from("d1"), 0)
        .await
        .unwrap();
    let second = c
        .store
        .blob_chunk(&DocumentId::from("d1"), 1)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (BLOB_CHUNK_BYTES, 10));
    assert_eq!([first, second].concat(), bytes);
    assert_not_found(c.store.blob_chunk(&DocumentId::from("d1"), 2).await);

    // An original on S3: only its key is stored.
    let on_s3 = NewDocument {
        blob_key: Some("originals/d2.pdf".into()),
        ..new_document("d2", Some("u1"))
    };
    let stored = c.store.create_document(&on_s3, None).await.unwrap();
    assert_eq!(stored.blob_key.as_deref(), Some("originals/d2.pdf"));
    assert_eq!(
        c.store
            .blob_chunk_count(&DocumentId::from("d2"))
            .await
            .unwrap(),
        0
    );
    let with_key = |key: &'static str| c.store.count_documents_with_blob_key(key);
    assert_eq!(with_key("originals/d2.pdf").await.unwrap(), 1);
    assert_eq!(with_key("originals/other.pdf").await.unwrap(), 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_same_file_twice_for_one_owner_is_a_conflict_that_stores_nothing(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.user("u2").await;
    c.document("d1", "u1").await;
    let twice = NewDocument {
        sha256: "sha-d1".into(),
        ..new_document("d2", Some("u1"))
    };
    assert_conflict(c.store.create_document(&twice, None).await);
    assert_not_found(c.store.get_document(&DocumentId::from("d2")).await);
    assert_eq!(
        c.store.count_documents(&UserId::from("u1")).await.unwrap(),
        1
    );
    assert_eq!(c.db.count("jobs").await, 1, "no job for the refused copy");

    // Another owner may store the same file; each finds their own.
    let theirs = NewDocument {
        sha256: "sha-d1".into(),
        ..new_document("d3", Some("u2"))
    };
    c.store.create_document(&theirs, None).await.unwrap();
    let find = |owner: Option<&'static str>, sha: &'static str| {
        let store = c.store.clone();
        async move {
            store
                .find_document_by_sha256(owner.map(UserId::from).as_ref(), sha)
                .await
                .unwrap()
                .map(|d| d.id.to_string())
        }
    };
    assert_eq!(find(Some("u1"), "sha-d1").await.as_deref(), Some("d1"));
    assert_eq!(find(Some("u2"), "sha-d1").await.as_deref(), Some("d3"));
    assert_eq!(find(Some("u3"), "sha-d1").await, None);
    assert_eq!(find(None, "sha-d1").await, None);
    // A document stored before accounts existed has no owner, and is found as such.
    c.store
        .create_document(&new_document("d4", None), None)
        .await
        .unwrap();
    assert_eq!(find(None, "sha-d4").await.as_deref(), Some("d4"));
    assert_eq!(find(Some("u1"), "sha-d4").await, None);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn documents_are_listed_newest_first_by_cursor_and_by_offset(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.user("u2").await;
    for id in ["d1", "d2", "d3", "d4", "d5"] {
        c.document(id, "u1").await;
    }
    c.document("d6", "u2").await;
    let s = &c.store;

    assert_eq!(
        ids(&s
            .list_documents(&UserId::from("u1"), None, 2)
            .await
            .unwrap()),
        ["d5", "d4"]
    );
    let u1 = UserId::from("u1");
    let before = |cursor: &'static str, limit| s.list_documents(&u1, Some(cursor), limit);
    assert_eq!(ids(&before("d4", 2).await.unwrap()), ["d3", "d2"]);
    assert_eq!(ids(&before("d2", 10).await.unwrap()), ["d1"]);
    assert!(before("d1", 10).await.unwrap().is_empty());

    let at = |offset| s.list_documents_at(&u1, offset, 2);
    assert_eq!(ids(&at(0).await.unwrap()), ["d5", "d4"]);
    assert_eq!(ids(&at(2).await.unwrap()), ["d3", "d2"]);
    assert_eq!(ids(&at(4).await.unwrap()), ["d1"]);
    assert!(at(5).await.unwrap().is_empty());

    assert_eq!(s.count_documents(&UserId::from("u1")).await.unwrap(), 5);
    assert_eq!(s.count_documents(&UserId::from("u2")).await.unwrap(), 1);
    assert_eq!(s.count_documents(&UserId::from("nobody")).await.unwrap(), 0);

    let wanted = ["d2".to_owned(), "d6".to_owned(), "missing".to_owned()];
    let mut found = s.documents_by_ids(&wanted).await.unwrap();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ids(&found), ["d2", "d6"]);
    assert!(s.documents_by_ids(&[]).await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_missing_document_is_not_found_wherever_it_is_asked_for(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert_not_found(s.get_document(&DocumentId::from("missing")).await);
    assert_not_found(s.delete_document(&DocumentId::from("missing")).await);
    assert_not_found(
        s.requeue_document(&DocumentId::from("missing"), 3, None)
            .await,
    );
    assert_not_found(s.cancel_document(&DocumentId::from("missing")).await);
    assert_not_found(s.document_password(&DocumentId::from("missing")).await);
    assert!(
        s.list_pages(&DocumentId::from("missing"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.stored_page_numbers(&DocumentId::from("missing"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.blob_chunk_count(&DocumentId::from("missing"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(c.db.count("jobs").await, 0, "requeueing stored no job");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deleting_a_document_removes_its_original_pages_and_job(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("original.pdf");
    std::fs::write(&path, b"%PDF-1.7 a small original").unwrap();
    c.store
        .create_document(&new_document("d1", Some("u1")), Some(&path))
        .await
        .unwrap();
    let job = c.claim(WORKER).await;
    assert!(
        c.store
            .insert_pages(&job, WORKER, &[page(1, "one"), page(2, "two")])
            .await
            .unwrap()
    );
    c.document("d2", "u1").await;

    c.store
        .delete_document(&DocumentId::from("d1"))
        .await
        .unwrap();
    assert_not_found(c.store.get_document(&DocumentId::from("d1")).await);
    assert!(
        c.store
            .list_pages(&DocumentId::from("d1"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.store
            .blob_chunk_count(&DocumentId::from("d1"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(c.db.count("pages").await, 0);
    assert_eq!(c.db.count("document_blobs").await, 0);
    assert_eq!(c.db.count("jobs").await, 1, "only the other document's job");
    assert_not_found(c.store.delete_document(&DocumentId::from("d1")).await);
    assert_eq!(
        c.store
            .get_document(&DocumentId::from("d2"))
            .await
            .unwrap()
            .id,
        "d2"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn cancelling_stops_a_queued_or_running_document_but_not_a_finished_one(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    for id in ["d1", "d2", "d3"] {
        c.document(id, "u1").await;
    }
    let s = &c.store;

    // Queued.
    assert!(s.cancel_document(&DocumentId::from("d1")).await.unwrap());
    let d1 = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!(d1.status, DocumentStatus::Cancelled);
    assert!(d1.finished_at.is_some());
    assert!(
        !s.cancel_document(&DocumentId::from("d1")).await.unwrap(),
        "already cancelled"
    );

    // Running: the worker learns it at its next heartbeat, and cannot finish it.
    let running = c.claim(WORKER).await;
    assert_eq!(
        running.document_id, "d2",
        "the cancelled job is not claimed"
    );
    assert!(s.start_document(&running, WORKER).await.unwrap());
    assert!(s.cancel_document(&DocumentId::from("d2")).await.unwrap());
    assert!(!s.heartbeat(&running, WORKER, LEASE).await.unwrap());
    assert!(!s.complete_job(&running, WORKER).await.unwrap());
    assert_eq!(
        s.get_document(&DocumentId::from("d2"))
            .await
            .unwrap()
            .status,
        DocumentStatus::Cancelled
    );

    // Finished.
    let done = c.claim(WORKER).await;
    assert!(s.complete_job(&done, WORKER).await.unwrap());
    assert!(!s.cancel_document(&DocumentId::from("d3")).await.unwrap());
    assert_eq!(
        s.get_document(&DocumentId::from("d3"))
            .await
            .unwrap()
            .status,
        DocumentStatus::Done
    );

    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None);
    assert_eq!(s.queue_counts().await.unwrap(), QueueCounts::default());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn requeueing_clears_the_pages_and_note_and_queues_a_fresh_job(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let job = c
        .extracted(new_document("d1", Some("u1")), &["one", "two"], false)
        .await;
    let s = &c.store;
    assert!(s.set_external_id(&job, WORKER, "textract-1").await.unwrap());
    s.set_document_note(&DocumentId::from("d1"), Some("read locally"))
        .await
        .unwrap();
    assert!(s.complete_job(&job, WORKER).await.unwrap());

    let german = OcrChoice {
        mode: OcrMode::Force,
        languages: "deu".into(),
    };
    s.requeue_document(&DocumentId::from("d1"), 5, Some(&german))
        .await
        .unwrap();
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!(doc.status, DocumentStatus::Queued);
    assert_eq!((doc.error, doc.note), (None, None));
    assert_eq!((doc.started_at, doc.finished_at), (None, None));
    assert_eq!((doc.pages_done, doc.ocr), (0, german.clone()));
    assert!(
        s.list_pages(&DocumentId::from("d1"))
            .await
            .unwrap()
            .is_empty()
    );
    let again = c.claim(WORKER).await;
    assert_eq!(
        again,
        ClaimedJob {
            id: again.id,
            document_id: "d1".into(),
            attempts: 1,
            max_attempts: 5,
            last_error: None,
            external_id: None,
        }
    );

    // Without new OCR choices the document keeps its own.
    assert!(s.complete_job(&again, WORKER).await.unwrap());
    s.requeue_document(&DocumentId::from("d1"), 3, None)
        .await
        .unwrap();
    assert_eq!(
        s.get_document(&DocumentId::from("d1")).await.unwrap().ocr,
        german
    );
    assert_eq!(s.queue_counts().await.unwrap().queued, 1);
}

// ---------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn pages_are_stored_once_in_page_order_with_what_the_engine_reported(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    let job = c.claim(WORKER).await;
    let s = &c.store;
    let text_layer = page(1, "café au lait");
    let ocr = NewPage {
        source: PageSource::Ocr,
        extraction_ms: 1650,
        confidence: Some(91.5),
        dpi: Some(300),
        ocr_reason: Some("no text layer".into()),
        ..page(2, "scanned words")
    };
    let failed = NewPage {
        error: Some("the page could not be read".into()),
        ..page(3, "")
    };
    assert!(
        s.insert_pages(&job, WORKER, &[ocr, text_layer])
            .await
            .unwrap()
    );
    assert!(s.insert_pages(&job, WORKER, &[failed]).await.unwrap());

    let pages = s.list_pages(&DocumentId::from("d1")).await.unwrap();
    assert_eq!(
        pages,
        [
            Page {
                number: 1,
                text: "café au lait".into(),
                source: PageSource::TextLayer,
                char_count: 12,
                extraction_ms: 5,
                error: None,
                confidence: None,
                dpi: None,
                ocr_reason: None,
            },
            Page {
                number: 2,
                text: "scanned words".into(),
                source: PageSource::Ocr,
                char_count: 13,
                extraction_ms: 1650,
                error: None,
                confidence: Some(91.5),
                dpi: Some(300),
                ocr_reason: Some("no text layer".into()),
            },
            Page {
                number: 3,
                text: String::new(),
                source: PageSource::TextLayer,
                char_count: 0,
                extraction_ms: 5,
                error: Some("the page could not be read".into()),
                confidence: None,
                dpi: None,
                ocr_reason: None,
            },
        ]
    );
    assert_eq!(
        s.stored_page_numbers(&DocumentId::from("d1"))
            .await
            .unwrap(),
        [1, 2, 3]
    );
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!((doc.pages_done, doc.pages_failed), (3, 1));

    // A resumed job storing a page again keeps the first copy.
    assert!(
        s.insert_pages(&job, WORKER, &[page(1, "a second copy")])
            .await
            .unwrap()
    );
    assert_eq!(
        s.list_pages(&DocumentId::from("d1")).await.unwrap()[0].text,
        "café au lait"
    );
    assert_eq!(c.db.count("pages").await, 3);
}

// ---------------------------------------------------------------------------------------
// The job queue and its leases
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn claiming_takes_the_oldest_due_job_once_and_starts_its_document(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None);
    assert_eq!(s.queue_counts().await.unwrap(), QueueCounts::default());
    assert_eq!(s.oldest_due_job().await.unwrap(), None);
    assert_eq!(s.queue_age_seconds().await.unwrap(), 0.0);

    c.user("u1").await;
    c.document("d1", "u1").await;
    c.document("d2", "u1").await;
    assert_eq!(
        s.queue_counts().await.unwrap(),
        QueueCounts {
            queued: 2,
            running: 0
        }
    );
    let due = s.oldest_due_job().await.unwrap().expect("two jobs are due");
    assert!((Utc::now() - due).num_seconds().abs() < 60, "{due}");
    assert!(s.queue_age_seconds().await.unwrap() >= 0.0);

    let job = c.claim(WORKER).await;
    assert_eq!(
        job,
        ClaimedJob {
            id: job.id,
            document_id: "d1".into(),
            attempts: 1,
            max_attempts: 3,
            last_error: None,
            external_id: None,
        }
    );
    assert_eq!(
        s.queue_counts().await.unwrap(),
        QueueCounts {
            queued: 1,
            running: 1
        }
    );
    assert_eq!(c.claim("worker-2").await.document_id, "d2");
    assert_eq!(s.claim_job("worker-3", LEASE).await.unwrap(), None);

    assert!(!s.start_document(&job, INTRUDER).await.unwrap());
    assert_eq!(
        s.get_document(&DocumentId::from("d1"))
            .await
            .unwrap()
            .status,
        DocumentStatus::Queued
    );
    assert!(s.start_document(&job, WORKER).await.unwrap());
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!(doc.status, DocumentStatus::Processing);
    assert!(doc.started_at.is_some());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_heartbeat_extends_only_a_lease_the_worker_still_holds(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    let job = c.claim(WORKER).await;
    let s = &c.store;
    assert!(s.heartbeat(&job, WORKER, LEASE).await.unwrap());
    assert!(!s.heartbeat(&job, INTRUDER, LEASE).await.unwrap());

    // A lease that ran out but that nobody took yet is renewed, and then nobody can take it.
    c.set_long_ago("jobs", "locked_until").await;
    assert!(s.heartbeat(&job, WORKER, LEASE).await.unwrap());
    assert_eq!(s.claim_job("worker-2", LEASE).await.unwrap(), None);

    assert!(s.cancel_document(&DocumentId::from("d1")).await.unwrap());
    assert!(!s.heartbeat(&job, WORKER, LEASE).await.unwrap());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_expired_lease_lets_another_worker_take_the_job_and_the_first_is_refused(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    let s = &c.store;
    let first = c.claim(WORKER).await;
    assert!(
        s.insert_pages(&first, WORKER, &[page(1, "one")])
            .await
            .unwrap()
    );
    // The first worker died: its lease is in the past.
    c.set_long_ago("jobs", "locked_until").await;
    assert_eq!(s.queue_counts().await.unwrap().running, 1);

    let second = c.claim("worker-2").await;
    assert_eq!((second.id, second.attempts), (first.id, 2));

    // Everything the first worker tries now is refused or has no effect.
    assert!(!s.heartbeat(&first, WORKER, LEASE).await.unwrap());
    let late = [page(2, "two, late"), page(3, "three, late")];
    assert!(!s.insert_pages(&first, WORKER, &late).await.unwrap());
    assert!(
        !s.insert_pages(&first, WORKER, &[page(1, "one")])
            .await
            .unwrap()
    );
    assert_eq!(
        s.stored_page_numbers(&DocumentId::from("d1"))
            .await
            .unwrap(),
        [1],
        "none stored"
    );
    assert!(!s.set_external_id(&first, WORKER, "late").await.unwrap());
    assert!(!s.start_document(&first, WORKER).await.unwrap());
    assert!(!s.complete_job(&first, WORKER).await.unwrap());
    s.retry_job(&first, WORKER, "late", Duration::ZERO)
        .await
        .unwrap();
    s.release_job(&first, WORKER, Duration::ZERO).await.unwrap();
    s.fail_job(&first, WORKER, "late").await.unwrap();
    assert_eq!(s.claim_job("worker-3", LEASE).await.unwrap(), None);
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!((doc.status, doc.error), (DocumentStatus::Queued, None));

    // The second worker carries on.
    assert!(s.insert_pages(&second, "worker-2", &late).await.unwrap());
    assert!(s.complete_job(&second, "worker-2").await.unwrap());
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!((doc.status, doc.pages_done), (DocumentStatus::Done, 3));
    assert_eq!(
        s.list_pages(&DocumentId::from("d1")).await.unwrap()[1].text,
        "two, late"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_retried_job_comes_back_after_its_delay_with_the_attempt_counted(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    let s = &c.store;
    let job = c.claim(WORKER).await;
    assert!(s.start_document(&job, WORKER).await.unwrap());

    s.retry_job(&job, WORKER, "the network went away", HOUR)
        .await
        .unwrap();
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!(doc.status, DocumentStatus::Queued);
    assert_eq!(
        doc.error.as_deref(),
        Some("attempt 1 failed, will retry: the network went away")
    );
    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None, "not due");
    assert_eq!(s.oldest_due_job().await.unwrap(), None, "not due");
    assert_eq!(
        s.queue_counts().await.unwrap(),
        QueueCounts {
            queued: 1,
            running: 0
        }
    );

    // Once due, it is claimed with the attempt counted and the last error.
    c.set_long_ago("jobs", "run_at").await;
    let long_ago = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(s.oldest_due_job().await.unwrap(), Some(long_ago));
    assert!(s.queue_age_seconds().await.unwrap() > 365.0 * 24.0 * 3600.0);
    let second = c.claim(WORKER).await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.last_error.as_deref(), Some("the network went away"));

    s.retry_job(&second, WORKER, "again", Duration::ZERO)
        .await
        .unwrap();
    let third = c.claim(WORKER).await;
    assert_eq!(
        (third.attempts, third.last_error.as_deref()),
        (3, Some("again"))
    );

    // Another worker cannot send it back.
    s.retry_job(&third, INTRUDER, "not mine", Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None);
    assert_eq!(s.queue_counts().await.unwrap().running, 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_released_job_comes_back_uncounted_with_its_external_id(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    let s = &c.store;
    let job = c.claim(WORKER).await;
    assert!(s.set_external_id(&job, WORKER, "textract-1").await.unwrap());
    assert!(!s.set_external_id(&job, INTRUDER, "other").await.unwrap());
    assert!(s.start_document(&job, WORKER).await.unwrap());

    s.release_job(&job, WORKER, Duration::ZERO).await.unwrap();
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!((doc.status, doc.error), (DocumentStatus::Queued, None));
    let again = c.claim(WORKER).await;
    assert_eq!(again.attempts, 1, "handing back is not an attempt");
    assert_eq!(again.external_id.as_deref(), Some("textract-1"));

    s.release_job(&again, INTRUDER, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.queue_counts().await.unwrap().running, 1, "not theirs");
    s.release_job(&again, WORKER, HOUR).await.unwrap();
    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None, "not due");
    assert_eq!(
        s.queue_counts().await.unwrap(),
        QueueCounts {
            queued: 1,
            running: 0
        }
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn completing_or_failing_a_job_finishes_its_document_once(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    c.document("d2", "u1").await;
    let s = &c.store;

    let done = c.claim(WORKER).await;
    assert!(!s.complete_job(&done, INTRUDER).await.unwrap());
    assert!(s.complete_job(&done, WORKER).await.unwrap());
    assert!(!s.complete_job(&done, WORKER).await.unwrap(), "only once");
    let doc = s.get_document(&DocumentId::from("d1")).await.unwrap();
    assert_eq!((doc.status, doc.error), (DocumentStatus::Done, None));
    assert!(doc.finished_at.is_some());

    let failed = c.claim(WORKER).await;
    s.fail_job(&failed, WORKER, "gave up: the file is damaged")
        .await
        .unwrap();
    s.fail_job(&failed, WORKER, "a second reason")
        .await
        .unwrap();
    let doc = s.get_document(&DocumentId::from("d2")).await.unwrap();
    assert_eq!(doc.status, DocumentStatus::Failed);
    assert_eq!(doc.error.as_deref(), Some("gave up: the file is damaged"));
    assert!(doc.finished_at.is_some());

    assert_eq!(s.claim_job(WORKER, LEASE).await.unwrap(), None);
    assert_eq!(s.queue_counts().await.unwrap(), QueueCounts::default());
}

/// Claims at once (several workers, several senders) never hand one job or delivery to two
/// of them, and every one is claimed in the end. A claim may come back empty while others
/// hold locks (Postgres' `skip locked`), so the queue is then drained one claim at a time.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn claims_made_at_once_never_share_a_job_or_a_delivery(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    s.create_webhook(&new_webhook("w1", "u1", "whsec_1"))
        .await
        .unwrap();
    for n in 1..=4 {
        c.document(&format!("d{n}"), "u1").await;
        s.queue_ping(&WebhookId::from("w1"), &format!("event-{n}"))
            .await
            .unwrap();
    }

    let jobs = (0..6).map(|n| {
        let store = s.clone();
        async move {
            store
                .claim_job(&format!("worker-{n}"), LEASE)
                .await
                .unwrap()
        }
    });
    let mut documents: Vec<String> = futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .map(|job| job.document_id.to_string())
        .collect();
    while let Some(job) = s.claim_job("worker-last", LEASE).await.unwrap() {
        documents.push(job.document_id.to_string());
    }
    documents.sort();
    assert_eq!(documents, ["d1", "d2", "d3", "d4"]);

    let deliveries = (0..6).map(|n| {
        let store = s.clone();
        async move {
            store
                .claim_delivery(&format!("sender-{n}"), LEASE)
                .await
                .unwrap()
        }
    });
    let mut events: Vec<String> = futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .flatten()
        .map(|claimed| claimed.delivery.event_id)
        .collect();
    while let Some(claimed) = s.claim_delivery("sender-last", LEASE).await.unwrap() {
        events.push(claimed.delivery.event_id);
    }
    events.sort();
    assert_eq!(events, ["event-1", "event-2", "event-3", "event-4"]);
}

// ---------------------------------------------------------------------------------------
// Textract: slots, budget, completion notices
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn textract_slots_are_shared_up_to_the_cap_and_freed_on_release(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    for id in ["d1", "d2", "d3"] {
        c.document(id, "u1").await;
    }
    let s = &c.store;
    let a = c.claim("w1").await;
    let b = c.claim("w2").await;
    assert!(
        !s.claim_textract_slot(&a, "w1", 1).await.unwrap(),
        "no slot made yet"
    );

    s.ensure_textract_slots(1).await.unwrap();
    s.ensure_textract_slots(1).await.unwrap();
    assert_eq!(c.db.count("textract_slots").await, 1);
    assert!(s.claim_textract_slot(&a, "w1", 1).await.unwrap());
    assert!(
        s.claim_textract_slot(&a, "w1", 1).await.unwrap(),
        "confirmed"
    );
    assert!(
        !s.claim_textract_slot(&b, "w2", 1).await.unwrap(),
        "all held"
    );
    assert!(!s.claim_textract_slot(&b, INTRUDER, 2).await.unwrap());

    s.ensure_textract_slots(2).await.unwrap();
    assert_eq!(c.db.count("textract_slots").await, 2);
    assert!(s.claim_textract_slot(&b, "w2", 2).await.unwrap());

    // A released slot is free for the next job.
    s.release_textract_slot(&a).await.unwrap();
    let third = c.claim("w3").await;
    assert!(s.claim_textract_slot(&third, "w3", 2).await.unwrap());
    assert!(!s.claim_textract_slot(&a, "w1", 2).await.unwrap());
    // So is a slot whose job is no longer running.
    assert!(s.complete_job(&b, "w2").await.unwrap());
    assert!(s.claim_textract_slot(&a, "w1", 2).await.unwrap());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_textract_budget_counts_each_content_once_a_month_and_refuses_past_it(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert_eq!(s.textract_pages_this_month().await.unwrap(), 0);
    assert!(
        s.reserve_textract_pages("sha-a", "d1", 6, 10)
            .await
            .unwrap()
    );
    assert_eq!(s.textract_pages_this_month().await.unwrap(), 6);
    assert!(
        !s.reserve_textract_pages("sha-b", "d2", 5, 10)
            .await
            .unwrap()
    );
    assert_eq!(s.textract_pages_this_month().await.unwrap(), 6);
    assert!(
        s.reserve_textract_pages("sha-a", "d3", 6, 10)
            .await
            .unwrap(),
        "the same content was already counted"
    );
    assert_eq!(s.textract_pages_this_month().await.unwrap(), 6);
    assert!(
        s.reserve_textract_pages("sha-c", "d4", 4, 10)
            .await
            .unwrap()
    );
    assert_eq!(s.textract_pages_this_month().await.unwrap(), 10);
    assert!(
        !s.reserve_textract_pages("sha-d", "d5", 1, 10)
            .await
            .unwrap()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_textract_completion_notice_is_recorded_once(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert_eq!(s.textract_completion("job-1").await.unwrap(), None);
    s.record_textract_completion("job-1", "SUCCEEDED")
        .await
        .unwrap();
    s.record_textract_completion("job-1", "FAILED")
        .await
        .unwrap();
    s.record_textract_completion("job-2", "PARTIAL_SUCCESS")
        .await
        .unwrap();
    let status = |id: &'static str| s.textract_completion(id);
    assert_eq!(status("job-1").await.unwrap().as_deref(), Some("SUCCEEDED"));
    assert_eq!(
        status("job-2").await.unwrap().as_deref(),
        Some("PARTIAL_SUCCESS")
    );
    assert_eq!(c.db.count("textract_completions").await, 2);
}

// ---------------------------------------------------------------------------------------
// Metrics counts and notes
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn metrics_count_documents_by_status_and_pages_by_source(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert!(s.documents_by_status().await.unwrap().is_empty());
    assert!(s.pages_by_source().await.unwrap().is_empty());

    c.user("u1").await;
    let job = c
        .extracted(new_document("d1", Some("u1")), &["one", "two"], false)
        .await;
    let scanned = NewPage {
        source: PageSource::Ocr,
        ..page(3, "three")
    };
    assert!(s.insert_pages(&job, WORKER, &[scanned]).await.unwrap());
    assert!(s.complete_job(&job, WORKER).await.unwrap());
    c.document("d2", "u1").await;
    let job = c.claim(WORKER).await;
    let read_by_textract = NewPage {
        source: PageSource::Textract,
        ..page(1, "one")
    };
    assert!(
        s.insert_pages(&job, WORKER, &[read_by_textract])
            .await
            .unwrap()
    );
    s.fail_job(&job, WORKER, "failed").await.unwrap();
    c.document("d3", "u1").await;
    c.document("d4", "u1").await;

    let pairs = |list: &[(&str, i64)]| -> Vec<(String, i64)> {
        list.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(
        s.documents_by_status().await.unwrap(),
        pairs(&[("done", 1), ("failed", 1), ("queued", 2)])
    );
    assert_eq!(
        s.pages_by_source().await.unwrap(),
        pairs(&[("ocr", 1), ("text_layer", 2), ("textract", 1)])
    );
    assert_eq!(
        s.document_pages_by_source(&DocumentId::from("d1"))
            .await
            .unwrap(),
        pairs(&[("ocr", 1), ("text_layer", 2)])
    );
    assert!(
        s.document_pages_by_source(&DocumentId::from("d3"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_document_note_is_set_and_cleared(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.document("d1", "u1").await;
    c.document("d2", "u1").await;
    let s = &c.store;
    let note = "read locally: this month's Textract budget is spent";
    s.set_document_note(&DocumentId::from("d1"), Some(note))
        .await
        .unwrap();
    assert_eq!(
        s.get_document(&DocumentId::from("d1"))
            .await
            .unwrap()
            .note
            .as_deref(),
        Some(note)
    );
    assert_eq!(
        s.get_document(&DocumentId::from("d2")).await.unwrap().note,
        None
    );
    s.set_document_note(&DocumentId::from("d1"), None)
        .await
        .unwrap();
    assert_eq!(
        s.get_document(&DocumentId::from("d1")).await.unwrap().note,
        None
    );
}

// ---------------------------------------------------------------------------------------
// Accounts, tokens, sessions, reset links, known devices
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_first_account_adopts_ownerless_documents_and_later_ones_do_not(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let s = &c.store;
    assert_eq!(s.first_user().await.unwrap(), None);
    assert_eq!(s.count_users().await.unwrap(), 0);
    s.create_document(&new_document("d0", None), None)
        .await
        .unwrap();

    let first = s
        .create_user(&new_user("u1", "first@example.com"), true)
        .await
        .unwrap()
        .expect("the first account is stored");
    assert_eq!(
        (first.id.as_str(), first.email.as_str()),
        ("u1", "first@example.com")
    );
    assert_eq!(
        s.get_document(&DocumentId::from("d0"))
            .await
            .unwrap()
            .owner_id,
        Some(UserId::from("u1"))
    );
    assert_eq!(s.first_user().await.unwrap(), Some(first.clone()));

    // Only if first, with an account already there: nothing is stored.
    let second = new_user("u2", "second@example.com");
    assert_eq!(s.create_user(&second, true).await.unwrap(), None);
    assert_eq!(s.count_users().await.unwrap(), 1);
    assert_eq!(s.user_by_email("second@example.com").await.unwrap(), None);

    assert_conflict(
        s.create_user(&new_user("u3", "first@example.com"), false)
            .await,
    );
    assert_eq!(s.count_users().await.unwrap(), 1);

    s.create_document(&new_document("d9", None), None)
        .await
        .unwrap();
    let second = s.create_user(&second, false).await.unwrap().unwrap();
    assert_eq!(second.id, "u2");
    assert_eq!(
        s.get_document(&DocumentId::from("d9"))
            .await
            .unwrap()
            .owner_id,
        None
    );
    assert_eq!(s.count_users().await.unwrap(), 2);
    assert_eq!(s.first_user().await.unwrap(), Some(first));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn two_first_sign_ups_at_once_store_one_account(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let (a, b) = (
        new_user("u1", "a@example.com"),
        new_user("u2", "b@example.com"),
    );
    let (first, second) =
        tokio::join!(c.store.create_user(&a, true), c.store.create_user(&b, true));
    let stored: Vec<User> = [first.unwrap(), second.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(c.store.count_users().await.unwrap(), 1);
    assert_eq!(c.store.first_user().await.unwrap(), Some(stored[0].clone()));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn accounts_are_found_by_email_and_by_id_with_their_credentials(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let user = c.user("u1").await;
    let s = &c.store;
    let by_email = s
        .credentials_by_email("u1@example.com")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(by_email.user, user);
    assert_eq!(by_email.password_hash, "hash-of-u1");
    assert_eq!(by_email.session_epoch, 0);
    let by_id = s
        .credentials_by_id(&UserId::from("u1"))
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (by_id.user, by_id.password_hash, by_id.session_epoch),
        (user.clone(), by_email.password_hash, 0)
    );
    assert!(
        s.credentials_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.credentials_by_id(&UserId::from("missing"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.user_by_email("u1@example.com").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(s.user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(s.user_by_id(&UserId::from("u1")).await.unwrap(), user);
    assert_not_found(s.user_by_id(&UserId::from("missing")).await);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn api_tokens_are_listed_used_and_revoked_per_owner(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let owner = c.user("u1").await;
    c.user("u2").await;
    let s = &c.store;
    let token = |id: &str, user: &str, hash: &str| NewApiToken {
        id: id.into(),
        user_id: user.into(),
        name: format!("token {id}"),
        prefix: format!("lector_{id}"),
        token_hash: hash.into(),
    };
    let t1 = s
        .create_api_token(&token("t1", "u1", "hash-1"))
        .await
        .unwrap();
    assert_eq!(
        (t1.id.as_str(), t1.name.as_str(), t1.prefix.as_str()),
        ("t1", "token t1", "lector_t1")
    );
    assert_eq!(t1.last_used_at, None);
    s.create_api_token(&token("t2", "u1", "hash-2"))
        .await
        .unwrap();
    s.create_api_token(&token("t3", "u2", "hash-3"))
        .await
        .unwrap();
    assert_conflict(s.create_api_token(&token("t4", "u1", "hash-1")).await);

    let listed = |user: &'static str| {
        let user = UserId::from(user);
        async move { s.list_api_tokens(&user).await }
    };
    let listed_ids = |tokens: Vec<lector::domain::ApiToken>| -> Vec<String> {
        tokens.into_iter().map(|t| t.id.to_string()).collect()
    };
    assert_eq!(listed_ids(listed("u1").await.unwrap()), ["t2", "t1"]);

    assert_eq!(s.user_by_token_hash("hash-1").await.unwrap(), Some(owner));
    assert_eq!(s.user_by_token_hash("unknown").await.unwrap(), None);
    let used = listed("u1").await.unwrap();
    assert!(used[1].last_used_at.is_some(), "the use is noted");
    assert!(used[0].last_used_at.is_none());

    assert!(
        !s.revoke_api_token(&UserId::from("u2"), &TokenId::from("t1"))
            .await
            .unwrap(),
        "not theirs"
    );
    assert!(
        s.revoke_api_token(&UserId::from("u1"), &TokenId::from("t1"))
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_api_token(&UserId::from("u1"), &TokenId::from("t1"))
            .await
            .unwrap()
    );
    assert_eq!(s.user_by_token_hash("hash-1").await.unwrap(), None);

    assert_eq!(s.revoke_api_tokens(&UserId::from("u1")).await.unwrap(), 1);
    assert_eq!(s.revoke_api_tokens(&UserId::from("u1")).await.unwrap(), 0);
    assert!(listed("u1").await.unwrap().is_empty());
    assert_eq!(listed_ids(listed("u2").await.unwrap()), ["t3"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn changing_the_password_or_ending_sessions_moves_the_session_epoch_on(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    assert_eq!(
        s.set_password(&UserId::from("u1"), "new-hash")
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.credentials("u1").await, ("new-hash".into(), 1));
    assert_eq!(s.end_sessions(&UserId::from("u1")).await.unwrap(), 2);
    assert_eq!(c.credentials("u1").await, ("new-hash".into(), 2));
    assert_not_found(s.set_password(&UserId::from("missing"), "x").await);
    assert_not_found(s.end_sessions(&UserId::from("missing")).await);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_password_reset_link_works_once_and_not_after_it_expires(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let user = c.user("u1").await;
    let s = &c.store;
    s.remember_device("device-1", &UserId::from("u1"))
        .await
        .unwrap();
    let reset = |id: &str, hash: &str, valid_for| NewPasswordReset {
        id: id.into(),
        user_id: "u1".into(),
        token_hash: hash.into(),
        valid_for,
    };
    s.create_password_reset(&reset("r1", "reset-1", HOUR))
        .await
        .unwrap();
    s.create_password_reset(&reset("r2", "reset-expired", Duration::ZERO))
        .await
        .unwrap();
    assert_conflict(s.create_password_reset(&reset("r3", "reset-1", HOUR)).await);

    assert_eq!(
        s.password_reset_user("reset-1").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(s.password_reset_user("reset-expired").await.unwrap(), None);
    assert_eq!(s.password_reset_user("unknown").await.unwrap(), None);
    assert_eq!(s.reset_password("reset-expired", "x").await.unwrap(), None);
    assert_eq!(s.reset_password("unknown", "x").await.unwrap(), None);
    assert_eq!(c.credentials("u1").await, ("hash-of-u1".into(), 0));

    assert_eq!(
        s.reset_password("reset-1", "new-hash").await.unwrap(),
        Some(user)
    );
    assert_eq!(c.credentials("u1").await, ("new-hash".into(), 1));
    assert_eq!(s.device_user("device-1").await.unwrap(), None, "forgotten");

    assert_eq!(
        s.reset_password("reset-1", "newer").await.unwrap(),
        None,
        "used"
    );
    assert_eq!(s.password_reset_user("reset-1").await.unwrap(), None);
    assert_eq!(c.credentials("u1").await, ("new-hash".into(), 1));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn known_devices_are_remembered_and_forgotten_per_account(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.user("u2").await;
    let s = &c.store;
    assert_eq!(s.device_user("device-1").await.unwrap(), None);
    s.remember_device("device-1", &UserId::from("u1"))
        .await
        .unwrap();
    s.remember_device("device-1", &UserId::from("u1"))
        .await
        .unwrap();
    s.remember_device("device-2", &UserId::from("u1"))
        .await
        .unwrap();
    s.remember_device("device-3", &UserId::from("u2"))
        .await
        .unwrap();
    assert_eq!(
        s.device_user("device-1").await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(
        s.device_user("device-3").await.unwrap().as_deref(),
        Some("u2")
    );

    assert_eq!(s.forget_devices(&UserId::from("u1")).await.unwrap(), 2);
    assert_eq!(s.forget_devices(&UserId::from("u1")).await.unwrap(), 0);
    assert_eq!(s.device_user("device-1").await.unwrap(), None);
    assert_eq!(
        s.device_user("device-3").await.unwrap().as_deref(),
        Some("u2")
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn accounts_are_listed_with_what_they_own_and_deleted_with_it(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    let first = c.user("u1").await;
    let second = c.user("u2").await;
    let s = &c.store;
    c.document("d1", "u1").await;
    c.document("d2", "u1").await;
    s.create_api_token(&NewApiToken {
        id: "t1".into(),
        user_id: "u1".into(),
        name: "script".into(),
        prefix: "lector_abc".into(),
        token_hash: "hash-1".into(),
    })
    .await
    .unwrap();
    s.create_webhook(&new_webhook("w1", "u1", "whsec_1"))
        .await
        .unwrap();
    s.queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    s.remember_device("device-1", &UserId::from("u1"))
        .await
        .unwrap();
    s.create_password_reset(&NewPasswordReset {
        id: "r1".into(),
        user_id: "u1".into(),
        token_hash: "reset-1".into(),
        valid_for: HOUR,
    })
    .await
    .unwrap();

    let summary = |user: &User, documents, tokens, webhooks| UserSummary {
        user: user.clone(),
        documents,
        tokens,
        webhooks,
    };
    assert_eq!(
        s.list_users().await.unwrap(),
        [summary(&first, 2, 1, 1), summary(&second, 0, 0, 0)]
    );

    // Its documents go first (the use case deletes them, then the account).
    s.delete_document(&DocumentId::from("d1")).await.unwrap();
    s.delete_document(&DocumentId::from("d2")).await.unwrap();
    assert!(s.delete_user(&UserId::from("u1")).await.unwrap());
    assert!(!s.delete_user(&UserId::from("u1")).await.unwrap());
    assert!(!s.delete_user(&UserId::from("missing")).await.unwrap());
    assert_eq!(s.list_users().await.unwrap(), [summary(&second, 0, 0, 0)]);
    assert_not_found(s.user_by_id(&UserId::from("u1")).await);
    for table in [
        "api_tokens",
        "webhooks",
        "webhook_deliveries",
        "known_devices",
        "password_resets",
    ] {
        assert_eq!(c.db.count(table).await, 0, "{table}");
    }
}

// ---------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------

/// Owner u1: d1 (pages 1 and 3 match "zebra"), d2 (hybrid), d3 (no match), d5 (still
/// processing, the newest); owner u2: d4.
async fn library(c: &Contract) {
    c.user("u1").await;
    c.user("u2").await;
    let d1 = &["zebra zebra zebra", "nothing to see", "one zebra more"];
    c.extracted(new_document("d1", Some("u1")), d1, true).await;
    let hybrid = NewDocument {
        engine: Engine::Hybrid,
        ..new_document("d2", Some("u1"))
    };
    let d2 = &["a zebra among many other animals grazing quietly"];
    c.extracted(hybrid, d2, true).await;
    let d3 = &["only a giraffe"];
    c.extracted(new_document("d3", Some("u1")), d3, true).await;
    c.extracted(new_document("d4", Some("u2")), &["zebra"], true)
        .await;
    let d5 = &["zebra crossing ahead"];
    c.extracted(new_document("d5", Some("u1")), d5, false).await;
}

/// A search as the tests vary it; `find` gives the defaults.
struct Find<'a> {
    owner: &'a str,
    text: &'a str,
    filters: SearchFilters,
    sort: SearchSort,
    limit: i64,
    offset: i64,
    max_scored_pages: i64,
}

fn find<'a>(owner: &'a str, text: &'a str) -> Find<'a> {
    Find {
        owner,
        text,
        filters: SearchFilters::default(),
        sort: SearchSort::Relevance,
        limit: 10,
        offset: 0,
        max_scored_pages: 100,
    }
}

impl Find<'_> {
    async fn run(&self, store: &dyn Store) -> DocumentMatches {
        let query = SearchQuery::parse(self.text).unwrap();
        store
            .search_documents(&SearchRequest {
                owner_id: self.owner,
                query: &query,
                filters: &self.filters,
                sort: self.sort,
                limit: self.limit,
                offset: self.offset,
                max_scored_pages: self.max_scored_pages,
            })
            .await
            .unwrap()
    }

    /// The ids found, in order, with the total and whether it is complete.
    async fn ids(&self, store: &dyn Store) -> (Vec<String>, i64, bool) {
        let found = self.run(store).await;
        let ids = found.documents.into_iter().map(|d| d.document_id).collect();
        (ids, found.total, found.complete)
    }
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn search_finds_the_owners_matching_documents_with_filters_order_and_paging(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    library(&c).await;
    let s = c.store.as_ref();

    let found = find("u1", "zebra").run(s).await;
    assert_eq!((found.total, found.complete), (3, true));
    assert_eq!(found.documents[0].document_id, "d1", "the best match first");
    let mut by_id: Vec<(String, i64)> = found
        .documents
        .iter()
        .map(|d| (d.document_id.clone(), d.matching_pages))
        .collect();
    by_id.sort();
    assert_eq!(
        by_id,
        [("d1".into(), 2), ("d2".into(), 1), ("d5".into(), 1)]
    );
    assert!(found.documents.iter().all(|d| d.score > 0.0), "{found:?}");

    let newest = Find {
        sort: SearchSort::Newest,
        ..find("u1", "zebra")
    };
    assert_eq!(newest.ids(s).await, (strings(&["d5", "d2", "d1"]), 3, true));
    let second_page = Find {
        limit: 1,
        offset: 1,
        ..newest
    };
    assert_eq!(second_page.ids(s).await, (strings(&["d2"]), 3, true));
    let newest_page_only = Find {
        max_scored_pages: 1,
        sort: SearchSort::Newest,
        ..find("u1", "zebra")
    };
    assert_eq!(
        newest_page_only.ids(s).await,
        (strings(&["d5"]), 1, false),
        "only the newest matching page was scored"
    );

    let filtered = |filters: SearchFilters| Find {
        filters,
        sort: SearchSort::Newest,
        ..find("u1", "zebra")
    };
    let done = SearchFilters {
        status: Some(DocumentStatus::Done),
        ..Default::default()
    };
    assert_eq!(
        filtered(done).ids(s).await,
        (strings(&["d2", "d1"]), 2, true)
    );
    let hybrid = SearchFilters {
        engine: Some(Engine::Hybrid),
        ..Default::default()
    };
    assert_eq!(filtered(hybrid).ids(s).await, (strings(&["d2"]), 1, true));
    let yesterday = Utc::now() - TimeDelta::days(1);
    let since = SearchFilters {
        uploaded_from: Some(yesterday),
        ..Default::default()
    };
    assert_eq!(filtered(since).ids(s).await.1, 3);
    let until = SearchFilters {
        uploaded_before: Some(yesterday),
        ..Default::default()
    };
    assert_eq!(filtered(until).ids(s).await, (vec![], 0, true));

    let newest_of = |owner, text| Find {
        sort: SearchSort::Newest,
        ..find(owner, text)
    };
    assert_eq!(newest_of("u2", "zebra").ids(s).await.0, ["d4"]);
    assert_eq!(newest_of("u1", "giraffe").ids(s).await.0, ["d3"]);
    assert_eq!(newest_of("u1", "zebra -giraffe").ids(s).await.1, 3);
    assert_eq!(newest_of("u1", "zebra giraffe").ids(s).await.1, 0);
    assert_eq!(
        newest_of("u1", "zebra or giraffe").ids(s).await.0,
        ["d5", "d3", "d2", "d1"]
    );
    assert_eq!(newest_of("u1", "\"zebra crossing\"").ids(s).await.0, ["d5"]);
    assert_eq!(newest_of("u1", "okapi").ids(s).await, (vec![], 0, true));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn best_pages_and_highlights_mark_every_hit(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    library(&c).await;
    let s = &c.store;
    let zebra = SearchQuery::parse("zebra").unwrap();
    let hits = |h: &lector::domain::search::Highlighted| -> Vec<String> {
        h.0.iter()
            .filter(|f| f.hit)
            .map(|f| f.text.to_lowercase())
            .collect()
    };

    let wanted = strings(&["d1", "d2", "d3"]);
    let best = s.best_pages(&zebra, &wanted, 1).await.unwrap();
    let places: Vec<(&str, i32)> = best
        .iter()
        .map(|p| (p.document_id.as_str(), p.page_number))
        .collect();
    assert_eq!(places, [("d1", 1), ("d2", 1)]);
    assert_eq!(best[0].snippet.plain(), "zebra zebra zebra");
    assert_eq!(hits(&best[0].snippet), ["zebra"; 3]);
    assert_eq!(hits(&best[1].snippet), ["zebra"]);
    assert!(best.iter().all(|p| p.score > 0.0));

    let two = s.best_pages(&zebra, &strings(&["d1"]), 2).await.unwrap();
    let numbers: Vec<i32> = two.iter().map(|p| p.page_number).collect();
    assert_eq!(numbers, [1, 3], "best first");
    assert!(s.best_pages(&zebra, &[], 3).await.unwrap().is_empty());

    let marked = s.highlight_pages("d1", &zebra).await.unwrap();
    let numbers: Vec<i32> = marked.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(marked[1].1.plain(), "one zebra more");
    assert_eq!(hits(&marked[0].1), ["zebra"; 3]);
    assert_eq!(hits(&marked[1].1), ["zebra"]);
    assert!(s.highlight_pages("d3", &zebra).await.unwrap().is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn phrase_search_answers_the_same_with_and_without_the_phrase_index(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    library(&c).await;
    let s = c.store.as_ref();
    let phrases = || async {
        (
            find("u1", "\"zebra crossing\"").ids(s).await.0,
            find("u1", "\"crossing zebra\"").ids(s).await.0,
        )
    };
    let expected = (strings(&["d5"]), vec![]);
    assert_eq!(phrases().await, expected);
    s.index_phrases(true).await.unwrap();
    s.index_phrases(true).await.unwrap();
    assert_eq!(phrases().await, expected);
    s.index_phrases(false).await.unwrap();
    assert_eq!(phrases().await, expected);
}

// ---------------------------------------------------------------------------------------
// Webhooks and their deliveries
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn webhooks_are_kept_per_owner_and_deleted_with_their_deliveries(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.user("u2").await;
    let s = &c.store;
    let w1 = s
        .create_webhook(&new_webhook("w1", "u1", "whsec_1"))
        .await
        .unwrap();
    assert_eq!((w1.id.as_str(), w1.owner_id.as_str()), ("w1", "u1"));
    assert_eq!(
        (w1.url.as_str(), w1.description.as_str()),
        ("https://example.com/hooks/w1", "the w1 hook")
    );
    let w2 = s
        .create_webhook(&new_webhook("w2", "u1", "whsec_2"))
        .await
        .unwrap();
    s.create_webhook(&new_webhook("w3", "u2", "whsec_3"))
        .await
        .unwrap();
    assert_conflict(s.create_webhook(&new_webhook("w1", "u2", "whsec_4")).await);

    assert_eq!(
        s.list_webhooks(&UserId::from("u1")).await.unwrap(),
        [w1.clone(), w2.clone()]
    );
    let of = |owner: &'static str| {
        let owner = UserId::from(owner);
        async move { s.list_webhooks(&owner).await }
    };
    let names = |hooks: Vec<Webhook>| -> Vec<String> {
        hooks.into_iter().map(|w| w.id.to_string()).collect()
    };
    assert_eq!(names(of("u2").await.unwrap()), ["w3"]);
    assert!(of("nobody").await.unwrap().is_empty());
    assert_eq!(
        s.webhook(&UserId::from("u1"), &WebhookId::from("w1"))
            .await
            .unwrap(),
        w1
    );
    assert_not_found(s.webhook(&UserId::from("u2"), &WebhookId::from("w1")).await);
    assert_not_found(
        s.webhook(&UserId::from("u1"), &WebhookId::from("missing"))
            .await,
    );

    s.queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    assert!(
        !s.delete_webhook(&UserId::from("u2"), &WebhookId::from("w1"))
            .await
            .unwrap(),
        "not theirs"
    );
    assert!(
        s.delete_webhook(&UserId::from("u1"), &WebhookId::from("w1"))
            .await
            .unwrap()
    );
    assert!(
        !s.delete_webhook(&UserId::from("u1"), &WebhookId::from("w1"))
            .await
            .unwrap()
    );
    assert_eq!(s.list_webhooks(&UserId::from("u1")).await.unwrap(), [w2]);
    assert!(
        s.list_deliveries(&WebhookId::from("w1"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.db.count("webhook_deliveries").await, 0);
}

fn delivered() -> AttemptOutcome {
    AttemptOutcome {
        duration: Duration::from_millis(120),
        status_code: Some(200),
        error: None,
        response_excerpt: Some("ok".into()),
        retry_after: None,
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_ping_is_claimed_once_delivered_and_logged(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    let hook = s
        .create_webhook(&new_webhook("w1", "u1", "whsec_signing"))
        .await
        .unwrap();
    assert!(s.claim_delivery("s1", LEASE).await.unwrap().is_none());

    let id = s
        .queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    let queued = s.list_deliveries(&WebhookId::from("w1"), 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let d = &queued[0];
    assert_eq!(
        (d.id, d.webhook_id.as_str(), d.event_id.as_str()),
        (id, "w1", "event-1")
    );
    assert_eq!(
        (d.event, d.status, d.attempts),
        (WebhookEvent::Ping, DeliveryStatus::Queued, 0)
    );
    assert_eq!(
        (&d.document, d.last_status_code, &d.last_error),
        (&None, None, &None)
    );
    assert!(d.finished_at.is_none() && d.log.is_empty());

    let claimed = s.claim_delivery("s1", LEASE).await.unwrap().expect("due");
    assert_eq!(claimed.delivery.id, id);
    assert_eq!(
        (claimed.delivery.status, claimed.delivery.attempts),
        (DeliveryStatus::Sending, 1)
    );
    assert_eq!(claimed.webhook, hook);
    assert_eq!(claimed.secret.expose_secret(), "whsec_signing");
    assert!(
        s.claim_delivery("s2", LEASE).await.unwrap().is_none(),
        "held"
    );

    assert!(
        !s.record_attempt(&claimed, "s2", &delivered())
            .await
            .unwrap()
    );
    assert!(
        s.record_attempt(&claimed, "s1", &delivered())
            .await
            .unwrap()
    );
    assert!(
        !s.record_attempt(&claimed, "s1", &delivered())
            .await
            .unwrap(),
        "once"
    );
    let d = s
        .list_deliveries(&WebhookId::from("w1"), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 1));
    assert_eq!((d.last_status_code, d.last_error), (Some(200), None));
    assert!(d.finished_at.is_some());
    assert_eq!(d.log.len(), 1);
    let logged = &d.log[0];
    assert_eq!(
        logged,
        &DeliveryAttempt {
            started_at: logged.started_at,
            attempt: 1,
            duration_ms: 120,
            status_code: Some(200),
            error: None,
            response_excerpt: Some("ok".into()),
        }
    );
    assert!(s.claim_delivery("s1", LEASE).await.unwrap().is_none());

    // Newest first, at most `limit`.
    s.queue_ping(&WebhookId::from("w1"), "event-2")
        .await
        .unwrap();
    s.queue_ping(&WebhookId::from("w1"), "event-3")
        .await
        .unwrap();
    let newest: Vec<String> = s
        .list_deliveries(&WebhookId::from("w1"), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(newest, ["event-3", "event-2"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_failed_delivery_is_retried_or_given_up_and_an_expired_lease_is_taken_over(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    s.create_webhook(&new_webhook("w1", "u1", "whsec_1"))
        .await
        .unwrap();
    s.queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    let busy = AttemptOutcome {
        duration: Duration::from_millis(50),
        status_code: Some(503),
        error: Some("the receiver answered 503".into()),
        response_excerpt: Some("busy".into()),
        retry_after: Some(Duration::ZERO),
    };

    let first = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    assert!(s.record_attempt(&first, "s1", &busy).await.unwrap());
    let d = s
        .list_deliveries(&WebhookId::from("w1"), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Queued, 1));
    assert_eq!(d.last_status_code, Some(503));
    assert_eq!(d.last_error.as_deref(), Some("the receiver answered 503"));
    assert!(d.finished_at.is_none());

    let second = s.claim_delivery("s2", LEASE).await.unwrap().unwrap();
    assert_eq!(second.delivery.attempts, 2);
    // The second sender died: its lease is in the past and a third takes over.
    c.set_long_ago("webhook_deliveries", "locked_until").await;
    let third = s.claim_delivery("s3", LEASE).await.unwrap().unwrap();
    assert_eq!(
        (third.delivery.id, third.delivery.attempts),
        (second.delivery.id, 3)
    );
    assert!(!s.record_attempt(&second, "s2", &busy).await.unwrap());
    let refused = AttemptOutcome {
        duration: Duration::from_millis(3),
        status_code: None,
        error: Some("connection refused".into()),
        response_excerpt: None,
        retry_after: None,
    };
    assert!(s.record_attempt(&third, "s3", &refused).await.unwrap());
    let d = s
        .list_deliveries(&WebhookId::from("w1"), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 3));
    assert_eq!(
        (d.last_status_code, d.last_error.as_deref()),
        (None, Some("connection refused"))
    );
    assert!(d.finished_at.is_some());
    let attempts: Vec<i32> = d.log.iter().map(|a| a.attempt).collect();
    assert_eq!(
        attempts,
        [1, 3],
        "the dead sender's attempt was never logged"
    );
    assert!(s.claim_delivery("s1", LEASE).await.unwrap().is_none());

    // A retry far off is not due.
    s.queue_ping(&WebhookId::from("w1"), "event-2")
        .await
        .unwrap();
    let later = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    let in_an_hour = AttemptOutcome {
        retry_after: Some(HOUR),
        ..busy
    };
    assert!(s.record_attempt(&later, "s1", &in_an_hour).await.unwrap());
    assert!(s.claim_delivery("s1", LEASE).await.unwrap().is_none());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn finished_deliveries_are_pruned_once_old_enough(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    s.create_webhook(&new_webhook("w1", "u1", "whsec_1"))
        .await
        .unwrap();
    s.queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    let claimed = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    assert!(
        s.record_attempt(&claimed, "s1", &delivered())
            .await
            .unwrap()
    );
    s.queue_ping(&WebhookId::from("w1"), "event-2")
        .await
        .unwrap();
    let claimed = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    let given_up = AttemptOutcome {
        error: Some("gone".into()),
        status_code: Some(410),
        ..delivered()
    };
    assert!(s.record_attempt(&claimed, "s1", &given_up).await.unwrap());
    s.queue_ping(&WebhookId::from("w1"), "event-3")
        .await
        .unwrap();

    assert_eq!(s.prune_deliveries(HOUR).await.unwrap(), 0, "all recent");
    c.set_long_ago("webhook_deliveries", "finished_at").await;
    assert_eq!(s.prune_deliveries(HOUR).await.unwrap(), 2);
    assert_eq!(s.prune_deliveries(HOUR).await.unwrap(), 0);
    let left: Vec<String> = s
        .list_deliveries(&WebhookId::from("w1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(left, ["event-3"], "the queued one stays");
    assert_eq!(c.db.count("webhook_attempts").await, 0);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn finishing_a_job_queues_one_event_for_each_of_the_owners_webhooks(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    c.user("u2").await;
    let s = &c.store;
    for (id, owner) in [("w1", "u1"), ("w2", "u1"), ("w3", "u2")] {
        s.create_webhook(&new_webhook(id, owner, "whsec_x"))
            .await
            .unwrap();
    }
    let job = c
        .extracted(new_document("d1", Some("u1")), &["one"], false)
        .await;
    let unreadable = NewPage {
        error: Some("unreadable".into()),
        ..page(2, "")
    };
    assert!(s.insert_pages(&job, WORKER, &[unreadable]).await.unwrap());
    assert!(s.complete_job(&job, WORKER).await.unwrap());

    let of = |hook: &'static str| {
        let hook = WebhookId::from(hook);
        async move { s.list_deliveries(&hook, 10).await }
    };
    let w1 = of("w1").await.unwrap();
    let w2 = of("w2").await.unwrap();
    assert_eq!((w1.len(), w2.len()), (1, 1));
    assert!(of("w3").await.unwrap().is_empty(), "another owner's");
    let done = &w1[0];
    assert_eq!(
        (done.event, done.status, done.attempts),
        (WebhookEvent::DocumentDone, DeliveryStatus::Queued, 0)
    );
    assert_eq!(
        done.document,
        Some(DocumentSnapshot {
            id: "d1".into(),
            file_name: "d1.pdf".into(),
            status: "done".into(),
            page_count: 3,
            pages_done: 2,
            pages_failed: 1,
            error: None,
        })
    );
    assert_eq!(
        w2[0].event_id, done.event_id,
        "one event, one delivery per webhook"
    );

    c.document("d2", "u1").await;
    let job = c.claim(WORKER).await;
    s.fail_job(&job, WORKER, "the file is damaged")
        .await
        .unwrap();
    let failed = of("w1").await.unwrap().remove(0);
    assert_eq!(failed.event, WebhookEvent::DocumentFailed);
    let snapshot = failed.document.expect("about the document");
    assert_eq!(
        (snapshot.id.as_str(), snapshot.status.as_str()),
        ("d2", "failed")
    );
    assert_eq!(snapshot.error.as_deref(), Some("the file is damaged"));

    // No event for a job that was not finished by its worker, nor for a retry.
    c.document("d3", "u1").await;
    let job = c.claim(WORKER).await;
    assert!(!s.complete_job(&job, INTRUDER).await.unwrap());
    s.retry_job(&job, WORKER, "later", HOUR).await.unwrap();
    assert_eq!(of("w1").await.unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Sealed secrets
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn secrets_are_stored_sealed_for_their_row_and_opened_on_the_way_out(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    let locked = NewDocument {
        pdf_password: Some("open sesame".to_owned().into()),
        ..new_document("d1", Some("u1"))
    };
    s.create_document(&locked, None).await.unwrap();
    c.document("d2", "u1").await;
    let raw =
        c.db.query_text("select pdf_password from documents where id = 'd1'")
            .await
            .unwrap();
    assert!(
        raw.starts_with("sealed1:") && !raw.contains("open sesame"),
        "{raw}"
    );
    let password = s
        .document_password(&DocumentId::from("d1"))
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(password.expose_secret(), "open sesame");
    assert!(
        s.document_password(&DocumentId::from("d2"))
            .await
            .unwrap()
            .is_none()
    );

    s.create_webhook(&new_webhook("w1", "u1", "whsec_signing"))
        .await
        .unwrap();
    let raw =
        c.db.query_text("select secret from webhooks where id = 'w1'")
            .await
            .unwrap();
    assert!(
        raw.starts_with("sealed1:") && !raw.contains("whsec_signing"),
        "{raw}"
    );
    s.queue_ping(&WebhookId::from("w1"), "event-1")
        .await
        .unwrap();
    let claimed = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.secret.expose_secret(), "whsec_signing");

    // A sealed value moved to another row does not open there.
    c.db.execute(
        "update documents set pdf_password = (select pdf_password from documents where id = 'd1') \
         where id = 'd2'",
    )
    .await;
    assert_other(s.document_password(&DocumentId::from("d2")).await);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn secrets_left_in_the_clear_or_under_a_previous_key_are_sealed_once(
    #[case] backend: Backend,
) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let s = &c.store;
    c.document("d1", "u1").await;
    let locked = NewDocument {
        pdf_password: Some("sealed already".to_owned().into()),
        ..new_document("d2", Some("u1"))
    };
    s.create_document(&locked, None).await.unwrap();
    // What a Lector that did not seal left behind.
    c.db.execute("update documents set pdf_password = 'left in the clear' where id = 'd1'")
        .await;
    c.db.execute(
        "insert into webhooks (id, owner_id, url, description, secret) \
         values ('w-old', 'u1', 'https://example.com/old', '', 'whsec_clear')",
    )
    .await;

    assert_eq!(s.seal_stored_secrets().await.unwrap(), 2);
    assert_eq!(s.seal_stored_secrets().await.unwrap(), 0, "once");
    for sql in [
        "select pdf_password from documents where id = 'd1'",
        "select secret from webhooks where id = 'w-old'",
    ] {
        let raw = c.db.query_text(sql).await.unwrap();
        assert!(raw.starts_with("sealed1:"), "{sql}: {raw}");
    }
    let opened = s
        .document_password(&DocumentId::from("d1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.expose_secret(), "left in the clear");
    s.queue_ping(&WebhookId::from("w-old"), "event-1")
        .await
        .unwrap();
    let claimed = s.claim_delivery("s1", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.secret.expose_secret(), "whsec_clear");

    // A new key, the old one as previous: everything is sealed again under the new one.
    let old_key = match backend {
        Backend::Sqlite => {
            let db = std::path::PathBuf::from(c.db.url.trim_start_matches("sqlite://"));
            std::fs::read_to_string(db.with_file_name("lector-secret.key")).unwrap()
        }
        Backend::Postgres => crate::harness::TEST_SECRET_KEY.to_owned(),
    };
    let new_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let rotated = crate::harness::test_config(
        &c.db.url,
        &[
            ("LECTOR_SECRET_KEY", new_key),
            ("LECTOR_SECRET_KEY_PREVIOUS", old_key.trim()),
        ],
    );
    let rotated = lector::startup::connect(&rotated).await.unwrap().store;
    assert_eq!(rotated.seal_stored_secrets().await.unwrap(), 3);
    assert_eq!(rotated.seal_stored_secrets().await.unwrap(), 0);
    let opened = rotated
        .document_password(&DocumentId::from("d2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opened.expose_secret(), "sealed already");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_store_without_a_key_refuses_to_seal_or_open_secrets(#[case] backend: Backend) {
    let Some(c) = Contract::new(backend).await else {
        return;
    };
    c.user("u1").await;
    let locked = NewDocument {
        pdf_password: Some("open sesame".to_owned().into()),
        ..new_document("d1", Some("u1"))
    };
    c.store.create_document(&locked, None).await.unwrap();

    let keyless = lector::storage::connect(&c.db.url.clone().into(), 2)
        .await
        .unwrap();
    assert_other(keyless.seal_stored_secrets().await);
    assert_other(keyless.document_password(&DocumentId::from("d1")).await);
    let another = NewDocument {
        pdf_password: Some("open sesame".to_owned().into()),
        ..new_document("d2", Some("u1"))
    };
    assert_other(keyless.create_document(&another, None).await);
    assert_not_found(keyless.get_document(&DocumentId::from("d2")).await);
    assert_other(
        keyless
            .create_webhook(&new_webhook("w1", "u1", "whsec_1"))
            .await,
    );
    assert!(
        keyless
            .list_webhooks(&UserId::from("u1"))
            .await
            .unwrap()
            .is_empty()
    );
    // Without a secret to keep, no key is needed.
    keyless
        .create_document(&new_document("d3", Some("u1")), None)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn migrations_are_applied_once_and_a_missing_one_is_reported(#[case] backend: Backend) {
    let Some(db) = TestDatabase::new(backend).await else {
        return;
    };
    let store = lector::storage::connect(&db.url.clone().into(), 2)
        .await
        .unwrap();
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(store.backend(), name);
    store.ping().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    db.execute(
        "delete from _sqlx_migrations where version = (select max(version) from _sqlx_migrations)",
    )
    .await;
    assert_eq!(store.pending_migrations().await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------
// Nothing forgotten
// ---------------------------------------------------------------------------------------

/// The storage traits and the files that define them. `Store`'s super-traits must all be
/// here: a trait split off (or added) must be added to this list, and its methods to the
/// tests above.
const TRAITS: [(&str, &str, &str); 12] = [
    (
        "Store",
        "src/storage/mod.rs",
        include_str!("../../src/storage/mod.rs"),
    ),
    (
        "DocumentStore",
        "src/storage/documents.rs",
        include_str!("../../src/storage/documents.rs"),
    ),
    (
        "PageStore",
        "src/storage/pages.rs",
        include_str!("../../src/storage/pages.rs"),
    ),
    (
        "OriginalStore",
        "src/storage/originals.rs",
        include_str!("../../src/storage/originals.rs"),
    ),
    (
        "QueueStore",
        "src/storage/queue.rs",
        include_str!("../../src/storage/queue.rs"),
    ),
    (
        "TextractStore",
        "src/storage/textract.rs",
        include_str!("../../src/storage/textract.rs"),
    ),
    (
        "StatsStore",
        "src/storage/stats.rs",
        include_str!("../../src/storage/stats.rs"),
    ),
    (
        "AccountStore",
        "src/storage/accounts.rs",
        include_str!("../../src/storage/accounts.rs"),
    ),
    (
        "TokenStore",
        "src/storage/tokens.rs",
        include_str!("../../src/storage/tokens.rs"),
    ),
    (
        "SearchStore",
        "src/storage/search/mod.rs",
        include_str!("../../src/storage/search/mod.rs"),
    ),
    (
        "WebhookStore",
        "src/storage/webhooks.rs",
        include_str!("../../src/storage/webhooks.rs"),
    ),
    (
        "DeliveryStore",
        "src/storage/deliveries.rs",
        include_str!("../../src/storage/deliveries.rs"),
    ),
];

/// Where `pub trait <name>` starts in `source`.
fn trait_start(source: &str, name: &str) -> Option<usize> {
    let needle = format!("pub trait {name}");
    source.match_indices(&needle).map(|(at, _)| at).find(|at| {
        let next = source[at + needle.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The header (`pub trait X: A + B`) and body of trait `name`, up to its closing brace at
/// the start of a line.
fn trait_text<'a>(source: &'a str, name: &str, file: &str) -> (&'a str, &'a str) {
    let start =
        trait_start(source, name).unwrap_or_else(|| panic!("no `pub trait {name}` in {file}"));
    let text = &source[start..];
    let open = text.find('{').expect("the trait has a body");
    let close = text
        .find("\n}")
        .unwrap_or_else(|| panic!("the end of {name} in {file}"));
    (&text[..open], &text[open..close])
}

/// The names of the methods a trait declares (`fn` and `async fn`, with or without a body).
fn declared_methods(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("async fn ")
                .or_else(|| line.strip_prefix("fn "))?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some(name)
        })
        .collect()
}

/// The traits `header` (`pub trait X: A + b::B + Send`) names as super-traits, other than
/// the marker traits.
fn supertraits(header: &str) -> Vec<&str> {
    header
        .split_once(':')
        .map_or("", |(_, bounds)| bounds)
        .split('+')
        .map(|bound| bound.trim().rsplit("::").next().unwrap_or_default())
        .filter(|bound| !["Send", "Sync", "'static", ""].contains(bound))
        .collect()
}

#[test]
fn every_storage_trait_method_is_called_by_this_contract() {
    let this_file = include_str!("storage_contract.rs");
    let known: Vec<&str> = TRAITS.iter().map(|(name, _, _)| *name).collect();
    let mut uncovered = Vec::new();
    let mut total = 0;
    for (name, file, source) in TRAITS {
        let (header, body) = trait_text(source, name, file);
        let unread: Vec<&str> = supertraits(header)
            .into_iter()
            .filter(|t| !known.contains(t))
            .collect();
        assert!(
            unread.is_empty(),
            "{name} has super-traits this contract does not read: {unread:?} (add them to TRAITS)"
        );
        let methods = declared_methods(body);
        assert!(!methods.is_empty(), "no methods read from {name} in {file}");
        assert_eq!(
            methods.len(),
            body.matches("fn ").count(),
            "a method of {name} in {file} was not read: {methods:?}"
        );
        total += methods.len();
        for method in methods {
            if !this_file.contains(&format!(".{method}(")) {
                uncovered.push(format!("{name}::{method}"));
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "trait methods no test here calls: {uncovered:?}"
    );
    eprintln!("{total} trait methods, all called here");
}

// Every method of the storage traits is called above (79 in all, two with default bodies:
// `SearchStore::index_phrases`, `StatsStore::queue_age_seconds`); none is left uncovered.
// Deliberately not pinned, because the traits leave them open or the backends may differ
// without either being wrong:
// - search scores: only "higher is better" is promised, and Postgres (`ts_rank_cd`) and
//   SQLite (`bm25`) score differently, so only `score > 0` and the order of a clearly better
//   match are asserted;
// - what `index_phrases` builds: a no-op on SQLite, an index on Postgres; the contract is that
//   answers do not change;
// - `set_document_note` on a missing document, `delete_user` while the account still owns
//   documents, `create_document` with an original that cannot be read: unspecified.
// `end_sessions` on a missing account is asserted to be `NotFound` like `set_password`: the
// trait does not say so, but both backends do it today.
