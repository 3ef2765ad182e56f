//! What operators read: the readiness report behind `/readyz` (everything a request needs is
//! there, with what is wrong in words) and the figures behind `/metrics` (from the database,
//! so every instance reports the same).

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    blobs::BlobStore,
    config::Config,
    domain::{Engine, PageSource, ocr::OcrMode},
    engines::{ocr::OcrAvailability, textract::Textract},
    storage::{self, QueueCounts, Store},
};

/// A readiness check that has not answered by then counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one answer from Textract stands for the next ones (its Get quota is shared with
/// the jobs).
const TEXTRACT_PROBE_MAX_AGE: Duration = Duration::from_secs(60);

/// One line of the readiness report.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Whether this part is ready.
    pub ok: bool,
    /// What was found, or what is wrong.
    pub detail: String,
}

impl Check {
    fn ok(detail: impl Into<String>) -> Self {
        Check {
            ok: true,
            detail: detail.into(),
        }
    }

    fn failed(detail: impl Into<String>) -> Self {
        Check {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The readiness report, as `/readyz` shows it.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready` or `not ready`.
    pub status: &'static str,
    /// The engine new documents are read with.
    pub engine: Engine,
    /// Each part by name.
    pub checks: BTreeMap<&'static str, Check>,
    /// Jobs waiting, when the database answered.
    pub jobs_queued: Option<i64>,
    /// Jobs running, when the database answered.
    pub jobs_running: Option<i64>,
}

impl Readiness {
    /// True when every check passed.
    pub fn is_ready(&self) -> bool {
        self.checks.values().all(|check| check.ok)
    }
}

/// The figures `/metrics` reports from the database.
#[derive(Debug)]
pub struct Figures {
    /// Documents by status.
    pub documents_by_status: Vec<(String, i64)>,
    /// Stored pages by the engine that produced them.
    pub pages_by_source: Vec<(String, i64)>,
    /// Extraction jobs by state.
    pub queue: QueueCounts,
    /// How long the longest-waiting due job has waited.
    pub queue_age_seconds: f64,
    /// Pages read by Textract, ever.
    pub textract_pages: i64,
    /// What those pages cost at `LECTOR_TEXTRACT_PRICE_PER_1000_PAGES`.
    pub textract_estimated_cost_usd: f64,
    /// Pages sent to Textract this calendar month (UTC).
    pub textract_pages_this_month: i64,
    /// `LECTOR_TEXTRACT_MONTHLY_PAGE_BUDGET`.
    pub textract_monthly_page_budget: Option<u64>,
}

/// USD for `pages` at `price_per_1000` per thousand pages.
pub fn estimated_cost(pages: i64, price_per_1000: f64) -> f64 {
    pages as f64 * price_per_1000 / 1000.0
}

/// The readiness and figures of one deployment.
#[derive(Clone)]
pub struct Status {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    textract: Option<Textract>,
    ocr: OcrAvailability,
    config: Arc<Config>,
}

impl Status {
    /// Reports over these parts; `textract` when it is configured.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        textract: Option<Textract>,
        ocr: OcrAvailability,
        config: Arc<Config>,
    ) -> Self {
        Status {
            store,
            blobs,
            textract,
            ocr,
            config,
        }
    }

    /// Database reachable and migrated, blob store reachable, engines available (Tesseract
    /// for the local engine, Textract answering for the others); each check bounded in time.
    pub async fn readiness(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        checks.insert("database", check_database(self.store.as_ref()).await);
        checks.insert("migrations", check_migrations(self.store.as_ref()).await);
        checks.insert("blob_store", check_blob_store(&self.blobs).await);
        if self.config.engine.uses_textract() {
            checks.insert("textract", check_textract(self.textract.as_ref()).await);
        }
        checks.insert("ocr", check_ocr(&self.config, &self.ocr));
        let queue = self.store.queue_counts().await.ok();
        let mut report = Readiness {
            status: "not ready",
            engine: self.config.engine,
            checks,
            jobs_queued: queue.as_ref().map(|q| q.queued),
            jobs_running: queue.as_ref().map(|q| q.running),
        };
        if report.is_ready() {
            report.status = "ready";
        }
        report
    }

    /// The figures `/metrics` reports from the database.
    pub async fn figures(&self) -> storage::Result<Figures> {
        let pages_by_source = self.store.pages_by_source().await?;
        let textract_pages = pages_by_source
            .iter()
            .find(|(source, _)| source == PageSource::Textract.as_str())
            .map_or(0, |(_, n)| *n);
        Ok(Figures {
            documents_by_status: self.store.documents_by_status().await?,
            queue: self.store.queue_counts().await?,
            queue_age_seconds: self.store.queue_age_seconds().await?,
            textract_estimated_cost_usd: estimated_cost(
                textract_pages,
                self.config.textract_price_per_1000_pages,
            ),
            textract_pages,
            textract_pages_this_month: self.store.textract_pages_this_month().await?,
            textract_monthly_page_budget: self.config.textract_monthly_page_budget,
            pages_by_source,
        })
    }
}

// The checks of the readiness report, one each; `lector doctor` runs the same ones and adds
// its advice to what they find.

/// The database answers a query; the detail names the backend.
pub async fn check_database(store: &dyn Store) -> Check {
    match within("the database", store.ping()).await {
        Ok(()) => Check::ok(store.backend()),
        Err(reason) => Check::failed(reason),
    }
}

/// Every migration of this build is applied.
pub async fn check_migrations(store: &dyn Store) -> Check {
    match within("reading the migrations", store.pending_migrations()).await {
        Ok(0) => Check::ok("all applied"),
        Ok(n) => Check::failed(format!("{n} not applied: run `lector migrate`")),
        Err(reason) => Check::failed(reason),
    }
}

/// Originals can be stored: always in the database, or the bucket answers from its region.
pub async fn check_blob_store(blobs: &BlobStore) -> Check {
    match blobs.s3() {
        None => Check::ok("database"),
        Some(s3) => match within("the S3 bucket", s3.check_region()).await {
            Ok(()) => Check::ok(format!("s3://{}", s3.bucket())),
            Err(reason) => Check::failed(reason),
        },
    }
}

/// Textract answers (at most one call a minute: its Get quota is shared with the jobs).
pub async fn check_textract(textract: Option<&Textract>) -> Check {
    let Some(textract) = textract else {
        return Check::failed("no LECTOR_S3_BUCKET: Textract reads originals from S3");
    };
    match within("Textract", textract.probe_cached(TEXTRACT_PROBE_MAX_AGE)).await {
        Ok(()) => Check::ok("answers"),
        Err(reason) => Check::failed(reason),
    }
}

/// Tesseract is there when the engine needs it.
pub fn check_ocr(config: &Config, ocr: &OcrAvailability) -> Check {
    // Only the local engine depends on Tesseract for scanned pages; Textract and hybrid send
    // them to AWS.
    let needed = config.engine == Engine::Local && config.ocr.mode != OcrMode::Off;
    match ocr.unavailable() {
        None => Check::ok(format!(
            "{} ({})",
            ocr.library().unwrap_or_default(),
            ocr.languages().join(", ")
        )),
        Some(reason) if needed => Check::failed(reason),
        Some(reason) => Check::ok(format!("not needed by this engine ({reason})")),
    }
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error:#}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_priced_per_thousand_pages() {
        assert!((estimated_cost(2000, 1.5) - 3.0).abs() < 1e-9);
        assert_eq!(estimated_cost(0, 1.5), 0.0);
    }
}
