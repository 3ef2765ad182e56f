//! The Postgres (and Aurora PostgreSQL) store: how Postgres spells the few things that
//! differ, and how to connect. Its search is in `search/postgres.rs`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, Postgres,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult},
};

pub use super::search::postgres::{PHRASE_INDEX_LOCK, required_phrases};
use super::sql::{Backend, SqlStore};

/// [`super::Store`] on Postgres.
pub type PostgresStore = SqlStore<Postgres>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    const NOW: &'static str = "now()";
    const SKIP_LOCKED: &'static str = "for update skip locked";
    const MONTH_START: &'static str = "date_trunc('month', now())";
    const LOCK_USERS: &'static str = "lock table users in share row exclusive mode";
    const JSON_LIST: &'static str = "select jsonb_array_elements_text(cast($1 as jsonb))";
    const BEGIN_WRITE: &'static str = "begin";

    fn later(param: &str) -> String {
        format!("now() + make_interval(secs => {param})")
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl SqlStore<Postgres> {
    /// Connects a pool to `url`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options =
            PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid Postgres URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("connecting to Postgres")?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        SqlStore::new(pool)
    }
}
