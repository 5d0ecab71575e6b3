//! The one mapping from engine errors to gRPC status codes.
//!
//! The message starts with the stable error code (the same codes the REST API
//! uses) and, for SQL errors, names the line and column. The code is also in
//! the `x-basin-error-code` trailer. Internal details are logged, never sent.

use arrow_flight::error::FlightError;
use basin_engine::Error;
use basin_engine::error::ErrorKind;
use datafusion::error::DataFusionError;
use tonic::{Code, Status};

/// The gRPC code of each kind of engine error.
pub fn grpc_code(error: &Error) -> Code {
    match error.kind() {
        ErrorKind::InvalidInput | ErrorKind::Unprocessable | ErrorKind::UnsupportedFormat => {
            Code::InvalidArgument
        }
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::FailedPrecondition | ErrorKind::SourceRefused => Code::FailedPrecondition,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::Canceled => Code::Cancelled,
        ErrorKind::TooLarge | ErrorKind::Exhausted => Code::ResourceExhausted,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::SourceUnavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The status a caller sees for `error`.
pub(crate) fn status_of(error: &Error) -> Status {
    let code = grpc_code(error);
    if code == Code::Internal {
        tracing::error!(error = %error, "flight call failed");
    }
    let mut message = format!("{}: {}", error.code(), error.public_message());
    if let Error::Sql {
        location: Some(at), ..
    } = error
        && !message.contains("Line: ")
    {
        message.push_str(&format!(" (at line {}, column {})", at.line, at.column));
    }
    let mut status = Status::new(code, message);
    if let Ok(value) = error.code().parse() {
        status.metadata_mut().insert("x-basin-error-code", value);
    }
    if let Error::RateLimited {
        retry_after_secs, ..
    } = error
    {
        status
            .metadata_mut()
            .insert("retry-after", (*retry_after_secs).into());
    }
    status
}

/// `?` for engine results inside Flight handlers.
pub(crate) trait OrStatus<T> {
    /// The value, or the error as a status.
    fn or_status(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for basin_engine::Result<T> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| status_of(&e))
    }
}

/// A failure inside a result stream, as a status.
pub(crate) fn stream_status(error: FlightError) -> Status {
    match error {
        FlightError::Tonic(status) => *status,
        FlightError::ExternalError(inner) => match inner.downcast::<DataFusionError>() {
            Ok(df) => status_of(&Error::from(*df)),
            Err(other) => match other.downcast::<Error>() {
                Ok(engine) => status_of(&engine),
                Err(other) => status_of(&Error::Internal(other.to_string())),
            },
        },
        FlightError::Arrow(e) => status_of(&Error::from(DataFusionError::from(e))),
        other => status_of(&Error::Internal(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_are_not_sent() {
        let status = status_of(&Error::Internal("disk /secret/path failed".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("/secret/path"));
    }

    #[test]
    fn sql_errors_carry_their_position() {
        let status = status_of(&Error::Sql {
            message: "column x not found".into(),
            location: Some(basin_engine::error::SqlLocation { line: 1, column: 8 }),
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("line 1, column 8"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.metadata().get("x-basin-error-code").unwrap(),
            "sql_error"
        );
    }
}
