//! `lector doctor`: checks how a deployment is wired and says what is wrong in plain words —
//! the database (reachable, migrated, encrypted), the bucket (there, allowed, in Textract's
//! region), Textract and its completion notices, the queues, OCR, the parser's sandbox, the
//! time limits against each other, and the Elastic Beanstalk bundle's nginx limits against
//! Lector's. The checks `/readyz` makes are the same functions ([`crate::app::status`]); the
//! doctor adds what to do about a failed one.
//!
//! It only looks: nothing is migrated, created or sent for extraction.

mod aws;
pub mod bundle;
mod limits;
mod report;
mod sandbox;

use std::path::Path;

use secrecy::ExposeSecret;

use crate::{
    app::status::{check_database, check_migrations, check_ocr},
    config::Config,
    engines::ocr::OcrAvailability,
    startup,
};
use bundle::Bundle;
use report::within;
pub use report::{Finding, Report, Verdict};

/// Runs every check for `config`; `bundle` is the Elastic Beanstalk bundle (zip or directory)
/// whose nginx and Procfile are checked, if any.
pub async fn examine(config: &Config, bundle: Option<&Path>) -> Report {
    let mut report = Report::default();
    database(config, &mut report).await;
    let engines = match startup::engines(config).await {
        Ok(engines) => engines,
        Err(error) => {
            report.problem("sandbox", format!("{error:#}"));
            return report;
        }
    };
    aws::aws(config, &engines, &mut report).await;
    ocr(config, &engines.ocr, &mut report);
    sandbox::check(config, &mut report).await;
    limits::time_limits(config, &mut report);
    match bundle {
        None => report.skipped(
            "bundle",
            "no bundle given (--bundle dist/lector-eb.zip, or run from the unpacked bundle)",
        ),
        Some(path) => match Bundle::open(path) {
            Ok(bundle) => limits::check_bundle(config, &bundle, &mut report),
            Err(error) => report.problem("bundle", format!("{error:#}")),
        },
    }
    report
}

async fn database(config: &Config, report: &mut Report) {
    let connected =
        match within(async { startup::open(config).await.map_err(|e| format!("{e:#}")) }).await {
            Ok(connected) => connected,
            Err(reason) => {
                report.problem("database", format!("cannot connect: {reason}"));
                report.skipped("migrations", "no database");
                return;
            }
        };
    secret_key(config, connected.can_seal, report);
    let store = connected.store;
    let found = check_database(store.as_ref()).await;
    match found.ok {
        true => report.ok("database", format!("{} answers", found.detail)),
        false => report.problem(
            "database",
            format!("connected but a query failed: {}", found.detail),
        ),
    }
    if config.is_postgres() {
        database_tls(config, report);
    }
    let found = check_migrations(store.as_ref()).await;
    report.check("migrations", found, |detail| {
        format!(
            "{detail} (serve and worker apply them at start; a new database needs \
             `lector migrate`)"
        )
    });
}

/// The key that seals the secrets kept in the database (see [`crate::sealing`]).
fn secret_key(config: &Config, can_seal: bool, report: &mut Report) {
    use crate::sealing::KeySource;
    match (&config.secret_key, can_seal) {
        (KeySource::Given(_), true) => report.ok("secret-key", "from LECTOR_SECRET_KEY"),
        (KeySource::File(path), true) => report.ok("secret-key", format!("in {}", path.display())),
        (KeySource::Ephemeral, true) => report.ok("secret-key", "made for this in-memory database"),
        _ => report.problem(
            "secret-key",
            "no LECTOR_SECRET_KEY: Postgres needs one to seal PDF passwords and webhook \
             secrets, the same for every instance (`openssl rand -hex 32`)",
        ),
    }
}

/// Production databases are reached over TLS; a loopback or socket connection need not be.
fn database_tls(config: &Config, report: &mut Report) {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr;
    let Ok(options) = PgConnectOptions::from_str(config.database_url.expose_secret()) else {
        return;
    };
    let host = options.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match options.get_ssl_mode() {
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
            report.ok("database-tls", format!("required for {host}"));
        }
        _ if local => report.ok("database-tls", format!("not required for local {host}")),
        _ => report.problem(
            "database-tls",
            format!(
                "{host} is reached without requiring TLS: add sslmode=require (or verify-full) \
                 to DATABASE_URL, or set LECTOR_DATABASE_SSLMODE with RDS_*"
            ),
        ),
    }
}

fn ocr(config: &Config, ocr: &OcrAvailability, report: &mut Report) {
    let found = check_ocr(config, ocr);
    if !found.ok {
        let detail = found.detail;
        report.problem(
            "ocr",
            format!("{detail}: scanned pages cannot be read (or use LECTOR_ENGINE=hybrid)"),
        );
        return;
    }
    if ocr.unavailable().is_some() {
        report.skipped("ocr", found.detail);
        return;
    }
    match startup::check_ocr(config, ocr) {
        Ok(()) => report.ok(
            "ocr",
            format!(
                "{} with {} (installed: {}; {})",
                config.ocr.mode.as_str(),
                config.ocr.languages,
                ocr.languages().join(", "),
                ocr.library().unwrap_or_default()
            ),
        ),
        Err(error) => report.problem("ocr", format!("{error:#}")),
    }
}
