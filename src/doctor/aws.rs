//! The AWS side of a deployment: the bucket and its region, Textract's completion notices,
//! and the SQS queues Lector reads.

use super::report::{Report, within};
use crate::{
    app::status::check_textract,
    config::{BlobStoreChoice, Config},
    extraction::Engines,
};

/// Textract publishes completion notices only to topics whose name starts with this (the
/// `AmazonTextractServiceRole` policy allows no other).
const TEXTRACT_TOPIC_PREFIX: &str = "AmazonTextract";

pub(super) async fn aws(config: &Config, engines: &Engines, report: &mut Report) {
    let uses_textract = config.engine.uses_textract();
    let uses_s3 = config.blob_store == BlobStoreChoice::S3 || uses_textract;
    if !uses_s3 && config.ingest_sqs_queue_url.is_none() {
        report.skipped(
            "aws",
            "not used: originals in the database, local engine, no S3 ingestion",
        );
        return;
    }
    match engines.blobs.s3() {
        None => report.problem("s3", "no LECTOR_S3_BUCKET, which this configuration needs"),
        Some(s3) => {
            match within(s3.check_access()).await {
                Ok(()) => report.ok(
                    "s3",
                    format!("bucket {} is there and may be listed", s3.bucket()),
                ),
                Err(reason) => report.problem("s3", reason),
            }
            match (s3.client_region(), within(s3.bucket_region()).await) {
                (None, _) => report.problem("region", "no AWS region: set AWS_REGION"),
                (Some(region), Ok(bucket)) if region == bucket => {
                    report.ok("region", format!("bucket and Textract both in {region}"));
                }
                (Some(region), Ok(bucket)) => report.problem(
                    "region",
                    format!(
                        "the bucket {} is in {bucket} but Lector calls Textract in {region}: \
                         Textract reads only buckets in its own region (set AWS_REGION={bucket})",
                        s3.bucket()
                    ),
                ),
                (Some(_), Err(reason)) => report.problem(
                    "region",
                    format!(
                        "cannot read the bucket's region ({reason}): the role needs \
                         s3:GetBucketLocation"
                    ),
                ),
            }
        }
    }
    if uses_textract {
        let found = check_textract(engines.textract.as_ref()).await;
        report.check("textract", found, |detail| {
            format!("Textract did not answer as it should ({detail})")
        });
    } else {
        report.skipped("textract", "not used by the local engine");
    }
    match &config.textract_notices {
        None if uses_textract => report.skipped(
            "notices",
            "no completion notices: workers poll Textract (set LECTOR_TEXTRACT_SNS_TOPIC_ARN, \
             _SNS_ROLE_ARN and _SQS_QUEUE_URL to be told instead)",
        ),
        None => {}
        Some(notices) => {
            let topic = notices.sns_topic_arn.rsplit(':').next().unwrap_or_default();
            if topic.starts_with(TEXTRACT_TOPIC_PREFIX) {
                report.ok("notices", format!("topic {topic}"));
            } else {
                report.problem(
                    "notices",
                    format!(
                        "the SNS topic {topic:?} does not start with {TEXTRACT_TOPIC_PREFIX}: \
                         Textract's service role may publish only to such topics, so no \
                         notice would arrive"
                    ),
                );
            }
            if !notices.sns_role_arn.starts_with("arn:") || !notices.sns_role_arn.contains(":role/")
            {
                report.problem(
                    "notices",
                    format!(
                        "LECTOR_TEXTRACT_SNS_ROLE_ARN {:?} is not an IAM role ARN",
                        notices.sns_role_arn
                    ),
                );
            }
            queue(engines, "notices-queue", &notices.sqs_queue_url, report).await;
        }
    }
    if let Some(url) = &config.ingest_sqs_queue_url {
        queue(engines, "ingest-queue", url, report).await;
    }
}

async fn queue(engines: &Engines, check: &'static str, url: &str, report: &mut Report) {
    let Some(sqs) = &engines.sqs else {
        report.problem(check, "no SQS client (needs LECTOR_S3_BUCKET)");
        return;
    };
    let answer = within(async {
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| crate::aws::error_in_words(&e))
    })
    .await;
    match answer {
        Ok(_) => report.ok(check, format!("{url} may be read")),
        Err(reason) => report.problem(check, format!("{url}: {reason}")),
    }
}
