//! Catalog rows for identity (users, sessions, API keys, grants), the audit
//! log and sealed secrets, and the repository traits that store them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Page;
use crate::Result;
use basin_auth::{DatasetGrant, Role, Scope};

/// A user's row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct UserRecord {
    /// Stable id (UUID v7).
    pub id: String,
    /// Unique sign-in name.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// argon2id PHC string; never shown.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// What the user may do.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// A disabled user cannot sign in, and their sessions and keys stop working.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
    /// When the password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// Last successful password sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A login session's row. The token itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SessionRecord {
    /// Stable id, shown to the user to revoke it.
    pub id: String,
    /// Whose session.
    pub user_id: String,
    /// SHA-256 of the token; never shown.
    #[serde(skip_serializing)]
    pub token_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last use (updated at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// It ends here unless used again (sliding).
    pub expires_at: DateTime<Utc>,
    /// It ends here whatever happens.
    pub max_expires_at: DateTime<Utc>,
    /// When it was revoked (logout or by hand).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Address it was created from.
    pub source_ip: Option<String>,
    /// Client it was created by.
    pub user_agent: Option<String>,
}

/// An API key's row. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ApiKeyRecord {
    /// Stable id.
    pub id: String,
    /// The owner; the key never does more than the owner's role allows.
    pub user_id: String,
    /// What it is for, for people.
    pub name: String,
    /// The secret's first characters, to recognise a key.
    pub prefix: String,
    /// SHA-256 of the secret; never shown.
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// What it may be used for.
    #[sqlx(json)]
    pub scopes: Vec<Scope>,
    /// The datasets it is limited to, when limited.
    #[sqlx(json(nullable))]
    pub datasets: Option<Vec<String>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An audit entry before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct NewAuditRecord {
    /// When, RFC 3339 with microseconds, UTC (kept as text: the MAC covers these bytes).
    pub at: String,
    /// Who: a username, `anonymous`, or the username a failed login tried.
    pub actor: String,
    /// What, e.g. `dataset.create`, `auth.login`.
    pub action: String,
    /// On what, e.g. `dataset:orders`, `user:ann`.
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The request's id, when it came through a transport that has one.
    pub request_id: Option<String>,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// More about it, as JSON text (never secrets).
    pub details: String,
}

/// A chained audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub entry: NewAuditRecord,
    /// The previous row's MAC (empty for the first row).
    pub prev_mac: String,
    /// HMAC-SHA256 over this row's fields and `prev_mac`.
    pub mac: String,
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Action, exact or a prefix ending in `.` (`dataset.`).
    pub action: Option<String>,
    /// Exact outcome.
    pub outcome: Option<String>,
    /// Exact target.
    pub target: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
}

/// A sealed secret's row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SecretRecord {
    /// Unique name, e.g. `connection:pg_main:password`.
    pub name: String,
    /// Id of the data key that sealed it.
    pub key_id: String,
    /// Nonce and ciphertext, base64.
    pub sealed: String,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last sealed.
    pub updated_at: DateTime<Utc>,
}

/// Computes an audit row's MAC from its sequence number, the previous MAC and the entry.
pub type AuditSeal<'a> = &'a (dyn Fn(i64, &str, &NewAuditRecord) -> String + Send + Sync);

/// Users, sessions, API keys and grants.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// How many users exist.
    async fn count_users(&self) -> Result<u64>;
    /// How many enabled admins exist.
    async fn count_enabled_admins(&self) -> Result<u64>;
    /// Inserts a user; `UserExists` on a taken username.
    async fn insert_user(&self, user: &UserRecord) -> Result<()>;
    /// Replaces a user's row (by id).
    async fn update_user(&self, user: &UserRecord) -> Result<()>;
    /// A user by id.
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>>;
    /// A user by username.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    /// A page of users by username, and the total.
    async fn list_users(&self, page: Page) -> Result<(Vec<UserRecord>, u64)>;
    /// Deletes a user with their sessions, keys and grants; whether one existed.
    async fn delete_user(&self, id: &str) -> Result<bool>;
    /// Inserts a session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session whose token has this hash.
    async fn session_by_token(&self, token_hash: &str) -> Result<Option<SessionRecord>>;
    /// Records a use that slides the expiry.
    async fn touch_session(
        &self,
        id: &str,
        seen: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()>;
    /// Revokes one of a user's sessions; whether it was live.
    async fn revoke_session(&self, user_id: &str, id: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Revokes all of a user's sessions; how many.
    async fn revoke_user_sessions(&self, user_id: &str, at: DateTime<Utc>) -> Result<u64>;
    /// Deletes ended (revoked or expired) sessions, of one user or (with
    /// `None`) of everyone; how many.
    async fn purge_ended_sessions(&self, user_id: Option<&str>, now: DateTime<Utc>) -> Result<u64>;
    /// A user's live (not revoked, not expired) sessions, newest first.
    async fn live_sessions(&self, user_id: &str, now: DateTime<Utc>) -> Result<Vec<SessionRecord>>;
    /// Inserts an API key.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// The key whose secret has this hash.
    async fn api_key_by_secret(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// One key by id.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    /// Keys (one user's, or everyone's), newest first.
    async fn list_api_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key; whether it was live.
    async fn revoke_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Records a key's use.
    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
    /// A user's dataset grants.
    async fn grants(&self, user_id: &str) -> Result<Vec<DatasetGrant>>;
    /// Gives (or changes) a user's grant on a dataset.
    async fn put_grant(&self, user_id: &str, grant: &DatasetGrant) -> Result<()>;
    /// Removes a user's grant on a dataset; whether one existed.
    async fn delete_grant(&self, user_id: &str, dataset: &str) -> Result<bool>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry after the last one, in one transaction; `seal` computes its MAC.
    async fn append_audit(
        &self,
        entry: &NewAuditRecord,
        seal: AuditSeal<'_>,
    ) -> Result<AuditRecord>;
    /// A page of entries, newest first, and the total matching.
    async fn list_audit(&self, filter: &AuditFilter, page: Page)
    -> Result<(Vec<AuditRecord>, u64)>;
    /// Up to `limit` entries after `after_seq`, oldest first.
    async fn audit_after(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>>;
    /// The highest sequence number ever handed out (survives deleting rows).
    async fn audit_high_water(&self) -> Result<i64>;
}

/// Sealed secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Inserts or replaces a secret.
    async fn put_secret(&self, secret: &SecretRecord) -> Result<()>;
    /// One secret.
    async fn secret(&self, name: &str) -> Result<Option<SecretRecord>>;
    /// Every secret.
    async fn all_secrets(&self) -> Result<Vec<SecretRecord>>;
    /// Replaces the given secrets in one transaction (key rotation).
    async fn reseal_secrets(&self, secrets: &[SecretRecord]) -> Result<()>;
    /// Deletes a secret; whether it existed.
    async fn delete_secret(&self, name: &str) -> Result<bool>;
}
