//! Credentials from gRPC metadata, checked by the engine's one authenticator.

use basin_engine::auth::Credentials;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::status::OrStatus;

/// The credentials in the `authorization` header, if any.
pub(crate) fn credentials(metadata: &MetadataMap) -> Result<Option<Credentials>, Status> {
    Credentials::from_header(metadata.get("authorization").map(|v| v.as_bytes())).or_status()
}
