//! Who is calling and what they did: accounts and sign-in (users, sessions,
//! API keys and grants stored in the catalog, the cache of recently checked
//! tokens), the audit log, and the secrets sealed at rest.
//!
//! The rules themselves (roles, scopes, [`Principal::authorize`],
//! credentials, password policy, rate limits) live in `basin-auth`, which
//! has no IO; they are re-exported here because every engine method speaks
//! in them.

mod accounts;
pub mod audit;
mod cache;
pub mod secrets;

pub use accounts::{AuthSettings, LoginOutcome, NewApiKey, NewUser, UserPatch, hash_token};
pub use basin_auth::{
    ANONYMOUS, Action, ClientInfo, Credentials, DatasetGrant, Door, GrantAccess, Principal,
    Resource, Role, Scope, Via, password, throttle,
};
pub(crate) use cache::PrincipalCache;
