//! The SQLite store, the laptop default (one file under `./data/`): how SQLite spells the
//! few things that differ, and how to open it. Its search is in `search/sqlite.rs`.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    Sqlite,
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
        SqliteSynchronous,
    },
};

use super::sql::{Backend, SqlStore};

/// [`super::Store`] on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Times are stored as fixed-width UTC text so that text order is time order.
impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const NOW: &'static str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
    const SKIP_LOCKED: &'static str = "";
    const MONTH_START: &'static str = "strftime('%Y-%m-01 00:00:00.000', 'now')";
    const LOCK_USERS: &'static str = "";
    const JSON_LIST: &'static str = "select value from json_each($1)";
    const BEGIN_WRITE: &'static str = "begin immediate";

    fn later(param: &str) -> String {
        format!("strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {param}))")
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database file named by `url`, in WAL mode.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // What a row held is overwritten when it is deleted or changed (a secret sealed
            // again, a deleted document's text), where that costs no extra write.
            .pragma("secure_delete", "fast")
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
        Ok(SqlStore::new(pool))
    }
}
