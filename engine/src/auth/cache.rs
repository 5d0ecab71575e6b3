//! Principals of recently checked bearer tokens.
//!
//! Checking a token costs three catalog queries (the token, the user, the
//! grants), about 0.6 ms, on every request. An entry is used only while the
//! revocation counter has not moved since it was filled (any sign-out,
//! revocation, disable, role or grant change moves it), for at most
//! [`CACHE_FOR`], and never past the token's own expiry. A change made by
//! another process sharing the catalog is seen within [`CACHE_FOR`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Principal;

/// Longest an entry is trusted.
pub(super) const CACHE_FOR: Duration = Duration::from_secs(5);
/// Most entries; the cache starts over beyond this.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    principal: Principal,
    epoch: u64,
    checked: Instant,
    valid_until: DateTime<Utc>,
}

/// Token hash to principal.
#[derive(Debug, Default)]
pub(crate) struct PrincipalCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PrincipalCache {
    /// The principal for `token_hash`, if an entry is still good at `epoch`.
    pub(crate) fn get(&self, token_hash: &str, epoch: u64) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(token_hash)
            .filter(|e| {
                e.epoch == epoch && e.checked.elapsed() < CACHE_FOR && Utc::now() < e.valid_until
            })
            .map(|e| e.principal.clone())
    }

    /// Remembers a principal checked at `epoch`, good until `valid_until` at the latest.
    pub(crate) fn put(
        &self,
        token_hash: String,
        principal: Principal,
        epoch: u64,
        valid_until: DateTime<Utc>,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                token_hash,
                Entry {
                    principal,
                    epoch,
                    checked: Instant::now(),
                    valid_until,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClientInfo, Door};

    fn anonymous() -> Principal {
        Principal::anonymous(ClientInfo::through(Door::Rest))
    }

    #[test]
    fn entries_die_with_the_epoch_and_the_token() {
        let cache = PrincipalCache::default();
        let later = Utc::now() + chrono::TimeDelta::hours(1);
        cache.put("h".into(), anonymous(), 3, later);
        assert!(cache.get("h", 3).is_some());
        assert!(cache.get("h", 4).is_none(), "a revocation since");
        assert!(cache.get("other", 3).is_none());
        cache.put("x".into(), anonymous(), 3, Utc::now());
        assert!(cache.get("x", 3).is_none(), "the token has expired");
    }
}
