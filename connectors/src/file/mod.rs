//! Files: formats, compression, dialect sniffing, spooling, validation and scanning.

mod format;
mod infer;
mod scan;
mod sniff;
mod spool;
mod types;
mod validate;

pub use format::{Compression, CsvOptions, FileFormat, FormatKind};
pub use infer::{INFER_RECORDS, infer_csv, infer_ndjson};
pub use scan::{ScanOptions, infer_schema, scan};
pub use sniff::{CsvDialect, sniff_csv, sniff_format};
pub use spool::{SpoolStats, spool};
pub use types::parse_data_type;
pub use validate::{
    REPORTED_REJECTS, RejectedRow, ValidationReport, json_array_to_ndjson, validate,
};

/// Resolves `.` and `..` without touching the file system, so a path can be
/// checked against allowed roots before anything about it is looked up.
pub fn lexically_normal(path: &std::path::Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
