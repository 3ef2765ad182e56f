//! The pages extracted from documents, as they are read back (workers write them with
//! `QueueStore::insert_pages`, which checks the job is still theirs).

use crate::domain::DocumentId;
use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Error, Result, sql::Backend, sql::SqlStore};
use crate::domain::{Page, PageSource};

/// Reading a document's pages.
#[async_trait]
pub trait PageStore: Send + Sync {
    /// Every extracted page of a document, in page order.
    async fn list_pages(&self, id: &DocumentId) -> Result<Vec<Page>>;
    /// Numbers of the pages already stored (a resumed job skips them).
    async fn stored_page_numbers(&self, id: &DocumentId) -> Result<Vec<i32>>;
}

/// A row of the pages query.
#[derive(FromRow)]
struct PageRow {
    page_number: i32,
    text: String,
    source: String,
    char_count: i32,
    extraction_ms: i64,
    error: Option<String>,
    confidence: Option<f64>,
    dpi: Option<i32>,
    ocr_reason: Option<String>,
}

impl TryFrom<PageRow> for Page {
    type Error = Error;

    fn try_from(row: PageRow) -> Result<Self> {
        let source = PageSource::parse(&row.source).ok_or_else(|| {
            anyhow::anyhow!("unknown page source {:?} in the database", row.source)
        })?;
        Ok(Page {
            number: row.page_number,
            text: row.text,
            source,
            char_count: row.char_count,
            extraction_ms: row.extraction_ms,
            error: row.error,
            confidence: row.confidence,
            dpi: row.dpi,
            ocr_reason: row.ocr_reason,
        })
    }
}

#[async_trait]
impl<DB: Backend> PageStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Decode<'q, DB> + Type<DB>,
    for<'q> f64: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn list_pages(&self, id: &DocumentId) -> Result<Vec<Page>> {
        let rows: Vec<PageRow> = sqlx::query_as(
            "select page_number, text, source, char_count, extraction_ms, error, confidence, dpi, ocr_reason \
             from pages where document_id = $1 order by page_number",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn stored_page_numbers(&self, id: &DocumentId) -> Result<Vec<i32>> {
        Ok(sqlx::query_scalar(
            "select page_number from pages where document_id = $1 order by page_number",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?)
    }
}
