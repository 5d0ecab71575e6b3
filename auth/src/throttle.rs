//! Request rate limits (token buckets per client address and per principal)
//! and brute-force protection for password logins (a growing delay, then a
//! temporary lockout).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{Error, Result};

/// A token bucket's shape: `per_second` tokens refill each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(self.per_second))?;
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// Token buckets per client address and per principal; `None` limits nothing.
pub struct RateLimits {
    by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_principal: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("by_ip", &self.by_ip.is_some())
            .field("by_principal", &self.by_principal.is_some())
            .finish()
    }
}

/// Buckets idle this long are forgotten (they are full again by then).
const FORGET_AFTER_CHECKS: u64 = 10_000;

impl RateLimits {
    /// Limits per address and per principal; a zero rate disables that limit.
    pub fn new(per_ip: RateLimit, per_principal: RateLimit) -> Self {
        Self {
            by_ip: per_ip.quota().map(RateLimiter::keyed),
            by_principal: per_principal.quota().map(RateLimiter::keyed),
        }
    }

    /// Takes a token from the address's bucket.
    pub fn check_ip(&self, ip: IpAddr) -> Result<()> {
        check(
            self.by_ip.as_ref(),
            &ip,
            "too many requests from this address",
        )
    }

    /// Takes a token from the principal's bucket.
    pub fn check_principal(&self, principal: &str) -> Result<()> {
        check(
            self.by_principal.as_ref(),
            &principal.to_owned(),
            "too many requests for this user",
        )
    }
}

fn check<K>(limiter: Option<&DefaultKeyedRateLimiter<K>>, key: &K, message: &str) -> Result<()>
where
    K: std::hash::Hash + Eq + Clone,
{
    let Some(limiter) = limiter else {
        return Ok(());
    };
    // Full buckets carry no information: drop them now and then to bound memory.
    if rand::random_range(0..FORGET_AFTER_CHECKS) == 0 {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Error::RateLimited {
            message: message.into(),
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
    })
}

/// Brute-force protection for password logins, by username.
///
/// Each failure in a row delays the answer to the next attempt longer
/// (`base_delay`, doubling, at most 5 s); after `max_failures` the username is
/// locked for `lockout`, during which even the right password is refused. A
/// success clears the count. Keyed by username, so spreading guesses over many
/// addresses does not help; the price is that a stranger can lock an account
/// for `lockout`, which sessions and API keys already issued do not feel.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    lockout: Duration,
    base_delay: Duration,
    state: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Most usernames tracked at once; the oldest are forgotten beyond this.
const MAX_TRACKED: usize = 100_000;
/// Longest delay before answering a failed attempt.
const MAX_DELAY: Duration = Duration::from_secs(5);

impl LoginThrottle {
    /// Locks a username for `lockout` after `max_failures` failures in a row.
    pub fn new(max_failures: u32, lockout: Duration, base_delay: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            lockout,
            base_delay,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str) -> String {
        username.trim().to_lowercase()
    }

    /// Refuses the attempt while the username is locked, and otherwise counts
    /// it and says how long to wait before checking the password (zero after
    /// no failures).
    ///
    /// The attempt counts before its outcome is known, so attempts sent all at
    /// once cannot slip past the limit while the first ones are being checked;
    /// a success clears the count again.
    pub fn admit(&self, username: &str) -> Result<Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle lock");
        if state.len() >= MAX_TRACKED {
            let lockout = self.lockout;
            state.retain(|_, f| now.duration_since(f.last) <= lockout);
        }
        let entry = state.entry(Self::key(username)).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if let Some(until) = entry.locked_until {
            if until > now {
                return Err(Error::RateLimited {
                    message: "too many failed logins: this account is locked for a while".into(),
                    retry_after_secs: (until - now).as_secs_f64().ceil().max(1.0) as u64,
                });
            }
            // The lockout is over: start afresh.
            entry.locked_until = None;
            entry.count = 0;
        }
        // Failures long ago are forgiven.
        if now.duration_since(entry.last) > self.lockout {
            entry.count = 0;
        }
        let delay = self.delay_after(entry.count);
        entry.count += 1;
        entry.last = now;
        if entry.count >= self.max_failures {
            entry.locked_until = Some(now + self.lockout);
        }
        Ok(delay)
    }

    fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(16);
        (self.base_delay * factor).min(MAX_DELAY)
    }

    /// Whether the username is locked now (after a failed attempt).
    pub fn is_locked(&self, username: &str) -> bool {
        let now = Instant::now();
        self.state
            .lock()
            .expect("throttle lock")
            .get(&Self::key(username))
            .and_then(|f| f.locked_until)
            .is_some_and(|until| until > now)
    }

    /// Clears the username's failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        self.state
            .lock()
            .expect("throttle lock")
            .remove(&Self::key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_grow_the_delay_then_lock_and_the_lock_ends() {
        let throttle = LoginThrottle::new(3, Duration::from_millis(50), Duration::from_millis(10));
        assert_eq!(throttle.admit("Ann").unwrap(), Duration::ZERO);
        assert!(!throttle.is_locked("ann"));
        assert_eq!(throttle.admit("ann").unwrap(), Duration::from_millis(10));
        assert!(!throttle.is_locked("ANN"));
        assert_eq!(throttle.admit("ann").unwrap(), Duration::from_millis(20));
        assert!(throttle.is_locked("ann"));
        assert!(matches!(
            throttle.admit("ann"),
            Err(Error::RateLimited { .. })
        ));
        // Other users are not affected.
        assert_eq!(throttle.admit("bob").unwrap(), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.admit("ann").unwrap(), Duration::ZERO);
    }

    #[test]
    fn success_clears_failures() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60), Duration::from_millis(10));
        throttle.admit("ann").unwrap();
        throttle.succeeded("ann");
        assert_eq!(throttle.admit("ann").unwrap(), Duration::ZERO);
    }

    #[test]
    fn attempts_sent_at_once_count_before_their_outcome() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60), Duration::ZERO);
        let admitted = (0..100).filter(|_| throttle.admit("ann").is_ok()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn buckets_refuse_past_the_burst_and_say_when_to_retry() {
        let limits = RateLimits::new(
            RateLimit {
                per_second: 1,
                burst: 2,
            },
            RateLimit {
                per_second: 0,
                burst: 0,
            },
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(limits.check_ip(ip).is_ok());
        assert!(limits.check_ip(ip).is_ok());
        let Err(Error::RateLimited {
            retry_after_secs, ..
        }) = limits.check_ip(ip)
        else {
            panic!("third request passed")
        };
        assert_eq!(retry_after_secs, 1);
        // A zero rate disables the per-principal limit.
        for _ in 0..100 {
            assert!(limits.check_principal("ann").is_ok());
        }
    }
}
