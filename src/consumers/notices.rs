//! Textract's completion notices: Textract publishes to SNS, SNS delivers to an SQS queue, and
//! one consumer per process records each notice in the database, where the worker waiting for
//! that job finds it. This is the way AWS recommends (the Get API is throttled); a worker
//! still asks Textract itself now and then, in case a notice is lost.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::storage::Store;

/// Receives notices from `queue_url` until `stop`, recording each and then deleting it.
pub async fn consume(
    store: Arc<dyn Store>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    stop: CancellationToken,
) {
    while let Some(messages) = super::sqs::next_batch(&sqs, &queue_url, &stop).await {
        for message in messages {
            let Some((job_id, status)) = message.body().and_then(parse_notice) else {
                // Left in the queue: after its receive limit SQS moves it to the dead-letter queue.
                tracing::warn!(message.id = ?message.message_id(), "not a Textract completion notice");
                continue;
            };
            if let Err(error) = store.record_textract_completion(&job_id, &status).await {
                tracing::warn!(%error, textract.job_id = %job_id, "could not record a Textract notice");
                continue;
            }
            tracing::info!(textract.job_id = %job_id, %status, "Textract notice received");
            super::sqs::delete(&sqs, &queue_url, &message).await;
        }
    }
}

/// The job id and status of a notice, delivered through SNS (an envelope whose `Message` is
/// the notice) or raw.
pub fn parse_notice(body: &str) -> Option<(String, String)> {
    let outer: Value = serde_json::from_str(body).ok()?;
    let notice = match outer.get("Message").and_then(Value::as_str) {
        Some(inner) => serde_json::from_str(inner).ok()?,
        None => outer,
    };
    let job_id = notice.get("JobId")?.as_str()?.to_owned();
    let status = notice.get("Status")?.as_str()?.to_owned();
    Some((job_id, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_through_the_sns_envelope_or_raw() {
        let raw = r#"{"JobId":"j1","Status":"SUCCEEDED","API":"StartDocumentTextDetection","JobTag":"doc"}"#;
        assert_eq!(parse_notice(raw), Some(("j1".into(), "SUCCEEDED".into())));
        let envelope = serde_json::json!({"Type": "Notification", "Message": raw}).to_string();
        assert_eq!(
            parse_notice(&envelope),
            Some(("j1".into(), "SUCCEEDED".into()))
        );
        assert_eq!(parse_notice("not json"), None);
        assert_eq!(
            parse_notice(r#"{"Type":"Notification","Message":"{}"}"#),
            None
        );
    }
}
