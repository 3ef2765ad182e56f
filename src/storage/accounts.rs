//! Accounts and API tokens in the database. Same pattern as the document store: one trait,
//! one body written once over both pools (`account_store_impl!`).

use async_trait::async_trait;

use super::Result;
use crate::domain::{ApiToken, Credentials, User};

/// An account about to be stored.
#[derive(Debug)]
pub struct NewUser {
    /// UUIDv7.
    pub id: String,
    /// Normalised e-mail.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A token about to be stored: only its hash and a short prefix, never the token.
#[derive(Debug)]
pub struct NewApiToken {
    /// UUIDv7.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// The name given to it.
    pub name: String,
    /// The first characters, for display.
    pub prefix: String,
    /// Hex SHA-256 of the whole token.
    pub token_hash: String,
}

/// Storage of accounts and tokens.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores an account. With `only_if_first`, stores it only when there is no account yet
    /// (returns `None` otherwise). The first account takes over documents that have no owner
    /// (those uploaded before accounts existed). An e-mail already taken is a `Conflict`.
    async fn create_user(&self, user: &NewUser, only_if_first: bool) -> Result<Option<User>>;
    /// How many accounts exist.
    async fn count_users(&self) -> Result<i64>;
    /// An account with its password hash, by normalised e-mail.
    async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>>;
    /// An account by id.
    async fn user_by_id(&self, id: &str) -> Result<User>;
    /// The account by e-mail.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// The oldest account.
    async fn first_user(&self) -> Result<Option<User>>;
    /// Stores a token's hash.
    async fn create_api_token(&self, token: &NewApiToken) -> Result<ApiToken>;
    /// A user's tokens, newest first.
    async fn list_api_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>>;
    /// Deletes one of `user_id`'s tokens. False when they have no such token.
    async fn revoke_api_token(&self, user_id: &str, token_id: &str) -> Result<bool>;
    /// The owner of the token with this hash, noting the use (at most once a minute).
    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>>;
}

/// A row of the users table.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<UserRow> for Credentials {
    fn from(row: UserRow) -> Self {
        Credentials {
            user: User {
                id: row.id,
                email: row.email,
                created_at: row.created_at,
            },
            password_hash: row.password_hash,
        }
    }
}

/// A row of the tokens table.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<TokenRow> for ApiToken {
    fn from(row: TokenRow) -> Self {
        ApiToken {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// Statements over accounts; all but one are the same on both backends.
pub(crate) mod sql {
    pub const INSERT_USER: &str =
        "insert into users (id, email, password_hash) values ($1, $2, $3)";
    pub const COUNT_USERS: &str = "select count(*) from users";
    pub const ADOPT_ORPHANS: &str = "update documents set owner_id = $1 where owner_id is null";
    pub const USER_BY_EMAIL: &str =
        "select id, email, password_hash, created_at from users where email = $1";
    pub const USER_BY_ID: &str =
        "select id, email, password_hash, created_at from users where id = $1";
    pub const FIRST_USER: &str =
        "select id, email, password_hash, created_at from users order by created_at, id limit 1";
    pub const INSERT_TOKEN: &str = "insert into api_tokens (id, user_id, name, prefix, token_hash) \
         values ($1, $2, $3, $4, $5)";
    pub const TOKEN_BY_ID: &str =
        "select id, name, prefix, created_at, last_used_at from api_tokens where id = $1";
    pub const TOKENS_OF: &str = "select id, name, prefix, created_at, last_used_at from api_tokens \
         where user_id = $1 order by created_at desc, id desc";
    pub const DELETE_TOKEN: &str = "delete from api_tokens where id = $1 and user_id = $2";
    pub const USER_BY_TOKEN: &str = "select u.id, u.email, u.created_at, t.id as token_id, \
         t.last_used_at from api_tokens t join users u on u.id = t.user_id where t.token_hash = $1";

    /// Notes a token's use. Run only when the last note is over a minute old (a write per API
    /// request would take SQLite's one write lock every time); the condition keeps concurrent
    /// requests from writing twice.
    pub fn touch_token(dialect: &crate::storage::sql_store::Dialect) -> String {
        format!(
            "update api_tokens set last_used_at = {now} where id = $1 \
             and (last_used_at is null or last_used_at < {minute_ago})",
            now = dialect.now,
            minute_ago = (dialect.later)("-60"),
        )
    }
}

/// Implements [`AccountStore`] for `$store`, a struct with `pool` and `sql` fields.
macro_rules! account_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::accounts::AccountStore for $store {
            async fn create_user(
                &self,
                user: &$crate::storage::accounts::NewUser,
                only_if_first: bool,
            ) -> $crate::storage::Result<Option<$crate::domain::User>> {
                use $crate::storage::accounts::sql;
                let mut tx = self.pool.begin_with(self.sql.begin_write).await?;
                // Two first sign-ups at once must not both see an empty table: Postgres locks
                // the table; on SQLite the transaction began holding the one write lock.
                if !self.sql.lock_users.is_empty() {
                    sqlx::query(&self.sql.lock_users).execute(&mut *tx).await?;
                }
                sqlx::query(sql::INSERT_USER)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .execute(&mut *tx)
                    .await?;
                let users: i64 = sqlx::query_scalar(sql::COUNT_USERS)
                    .fetch_one(&mut *tx)
                    .await?;
                if users > 1 && only_if_first {
                    tx.rollback().await?;
                    return Ok(None);
                }
                if users == 1 {
                    sqlx::query(sql::ADOPT_ORPHANS)
                        .bind(&user.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Some(self.user_by_id(&user.id).await?))
            }

            async fn count_users(&self) -> $crate::storage::Result<i64> {
                Ok(
                    sqlx::query_scalar($crate::storage::accounts::sql::COUNT_USERS)
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn credentials_by_email(
                &self,
                email: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::Credentials>> {
                let row = sqlx::query_as::<_, $crate::storage::accounts::UserRow>(
                    $crate::storage::accounts::sql::USER_BY_EMAIL,
                )
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn user_by_id(&self, id: &str) -> $crate::storage::Result<$crate::domain::User> {
                let row = sqlx::query_as::<_, $crate::storage::accounts::UserRow>(
                    $crate::storage::accounts::sql::USER_BY_ID,
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::domain::Credentials::from(row).user)
            }

            async fn user_by_email(
                &self,
                email: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::User>> {
                Ok(self.credentials_by_email(email).await?.map(|c| c.user))
            }

            async fn first_user(&self) -> $crate::storage::Result<Option<$crate::domain::User>> {
                let row = sqlx::query_as::<_, $crate::storage::accounts::UserRow>(
                    $crate::storage::accounts::sql::FIRST_USER,
                )
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| $crate::domain::Credentials::from(r).user))
            }

            async fn create_api_token(
                &self,
                token: &$crate::storage::accounts::NewApiToken,
            ) -> $crate::storage::Result<$crate::domain::ApiToken> {
                use $crate::storage::accounts::sql;
                sqlx::query(sql::INSERT_TOKEN)
                    .bind(&token.id)
                    .bind(&token.user_id)
                    .bind(&token.name)
                    .bind(&token.prefix)
                    .bind(&token.token_hash)
                    .execute(&self.pool)
                    .await?;
                let row =
                    sqlx::query_as::<_, $crate::storage::accounts::TokenRow>(sql::TOKEN_BY_ID)
                        .bind(&token.id)
                        .fetch_one(&self.pool)
                        .await?;
                Ok(row.into())
            }

            async fn list_api_tokens(
                &self,
                user_id: &str,
            ) -> $crate::storage::Result<Vec<$crate::domain::ApiToken>> {
                let rows = sqlx::query_as::<_, $crate::storage::accounts::TokenRow>(
                    $crate::storage::accounts::sql::TOKENS_OF,
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn revoke_api_token(
                &self,
                user_id: &str,
                token_id: &str,
            ) -> $crate::storage::Result<bool> {
                let done = sqlx::query($crate::storage::accounts::sql::DELETE_TOKEN)
                    .bind(token_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn user_by_token_hash(
                &self,
                token_hash: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::User>> {
                use sqlx::Row;
                let Some(row) = sqlx::query($crate::storage::accounts::sql::USER_BY_TOKEN)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let token_id: String = row.try_get("token_id")?;
                let last_used: Option<chrono::DateTime<chrono::Utc>> =
                    row.try_get("last_used_at")?;
                let stale = last_used
                    .is_none_or(|at| chrono::Utc::now() - at > chrono::TimeDelta::seconds(60));
                if stale {
                    sqlx::query(&self.sql.touch_token)
                        .bind(&token_id)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(Some($crate::domain::User {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    created_at: row.try_get("created_at")?,
                }))
            }
        }
    };
}
