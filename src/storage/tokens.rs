//! API tokens in the database: only each token's hash and a short prefix are kept, and a
//! token's use is noted at most once a minute.

use crate::domain::{TokenId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Row, Type};

use super::{Result, sql::Backend, sql::SqlStore};
use crate::domain::{ApiToken, User};

/// A token about to be stored: only its hash and a short prefix, never the token.
#[derive(Debug)]
pub struct NewApiToken {
    /// UUIDv7.
    pub id: TokenId,
    /// Its owner.
    pub user_id: UserId,
    /// The name given to it.
    pub name: String,
    /// The first characters, for display.
    pub prefix: String,
    /// Hex SHA-256 of the whole token.
    pub token_hash: String,
}

/// Storage of API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token's hash.
    async fn create_api_token(&self, token: &NewApiToken) -> Result<ApiToken>;
    /// A user's tokens, newest first.
    async fn list_api_tokens(&self, user_id: &UserId) -> Result<Vec<ApiToken>>;
    /// Deletes one of `user_id`'s tokens. False when they have no such token.
    async fn revoke_api_token(&self, user_id: &UserId, token_id: &TokenId) -> Result<bool>;
    /// The owner of the token with this hash, noting the use (at most once a minute).
    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>>;
    /// Deletes every token of the account; returns how many there were.
    async fn revoke_api_tokens(&self, user_id: &UserId) -> Result<u64>;
}

/// A row of the tokens table.
#[derive(FromRow)]
struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for ApiToken {
    fn from(row: TokenRow) -> Self {
        ApiToken {
            id: row.id.into(),
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[async_trait]
impl<DB: Backend> TokenStore for SqlStore<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Decode<'q, DB> + Type<DB>,
{
    async fn create_api_token(&self, token: &NewApiToken) -> Result<ApiToken> {
        sqlx::query(
            "insert into api_tokens (id, user_id, name, prefix, token_hash) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(&token.id)
        .bind(&token.user_id)
        .bind(&token.name)
        .bind(&token.prefix)
        .bind(&token.token_hash)
        .execute(&self.pool)
        .await?;
        let row: TokenRow = sqlx::query_as(
            "select id, name, prefix, created_at, last_used_at from api_tokens where id = $1",
        )
        .bind(&token.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    async fn list_api_tokens(&self, user_id: &UserId) -> Result<Vec<ApiToken>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "select id, name, prefix, created_at, last_used_at from api_tokens \
             where user_id = $1 order by created_at desc, id desc",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn revoke_api_token(&self, user_id: &UserId, token_id: &TokenId) -> Result<bool> {
        let done = sqlx::query("delete from api_tokens where id = $1 and user_id = $2")
            .bind(token_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>> {
        let Some(row) = sqlx::query(
            "select u.id, u.email, u.created_at, t.id as token_id, t.last_used_at \
             from api_tokens t join users u on u.id = t.user_id where t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let token_id: String = row.try_get("token_id")?;
        let last_used: Option<DateTime<Utc>> = row.try_get("last_used_at")?;
        let stale = last_used.is_none_or(|at| Utc::now() - at > chrono::TimeDelta::seconds(60));
        if stale {
            // Run only when the last note is over a minute old (a write per API request
            // would take SQLite's one write lock every time); the condition keeps concurrent
            // requests from writing twice.
            let touch = format!(
                "update api_tokens set last_used_at = {now} where id = $1 \
                 and (last_used_at is null or last_used_at < {minute_ago})",
                now = DB::NOW,
                minute_ago = DB::later("-60"),
            );
            sqlx::query(&touch)
                .bind(&token_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            created_at: row.try_get("created_at")?,
        }))
    }

    async fn revoke_api_tokens(&self, user_id: &UserId) -> Result<u64> {
        let done = sqlx::query("delete from api_tokens where user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done))
    }
}
