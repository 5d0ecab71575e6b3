//! Basin's sources, read into Arrow record batches.
//!
//! Two halves:
//! - the **connector protocol** ([`source`]): a [`Connector`] describes its
//!   configuration as JSON Schema and opens a [`Source`], which checks itself,
//!   discovers its streams with Arrow schemas, and hands out a DataFusion
//!   `TableProvider` per stream so reads and live queries push projection,
//!   filters and limits to the source. The connectors are [`postgres`],
//!   [`mysql`] and [`sqlite`] (through datafusion-table-providers), [`objects`]
//!   (files on disk, S3-compatible, GCS, Azure or HTTP storage) and
//!   [`json_api`] (paginated JSON endpoints); [`registry`] lists them;
//! - the **file side of ingest** ([`file`], [`http`]): recognising a file's
//!   format and compression, sniffing CSV dialects, spooling uploads to local
//!   disk in bounded memory, scanning files into DataFusion, and the row-level
//!   validator that gives malformed rows a line number and a reason.

pub mod counted;
pub mod error;
pub mod file;
pub mod http;
pub mod json_api;
pub mod mysql;
mod mysql_text;
pub mod objects;
mod pg_text;
pub mod postgres;
pub mod registry;
pub mod source;
pub mod spec;
pub mod sql_names;
pub mod sqlite;
mod text_path;

pub use error::{Error, Result};
pub use registry::Registry;
pub use source::{
    CheckOutcome, CheckStatus, ColumnInfo, Connector, FailureKind, ReadOptions, Source, SourceEnv,
    SourceError, StreamInfo,
};
