//! Assembly: connect storage, build the state, start workers and the web server, and stop
//! them in order on shutdown. Startup is a function of (config, listener, shutdown future),
//! so tests start the real application on `127.0.0.1:0`.

use std::{future::Future, sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{App, accounts::Accounts},
    aws,
    blobs::{BlobStore, S3Originals},
    config::Config,
    domain::ocr::OcrMode,
    engines::{Sandbox, ocr::OcrAvailability, textract::Textract},
    extraction::Engines,
    http::{self, AppState},
    jobs,
    sessions::SessionBackend,
    storage::{Store, postgres::PostgresStore, sqlite::SqliteStore},
};

/// A connected database.
pub struct Connected {
    /// Lector's own tables.
    pub store: Arc<dyn Store>,
    /// Browser sessions.
    pub sessions: SessionBackend,
    /// Whether a key to seal stored secrets with is configured.
    pub can_seal: bool,
}

/// How often each process logs the queue's state.
const QUEUE_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Connects to `DATABASE_URL` and applies the migrations (Lector's and the sessions').
pub async fn connect(config: &Config) -> anyhow::Result<Connected> {
    let connected = open(config).await?;
    connected.store.migrate().await?;
    connected
        .sessions
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("creating the session table: {e}"))?;
    Ok(connected)
}

/// [`connect`], then, in the background, makes or drops the indexes that follow the
/// deployment's settings (`LECTOR_SEARCH_PHRASE_INDEX`): done by the processes that serve and
/// work, not by an administrator's `lector user add` run with other settings. Not awaited:
/// building the index of adjacent words takes minutes on a large library (about three per
/// 200,000 pages), and meanwhile the health check must answer and jobs run; searches use the
/// index once it is built.
pub async fn connect_to_serve(config: &Config) -> anyhow::Result<Connected> {
    let connected = connect(config).await?;
    seal_stored_secrets(&connected).await?;
    let store = connected.store.clone();
    let phrase_index = config.search_phrase_index;
    tokio::spawn(async move {
        if let Err(error) = store.index_phrases(phrase_index).await {
            tracing::error!(%error, "could not make or drop the index of adjacent words (LECTOR_SEARCH_PHRASE_INDEX); searches go on without it");
        }
    });
    Ok(connected)
}

/// `lector migrate`: [`connect`], then makes or drops the indexes that follow the settings
/// and waits until that is done, so that a deployment step can build them ahead of the
/// instances.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let connected = connect(config).await?;
    seal_stored_secrets(&connected).await?;
    connected
        .store
        .index_phrases(config.search_phrase_index)
        .await?;
    Ok(())
}

/// The processes that serve, work or migrate need the key that seals stored secrets, and
/// seal what an older Lector left in plaintext or sealed under a previous key.
async fn seal_stored_secrets(connected: &Connected) -> anyhow::Result<()> {
    anyhow::ensure!(
        connected.can_seal,
        "LECTOR_SECRET_KEY must be set with Postgres: the secrets kept in the database (PDF \
         passwords, webhook signing secrets) are sealed under it, and every instance needs the \
         same key. Make one with `openssl rand -hex 32` (on Elastic Beanstalk the template keeps \
         it in Secrets Manager; see docs/deploy.md)"
    );
    let sealed = connected.store.seal_stored_secrets().await?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed stored secrets under the current key");
    }
    Ok(())
}

/// Connects to `DATABASE_URL` without changing it (`lector doctor` only looks).
pub async fn open(config: &Config) -> anyhow::Result<Connected> {
    let url = config.database_url.expose_secret();
    let max = config.database_max_connections;
    let keyring = crate::sealing::Keyring::load(&config.secret_key, &config.secret_key_previous)?
        .map(Arc::new);
    let can_seal = keyring.is_some();
    let connected = if config.is_postgres() {
        let store = PostgresStore::connect(url, max)
            .await?
            .with_keyring(keyring);
        let sessions = SessionBackend::Postgres(tower_sessions_sqlx_store::PostgresStore::new(
            store.pool().clone(),
        ));
        Connected {
            store: Arc::new(store),
            sessions,
            can_seal,
        }
    } else {
        let store = SqliteStore::connect(url, max).await?.with_keyring(keyring);
        let sessions = SessionBackend::Sqlite(tower_sessions_sqlx_store::SqliteStore::new(
            store.pool().clone(),
        ));
        Connected {
            store: Arc::new(store),
            sessions,
            can_seal,
        }
    };
    Ok(connected)
}

/// What extraction needs: the blob store, the sandbox, and Textract when a bucket is set.
pub async fn engines(config: &Config) -> anyhow::Result<Engines> {
    let sandbox = Sandbox::new(config.sandbox_exe.clone(), config.sandbox_memory_mb)
        .map_err(|e| anyhow::anyhow!("creating the folder uploads are checked in: {e}"))?;
    let (s3, textract, sqs) = match &config.s3_bucket {
        Some(bucket) => {
            let sdk = aws::sdk_config(config).await;
            let s3 = S3Originals::new(
                aws::s3_client(&sdk, config),
                bucket.clone(),
                config.s3_prefix.clone(),
            );
            let mut textract = Textract::new(
                aws::textract_client(&sdk, config),
                config.textract_poll_initial,
            );
            if let Some(notices) = &config.textract_notices {
                textract = textract
                    .with_notices(notices.sns_topic_arn.clone(), notices.sns_role_arn.clone());
            }
            let wants_sqs =
                config.textract_notices.is_some() || config.ingest_sqs_queue_url.is_some();
            let sqs = wants_sqs.then(|| aws::sqs_client(&sdk, config));
            (Some(s3), Some(textract), sqs)
        }
        None => (None, None, None),
    };
    Ok(Engines {
        blobs: BlobStore::new(config, s3),
        sandbox,
        textract,
        sqs,
        ocr: OcrAvailability::detect(),
        cores: Arc::new(tokio::sync::Semaphore::new(crate::config::cores())),
    })
}

/// Says whether OCR can run, and refuses to start when the configured OCR languages are not
/// installed (rather than reading every scan as garbage).
pub fn check_ocr(config: &Config, ocr: &OcrAvailability) -> anyhow::Result<()> {
    if let Some(reason) = ocr.unavailable() {
        tracing::warn!("{reason}: pages that need OCR will be marked so");
        return Ok(());
    }
    if config.ocr.mode != OcrMode::Off {
        crate::domain::ocr::parse_languages(&config.ocr.languages, ocr.languages())
            .map_err(|reason| anyhow::anyhow!("LECTOR_OCR_LANGUAGES: {reason}"))?;
    }
    tracing::info!(
        mode = config.ocr.mode.as_str(),
        languages = %config.ocr.languages,
        installed = %ocr.languages().join(","),
        library = %ocr.library().unwrap_or_default(),
        "OCR ready"
    );
    Ok(())
}

/// Refuses to start when the bucket and the clients are in different regions.
async fn check_aws(engines: &Engines) -> anyhow::Result<()> {
    match engines.blobs.s3() {
        Some(s3) => s3.check_region().await,
        None => Ok(()),
    }
}

/// What `lector serve` and `lector worker` both run: the database, the engines, the use
/// cases, the queue's consumers and `config.workers` workers.
struct Services {
    connected: Connected,
    engines: Engines,
    app: App,
    /// Cancelled on shutdown: workers, senders and consumers stop taking work.
    stop: CancellationToken,
    /// Finishes once every worker has stopped.
    workers: tokio::task::JoinHandle<()>,
}

/// Starts [`Services`]; the one place both kinds of process are wired.
async fn start_services(config: &Arc<Config>) -> anyhow::Result<Services> {
    let connected = connect_to_serve(config).await?;
    // Only the processes that run jobs size the Textract slots (not `lector user add`).
    connected
        .store
        .ensure_textract_slots(config.textract_max_in_flight)
        .await?;
    let engines = engines(config).await?;
    check_aws(&engines).await?;
    check_ocr(config, &engines.ocr)?;
    // One signal per process, shared by whatever queues a document here (an upload, the S3
    // consumer) and this process's workers, so a new document wakes a worker at once instead
    // of waiting for the next poll.
    let work_available = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    spawn_notice_consumer(config, &connected.store, &engines, &stop);
    spawn_queue_report(connected.store.clone(), stop.clone());
    let app = App::new(
        connected.store.clone(),
        &engines,
        config.clone(),
        work_available.clone(),
    );
    spawn_ingest_consumer(config, &app, &engines, &stop);
    jobs::webhooks::spawn_senders(connected.store.clone(), config, stop.clone())?;
    let workers = jobs::spawn_workers(
        config.workers,
        connected.store.clone(),
        engines.clone(),
        config.clone(),
        stop.clone(),
        work_available,
    );
    Ok(Services {
        connected,
        engines,
        app,
        stop,
        workers,
    })
}

/// Runs the web server and `config.workers` workers until `shutdown` resolves, then stops
/// taking requests and jobs, and hands back jobs that do not finish within the grace period.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    crate::telemetry::prometheus();
    let services = start_services(&config).await?;
    let stop = services.stop.clone();
    spawn_session_cleanup(services.connected.sessions.clone(), stop.clone());
    if let Err(error) = services
        .engines
        .sandbox
        .inspectors()
        .warm(crate::config::cores(), config.inspect_timeout)
    {
        tracing::warn!(%error, "could not start the upload checkers ahead of time");
    }
    let state = AppState::new(services.app, config.clone()).with_stopping(stop.clone());
    spawn_rate_limit_cleanup(state.limits.clone(), state.accounts.clone(), stop.clone());
    let app = http::router(state, services.connected.sessions);
    tracing::info!(address = %listener.local_addr()?, database = services.connected.store.backend(), workers = config.workers, "lector is listening");
    let stop_on_signal = stop.clone();
    http::server::serve(listener, app, config.http.header_timeout, async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests or jobs");
        stop_on_signal.cancel();
    })
    .await?;
    stop.cancel();
    services.workers.await?;
    Ok(())
}

/// Runs workers only (`lector worker`) until `shutdown` resolves. They also consume S3
/// events and Textract notices when those are configured.
pub async fn run_workers_only(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let services = start_services(&config).await?;
    tracing::info!(workers = config.workers, "lector workers started");
    shutdown.await;
    tracing::info!("shutting down: finishing or handing back running jobs");
    services.stop.cancel();
    services.workers.await?;
    Ok(())
}

/// One consumer of Textract's completion notices per process, when they are configured.
fn spawn_notice_consumer(
    config: &Config,
    store: &Arc<dyn Store>,
    engines: &Engines,
    stop: &CancellationToken,
) {
    if let (Some(notices), Some(sqs)) = (&config.textract_notices, &engines.sqs) {
        tokio::spawn(crate::consumers::notices::consume(
            store.clone(),
            sqs.clone(),
            notices.sqs_queue_url.clone(),
            stop.clone(),
        ));
    }
}

/// One consumer of S3 `ObjectCreated` events per process, when ingestion is configured.
fn spawn_ingest_consumer(config: &Config, app: &App, engines: &Engines, stop: &CancellationToken) {
    if let (Some(queue_url), Some(sqs), Some(s3)) = (
        &config.ingest_sqs_queue_url,
        &engines.sqs,
        engines.blobs.s3(),
    ) {
        let ingestion = crate::consumers::ingest::Ingestion {
            documents: app.documents.clone(),
            accounts: app.accounts.clone(),
            s3: s3.client().clone(),
            sqs: sqs.clone(),
            queue_url: queue_url.clone(),
            prefix: config.ingest_s3_prefix.clone(),
            max_bytes: config.max_upload_bytes,
        };
        tokio::spawn(ingestion.consume(stop.clone()));
    }
}

/// Forgets rate-limit state of clients that have been quiet (it would otherwise grow with
/// every address ever seen).
fn spawn_rate_limit_cleanup(
    limits: Arc<http::RateLimits>,
    accounts: Accounts,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every_minute.tick() => {
                    limits.forget_quiet_clients();
                    accounts.throttle().forget_old();
                }
            }
        }
    });
}

fn spawn_session_cleanup(sessions: SessionBackend, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every_hour.tick() => {
                    if let Err(error) = sessions.delete_expired().await {
                        tracing::warn!(%error, "could not delete expired sessions");
                    }
                }
            }
        }
    });
}

/// Logs the queue's state once a minute (and at start): a CloudWatch metric filter turns
/// `queue_age_seconds` into the metric the queue-age alarm watches (infra/lector.yaml).
fn spawn_queue_report(store: Arc<dyn Store>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(QUEUE_REPORT_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every_minute.tick() => {
                    match (store.queue_age_seconds().await, store.queue_counts().await) {
                        (Ok(age), Ok(counts)) => tracing::info!(
                            queue_age_seconds = age.round(),
                            jobs_queued = counts.queued,
                            jobs_running = counts.running,
                            "queue"
                        ),
                        (Err(error), _) | (_, Err(error)) => {
                            tracing::warn!(%error, "could not read the queue's state");
                        }
                    }
                }
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM (what Elastic Beanstalk sends on deploy and scale-in).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
