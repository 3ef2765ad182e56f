//! Accounts and API tokens: who a request is, and the rules for e-mails and passwords.

use chrono::{DateTime, Utc};
use validator::ValidateEmail;

/// A person with an account. Documents belong to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// UUIDv7.
    pub id: super::UserId,
    /// Lower-cased e-mail address, unique.
    pub email: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A user with the hash of their password, as the log-in check needs it. `Debug` leaves the
/// hash out.
#[derive(Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// The Argon2id hash in PHC string format.
    pub password_hash: String,
    /// Sessions signed in under an earlier epoch are over (see migration 0012).
    pub session_epoch: i64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .field("session_epoch", &self.session_epoch)
            .finish()
    }
}

/// An API token as its owner sees it in the list (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// UUIDv7.
    pub id: super::TokenId,
    /// The name its owner gave it (e.g. "backup script").
    pub name: String,
    /// The first characters of the token, so its owner can tell tokens apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Every token starts with this, so leaked tokens are easy to find in code and logs.
pub const TOKEN_PREFIX: &str = "lector_";

/// Characters of a token shown in the list.
pub const TOKEN_DISPLAY_CHARS: usize = TOKEN_PREFIX.len() + 6;

/// The e-mail as stored: trimmed and lower-cased; an error for a person when it is not an
/// address.
pub fn normalise_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    if email.len() > 254 || !email.validate_email() {
        return Err("Enter an e-mail address such as name@example.com.".into());
    }
    Ok(email)
}

/// Passwords too common to accept whatever their length (the top of the breached-password
/// lists that are 10 characters or longer).
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789a",
    "1q2w3e4r5t",
    "0123456789",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "password123",
    "password1234",
    "iloveyou123",
    "qwerty123456",
    "1234qwerty",
    "abcdefghij",
    "aaaaaaaaaa",
    "passwordpassword",
    "letmein123",
    "welcome123",
    "administrator",
    "changeme123",
];

/// Checks a new password and its confirmation; the error says what to change.
pub fn check_new_password(
    password: &str,
    confirmation: &str,
    email: &str,
    min_length: usize,
) -> Result<(), String> {
    if password != confirmation {
        return Err("The two passwords do not match.".into());
    }
    let length = password.chars().count();
    if length < min_length {
        return Err(format!(
            "Use a password of at least {min_length} characters (this one has {length})."
        ));
    }
    if length > 1024 {
        return Err("Use a password of at most 1024 characters.".into());
    }
    let lower = password.to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    let distinct = lower
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if COMMON_PASSWORDS.contains(&lower.as_str())
        || lower == email
        || (local_part.len() >= 4 && lower.contains(local_part))
        || distinct < 4
    {
        return Err(
            "This password is too easy to guess: avoid common passwords, repeated characters \
             and your e-mail address."
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            normalise_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(normalise_email("not an email").is_err());
        assert!(normalise_email("").is_err());
    }

    #[test]
    fn weak_and_mismatched_passwords_are_refused_with_a_reason() {
        let ok = "correct horse battery";
        assert!(check_new_password(ok, ok, "ada@example.com", 10).is_ok());
        let mismatch = check_new_password(ok, "correct horse", "ada@example.com", 10);
        assert!(mismatch.unwrap_err().contains("do not match"));
        let short = check_new_password("short", "short", "ada@example.com", 10);
        assert!(short.unwrap_err().contains("at least 10"));
        for weak in [
            "password123",
            "aaaaaaaaaaaa",
            "ada@example.com",
            "abababababab",
        ] {
            assert!(
                check_new_password(weak, weak, "ada@example.com", 10)
                    .unwrap_err()
                    .contains("too easy"),
                "{weak} should be refused"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_password_hash() {
        let credentials = Credentials {
            user: User {
                id: "u1".into(),
                email: "ada@example.com".into(),
                created_at: Utc::now(),
            },
            password_hash: "$argon2id$v=19$secret".into(),
            session_epoch: 0,
        };
        assert!(!format!("{credentials:?}").contains("argon2id"));
    }
}
