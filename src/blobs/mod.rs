//! Where original PDFs live: in the database (in chunks, see `storage`) or on S3
//! (`LECTOR_BLOB_STORE=s3`, key derived from the SHA-256). Both are read back a piece at a
//! time, so neither a download nor a worker holds a whole file in memory.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream, stream::BoxStream};
use tokio::io::AsyncWriteExt;

use crate::{
    config::{BlobStoreChoice, Config},
    domain::Document,
    storage::{self, Store},
};

/// An original read back a piece at a time.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Originals on S3, under `prefix` in `bucket`.
#[derive(Debug, Clone)]
pub struct S3Originals {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// An original put on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key.
    pub key: String,
    /// False when the same bytes were already there (nothing was uploaded).
    pub created: bool,
}

impl S3Originals {
    /// Originals in `bucket` under `prefix`.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        S3Originals {
            client,
            bucket,
            prefix,
        }
    }

    /// The S3 client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Checks that the bucket is in the region the clients call (Textract reads only from a
    /// bucket in its own region). Unknown answers (no permission to ask) are only logged.
    pub async fn check_region(&self) -> anyhow::Result<()> {
        let Some(region) = self.client_region() else {
            anyhow::bail!("no AWS region is configured: set AWS_REGION");
        };
        match self.bucket_region().await {
            Ok(bucket_region) if bucket_region != region => anyhow::bail!(
                "LECTOR_S3_BUCKET {} is in {bucket_region} but Lector calls AWS in {region}: \
                 S3 and Textract must be in the same region (set AWS_REGION={bucket_region})",
                self.bucket
            ),
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), bucket = %self.bucket, "could not check the bucket's region");
                Ok(())
            }
        }
    }

    /// The region the clients call, if one is configured.
    pub fn client_region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    /// The bucket's region, as S3 reports it.
    pub async fn bucket_region(&self) -> anyhow::Result<String> {
        let location = self
            .client
            .get_bucket_location()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(crate::aws::error_in_words(&e)))?;
        // S3 answers with no constraint for us-east-1.
        Ok(location
            .location_constraint()
            .map(|c| c.as_str().to_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "us-east-1".into()))
    }

    /// Checks that the bucket exists and these credentials may list it (`HeadBucket`).
    pub async fn check_access(&self) -> anyhow::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => anyhow::anyhow!("the bucket {} does not exist", self.bucket),
                Some(403) => anyhow::anyhow!(
                    "access to the bucket {} is denied (the role needs s3:ListBucket on it)",
                    self.bucket
                ),
                _ => anyhow::anyhow!(crate::aws::error_in_words(&e)),
            })?;
        Ok(())
    }

    /// The key of the original whose SHA-256 is `sha256`: the same bytes, the same key.
    pub fn key_for(&self, sha256: &str) -> String {
        format!("{}{sha256}.pdf", self.prefix)
    }

    /// Uploads the file at `path` under the key of `sha256`, unless it is already there.
    pub async fn ensure(&self, sha256: &str, path: &Path) -> anyhow::Result<StoredObject> {
        let key = self.key_for(sha256);
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        match head {
            Ok(_) => {
                return Ok(StoredObject {
                    key,
                    created: false,
                });
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("checking s3://{}/{key}", self.bucket))
                );
            }
        }
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .context("reading the upload")?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/pdf")
            .body(body)
            .send()
            .await
            .with_context(|| format!("uploading the original to s3://{}/{key}", self.bucket))?;
        Ok(StoredObject { key, created: true })
    }

    async fn get(&self, key: &str) -> anyhow::Result<aws_sdk_s3::primitives::ByteStream> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("reading s3://{}/{key}", self.bucket))?;
        Ok(object.body)
    }

    /// Removes the object.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("deleting s3://{}/{key}", self.bucket))?;
        Ok(())
    }
}

/// Where originals are written, and how to read any document's original back.
#[derive(Debug, Clone)]
pub struct BlobStore {
    choice: BlobStoreChoice,
    s3: Option<S3Originals>,
}

impl BlobStore {
    /// The store `config` asks for; `s3` is there whenever a bucket is configured.
    pub fn new(config: &Config, s3: Option<S3Originals>) -> Self {
        BlobStore {
            choice: config.blob_store,
            s3,
        }
    }

    /// The S3 side, when a bucket is configured (Textract reads its input from there).
    pub fn s3(&self) -> Option<&S3Originals> {
        self.s3.as_ref()
    }

    /// Puts a new original where this store keeps originals. `None`: in the database, with
    /// the document's row.
    pub async fn put(&self, sha256: &str, path: &Path) -> anyhow::Result<Option<StoredObject>> {
        match (self.choice, &self.s3) {
            (BlobStoreChoice::Database, _) => Ok(None),
            (BlobStoreChoice::S3, Some(s3)) => Ok(Some(s3.ensure(sha256, path).await?)),
            (BlobStoreChoice::S3, None) => {
                anyhow::bail!("LECTOR_BLOB_STORE=s3 needs LECTOR_S3_BUCKET")
            }
        }
    }

    fn s3_for(&self, key: &str) -> anyhow::Result<&S3Originals> {
        self.s3
            .as_ref()
            .with_context(|| format!("the original is on S3 ({key}) but no bucket is configured"))
    }

    /// Writes the original of `doc` to `path`.
    pub async fn copy_to_file(
        &self,
        store: &dyn Store,
        doc: &Document,
        path: &Path,
    ) -> storage::Result<()> {
        let mut file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        match &doc.blob_key {
            Some(key) => {
                let mut body = self.s3_for(key)?.get(key).await?.into_async_read();
                tokio::io::copy(&mut body, &mut file)
                    .await
                    .context("copying the original from S3")?;
            }
            None => {
                for seq in 0..store.blob_chunk_count(&doc.id).await? {
                    let chunk = store.blob_chunk(&doc.id, seq).await?;
                    file.write_all(&chunk)
                        .await
                        .context("writing the original to a temporary file")?;
                }
            }
        }
        file.flush()
            .await
            .context("writing the original to a temporary file")?;
        Ok(())
    }

    /// The original of `doc`, a piece at a time.
    pub async fn download(
        &self,
        store: Arc<dyn Store>,
        doc: &Document,
    ) -> storage::Result<ByteStream> {
        if let Some(key) = &doc.blob_key {
            let body = self.s3_for(key)?.get(key).await?.into_async_read();
            return Ok(tokio_util::io::ReaderStream::new(body).boxed());
        }
        let chunks = store.blob_chunk_count(&doc.id).await?;
        let id = doc.id.clone();
        let pieces = stream::try_unfold(0i64, move |seq| {
            let (store, id) = (store.clone(), id.clone());
            async move {
                if seq >= chunks {
                    return Ok::<_, storage::Error>(None);
                }
                let chunk = store.blob_chunk(&id, seq).await?;
                Ok(Some((Bytes::from(chunk), seq + 1)))
            }
        });
        Ok(pieces.map_err(std::io::Error::other).boxed())
    }

    /// Removes the S3 object of a deleted document when no other document uses it.
    pub async fn forget(&self, store: &dyn Store, doc: &Document) -> storage::Result<()> {
        if let Some(key) = &doc.blob_key
            && store.count_documents_with_blob_key(key).await? == 0
        {
            self.s3_for(key)?.delete(key).await?;
        }
        Ok(())
    }
}
