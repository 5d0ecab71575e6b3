//! Extractors whose rejections use the API's error envelope.

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, with rejections in the error envelope. Every request body
/// of the API is a JSON object: serde would also read a struct from an array
/// of its fields in order, which the document does not allow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Json<T>(pub T);

/// The deepest nesting a JSON body may have (`http.max_json_depth`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonDepth(pub usize);

/// Default for [`JsonDepth`] when the router sets none.
const DEFAULT_JSON_DEPTH: usize = 32;

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request with content-type: application/json",
            )
            .with_hint("send the body with content-type: application/json"));
        }
        let (route, bytes) = read_json_request(req, state).await?;
        body_of(&route, &bytes).map(Self)
    }
}

/// The route a request matched and what its body is checked against.
pub(crate) struct BodyRoute {
    method: axum::http::Method,
    /// How deep the body's JSON may nest.
    max_depth: usize,
    template: Option<String>,
    shapes: Option<std::sync::Arc<crate::body_shape::BodyShapes>>,
}

impl BodyRoute {
    fn of(req: &Request) -> Self {
        Self {
            method: req.method().clone(),
            max_depth: req
                .extensions()
                .get::<JsonDepth>()
                .map_or(DEFAULT_JSON_DEPTH, |d| d.0),
            template: req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|p| p.as_str().trim_start_matches("/api/v1").to_owned()),
            shapes: req
                .extensions()
                .get::<std::sync::Arc<crate::body_shape::BodyShapes>>()
                .cloned(),
        }
    }
}

/// A JSON object body read as `T`: not nested too deep, an object, what `T`
/// says, then the shape the route documents.
fn body_of<T: DeserializeOwned + 'static>(route: &BodyRoute, bytes: &[u8]) -> Result<T, ApiError> {
    let max_depth = route.max_depth;
    if nesting_depth(bytes) > max_depth {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the JSON body is nested deeper than {max_depth} levels"),
        ));
    }
    if !is_object(bytes) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        ));
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    if let (Some(shapes), Some(template)) = (&route.shapes, &route.template) {
        shapes.whole_numbers_as_integers(&route.method, template, &mut value);
    }
    // serde first, for its messages (an unknown variant, a missing field);
    // the shape then refuses what serde is lenient about.
    let body = serde_path_to_error::deserialize(&value).map_err(|e| {
        let at = e.path().to_string();
        let message = if at == "." {
            e.into_inner().to_string()
        } else {
            format!("{at}: {}", e.into_inner())
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    })?;
    // A body taken as raw JSON is read by the engine, whose own errors (an
    // unknown check type: `invalid_check`) come before any shape.
    let raw = std::any::TypeId::of::<T>() == std::any::TypeId::of::<serde_json::Value>();
    if let (Some(shapes), Some(template), false) = (&route.shapes, &route.template, raw) {
        shapes.check(&route.method, template, &value)?;
    }
    Ok(body)
}

/// A JSON body that may be left out (empty, or `null`), meaning `T`'s
/// defaults; otherwise read as [`Json`] reads one, whatever the content type.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (route, bytes) = read_json_request(req, state).await?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(Self(T::default()));
        }
        body_of(&route, &bytes).map(Self)
    }
}

/// What the JSON extractors read from a request: the route it matched (with
/// the depth limit) and its body.
async fn read_json_request<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(BodyRoute, axum::body::Bytes), ApiError> {
    let route = BodyRoute::of(&req);
    let bytes = read_body(req, state).await?;
    Ok((route, bytes))
}

/// The request body, within the body limit.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is too large",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    rejection.body_text(),
                )
            }
        })
}

/// Whether JSON text is an object (by its first token; parsing says the rest).
pub(crate) fn is_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped),
/// measured before parsing so a hostile body cannot make the parser recurse.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `axum::extract::Query`, with rejections in the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query_parameter",
        rejection.body_text(),
    )
}

/// `axum::extract::Path`, with rejections in the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path_parameter",
                rejection.body_text(),
            )),
        }
    }
}

/// `axum::extract::ws::WebSocketUpgrade`, refusing a request that is not a
/// WebSocket handshake with `426 upgrade_required` in the error envelope.
pub(crate) struct WebSocketUpgrade(pub axum::extract::ws::WebSocketUpgrade);

impl<S> FromRequestParts<S> for WebSocketUpgrade
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                ApiError::new(
                    StatusCode::UPGRADE_REQUIRED,
                    "upgrade_required",
                    rejection.body_text(),
                )
                .with_hint(
                    "open this route as a WebSocket (Connection: upgrade, Upgrade: websocket)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(nesting_depth(br#"{"a": [1, {"b": 2}]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "[[[[{{{"}"#), 1);
        assert_eq!(nesting_depth(br#"{"a": "\"[[["}"#), 1);
        assert_eq!(nesting_depth(b"1"), 0);
    }
}
