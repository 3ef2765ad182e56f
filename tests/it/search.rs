//! Full-text search, against the real app on SQLite (FTS5) and on Postgres (tsvector): the
//! same queries must find the same pages on both. Documents are real PDFs made in the test,
//! extracted by the real engine.

use lector::domain::DocumentId;
use std::{collections::BTreeMap, time::Duration};

use crate::harness::{self, Backend, TestApp, aws::text_pdf, eventually_every};
use rstest::rstest;
use serde_json::Value;

/// The documents every test searches, uploaded in this order.
fn library() -> Vec<(&'static str, Vec<Vec<String>>)> {
    let page = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    vec![
        (
            "invoices.pdf",
            vec![
                page(&[
                    "Invoice 1042 for consulting services",
                    "Payment is due within thirty days.",
                ]),
                page(&["The invoices were paid by bank transfer."]),
                page(&["Nothing relevant here, only weather reports."]),
            ],
        ),
        (
            "animals.pdf",
            vec![
                page(&["The quick brown fox jumps over the lazy dog."]),
                page(&["Cats and dogs were running in the garden."]),
                page(&["A draft invoice for the veterinary clinic."]),
            ],
        ),
        (
            "hostile.pdf",
            vec![page(&[
                "<script>alert(1)</script> pelican & <b>bold</b> \"quoted\"",
            ])],
        ),
        (
            "airships.pdf",
            vec![page(&[
                "zeppelin zeppelin zeppelin",
                "the zeppelin is an airship; zeppelin flights",
            ])],
        ),
        (
            "travel.pdf",
            vec![page(&[
                "A long account of a journey by train, by boat and on foot,",
                "through mountains, valleys, rivers and cities, with one",
                "zeppelin seen far away above the harbour at dusk.",
            ])],
        ),
    ]
}

/// Uploads and extracts the library; returns file name -> document id.
async fn seed(app: &TestApp) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    for (name, pages) in library() {
        let response = app.upload_bytes(text_pdf(&pages), name, None).await;
        assert_eq!(response.status(), 202, "uploading {name}");
        let body: Value = response.json().await.unwrap();
        ids.insert(name, body["id"].as_str().unwrap().to_owned());
        // Distinct upload instants, so that "newest first" has one answer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.drain_jobs().await;
    for id in ids.values() {
        assert_eq!(app.document(id).await["status"], "done");
    }
    ids
}

/// The file names of a search answer's documents, in its order.
fn file_names(body: &Value) -> Vec<&str> {
    body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["document"]["file_name"].as_str().unwrap())
        .collect()
}

async fn search(app: &TestApp, query: &[(&str, &str)]) -> (u16, Value) {
    let path = format!(
        "/api/v1/search?{}",
        serde_urlencoded::to_string(query).unwrap()
    );
    app.get_json(&path).await
}

/// file name -> matching page numbers (of the best hits, sorted), for a successful search.
async fn found(app: &TestApp, q: &str) -> BTreeMap<String, Vec<i64>> {
    let (status, body) = search(app, &[("q", q)]).await;
    assert_eq!(status, 200, "searching {q:?}: {body}");
    body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| {
            let mut pages: Vec<i64> = doc["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|hit| hit["page"].as_i64().unwrap())
                .collect();
            pages.sort_unstable();
            (
                doc["document"]["file_name"].as_str().unwrap().to_owned(),
                pages,
            )
        })
        .collect()
}

/// What a query should find: file name and page numbers.
type Expected<'a> = &'a [(&'a str, &'a [i64])];

fn expect(pairs: Expected) -> BTreeMap<String, Vec<i64>> {
    pairs
        .iter()
        .map(|(name, pages)| ((*name).to_owned(), pages.to_vec()))
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn both_backends_answer_the_query_language_the_same_way(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    seed(&app).await;
    let cases: &[(&str, Expected)] = &[
        // Words are stemmed (invoices, dogs) and case does not matter.
        (
            "invoice",
            &[("invoices.pdf", &[1, 2]), ("animals.pdf", &[3])],
        ),
        (
            "INVOICES",
            &[("invoices.pdf", &[1, 2]), ("animals.pdf", &[3])],
        ),
        ("dog", &[("animals.pdf", &[1, 2])]),
        // Every word must be on the same page.
        ("invoice paid", &[("invoices.pdf", &[2])]),
        ("invoice cat", &[]),
        // Exclusions leave out the pages that contain the word.
        ("invoice -draft", &[("invoices.pdf", &[1, 2])]),
        // Phrases keep their order.
        ("\"bank transfer\"", &[("invoices.pdf", &[2])]),
        ("\"transfer bank\"", &[]),
        ("\"the lazy dog\"", &[("animals.pdf", &[1])]),
        // or between alternatives, and it binds tighter than the words around it.
        ("fox or cat", &[("animals.pdf", &[1, 2])]),
        ("garden or weather running", &[("animals.pdf", &[2])]),
        // Common words alone match nothing; punctuation is only punctuation.
        ("the", &[]),
        ("pelican!", &[("hostile.pdf", &[1])]),
        ("alert(1)", &[("hostile.pdf", &[1])]),
        ("1042", &[("invoices.pdf", &[1])]),
        // FTS5's own syntax typed by a user is text, not an error.
        ("NEAR(fox dog)", &[]),
        ("fox*", &[("animals.pdf", &[1])]),
        ("absent", &[]),
    ];
    for (q, expected) in cases {
        assert_eq!(found(&app, q).await, expect(expected), "query {q:?}");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn results_are_ranked_by_relevance_or_date_and_paginated(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    seed(&app).await;

    // The page that says zeppelin five times ranks above the one that mentions it once.
    let (_, body) = search(&app, &[("q", "zeppelin")]).await;
    let names = file_names(&body);
    assert_eq!(names, ["airships.pdf", "travel.pdf"], "{body}");
    let scores: Vec<f64> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] > scores[1], "{scores:?}");
    assert_eq!(body["total_documents"], 2);
    assert_eq!(body["next_page"], Value::Null);

    // Newest first instead.
    let (_, body) = search(&app, &[("q", "zeppelin"), ("sort", "date")]).await;
    assert_eq!(body["documents"][0]["document"]["file_name"], "travel.pdf");

    // One document per page of results.
    let (_, first) = search(&app, &[("q", "zeppelin"), ("per_page", "1")]).await;
    assert_eq!(first["documents"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["documents"][0]["document"]["file_name"],
        "airships.pdf"
    );
    assert_eq!(
        (
            first["total_documents"].as_i64(),
            first["next_page"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let (_, second) = search(&app, &[("q", "zeppelin"), ("per_page", "1"), ("page", "2")]).await;
    assert_eq!(
        second["documents"][0]["document"]["file_name"],
        "travel.pdf"
    );
    assert_eq!(second["next_page"], Value::Null);
}

/// Grouped: one entry per document, with how many of its pages match and a link to each.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn results_are_grouped_per_document_with_a_link_to_each_matching_page(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ids = seed(&app).await;
    let (_, body) = search(&app, &[("q", "invoice")]).await;
    let invoices = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["document"]["file_name"] == "invoices.pdf")
        .unwrap();
    assert_eq!(invoices["matching_pages"], 2);
    let id = &ids["invoices.pdf"];
    let links: Vec<&str> = invoices["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["html"].as_str().unwrap())
        .collect();
    assert!(
        links.contains(&format!("/documents/{id}?q=invoice#page-2").as_str()),
        "{links:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn results_are_filtered_by_status_engine_and_upload_date(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    seed(&app).await;
    let today = chrono::Utc::now().date_naive();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let yesterday = (today - chrono::Days::new(1)).to_string();
    let today = today.to_string();
    let count = |body: &Value| body["documents"].as_array().unwrap().len();
    for (filters, expected) in [
        (vec![("status", "done")], 2),
        (vec![("status", "failed")], 0),
        (vec![("engine", "local")], 2),
        (vec![("engine", "textract")], 0),
        (vec![("from", today.as_str()), ("to", today.as_str())], 2),
        (vec![("from", tomorrow.as_str())], 0),
        (vec![("to", yesterday.as_str())], 0),
    ] {
        let mut query = vec![("q", "invoice")];
        query.extend(filters.iter().copied());
        let (status, body) = search(&app, &query).await;
        assert_eq!(status, 200, "{filters:?}: {body}");
        assert_eq!(count(&body), expected, "{filters:?}: {body}");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_search_finds_only_the_caller_s_own_documents(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    seed(&app).await;
    let stranger = app.another_user("stranger@example.com").await;
    let response = stranger
        .client
        .get(app.url("/api/v1/search?q=invoice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total_documents"], 0, "{body}");
}

/// `text` as the templates escape it (askama writes numeric character references).
fn askama_escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn snippets_are_escaped_before_hits_are_marked(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ids = seed(&app).await;
    let (_, body) = search(&app, &[("q", "pelican")]).await;
    let hit = &body["documents"][0]["hits"][0];
    let html = hit["snippet_html"].as_str().unwrap();
    assert!(html.contains("<mark>pelican</mark>"), "{html}");
    // (A passage starts at a word: Postgres' may begin after the first "<".)
    assert!(html.contains("script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(
        html.contains("&amp;") && html.contains("&lt;b&gt;bold&lt;/b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script") && !html.contains("<b>"), "{html}");
    assert!(
        hit["snippet"]
            .as_str()
            .unwrap()
            .contains("script>alert(1)</script> pelican")
    );

    // The search page and the document page escape it the same way.
    let page = app.get_text("/search?q=pelican").await;
    assert!(page.contains("<mark>pelican</mark>"), "{page}");
    assert!(
        page.contains(&askama_escaped("script>alert(1)</script>")),
        "{page}"
    );
    assert!(!page.contains("<script>alert"));
    let id = &ids["hostile.pdf"];
    let page = app.get_text(&format!("/documents/{id}?q=pelican")).await;
    assert!(page.contains("<mark>pelican</mark>"), "{page}");
    assert!(
        page.contains(&askama_escaped("<script>alert(1)</script>")),
        "{page}"
    );
    assert!(!page.contains("<script>alert"));
    // A hostile query is echoed escaped too.
    let page = app
        .get_text("/search?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%20pelican")
        .await;
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains(&askama_escaped("<img src=x onerror=alert(1)> pelican")),
        "{page}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_index_follows_deletes_and_reprocessing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ids = seed(&app).await;

    // Re-process clears the pages, so they are not found until extracted again.
    let animals = &ids["animals.pdf"];
    let response = app
        .post(&format!("/api/v1/documents/{animals}/reprocess"))
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(found(&app, "dog").await, expect(&[]));
    app.drain_jobs().await;
    assert_eq!(
        found(&app, "dog").await,
        expect(&[("animals.pdf", &[1, 2])])
    );

    // Deleting a document removes its pages from the index.
    let invoices = &ids["invoices.pdf"];
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/documents/{invoices}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        found(&app, "invoice").await,
        expect(&[("animals.pdf", &[3])])
    );
    match backend {
        // FTS5 compares its index with the pages table and fails on any difference.
        Backend::Sqlite => {
            app.db
                .execute(
                    "insert into pages_search (pages_search, rank) values ('integrity-check', 1)",
                )
                .await
        }
        Backend::Postgres => {
            assert_eq!(
                app.db
                    .query_i64("select count(*) from pages where search @@ to_tsquery('english', 'invoice')")
                    .await,
                1
            );
        }
    }
}

/// A NUL (or another control character) beside a word cut SQLite's full-text query short
/// ("unterminated string": a 500) and is refused by Postgres: it separates words instead.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn control_characters_in_a_search_separate_words(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    seed(&app).await;
    let pelican = expect(&[("hostile.pdf", &[1])]);
    for q in [
        "pelican\0",
        "\0pelican",
        "\"pelican\0\"",
        "pel\u{1}\0",
        "\u{7f}pelican\t",
    ] {
        for sort in ["relevance", "date"] {
            let (status, body) = search(&app, &[("q", q), ("sort", sort)]).await;
            assert_eq!(status, 200, "{q:?} sorted by {sort}: {body}");
            if q.contains("pelican") {
                assert_eq!(
                    file_names(&body),
                    ["hostile.pdf"],
                    "{q:?} sorted by {sort}: {body}"
                );
            }
        }
    }
    assert_eq!(found(&app, "pelican\0 \0bold").await, pelican);
    // Only control characters: nothing was typed.
    let (status, problem) = search(&app, &[("q", "\0\u{1}")]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-search"))
    );
    // The browser's search page and a document opened from a result take the same query.
    let response = app
        .client
        .get(app.url("/search?q=pelican%00"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("hostile.pdf"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn bad_searches_get_a_problem(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (query, message) in [
        ("/api/v1/search", "type something to search for"),
        ("/api/v1/search?q=%20%20", "type something to search for"),
        ("/api/v1/search?q=-draft", "only excluded words"),
        (
            "/api/v1/search?q=paid%20or%20-draft",
            "cannot be one side of",
        ),
        ("/api/v1/search?q=x&status=lost", "unknown status"),
        ("/api/v1/search?q=x&engine=magic", "unknown engine"),
        (
            "/api/v1/search?q=x&from=2026-02-01&to=2026-01-01",
            "the date range is empty",
        ),
        ("/api/v1/search?q=x&from=monday", "from must be a date"),
        ("/api/v1/search?q=x&sort=size", "unknown sort"),
        ("/api/v1/search?q=x&per_page=500", "per_page must be"),
        ("/api/v1/search?q=x&page=abc", "page"),
    ] {
        let response = app.client.get(app.url(query)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid-search", "{query}");
        assert!(
            problem["detail"].as_str().unwrap().contains(message),
            "{query}: {problem}"
        );
    }
    let long = "x".repeat(501);
    let (status, problem) = search(&app, &[("q", long.as_str())]).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-search"))
    );

    // Without a token: 401, like the rest of the API.
    let response = reqwest::get(app.url("/api/v1/search?q=x")).await.unwrap();
    assert_eq!(response.status(), 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_bad_search_in_the_browser_gets_the_form_again_with_the_reason(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // The browser gets the form back, filled in, with the reason.
    let response = app
        .client
        .get(app.url("/search?q=-draft&engine=local"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("only excluded words"), "{page}");
    assert!(page.contains("value=\"-draft\""), "{page}");
    assert!(page.contains("<option value=\"local\" selected>"), "{page}");

    // A blank search page is just the form; common words alone say so.
    let response = app.client.get(app.url("/search")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .text()
            .await
            .unwrap()
            .contains("id=\"result-count\"")
    );
    let page = app.get_text("/search?q=the").await;
    assert!(page.contains("Only common words"), "{page}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_result_opens_the_document_at_the_page_with_the_terms_highlighted(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let ids = seed(&app).await;

    // The index has a search box; the results page links each hit to its page.
    let index = app.get_text("/").await;
    assert!(index.contains("action=\"/search\""), "{index}");
    let results = app.get_text("/search?q=invoice+paid").await;
    let id = &ids["invoices.pdf"];
    assert!(
        results.contains(&format!("href=\"/documents/{id}?q=invoice+paid#page-2\"")),
        "{results}"
    );
    assert!(results.contains("1 document matches."), "{results}");
    assert!(results.contains("Page 2"), "{results}");

    let page = app.get_text(&format!("/documents/{id}?q=invoice")).await;
    assert!(page.contains("id=\"search-note\""), "{page}");
    assert!(
        page.contains("<a href=\"#page-1\">1</a>, <a href=\"#page-2\">2</a>"),
        "{page}"
    );
    assert!(page.contains("<mark>Invoice</mark> 1042"), "{page}");
    assert!(
        page.contains("The <mark>invoices</mark> were paid"),
        "{page}"
    );
    assert!(page.contains("id=\"page-2\""));
    // Page 3 does not match: its text is shown as it is.
    assert!(page.contains("only weather reports."));
    // Without a search, nothing is marked.
    let plain = app.get_text(&format!("/documents/{id}")).await;
    assert!(!plain.contains("<mark>") && !plain.contains("search-note"));
}

/// Gives `db` the schema as it was before search: every migration before 0008.
async fn migrate_to_before_search(db: &harness::TestDatabase) {
    let backend = db.backend;
    let folder = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let older = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(format!("migrations/{folder}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0008" {
            std::fs::copy(&path, older.path().join(name)).unwrap();
        }
    }
    let before = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", db.url))
                .await
                .unwrap();
            before.run(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            before.run(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn pages_stored_before_the_search_migration_are_indexed_by_it(#[case] backend: Backend) {
    use lector::domain::search::SearchQuery;
    let Some(db) = harness::TestDatabase::new(backend).await else {
        return;
    };
    migrate_to_before_search(&db).await;
    // A document from then.
    for statement in [
        "insert into users (id, email, password_hash) values ('u1', 'old@example.com', 'x')",
        "insert into documents (id, file_name, sha256, size_bytes, page_count, status, engine, owner_id) \
         values ('d1', 'old.pdf', 'abc', 10, 2, 'done', 'local', 'u1')",
        "insert into pages (document_id, page_number, text, source, char_count, extraction_ms) \
         values ('d1', 1, 'an old page', 'text_layer', 11, 1), ('d1', 2, 'the invoices of last year', 'text_layer', 25, 1)",
    ] {
        db.execute(statement).await;
    }

    let store = lector::storage::connect(&db.url.clone().into(), 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let query = SearchQuery::parse("invoice").unwrap();
    let found = search_store(store.as_ref(), &query, 100).await;
    assert_eq!(
        (found.documents.len(), found.total, found.complete),
        (1, 1, true)
    );
    let first = &found.documents[0];
    assert_eq!(
        (first.document_id.as_str(), first.matching_pages),
        ("d1", 1)
    );
    let pages = store.best_pages(&query, &["d1".into()], 3).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].page_number, 2);
    assert_eq!(
        pages[0].snippet.to_html(),
        "the <mark>invoices</mark> of last year"
    );
    // The rebuilt SQLite table kept the pages and their order.
    assert_eq!(
        store
            .list_pages(&DocumentId::from("d1"))
            .await
            .unwrap()
            .len(),
        2
    );
    if backend == Backend::Postgres {
        // Migration 0010: the tsvector and the document id stay in the row (MAIN), not in
        // TOAST where ranking and sorting would have to fetch them one by one.
        let storage = db
            .query_text(
                "select string_agg(attname || '=' || cast(attstorage as text), ' ' order by attname) \
                 from pg_attribute where attrelid = 'pages'::regclass \
                   and attname in ('document_id', 'search', 'text')",
            )
            .await;
        assert_eq!(storage.as_deref(), Some("document_id=m search=m text=x"));
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite, "false")]
#[case::postgres(Backend::Postgres, "false")]
#[case::postgres_phrase_index(Backend::Postgres, "true")]
#[tokio::test]
async fn past_the_scoring_limit_the_newest_pages_are_ranked_and_the_count_says_so(
    #[case] backend: Backend,
    #[case] phrase_index: &str,
) {
    let Some(app) = TestApp::spawn_with(
        backend,
        &[
            ("LECTOR_SEARCH_MAX_SCORED_PAGES", "2"),
            ("LECTOR_SEARCH_PHRASE_INDEX", phrase_index),
        ],
    )
    .await
    else {
        return;
    };
    if phrase_index == "true" {
        // The service builds it in the background; the searches below should go through it.
        assert_eq!(phrase_index_state_within(&app.db, "true").await, "true");
    }
    seed(&app).await;
    // "invoice" is on three pages; only the two newest (animals.pdf p3, invoices.pdf p2) are
    // scored and counted.
    let (status, body) = search(&app, &[("q", "invoice")]).await;
    assert_eq!(status, 200);
    assert_eq!(body["total_is_exact"], false, "{body}");
    assert_eq!(body["total_documents"], 2, "{body}");
    let counted: BTreeMap<&str, i64> = body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["document"]["file_name"].as_str().unwrap(),
                d["matching_pages"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counted,
        BTreeMap::from([("animals.pdf", 1), ("invoices.pdf", 1)])
    );
    let page = app.get_text("/search?q=invoice").await;
    assert!(page.contains("At least 2 documents match"), "{page}");

    // Found in the newest pages: the two newest documents hold both "zeppelin" pages, so
    // the search stops at them (a window) and ranks the page saying it five times first.
    let (_, body) = search(&app, &[("q", "zeppelin")]).await;
    assert_eq!(body["total_documents"], 2, "{body}");
    let names = file_names(&body);
    assert_eq!(names, ["airships.pdf", "travel.pdf"]);

    // Under the limit the count is exact. Nothing in the newest two pages: the whole
    // library is searched (on Postgres through the word index, the matches being sparse).
    let (_, body) = search(&app, &[("q", "pelican")]).await;
    assert_eq!(body["total_is_exact"], true, "{body}");
    assert_eq!(body["total_documents"], 1);
    let (_, body) = search(&app, &[("q", "\"brown fox\"")]).await;
    assert_eq!(file_names(&body), ["animals.pdf"], "{body}");
    let (_, body) = search(&app, &[("q", "\"fox brown\"")]).await;
    assert_eq!(body["total_documents"], 0, "{body}");
    assert_phrases_with_other_conditions_are_found(&app).await;
}

/// Phrases with exclusions, other phrases and words, and alternatives, each found where it
/// is. With the phrase index on Postgres these find phrases through the pairs of their words
/// (migration 0011), with the rest of the query checked on each page found.
async fn assert_phrases_with_other_conditions_are_found(app: &TestApp) {
    for (query, expected) in [
        ("\"lazy dog\" -zeppelin", &["animals.pdf"][..]),
        ("\"lazy dog\" -cats", &["animals.pdf"]),
        ("\"lazy dog\" -fox", &[]),
        (
            "\"jumps over the lazy dog\" \"quick brown\"",
            &["animals.pdf"],
        ),
        ("\"payment is due\" invoice", &["invoices.pdf"]),
        (
            "\"bank transfer\" or \"brown fox\"",
            &["animals.pdf", "invoices.pdf"],
        ),
        // No two words of it stand together once common words are left out: no pairs.
        ("\"invoice for the veterinary\"", &["animals.pdf"]),
    ] {
        let (_, body) = search(app, &[("q", query), ("sort", "date")]).await;
        assert_eq!(file_names(&body), expected, "{query}: {body}");
    }
}

/// Migration 0011 finds a phrase on Postgres from the pages holding each pair of its adjacent
/// words: that is only right if every page Postgres' phrase operator matches holds the pairs
/// the search asks for. Checked over text that Postgres' parser splits in odd ways (hyphens,
/// addresses, numbers, stop words inside a phrase, repeats, tags), for every run of two to
/// four words of it, parsed as a typed query is.
#[tokio::test]
async fn every_page_holding_a_phrase_holds_the_word_pairs_it_is_found_by() {
    let Some(db) = harness::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    lector::storage::connect(&db.url.clone().into(), 2)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let texts = [
        "The well-known e-mail address is foo@bar.com, see http://example.com/a/b?x=1 today.",
        "Don't stop believing: it's 3.14 or -5 degrees at 10:30 in São Paulo's old town.",
        "bye bye bye, the end of the end of the story",
        "<b>bold</b> text and a <tag> inside <<angle>> brackets",
        "Invoice #1042 (draft) for Müller & Söhne GmbH — total: 1,234.56 EUR, due 2024-01-05.",
        "running dogs ran faster than the running cats; dogs run",
        "state-of-the-art co-operation and re-use of v2.0.1 /usr/local/bin paths",
    ];
    let pool = a_document_with_a_page_each(&db, &texts).await;
    let phrases = typed_phrases(&texts);
    assert!(phrases.len() > 150, "{}", phrases.len());
    let (matched, missed, absent, told_apart): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where found), count(*) filter (where found and not paired), \
           count(*) filter (where not found), count(*) filter (where not found and not paired) \
         from (select p.search @@ websearch_to_tsquery('english', '\"' || q.phrase || '\"') as found, \
             search_word_pairs(p.search) @> search_phrase_pairs(array[q.phrase]) as paired \
           from pages p cross join unnest(cast($1 as text[])) as q(phrase)) checked",
    )
    .bind(&phrases)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(missed, 0, "pages holding a phrase but not its pairs");
    assert!(
        matched > 100,
        "only {matched} phrases found: the check proves little"
    );
    // Most pages without a phrase lack its pairs too (the rest: phrases with a common word
    // between every two others, which pair nothing, and bucket collisions).
    assert!(
        told_apart * 10 > absent * 8,
        "the pairs told only {told_apart} of {absent} pages without the phrase apart"
    );
    // A phrase of stop words and one word pairs nothing: no condition, not "no page".
    let pairs: Vec<i32> = sqlx::query_scalar("select search_phrase_pairs(array['cat of the dog'])")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(pairs.is_empty(), "{pairs:?}");
    pool.close().await;
}

/// Owner `u1`'s document `d1` with one page per text; a pool on `db`.
async fn a_document_with_a_page_each(db: &harness::TestDatabase, texts: &[&str]) -> sqlx::PgPool {
    db.execute(
        "insert into users (id, email, password_hash) values ('u1', 'pairs@example.com', 'x')",
    )
    .await;
    db.execute(
        "insert into documents (id, file_name, sha256, size_bytes, page_count, status, engine, owner_id) \
         values ('d1', 'odd.pdf', 'abc', 10, 7, 'done', 'local', 'u1')",
    )
    .await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    for (n, text) in texts.iter().enumerate() {
        sqlx::query(
            "insert into pages (document_id, page_number, text, source, char_count, extraction_ms) \
             values ('d1', $1, $2, 'text_layer', $3, 1)",
        )
        .bind(n as i32 + 1)
        .bind(*text)
        .bind(text.len() as i32)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool
}

/// Every run of 2-4 words of every text (and across two texts' ends, which no page holds),
/// as the search passes a typed phrase on.
fn typed_phrases(texts: &[&str]) -> Vec<String> {
    use lector::domain::search::SearchQuery;
    let mut phrases: Vec<String> = Vec::new();
    let all_words: Vec<&str> = texts.iter().flat_map(|t| t.split_whitespace()).collect();
    for length in 2..=4 {
        for run in all_words.windows(length) {
            let typed = format!("\"{}\"", run.join(" ").replace('"', ""));
            let query = SearchQuery::parse(&typed).unwrap();
            phrases.extend(lector::storage::postgres::required_phrases(&query));
        }
    }
    phrases
}

/// `LECTOR_SEARCH_PHRASE_INDEX` makes the index of adjacent words, built and usable, and
/// turning it off drops it; a half-built one (an invalid index left by a build that failed)
/// is built again. Only the processes that migrate, serve or work do that (the last two in
/// the background: see the next test), not an administrator's command.
#[tokio::test]
async fn the_phrase_index_follows_the_setting() {
    let Some(db) = harness::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let start = |on: &'static str| {
        let config = harness::test_config(&db.url, &[("LECTOR_SEARCH_PHRASE_INDEX", on)]);
        async move { lector::startup::migrate(&config).await.unwrap() }
    };
    start("false").await;
    assert_eq!(phrase_index_state(&db).await, "absent");
    // An administrator's command run with other settings leaves it as the service keeps it.
    let admin = harness::test_config(&db.url, &[("LECTOR_SEARCH_PHRASE_INDEX", "true")]);
    lector::startup::connect(&admin).await.unwrap();
    assert_eq!(phrase_index_state(&db).await, "absent");
    start("true").await;
    assert_eq!(phrase_index_state(&db).await, "true");
    start("true").await;
    assert_eq!(phrase_index_state(&db).await, "true");
    db.execute(
        "update pg_index set indisvalid = false where indexrelid = 'pages_search_pairs'::regclass",
    )
    .await;
    start("true").await;
    assert_eq!(phrase_index_state(&db).await, "true");
    start("false").await;
    assert_eq!(phrase_index_state(&db).await, "absent");
}

/// Whether the index of adjacent words is built: "true", "false" (invalid) or "absent".
async fn phrase_index_state(db: &harness::TestDatabase) -> String {
    db.query_text(
        "select coalesce((select cast(indisvalid as text) from pg_index \
         where indexrelid = to_regclass('pages_search_pairs')), 'absent')",
    )
    .await
    .unwrap()
}

/// The index's state once it is `wanted`, or after 30 s.
async fn phrase_index_state_within(db: &harness::TestDatabase, wanted: &str) -> String {
    let reached = eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async move {
            let state = phrase_index_state(db).await;
            (state == wanted).then_some(state)
        },
    )
    .await;
    match reached {
        Some(state) => state,
        None => phrase_index_state(db).await,
    }
}

/// The service builds the index in the background: it answers while the build waits (here
/// for another instance's lock; on a large library, for minutes of building), and the index
/// is there once the build could run.
#[tokio::test]
async fn the_service_answers_while_the_phrase_index_is_built() {
    let Some(db) = harness::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let other_instance = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut lock_holder = other_instance.acquire().await.unwrap();
    sqlx::query("select pg_advisory_lock($1)")
        .bind(lector::storage::postgres::PHRASE_INDEX_LOCK)
        .execute(&mut *lock_holder)
        .await
        .unwrap();
    let app = TestApp::spawn_on(db, &[("LECTOR_SEARCH_PHRASE_INDEX", "true")]).await;
    assert_eq!(phrase_index_state(&app.db).await, "absent");
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(lector::storage::postgres::PHRASE_INDEX_LOCK)
        .execute(&mut *lock_holder)
        .await
        .unwrap();
    assert_eq!(phrase_index_state_within(&app.db, "true").await, "true");
    drop(lock_holder);
    other_instance.close().await;
    app.shutdown().await;
}

/// The answers are the same whichever index finds a phrase, so this checks the path itself: a
/// sparse phrase reads the index of adjacent words. The library holds 2,000 pages with both
/// words but not the phrase (on a handful of pages Postgres would rather read every row).
#[tokio::test]
async fn a_sparse_phrase_is_found_through_the_index_of_adjacent_words() {
    use lector::domain::search::SearchQuery;
    let Some(db) = harness::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let config = harness::test_config(&db.url, &[("LECTOR_SEARCH_PHRASE_INDEX", "true")]);
    lector::startup::migrate(&config).await.unwrap();
    for statement in [
        "insert into users (id, email, password_hash) values ('u1', 'pairs@example.com', 'x')",
        "insert into documents (id, file_name, sha256, size_bytes, page_count, status, engine, owner_id) \
         values ('d1', 'fox.pdf', 'a', 10, 1, 'done', 'local', 'u1'), \
                ('d2', 'dog.pdf', 'b', 10, 1, 'done', 'local', 'u1'), \
                ('d3', 'cat.pdf', 'c', 10, 1, 'done', 'local', 'u1')",
        "insert into pages (document_id, page_number, text, source, char_count, extraction_ms) \
         values ('d1', 1, 'the quick brown fox', 'text_layer', 19, 1), \
                ('d2', 1, 'a brown dog and a fox', 'text_layer', 21, 1), \
                ('d3', 1, 'a grey cat', 'text_layer', 10, 1)",
        "insert into documents (id, file_name, sha256, size_bytes, page_count, status, engine, owner_id) \
         select 'c' || lpad(cast(n as text), 4, '0'), 'filler.pdf', 'f' || n, 10, 10, 'done', 'local', 'u1' \
         from generate_series(1, 200) n",
        "insert into pages (document_id, page_number, text, source, char_count, extraction_ms) \
         select 'c' || lpad(cast(d as text), 4, '0'), n, \
           'brown paper, a fox on page ' || n || ' of ' || d || ' and brown dogs', 'text_layer', 40, 1 \
         from generate_series(1, 200) d, generate_series(1, 10) n",
        "analyze",
    ] {
        db.execute(statement).await;
    }
    let store = lector::storage::connect(&db.url.clone().into(), 2)
        .await
        .unwrap();
    let query = SearchQuery::parse("\"brown fox\"").unwrap();
    // One page scored: the newest document (d3; ids are in upload order) is the first
    // window, it holds no match, and the rest of the library is searched as sparse.
    let found = search_store(store.as_ref(), &query, 1).await;
    let ids: Vec<&str> = found
        .documents
        .iter()
        .map(|d| d.document_id.as_str())
        .collect();
    assert_eq!(ids, ["d1"]);
    // A connection reports its statistics when it ends.
    drop(store);
    let scans = "select cast(coalesce(sum(idx_scan), 0) as int8) from pg_stat_user_indexes \
                 where indexrelname = 'pages_search_pairs'";
    let db = &db;
    let read = eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async move { Some(db.query_i64(scans).await).filter(|&read| read > 0) },
    )
    .await;
    assert!(read.is_some(), "the index of adjacent words was never read");
}

/// Asks the store itself (not the service) for the first ten of owner `u1`'s documents
/// matching `query`, by relevance, with at most `max_scored_pages` pages ranked.
async fn search_store(
    store: &dyn lector::storage::Store,
    query: &lector::domain::search::SearchQuery,
    max_scored_pages: i64,
) -> lector::storage::search::DocumentMatches {
    use lector::{
        domain::search::{SearchFilters, SearchSort},
        storage::search::SearchRequest,
    };
    store
        .search_documents(&SearchRequest {
            owner_id: "u1",
            query,
            filters: &SearchFilters::default(),
            sort: SearchSort::Relevance,
            limit: 10,
            offset: 0,
            max_scored_pages,
        })
        .await
        .unwrap()
}
