//! Basin's sources, read into Arrow record batches.
//!
//! Today this crate holds the file side: recognising a file's format and
//! compression, sniffing CSV dialects, spooling uploads to local disk (bounded
//! memory, decompressed on the way), scanning files into DataFusion, and the
//! row-level validator that gives malformed rows a line number and a reason
//! instead of dropping them. The `http` module downloads files from allowed
//! URLs. Database and HTTP API connectors build on the same shapes.

pub mod error;
pub mod file;
pub mod http;

pub use error::{Error, Result};
