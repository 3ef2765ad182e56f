//! A fresh database per test: a new SQLite file, or a new database on the local Postgres
//! server, dropped when the test is done; and raw SQL on it, to check what the store did.

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The local Postgres server the tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database of `backend`; dropped (Postgres) or deleted (SQLite) on drop.
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    pg_name: Option<String>,
}

/// A value raw SQL can read on both backends (`i64`, `Option<String>`).
pub trait Scalar:
    Send
    + Unpin
    + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
{
}

impl<T> Scalar for T where
    T: Send
        + Unpin
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
{
}

impl TestDatabase {
    /// A fresh database, or `None` once it has said that the test is skipped because no
    /// Postgres server answers (a SQLite database is always there).
    pub async fn new(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Some(TestDatabase {
                url: format!("sqlite://{}", dir.path().join("lector.db").display()),
                backend,
                _dir: dir,
                pg_name: None,
            }),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("lector_test_{}", uuid::Uuid::new_v4().simple());
                let pool = match sqlx::PgPool::connect(&admin).await {
                    Ok(pool) => pool,
                    Err(error) => {
                        println!(
                            "skipped: no PostgreSQL at {admin} ({error}); install and start \
                             postgresql, or name another server in TEST_DATABASE_URL"
                        );
                        return None;
                    }
                };
                sqlx::query(&format!("create database {name}"))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(&admin);
                Some(TestDatabase {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: dir,
                    pg_name: Some(name),
                })
            }
        }
    }

    /// Rows in `table` (raw SQL, to check what the store did); `table` may go on with a
    /// `where` clause.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("select count(*) from {table}")).await
    }

    /// One integer from raw SQL (e.g. `select count(distinct page_number) from pages …`).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        self.scalar(sql).await
    }

    /// One text value (or NULL) from raw SQL.
    pub async fn query_text(&self, sql: &str) -> Option<String> {
        self.scalar(sql).await
    }

    /// The one value `sql` selects, over a connection of its own.
    async fn scalar<T: Scalar>(&self, sql: &str) -> T {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                value
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                value
            }
        }
    }

    /// Runs one statement (to simulate what a dead worker leaves behind).
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async code; use a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}
