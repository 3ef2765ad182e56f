//! The one SQL store, generic over the database: [`SqlStore`], the [`Backend`] trait that
//! says how Postgres and SQLite differ, and the [`Store`] methods that are not one concern's
//! (migrations, health, sealing the stored secrets).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type,
    migrate::{Migrate, Migrator},
};

use super::{Result, Store};
use crate::sealing::Keyring;

/// A database Lector runs on, and how it spells the few things that differ.
///
/// The bounds sqlx needs to run our statements generically (which Rust types bind and decode,
/// executing on a pool and on a transaction) cannot be written here once: Rust does not imply
/// a trait's where-clauses on other types. Each `impl<DB: Backend>` repeats them (see
/// [`SqlStore`]); the two backends satisfy them all.
pub trait Backend: Database<Connection: Migrate> {
    /// `postgres` or `sqlite`, as [`Store::backend`] answers.
    const BACKEND: &'static str;
    /// The current time as a column value.
    const NOW: &'static str;
    /// Row locking for queue claims (nothing on SQLite, where writers are serialised anyway).
    const SKIP_LOCKED: &'static str;
    /// The first instant of the current calendar month (UTC).
    const MONTH_START: &'static str;
    /// Serialises account creation (empty where writers are serialised anyway).
    const LOCK_USERS: &'static str;
    /// The elements of the JSON array of strings in `$1`, as a subquery.
    const JSON_LIST: &'static str;
    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that has to wait for another writer can
    /// be refused with "database is locked" without the busy timeout being used.
    const BEGIN_WRITE: &'static str;

    /// The current time plus `param` seconds (a float placeholder such as `$2`).
    fn later(param: &str) -> String;
    /// This backend's migrations.
    fn migrator() -> &'static Migrator;
    /// Rows a statement changed (sqlx has no trait for it).
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// [`Store`] over a sqlx pool of either backend (`PostgresStore`, `SqliteStore`).
///
/// Each concern's `impl<DB: Backend>` carries a where-clause of the same shape: the pool and
/// transaction as executors, then the Rust types its statements bind (`Encode`) and read
/// (`Decode`), `Option`s included (sqlx encodes them per backend); its row types follow
/// from those.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    /// Seals and opens the secrets kept in the database; none when no key is configured.
    pub(super) keyring: Option<Arc<Keyring>>,
}

impl<DB: Backend> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>) -> Self {
        SqlStore {
            pool,
            keyring: None,
        }
    }

    /// Seals the secrets it stores with `keyring`.
    pub fn with_keyring(mut self, keyring: Option<Arc<Keyring>>) -> Self {
        self.keyring = keyring;
        self
    }

    /// The pool, for the session store.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The key secrets are sealed with, if one is configured.
    pub(super) fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    /// A transaction that will write (see [`Backend::BEGIN_WRITE`]).
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, DB>> {
        Ok(self.pool.begin_with(DB::BEGIN_WRITE).await?)
    }
}

/// Stored secrets, each as (select id and value, compare-and-set the value, column).
const SECRETS: [(&str, &str, &str); 2] = [
    (
        "select id, pdf_password from documents where pdf_password is not null",
        "update documents set pdf_password = $2 where id = $1 and pdf_password = $3",
        "documents.pdf_password",
    ),
    (
        "select id, secret from webhooks",
        "update webhooks set secret = $2 where id = $1 and secret = $3",
        "webhooks.secret",
    ),
];

#[async_trait]
impl<DB: Backend> Store for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    Self: super::DocumentStore
        + super::PageStore
        + super::OriginalStore
        + super::QueueStore
        + super::TextractStore
        + super::StatsStore
        + super::AccountStore
        + super::TokenStore
        + super::SearchStore
        + super::WebhookStore
        + super::DeliveryStore,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        DB::migrator()
            .run(&self.pool)
            .await
            .map_err(|e| anyhow::Error::new(e).context("applying migrations"))?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<usize> {
        let applied: Vec<i64> =
            sqlx::query_scalar("select version from _sqlx_migrations where success")
                .fetch_all(&self.pool)
                .await?;
        Ok(DB::migrator()
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    async fn seal_stored_secrets(&self) -> Result<u64> {
        let keyring = self.keyring().ok_or_else(|| {
            anyhow::anyhow!("no key to seal secrets with is configured (LECTOR_SECRET_KEY)")
        })?;
        let mut sealed = 0;
        for (select, update, column) in SECRETS {
            let stored: Vec<(String, String)> =
                sqlx::query_as(select).fetch_all(&self.pool).await?;
            for (id, value) in stored {
                let row = super::secret_row(column, &id);
                let Some(resealed) = super::reseal(keyring, value.clone(), &row)? else {
                    continue;
                };
                // Compare-and-set: another instance may be doing the same.
                let done = sqlx::query(update)
                    .bind(&id)
                    .bind(&resealed)
                    .bind(&value)
                    .execute(&self.pool)
                    .await?;
                sealed += DB::rows_affected(&done);
            }
        }
        Ok(sealed)
    }
}
