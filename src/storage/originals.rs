//! The original PDFs kept in the database, in chunks (those on S3 are only counted here).
//! They are written with their document, in `create_document`'s transaction.

use crate::domain::DocumentId;
use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use tokio::io::AsyncReadExt;

use super::{Result, sql::Backend, sql::SqlStore};

/// Bytes of the original stored per row of the blob table: big enough to be cheap to
/// insert, small enough that a download never holds more than this in memory.
pub const BLOB_CHUNK_BYTES: usize = 1024 * 1024;

/// Reading the originals back.
#[async_trait]
pub trait OriginalStore: Send + Sync {
    /// How many chunks the original is stored in.
    async fn blob_chunk_count(&self, id: &DocumentId) -> Result<i64>;
    /// One chunk of the original, `seq` counting from 0.
    async fn blob_chunk(&self, id: &DocumentId, seq: i64) -> Result<Vec<u8>>;
    /// How many documents keep their original under this S3 key.
    async fn count_documents_with_blob_key(&self, key: &str) -> Result<i64>;
}

#[async_trait]
impl<DB: Backend> OriginalStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn blob_chunk_count(&self, id: &DocumentId) -> Result<i64> {
        Ok(
            sqlx::query_scalar("select count(*) from document_blobs where document_id = $1")
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn blob_chunk(&self, id: &DocumentId, seq: i64) -> Result<Vec<u8>> {
        Ok(sqlx::query_scalar(
            "select data from document_blobs where document_id = $1 and seq = $2",
        )
        .bind(id.as_str())
        .bind(seq as i32)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn count_documents_with_blob_key(&self, key: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("select count(*) from documents where blob_key = $1")
                .bind(key)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Stores the original read from `file`, in chunks of [`BLOB_CHUNK_BYTES`], on the
/// connection of the transaction that stores its document.
pub(super) async fn store_original<DB: Backend>(
    tx: &mut DB::Connection,
    document_id: &str,
    file: &mut tokio::fs::File,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
{
    let mut seq: i32 = 0;
    loop {
        let mut chunk = Vec::with_capacity(BLOB_CHUNK_BYTES);
        (&mut *file)
            .take(BLOB_CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|e| anyhow::Error::new(e).context("reading the uploaded file"))?;
        if chunk.is_empty() {
            return Ok(());
        }
        sqlx::query("insert into document_blobs (document_id, seq, data) values ($1, $2, $3)")
            .bind(document_id)
            .bind(seq)
            .bind(chunk)
            .execute(&mut *tx)
            .await?;
        seq += 1;
    }
}
