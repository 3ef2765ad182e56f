//! AWS clients, configured from the standard chain (instance role on Elastic Beanstalk,
//! environment, profile) and, for local stand-ins, `AWS_ENDPOINT_URL`. No keys in code.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use secrecy::ExposeSecret;

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
    if let Some((id, secret)) = &config.aws_static_credentials {
        let credentials = aws_sdk_s3::config::Credentials::new(
            id,
            secret.expose_secret(),
            None,
            None,
            "environment",
        );
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// An S3 client. Stand-ins are addressed path-style (`endpoint/bucket/key`).
pub fn s3_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_s3::Client {
    let stand_in = config
        .aws_endpoint_url_s3
        .as_ref()
        .or(config.aws_endpoint_url.as_ref());
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(stand_in.is_some());
    if let Some(endpoint) = &config.aws_endpoint_url_s3 {
        conf = conf.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// An SQS client (Textract's completion notices).
pub fn sqs_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_sqs::Client {
    let mut conf = aws_sdk_sqs::config::Builder::from(sdk);
    if let Some(endpoint) = &config.aws_endpoint_url_sqs {
        conf = conf.endpoint_url(endpoint);
    }
    aws_sdk_sqs::Client::from_conf(conf.build())
}

/// A Textract client.
pub fn textract_client(sdk: &SdkConfig, config: &Config) -> aws_sdk_textract::Client {
    let mut conf = aws_sdk_textract::config::Builder::from(sdk);
    if let Some(endpoint) = &config.aws_endpoint_url_textract {
        conf = conf.endpoint_url(endpoint);
    }
    aws_sdk_textract::Client::from_conf(conf.build())
}

/// An SDK error in words: the service's code and message when it answered, else the innermost
/// cause (the outer layers say only "service error" or "dispatch failure"). One `SdkError`
/// type serves every AWS client, so this takes S3, SQS and Textract errors alike.
pub fn error_in_words<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => {
            let mut current: &(dyn std::error::Error + 'static) = error;
            while let Some(source) = current.source() {
                current = source;
            }
            current.to_string()
        }
    }
}
