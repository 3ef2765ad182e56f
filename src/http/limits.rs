//! Abuse limits: log-in and sign-up attempts per client address, sign-ups per address and
//! hour, uploads per user. GCRA rate limiters from `governor`, kept in this process (with
//! several instances behind a load balancer, each enforces its own share). Wrong passwords
//! are counted by the account use cases ([`crate::app::accounts::throttle`]).

use std::{num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use super::AppError;
use crate::{app::accounts::throttle::address_key, config::RateLimitSettings};

/// The limiters of one process.
pub struct RateLimits {
    login_per_ip: Option<DefaultKeyedRateLimiter<String>>,
    signups_per_ip: Option<DefaultKeyedRateLimiter<String>>,
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
            signups_per_ip: NonZeroU32::new(settings.signups_per_hour)
                .map(|n| RateLimiter::keyed(Quota::per_hour(n))),
            uploads_per_user: per_minute(settings.uploads_per_user),
        }
    }

    /// Counts a log-in attempt from `ip` (an IPv6 client by its /64).
    pub fn check_login(&self, ip: &str) -> Result<(), AppError> {
        check(&self.login_per_ip, &address_key(ip))
    }

    /// Counts a sign-up from `ip` against the log-ins' budget and against a tight hourly one
    /// of its own: a sign-up tells whether an e-mail has an account, so an address may ask a
    /// few times an hour (the reason is in docs/security.md).
    pub fn check_signup(&self, ip: &str) -> Result<(), AppError> {
        let key = address_key(ip);
        check(&self.login_per_ip, &key)?;
        check(&self.signups_per_ip, &key)
    }

    /// Counts an upload request by `user_id`.
    pub fn check_upload(&self, user_id: &str) -> Result<(), AppError> {
        check(&self.uploads_per_user, user_id)
    }

    /// Drops the state of keys whose limit has fully recovered.
    pub fn forget_quiet_clients(&self) {
        for limiter in [
            &self.login_per_ip,
            &self.signups_per_ip,
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
            login_per_ip: 3,
            login_failures_per_address: 0,
            login_failures_per_account: 0,
            signups_per_hour: 1,
            uploads_per_user: 1,
        });
        assert!(limits.check_login("10.0.0.1").is_ok());
        assert!(limits.check_login("10.0.0.1").is_ok());
        assert!(limits.check_signup("10.0.0.2").is_ok());
        match limits.check_signup("10.0.0.2") {
            Err(AppError::TooManyRequests { retry_after }) => {
                assert!((1..=3600).contains(&retry_after), "{retry_after}")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limits.check_login("10.0.0.1").is_ok());
        match limits.check_login("10.0.0.1") {
            Err(AppError::TooManyRequests { retry_after }) => {
                assert!((1..=30).contains(&retry_after), "{retry_after}")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(
            limits.check_signup("10.0.0.1").is_err(),
            "the same per-minute budget as log-ins"
        );
        // One IPv6 client is its /64.
        assert!(limits.check_signup("2001:db8::1").is_ok());
        assert!(limits.check_signup("2001:db8::2").is_err());
        assert!(limits.check_upload("u1").is_ok());
        assert!(limits.check_upload("u1").is_err());
        assert!(limits.check_upload("u2").is_ok());
        limits.forget_quiet_clients();
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
