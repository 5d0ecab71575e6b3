//! Basin's access model, with no IO: who is calling, and what they may do.
//!
//! Every door (REST, WebSocket, Flight SQL) turns what the caller sent into
//! [`Credentials`] and asks the engine to authenticate them into a
//! [`Principal`]; the engine asks [`Principal::authorize`] inside each of its
//! methods before acting. There is no other check. Accounts, sessions and
//! keys are stored by the engine; this crate holds the rules.
//!
//! - **Users** sign in with a password (argon2id, hashed on the CPU runtime)
//!   and get a **session** token; sessions slide forward on use up to a hard
//!   maximum age, and can be revoked.
//! - **API keys** belong to a user, carry scopes (`read`, `write`, `admin`),
//!   optionally a list of datasets and an expiry. A key never does more than
//!   its owner's role allows.
//! - **Roles**: viewers read, editors also write datasets (and later pipelines
//!   and connections), admins also manage users, keys, the audit log and
//!   settings. A per-dataset grant lets one user read or write one dataset
//!   beyond their role.
//!
//! Tokens and key secrets are 256-bit random values; only their SHA-256 is
//! stored, so a leaked catalog does not leak credentials.

mod credentials;
mod error;
pub mod password;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use credentials::Credentials;
pub use error::{Error, Result};

/// What a user may do, by role. Ordered: each role can do what the ones before it can.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads datasets, jobs and metadata; runs queries.
    Viewer,
    /// Also writes datasets, pipelines and connections; cancels jobs.
    Editor,
    /// Also manages users, API keys, the audit log and settings.
    Admin,
}

impl TryFrom<String> for Role {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "admin" => Ok(Self::Admin),
            other => Err(Error::InvalidInput(format!(
                "unknown role {other:?}: use viewer, editor or admin"
            ))),
        }
    }
}

/// What an API key may be used for. Scopes are independent: a `write`-only
/// key can load data without reading any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read actions.
    Read,
    /// Write actions.
    Write,
    /// Admin actions (and managing the owner's own account).
    Admin,
}

impl Scope {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(Error::InvalidInput(format!(
                "unknown scope {other:?}: use read, write or admin"
            ))),
        }
    }

    /// The least role that may hold this scope.
    pub fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Write => Role::Editor,
            Self::Admin => Role::Admin,
        }
    }
}

/// Access to one dataset a grant gives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantAccess {
    /// Read it.
    Read,
    /// Read and write it.
    Write,
}

impl GrantAccess {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Parses `read` or `write`.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            other => Err(Error::InvalidInput(format!(
                "unknown access {other:?}: use read or write"
            ))),
        }
    }
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read data or metadata; run a query.
    Read,
    /// Create, load, change or delete datasets (later pipelines, connections); cancel jobs.
    Write,
    /// Manage users, all API keys, the audit log, settings.
    Admin,
    /// Manage one's own account: password, sessions, API keys (users only, not API keys).
    Account,
}

/// What the action is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// One dataset, by name.
    Dataset(&'a str),
    /// Everything else: listings, jobs, queries (whose tables are checked one by one), users.
    Global,
}

/// How a principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A login session (bearer token, cookie, or a Flight handshake).
    Session {
        /// The session's id.
        id: String,
    },
    /// An API key.
    ApiKey {
        /// The key's id.
        id: String,
        /// Its scopes.
        scopes: Vec<Scope>,
        /// The datasets it is limited to, when limited.
        datasets: Option<Vec<String>>,
    },
    /// A username and password sent with the request (HTTP Basic).
    Password,
    /// No credentials, with anonymous access enabled.
    Anonymous,
    /// A command run on the server machine against the data directory itself
    /// (whoever can read the directory can do anything anyway).
    Local,
}

/// The way a call came in: the audit log records it with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// The REST API (and its WebSockets).
    Rest,
    /// Arrow Flight SQL.
    Flight,
    /// A `basin` command run against the data directory.
    Cli,
    /// The scheduler of the serving process (cron schedules, triggers).
    Scheduler,
}

impl Door {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Flight => "flight",
            Self::Cli => "cli",
            Self::Scheduler => "scheduler",
        }
    }
}

/// Where a call came from, for rate limits, sessions and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The door it came through.
    pub door: Door,
    /// The peer's address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent`, when sent.
    pub user_agent: Option<String>,
    /// The request's id, when the transport has one.
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// A call through `door` with nothing else known about it.
    pub fn through(door: Door) -> Self {
        Self {
            door,
            ip: None,
            user_agent: None,
            request_id: None,
        }
    }
}

/// One user's extra access to one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DatasetGrant {
    /// The dataset's name.
    pub dataset: String,
    /// What the grant allows.
    pub access: GrantAccess,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id; `None` for the anonymous caller.
    pub user_id: Option<String>,
    /// The user's name (`anonymous` for the anonymous caller).
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// How they authenticated.
    pub via: Via,
    /// Their per-dataset grants.
    pub grants: Arc<[DatasetGrant]>,
    /// Where this call came from.
    pub client: ClientInfo,
}

/// The name the anonymous caller goes by.
pub const ANONYMOUS: &str = "anonymous";

impl Principal {
    /// The caller when anonymous access is on: a viewer with no account,
    /// calling from `client`.
    pub fn anonymous(client: ClientInfo) -> Self {
        Self {
            user_id: None,
            username: ANONYMOUS.into(),
            role: Role::Viewer,
            via: Via::Anonymous,
            grants: Arc::from(Vec::new()),
            client,
        }
    }

    /// The operator of a local command (`basin query`, `basin ingest` without `--server`).
    pub fn local() -> Self {
        Self::local_through(Door::Cli)
    }

    /// The serving process itself acting through `door` (the scheduler
    /// starting a run), with the operator's rights.
    pub fn local_through(door: Door) -> Self {
        Self {
            user_id: None,
            username: "local".into(),
            role: Role::Admin,
            via: Via::Local,
            grants: Arc::from(Vec::new()),
            client: ClientInfo::through(door),
        }
    }

    /// The key's scopes, or `None` when not authenticated by an API key.
    fn scopes(&self) -> Option<&[Scope]> {
        match &self.via {
            Via::ApiKey { scopes, .. } => Some(scopes),
            _ => None,
        }
    }

    /// The datasets an API key is limited to, if it is.
    pub fn dataset_limit(&self) -> Option<&[String]> {
        match &self.via {
            Via::ApiKey {
                datasets: Some(datasets),
                ..
            } => Some(datasets),
            _ => None,
        }
    }

    fn grant(&self, dataset: &str) -> Option<GrantAccess> {
        self.grants
            .iter()
            .filter(|g| g.dataset == dataset)
            .map(|g| g.access)
            .max()
    }

    /// The one permission check: may this caller do `action` on `resource`?
    ///
    /// `Forbidden` names what is missing; callers that must not reveal whether
    /// a dataset exists ask [`Principal::can_see_dataset`] first.
    pub fn authorize(&self, action: Action, resource: Resource<'_>) -> Result<()> {
        if action == Action::Account && matches!(self.via, Via::ApiKey { .. }) {
            // A key that could mint keys or change the password would outlive
            // its own revocation, expiry and limits.
            return Err(Error::Forbidden(
                "API keys cannot manage accounts: sign in with a password".into(),
            ));
        }
        let scope_needed = match action {
            Action::Read => Scope::Read,
            Action::Write => Scope::Write,
            Action::Admin | Action::Account => Scope::Admin,
        };
        if let Some(scopes) = self.scopes()
            && !scopes.contains(&scope_needed)
        {
            return Err(Error::Forbidden(format!(
                "this API key lacks the `{}` scope",
                match scope_needed {
                    Scope::Read => "read",
                    Scope::Write => "write",
                    Scope::Admin => "admin",
                }
            )));
        }
        if let (Some(limit), Resource::Dataset(name)) = (self.dataset_limit(), resource)
            && !limit.iter().any(|d| d == name)
        {
            return Err(Error::Forbidden(format!(
                "this API key is limited to other datasets than `{name}`"
            )));
        }
        let allowed = match action {
            Action::Read => {
                self.role >= Role::Viewer
                    || matches!(resource, Resource::Dataset(d) if self.grant(d).is_some())
            }
            Action::Write => {
                self.role >= Role::Editor
                    || matches!(resource, Resource::Dataset(d) if self.grant(d) == Some(GrantAccess::Write))
            }
            Action::Admin => self.role >= Role::Admin && self.dataset_limit().is_none(),
            Action::Account => self.user_id.is_some(),
        };
        if allowed {
            Ok(())
        } else if self.via == Via::Anonymous {
            // Signing in may well allow it: say so, as 401 rather than 403.
            Err(Error::Unauthenticated(
                "sign in to do this: anonymous callers may only read".into(),
            ))
        } else {
            Err(Error::Forbidden(match action {
                Action::Read => "reading needs the viewer role".into(),
                Action::Write => format!(
                    "`{}` is a {}: writing needs the editor role or a write grant",
                    self.username,
                    self.role.as_str()
                ),
                Action::Admin => format!(
                    "`{}` is a {}: this needs the admin role",
                    self.username,
                    self.role.as_str()
                ),
                Action::Account => "the anonymous caller has no account".into(),
            }))
        }
    }

    /// Whether a query by this caller may see `dataset` at all (API keys
    /// limited to datasets see only those; unknown names stay unknown).
    pub fn can_see_dataset(&self, dataset: &str) -> bool {
        self.authorize(Action::Read, Resource::Dataset(dataset))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Principal {
        Principal {
            user_id: Some("u1".into()),
            username: "ann".into(),
            role,
            via: Via::Session { id: "s1".into() },
            grants: Arc::from(Vec::new()),
            client: ClientInfo::through(Door::Rest),
        }
    }

    fn key(role: Role, scopes: &[Scope], datasets: Option<&[&str]>) -> Principal {
        Principal {
            via: Via::ApiKey {
                id: "k1".into(),
                scopes: scopes.to_vec(),
                datasets: datasets.map(|d| d.iter().map(|s| (*s).to_owned()).collect()),
            },
            ..user(role)
        }
    }

    #[test]
    fn roles_allow_what_they_promise() {
        let orders = Resource::Dataset("orders");
        for (role, read, write, admin) in [
            (Role::Viewer, true, false, false),
            (Role::Editor, true, true, false),
            (Role::Admin, true, true, true),
        ] {
            let p = user(role);
            assert_eq!(p.authorize(Action::Read, orders).is_ok(), read, "{role:?}");
            assert_eq!(
                p.authorize(Action::Write, orders).is_ok(),
                write,
                "{role:?}"
            );
            assert_eq!(p.authorize(Action::Admin, Resource::Global).is_ok(), admin);
            assert!(p.authorize(Action::Account, Resource::Global).is_ok());
        }
    }

    #[test]
    fn keys_need_the_scope_and_stay_within_their_datasets() {
        let reader = key(Role::Admin, &[Scope::Read], Some(&["orders"]));
        assert!(
            reader
                .authorize(Action::Read, Resource::Dataset("orders"))
                .is_ok()
        );
        assert!(
            reader
                .authorize(Action::Read, Resource::Dataset("users"))
                .is_err()
        );
        assert!(
            reader
                .authorize(Action::Write, Resource::Dataset("orders"))
                .is_err()
        );
        assert!(reader.authorize(Action::Admin, Resource::Global).is_err());
        assert!(!reader.can_see_dataset("users"));
        // A write-only key loads data without reading it.
        let loader = key(Role::Editor, &[Scope::Write], None);
        assert!(
            loader
                .authorize(Action::Write, Resource::Dataset("x"))
                .is_ok()
        );
        assert!(
            loader
                .authorize(Action::Read, Resource::Dataset("x"))
                .is_err()
        );
        // Scopes never lift a role: an admin-scoped key of a viewer is a viewer.
        let viewer_key = key(
            Role::Viewer,
            &[Scope::Read, Scope::Write, Scope::Admin],
            None,
        );
        assert!(
            viewer_key
                .authorize(Action::Write, Resource::Global)
                .is_err()
        );
        assert!(
            viewer_key
                .authorize(Action::Admin, Resource::Global)
                .is_err()
        );
        // Keys manage their owner's account only with the admin scope.
        assert!(
            key(Role::Viewer, &[Scope::Read], None)
                .authorize(Action::Account, Resource::Global)
                .is_err()
        );
    }

    #[test]
    fn grants_lift_one_dataset_only() {
        let mut p = user(Role::Viewer);
        p.grants = Arc::from(vec![DatasetGrant {
            dataset: "orders".into(),
            access: GrantAccess::Write,
        }]);
        assert!(
            p.authorize(Action::Write, Resource::Dataset("orders"))
                .is_ok()
        );
        assert!(
            p.authorize(Action::Write, Resource::Dataset("users"))
                .is_err()
        );
        assert!(p.authorize(Action::Write, Resource::Global).is_err());
    }

    #[test]
    fn anonymous_reads_and_has_no_account() {
        let p = Principal::anonymous(ClientInfo::through(Door::Rest));
        assert!(p.authorize(Action::Read, Resource::Global).is_ok());
        assert!(p.authorize(Action::Write, Resource::Global).is_err());
        assert!(p.authorize(Action::Account, Resource::Global).is_err());
    }
}
