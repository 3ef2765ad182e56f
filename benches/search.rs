//! Search at scale: loads 10,000 documents of 20 pages (200,000 pages of generated text)
//! into a fresh SQLite file and a fresh Postgres database through Lector's own store (so the
//! FTS5 triggers and the generated tsvector do their real work), then runs a mix of queries
//! through the same code the search endpoint runs and prints p50/p99 latency per kind.
//!
//! `cargo bench --bench search` (or `scripts/bench_search`). Environment:
//! `SEARCH_BENCH_DOCUMENTS` (10000), `SEARCH_BENCH_PAGES` (20 per document),
//! `SEARCH_BENCH_QUERIES` (40 per kind), `SEARCH_BENCH_BACKENDS` (`sqlite,postgres`),
//! `SEARCH_BENCH_MAX_SCORED` (the caps to rank with, comma-separated; the service's default),
//! `TEST_DATABASE_URL` (the Postgres server to create the database on), `SEARCH_BENCH_KEEP`
//! (keep the databases to look into them), `SEARCH_BENCH_WITHOUT_INDEX` (only load, with the
//! search index removed: what indexing costs extraction's page inserts),
//! `SEARCH_BENCH_PHRASE_INDEX` (with Postgres' index of adjacent words, as
//! `LECTOR_SEARCH_PHRASE_INDEX=true` keeps it).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use lector::{
    app::search::SearchParams,
    domain::{
        User,
        ocr::{OcrChoice, OcrMode},
    },
    storage::{NewDocument, NewPage, NewUser, Store},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

const WORDS_PER_PAGE: usize = 250;
const VOCABULARY: usize = 20_000;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A vocabulary of made-up words (no English stop word among them), used with Zipf's law:
/// word `r` is about `1/r` as frequent as the first, like words in real text.
struct Corpus {
    words: Vec<String>,
    ranks: std::collections::HashMap<String, usize>,
    cumulative: Vec<f64>,
}

impl Corpus {
    fn new(rng: &mut StdRng) -> Self {
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "de", "pa", "ri", "zo", "ba", "fe",
            "gu", "hi", "ju", "ke", "lu", "ma", "ne", "po", "qua", "sa", "ti", "ve", "wo", "xe",
            "ya", "zu",
        ];
        let mut words = Vec::with_capacity(VOCABULARY);
        let mut seen = std::collections::HashSet::new();
        while words.len() < VOCABULARY {
            let syllables = rng.random_range(2..=4);
            let word: String = (0..syllables)
                .map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())])
                .collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(1.07);
                total
            })
            .collect();
        let ranks = words
            .iter()
            .enumerate()
            .map(|(rank, w)| (w.clone(), rank))
            .collect();
        Corpus {
            words,
            ranks,
            cumulative,
        }
    }

    /// 0 for the most common word.
    fn rank(&self, word: &str) -> usize {
        self.ranks[word]
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let target = rng.random::<f64>() * self.cumulative.last().unwrap();
        let index = self.cumulative.partition_point(|&c| c < target);
        &self.words[index.min(VOCABULARY - 1)]
    }

    fn page(&self, rng: &mut StdRng) -> String {
        let mut text = String::with_capacity(WORDS_PER_PAGE * 8);
        for i in 0..WORDS_PER_PAGE {
            text.push_str(self.word(rng));
            text.push(if i % 12 == 11 { '\n' } else { ' ' });
        }
        text
    }
}

async fn load(
    store: &dyn Store,
    corpus: &Corpus,
    documents: usize,
    pages: usize,
    indexed: bool,
) -> User {
    let user = store
        .create_user(
            &NewUser {
                id: lector::domain::UserId::new(),
                email: "bench@example.com".into(),
                password_hash: "not used".into(),
            },
            false,
        )
        .await
        .unwrap()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    for n in 0..documents {
        let id = uuid::Uuid::now_v7().to_string();
        store
            .create_document(
                &NewDocument {
                    id: id.clone().into(),
                    file_name: format!("generated-{n:05}.pdf"),
                    sha256: format!("{n:064x}"),
                    size_bytes: 100_000,
                    page_count: pages as i32,
                    engine: lector::domain::Engine::Local,
                    pdf_password: None,
                    blob_key: Some(format!("bench/{id}")),
                    max_attempts: 3,
                    ocr: OcrChoice {
                        mode: OcrMode::Off,
                        languages: "eng".into(),
                    },
                    owner_id: Some(user.id.clone()),
                },
                None,
            )
            .await
            .unwrap();
        let job = store
            .claim_job("bench", Duration::from_secs(600))
            .await
            .unwrap()
            .expect("the document's job");
        let new_pages: Vec<NewPage> = (1..=pages as i32)
            .map(|number| NewPage {
                number,
                text: corpus.page(&mut rng),
                source: lector::domain::PageSource::TextLayer,
                extraction_ms: 1,
                error: None,
                confidence: None,
                dpi: None,
                ocr_reason: None,
            })
            .collect();
        assert!(store.insert_pages(&job, "bench", &new_pages).await.unwrap());
        assert!(store.complete_job(&job, "bench").await.unwrap());
        if (n + 1) % 1000 == 0 {
            eprintln!(
                "  {} documents loaded ({:.0} pages/s)",
                n + 1,
                ((n + 1) * pages) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "  loaded {documents} documents, {} pages, in {:.1} s ({:.0} pages/s, {})",
        documents * pages,
        started.elapsed().as_secs_f64(),
        (documents * pages) as f64 / started.elapsed().as_secs_f64(),
        if indexed {
            "the search index kept up"
        } else {
            "no search index"
        }
    );
    user
}

/// The kinds of query measured, each made from the vocabulary by rank (1 = most common).
fn queries(
    corpus: &Corpus,
    rng: &mut StdRng,
    per_kind: usize,
) -> Vec<(&'static str, SearchParams)> {
    let word = |range: std::ops::Range<usize>, rng: &mut StdRng| {
        corpus.words[rng.random_range(range)].clone()
    };
    let mut all = Vec::new();
    for _ in 0..per_kind {
        let rare = word(5000..20000, rng);
        let medium = word(100..1000, rng);
        let medium2 = word(100..1000, rng);
        let common = word(0..10, rng);
        // Phrases as a page of the corpus has them: one that starts with a specific word
        // (not among the 100 most common), and one of two very common words.
        let page = corpus.page(rng);
        let words: Vec<&str> = page.split_whitespace().collect();
        let specific = words
            .windows(2)
            .find(|pair| corpus.rank(pair[0]) >= 100)
            .unwrap_or(&words[..2])
            .join(" ");
        let commonest = words
            .windows(2)
            .find(|pair| corpus.rank(pair[0]) < 10 && corpus.rank(pair[1]) < 10)
            .unwrap_or(&words[..2])
            .join(" ");
        for (kind, q, sort) in [
            ("rare word", rare, "relevance"),
            ("medium word", medium.clone(), "relevance"),
            ("common word", common.clone(), "relevance"),
            ("common word, newest first", common.clone(), "date"),
            ("two words", format!("{medium} {medium2}"), "relevance"),
            ("phrase", format!("\"{specific}\""), "relevance"),
            (
                "phrase of common words",
                format!("\"{commonest}\""),
                "relevance",
            ),
            (
                "word or word",
                format!("{medium} or {medium2}"),
                "relevance",
            ),
            ("word -common", format!("{medium} -{common}"), "relevance"),
        ] {
            all.push((
                kind,
                SearchParams {
                    q: Some(q),
                    sort: Some(sort.into()),
                    ..SearchParams::default()
                },
            ));
        }
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn measure(
    store: Arc<dyn Store>,
    user: &User,
    corpus: &Corpus,
    per_kind: usize,
    max_scored: i64,
) {
    println!("  ranking at most {max_scored} matching pages (LECTOR_SEARCH_MAX_SCORED_PAGES)");
    let mut rng = StdRng::seed_from_u64(11);
    let queries = queries(corpus, &mut rng, per_kind);
    // Warm the caches once with every query, as a running server would be.
    for (_, params) in &queries {
        let valid = params.validate().unwrap();
        lector::app::search::search(store.as_ref(), user, &valid, max_scored)
            .await
            .unwrap();
    }
    let mut by_kind: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    let mut hits: std::collections::BTreeMap<&str, i64> = Default::default();
    let mut slowest: std::collections::BTreeMap<&str, (Duration, &str)> = Default::default();
    for (kind, params) in &queries {
        let valid = params.validate().unwrap();
        let started = Instant::now();
        let results = lector::app::search::search(store.as_ref(), user, &valid, max_scored)
            .await
            .unwrap();
        let took = started.elapsed();
        by_kind.entry(kind).or_default().push(took);
        *hits.entry(kind).or_default() += results.total_documents;
        let q = params.q.as_deref().unwrap_or_default();
        let entry = slowest.entry(kind).or_insert((took, q));
        if took > entry.0 {
            *entry = (took, q);
        }
    }
    println!(
        "  {:<28} {:>8} {:>8} {:>8} {:>14}  slowest",
        "query (10 documents a page)", "p50 ms", "p99 ms", "max ms", "documents hit"
    );
    let mut all = Vec::new();
    for (kind, mut times) in by_kind {
        times.sort();
        println!(
            "  {:<28} {:>8} {:>8} {:>8} {:>14}  {}",
            kind,
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap()),
            hits[kind] / times.len() as i64,
            slowest[kind].1
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "  {:<28} {:>8} {:>8} {:>8}",
        "all queries",
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap())
    );
}

async fn drop_search_index(backend: &str, url: &str) {
    if backend == "postgres" {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("alter table pages drop column search")
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for trigger in ["insert", "delete", "update"] {
            sqlx::query(&format!("drop trigger pages_search_{trigger}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    let documents = env_number("SEARCH_BENCH_DOCUMENTS", 10_000);
    let pages = env_number("SEARCH_BENCH_PAGES", 20);
    let per_kind = env_number("SEARCH_BENCH_QUERIES", 40);
    let backends =
        std::env::var("SEARCH_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    // `LECTOR_SEARCH_MAX_SCORED_PAGES` values to compare on the same data (by default, its
    // default alone).
    let max_scored: Vec<i64> = match std::env::var("SEARCH_BENCH_MAX_SCORED") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("SEARCH_BENCH_MAX_SCORED: numbers"))
            .collect(),
        Err(_) => vec![lector::config::DEFAULT_SEARCH_MAX_SCORED_PAGES],
    };
    let corpus = Corpus::new(&mut StdRng::seed_from_u64(3));
    let dir = tempfile::tempdir().unwrap().keep();
    for backend in backends.split(',') {
        println!("{backend}: {documents} documents x {pages} pages of {WORDS_PER_PAGE} words");
        let (url, cleanup) = match backend {
            "sqlite" => (
                format!("sqlite://{}", dir.join("search.db").display()),
                None,
            ),
            "postgres" => {
                let admin = std::env::var("TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let name = format!("lector_search_bench_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&admin).await.unwrap();
                sqlx::query(&format!("create database {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                (format!("{base}/{name}"), Some((pool, name)))
            }
            other => panic!("unknown backend {other}"),
        };
        let store = lector::storage::connect(&url.clone().into(), 8)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // Without the index, only the load is measured: what indexing costs extraction's
        // page inserts.
        let indexed = std::env::var_os("SEARCH_BENCH_WITHOUT_INDEX").is_none();
        if !indexed {
            drop_search_index(backend, &url).await;
        }
        // The index of adjacent words is built over the search index's tsvector: without
        // that there is nothing to build it on.
        let phrase_index = std::env::var_os("SEARCH_BENCH_PHRASE_INDEX").is_some();
        if phrase_index && !indexed {
            println!("  without the search index, so without the index of adjacent words too");
        } else if phrase_index {
            store.index_phrases(true).await.unwrap();
            println!("  with the index of adjacent words (LECTOR_SEARCH_PHRASE_INDEX)");
        }
        let user = load(store.as_ref(), &corpus, documents, pages, indexed).await;
        if indexed {
            if backend == "postgres" {
                // What autovacuum does soon after a bulk load: statistics for the planner,
                // and the GIN index's pending list merged.
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::query("vacuum analyze").execute(&pool).await.unwrap();
                pool.close().await;
            }
            for max_scored in &max_scored {
                measure(store.clone(), &user, &corpus, per_kind, *max_scored).await;
            }
        }
        drop(store);
        if std::env::var_os("SEARCH_BENCH_KEEP").is_some() {
            println!("  kept: {url}");
            continue;
        }
        if let Some((pool, name)) = cleanup {
            sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}
