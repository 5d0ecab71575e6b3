//! The catalog's errors: what a repository call can fail with, apart from
//! "no such row" (an `Option` or `false`, which the engine names).

/// What a not-found or already-exists error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A dataset, by name.
    Dataset,
    /// A background job, by id.
    Job,
    /// A user, by name or id.
    User,
    /// An API key, by id.
    ApiKey,
    /// A login session, by id.
    Session,
    /// A connection, by id or name.
    Connection,
    /// A connector type, by its type name.
    Connector,
    /// A pipeline, by id or name.
    Pipeline,
    /// A pipeline run, by id.
    Run,
    /// A quality check of a dataset, by name.
    Check,
}

impl Entity {
    /// Every entity, for tests and documentation.
    pub const ALL: [Self; 10] = [
        Self::Dataset,
        Self::Job,
        Self::User,
        Self::ApiKey,
        Self::Session,
        Self::Connection,
        Self::Connector,
        Self::Pipeline,
        Self::Run,
        Self::Check,
    ];

    /// How messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Dataset => "dataset",
            Self::Job => "job",
            Self::User => "user",
            Self::ApiKey => "api key",
            Self::Session => "session",
            Self::Connection => "connection",
            Self::Connector => "connector type",
            Self::Pipeline => "pipeline",
            Self::Run => "run",
            Self::Check => "check",
        }
    }
}

/// Everything a catalog call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A unique name is taken.
    #[error("{} `{name}` already exists", entity.label())]
    AlreadyExists {
        /// What kind of thing.
        entity: Entity,
        /// The name taken.
        name: String,
    },
    /// The row changed since the caller read it.
    #[error("{0}")]
    Conflict(String),
    /// A filter or sort the catalog cannot apply.
    #[error("{0}")]
    InvalidInput(String),
    /// A stored value the catalog cannot read back.
    #[error("catalog: {context}: {message}")]
    Corrupt {
        /// Which value.
        context: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The catalog's schema could not be migrated.
    #[error("catalog migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("catalog: {0}")]
    Database(#[from] sqlx::Error),
}

impl Error {
    pub(crate) fn already_exists(entity: Entity, name: impl Into<String>) -> Self {
        Self::AlreadyExists {
            entity,
            name: name.into(),
        }
    }

    pub(crate) fn corrupt(context: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            context,
            message: err.to_string(),
        }
    }
}

/// What catalog calls return.
pub type Result<T, E = Error> = std::result::Result<T, E>;
