//! Accounts in the database: users, their passwords and sessions, password reset links and
//! the browsers they logged in from. Their API tokens are in `tokens.rs`.

use crate::domain::UserId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Error, Result, sql::Backend, sql::SqlStore};
use crate::domain::{Credentials, User};

/// An account about to be stored.
#[derive(Debug)]
pub struct NewUser {
    /// UUIDv7.
    pub id: UserId,
    /// Normalised e-mail.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A one-time password reset link about to be stored: only its token's hash.
#[derive(Debug)]
pub struct NewPasswordReset {
    /// UUIDv7.
    pub id: String,
    /// The account it resets.
    pub user_id: UserId,
    /// Hex SHA-256 of the link's token.
    pub token_hash: String,
    /// How long it works.
    pub valid_for: std::time::Duration,
}

/// An account as `lector user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The account.
    pub user: User,
    /// Documents it owns.
    pub documents: i64,
    /// Its API tokens.
    pub tokens: i64,
    /// Its webhooks.
    pub webhooks: i64,
}

/// Storage of accounts.
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
    async fn user_by_id(&self, id: &UserId) -> Result<User>;
    /// The account by e-mail.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// The oldest account.
    async fn first_user(&self) -> Result<Option<User>>;
    /// An account with its password hash and session epoch, by id.
    async fn credentials_by_id(&self, id: &UserId) -> Result<Option<Credentials>>;
    /// Replaces the account's password hash and ends its sessions (moves its session epoch
    /// on); returns the new epoch. `NotFound` when there is no such account.
    async fn set_password(&self, user_id: &UserId, password_hash: &str) -> Result<i64>;
    /// Ends every session of the account (moves its session epoch on); returns the new epoch.
    async fn end_sessions(&self, user_id: &UserId) -> Result<i64>;
    /// Every account with what it owns, oldest first.
    async fn list_users(&self) -> Result<Vec<UserSummary>>;
    /// Deletes the account with its tokens, webhooks, reset links and known devices; its
    /// documents must have been deleted before. False when there is no such account.
    async fn delete_user(&self, user_id: &UserId) -> Result<bool>;
    /// Stores a reset link's hash.
    async fn create_password_reset(&self, reset: &NewPasswordReset) -> Result<()>;
    /// The account a reset link opens, while it is unused and unexpired.
    async fn password_reset_user(&self, token_hash: &str) -> Result<Option<User>>;
    /// Uses a reset link: marks it used, replaces the password and ends every session of the
    /// account, in one transaction. `None` when the link is unknown, used or expired.
    async fn reset_password(&self, token_hash: &str, password_hash: &str) -> Result<Option<User>>;
    /// Remembers a browser (by its device token's hash) that logged in to the account.
    async fn remember_device(&self, token_hash: &str, user_id: &UserId) -> Result<()>;
    /// The account a known device logged in to, noting that it was seen.
    async fn device_user(&self, token_hash: &str) -> Result<Option<String>>;
    /// Forgets every device of the account; returns how many there were.
    async fn forget_devices(&self, user_id: &UserId) -> Result<u64>;
}

/// A row of the users table.
#[derive(FromRow)]
struct UserRow {
    id: String,
    email: String,
    password_hash: String,
    created_at: DateTime<Utc>,
    session_epoch: i64,
}

impl From<UserRow> for Credentials {
    fn from(row: UserRow) -> Self {
        Credentials {
            user: User {
                id: row.id.into(),
                email: row.email,
                created_at: row.created_at,
            },
            password_hash: row.password_hash,
            session_epoch: row.session_epoch,
        }
    }
}

/// An account's columns, with its password hash.
const SELECT_USERS: &str = "select id, email, password_hash, created_at, session_epoch from users";

/// Moves an account's session epoch on (`$1`), and replaces its password hash (`$2`) when
/// `password` is set.
fn bump_epoch<DB: Backend>(password: bool) -> String {
    let set_password = if password { "password_hash = $2, " } else { "" };
    format!(
        "update users set {set_password}session_epoch = session_epoch + 1, updated_at = {now} \
         where id = $1",
        now = DB::NOW
    )
}

#[async_trait]
impl<DB: Backend> AccountStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_user(&self, user: &NewUser, only_if_first: bool) -> Result<Option<User>> {
        let mut tx = self.begin_write().await?;
        // Two first sign-ups at once must not both see an empty table: Postgres locks the
        // table; on SQLite the transaction began holding the one write lock.
        if !DB::LOCK_USERS.is_empty() {
            sqlx::query(DB::LOCK_USERS).execute(&mut *tx).await?;
        }
        sqlx::query("insert into users (id, email, password_hash) values ($1, $2, $3)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .execute(&mut *tx)
            .await?;
        let users: i64 = sqlx::query_scalar("select count(*) from users")
            .fetch_one(&mut *tx)
            .await?;
        if users > 1 && only_if_first {
            tx.rollback().await?;
            return Ok(None);
        }
        if users == 1 {
            sqlx::query("update documents set owner_id = $1 where owner_id is null")
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(self.user_by_id(&user.id).await?))
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("select count(*) from users")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn credentials_by_email(&self, email: &str) -> Result<Option<Credentials>> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{SELECT_USERS} where email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn user_by_id(&self, id: &UserId) -> Result<User> {
        let row: UserRow = sqlx::query_as(&format!("{SELECT_USERS} where id = $1"))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Credentials::from(row).user)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        Ok(self.credentials_by_email(email).await?.map(|c| c.user))
    }

    async fn first_user(&self) -> Result<Option<User>> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("{SELECT_USERS} order by created_at, id limit 1"))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| Credentials::from(r).user))
    }

    async fn credentials_by_id(&self, id: &UserId) -> Result<Option<Credentials>> {
        let row: Option<UserRow> = sqlx::query_as(&format!("{SELECT_USERS} where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn set_password(&self, user_id: &UserId, password_hash: &str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&bump_epoch::<DB>(true))
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Err(Error::NotFound);
        }
        let epoch = sqlx::query_scalar("select session_epoch from users where id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(epoch)
    }

    async fn end_sessions(&self, user_id: &UserId) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&bump_epoch::<DB>(false))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let epoch = sqlx::query_scalar("select session_epoch from users where id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(epoch)
    }

    async fn list_users(&self) -> Result<Vec<UserSummary>> {
        let rows: Vec<(String, String, DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
            "select u.id, u.email, u.created_at, \
             (select count(*) from documents d where d.owner_id = u.id) as documents, \
             (select count(*) from api_tokens t where t.user_id = u.id) as tokens, \
             (select count(*) from webhooks w where w.owner_id = u.id) as webhooks \
             from users u order by u.created_at, u.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, email, created_at, documents, tokens, webhooks)| UserSummary {
                    user: User {
                        id: id.into(),
                        email,
                        created_at,
                    },
                    documents,
                    tokens,
                    webhooks,
                },
            )
            .collect())
    }

    async fn delete_user(&self, user_id: &UserId) -> Result<bool> {
        let done = sqlx::query("delete from users where id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn create_password_reset(&self, reset: &NewPasswordReset) -> Result<()> {
        let sql = format!(
            "insert into password_resets (id, user_id, token_hash, expires_at) \
             values ($1, $2, $3, {})",
            DB::later("$4")
        );
        sqlx::query(&sql)
            .bind(&reset.id)
            .bind(&reset.user_id)
            .bind(&reset.token_hash)
            .bind(reset.valid_for.as_secs_f64())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn password_reset_user(&self, token_hash: &str) -> Result<Option<User>> {
        let sql = format!(
            "select u.id, u.email, u.password_hash, u.created_at, u.session_epoch \
             from password_resets r join users u on u.id = r.user_id \
             where r.token_hash = $1 and r.used_at is null and r.expires_at > {now}",
            now = DB::NOW
        );
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| Credentials::from(row).user))
    }

    async fn reset_password(&self, token_hash: &str, password_hash: &str) -> Result<Option<User>> {
        let use_reset = format!(
            "update password_resets set used_at = {now} where token_hash = $1 \
             and used_at is null and expires_at > {now} returning user_id",
            now = DB::NOW
        );
        let mut tx = self.begin_write().await?;
        // Marked used first, in the same transaction: two uses at once, one wins.
        let Some(user_id): Option<String> = sqlx::query_scalar(&use_reset)
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        sqlx::query(&bump_epoch::<DB>(true))
            .bind(&user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("delete from known_devices where user_id = $1")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(self.user_by_id(&user_id.into()).await?))
    }

    async fn remember_device(&self, token_hash: &str, user_id: &UserId) -> Result<()> {
        sqlx::query(
            "insert into known_devices (token_hash, user_id) values ($1, $2) \
             on conflict (token_hash) do nothing",
        )
        .bind(token_hash)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn device_user(&self, token_hash: &str) -> Result<Option<String>> {
        let sql = format!(
            "update known_devices set last_seen_at = {now} where token_hash = $1 \
             returning user_id",
            now = DB::NOW
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn forget_devices(&self, user_id: &UserId) -> Result<u64> {
        let done = sqlx::query("delete from known_devices where user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }
}
