//! Connector specs: the JSON Schema (2020-12) of a connector's configuration,
//! generated from the configuration type itself, so the type that parses a
//! configuration and the form a frontend draws for it cannot drift apart.
//!
//! Form hints ride along as `x-` keywords: `x-group` set on a field with
//! `#[schemars(extend(…))]` and `x-order`, its place in the type, place it
//! in the form, and `x-secret` comes from the [`Secret`](crate::source::Secret) type, so a
//! field is a secret exactly when its type says so. Internally tagged enums
//! become `oneOf` options with a `const` tag. [`secret_pointers`] reads the
//! secret fields back out of a spec.

use schemars::generate::SchemaSettings;
use schemars::transform::{RecursiveTransform, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// The spec of configuration type `T`: every subschema inline (a form reads
/// it top-down, without `$ref`s), optional fields without a `null` type (an
/// absent field and a null one mean the same), integers described by their
/// range alone (`uint16` and friends are not JSON Schema formats), and each
/// top-level field's `x-order` its place in the type.
pub(crate) fn spec_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    RecursiveTransform(tidy).transform(&mut schema);
    let mut spec = schema.to_value();
    if let Some(properties) = spec["properties"].as_object_mut() {
        for (order, property) in properties.values_mut().enumerate() {
            property["x-order"] = order.into();
        }
    }
    spec
}

fn tidy(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    if object.get("type").and_then(Value::as_str) == Some("integer") {
        object.remove("format");
    }
    if object.get("default") == Some(&Value::Null) {
        object.remove("default");
    }
}

/// JSON pointers (`/auth/value`) of the fields a spec marks `x-secret`,
/// through nested objects and the options of a `oneOf`, each once, in the
/// order the spec lists them.
pub fn secret_pointers(spec: &Value) -> Vec<String> {
    let mut pointers = Vec::new();
    collect_secrets(spec, "", &mut pointers);
    pointers
}

fn collect_secrets(schema: &Value, at: &str, pointers: &mut Vec<String>) {
    if schema["x-secret"] == Value::Bool(true) && !pointers.iter().any(|p| p == at) {
        pointers.push(at.to_owned());
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            collect_secrets(property, &format!("{at}/{name}"), pointers);
        }
    }
    for option in schema["oneOf"].as_array().into_iter().flatten() {
        collect_secrets(option, at, pointers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    /// Each spec is what a frontend draws: a change to one must be deliberate,
    /// so it is pinned in `tests/specs/<kind>.json` (`BASIN_WRITE_GOLDEN=1`
    /// rewrites the files from the code).
    #[test]
    fn every_spec_matches_its_golden_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs");
        for connector in Registry::default().all() {
            let path = dir.join(format!("{}.json", connector.kind()));
            let golden: Value = serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            )
            .unwrap();
            let spec = connector.spec();
            let shown = serde_json::to_string_pretty(&spec).unwrap() + "\n";
            if std::env::var_os("BASIN_WRITE_GOLDEN").is_some() {
                std::fs::write(&path, shown).unwrap();
                continue;
            }
            assert_eq!(
                spec,
                golden,
                "{} spec changed; if on purpose, rerun with BASIN_WRITE_GOLDEN=1 to rewrite {}:\n{shown}",
                connector.kind(),
                path.display(),
            );
        }
    }

    #[test]
    fn secret_pointers_follow_objects_and_one_of_options() {
        let spec = serde_json::json!({
            "properties": {
                "password": {"type": "string", "x-secret": true},
                "s3": {"properties": {"key": {"x-secret": true}, "region": {}}},
                "auth": {"oneOf": [
                    {"properties": {"value": {"x-secret": true}}},
                    {"properties": {"value": {"x-secret": true}, "password": {"x-secret": true}}}
                ]}
            }
        });
        assert_eq!(
            secret_pointers(&spec),
            ["/password", "/s3/key", "/auth/value", "/auth/password"]
        );
    }
}
