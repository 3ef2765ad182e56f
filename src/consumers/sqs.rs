//! Reading an SQS queue the way both consumers (Textract notices, S3 events) need: long
//! polling, a pause after an error, and a prompt stop.

use std::time::Duration;

use aws_sdk_sqs::types::Message;
use tokio_util::sync::CancellationToken;

/// The next batch of messages from `queue_url` (waiting up to 20 s for one), or `None` once
/// `stop` is cancelled. Errors are logged and retried after a pause.
pub async fn next_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    stop: &CancellationToken,
) -> Option<Vec<Message>> {
    loop {
        let receive = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .send();
        let received = tokio::select! {
            _ = stop.cancelled() => return None,
            received = receive => received,
        };
        match received {
            Ok(output) => return Some(output.messages.unwrap_or_default()),
            Err(error) => {
                let error = anyhow::Error::new(error);
                tracing::warn!(error = %format!("{error:#}"), queue = queue_url, "could not receive from SQS");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

/// Deletes a handled message. A failure only means it may be delivered (and handled) again.
pub async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, message: &Message) {
    let Some(receipt) = message.receipt_handle() else {
        return;
    };
    if let Err(error) = sqs
        .delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
    {
        tracing::warn!(error = %anyhow::Error::new(error), queue = queue_url, "could not delete an SQS message");
    }
}
