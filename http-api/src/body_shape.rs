//! JSON request bodies checked against the shapes the OpenAPI document gives
//! them, after serde has read them.
//!
//! serde and the engine check every value (a name's rules, a password's
//! length, a known role, a check's type), each failure with its own code.
//! What serde lets through is shape: it reads a struct from an array of its
//! fields in order, so `"policy": [null, null]` would pass for an object.
//! This check keeps only the document's JSON types and which member of a
//! union a body is (serde reads `"strategy": 0` as the first variant): value
//! rules (patterns, lengths, bounds, formats, enums), required and unknown
//! fields are taken out, and a union is any of its members. It runs after
//! serde, so serde's messages come first. It refuses only a value of the wrong JSON type, as
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
    by_route: HashMap<(Method, String), Shape>,
    /// The document's component schemas (types only), which shapes refer to.
    components: Value,
}

/// One body's shape: its schema (types only) and the validator built from it.
struct Shape {
    schema: Value,
    validator: jsonschema::Validator,
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
                let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
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
                let shape = Shape {
                    schema: schema.clone(),
                    validator,
                };
                by_route.insert((method, path.clone()), shape);
            }
        }
        Self {
            by_route,
            components: components["schemas"].clone(),
        }
    }

    /// Writes whole numbers spelled as floats (`5.0`) as integers where the
    /// route's shape wants an integer: JSON Schema counts `5.0` as an
    /// integer, and so do clients (Python's `json` writes a float as `5.0`),
    /// while serde refuses it for an integer field. Other numbers (a `number`
    /// field, a param's value) keep their spelling.
    pub(crate) fn whole_numbers_as_integers(&self, method: &Method, route: &str, body: &mut Value) {
        if let Some(shape) = self.by_route.get(&(method.clone(), route.to_owned())) {
            integers_where_wanted(&shape.schema, body, &self.components, 0);
        }
    }

    /// Refuses `body` when its shape is not the one its route documents.
    pub(crate) fn check(&self, method: &Method, route: &str, body: &Value) -> Result<(), ApiError> {
        let Some(shape) = self.by_route.get(&(method.clone(), route.to_owned())) else {
            return Ok(());
        };
        match shape.validator.iter_errors(body).next() {
            None => Ok(()),
            Some(error) => {
                let at = error.instance_path().to_string();
                let mut message = format!(
                    "{}: {error}",
                    if at.is_empty() {
                        "the body"
                    } else {
                        at.as_str()
                    }
                );
                if message.len() > 300 {
                    let cut = (0..=300)
                        .rev()
                        .find(|&i| message.is_char_boundary(i))
                        .unwrap_or(0);
                    message.truncate(cut);
                    message.push('…');
                }
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    message,
                ))
            }
        }
    }
}

/// How deep [`integers_where_wanted`] follows references: the document's
/// recursive schemas (filters) nest no deeper in any body the server takes.
const MAX_SHAPE_DEPTH: usize = 64;

fn integers_where_wanted(schema: &Value, value: &mut Value, components: &Value, depth: usize) {
    if depth > MAX_SHAPE_DEPTH {
        return;
    }
    if schema.get("$ref").is_some() {
        return integers_where_wanted(referenced(schema, components), value, components, depth + 1);
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if let Value::Number(number) = value
        && types.contains(&"integer")
        && !types.contains(&"number")
        && let Some(float) = number.as_f64().filter(|_| number.is_f64())
        && float.fract() == 0.0
    {
        // Within ±2^63 a whole float names one i64 exactly; up to 2^64, one u64.
        const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
        if float.abs() < TWO_TO_63 {
            *value = Value::from(float as i64);
        } else if float > 0.0 && float < 2.0 * TWO_TO_63 {
            *value = Value::from(float as u64);
        }
        return;
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, child) in object.iter_mut() {
                let child_schema = properties
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(child_schema) = child_schema {
                    integers_where_wanted(child_schema, child, components, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    integers_where_wanted(item_schema, item, components, depth + 1);
                }
            }
        }
        _ => {}
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        integers_where_wanted(part, value, components, depth + 1);
    }
    // Of a union, the member the value is: the first whose tags it carries.
    let members = schema
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    if let Some(member) = members
        .into_iter()
        .find(|m| carries_tags(m, value, components))
    {
        integers_where_wanted(member, value, components, depth + 1);
    }
}

/// The component `schema` refers to, or `schema` itself.
fn referenced<'a>(schema: &'a Value, components: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .map_or(schema, |name| &components[name])
}

/// Whether `value` could be `member` of a union: of one of its JSON types,
/// and with the values its tag properties (one-value `enum`s) fix.
fn carries_tags(member: &Value, value: &Value, components: &Value) -> bool {
    let member = referenced(member, components);
    let json_type = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let admits = |t: &str| {
        t == json_type
            || (t == "number" && json_type == "integer")
            || (t == "integer" && json_type == "number")
    };
    let type_fits = match member.get("type") {
        Some(Value::String(t)) => admits(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(admits),
        _ => true,
    };
    let tags_fit = member
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, property)| {
            let tag = property.get("enum")?.as_array().filter(|v| v.len() == 1)?;
            Some(value.get(key) == tag.first())
        })
        .all(|fits| fits);
    type_fits && tags_fit
}

fn strip_value_keywords(value: &mut Value) {
    strip(value, false);
}

/// `tags`: `value` is a member of a union, whose properties fixed to one
/// value (`{"enum": ["not_null"]}`) say which member it is. Those keep their
/// value: serde takes a variant's index for its name (`"strategy": 0`).
fn strip(value: &mut Value, tags: bool) {
    match value {
        Value::Object(map) => {
            // A property may be called like a keyword; only schemas lose them.
            let is_schema = map.contains_key("type")
                || map.contains_key("$ref")
                || map.contains_key("oneOf")
                || map.contains_key("allOf")
                || map.contains_key("anyOf");
            if !is_schema {
                map.values_mut().for_each(|v| strip(v, false));
                return;
            }
            for keyword in VALUE_KEYWORDS {
                map.remove(keyword);
            }
            if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                map.remove("additionalProperties");
            }
            let is_tag = |property: &Value| {
                property
                    .get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(|values| values.len() == 1)
            };
            if tags && let Some(Value::Object(properties)) = map.get_mut("properties") {
                for property in properties.values_mut() {
                    let tag = property.get("enum").filter(|_| is_tag(property)).cloned();
                    strip(property, false);
                    if let Some(tag) = tag {
                        property["enum"] = tag;
                    }
                }
            }
            let union = map.remove("oneOf");
            for (key, child) in map.iter_mut() {
                if !(tags && key == "properties") {
                    strip(child, false);
                }
            }
            // A union is any of its members: with values gone, they may overlap.
            if let Some(Value::Array(mut members)) = union {
                members.iter_mut().for_each(|m| strip(m, true));
                map.insert("anyOf".into(), Value::Array(members));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, false)),
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
    fn a_variant_named_by_its_index_is_refused() {
        let shapes = shapes();
        let step = |materialization: Value| {
            serde_json::json!({"definition": {"steps": [
                {"name": "a", "sql": "SELECT 1", "materialization": materialization}
            ]}})
        };
        let by_index =
            step(serde_json::json!({"kind": "incremental", "strategy": 0, "cursor": "at"}));
        let error = shapes
            .check(&Method::POST, "/pipelines/validate", &by_index)
            .unwrap_err();
        assert_eq!(error.code(), "invalid_json");
        let by_name =
            step(serde_json::json!({"kind": "incremental", "strategy": "append", "cursor": "at"}));
        shapes
            .check(&Method::POST, "/pipelines/validate", &by_name)
            .unwrap();
    }

    #[test]
    fn whole_floats_become_integers_where_the_shape_wants_one() {
        let shapes = shapes();
        let mut body = serde_json::json!({"definition": {
            "max_parallel": 2.0,
            "params": [{"name": "p", "type": "number", "default": 100.0}],
            "steps": [{"name": "a", "sql": "SELECT 1", "policy": {"retries": 3.0, "backoff_ms": 1.5},
                "materialization": {"kind": "incremental", "strategy": "append", "cursor": "at"}}]
        }});
        shapes.whole_numbers_as_integers(&Method::POST, "/pipelines/validate", &mut body);
        let definition = &body["definition"];
        assert_eq!(definition["max_parallel"], serde_json::json!(2));
        assert!(definition["max_parallel"].is_u64());
        assert!(definition["steps"][0]["policy"]["retries"].is_u64());
        // Not whole, or not an integer field: as sent.
        assert!(definition["steps"][0]["policy"]["backoff_ms"].is_f64());
        assert!(definition["params"][0]["default"].is_f64());
    }

    #[test]
    fn value_rules_are_left_to_the_server() {
        let shapes = shapes();
        // A short password, a bad name and an unknown role are the right
        // shape: the engine refuses them with their own codes.
        let body = serde_json::json!({"username": "Not A Name", "email": "x", "password": "short", "role": "root"});
        shapes.check(&Method::POST, "/users", &body).unwrap();
    }
}
