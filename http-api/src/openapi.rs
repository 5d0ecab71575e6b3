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
    // Schemas that only parameters refer to: utoipa registers the schemas
    // of bodies by itself, not those of parameters.
    components(schemas(
        ErrorEnvelope,
        ErrorDetail,
        Identifier,
        basin_engine::identity::audit::Outcome,
        basin_engine::catalog::JobStatus,
        basin_engine::catalog::RunStatus,
        basin_engine::datasets::write::WriteMode,
        basin_engine::ingest::BadRowPolicy,
        basin_engine::pipelines::manage::Direction,
        basin_connectors::file::FormatKind,
        // Drawn by hand for `filters` (a filter or a list of them).
        basin_engine::analytics::timeseries::Filter,
    )),
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

/// The document as served: the routes' operations and schemas with the
/// common failure responses, unions spelled out for client generators, and
/// the real bounds of unsigned integers.
pub(crate) fn finish(mut document: utoipa::openapi::OpenApi) -> serde_json::Value {
    add_common_responses(&mut document);
    let mut document = serde_json::to_value(&document).expect("the OpenAPI document serializes");
    close_unions(&mut document);
    spell_out_unions(&mut document);
    spell_out_alternatives(&mut document);
    keep_mostly_to_row_level_checks(&mut document);
    add_unsigned_bounds(&mut document);
    document
}

/// Tagged enums whose variants refuse unknown keys (serde's
/// `deny_unknown_fields`): utoipa does not carry that into the variants'
/// schemas, so a generator would send keys the server refuses.
/// (Materialization is not one: serde lets its unit variants, `{"kind":
/// "view"}`, carry any other key.)
const CLOSED_UNIONS: [&str; 2] = ["CheckSpec", "Incremental"];

fn close_unions(document: &mut serde_json::Value) {
    for name in CLOSED_UNIONS {
        let members = document["components"]["schemas"][name]["oneOf"].as_array_mut();
        for member in members.into_iter().flatten() {
            if member.get("properties").is_some() {
                member["additionalProperties"] = serde_json::Value::Bool(false);
            }
        }
    }
}

/// `mostly` is a field of every check in the Rust type, but only row-level
/// checks take it ([`CheckSpec::ROW_LEVEL_KINDS`]); the other checks' members
/// of the spelled-out union leave it out, as the server refuses it there.
///
/// [`CheckSpec::ROW_LEVEL_KINDS`]: basin_engine::analytics::checks::CheckSpec::ROW_LEVEL_KINDS
fn keep_mostly_to_row_level_checks(document: &mut serde_json::Value) {
    use basin_engine::analytics::checks::CheckSpec;
    let members = document["components"]["schemas"]["CheckDefinition"]["oneOf"].as_array_mut();
    for member in members.into_iter().flatten() {
        let kind = member["properties"]["type"]["enum"][0]
            .as_str()
            .unwrap_or_default();
        if !CheckSpec::ROW_LEVEL_KINDS.contains(&kind)
            && let Some(properties) = member["properties"].as_object_mut()
        {
            properties.remove("mostly");
        }
    }
}

/// utoipa draws a struct that flattens a tagged enum (a check: its common
/// fields and one of its types' fields) as `allOf` of the fields and the
/// enum's `oneOf`, which client generators cannot make a type of. The same
/// union, spelled out: `oneOf` of each member with the common fields.
fn spell_out_unions(document: &mut serde_json::Value) {
    let components = document["components"]["schemas"].clone();
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            *schema = spelled_out(schema, &components);
        }
    }
}

fn spelled_out(schema: &serde_json::Value, components: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let resolve = |part: &Value| -> Value {
        part.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map_or_else(|| part.clone(), |name| components[name].clone())
    };
    if let Some(Value::Array(members)) = schema.get("oneOf") {
        let mut items = Vec::new();
        for member in members {
            let spelled = if member.get("allOf").is_some() {
                spelled_out(member, components)
            } else {
                member.clone()
            };
            // A member that became a union adds its members.
            match (member.get("allOf"), spelled.get("oneOf")) {
                (Some(_), Some(Value::Array(inner))) => items.extend(inner.iter().cloned()),
                _ => items.push(spelled),
            }
        }
        let mut schema = schema.clone();
        schema["oneOf"] = Value::Array(items);
        return schema;
    }
    let Some(Value::Array(parts)) = schema.get("allOf") else {
        return schema.clone();
    };
    let parts: Vec<Value> = parts
        .iter()
        .map(|p| spelled_out(&resolve(p), components))
        .collect();
    let Some(union) = parts.iter().position(|p| p.get("oneOf").is_some()) else {
        return schema.clone();
    };
    let members = parts[union]["oneOf"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let common: Vec<&Value> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != union)
        .map(|(_, p)| p)
        .collect();
    let merged: Vec<Value> = members
        .iter()
        .map(|member| {
            let mut object =
                serde_json::json!({"type": "object", "properties": {}, "required": []});
            for part in std::iter::once(&resolve(member)).chain(common.iter().copied()) {
                if let Some(properties) = part["properties"].as_object() {
                    for (name, property) in properties {
                        object["properties"][name] = property.clone();
                    }
                }
                for required in part["required"].as_array().into_iter().flatten() {
                    if let Some(list) = object["required"].as_array_mut()
                        && !list.contains(required)
                    {
                        list.push(required.clone());
                    }
                }
                if part.get("additionalProperties") == Some(&Value::Bool(false)) {
                    object["additionalProperties"] = Value::Bool(false);
                }
            }
            let described = resolve(member);
            if let Some(description) = member.get("description").or(described.get("description")) {
                object["description"] = description.clone();
            }
            object
        })
        .collect();
    let mut union = serde_json::json!({"oneOf": merged});
    for keyword in ["description", "example", "examples"] {
        if let Some(value) = schema.get(keyword) {
            union[keyword] = value.clone();
        }
    }
    union
}

/// utoipa writes an unsigned integer as `format: int32` or `int64` with
/// `minimum: 0`; the format alone would cap it at the signed maximum, below
/// what the server accepts. Each gets its real maximum.
fn add_unsigned_bounds(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let integer = match map.get("type") {
                Some(serde_json::Value::String(t)) => t == "integer",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            let unsigned = map.get("minimum").and_then(serde_json::Value::as_u64) == Some(0);
            if integer && unsigned && !map.contains_key("maximum") {
                let maximum = match map.get("format").and_then(serde_json::Value::as_str) {
                    Some("int32") => Some(u64::from(u32::MAX)),
                    Some("int64") => Some(u64::MAX),
                    _ => None,
                };
                if let Some(maximum) = maximum {
                    map.insert("maximum".into(), maximum.into());
                }
            }
            map.values_mut().for_each(add_unsigned_bounds);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(add_unsigned_bounds),
        _ => {}
    }
}

/// Failures any operation can answer with, added to each operation that does
/// not describe them itself: bad parameters or bodies (400), credentials
/// (401, 403), rate limits (429), the request deadline (503), and for
/// operations with path parameters or bodies, 404 and 413/415.
fn add_common_responses(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    const COMMON: [(&str, &str, &str); 8] = [
        ("400", "BadRequest", "a parameter or the body is invalid"),
        (
            "401",
            "Unauthenticated",
            "no valid credentials (`WWW-Authenticate` says how to send them)",
        ),
        ("403", "Forbidden", "the caller may not do this"),
        ("404", "NotFound", "what the path names does not exist"),
        (
            "413",
            "PayloadTooLarge",
            "the body is larger than `http.body_limit`",
        ),
        (
            "415",
            "UnsupportedMediaType",
            "the body is not `application/json`",
        ),
        (
            "429",
            "RateLimited",
            "too many requests: retry after `Retry-After` seconds",
        ),
        (
            "503",
            "RequestTimeout",
            "the request ran past `http.request_timeout`",
        ),
    ];
    let components = document.components.get_or_insert_with(Default::default);
    for (_, name, description) in COMMON {
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build();
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    for (path, item) in document.paths.paths.iter_mut() {
        let has_path_parameters = path.contains('{');
        for operation in operations_mut(item) {
            let open = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            let body = operation.request_body.as_ref();
            let json_body = body.is_some_and(
                |b| matches!(b, RefOr::T(b) if b.content.contains_key("application/json")),
            );
            for (status, name, _) in COMMON {
                let applies = match status {
                    "401" | "403" => !open,
                    "404" => has_path_parameters,
                    "413" => body.is_some(),
                    "415" => json_body,
                    _ => true,
                };
                if applies && !operation.responses.responses.contains_key(status) {
                    operation.responses.responses.insert(
                        status.to_owned(),
                        RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
                    );
                }
            }
        }
    }
}

fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The schema of a body of bytes: a file to upload, an Arrow IPC stream.
pub(crate) struct BinaryBody;

impl utoipa::PartialSchema for BinaryBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for BinaryBody {}

/// The schema of names users choose (datasets, connections, pipelines,
/// users, checks): the rules of [`basin_sql::validate_name`].
pub(crate) struct Identifier;

impl utoipa::PartialSchema for Identifier {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "lowercase letters, digits and `_`, starting with a letter or `_`, at most 63 characters",
            ))
            .pattern(Some(basin_sql::NAME_PATTERN))
            .examples(["sales"])
            .into()
    }
}

impl utoipa::ToSchema for Identifier {}

/// The schema of an email address as the server checks it: something, `@`,
/// a domain with a dot, no spaces.
pub(crate) struct Email;

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[^@\s]+@\S*\.\S*$"))
            .max_length(Some(254))
            .examples(["ann@example.com"])
            .into()
    }
}

impl utoipa::ToSchema for Email {}

/// The schema of a dataset tag: 1 to 64 characters.
pub(crate) struct Tag;

impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .into()
    }
}

impl utoipa::ToSchema for Tag {}

/// The schema of a new password: the length rules of the password policy
/// (the rest of the policy is checked by the server).
pub(crate) struct NewPassword;

impl utoipa::PartialSchema for NewPassword {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use basin_engine::identity::password::{MAX_LEN, MIN_LEN};
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "12 to 256 characters, not containing the username, not one repeated character",
            ))
            .min_length(Some(MIN_LEN))
            .max_length(Some(MAX_LEN))
            .examples(["correct horse battery staple"])
            .into()
    }
}

impl utoipa::ToSchema for NewPassword {}

/// Bodies whose fields include alternatives of which the server takes
/// exactly one, the others absent or null: by schema name, the alternatives,
/// and whether none at all is allowed too (a plan of the saved pipeline).
const ONE_OF_BODIES: [(&str, &[&str], bool); 5] = [
    ("CreatePipeline", &DRAFT_FORMS, false),
    ("ValidateBody", &DRAFT_FORMS, false),
    ("SaveBody", &DRAFT_FORMS, false),
    ("PlanRequest", &DRAFT_FORMS, true),
    ("RestoreBody", &["version", "as_of"], false),
];

/// A pipeline draft: JSON, a `.sql` file's text, or nodes and edges.
const DRAFT_FORMS: [&str; 3] = ["definition", "sql", "visual"];

/// The Rust types of these bodies make every alternative optional, and the
/// server refuses two or none ("give exactly one of …"); each becomes
/// `oneOf` a member per alternative, so a generator sends what the server
/// takes.
fn spell_out_alternatives(document: &mut serde_json::Value) {
    for (name, alternatives, none_too) in ONE_OF_BODIES {
        let schema = &mut document["components"]["schemas"][name];
        assert!(
            schema.get("properties").is_some(),
            "the body {name} is an object"
        );
        // A field every member shares that is an object drawn inline (a map
        // of param values) becomes one named schema: drawn inline in each
        // member, generators make one model per member of the same name.
        let mut shared = Vec::new();
        let properties = schema["properties"].as_object_mut().into_iter().flatten();
        for (property, field) in properties {
            if !alternatives.contains(&property.as_str())
                && field.get("type") == Some(&"object".into())
            {
                let component = format!("{name}{}", pascal_case(property));
                shared.push((component.clone(), field.take()));
                *field = serde_json::json!({"$ref": format!("#/components/schemas/{component}")});
            }
        }
        *schema = one_of_alternatives(schema, name, alternatives, none_too);
        for (component, field) in shared {
            document["components"]["schemas"][component] = field;
        }
    }
}

/// `snake_case` as `PascalCase`.
fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

fn one_of_alternatives(
    base: &serde_json::Value,
    name: &str,
    alternatives: &[&str],
    none_too: bool,
) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut members = Vec::new();
    let chosen = alternatives.iter().copied().map(Some);
    for choice in chosen.chain(none_too.then_some(None)) {
        let mut member = base.clone();
        if let Some(map) = member.as_object_mut() {
            map.remove("description");
            map.remove("examples");
        }
        for &alternative in alternatives {
            let property = &mut member["properties"][alternative];
            *property = if choice == Some(alternative) {
                not_null(property.take())
            } else {
                json!({"type": "null"})
            };
        }
        let required = member["required"].as_array().cloned().unwrap_or_default();
        member["required"] = Value::Array(
            required
                .into_iter()
                .chain(choice.map(|f| json!(f)))
                .collect(),
        );
        // Generators name each member's model after its title:
        // `RestoreBodyVersion`, `PlanRequestNone`.
        member["title"] = json!(format!("{name}_{}", choice.unwrap_or("none")));
        member["additionalProperties"] = Value::Bool(false);
        members.push(member);
    }
    let mut union = json!({"oneOf": members});
    for keyword in ["description", "examples"] {
        if let Some(value) = base.get(keyword) {
            union[keyword] = value.clone();
        }
    }
    union
}

/// `schema` without the null that an `Option` adds to it.
fn not_null(schema: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let is_null = |s: &Value| s.get("type") == Some(&Value::String("null".into()));
    match schema {
        Value::Object(mut map) => {
            if let Some(Value::Array(members)) = map.get("oneOf") {
                let kept: Vec<Value> = members.iter().filter(|m| !is_null(m)).cloned().collect();
                if let [only] = kept.as_slice() {
                    let mut only = only.clone();
                    if let Some(description) = map.get("description") {
                        only["description"] = description.clone();
                    }
                    return only;
                }
                map.insert("oneOf".into(), Value::Array(kept));
            }
            if let Some(Value::Array(types)) = map.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                let kept = match kept.as_slice() {
                    [only] => only.clone(),
                    _ => Value::Array(kept),
                };
                map.insert("type".into(), kept);
            }
            Value::Object(map)
        }
        other => other,
    }
}

/// The schema of a body that flattens two structs into one object: the
/// properties and required fields of both, and nothing else. (utoipa draws a
/// flattened field as `allOf`, which together with `additionalProperties:
/// false` on either part would admit no object at all.)
pub(crate) fn merged_object<A: utoipa::PartialSchema, B: utoipa::PartialSchema>(
    description: &str,
    example: serde_json::Value,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let mut merged = utoipa::openapi::schema::Object::new();
    for part in [A::schema(), B::schema()] {
        let RefOr::T(Schema::Object(object)) = part else {
            unreachable!("merged_object takes structs, whose schemas are objects")
        };
        merged.properties.extend(object.properties);
        merged.required.extend(object.required);
    }
    merged.description = Some(description.to_owned());
    merged.examples = vec![example];
    merged.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    RefOr::T(Schema::Object(merged))
}

/// Routes whose schemas join the document only when no other schema already
/// has their name. utoipa keys components by their last path segment, so two
/// types named alike in different modules would otherwise share one entry,
/// and every operation but one would point at the wrong schema.
pub(crate) trait DocumentedRoutes {
    /// `OpenApiRouter::routes`, refusing a schema whose name is taken by a
    /// different schema.
    fn documented(self, routes: utoipa_axum::router::UtoipaMethodRouter<crate::AppState>) -> Self;
    /// `OpenApiRouter::merge`, with the same refusal.
    fn merge_documented(self, other: Self) -> Self;
}

impl DocumentedRoutes for utoipa_axum::router::OpenApiRouter<crate::AppState> {
    fn documented(
        self,
        (schemas, paths, method_router): utoipa_axum::router::UtoipaMethodRouter<crate::AppState>,
    ) -> Self {
        let mut seen = component_schemas(&self);
        for (name, schema) in &schemas {
            claim(&mut seen, name, schema);
        }
        self.routes((schemas, paths, method_router))
    }

    fn merge_documented(self, other: Self) -> Self {
        let mut seen = component_schemas(&self);
        for (name, schema) in component_schemas(&other) {
            claim(&mut seen, &name, &schema);
        }
        self.merge(other)
    }
}

type SchemaByName =
    std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>>;

fn component_schemas(router: &utoipa_axum::router::OpenApiRouter<crate::AppState>) -> SchemaByName {
    router
        .get_openapi()
        .components
        .as_ref()
        .map(|c| c.schemas.clone().into_iter().collect())
        .unwrap_or_default()
}

/// Records `schema` under `name`; a different schema there already is a
/// programming error that every test building the router reports.
fn claim(
    seen: &mut SchemaByName,
    name: &str,
    schema: &utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) {
    match seen.get(name) {
        Some(existing) if existing != schema => {
            panic!(
                "two different schemas are named `{name}` in the OpenAPI document: give one a `#[schema(as = …)]` name"
            )
        }
        Some(_) => {}
        None => {
            seen.insert(name.to_owned(), schema.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        super::finish(crate::api_routes().split_for_parts().1)
    }

    /// Every `$ref` in `value`, with where it was found.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        out.push((at.clone(), child.as_str().unwrap_or_default()));
                    } else {
                        refs(child, format!("{at}/{key}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    refs(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut found = Vec::new();
        refs(&document, String::new(), &mut found);
        assert!(!found.is_empty());
        for (at, reference) in found {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| document.pointer(pointer));
            assert!(target.is_some(), "{at}: {reference} is not defined");
        }
    }

    #[test]
    fn every_json_answer_is_a_named_type() {
        let document = document();
        let mut checked = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let Some(schema) = response.pointer("/content/application~1json/schema") else {
                        continue;
                    };
                    assert!(
                        schema.get("$ref").is_some(),
                        "{method} {path} {status}: the JSON body is not a named type: {schema}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "only {checked} JSON answers");
    }

    #[test]
    fn no_schema_combines_parts_that_forbid_each_other() {
        // In `allOf`, a part that forbids additional properties admits only
        // objects without the properties the other parts add: none, in
        // practice, when those are required.
        let document = document();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let resolve = |part: &Value| -> Value {
            match part
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                Some(name) => schemas[name].clone(),
                None => part.clone(),
            }
        };
        let properties = |part: &Value| -> Vec<String> {
            part["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        };
        for (name, schema) in schemas {
            let Some(Value::Array(parts)) = schema.get("allOf") else {
                continue;
            };
            let parts: Vec<Value> = parts.iter().map(resolve).collect();
            for (i, part) in parts.iter().enumerate() {
                if part.get("additionalProperties") != Some(&Value::Bool(false)) {
                    continue;
                }
                let own = properties(part);
                for (j, other) in parts.iter().enumerate() {
                    for property in properties(other) {
                        assert!(
                            i == j || own.contains(&property),
                            "{name}: part {i} forbids `{property}`, which part {j} describes"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document();
        let mut ids = std::collections::BTreeSet::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "operationId `{id}` is used twice");
            }
        }
    }

    #[test]
    fn dataset_names_in_paths_follow_the_identifier_rules() {
        let document = document();
        let mut checked = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for operation in item.as_object().unwrap().values() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap();
                    let is_dataset = (path.starts_with("/datasets/{name}") && name == "name")
                        || name == "dataset";
                    if is_dataset && parameter["in"] == "path" {
                        assert_eq!(
                            parameter["schema"]["$ref"], "#/components/schemas/Identifier",
                            "{path}: {name}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 15, "only {checked} dataset parameters");
        assert_eq!(
            document["components"]["schemas"]["Identifier"]["pattern"],
            basin_sql::NAME_PATTERN
        );
    }

    #[test]
    fn closed_unions_refuse_unknown_keys_like_the_server() {
        use basin_engine::analytics::checks::{CheckDefinition, CheckSpec};
        use basin_engine::pipelines::model::{Incremental, Materialization};
        use serde_json::json;
        // The server refuses unknown keys in each of them...
        let refused = [
            serde_json::from_value::<CheckDefinition>(
                json!({"name": "a", "type": "not_null", "column": "x", "extra": 1}),
            )
            .is_err(),
            serde_json::from_value::<Materialization>(
                json!({"kind": "incremental", "strategy": "append", "cursor": "at", "extra": 1}),
            )
            .is_err(),
            serde_json::from_value::<Incremental>(
                json!({"strategy": "append", "cursor": "at", "extra": 1}),
            )
            .is_err(),
        ];
        assert_eq!(refused, [true; 3]);
        // ...and the document says so, member by member.
        let document = document();
        let schemas = &document["components"]["schemas"];
        for name in super::CLOSED_UNIONS
            .iter()
            .chain(["CheckDefinition"].iter())
        {
            let members = schemas[*name]["oneOf"].as_array().unwrap();
            for member in members.iter().filter(|m| m.get("properties").is_some()) {
                assert_eq!(member["additionalProperties"], false, "{name}: {member}");
            }
        }
        // `mostly` is offered to the row-level checks only.
        let mut kinds = Vec::new();
        for member in schemas["CheckDefinition"]["oneOf"].as_array().unwrap() {
            let kind = member["properties"]["type"]["enum"][0].as_str().unwrap();
            let row_level = CheckSpec::ROW_LEVEL_KINDS.contains(&kind);
            assert_eq!(
                member["properties"].get("mostly").is_some(),
                row_level,
                "{kind}"
            );
            assert_eq!(
                member["properties"]["name"]["pattern"],
                basin_sql::NAME_PATTERN,
                "{kind}"
            );
            kinds.push(kind);
        }
        assert_eq!(kinds.len(), 11, "{kinds:?}");
    }

    #[test]
    fn bodies_with_alternatives_take_one() {
        let document = document();
        for (name, alternatives, none_too) in super::ONE_OF_BODIES {
            let members = document["components"]["schemas"][name]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} is a union"));
            assert_eq!(
                members.len(),
                alternatives.len() + usize::from(none_too),
                "{name}"
            );
            for member in members {
                let given: Vec<&str> = alternatives
                    .iter()
                    .copied()
                    .filter(|form| member["properties"][form]["type"] != "null")
                    .collect();
                let required = member["required"].as_array().unwrap();
                assert!(given.len() <= 1, "{name}: {given:?}");
                assert!(
                    given
                        .iter()
                        .all(|form| required.contains(&Value::from(*form))),
                    "{name}"
                );
                assert_eq!(member["additionalProperties"], false, "{name}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "two different schemas are named `Body`")]
    fn schemas_named_alike_are_refused() {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut seen = super::SchemaByName::new();
        let text = ObjectBuilder::new().schema_type(Type::String).into();
        let number = ObjectBuilder::new().schema_type(Type::Number).into();
        super::claim(&mut seen, "Body", &text);
        super::claim(&mut seen, "Body", &text);
        super::claim(&mut seen, "Body", &number);
    }
}
