//! Extractors whose rejections use the API's error envelope.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, with rejections in the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// The deepest nesting a JSON body may have (`http.max_json_depth`).
#[derive(Debug, Clone, Copy)]
pub struct JsonDepth(pub usize);

/// Default for [`JsonDepth`] when the router sets none.
const DEFAULT_JSON_DEPTH: usize = 32;

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let max_depth = req
            .extensions()
            .get::<JsonDepth>()
            .map_or(DEFAULT_JSON_DEPTH, |d| d.0);
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
        let bytes = axum::body::Bytes::from_request(req, state)
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
            })?;
        if nesting_depth(&bytes) > max_depth {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the JSON body is nested deeper than {max_depth} levels"),
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
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

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "payload_too_large", "request body is too large");
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            text,
        )
        .with_hint("send the body with content-type: application/json"),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", text),
    }
}

/// `axum::extract::Query`, with rejections in the error envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

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
