//! AWS clients, configured from the standard chain (instance role on Elastic Beanstalk,
//! environment, profile) and, for local stand-ins, `AWS_ENDPOINT_URL`. No keys in code.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::Config;

/// The shared SDK configuration for `config`.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &config.aws_region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.aws_endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// An S3 client. Stand-ins are addressed path-style (`endpoint/bucket/key`).
pub fn s3_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(config.aws_endpoint_url.is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A Textract client.
pub fn textract_client(sdk: &SdkConfig) -> aws_sdk_textract::Client {
    aws_sdk_textract::Client::new(sdk)
}
