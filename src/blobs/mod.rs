//! Where original PDFs live. Today: in the database, in chunks (see `storage`), read back one
//! chunk at a time so that neither a download nor a worker holds a whole file in memory.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use axum::body::Bytes;
use futures_util::{Stream, stream};
use tokio::io::AsyncWriteExt;

use crate::storage::{self, Store};

/// Writes the original of document `id` to `path`.
pub async fn copy_to_file(store: &dyn Store, id: &str, path: &Path) -> storage::Result<()> {
    let chunks = store.blob_chunk_count(id).await?;
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    for seq in 0..chunks {
        let chunk = store.blob_chunk(id, seq).await?;
        file.write_all(&chunk)
            .await
            .context("writing the original to a temporary file")?;
    }
    file.flush()
        .await
        .context("writing the original to a temporary file")?;
    Ok(())
}

/// The original of document `id` as a stream of chunks, for a download.
pub fn stream(
    store: Arc<dyn Store>,
    id: String,
    chunks: i64,
) -> impl Stream<Item = storage::Result<Bytes>> {
    stream::try_unfold(0i64, move |seq| {
        let store = store.clone();
        let id = id.clone();
        async move {
            if seq >= chunks {
                return Ok(None);
            }
            let chunk = store.blob_chunk(&id, seq).await?;
            Ok(Some((Bytes::from(chunk), seq + 1)))
        }
    })
}
