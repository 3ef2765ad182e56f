//! The Postgres (and Aurora PostgreSQL) store.

use std::str::FromStr;

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::sql_store::{Dialect, Queries};

const DIALECT: Dialect = Dialect {
    now: "now()",
    later: |secs| format!("now() + make_interval(secs => {secs})"),
    skip_locked: "for update skip locked",
    month_start: "date_trunc('month', now())",
    lock_users: "lock table users in share row exclusive mode",
};

/// [`super::Store`] on Postgres.
pub struct PostgresStore {
    pool: PgPool,
    sql: Queries,
}

impl PostgresStore {
    /// Connects a pool to `url`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options =
            PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid Postgres URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options)
            .await
            .context("connecting to Postgres")?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresStore {
            pool,
            sql: Queries::new(&DIALECT),
        }
    }

    /// The pool, for the session store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

account_store_impl!(PostgresStore);
store_impl!(
    PostgresStore,
    "postgres",
    sqlx::migrate!("migrations/postgres")
);
