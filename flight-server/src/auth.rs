//! Credentials from gRPC metadata, checked by the engine's one authenticator.

use basin_engine::auth::Credentials;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::status::status_of;

/// The credentials in the `authorization` header, if any.
pub(crate) fn credentials(metadata: &MetadataMap) -> Result<Option<Credentials>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
    Credentials::from_authorization(value)
        .map(Some)
        .map_err(|e| status_of(&e))
}
