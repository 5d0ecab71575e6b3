//! Credentials from gRPC metadata, checked by the engine's one authenticator.

use basin_engine::identity::{Credentials, Principal};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::status::OrStatus;

/// The credentials in the `authorization` header, if any.
pub(crate) fn credentials(metadata: &MetadataMap) -> Result<Option<Credentials>, Status> {
    Credentials::from_header(metadata.get("authorization").map(|v| v.as_bytes()))
        .map_err(basin_engine::Error::from)
        .or_status()
}

/// The caller the service wrapper authenticated (it puts them in the request's extensions).
pub(crate) fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("unauthenticated: credentials required"))
}

/// Where a gRPC call came from.
pub(crate) fn client<T>(request: &Request<T>) -> basin_engine::identity::ClientInfo {
    basin_engine::identity::ClientInfo {
        door: basin_engine::identity::Door::Flight,
        ip: request.remote_addr().map(|a| a.ip()),
        user_agent: request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: None,
    }
}
