//! Users, sessions, API keys and grants: the engine's identity operations.
//! Every operation that needs a right checks it here, through
//! [`Principal::authorize`], whatever door the call came through.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::throttle::RateLimit;
use super::{
    Action, ClientInfo, Credentials, DatasetGrant, Door, GrantAccess, Principal, Resource, Role,
    Scope, Via, password,
};
use crate::catalog::{ApiKeyRecord, Page, SessionRecord, UserRecord};
use crate::error::Entity;
use crate::identity::audit::{AuditEvent, Outcome};
use crate::{Engine, Error, Result};

/// Prefix of session tokens.
const SESSION_PREFIX: &str = "bss_";
/// Prefix of API key secrets.
const API_KEY_PREFIX: &str = "bsn_";
/// Characters of a key's secret shown to recognise it.
const SHOWN_PREFIX_LEN: usize = 12;
/// Uses closer together than this do not rewrite `last_seen_at`/`last_used_at`.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// The first admin's username.
pub(super) const FIRST_ADMIN: &str = "admin";

/// Identity settings, from the server's `[auth]` and `[rate_limit]` configuration.
#[derive(Clone)]
pub struct AuthSettings {
    /// Let callers without credentials read, as the `anonymous` viewer.
    pub anonymous: bool,
    /// The first admin's password; generated (and shown once) when absent.
    pub admin_password: Option<String>,
    /// A session ends this long after its last use.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, however much it is used.
    pub session_max_age: Duration,
    /// Failed logins in a row before a username is locked.
    pub max_failed_logins: u32,
    /// How long a locked username stays locked.
    pub lockout: Duration,
    /// The delay after the first failed login; it doubles with each failure.
    pub login_delay: Duration,
    /// Token bucket per client address.
    pub rate_per_ip: RateLimit,
    /// Token bucket per principal.
    pub rate_per_principal: RateLimit,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("anonymous", &self.anonymous)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("session_idle", &self.session_idle)
            .field("session_max_age", &self.session_max_age)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("lockout", &self.lockout)
            .finish_non_exhaustive()
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            anonymous: false,
            admin_password: None,
            session_idle: Duration::from_secs(12 * 3600),
            session_max_age: Duration::from_secs(7 * 24 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            login_delay: Duration::from_millis(250),
            rate_per_ip: RateLimit {
                per_second: 100,
                burst: 200,
            },
            rate_per_principal: RateLimit {
                per_second: 100,
                burst: 200,
            },
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The session token (shown once; only its hash is kept).
    pub token: String,
    /// The session.
    pub session: SessionRecord,
    /// Who signed in.
    pub user: UserRecord,
}

/// A user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Sign-in name (identifier rules).
    pub username: String,
    /// Contact address.
    pub email: String,
    /// Initial password (policy applies).
    pub password: String,
    /// Role.
    pub role: Role,
}

/// Changes to a user; absent fields stay.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// New address.
    pub email: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// A new password set by an admin (policy applies; signs the user out everywhere).
    pub password: Option<String>,
}

/// An API key to create.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    /// What it is for.
    pub name: String,
    /// What it may be used for (at least one).
    pub scopes: Vec<Scope>,
    /// Datasets it is limited to.
    pub datasets: Option<Vec<String>>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// SHA-256 of a token or key secret, hex: what the catalog stores and looks up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `at` plus `span`, saturating far in the future.
fn later(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(span)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn invalid_credentials() -> Error {
    Error::Unauthenticated("invalid credentials".into())
}

fn validate_email(email: &str) -> Result<()> {
    let valid = email.chars().count() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "invalid email address {email:?}"
        )))
    }
}

impl Engine {
    /// Creates the first admin when there are no users; returns the password
    /// when it was generated, for the caller to show once.
    pub(crate) async fn ensure_first_admin(&self) -> Result<Option<String>> {
        if self.catalog().count_users().await? > 0 {
            return Ok(None);
        }
        let configured = self.config().auth.admin_password.clone();
        let generated = configured.is_none();
        let password = configured.unwrap_or_else(password::generate);
        password::check_policy(FIRST_ADMIN, &password).map_err(|e| {
            Error::InvalidInput(format!("auth.admin_password (BASIN_ADMIN_PASSWORD): {e}"))
        })?;
        let created = self
            .insert_user(NewUser {
                username: FIRST_ADMIN.into(),
                email: "admin@localhost.localdomain".into(),
                password: password.clone(),
                role: Role::Admin,
            })
            .await;
        match created {
            Ok(_) => {}
            // Another process created it between the count and now.
            Err(Error::AlreadyExists {
                entity: Entity::User,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        }
        tracing::warn!(username = FIRST_ADMIN, "created the first admin");
        Ok(generated.then_some(password))
    }

    async fn hash_password(&self, password: String) -> Result<String> {
        self.executor()
            .run(async move { password::hash(&password).map_err(Error::from) })
            .await
    }

    /// Whether `password` matches `hash`; with no hash (an unknown user) it
    /// checks a decoy, so the answer takes as long either way.
    async fn password_matches(&self, password: String, hash: Option<String>) -> Result<bool> {
        self.executor()
            .run(async move {
                Ok(match hash {
                    Some(hash) => password::verify(&password, &hash),
                    None => {
                        password::verify(&password, password::decoy_hash());
                        false
                    }
                })
            })
            .await
    }

    async fn insert_user(&self, new: NewUser) -> Result<UserRecord> {
        basin_sql::validate_name(&new.username)?;
        validate_email(&new.email)?;
        password::check_policy(&new.username, &new.password)?;
        let now = Utc::now();
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            username: new.username,
            email: new.email,
            password_hash: self.hash_password(new.password).await?,
            role: new.role,
            disabled: false,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            last_login_at: None,
        };
        self.catalog().insert_user(&user).await?;
        Ok(user)
    }

    /// Checks a username and password (throttled); the user on success.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserRecord> {
        // Names that break the identifier rules belong to no user: refuse them
        // before they cost a hash, a throttle entry or an audit row.
        if basin_sql::validate_name(username).is_err() {
            return Err(Error::Unauthenticated(
                "invalid username or password".into(),
            ));
        }
        let throttle = &self.inner.auth.throttle;
        let delay = match throttle.admit(username) {
            Ok(delay) => delay,
            Err(e) => {
                self.audit_login(username, Outcome::Denied, client, "locked out")
                    .await;
                return Err(e.into());
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let user = self.catalog().user_by_name(username).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self.password_matches(password.to_owned(), hash).await?;
        match user {
            Some(user) if matches && !user.disabled => {
                throttle.succeeded(username);
                Ok(user)
            }
            Some(_) if matches => {
                // The same answer as a wrong password: it must not confirm the password.
                self.audit_login(username, Outcome::Denied, client, "user is disabled")
                    .await;
                Err(Error::Unauthenticated(
                    "invalid username or password".into(),
                ))
            }
            _ => {
                let locked = throttle.is_locked(username);
                self.audit_login(
                    username,
                    Outcome::Failure,
                    client,
                    if locked {
                        "wrong username or password; locked out"
                    } else {
                        "wrong username or password"
                    },
                )
                .await;
                Err(Error::Unauthenticated(
                    "invalid username or password".into(),
                ))
            }
        }
    }

    async fn audit_login(&self, username: &str, outcome: Outcome, client: &ClientInfo, why: &str) {
        self.audit(AuditEvent {
            actor: username.to_owned(),
            action: "auth.login".into(),
            target: format!("user:{username}"),
            outcome,
            request_id: client.request_id.clone(),
            source_ip: client.ip.map(|ip| ip.to_string()),
            details: serde_json::json!({ "reason": why }),
        })
        .await;
    }

    /// Signs in with a password: a new session and its token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        if let Some(ip) = client.ip {
            self.inner.auth.limits.check_ip(ip)?;
        }
        let mut user = self.check_password(username, password, client).await?;
        let now = Utc::now();
        let settings = &self.config().auth;
        let max_expires_at = later(now, settings.session_max_age);
        let token = random_token(SESSION_PREFIX);
        let session = SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.clone(),
            token_hash: hash_token(&token),
            created_at: now,
            last_seen_at: now,
            expires_at: later(now, settings.session_idle).min(max_expires_at),
            max_expires_at,
            revoked_at: None,
            source_ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client.user_agent.clone(),
        };
        // Ended sessions are of no use once gone: each sign-in sweeps the
        // user's, so rows stay bounded by the sessions actually alive.
        self.catalog()
            .purge_ended_sessions(Some(user.id.as_str()), now)
            .await?;
        self.catalog().insert_session(&session).await?;
        user.last_login_at = Some(now);
        self.catalog().update_user(&user).await?;
        self.audit_login(username, Outcome::Success, client, "signed in")
            .await;
        Ok(LoginOutcome {
            token,
            session,
            user,
        })
    }

    /// Who `credentials` belong to, or `Unauthenticated`. Also takes a token
    /// from the caller's and the principal's rate-limit buckets.
    pub async fn authenticate(
        &self,
        credentials: Option<&Credentials>,
        client: &ClientInfo,
    ) -> Result<Principal> {
        if let Some(ip) = client.ip {
            self.inner.auth.limits.check_ip(ip)?;
        }
        let principal = match credentials {
            None if self.config().auth.anonymous => Principal::anonymous(client.clone()),
            None => return Err(Error::Unauthenticated("credentials required".into())),
            Some(Credentials::Bearer(token)) => self.bearer_principal(token, client).await?,
            Some(Credentials::Basic { username, password }) => {
                let user = self.check_password(username, password, client).await?;
                self.principal_for(&user, Via::Password, client).await?
            }
        };
        self.inner
            .auth
            .limits
            .check_principal(&principal.username)?;
        Ok(principal)
    }

    async fn principal_for(
        &self,
        user: &UserRecord,
        via: Via,
        client: &ClientInfo,
    ) -> Result<Principal> {
        Ok(Principal {
            user_id: Some(user.id.clone()),
            username: user.username.clone(),
            role: user.role,
            via,
            grants: Arc::from(self.catalog().grants(&user.id).await?),
            client: client.clone(),
        })
    }

    async fn live_user(&self, user_id: &str) -> Result<UserRecord> {
        match self.catalog().user_by_id(user_id).await? {
            Some(user) if !user.disabled => Ok(user),
            Some(_) => Err(Error::Unauthenticated("this account is disabled".into())),
            None => Err(invalid_credentials()),
        }
    }

    /// The principal of a session token or API key: from the cache while no
    /// credential has been revoked since and for at most a few seconds, else
    /// from the catalog (which also records the use).
    async fn bearer_principal(&self, token: &str, client: &ClientInfo) -> Result<Principal> {
        let hash = hash_token(token);
        let epoch = *self.inner.auth.revocations.borrow();
        let cache = &self.inner.auth.principals;
        if let Some(principal) = cache.get(&hash, epoch) {
            // Cached for an earlier call: this call's origin counts.
            return Ok(Principal {
                client: client.clone(),
                ..principal
            });
        }
        let (principal, valid_until) = if token.starts_with(SESSION_PREFIX) {
            self.session_principal(token, true, client).await?
        } else if token.starts_with(API_KEY_PREFIX) {
            self.api_key_principal(token, true, client).await?
        } else {
            return Err(invalid_credentials());
        };
        cache.put(hash, principal.clone(), epoch, valid_until);
        Ok(principal)
    }

    /// The principal of a session token and when the session ends at the
    /// latest; `touch` records the use (sliding the expiry).
    async fn session_principal(
        &self,
        token: &str,
        touch: bool,
        client: &ClientInfo,
    ) -> Result<(Principal, DateTime<Utc>)> {
        let session = self
            .catalog()
            .session_by_token(&hash_token(token))
            .await?
            .ok_or_else(invalid_credentials)?;
        let now = Utc::now();
        if session.revoked_at.is_some() {
            return Err(Error::Unauthenticated("this session was signed out".into()));
        }
        if session.expires_at <= now || session.max_expires_at <= now {
            return Err(Error::Unauthenticated(
                "this session has expired; sign in again".into(),
            ));
        }
        let user = self.live_user(&session.user_id).await?;
        let mut ends = session.expires_at.min(session.max_expires_at);
        if touch && now - session.last_seen_at > TOUCH_EVERY {
            let expires = later(now, self.config().auth.session_idle).min(session.max_expires_at);
            self.catalog()
                .touch_session(&session.id, now, expires)
                .await?;
            ends = expires;
        }
        let principal = self
            .principal_for(&user, Via::Session { id: session.id }, client)
            .await?;
        Ok((principal, ends))
    }

    /// The principal of an API key and when the key expires; `touch` records the use.
    async fn api_key_principal(
        &self,
        secret: &str,
        touch: bool,
        client: &ClientInfo,
    ) -> Result<(Principal, DateTime<Utc>)> {
        let key = self
            .catalog()
            .api_key_by_secret(&hash_token(secret))
            .await?
            .ok_or_else(invalid_credentials)?;
        let now = Utc::now();
        if key.revoked_at.is_some() {
            return Err(Error::Unauthenticated("this API key was revoked".into()));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::Unauthenticated("this API key has expired".into()));
        }
        let user = self.live_user(&key.user_id).await?;
        if touch && key.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY) {
            self.catalog().touch_api_key(&key.id, now).await?;
        }
        let ends = key.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
        let principal = self
            .principal_for(
                &user,
                Via::ApiKey {
                    id: key.id,
                    scopes: key.scopes,
                    datasets: key.datasets,
                },
                client,
            )
            .await?;
        Ok((principal, ends))
    }

    /// Bumps the revocation counter: cached principals are dropped and live
    /// connections (WebSockets) re-check their credentials.
    fn credentials_changed(&self) {
        self.inner.auth.revocations.send_modify(|n| *n += 1);
    }

    /// Changes whenever a session, key or user is revoked, disabled or deleted.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.auth.revocations.subscribe()
    }

    /// Ends the caller's session (a no-op for other kinds of credentials).
    pub async fn logout(&self, principal: &Principal) -> Result<()> {
        if let (Via::Session { id }, Some(user_id)) = (&principal.via, &principal.user_id) {
            self.catalog()
                .revoke_session(user_id, id, Utc::now())
                .await?;
            self.credentials_changed();
        }
        Ok(())
    }

    /// The caller's own user row.
    pub async fn me(&self, principal: &Principal) -> Result<UserRecord> {
        let Some(id) = principal.user_id.as_deref() else {
            return Err(Error::Unauthenticated(format!(
                "`{}` has no account: sign in",
                principal.username
            )));
        };
        self.catalog()
            .user_by_id(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, principal.username.clone()))
    }

    /// The caller's live sessions.
    pub async fn my_sessions(&self, principal: &Principal) -> Result<Vec<SessionRecord>> {
        principal.authorize(Action::Account, Resource::Global)?;
        let me = self.me(principal).await?;
        self.catalog()
            .live_sessions(&me.id, Utc::now())
            .await
            .map_err(Error::from)
    }

    /// Revokes one of the caller's sessions.
    pub async fn revoke_my_session(&self, principal: &Principal, id: &str) -> Result<()> {
        principal.authorize(Action::Account, Resource::Global)?;
        let me = self.me(principal).await?;
        if !self
            .catalog()
            .revoke_session(&me.id, id, Utc::now())
            .await?
        {
            return Err(Error::not_found(Entity::Session, id.to_owned()));
        }
        self.credentials_changed();
        Ok(())
    }

    /// Changes the caller's password (the old one is required) and signs out
    /// their other sessions.
    pub async fn change_password(&self, principal: &Principal, old: &str, new: &str) -> Result<()> {
        principal.authorize(Action::Account, Resource::Global)?;
        let mut me = self.me(principal).await?;
        // Guesses at the current password count like failed sign-ins.
        let throttle = &self.inner.auth.throttle;
        let delay = throttle.admit(&me.username)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !self
            .password_matches(old.to_owned(), Some(me.password_hash.clone()))
            .await?
        {
            return Err(Error::Forbidden("the current password is wrong".into()));
        }
        throttle.succeeded(&me.username);
        password::check_policy(&me.username, new)?;
        if old == new {
            return Err(Error::WeakPassword(
                "the new password must differ from the current one".into(),
            ));
        }
        let now = Utc::now();
        me.password_hash = self.hash_password(new.to_owned()).await?;
        me.password_changed_at = now;
        me.updated_at = now;
        self.catalog().update_user(&me).await?;
        let keep = match &principal.via {
            Via::Session { id } => Some(id.clone()),
            _ => None,
        };
        for session in self.catalog().live_sessions(&me.id, now).await? {
            if Some(&session.id) != keep.as_ref() {
                self.catalog()
                    .revoke_session(&me.id, &session.id, now)
                    .await?;
            }
        }
        self.credentials_changed();
        Ok(())
    }

    /// Creates a user (admins only).
    pub async fn create_user(&self, principal: &Principal, new: NewUser) -> Result<UserRecord> {
        principal.authorize(Action::Admin, Resource::Global)?;
        self.insert_user(new).await
    }

    /// A page of users (admins only).
    pub async fn list_users(
        &self,
        principal: &Principal,
        page: Page,
    ) -> Result<(Vec<UserRecord>, u64)> {
        principal.authorize(Action::Admin, Resource::Global)?;
        self.catalog().list_users(page).await.map_err(Error::from)
    }

    /// One user by name (admins only).
    pub async fn user(&self, principal: &Principal, username: &str) -> Result<UserRecord> {
        principal.authorize(Action::Admin, Resource::Global)?;
        self.catalog()
            .user_by_name(username)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, username.to_owned()))
    }

    /// Changes a user's address, role, disabled flag or password (admins only).
    /// Disabling or a new password signs the user out everywhere. The last
    /// enabled admin cannot be demoted or disabled.
    pub async fn update_user(
        &self,
        principal: &Principal,
        username: &str,
        patch: UserPatch,
    ) -> Result<UserRecord> {
        // Count-then-change must not interleave: two admins demoting each other
        // at once would otherwise leave none.
        let _admins = self.inner.auth.admin_changes.lock().await;
        let mut user = self.user(principal, username).await?;
        let was_active_admin = user.role == Role::Admin && !user.disabled;
        if let Some(email) = patch.email {
            validate_email(&email)?;
            user.email = email;
        }
        if let Some(role) = patch.role {
            user.role = role;
        }
        if let Some(disabled) = patch.disabled {
            user.disabled = disabled;
        }
        let now = Utc::now();
        if let Some(password) = &patch.password {
            password::check_policy(&user.username, password)?;
            user.password_hash = self.hash_password(password.clone()).await?;
            user.password_changed_at = now;
        }
        let stays_active_admin = user.role == Role::Admin && !user.disabled;
        if was_active_admin
            && !stays_active_admin
            && self.catalog().count_enabled_admins().await? <= 1
        {
            return Err(Error::LastAdmin(format!(
                "`{username}` is the last enabled admin; make another admin first"
            )));
        }
        user.updated_at = now;
        self.catalog().update_user(&user).await?;
        if user.disabled || patch.password.is_some() {
            self.catalog().revoke_user_sessions(&user.id, now).await?;
        }
        self.credentials_changed();
        Ok(user)
    }

    /// Deletes a user with their sessions, keys and grants (admins only).
    pub async fn delete_user(&self, principal: &Principal, username: &str) -> Result<()> {
        let _admins = self.inner.auth.admin_changes.lock().await;
        let user = self.user(principal, username).await?;
        if user.role == Role::Admin
            && !user.disabled
            && self.catalog().count_enabled_admins().await? <= 1
        {
            return Err(Error::LastAdmin(format!(
                "`{username}` is the last enabled admin; make another admin first"
            )));
        }
        self.catalog().delete_user(&user.id).await?;
        self.credentials_changed();
        Ok(())
    }

    /// Creates an API key for the caller: the secret (shown once) and the key.
    /// Its scopes may not exceed the caller's role.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        new: NewApiKey,
    ) -> Result<(String, ApiKeyRecord)> {
        principal.authorize(Action::Account, Resource::Global)?;
        let me = self.me(principal).await?;
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(Error::InvalidInput(
                "name must be 1 to 200 characters".into(),
            ));
        }
        if new.scopes.is_empty() {
            return Err(Error::InvalidInput(
                "scopes must name at least one of read, write, admin".into(),
            ));
        }
        if let Some(scope) = new.scopes.iter().find(|s| s.least_role() > me.role) {
            return Err(Error::Forbidden(format!(
                "a {} cannot create a key with the `{}` scope",
                me.role.as_str(),
                match scope {
                    Scope::Read => "read",
                    Scope::Write => "write",
                    Scope::Admin => "admin",
                }
            )));
        }
        if let Some(datasets) = &new.datasets {
            if datasets.is_empty() {
                return Err(Error::InvalidInput(
                    "datasets, when given, must name at least one dataset".into(),
                ));
            }
            for dataset in datasets {
                basin_sql::validate_name(dataset)?;
            }
        }
        let now = Utc::now();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::InvalidInput(
                "expires_at must be in the future".into(),
            ));
        }
        let mut scopes = new.scopes;
        scopes.sort_by_key(|s| s.least_role());
        scopes.dedup();
        let secret = random_token(API_KEY_PREFIX);
        let key = ApiKeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: me.id,
            name: name.to_owned(),
            prefix: secret[..SHOWN_PREFIX_LEN].to_owned(),
            secret_hash: hash_token(&secret),
            scopes,
            datasets: new.datasets,
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.catalog().insert_api_key(&key).await?;
        Ok((secret, key))
    }

    /// The caller's keys, or with `everyone` (admins only) all keys.
    pub async fn list_api_keys(
        &self,
        principal: &Principal,
        everyone: bool,
    ) -> Result<Vec<ApiKeyRecord>> {
        if everyone {
            principal.authorize(Action::Admin, Resource::Global)?;
            return self
                .catalog()
                .list_api_keys(None)
                .await
                .map_err(Error::from);
        }
        principal.authorize(Action::Account, Resource::Global)?;
        let me = self.me(principal).await?;
        self.catalog()
            .list_api_keys(Some(&me.id))
            .await
            .map_err(Error::from)
    }

    /// Revokes a key: one's own, or any key for admins. Others' keys are
    /// reported as not found, so ids reveal nothing.
    pub async fn revoke_api_key(&self, principal: &Principal, id: &str) -> Result<ApiKeyRecord> {
        principal.authorize(Action::Account, Resource::Global)?;
        let me = self.me(principal).await?;
        let key = self
            .catalog()
            .api_key(id)
            .await?
            .filter(|k| {
                k.user_id == me.id || principal.authorize(Action::Admin, Resource::Global).is_ok()
            })
            .ok_or_else(|| Error::not_found(Entity::ApiKey, id.to_owned()))?;
        self.catalog().revoke_api_key(&key.id, Utc::now()).await?;
        self.credentials_changed();
        Ok(self.catalog().api_key(id).await?.unwrap_or(key))
    }

    /// A user's dataset grants (admins only).
    pub async fn grants(&self, principal: &Principal, username: &str) -> Result<Vec<DatasetGrant>> {
        let user = self.user(principal, username).await?;
        self.catalog().grants(&user.id).await.map_err(Error::from)
    }

    /// Gives a user read or write access to one dataset (admins only).
    pub async fn put_grant(
        &self,
        principal: &Principal,
        username: &str,
        dataset: &str,
        access: GrantAccess,
    ) -> Result<DatasetGrant> {
        let user = self.user(principal, username).await?;
        basin_sql::validate_name(dataset)?;
        let grant = DatasetGrant {
            dataset: dataset.to_owned(),
            access,
        };
        self.catalog().put_grant(&user.id, &grant).await?;
        self.credentials_changed();
        Ok(grant)
    }

    /// Removes a user's grant on a dataset (admins only).
    pub async fn delete_grant(
        &self,
        principal: &Principal,
        username: &str,
        dataset: &str,
    ) -> Result<()> {
        let user = self.user(principal, username).await?;
        if !self.catalog().delete_grant(&user.id, dataset).await? {
            return Err(Error::GrantNotFound {
                username: username.to_owned(),
                dataset: dataset.to_owned(),
            });
        }
        self.credentials_changed();
        Ok(())
    }

    /// Whether the credentials a long-lived connection opened with at
    /// `opened_at` still hold. Checking is not a use: it slides no expiry, and
    /// Basic credentials are not re-hashed (the user must still be enabled and
    /// not have changed the password since).
    pub async fn still_valid(
        &self,
        credentials: Option<&Credentials>,
        opened_at: DateTime<Utc>,
    ) -> bool {
        // Only validity is asked: the principal built is dropped, so the
        // origin it is given does not matter.
        let nowhere = ClientInfo::through(Door::Rest);
        match credentials {
            None => self.config().auth.anonymous,
            Some(Credentials::Bearer(token)) if token.starts_with(SESSION_PREFIX) => {
                self.session_principal(token, false, &nowhere).await.is_ok()
            }
            Some(Credentials::Bearer(token)) if token.starts_with(API_KEY_PREFIX) => {
                self.api_key_principal(token, false, &nowhere).await.is_ok()
            }
            Some(Credentials::Bearer(_)) => false,
            Some(Credentials::Basic { username, .. }) => {
                match self.catalog().user_by_name(username).await {
                    Ok(Some(user)) => !user.disabled && user.password_changed_at <= opened_at,
                    _ => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = random_token(SESSION_PREFIX);
        let b = random_token(SESSION_PREFIX);
        assert!(a.starts_with("bss_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(validate_email("ann@example.com").is_ok());
        assert!(validate_email("ann").is_err());
        assert!(validate_email("ann @example.com").is_err());
        assert!(validate_email("@example.com").is_err());
    }
}
