//! The OpenAPI 3.1 document, assembled from the handlers' annotations as the
//! routes are registered, so the document and the router cannot disagree.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorDetail, ErrorEnvelope};

/// Document-level information; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Basin",
        description = "Datasets on Delta Lake, SQL over them, and background jobs. \
            Successes are `{data, meta}`; failures are `{error: {code, message, details, hint, request_id}}`."
    ),
    servers((url = "/api/v1", description = "this server")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorEnvelope, ErrorDetail)),
    tags(
        (name = "datasets", description = "Create, ingest, browse, time-travel and restore datasets"),
        (name = "query", description = "Ad-hoc SQL, streamed"),
        (name = "jobs", description = "Background work"),
        (name = "analytics", description = "Profiles, quality checks, metric history, time series and the dashboard"),
        (name = "meta", description = "This document")
    )
)]
pub(crate) struct ApiDoc;

/// Every operation needs the access token as a bearer token.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
