//! Analytics with no IO, over Arrow batches and SQL text: the parts of
//! profiles, quality checks and time series that can be reasoned about (and
//! tested) without a catalog, a table or a runtime. The engine runs them.
//!
//! - [`sketch`]: HyperLogLog, a mergeable uniform sample for quantiles and
//!   histograms, Misra–Gries top values, mergeable moments.
//! - [`profile`]: one pass over batches fills every sketch of every column;
//!   partial profiles merge.
//! - [`checks`]: data-quality check definitions, the SQL each compiles to,
//!   and how their answers read.
//! - [`timeseries`]: Cube-like time-bucketed aggregations: the SQL a request
//!   plans to, gap filling, rolling windows, comparison ranges and LTTB
//!   downsampling of the answer.

pub mod checks;
pub mod profile;
pub mod sketch;
pub mod timeseries;

use serde::Serialize;

/// Why an analytics request was refused. Each has a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalyticsProblem {
    /// A column the request names is not in the source.
    UnknownColumn,
    /// The time column is not a timestamp or date.
    InvalidTimeColumn,
    /// A measure does not fit its column's type, or is unknown.
    InvalidMeasure,
    /// The granularity is unknown or zero.
    InvalidGranularity,
    /// The date range cannot be read, or ends before it starts.
    InvalidDateRange,
    /// The time zone is not an IANA zone name.
    InvalidTimezone,
    /// A filter's operator does not fit its column or value.
    InvalidFilter,
    /// The answer would hold more points or series than allowed.
    TooManyPoints,
    /// A quality check's definition is invalid.
    InvalidCheck,
}

impl AnalyticsProblem {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownColumn => "unknown_column",
            Self::InvalidTimeColumn => "invalid_time_column",
            Self::InvalidMeasure => "invalid_measure",
            Self::InvalidGranularity => "invalid_granularity",
            Self::InvalidDateRange => "invalid_date_range",
            Self::InvalidTimezone => "invalid_timezone",
            Self::InvalidFilter => "invalid_filter",
            Self::TooManyPoints => "too_many_points",
            Self::InvalidCheck => "invalid_check",
        }
    }
}

/// Everything analytics can refuse with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request asks for something the data cannot give; `problem` says what.
    #[error("{message}")]
    Refused {
        /// Which rule the request broke.
        problem: AnalyticsProblem,
        /// What was wrong, naming the field or column.
        message: String,
    },
    /// A request field is invalid in a way no [`AnalyticsProblem`] names.
    #[error("{0}")]
    InvalidInput(String),
    /// A result did not have the shape its own plan promised.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}"))
    }
}

/// Rows as JSON objects, for the samples checks and pipeline steps show.
pub fn rows_as_json(batches: &[arrow::array::RecordBatch]) -> Result<Vec<serde_json::Value>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::internal("sample rows", e))?;
    }
    writer
        .finish()
        .map_err(|e| Error::internal("sample rows", e))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::internal("sample rows", e))
}

/// Result with analytics' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
