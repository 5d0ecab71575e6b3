//! Every stable error code, with the HTTP status and gRPC code each door
//! gives it: one golden list, checked against the engine, both doors and the
//! code table in docs/http-api.md.

use std::collections::BTreeMap;

use basin_connectors::{FailureKind, SourceError};
use basin_engine::Error;
use basin_engine::error::{AnalyticsProblem, Entity, MalformedRows};
use tonic::Code;

/// `(code, HTTP status, gRPC code)` of every engine error.
const GOLDEN: &[(&str, u16, &str)] = &[
    ("dataset_not_found", 404, "NOT_FOUND"),
    ("job_not_found", 404, "NOT_FOUND"),
    ("user_not_found", 404, "NOT_FOUND"),
    ("api_key_not_found", 404, "NOT_FOUND"),
    ("session_not_found", 404, "NOT_FOUND"),
    ("connection_not_found", 404, "NOT_FOUND"),
    ("connector_not_found", 404, "NOT_FOUND"),
    ("pipeline_not_found", 404, "NOT_FOUND"),
    ("run_not_found", 404, "NOT_FOUND"),
    ("check_not_found", 404, "NOT_FOUND"),
    ("dataset_exists", 409, "ALREADY_EXISTS"),
    ("user_exists", 409, "ALREADY_EXISTS"),
    ("connection_exists", 409, "ALREADY_EXISTS"),
    ("pipeline_exists", 409, "ALREADY_EXISTS"),
    ("check_exists", 409, "ALREADY_EXISTS"),
    ("invalid_identifier", 400, "INVALID_ARGUMENT"),
    ("version_not_found", 404, "NOT_FOUND"),
    ("job_finished", 409, "FAILED_PRECONDITION"),
    ("invalid_input", 400, "INVALID_ARGUMENT"),
    ("unsupported_format", 415, "INVALID_ARGUMENT"),
    ("malformed_rows", 422, "INVALID_ARGUMENT"),
    ("malformed_input", 400, "INVALID_ARGUMENT"),
    ("schema_mismatch", 422, "INVALID_ARGUMENT"),
    ("path_not_allowed", 403, "PERMISSION_DENIED"),
    ("source_not_found", 404, "NOT_FOUND"),
    ("source_unavailable", 502, "UNAVAILABLE"),
    ("payload_too_large", 413, "RESOURCE_EXHAUSTED"),
    ("sql_error", 400, "INVALID_ARGUMENT"),
    ("resources_exhausted", 429, "RESOURCE_EXHAUSTED"),
    ("timeout", 504, "DEADLINE_EXCEEDED"),
    ("canceled", 409, "CANCELLED"),
    ("unauthenticated", 401, "UNAUTHENTICATED"),
    ("forbidden", 403, "PERMISSION_DENIED"),
    ("rate_limited", 429, "RESOURCE_EXHAUSTED"),
    ("grant_not_found", 404, "NOT_FOUND"),
    ("weak_password", 400, "INVALID_ARGUMENT"),
    ("last_admin", 409, "FAILED_PRECONDITION"),
    ("source_config_invalid", 400, "INVALID_ARGUMENT"),
    ("source_auth_failed", 502, "FAILED_PRECONDITION"),
    ("source_unreachable", 502, "UNAVAILABLE"),
    ("source_permission_denied", 502, "FAILED_PRECONDITION"),
    ("source_timeout", 504, "DEADLINE_EXCEEDED"),
    ("source_error", 502, "UNAVAILABLE"),
    ("conflict", 409, "ABORTED"),
    ("schema_changed", 409, "FAILED_PRECONDITION"),
    ("pipeline_invalid", 422, "INVALID_ARGUMENT"),
    ("run_state", 409, "FAILED_PRECONDITION"),
    ("unknown_column", 400, "INVALID_ARGUMENT"),
    ("invalid_time_column", 400, "INVALID_ARGUMENT"),
    ("invalid_measure", 400, "INVALID_ARGUMENT"),
    ("invalid_granularity", 400, "INVALID_ARGUMENT"),
    ("invalid_date_range", 400, "INVALID_ARGUMENT"),
    ("invalid_timezone", 400, "INVALID_ARGUMENT"),
    ("invalid_filter", 400, "INVALID_ARGUMENT"),
    ("too_many_points", 400, "INVALID_ARGUMENT"),
    ("invalid_check", 400, "INVALID_ARGUMENT"),
    ("profile_not_found", 404, "NOT_FOUND"),
    ("internal", 500, "INTERNAL"),
];

/// The variant's position, from an exhaustive match: a new variant does not
/// compile until it is placed here, and then the test wants an example.
fn variant_index(error: &Error) -> usize {
    match error {
        Error::NotFound { .. } => 0,
        Error::AlreadyExists { .. } => 1,
        Error::InvalidIdentifier { .. } => 2,
        Error::VersionNotFound(_) => 3,
        Error::JobFinished { .. } => 4,
        Error::InvalidInput(_) => 5,
        Error::UnsupportedFormat(_) => 6,
        Error::MalformedRows(_) => 7,
        Error::MalformedInput(_) => 8,
        Error::SchemaMismatch(_) => 9,
        Error::PathNotAllowed(_) => 10,
        Error::PathNotFound(_) => 11,
        Error::SourceUnavailable(_) => 12,
        Error::PayloadTooLarge { .. } => 13,
        Error::Sql { .. } => 14,
        Error::ResourcesExhausted(_) => 15,
        Error::Timeout(_) => 16,
        Error::Canceled => 17,
        Error::Unauthenticated(_) => 18,
        Error::Forbidden(_) => 19,
        Error::RateLimited { .. } => 20,
        Error::GrantNotFound { .. } => 21,
        Error::WeakPassword(_) => 22,
        Error::LastAdmin(_) => 23,
        Error::Source(_) => 24,
        Error::Conflict(_) => 25,
        Error::SchemaChanged { .. } => 26,
        Error::PipelineInvalid { .. } => 27,
        Error::RunState(_) => 28,
        Error::Analytics { .. } => 29,
        Error::ProfileNotFound(_) => 30,
        Error::Internal(_) => 31,
    }
}
const VARIANTS: usize = 32;

/// One error of every code.
fn examples() -> Vec<Error> {
    let text = || "x".to_owned();
    let mut all: Vec<Error> = Vec::new();
    for entity in Entity::ALL {
        all.push(Error::not_found(entity, "x"));
    }
    for entity in [
        Entity::Dataset,
        Entity::User,
        Entity::Connection,
        Entity::Pipeline,
        Entity::Check,
    ] {
        all.push(Error::already_exists(entity, "x"));
    }
    all.extend([
        Error::InvalidIdentifier { name: text() },
        Error::VersionNotFound(text()),
        Error::JobFinished {
            id: text(),
            status: "failed".into(),
        },
        Error::InvalidInput(text()),
        Error::UnsupportedFormat(text()),
        Error::MalformedRows(MalformedRows {
            count: 1,
            rows: Vec::new(),
        }),
        Error::MalformedInput(text()),
        Error::SchemaMismatch(text()),
        Error::PathNotAllowed(text()),
        Error::PathNotFound(text()),
        Error::SourceUnavailable(text()),
        Error::PayloadTooLarge { limit: 1 },
        Error::Sql {
            message: text(),
            location: None,
        },
        Error::ResourcesExhausted(text()),
        Error::Timeout(1),
        Error::Canceled,
        Error::Unauthenticated(text()),
        Error::Forbidden(text()),
        Error::RateLimited {
            message: text(),
            retry_after_secs: 1,
        },
        Error::GrantNotFound {
            username: text(),
            dataset: text(),
        },
        Error::WeakPassword(text()),
        Error::LastAdmin(text()),
    ]);
    for kind in [
        FailureKind::Config,
        FailureKind::Auth,
        FailureKind::Network,
        FailureKind::Permission,
        FailureKind::Timeout,
        FailureKind::System,
    ] {
        all.push(Error::Source(SourceError {
            kind,
            field: None,
            message: text(),
        }));
    }
    all.extend([
        Error::Conflict(text()),
        Error::SchemaChanged {
            message: text(),
            changes: serde_json::Value::Null,
        },
        Error::PipelineInvalid {
            message: text(),
            diagnostics: serde_json::Value::Null,
        },
        Error::RunState(text()),
    ]);
    for problem in [
        AnalyticsProblem::UnknownColumn,
        AnalyticsProblem::InvalidTimeColumn,
        AnalyticsProblem::InvalidMeasure,
        AnalyticsProblem::InvalidGranularity,
        AnalyticsProblem::InvalidDateRange,
        AnalyticsProblem::InvalidTimezone,
        AnalyticsProblem::InvalidFilter,
        AnalyticsProblem::TooManyPoints,
        AnalyticsProblem::InvalidCheck,
    ] {
        all.push(Error::Analytics {
            problem,
            message: text(),
        });
    }
    all.extend([Error::ProfileNotFound(text()), Error::Internal(text())]);
    all
}

fn grpc_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[test]
fn every_code_has_one_http_status_and_one_grpc_code() {
    let examples = examples();
    let mut seen = [false; VARIANTS];
    for error in &examples {
        seen[variant_index(error)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "variants without an example: {missing:?}"
    );

    let actual: Vec<(&str, u16, &str)> = examples
        .iter()
        .map(|e| {
            (
                e.code(),
                basin_http_api::http_status(e).as_u16(),
                grpc_name(basin_flight_server::grpc_code(e)),
            )
        })
        .collect();
    assert_eq!(actual, GOLDEN);
}

#[test]
fn the_documented_code_table_matches_the_golden_list() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http-api.md"))
        .expect("docs/http-api.md");
    let table = docs
        .split("## Error codes")
        .nth(1)
        .expect("an error code section");
    let mut documented: BTreeMap<String, (u16, String)> = BTreeMap::new();
    for row in table.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // ["", codes, HTTP, gRPC, when, ""]
        let [_, codes, http, grpc, ..] = cells.as_slice() else {
            continue;
        };
        let Ok(http) = http.parse::<u16>() else {
            continue;
        };
        for code in codes.split(',') {
            let code = code.trim().trim_matches('`');
            documented.insert(code.to_owned(), (http, (*grpc).to_owned()));
        }
    }
    for (code, http, grpc) in GOLDEN {
        assert_eq!(
            documented.get(*code),
            Some(&(*http, (*grpc).to_owned())),
            "docs/http-api.md documents `{code}` differently (want {http} {grpc})"
        );
    }
}
