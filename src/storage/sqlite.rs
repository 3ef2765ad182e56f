//! The SQLite store: the laptop default, one file under `./data/`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use super::sql_store::{Dialect, Queries};

/// Times are stored as fixed-width UTC text so that text order is time order.
const DIALECT: Dialect = Dialect {
    now: "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    later: |secs| format!("strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {secs}))"),
    skip_locked: "",
    month_start: "strftime('%Y-%m-01 00:00:00.000', 'now')",
    lock_users: "",
};

/// [`super::Store`] on SQLite.
pub struct SqliteStore {
    pool: SqlitePool,
    sql: Queries,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file named by `url`, in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .context("opening the SQLite database")?;
        Ok(SqliteStore {
            pool,
            sql: Queries::new(&DIALECT),
        })
    }

    /// The pool, for the session store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

account_store_impl!(SqliteStore);
store_impl!(SqliteStore, "sqlite", sqlx::migrate!("migrations/sqlite"));
