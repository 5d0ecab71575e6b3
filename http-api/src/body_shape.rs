//! JSON request bodies checked against the shapes the OpenAPI document gives
//! them, before serde reads them.
//!
//! serde and the engine check every value (a name's rules, a password's
//! length, a known role, a check's type), each failure with its own code.
//! What serde lets through is shape: it reads a struct from an array of its
//! fields in order, so `"policy": [null, null]` would pass for an object.
//! This check keeps only the document's JSON types: value rules (patterns,
//! lengths, bounds, formats, enums), required and unknown fields are taken
//! out, and a union is any of its members. It refuses only a value of the wrong JSON type, as
//! `400 invalid_json`, so every other failure keeps its code.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::error::ApiError;

/// Keywords about values rather than types: left to serde and the engine.
const VALUE_KEYWORDS: [&str; 15] = [
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "enum",
    "const",
    "required",
];

/// The shape of each operation's JSON request body, by method and route
/// template (below `/api/v1`).
#[derive(Default)]
pub(crate) struct BodyShapes {
    by_route: HashMap<(Method, String), jsonschema::Validator>,
}

impl std::fmt::Debug for BodyShapes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyShapes")
            .field("routes", &self.by_route.len())
            .finish()
    }
}

impl BodyShapes {
    /// The shapes of the finished document's request bodies.
    pub(crate) fn from_document(document: &Value) -> Self {
        let mut shapes = document.clone();
        strip_value_keywords(&mut shapes);
        let components = shapes["components"].clone();
        let mut by_route = HashMap::new();
        for (path, item) in shapes["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Some(schema) = operation.pointer("/requestBody/content/application~1json/schema")
                else {
                    continue;
                };
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                // References point into the document's components, so they
                // ride along with the body's schema.
                let root = serde_json::json!({"components": components, "allOf": [schema]});
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("the body schema of {method} {path} compiles: {e}"));
                by_route.insert((method, path.clone()), validator);
            }
        }
        Self { by_route }
    }

    /// Refuses `body` when its shape is not the one its route documents.
    pub(crate) fn check(&self, method: &Method, route: &str, body: &Value) -> Result<(), ApiError> {
        let Some(validator) = self.by_route.get(&(method.clone(), route.to_owned())) else {
            return Ok(());
        };
        match validator.iter_errors(body).next() {
            None => Ok(()),
            Some(error) => {
                let at = error.instance_path().to_string();
                let mut message = format!(
                    "{}: {error}",
                    if at.is_empty() { "the body" } else { at.as_str() }
                );
                if message.len() > 300 {
                    let cut = (0..=300).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
                    message.truncate(cut);
                    message.push('…');
                }
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message))
            }
        }
    }
}

fn strip_value_keywords(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A property may be called like a keyword; only schemas lose them.
            let is_schema = map.contains_key("type")
                || map.contains_key("$ref")
                || map.contains_key("oneOf")
                || map.contains_key("allOf")
                || map.contains_key("anyOf");
            if is_schema {
                for keyword in VALUE_KEYWORDS {
                    map.remove(keyword);
                }
                if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                    map.remove("additionalProperties");
                }
                // With the tags gone, the members of a union would overlap.
                if let Some(members) = map.remove("oneOf") {
                    map.insert("anyOf".into(), members);
                }
            }
            map.values_mut().for_each(strip_value_keywords);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_value_keywords),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> BodyShapes {
        BodyShapes::from_document(&crate::openapi::finish(
            crate::api_routes().split_for_parts().1,
        ))
    }

    #[test]
    fn a_struct_given_as_an_array_is_refused() {
        let shapes = shapes();
        let body = serde_json::json!({"definition": {"steps": [
            {"name": "a", "sql": "SELECT 1", "policy": [null, null]}
        ]}});
        let error = shapes
            .check(&Method::POST, "/pipelines/validate", &body)
            .unwrap_err();
        assert_eq!(error.code(), "invalid_json");
        let good = serde_json::json!({"definition": {"steps": [{"name": "a", "sql": "SELECT 1"}]}});
        shapes
            .check(&Method::POST, "/pipelines/validate", &good)
            .unwrap();
    }

    #[test]
    fn value_rules_are_left_to_the_server() {
        let shapes = shapes();
        // A short password, a bad name and an unknown role are the right
        // shape: the engine refuses them with their own codes.
        let body = serde_json::json!({"username": "Not A Name", "email": "x", "password": "short", "role": "root"});
        shapes.check(&Method::POST, "/users", &body).unwrap();
        // So is a check of an unknown type (`invalid_check`).
        let body = serde_json::json!({"name": "x", "type": "no_such_check"});
        shapes
            .check(&Method::POST, "/datasets/{name}/checks", &body)
            .unwrap();
    }
}
