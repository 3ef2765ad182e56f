//! The use cases: what the web UI, the JSON API, the command line and the S3 consumer all
//! call. Each service holds what it needs (the store, the blob store, the configuration) and
//! answers in domain types; nothing here knows HTTP.

pub mod accounts;
pub mod documents;
pub mod search;
pub mod webhooks;
