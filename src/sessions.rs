//! Browser sessions (for flash messages), kept in the same database as everything else so
//! that any instance behind a load balancer can read them. A session is stored under a hash
//! of the id its cookie carries, so whoever reads the session table cannot sign in by
//! putting a stored id in a cookie (the way API tokens are stored hashed).

use async_trait::async_trait;
use sha2::{Digest, Sha256};
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

impl SessionBackend {
    async fn create_stored(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.create(record).await,
            SessionBackend::Postgres(store) => store.create(record).await,
        }
    }

    async fn save_stored(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.save(record).await,
            SessionBackend::Postgres(store) => store.save(record).await,
        }
    }

    async fn load_stored(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(store) => store.load(id).await,
            SessionBackend::Postgres(store) => store.load(id).await,
        }
    }

    async fn delete_stored(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(store) => store.delete(id).await,
            SessionBackend::Postgres(store) => store.delete(id).await,
        }
    }
}

/// The id a session is stored under: the first 128 bits of the SHA-256 of the cookie's id
/// (128 random bits, so a plain hash is enough, as for API tokens).
fn stored_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(first))
}

fn stored(record: &Record) -> Record {
    Record {
        id: stored_id(&record.id),
        ..record.clone()
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let mut hashed = stored(record);
            let wanted = hashed.id;
            self.create_stored(&mut hashed).await?;
            if hashed.id == wanted {
                return Ok(());
            }
            // The stored id was taken, and the store chose another, which no cookie id hashes
            // to: remove that row and start again from a new cookie id.
            self.delete_stored(&hashed.id).await?;
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_stored(&stored(record)).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.load_stored(&stored_id(id)).await?.map(|mut record| {
            record.id = *id;
            record
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.delete_stored(&stored_id(id)).await
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
