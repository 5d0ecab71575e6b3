//! Principals of recently checked bearer tokens.
//!
//! Checking a token costs three catalog queries (the token, the user, the
//! grants), about 0.6 ms, on every request. An entry is used only while the
//! revocation counter has not moved since it was filled (any sign-out,
//! revocation, disable, role or grant change moves it), for at most
//! [`CACHE_FOR`], and never past the token's own expiry. A change made by
//! another process sharing the catalog is seen within [`CACHE_FOR`].
//!
//! Eviction: at most [`MAX_ENTRIES`] tokens, chosen by moka's TinyLFU policy
//! (a token seen once does not push out one used on every request); every
//! entry dies [`CACHE_FOR`] after it was filled.

use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use super::Principal;

/// Longest an entry is trusted.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// Most tokens remembered at once.
const MAX_ENTRIES: u64 = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    epoch: u64,
    valid_until: DateTime<Utc>,
}

/// Token hash to principal.
#[derive(Debug)]
pub(crate) struct PrincipalCache {
    entries: Cache<String, Entry>,
}

impl Default for PrincipalCache {
    fn default() -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(CACHE_FOR)
                .build(),
        }
    }
}

impl PrincipalCache {
    /// The principal for `token_hash`, if an entry is still good at `epoch`.
    pub(crate) fn get(&self, token_hash: &str, epoch: u64) -> Option<Principal> {
        self.entries
            .get(token_hash)
            .filter(|e| e.epoch == epoch && Utc::now() < e.valid_until)
            .map(|e| e.principal)
    }

    /// Remembers a principal checked at `epoch`, good until `valid_until` at the latest.
    pub(crate) fn put(
        &self,
        token_hash: String,
        principal: Principal,
        epoch: u64,
        valid_until: DateTime<Utc>,
    ) {
        self.entries.insert(
            token_hash,
            Entry {
                principal,
                epoch,
                valid_until,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ClientInfo, Door};

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
