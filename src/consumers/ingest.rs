//! S3-triggered ingestion: with `LECTOR_INGEST_SQS_QUEUE_URL`, S3 `ObjectCreated` event
//! notifications arrive on SQS and every new `.pdf` under `LECTOR_INGEST_S3_PREFIX` becomes a
//! document, through the same checks as an upload. A message delivered twice creates one
//! document: the second finds the same SHA-256 already stored. Ingested documents belong to
//! `LECTOR_INGEST_OWNER` (default: the first account).

use anyhow::Context;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    app::accounts::Accounts,
    app::documents::{Documents, IncomingFileWriter, UploadError},
};

/// One object named by an S3 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
}

/// An S3 ingestion consumer: where the events come from and where their PDFs go.
pub struct Ingestion {
    /// Takes each PDF in as an upload.
    pub documents: Documents,
    /// Names the owner of ingested documents.
    pub accounts: Accounts,
    /// Reads the objects.
    pub s3: aws_sdk_s3::Client,
    /// Receives the events.
    pub sqs: aws_sdk_sqs::Client,
    /// `LECTOR_INGEST_SQS_QUEUE_URL`.
    pub queue_url: String,
    /// `LECTOR_INGEST_S3_PREFIX`: only keys under it are read.
    pub prefix: String,
    /// `LECTOR_MAX_UPLOAD_BYTES`: a larger object is refused like a larger upload.
    pub max_bytes: u64,
}

enum IngestError {
    Refused(String),
    Retry(anyhow::Error),
}

impl Ingestion {
    /// Receives S3 events until `stop`, turning new PDFs into documents.
    pub async fn consume(self, stop: CancellationToken) {
        while let Some(messages) = super::sqs::next_batch(&self.sqs, &self.queue_url, &stop).await {
            for message in messages {
                if self.handle(message.body().unwrap_or_default()).await {
                    super::sqs::delete(&self.sqs, &self.queue_url, &message).await;
                }
            }
        }
    }

    /// Ingests what one event names; false when an object should be tried again, so the
    /// message stays in the queue and SQS delivers it again after its visibility timeout.
    async fn handle(&self, body: &str) -> bool {
        let mut handled = true;
        for object in parse_event(body)
            .iter()
            .filter(|o| wanted(&o.key, &self.prefix))
        {
            match self.ingest(object).await {
                Ok(id) => {
                    tracing::info!(bucket = %object.bucket, key = %object.key, document.id = %id, "ingested from S3")
                }
                Err(IngestError::Refused(reason)) => {
                    tracing::info!(bucket = %object.bucket, key = %object.key, %reason, "S3 object refused")
                }
                Err(IngestError::Retry(error)) => {
                    tracing::warn!(bucket = %object.bucket, key = %object.key, error = %format!("{error:#}"), "S3 object not ingested yet");
                    handled = false;
                }
            }
        }
        handled
    }

    async fn ingest(&self, object: &CreatedObject) -> Result<String, IngestError> {
        let retry = |e: anyhow::Error| IngestError::Retry(e);
        let response = (self.s3.get_object())
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .with_context(|| format!("reading s3://{}/{}", object.bucket, object.key))
            .map_err(retry)?;
        let file_name = object.key.rsplit('/').next().unwrap_or("document.pdf");
        let uploads = self.documents.uploads_dir();
        let mut writer = IncomingFileWriter::new(uploads, file_name, self.max_bytes)
            .map_err(|e| retry(e.into()))?;
        let mut body = response.body;
        while let Some(chunk) = (body.try_next().await)
            .context("reading the object")
            .map_err(retry)?
        {
            writer.write(&chunk).await.map_err(upload_error)?;
        }
        let file = writer.finish().await.map_err(upload_error)?;
        let owner = self.accounts.ingest_owner().await.map_err(retry)?;
        let uploaded = (self.documents)
            .upload(owner.as_ref(), file, None, &Default::default())
            .await
            .map_err(upload_error)?;
        Ok(uploaded.document.id.into())
    }
}

fn upload_error(error: UploadError) -> IngestError {
    match error {
        UploadError::Internal(e) => IngestError::Retry(e),
        refused => IngestError::Refused(refused.to_string()),
    }
}

/// True for a `.pdf` key under `prefix`.
fn wanted(key: &str, prefix: &str) -> bool {
    key.starts_with(prefix) && key.to_ascii_lowercase().ends_with(".pdf")
}

/// The created objects an S3 event names (through an SNS envelope or raw). Keys in S3 events
/// are URL-encoded with `+` for spaces.
pub fn parse_event(body: &str) -> Vec<CreatedObject> {
    let Ok(outer) = serde_json::from_str::<Value>(body) else {
        return vec![];
    };
    let event = match outer.get("Message").and_then(Value::as_str) {
        Some(inner) => serde_json::from_str(inner).unwrap_or(Value::Null),
        None => outer,
    };
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    records
        .iter()
        .filter(|r| {
            r.get("eventName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("ObjectCreated:"))
        })
        .filter_map(|r| {
            let bucket = r.pointer("/s3/bucket/name")?.as_str()?.to_owned();
            let raw = r.pointer("/s3/object/key")?.as_str()?.replace('+', " ");
            let key = percent_encoding::percent_decode_str(&raw)
                .decode_utf8()
                .ok()?
                .into_owned();
            Some(CreatedObject { bucket, key })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_objects_are_read_from_s3_events() {
        let event = r#"{"Records":[
            {"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"inbox"},"object":{"key":"scans/My+Report%C3%A9.pdf"}}},
            {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"inbox"},"object":{"key":"scans/gone.pdf"}}}]}"#;
        let objects = parse_event(event);
        assert_eq!(
            objects,
            vec![CreatedObject {
                bucket: "inbox".into(),
                key: "scans/My Reporté.pdf".into()
            }]
        );
        let envelope = serde_json::json!({"Type": "Notification", "Message": event}).to_string();
        assert_eq!(parse_event(&envelope).len(), 1);
        assert!(parse_event(r#"{"Event":"s3:TestEvent"}"#).is_empty());
        assert!(parse_event("junk").is_empty());
    }

    #[test]
    fn only_pdfs_under_the_prefix_are_wanted() {
        assert!(wanted("scans/a.PDF", "scans/"));
        assert!(!wanted("other/a.pdf", "scans/"));
        assert!(!wanted("scans/a.txt", "scans/"));
        assert!(wanted("a.pdf", ""));
    }
}
