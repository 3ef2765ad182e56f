//! Persistence: small traits per concern, each in its file with its rows and SQL, and the
//! [`Store`] that is all of them (what the layers above hold, as `Arc<dyn Store>`). All SQL
//! lives in this folder.
//!
//! | file | trait |
//! |---|---|
//! | `documents.rs` | [`DocumentStore`]: documents |
//! | `pages.rs` | [`PageStore`]: the pages extracted from them |
//! | `originals.rs` | [`OriginalStore`]: original PDFs kept in the database |
//! | `queue.rs` | [`QueueStore`]: extraction jobs, leases and what a worker writes |
//! | `textract.rs` | [`TextractStore`]: Textract slots, page budget, completion notices |
//! | `stats.rs` | [`StatsStore`]: counts for health and `/metrics` |
//! | `accounts.rs` | [`AccountStore`]: users, passwords and sessions, reset links, known devices |
//! | `tokens.rs` | [`TokenStore`]: API tokens |
//! | `search/` | [`SearchStore`]: full-text search, one implementation per backend |
//! | `webhooks.rs` | [`WebhookStore`]: webhooks |
//! | `deliveries.rs` | [`DeliveryStore`]: their delivery queue and its log |
//! | `sql.rs` | [`sql::SqlStore`], the [`sql::Backend`] trait, and [`Store`]'s own methods |
//!
//! How the two backends share code: one generic body, `impl<DB: Backend> XStore for
//! SqlStore<DB>`, where [`sql::Backend`] (implemented for `sqlx::Postgres` in `postgres.rs`
//! and `sqlx::Sqlite` in `sqlite.rs`) holds what differs: the clock (`now()`), intervals,
//! `for update skip locked`, how a JSON list is read, how a write transaction begins, the
//! migrations. Nearly every statement is the same text on both (both take `$1` placeholders),
//! so writing the Rust once keeps the two from drifting apart, and the contract test
//! (`tests/it/storage_contract.rs`) runs every method on both. Each impl states the sqlx
//! bounds its statements need (which Rust types bind and decode): Rust does not carry a
//! trait's where-clauses to its users, so they cannot be bundled into `Backend` once; they
//! are a few lines, checked by the compiler, and say what a concern reads and writes. A
//! statement that needs a `Backend` word is `format!`ted where it runs (cheap next to the
//! round trip, and sqlx caches the prepared statement by its text). Search is the exception:
//! FTS5 and `tsvector` differ in everything, so each backend has plain code of its own
//! (`search/postgres.rs`, `search/sqlite.rs`).
//!
//! Not chosen: one impl per backend everywhere (twice the ~1,300 lines of bodies, free to
//! drift), and `sqlx::Any` (no `chrono` types, and the session store needs the typed pools).

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

pub mod accounts;
pub mod deliveries;
pub mod documents;
mod ids;
pub mod originals;
pub mod pages;
pub mod postgres;
pub mod queue;
pub mod search;
pub mod sql;
pub mod sqlite;
pub mod stats;
pub mod textract;
pub mod tokens;
pub mod webhooks;

pub use accounts::{AccountStore, NewUser};
pub use deliveries::DeliveryStore;
pub use documents::{DocumentStore, NewDocument};
pub use originals::{BLOB_CHUNK_BYTES, OriginalStore};
pub use pages::PageStore;
pub use queue::{ClaimedJob, NewPage, QueueStore};
pub use search::SearchStore;
pub use stats::{QueueCounts, StatsStore};
pub use textract::TextractStore;
pub use tokens::{NewApiToken, TokenStore};
pub use webhooks::WebhookStore;

/// Every storage trait, for code that holds a concrete store rather than `dyn Store` (on a
/// `dyn Store` the concern traits' methods need no import).
pub mod prelude {
    pub use super::{
        AccountStore, DeliveryStore, DocumentStore, OriginalStore, PageStore, QueueStore,
        SearchStore, StatsStore, Store, TextractStore, TokenStore, WebhookStore,
    };
}

/// Storage errors, as the layers above need to tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. the same file uploaded twice at once).
    #[error("conflicts with an existing row")]
    Conflict,
    /// Anything else: the database is down, a query is wrong, a file could not be read.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict,
            other => Error::Other(other.into()),
        }
    }
}

/// Storage results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a sealed secret lives, as the associated data it is sealed with: a sealed value
/// moved to another row or column does not open.
pub(crate) fn secret_row(column: &str, id: &str) -> String {
    format!("{column} {id}")
}

/// `secret` sealed for `row` (see [`crate::sealing`]); an error when no key is configured.
pub(crate) fn seal(
    keyring: Option<&crate::sealing::Keyring>,
    secret: &SecretString,
    row: &str,
) -> Result<String> {
    let keyring = keyring.ok_or_else(|| {
        Error::Other(anyhow::anyhow!(
            "no key to seal secrets with is configured (LECTOR_SECRET_KEY): a secret cannot be stored"
        ))
    })?;
    Ok(keyring.seal(secret.expose_secret(), row))
}

/// The secret stored for `row`: opened when sealed, as it is when a Lector that did not seal
/// stored it (until [`Store::seal_stored_secrets`] seals it).
pub(crate) fn open(
    keyring: Option<&crate::sealing::Keyring>,
    stored: String,
    row: &str,
) -> Result<SecretString> {
    if !crate::sealing::is_sealed(&stored) {
        return Ok(SecretString::from(stored));
    }
    let keyring = keyring.ok_or_else(|| {
        Error::Other(anyhow::anyhow!(
            "the secret of {row} is sealed and no key is configured (LECTOR_SECRET_KEY)"
        ))
    })?;
    keyring
        .open(&stored, row)
        .map_err(|e| Error::Other(anyhow::anyhow!("the secret of {row} cannot be opened: {e}")))
}

/// What `stored` should become under the current key, or `None` when it already is sealed
/// under it.
pub(crate) fn reseal(
    keyring: &crate::sealing::Keyring,
    stored: String,
    row: &str,
) -> Result<Option<String>> {
    if keyring.is_current(&stored) {
        return Ok(None);
    }
    let secret = open(Some(keyring), stored, row)?;
    Ok(Some(keyring.seal(secret.expose_secret(), row)))
}

/// Ids as a JSON array: how both backends take a list in one parameter (Postgres with
/// `jsonb_array_elements_text`, SQLite with `json_each`).
pub(crate) fn json_list<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Everything Lector stores: every concern's trait, and what concerns the database as a
/// whole. One implementation per database backend ([`sql::SqlStore`]).
#[async_trait]
pub trait Store:
    DocumentStore
    + PageStore
    + OriginalStore
    + QueueStore
    + TextractStore
    + StatsStore
    + AccountStore
    + TokenStore
    + SearchStore
    + WebhookStore
    + DeliveryStore
    + Send
    + Sync
    + 'static
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Applies the migrations of this backend.
    async fn migrate(&self) -> Result<()>;
    /// Answers a trivial query (health checks).
    async fn ping(&self) -> Result<()>;
    /// How many of this build's migrations the database has not applied (readiness).
    async fn pending_migrations(&self) -> Result<usize>;
    /// Seals, under the current key, every stored secret that is not yet: plaintext left by
    /// a Lector that did not seal, and values sealed under a previous key. Returns how many
    /// were sealed again; an error when no key is configured.
    async fn seal_stored_secrets(&self) -> Result<u64>;
}

/// The store for `database_url`, connected and migrated.
pub async fn connect(
    database_url: &SecretString,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    let url = database_url.expose_secret();
    let store: Arc<dyn Store> = if url.starts_with("postgres") {
        Arc::new(postgres::PostgresStore::connect(url, max_connections).await?)
    } else {
        Arc::new(sqlite::SqliteStore::connect(url, max_connections).await?)
    };
    Ok(store)
}
