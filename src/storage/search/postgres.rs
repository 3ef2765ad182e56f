//! Search on Postgres: `websearch_to_tsquery` over each page's `tsvector`, searched in
//! windows of the newest pages, and the optional index of adjacent words.

use std::sync::LazyLock;

use sqlx::Postgres;

use super::{DocumentMatches, PageMatch, SearchRequest, SearchStore};
use crate::domain::search::{Highlighted, SearchQuery, SearchSort};
use crate::storage::{Result, sql::SqlStore};

impl SqlStore<Postgres> {
    /// The pairs of adjacent words a page must hold to contain the phrases `query` asks
    /// for (see [`SEARCH_DOCUMENTS_BY_PAIRS`]); none when it asks for no phrase, or only for
    /// phrases with a common word between every two others.
    async fn phrase_pairs(&self, query: &SearchQuery) -> Result<Vec<i32>> {
        let phrases = required_phrases(query);
        if phrases.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(PHRASE_PAIRS)
            .bind(phrases)
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or_default())
    }

    /// Where a search window of `pages` of `owner_id`'s newest pages starts (see
    /// [`WINDOW_START`]); none when that is the whole library.
    async fn window_start(&self, owner_id: &str, pages: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(WINDOW_START)
            .bind(owner_id)
            .bind(pages)
            .fetch_optional(&self.pool)
            .await?)
    }
}

/// The matching documents: the owner's newest matching pages (at most `$10`; ids are
/// UUIDv7, so id order is upload order) scored, grouped by document; the totals counted
/// before the page is cut. `$11`, when set, is a window: only documents from that id on
/// (see [`WINDOW_START`]). Each page is scored as it is read (its tsvector is in the row,
/// migration 0010) and only the score is carried through the sort. The query is written
/// inline (not in a CTE) and the statement is not kept prepared, so that Postgres plans each
/// search knowing its words and window: a word on most pages is best found walking the
/// newest pages backwards, a rare one through the GIN index, a window through both.
/// `matching` is how a page is found to match (see [`SEARCH_DOCUMENTS`] and
/// [`SEARCH_DOCUMENTS_BY_PAIRS`]).
fn search_documents(matching: &str) -> String {
    format!(
        "with scored as materialized (select p.document_id, \
           ts_rank_cd(p.search, websearch_to_tsquery('english', $1), 1) as score from pages p \
         join documents d on d.id = p.document_id \
         where {matching} and d.owner_id = $2 \
           and (cast($3 as text) is null or d.status = $3) \
           and (cast($4 as text) is null or d.engine = $4) \
           and (cast($5 as timestamptz) is null or d.created_at >= $5) \
           and (cast($6 as timestamptz) is null or d.created_at < $6) \
           and (cast($11 as text) is null or p.document_id >= $11) \
         order by p.document_id desc, p.page_number desc limit $10) \
       select h.document_id, cast(max(h.score) as double precision) as score, \
         count(*) as matching_pages, count(*) over () as total, \
         (select count(*) from scored) as scored_pages \
       from scored h group by h.document_id \
       order by case when $7 then max(h.score) else 0 end desc, h.document_id desc \
       limit $8 offset $9"
    )
}

/// Pages found through the word index (or, where most pages match, by walking them).
static SEARCH_DOCUMENTS: LazyLock<String> =
    LazyLock::new(|| search_documents("p.search @@ websearch_to_tsquery('english', $1)"));

/// Pages found through the index of adjacent words (migration 0011, kept where
/// `LECTOR_SEARCH_PHRASE_INDEX` is on): those holding every
/// pair of words of the query's phrases (`$12`, from [`PHRASE_PAIRS`]), then checked against
/// the whole query. The check is written so that the word index cannot serve it: Postgres
/// would combine both indexes, and a page the word index returns for a phrase is re-checked
/// with every condition of the scan, which would pair each candidate's words again (0.2 ms
/// a page) instead of reading the pairs from the index.
static SEARCH_DOCUMENTS_BY_PAIRS: LazyLock<String> = LazyLock::new(|| {
    search_documents(
        "search_word_pairs(p.search) @> cast($12 as int4[]) \
         and coalesce(p.search, '') @@ websearch_to_tsquery('english', $1)",
    )
});

/// The pairs of adjacent words a page must hold to contain the phrases `$1`; no row unless
/// the index of them is there and built (a build under way, or one that failed, leaves an
/// invalid index, which the planner does not use: the search would pair each row's words).
const PHRASE_PAIRS: &str = "select search_phrase_pairs(cast($1 as text[])) \
     where exists (select from pg_index \
       where indexrelid = to_regclass('pages_search_pairs') and indisvalid)";

/// Held while the index of adjacent words is made or dropped, so that instances starting
/// together do not build it twice (an arbitrary key, Lector's own; instances of every
/// version must agree on it).
pub const PHRASE_INDEX_LOCK: i64 = 0x4c45_4354_4f52_5031;

/// Built without blocking page inserts (they wait only at the very end). A build that
/// failed half-way leaves an invalid index of the name, dropped before building again.
const CREATE_PHRASE_INDEX: &str = "create index concurrently if not exists pages_search_pairs \
     on pages using gin (search_word_pairs(search))";
const DROP_PHRASE_INDEX: &str = "drop index concurrently if exists pages_search_pairs";
/// Whether the index of adjacent words is built (no row: there is none).
const PHRASE_INDEX_STATE: &str = "select indisvalid from pg_index \
     where indexrelid = to_regclass('pages_search_pairs')";

/// The first document of the owner's newest documents that hold `$2` pages in all; none
/// when the whole library holds fewer.
const WINDOW_START: &str = "select id from (select id, \
       sum(page_count) over (order by id desc) as pages from documents where owner_id = $1) w \
     where pages >= $2 order by id desc limit 1";

/// Set for the one statement that searches the whole library after the windows found the
/// matches sparse. Postgres cannot estimate how often words stand together: it takes a
/// phrase to be on every page holding its words, and so plans to walk the newest pages
/// backwards until enough match. For a phrase whose words share 16 % of the pages but stand
/// together on 0.15 %, that walk checks every page of the library (330 ms at 200,000 pages);
/// the GIN index reads only the pages holding both words, in table order (150 ms). The
/// density the windows saw already says the walk would read at least half the library.
const SPARSE_MATCHES_THROUGH_THE_INDEX: &str = "set local enable_indexscan = off";

/// Set as well where the pages are found through the index of adjacent words: a bucket of
/// pairs holds about 1.5 % of the pages, and past what `work_mem` (4 MB by default: about
/// 65,000 table blocks) holds, Postgres keeps whole blocks instead of rows and re-checks every
/// row of them, pairing its words again (0.2 ms a row). 64 MB keeps rows for about a million
/// blocks, for this one statement.
const MEMORY_FOR_CANDIDATE_ROWS: &str = "set local work_mem = '64MB'";

/// How many pages should hold the `wanted` matching pages, after a window of `window` pages
/// held `matched`: at the density seen, with a quarter more (no bound when none matched).
fn pages_for(window: i64, matched: i64, wanted: i64) -> i64 {
    if matched == 0 {
        i64::MAX
    } else {
        window.saturating_mul(wanted).saturating_mul(5) / matched.saturating_mul(4)
    }
}

/// The next window to search after one of `window` pages, where `needed` pages should hold
/// what is wanted (`pages_for`): that, but at least twice as large, so that a search that
/// nearly had enough ends soon. No upper bound: one capped at sixteen times made a word
/// seen on 113 of the newest 2,000 pages search 32,000 pages, find 1,961 of the 2,000
/// wanted and search 64,000 more (where 44,000 would have held them); a window that falls
/// short costs a whole window, one a quarter too large costs a quarter.
fn next_window(window: i64, needed: i64) -> i64 {
    needed.max(window.saturating_mul(2))
}

/// The best pages of some documents, with a passage around the hits (only those pages get
/// the costly headline). Hits are marked with the markers of [`crate::domain::search`].
/// Not kept prepared either: after five runs Postgres would switch to a plan made without
/// the words, which reads a common word's every page through the GIN index (300 ms at
/// 200,000 pages) instead of the few pages of the documents asked for.
const BEST_PAGES: &str = "select t.document_id, t.page_number, cast(t.score as double precision) as score, \
     ts_headline('english', translate(t.text, '<', U&'\\FDD2'), q.query, \
       'StartSel=\u{FDD0}, StopSel=\u{FDD1}, MaxWords=30, MinWords=12, ShortWord=2, \
        MaxFragments=2, FragmentDelimiter=\" … \"') as snippet \
     from (select p.document_id, p.page_number, p.text, ts_rank_cd(p.search, q.query, 1) as score, \
         row_number() over (partition by p.document_id \
           order by ts_rank_cd(p.search, q.query, 1) desc, p.page_number) as n \
       from pages p cross join websearch_to_tsquery('english', $1) as q(query) \
       where p.document_id in (select jsonb_array_elements_text(cast($2 as jsonb))) \
         and p.search @@ q.query) t \
     cross join websearch_to_tsquery('english', $1) as q(query) \
     where t.n <= $3 order by t.document_id, t.score desc, t.page_number";

/// Every matching page of one document, all of its text with every hit marked.
const HIGHLIGHT_PAGES: &str = "select p.page_number, ts_headline('english', \
       translate(p.text, '<', U&'\\FDD2'), q.query, 'StartSel=\u{FDD0}, StopSel=\u{FDD1}, HighlightAll=true') \
     from pages p cross join websearch_to_tsquery('english', $2) as q(query) \
     where p.document_id = $1 and p.search @@ q.query order by p.page_number";

/// Stands in for '<' wherever text reaches Postgres' parser, which would otherwise read
/// `<word>` as an HTML tag and drop it (see migration 0008).
const TAG_STAND_IN: char = '\u{FDD2}';

/// The phrases every match of `query` must contain, each as the text Postgres parses into
/// the pairs of its adjacent words (`search_phrase_pairs`, migration 0011).
pub fn required_phrases(query: &SearchQuery) -> Vec<String> {
    query
        .required_phrases()
        .map(|words| tag_safe(&words.join(" ")))
        .collect()
}

fn tag_safe(query: &str) -> String {
    query.replace('<', &TAG_STAND_IN.to_string())
}

fn tags_back(text: &str) -> String {
    text.replace(TAG_STAND_IN, "<")
}

#[async_trait::async_trait]
impl SearchStore for SqlStore<Postgres> {
    async fn index_phrases(&self, on: bool) -> Result<()> {
        // One connection throughout: the advisory lock belongs to it, and CONCURRENTLY
        // cannot run inside a transaction.
        let mut connection = self.pool.acquire().await?;
        sqlx::query("select pg_advisory_lock($1)")
            .bind(PHRASE_INDEX_LOCK)
            .execute(&mut *connection)
            .await?;
        let changed = async {
            let state: Option<bool> = sqlx::query_scalar(PHRASE_INDEX_STATE)
                .fetch_optional(&mut *connection)
                .await?;
            // `state`: none when there is no index, whether it is built otherwise.
            let (drop, create) = match (on, state) {
                (true, Some(true)) | (false, None) => (false, false),
                (false, Some(_)) => (true, false),
                (true, None) => (false, true),
                (true, Some(false)) => (true, true),
            };
            if drop {
                sqlx::query(DROP_PHRASE_INDEX)
                    .execute(&mut *connection)
                    .await?;
            }
            if create {
                tracing::info!("building the index of adjacent words (LECTOR_SEARCH_PHRASE_INDEX)");
                sqlx::query(CREATE_PHRASE_INDEX)
                    .execute(&mut *connection)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        sqlx::query("select pg_advisory_unlock($1)")
            .bind(PHRASE_INDEX_LOCK)
            .execute(&mut *connection)
            .await?;
        Ok(changed?)
    }

    /// Searches the newest pages first, in windows: the newest `max_scored_pages` pages,
    /// then a window grown to the density of matches seen, until one holds as many matching
    /// pages as are scored; where that density would need half the library or more, the
    /// whole library (searching most of it twice costs more than once). A word on many pages is
    /// then ranked from the pages of a window, not found on every page of the library
    /// first; the answer is the same (the newest matching pages are the same ones).
    async fn search_documents(&self, request: &SearchRequest<'_>) -> Result<DocumentMatches> {
        let query = tag_safe(&super::websearch(request.query));
        let wanted = request.max_scored_pages;
        let mut start = self.window_start(request.owner_id, wanted).await?;
        let mut window = wanted;
        let mut sparse = false;
        let mut pairs = Vec::new();
        loop {
            let statement: &str = if pairs.is_empty() {
                &SEARCH_DOCUMENTS
            } else {
                &SEARCH_DOCUMENTS_BY_PAIRS
            };
            let mut search = sqlx::query_as(statement)
                .persistent(false)
                .bind(&query)
                .bind(request.owner_id)
                .bind(request.filters.status.map(|s| s.as_str()))
                .bind(request.filters.engine.map(crate::domain::Engine::as_str))
                .bind(request.filters.uploaded_from)
                .bind(request.filters.uploaded_before)
                .bind(request.sort == SearchSort::Relevance)
                .bind(request.limit)
                .bind(request.offset)
                .bind(wanted)
                .bind(start.as_deref());
            if !pairs.is_empty() {
                search = search.bind(&pairs);
            }
            let rows: Vec<(String, f64, i64, i64, i64)> = if sparse {
                let mut transaction = self.pool.begin().await?;
                sqlx::query(SPARSE_MATCHES_THROUGH_THE_INDEX)
                    .execute(&mut *transaction)
                    .await?;
                if !pairs.is_empty() {
                    sqlx::query(MEMORY_FOR_CANDIDATE_ROWS)
                        .execute(&mut *transaction)
                        .await?;
                }
                let rows = search.fetch_all(&mut *transaction).await?;
                transaction.commit().await?;
                rows
            } else {
                search.fetch_all(&self.pool).await?
            };
            let matched = rows.first().map_or(0, |row| row.4);
            if start.is_none() || matched >= wanted {
                return Ok(super::documents_from_rows(rows, wanted));
            }
            // Where the matches are so sparse that half the library would be needed, search
            // it all now (a rare phrase of common words: every window re-reads the pages
            // holding its words), a phrase through the pairs of its words.
            let needed = pages_for(window, matched, wanted);
            window = next_window(window, needed);
            start = match self
                .window_start(request.owner_id, window.saturating_mul(2))
                .await?
            {
                Some(_) => self.window_start(request.owner_id, window).await?,
                None => {
                    sparse = needed >= window;
                    if sparse {
                        pairs = self.phrase_pairs(request.query).await?;
                    }
                    None
                }
            };
        }
    }

    async fn best_pages(
        &self,
        query: &SearchQuery,
        document_ids: &[String],
        per_document: i64,
    ) -> Result<Vec<PageMatch>> {
        let rows: Vec<(String, i32, f64, String)> = sqlx::query_as(BEST_PAGES)
            .persistent(false)
            .bind(tag_safe(&super::websearch(query)))
            .bind(crate::storage::json_list(document_ids))
            .bind(per_document)
            .fetch_all(&self.pool)
            .await?;
        Ok(super::pages_from_rows(
            rows.into_iter()
                .map(|(id, n, score, snippet)| (id, n, score, tags_back(&snippet)))
                .collect(),
        ))
    }

    async fn highlight_pages(
        &self,
        document_id: &str,
        query: &SearchQuery,
    ) -> Result<Vec<(i32, Highlighted)>> {
        let rows: Vec<(i32, String)> = sqlx::query_as(HIGHLIGHT_PAGES)
            .persistent(false)
            .bind(document_id)
            .bind(tag_safe(&super::websearch(query)))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(n, text)| (n, Highlighted::parse(&tags_back(&text))))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{next_window, pages_for};

    #[test]
    fn windows_grow_to_the_density_seen() {
        // 450 of 5,000 wanted in 5,000 pages: about 69,000 pages should hold them.
        assert_eq!(next_window(5_000, pages_for(5_000, 450, 5_000)), 69_444);
        // 113 of 2,000 in 2,000: a window of 44,000, not one capped at 16 times (32,000).
        assert_eq!(next_window(2_000, pages_for(2_000, 113, 2_000)), 44_247);
        // Nearly enough: still at least twice as large, so the search ends soon.
        assert_eq!(next_window(5_000, pages_for(5_000, 4_900, 5_000)), 10_000);
        // Nothing seen: no bound (the caller then searches the whole library).
        assert_eq!(next_window(5_000, pages_for(5_000, 0, 5_000)), i64::MAX);
        assert_eq!(
            next_window(i64::MAX / 2, pages_for(i64::MAX / 2, 1, 5_000)),
            i64::MAX - 1,
            "no overflow"
        );
        // What decides searching the whole library is the density itself, unbounded.
        assert_eq!(pages_for(2_000, 3, 2_000), 1_666_666);
        assert_eq!(pages_for(2_000, 0, 2_000), i64::MAX);
    }
}
