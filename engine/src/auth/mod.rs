//! Accounts and sign-in: users, sessions, API keys and grants stored in the
//! catalog, and the cache of recently checked tokens.
//!
//! The rules themselves (roles, scopes, [`Principal::authorize`],
//! credentials, password policy, rate limits) live in `basin-auth`, which
//! has no IO; they are re-exported here because every engine method speaks
//! in them.

mod accounts;
mod cache;

pub use accounts::{AuthSettings, LoginOutcome, NewApiKey, NewUser, UserPatch, hash_token};
pub use basin_auth::{
    ANONYMOUS, Action, ClientInfo, Credentials, DatasetGrant, Door, GrantAccess, Principal,
    Resource, Role, Scope, Via, password, throttle,
};
pub(crate) use cache::PrincipalCache;
