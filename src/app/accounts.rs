//! Account use cases: sign-up (under the configured policy), log-in (throttled, see
//! [`throttle`]), API tokens, and what an owner or an administrator does after a password
//! leaks: change it, end every session, issue a one-time reset link, delete the account.
//! Password hashing (Argon2id) runs on the blocking pool, never on the async runtime.

mod recovery;
pub mod throttle;

pub use recovery::{PasswordChange, PasswordError};

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{
    config::{Config, SignupPolicy},
    domain::{
        ApiToken, TokenId, User, UserId,
        account::{TOKEN_DISPLAY_CHARS, TOKEN_PREFIX, check_new_password, normalise_email},
    },
    storage::{self, NewApiToken, NewUser, Store},
};
use throttle::{Attempt, LoginThrottle};

/// Why an account was not created; the message is for the person signing up.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    /// The policy does not allow sign-up from the browser now.
    #[error("Sign-up is closed here: ask the administrator to add your account.")]
    Closed,
    /// The e-mail is not an address.
    #[error("{0}")]
    InvalidEmail(String),
    /// Weak, too short or not confirmed.
    #[error("{0}")]
    InvalidPassword(String),
    /// Someone already has this e-mail.
    #[error("An account with this e-mail already exists: log in instead.")]
    Taken,
    /// Our fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<storage::Error> for SignUpError {
    fn from(err: storage::Error) -> Self {
        match err {
            storage::Error::Conflict => SignUpError::Taken,
            other => SignUpError::Internal(other.into()),
        }
    }
}

/// Why an API token was not created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is empty or too long.
    #[error("Give the token a name of 1 to 100 characters, such as \"backup script\".")]
    InvalidName,
    /// Our fault.
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// A log-in as the form sends it, and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct LogInAttempt<'a> {
    /// As typed.
    pub email: &'a str,
    /// As typed.
    pub password: &'a str,
    /// The client's address.
    pub address: &'a str,
    /// The browser's device cookie, if it has one.
    pub device: Option<&'a str>,
}

/// How a log-in ended.
#[derive(Debug)]
pub enum LogIn {
    /// Signed in; `new_device` is a device token for the browser to keep when it had none
    /// for this account.
    Welcome {
        /// The account.
        user: User,
        /// Its session epoch, for the new session.
        session_epoch: i64,
        /// A device cookie's token to set.
        new_device: Option<String>,
    },
    /// Unknown e-mail or wrong password (the same answer for both).
    Refused,
    /// Too many wrong passwords for this account from this client: the password was not
    /// checked; try again after this long.
    Wait(Duration),
}

/// What the log-in and sign-up pages need to know about sign-up, from one count of accounts.
#[derive(Debug, Clone, Copy)]
pub struct SignupState {
    /// The sign-up page may create an account now.
    pub open: bool,
    /// No account exists yet.
    pub first: bool,
}

/// Account use cases over one store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    throttle: Arc<LoginThrottle>,
}

impl Accounts {
    /// Use cases over `store`.
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> Self {
        let limits = &config.rate_limits;
        Accounts {
            throttle: Arc::new(LoginThrottle::new(
                limits.login_failures_per_address,
                limits.login_failures_per_account,
            )),
            store,
            config,
        }
    }

    /// The log-in failure counts, to forget the old ones now and then.
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Whether the sign-up page may create an account now, and whether it would be the first.
    pub async fn signup_state(&self) -> storage::Result<SignupState> {
        let first = self.store.count_users().await? == 0;
        let open = match self.config.signup {
            SignupPolicy::Open => true,
            SignupPolicy::FirstOnly => first,
            SignupPolicy::Closed => false,
        };
        Ok(SignupState { open, first })
    }

    /// Sign-up from the browser, under `LECTOR_SIGNUP`.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<User, SignUpError> {
        let only_if_first = match self.config.signup {
            SignupPolicy::Open => false,
            SignupPolicy::FirstOnly => true,
            SignupPolicy::Closed => return Err(SignUpError::Closed),
        };
        self.create(email, password, confirmation, only_if_first)
            .await?
            .ok_or(SignUpError::Closed)
    }

    /// Checks what a sign-up form says, without looking at the accounts (a typo costs
    /// nothing against the sign-up limit).
    pub fn check_sign_up(
        &self,
        email: &str,
        password: &str,
        confirmation: &str,
    ) -> Result<(), SignUpError> {
        if self.config.signup == SignupPolicy::Closed {
            return Err(SignUpError::Closed);
        }
        let email = normalise_email(email).map_err(SignUpError::InvalidEmail)?;
        check_new_password(
            password,
            confirmation,
            &email,
            self.config.password_min_length,
        )
        .map_err(SignUpError::InvalidPassword)
    }

    /// An account added by the administrator (`lector user add`), whatever the policy.
    pub async fn add_user(&self, email: &str, password: &str) -> Result<User, SignUpError> {
        self.create(email, password, password, false)
            .await?
            .ok_or_else(|| SignUpError::Internal(anyhow::anyhow!("the account was not stored")))
    }

    async fn create(
        &self,
        email: &str,
        password: &str,
        confirmation: &str,
        only_if_first: bool,
    ) -> Result<Option<User>, SignUpError> {
        let email = normalise_email(email).map_err(SignUpError::InvalidEmail)?;
        check_new_password(
            password,
            confirmation,
            &email,
            self.config.password_min_length,
        )
        .map_err(SignUpError::InvalidPassword)?;
        if only_if_first && self.store.count_users().await? > 0 {
            return Err(SignUpError::Closed);
        }
        let password_hash = hash_password(password.to_owned()).await?;
        let user = NewUser {
            id: UserId::new(),
            email,
            password_hash,
        };
        let created = self.store.create_user(&user, only_if_first).await?;
        if let Some(user) = &created {
            tracing::info!(user.id = %user.id, "account created");
        }
        Ok(created)
    }

    /// Checks a log-in. The password is checked only when the client need not wait; the
    /// answer is the same, in about the same time, for an unknown e-mail and a wrong password.
    pub async fn log_in(&self, attempt: LogInAttempt<'_>) -> anyhow::Result<LogIn> {
        let email = attempt.email.trim().to_lowercase();
        let credentials = self.store.credentials_by_email(&email).await?;
        let known_device = match (attempt.device, &credentials) {
            (Some(device), Some(credentials)) => {
                self.store
                    .device_user(&token_hash(device))
                    .await?
                    .as_deref()
                    == Some(credentials.user.id.as_str())
            }
            _ => false,
        };
        let counted = Attempt {
            address: attempt.address,
            email: &email,
            known_device,
        };
        let wait = self.throttle.wait(counted);
        if !wait.is_zero() {
            return Ok(LogIn::Wait(wait));
        }
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let matches = verify_password(attempt.password.to_owned(), hash).await?;
        let Some(credentials) = credentials.filter(|_| matches) else {
            self.throttle.failed(counted);
            return Ok(LogIn::Refused);
        };
        self.throttle.succeeded(counted);
        let new_device = if known_device {
            None
        } else {
            Some(self.remember_device(&credentials.user).await?)
        };
        Ok(LogIn::Welcome {
            user: credentials.user,
            session_epoch: credentials.session_epoch,
            new_device,
        })
    }

    /// A new device token for a browser that just logged in to `user` (its hash is stored).
    pub async fn remember_device(&self, user: &User) -> storage::Result<String> {
        let token = hex::encode(rand::rng().random::<[u8; 32]>());
        self.store
            .remember_device(&token_hash(&token), &user.id)
            .await?;
        Ok(token)
    }

    /// The account a session names, while the session is not over: signed in under the
    /// account's current session epoch.
    pub async fn session_user(&self, id: &UserId, epoch: i64) -> storage::Result<Option<User>> {
        Ok(self
            .store
            .credentials_by_id(id)
            .await?
            .filter(|credentials| credentials.session_epoch == epoch)
            .map(|credentials| credentials.user))
    }

    /// An account by id (the one a session names).
    pub async fn user(&self, id: &UserId) -> storage::Result<Option<User>> {
        match self.store.user_by_id(id).await {
            Ok(user) => Ok(Some(user)),
            Err(storage::Error::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// A new API token for `user`: the stored record and the token itself, which is shown
    /// once and never stored.
    pub async fn create_token(
        &self,
        user: &User,
        name: &str,
    ) -> Result<(ApiToken, String), TokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(TokenError::InvalidName);
        }
        let secret: [u8; 32] = rand::rng().random();
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let record = self
            .store
            .create_api_token(&NewApiToken {
                id: TokenId::new(),
                user_id: user.id.clone(),
                name: name.to_owned(),
                prefix: token[..TOKEN_DISPLAY_CHARS].to_owned(),
                token_hash: token_hash(&token),
            })
            .await?;
        tracing::info!(user.id = %user.id, token.id = %record.id, "API token created");
        Ok((record, token))
    }

    /// `user`'s tokens, newest first.
    pub async fn tokens(&self, user: &User) -> storage::Result<Vec<ApiToken>> {
        self.store.list_api_tokens(&user.id).await
    }

    /// Revokes one of `user`'s tokens; false when they have no such token.
    pub async fn revoke_token(&self, user: &User, token_id: &TokenId) -> storage::Result<bool> {
        let revoked = self.store.revoke_api_token(&user.id, token_id).await?;
        if revoked {
            tracing::info!(user.id = %user.id, token.id = %token_id, "API token revoked");
        }
        Ok(revoked)
    }

    /// An account by e-mail.
    pub async fn user_by_email(&self, email: &str) -> storage::Result<Option<User>> {
        self.store.user_by_email(email).await
    }

    /// The owner of a bearer token, if it is a live token.
    pub async fn authenticate(&self, token: &str) -> storage::Result<Option<User>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
            return Ok(None);
        }
        self.store.user_by_token_hash(&token_hash(token)).await
    }

    /// The account that owns documents ingested from S3: `LECTOR_INGEST_OWNER`, else the
    /// first account, else none yet (the first account will take them over).
    pub async fn ingest_owner(&self) -> anyhow::Result<Option<User>> {
        match &self.config.ingest_owner {
            Some(email) => {
                let email = email.trim().to_lowercase();
                let user = self.store.user_by_email(&email).await?;
                anyhow::ensure!(user.is_some(), "LECTOR_INGEST_OWNER={email} has no account");
                Ok(user)
            }
            None => Ok(self.store.first_user().await?),
        }
    }
}

/// Tokens (API tokens, device cookies, reset links) are 256 random bits: a plain SHA-256 is
/// enough to store them (a slow hash is for guessable secrets such as passwords).
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Argon2id with the crate's defaults (OWASP's recommended 19 MiB, 2 passes, 1 lane).
async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Checks `password` against `hash`; without a hash (unknown e-mail), against a dummy one
/// so that the answer takes as long, and is false.
async fn verify_password(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| anyhow::anyhow!("a stored hash is invalid: {e}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && matches)
    })
    .await?
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no account has this password", &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// A random password for `lector user add` when none is given: 20 characters without look-alikes.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
