//! The SQS consumers: S3 `ObjectCreated` events that become documents (ingest), and Textract's
//! completion notices that wake the job waiting for them (notices). Each runs as one task per
//! process, long-polling its queue until shutdown, and deletes a message only once it is
//! handled, so a crash hands it to another process.

pub mod ingest;
pub mod notices;
mod sqs;
