//! What an owner or an administrator does after a password leaks: change it, end every
//! session, issue and use a one-time reset link, delete the account.

use std::time::Duration;

use rand::Rng;

use super::{
    Accounts, check_new_password, hash_password, throttle::Attempt, token_hash, verify_password,
};
use crate::{
    domain::User,
    storage::{
        self,
        accounts::{NewPasswordReset, UserSummary},
    },
};

/// Why a password was not changed; the message is for the account's owner.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The current password (or the one given to confirm a deletion) is wrong.
    #[error("The current password is wrong.")]
    WrongPassword,
    /// Too many wrong passwords: try again after this long.
    #[error("Too many wrong passwords: wait {} seconds and try again.", .0.as_secs().max(1))]
    Wait(Duration),
    /// The new password is weak, too short or not confirmed.
    #[error("{0}")]
    InvalidPassword(String),
    /// The reset link is unknown, used or expired.
    #[error(
        "This reset link has expired or was already used: ask the administrator for a new one."
    )]
    LinkExpired,
    /// Our fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<storage::Error> for PasswordError {
    fn from(err: storage::Error) -> Self {
        PasswordError::Internal(err.into())
    }
}

/// A password change as the owner asks for it.
#[derive(Debug, Clone, Copy)]
pub struct PasswordChange<'a> {
    /// The password now, to prove it is the owner.
    pub current: &'a str,
    /// The new one.
    pub new: &'a str,
    /// The new one again.
    pub confirmation: &'a str,
    /// Also revoke every API token.
    pub revoke_tokens: bool,
    /// The client's address (wrong current passwords are counted like log-ins).
    pub address: &'a str,
}

impl Accounts {
    /// Checks `password` as the account's, counted against the same limits as log-ins (a
    /// stolen session cannot be used to guess the password it does not know).
    pub async fn check_password(
        &self,
        user: &User,
        password: &str,
        address: &str,
    ) -> Result<(), PasswordError> {
        let counted = Attempt {
            address,
            email: &user.email,
            known_device: true,
        };
        let wait = self.throttle.wait(counted);
        if !wait.is_zero() {
            return Err(PasswordError::Wait(wait));
        }
        let hash = self
            .store
            .credentials_by_id(&user.id)
            .await?
            .map(|c| c.password_hash);
        if verify_password(password.to_owned(), hash).await? {
            Ok(())
        } else {
            self.throttle.failed(counted);
            Err(PasswordError::WrongPassword)
        }
    }

    /// The owner changes their password: every other session ends, known devices are
    /// forgotten, and with `revoke_tokens` every API token is revoked. Returns the new session
    /// epoch (for the session that made the change) and a device token for its browser.
    pub async fn change_password(
        &self,
        user: &User,
        change: &PasswordChange<'_>,
    ) -> Result<(i64, String), PasswordError> {
        self.check_password(user, change.current, change.address)
            .await?;
        let epoch = self
            .replace_password(user, change.new, change.confirmation)
            .await?;
        if change.revoke_tokens {
            self.store.revoke_api_tokens(&user.id).await?;
        }
        tracing::info!(user.id = %user.id, revoke_tokens = change.revoke_tokens, "password changed; other sessions ended");
        Ok((epoch, self.remember_device(user).await?))
    }

    /// An administrator sets an account's password (`lector user password`): every session
    /// of the account ends.
    pub async fn set_password(&self, user: &User, password: &str) -> Result<(), PasswordError> {
        self.replace_password(user, password, password).await?;
        tracing::info!(user.id = %user.id, "password set by an administrator; sessions ended");
        Ok(())
    }

    async fn replace_password(
        &self,
        user: &User,
        password: &str,
        confirmation: &str,
    ) -> Result<i64, PasswordError> {
        check_new_password(
            password,
            confirmation,
            &user.email,
            self.config.password_min_length,
        )
        .map_err(PasswordError::InvalidPassword)?;
        let hash = hash_password(password.to_owned()).await?;
        let epoch = self.store.set_password(&user.id, &hash).await?;
        self.store.forget_devices(&user.id).await?;
        Ok(epoch)
    }

    /// Ends every session of `user` and forgets its devices ("log out everywhere", and
    /// `lector user sessions revoke`); with `revoke_tokens`, revokes its API tokens too.
    pub async fn end_sessions(&self, user: &User, revoke_tokens: bool) -> storage::Result<()> {
        self.store.end_sessions(&user.id).await?;
        self.store.forget_devices(&user.id).await?;
        if revoke_tokens {
            self.store.revoke_api_tokens(&user.id).await?;
        }
        tracing::info!(user.id = %user.id, revoke_tokens, "every session ended");
        Ok(())
    }

    /// A one-time link to set a new password, valid for `valid_for`, for an administrator to
    /// pass on (no e-mail is sent): the account and the link's token (stored hashed).
    pub async fn issue_reset_link(
        &self,
        email: &str,
        valid_for: Duration,
    ) -> anyhow::Result<(User, String)> {
        let email = email.trim().to_lowercase();
        let user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no account has the e-mail {email}"))?;
        let token = hex::encode(rand::rng().random::<[u8; 32]>());
        self.store
            .create_password_reset(&NewPasswordReset {
                id: uuid::Uuid::now_v7().to_string(),
                user_id: user.id.clone(),
                token_hash: token_hash(&token),
                valid_for,
            })
            .await?;
        tracing::info!(user.id = %user.id, minutes = valid_for.as_secs() / 60, "password reset link issued");
        Ok((user, token))
    }

    /// The account a live reset link resets.
    pub async fn reset_link_user(&self, token: &str) -> storage::Result<Option<User>> {
        if token.len() != 64 {
            return Ok(None);
        }
        self.store.password_reset_user(&token_hash(token)).await
    }

    /// Sets a new password through a reset link, which then no longer works; every session
    /// of the account ends.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<User, PasswordError> {
        let user = self
            .reset_link_user(token)
            .await?
            .ok_or(PasswordError::LinkExpired)?;
        check_new_password(
            password,
            confirmation,
            &user.email,
            self.config.password_min_length,
        )
        .map_err(PasswordError::InvalidPassword)?;
        let hash = hash_password(password.to_owned()).await?;
        let user = self
            .store
            .reset_password(&token_hash(token), &hash)
            .await?
            .ok_or(PasswordError::LinkExpired)?;
        tracing::info!(user.id = %user.id, "password reset through a link; sessions ended");
        Ok(user)
    }

    /// Deletes `user` and everything it owns: documents with their pages and originals
    /// (database or S3), tokens, webhooks, reset links, known devices; its sessions are over
    /// (they name an account that no longer exists). Returns how many documents went.
    pub async fn delete_account(
        &self,
        user: &User,
        blobs: &crate::blobs::BlobStore,
    ) -> storage::Result<usize> {
        let mut deleted = 0;
        loop {
            let documents = self.store.list_documents_at(&user.id, 0, 100).await?;
            if documents.is_empty() {
                break;
            }
            for document in &documents {
                self.store.delete_document(&document.id).await?;
                blobs.forget(self.store.as_ref(), document).await?;
            }
            deleted += documents.len();
        }
        self.store.delete_user(&user.id).await?;
        tracing::info!(user.id = %user.id, documents = deleted, "account deleted");
        Ok(deleted)
    }

    /// Every account, oldest first, with what it owns.
    pub async fn list(&self) -> storage::Result<Vec<UserSummary>> {
        self.store.list_users().await
    }
}
