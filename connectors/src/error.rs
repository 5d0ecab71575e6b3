//! The connectors crate's error type.

/// Everything that can go wrong while recognising, spooling or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller named a format or option Basin does not support.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// An option was present but its value is unusable.
    #[error("invalid option `{option}`: {message}")]
    InvalidOption {
        /// The option's name as the caller spelled it.
        option: String,
        /// Why it was refused.
        message: String,
    },
    /// The input exceeded the configured size limit; nothing was kept.
    #[error("input exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The file cannot be read as the format it claims to be.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// Reading or writing local files failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// Arrow failed to decode or encode data.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed to plan or scan the file.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A connector's source failed (bad config, refused credentials, unreachable, ...).
    #[error("{0}")]
    Source(crate::source::SourceError),
}

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
