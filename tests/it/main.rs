//! The integration tests: one binary, one module per area, all on one harness
//! ([`harness`]: the real app on `127.0.0.1:0` with a fresh database, the `lector` binary as a
//! child process, the AWS stand-ins, free ports and [`harness::eventually`]).
//!
//! One binary rather than one per file: it links once, and its tests share one pool of test
//! threads instead of running file after file. Tests in it share one process, so none of them
//! may change what is process-wide (the environment, the current directory, a global
//! recorder's numbers): they pass such things to what they start instead.

mod harness;

mod accounts;
mod api;
mod aws;
mod aws_standins;
mod browser;
mod bundle;
mod corpus;
mod doctor;
mod extract_cli;
mod inspector;
mod jobs;
mod ocr;
mod operability;
mod processes;
mod sandbox;
mod scale_out;
mod search;
mod security;
mod storage_contract;
mod web;
mod webhooks;
