//! Abuse limits: log-in attempts per client address and per account, uploads per user.
//! GCRA rate limiters from `governor`, kept in this process (with several instances behind a
//! load balancer, each enforces its own share).

use std::{num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use super::AppError;
use crate::config::RateLimitSettings;

/// The limiters of one process.
pub struct RateLimits {
    login_per_ip: Option<DefaultKeyedRateLimiter<String>>,
    login_per_account: Option<DefaultKeyedRateLimiter<String>>,
    uploads_per_user: Option<DefaultKeyedRateLimiter<String>>,
}

fn per_minute(limit: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    NonZeroU32::new(limit).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

fn check(limiter: &Option<DefaultKeyedRateLimiter<String>>, key: &str) -> Result<(), AppError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::TooManyRequests {
            retry_after: retry_after_secs(wait),
        }
    })
}

/// Whole seconds to wait, rounded up (a `Retry-After` of 0 would invite an immediate retry).
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

impl RateLimits {
    /// Limiters for `settings` (a limit of 0 is none).
    pub fn new(settings: &RateLimitSettings) -> Self {
        RateLimits {
            login_per_ip: per_minute(settings.login_per_ip),
            login_per_account: per_minute(settings.login_per_account),
            uploads_per_user: per_minute(settings.uploads_per_user),
        }
    }

    /// Counts a log-in attempt from `ip` for `email`.
    pub fn check_login(&self, ip: &str, email: &str) -> Result<(), AppError> {
        check(&self.login_per_ip, ip)?;
        check(&self.login_per_account, &email.trim().to_lowercase())
    }

    /// Counts a sign-up attempt from `ip` (against the same per-address budget as log-ins, so
    /// open sign-up cannot be used to create accounts in bulk).
    pub fn check_signup(&self, ip: &str) -> Result<(), AppError> {
        check(&self.login_per_ip, ip)
    }

    /// Counts an upload request by `user_id`.
    pub fn check_upload(&self, user_id: &str) -> Result<(), AppError> {
        check(&self.uploads_per_user, user_id)
    }

    /// Drops the state of keys whose limit has fully recovered.
    pub fn forget_quiet_clients(&self) {
        for limiter in [
            &self.login_per_ip,
            &self.login_per_account,
            &self.uploads_per_user,
        ]
        .into_iter()
        .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_key_and_says_how_long_to_wait() {
        let limits = RateLimits::new(&RateLimitSettings {
            login_per_ip: 2,
            login_per_account: 0,
            uploads_per_user: 1,
        });
        assert!(limits.check_login("10.0.0.1", "a@example.com").is_ok());
        assert!(limits.check_login("10.0.0.1", "b@example.com").is_ok());
        match limits.check_login("10.0.0.1", "c@example.com") {
            Err(AppError::TooManyRequests { retry_after }) => {
                assert!((1..=30).contains(&retry_after), "{retry_after}")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limits.check_login("10.0.0.2", "a@example.com").is_ok());
        assert!(
            limits.check_signup("10.0.0.1").is_err(),
            "the same budget as log-ins"
        );
        assert!(limits.check_upload("u1").is_ok());
        assert!(limits.check_upload("u1").is_err());
        assert!(limits.check_upload("u2").is_ok());
        limits.forget_quiet_clients();
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
