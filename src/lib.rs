//! Lector turns multi-page PDFs into searchable text.
//!
//! Start at [`startup`]: it builds the [`http`] router over an [`http::AppState`] and starts the
//! [`jobs`] workers. Uploads go through [`app`] (the use cases) into [`storage`] (all
//! SQL); workers claim jobs and have [`extraction`] read each document with the [`engines`]
//! (in a sandboxed child process, or Textract) and write its pages back.

pub mod app;
pub mod aws;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod consumers;
pub mod doctor;
pub mod domain;
pub mod engines;
pub mod extraction;
pub mod http;
pub mod jobs;
pub mod sealing;
pub mod sessions;
pub mod startup;
pub mod storage;
pub mod telemetry;
