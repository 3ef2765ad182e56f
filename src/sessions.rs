//! Browser sessions (for flash messages), kept in the same database as everything else so
//! that any instance behind a load balancer can read them.

use async_trait::async_trait;
use tower_sessions::{
    Session,
    session::{Id, Record},
    session_store::{self, ExpiredDeletion, SessionStore},
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session store of whichever backend is configured.
#[derive(Debug, Clone)]
pub enum SessionBackend {
    /// Sessions in SQLite.
    Sqlite(SqliteStore),
    /// Sessions in Postgres.
    Postgres(PostgresStore),
}

impl SessionBackend {
    /// Creates the session table if needed.
    pub async fn migrate(&self) -> sqlx::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.migrate().await,
            SessionBackend::Postgres(store) => store.migrate().await,
        }
    }

    /// Removes expired sessions.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.delete_expired().await,
            SessionBackend::Postgres(store) => store.delete_expired().await,
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.create(record).await,
            SessionBackend::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.save(record).await,
            SessionBackend::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(store) => store.load(id).await,
            SessionBackend::Postgres(store) => store.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.delete(id).await,
            SessionBackend::Postgres(store) => store.delete(id).await,
        }
    }
}

const FLASH_KEY: &str = "flash";

/// Leaves a message to show on the next page the user sees.
pub async fn set_flash(session: &Session, message: impl Into<String>) {
    // A lost flash message is not worth failing the request for.
    if let Err(error) = session.insert(FLASH_KEY, message.into()).await {
        tracing::warn!(%error, "could not store a flash message");
    }
}

/// Takes the message left for this page, if any.
pub async fn take_flash(session: &Session) -> Option<String> {
    session.remove::<String>(FLASH_KEY).await.ok().flatten()
}
