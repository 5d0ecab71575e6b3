//! Why an access decision or a credential was refused.

/// Everything the access model can refuse with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller is not authenticated (no, malformed or wrong credentials).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A role, scope or access spelling is unknown.
    #[error("{0}")]
    InvalidInput(String),
    /// A new password breaks the password policy.
    #[error("{0}")]
    WeakPassword(String),
    /// Too many requests or failed logins; try again after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry may succeed (at least 1).
        retry_after_secs: u64,
    },
    /// Hashing failed; the details are for the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the access model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
