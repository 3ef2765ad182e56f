//! Slowing down password guessing without letting a stranger lock the owner out, the way
//! OWASP's authentication guidance describes it: wrong passwords are counted per client
//! address and account, and each try past a few free ones waits twice as long as the last (up
//! to 15 minutes). Wrong passwords for one account from everywhere are counted too, with a
//! much higher free allowance, and slow down only clients the account does not know: a
//! browser that has logged in to it before (its device cookie) and an address it logged in
//! from are not held back by failures from elsewhere. Kept in this process, like the other
//! rate limits.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The first wait, after the free failures.
const FIRST_WAIT_SECS: u64 = 5;
/// The longest wait between two tries.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures this long ago no longer count.
const FORGET_FAILURES_AFTER: Duration = Duration::from_secs(60 * 60);
/// An address an account logged in from stays known this long.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Most entries one table keeps: past it, the oldest are dropped first (the per-address
/// rate limit bounds how fast one client can add them).
const MAX_ENTRIES: usize = 100_000;

/// Wrong passwords and when the last one was.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long to wait from `now` before the next try, with `free` failures allowed.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if now.duration_since(self.last) > FORGET_FAILURES_AFTER || self.count < free {
            return Duration::ZERO;
        }
        let doublings = (self.count - free).min(20);
        let wait = Duration::from_secs(FIRST_WAIT_SECS << doublings).min(MAX_WAIT);
        (self.last + wait).saturating_duration_since(now)
    }

    fn add(entry: Option<&mut Failures>, now: Instant) -> Failures {
        match entry {
            Some(failures) if now.duration_since(failures.last) <= FORGET_FAILURES_AFTER => {
                Failures {
                    count: failures.count + 1,
                    last: now,
                }
            }
            _ => Failures {
                count: 1,
                last: now,
            },
        }
    }
}

/// Who is trying to log in to which account.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The client's address.
    pub address: &'a str,
    /// The normalised e-mail.
    pub email: &'a str,
    /// The browser carries a device cookie of this account.
    pub known_device: bool,
}

/// The failure counts of one process.
#[derive(Debug)]
pub struct LoginThrottle {
    free_per_address: u32,
    free_per_account: u32,
    pairs: Mutex<HashMap<(String, String), Failures>>,
    accounts: Mutex<HashMap<String, Failures>>,
    known_addresses: Mutex<HashMap<(String, String), Instant>>,
}

impl LoginThrottle {
    /// `free_per_address` wrong passwords per address and account, `free_per_account` per
    /// account from unknown clients, before tries wait (0 turns that count off).
    pub fn new(free_per_address: u32, free_per_account: u32) -> Self {
        LoginThrottle {
            free_per_address,
            free_per_account,
            pairs: Mutex::default(),
            accounts: Mutex::default(),
            known_addresses: Mutex::default(),
        }
    }

    /// How long `attempt` must wait before its password is checked at all; zero when it may
    /// go ahead.
    pub fn wait(&self, attempt: Attempt<'_>) -> Duration {
        let now = Instant::now();
        let pair = (address_key(attempt.address), attempt.email.to_owned());
        let mut wait = Duration::ZERO;
        if self.free_per_address > 0
            && let Some(failures) = lock(&self.pairs).get(&pair)
        {
            wait = failures.wait(self.free_per_address, now);
        }
        if self.free_per_account > 0
            && !attempt.known_device
            && !self.is_known_address(&pair, now)
            && let Some(failures) = lock(&self.accounts).get(attempt.email)
        {
            wait = wait.max(failures.wait(self.free_per_account, now));
        }
        wait
    }

    /// Counts a wrong password.
    pub fn failed(&self, attempt: Attempt<'_>) {
        let now = Instant::now();
        let pair = (address_key(attempt.address), attempt.email.to_owned());
        let counts_for_account = !attempt.known_device && !self.is_known_address(&pair, now);
        let mut pairs = lock(&self.pairs);
        make_room(&mut pairs, |f| f.last);
        let failures = Failures::add(pairs.get_mut(&pair), now);
        pairs.insert(pair, failures);
        drop(pairs);
        if counts_for_account {
            let mut accounts = lock(&self.accounts);
            make_room(&mut accounts, |f| f.last);
            let failures = Failures::add(accounts.get_mut(attempt.email), now);
            accounts.insert(attempt.email.to_owned(), failures);
        }
    }

    /// A right password: this address's failures for the account are forgotten, and the
    /// address is known to the account from now on.
    pub fn succeeded(&self, attempt: Attempt<'_>) {
        let pair = (address_key(attempt.address), attempt.email.to_owned());
        lock(&self.pairs).remove(&pair);
        let mut known = lock(&self.known_addresses);
        make_room(&mut known, |at| *at);
        known.insert(pair, Instant::now());
    }

    /// Drops what no longer counts.
    pub fn forget_old(&self) {
        let now = Instant::now();
        lock(&self.pairs).retain(|_, f| now.duration_since(f.last) <= FORGET_FAILURES_AFTER);
        lock(&self.accounts).retain(|_, f| now.duration_since(f.last) <= FORGET_FAILURES_AFTER);
        lock(&self.known_addresses).retain(|_, at| now.duration_since(*at) <= KNOWN_FOR);
    }

    fn is_known_address(&self, pair: &(String, String), now: Instant) -> bool {
        lock(&self.known_addresses)
            .get(pair)
            .is_some_and(|at| now.duration_since(*at) <= KNOWN_FOR)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while a count was updated leaves counts that are still counts.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a table under [`MAX_ENTRIES`] by dropping its older half.
fn make_room<K: Eq + std::hash::Hash, V>(table: &mut HashMap<K, V>, when: impl Fn(&V) -> Instant) {
    if table.len() < MAX_ENTRIES {
        return;
    }
    let mut times: Vec<Instant> = table.values().map(&when).collect();
    let middle = times.len() / 2;
    let (_, cutoff, _) = times.select_nth_unstable(middle);
    let cutoff = *cutoff;
    table.retain(|_, v| when(v) > cutoff);
}

/// The key a client address is counted under: an IPv6 client is its /64, the block one
/// customer gets, so that it cannot step through the addresses it owns.
pub fn address_key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) if ip.to_ipv4_mapped().is_none() => {
            let mut segments = ip.segments();
            segments[4..].fill(0);
            format!("{}/64", std::net::Ipv6Addr::from(segments))
        }
        Ok(IpAddr::V6(ip)) => ip
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        _ => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(address: &'a str, known_device: bool) -> Attempt<'a> {
        Attempt {
            address,
            email: "owner@example.com",
            known_device,
        }
    }

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_cap() {
        let now = Instant::now();
        let wait = |count| Failures { count, last: now }.wait(5, now);
        assert_eq!(wait(4), Duration::ZERO);
        assert_eq!(wait(5), Duration::from_secs(5));
        assert_eq!(wait(6), Duration::from_secs(10));
        assert_eq!(wait(10), Duration::from_secs(160));
        assert_eq!(wait(40), MAX_WAIT);
        let old = Failures {
            count: 40,
            last: now - FORGET_FAILURES_AFTER - Duration::from_secs(1),
        };
        assert_eq!(old.wait(5, now), Duration::ZERO, "forgotten after an hour");
    }

    #[test]
    fn a_guesser_waits_but_the_owner_from_elsewhere_does_not_until_the_account_ceiling() {
        let throttle = LoginThrottle::new(3, 10);
        for _ in 0..3 {
            assert_eq!(throttle.wait(attempt("203.0.113.9", false)), Duration::ZERO);
            throttle.failed(attempt("203.0.113.9", false));
        }
        assert!(throttle.wait(attempt("203.0.113.9", false)) > Duration::ZERO);
        assert_eq!(
            throttle.wait(attempt("198.51.100.1", false)),
            Duration::ZERO,
            "another address is not held back by this one's failures"
        );
        // Failures from many addresses add up for the account: unknown clients then wait…
        for n in 0..7 {
            throttle.failed(attempt(&format!("192.0.2.{n}"), false));
        }
        assert!(throttle.wait(attempt("198.51.100.1", false)) > Duration::ZERO);
        // …but not the owner's browser, nor an address the owner logged in from.
        assert_eq!(throttle.wait(attempt("198.51.100.1", true)), Duration::ZERO);
        throttle.succeeded(attempt("198.51.100.2", true));
        assert_eq!(
            throttle.wait(attempt("198.51.100.2", false)),
            Duration::ZERO
        );
        throttle.forget_old();
        assert!(throttle.wait(attempt("203.0.113.9", false)) > Duration::ZERO);
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64() {
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:ffff::1"),
            address_key("2001:db8:1:2::9")
        );
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("unknown"), "unknown");
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut table: HashMap<u32, Instant> = HashMap::new();
        let start = Instant::now();
        for n in 0..MAX_ENTRIES as u32 {
            table.insert(n, start + Duration::from_millis(u64::from(n)));
        }
        make_room(&mut table, |at| *at);
        assert!(table.len() < MAX_ENTRIES / 2 + 2, "{}", table.len());
        assert!(
            table.contains_key(&(MAX_ENTRIES as u32 - 1)),
            "the newest stay"
        );
    }
}
