//! Typed params and their {{ placeholders }}: resolving values, and rendering a step's SQL with each value as one literal.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------
// Params and placeholders

/// A `{{ name }}` placeholder in step SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The param it names.
    pub name: String,
    /// Byte offset of its opening `{{`.
    pub start: usize,
    /// Byte offset just past its closing `}}`.
    pub end: usize,
    /// Line of the opening `{{`, from 1.
    pub line: u64,
    /// Column (in characters) of the opening `{{`, from 1.
    pub column: u64,
}

/// The `{{ name }}` placeholders in `sql`, in order. Whitespace inside the
/// braces is optional; names are `[A-Za-z_][A-Za-z0-9_]*`. Anything else
/// in double braces is left alone. Placeholders are found everywhere,
/// including inside string literals, where the rendered literal would not
/// fit: concatenate instead (`'prefix ' || {{ name }}`).
pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = sql[from..].find("{{") {
        let start = from + offset;
        match placeholder_at(sql, start) {
            Some((name, end)) => {
                let (line, column) = line_column(sql, start);
                found.push(Placeholder {
                    name: name.to_owned(),
                    start,
                    end,
                    line,
                    column,
                });
                from = end;
            }
            None => from = start + 1,
        }
    }
    found
}

/// The name and end of the placeholder whose `{{` is at `start`, if it is one.
pub(super) fn placeholder_at(sql: &str, start: usize) -> Option<(&str, usize)> {
    let bytes = sql.as_bytes();
    let mut at = start + 2;
    while at < bytes.len() && bytes[at].is_ascii_whitespace() {
        at += 1;
    }
    let name_start = at;
    while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
        at += 1;
    }
    let name = &sql[name_start..at];
    if !is_identifier(name) {
        return None;
    }
    while at < bytes.len() && bytes[at].is_ascii_whitespace() {
        at += 1;
    }
    sql[at..].starts_with("}}").then_some((name, at + 2))
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line as u64, column as u64)
}

/// Whether `text` is `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a value of `kind` looks like, for messages.
pub(super) fn expected(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "a string",
        ParamType::Integer => "an integer",
        ParamType::Number => "a number",
        ParamType::Boolean => "true or false",
        ParamType::Date => "a date (a string like 2024-01-31)",
        ParamType::Timestamp => "an RFC 3339 timestamp (a string like 2024-01-31T10:00:00Z)",
        ParamType::Identifier => {
            "an identifier (a string of letters, digits and _, starting with a letter or _)"
        }
    }
}

pub(super) fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// Why `value` is not of `spec`'s type, if it is not.
pub(super) fn type_problem(spec: &ParamSpec, value: &Value) -> Option<String> {
    let fits = match spec.kind {
        ParamType::String => value.is_string(),
        ParamType::Integer => value.as_i64().is_some(),
        ParamType::Number => value.is_number(),
        ParamType::Boolean => value.is_boolean(),
        ParamType::Date => value.as_str().and_then(parse_date).is_some(),
        ParamType::Timestamp => value.as_str().and_then(parse_timestamp).is_some(),
        ParamType::Identifier => value.as_str().is_some_and(is_identifier),
    };
    (!fits).then(|| {
        format!(
            "param `{}` must be {}, got {value}",
            spec.name,
            expected(spec.kind)
        )
    })
}

/// Why `value` is not acceptable for `spec` (type, then allowed values), if it is not.
pub(super) fn value_problem(spec: &ParamSpec, value: &Value) -> Option<String> {
    if let Some(problem) = type_problem(spec, value) {
        return Some(problem);
    }
    let allowed = spec.allowed.as_ref()?;
    if allowed.contains(value) {
        return None;
    }
    let choices = allowed
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "param `{}` must be one of {choices}, got {value}",
        spec.name
    ))
}

/// The value of every param: the given one, else its default. Names not
/// declared, missing required params, values of the wrong type and values
/// not in `allowed` are refused.
pub fn resolve_params(
    specs: &[ParamSpec],
    given: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, Value>> {
    if let Some(unknown) = given
        .keys()
        .find(|name| !specs.iter().any(|spec| spec.name == **name))
    {
        let declared = if specs.is_empty() {
            "none".to_owned()
        } else {
            specs
                .iter()
                .map(|spec| format!("`{}`", spec.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::InvalidInput(format!(
            "unknown param `{unknown}`; declared params: {declared}"
        )));
    }
    let mut values = BTreeMap::new();
    for spec in specs {
        let Some(value) = given.get(spec.name.as_str()).or(spec.default.as_ref()) else {
            return Err(Error::InvalidInput(format!(
                "param `{}` is required",
                spec.name
            )));
        };
        if let Some(problem) = value_problem(spec, value) {
            return Err(Error::InvalidInput(problem));
        }
        values.insert(spec.name.clone(), value.clone());
    }
    Ok(values)
}

/// `sql` with every placeholder replaced by a SQL literal of its param's
/// type: strings quoted with `'` doubled, numbers as written (negative ones
/// in parentheses, so `a-{{ n }}` cannot turn into a `--` comment),
/// `TRUE`/`FALSE`, `DATE '…'`, `TIMESTAMP '…'` in UTC, and identifiers
/// double-quoted (they cannot contain `"`). Values are checked against the
/// type again, so whatever they are they stay one literal; that is what
/// makes params safe from injection (with DataFusion's generic dialect, in
/// which a backslash escapes nothing).
pub fn render_sql(
    sql: &str,
    specs: &[ParamSpec],
    values: &BTreeMap<String, Value>,
) -> Result<String> {
    let mut rendered = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut tokens = None;
    for placeholder in placeholders(sql) {
        let name = &placeholder.name;
        let spec = specs
            .iter()
            .find(|spec| spec.name == *name)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "`{{{{ {name} }}}}` at line {}, column {} names no declared param",
                    placeholder.line, placeholder.column
                ))
            })?;
        let value = values
            .get(name)
            .ok_or_else(|| Error::InvalidInput(format!("param `{name}` has no value")))?;
        // Inside quotes, a rendered literal would be pasted into the quotes,
        // not used as a value.
        let tokens = tokens.get_or_insert_with(|| scan::tokens(sql));
        if scan::inside_quotes(tokens, placeholder.start) {
            return Err(Error::InvalidInput(format!(
                "`{{{{ {name} }}}}` at line {}, column {} is inside quotes: write it bare, its value is rendered as a quoted literal",
                placeholder.line, placeholder.column
            )));
        }
        rendered.push_str(&sql[copied..placeholder.start]);
        rendered.push_str(&sql_literal(spec, value)?);
        copied = placeholder.end;
    }
    rendered.push_str(&sql[copied..]);
    Ok(rendered)
}

/// `value` as a SQL literal of `spec`'s type.
pub(super) fn sql_literal(spec: &ParamSpec, value: &Value) -> Result<String> {
    let wrong = || {
        Error::InvalidInput(format!(
            "param `{}` must be {}, got {value}",
            spec.name,
            expected(spec.kind)
        ))
    };
    let literal = match spec.kind {
        ParamType::String => {
            let text = value.as_str().ok_or_else(wrong)?;
            basin_sql::quote_literal(text)
        }
        ParamType::Integer => parenthesize_negative(value.as_i64().ok_or_else(wrong)?.to_string()),
        ParamType::Number => match value {
            Value::Number(number) => parenthesize_negative(number.to_string()),
            _ => return Err(wrong()),
        },
        ParamType::Boolean => {
            if value.as_bool().ok_or_else(wrong)? {
                "TRUE".to_owned()
            } else {
                "FALSE".to_owned()
            }
        }
        ParamType::Date => {
            let date = value.as_str().and_then(parse_date).ok_or_else(wrong)?;
            format!("DATE '{}'", date.format("%Y-%m-%d"))
        }
        ParamType::Timestamp => {
            let time = value.as_str().and_then(parse_timestamp).ok_or_else(wrong)?;
            format!(
                "TIMESTAMP '{}'",
                time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )
        }
        ParamType::Identifier => {
            let name = value
                .as_str()
                .filter(|name| is_identifier(name))
                .ok_or_else(wrong)?;
            format!("\"{name}\"")
        }
    };
    Ok(literal)
}

pub(super) fn parenthesize_negative(number: String) -> String {
    if number.starts_with('-') {
        format!("({number})")
    } else {
        number
    }
}

/// Values to render step SQL with when checking it without real values:
/// each param's default when it has a valid one, else a representative
/// value of its type (`""`, `0`, `false`, `1970-01-01`,
/// `1970-01-01T00:00:00Z`, or for an identifier the param's own name).
pub fn placeholder_values_for_validation(specs: &[ParamSpec]) -> BTreeMap<String, Value> {
    specs
        .iter()
        .map(|spec| {
            let value = spec
                .default
                .clone()
                .filter(|default| type_problem(spec, default).is_none())
                .unwrap_or_else(|| match spec.kind {
                    ParamType::String => Value::String(String::new()),
                    ParamType::Integer | ParamType::Number => Value::from(0),
                    ParamType::Boolean => Value::Bool(false),
                    ParamType::Date => Value::from("1970-01-01"),
                    ParamType::Timestamp => Value::from("1970-01-01T00:00:00Z"),
                    ParamType::Identifier => Value::String(spec.name.clone()),
                });
            (spec.name.clone(), value)
        })
        .collect()
}

impl PipelineDefinition {
    /// A copy with every step's SQL rendered with `values` (see
    /// [`render_sql`]; resolve them with [`resolve_params`] first), no params
    /// and `template` off: a runnable pipeline made from a template.
    pub fn instantiate(&self, values: &BTreeMap<String, Value>) -> Result<PipelineDefinition> {
        let mut instance = self.clone();
        for step in &mut instance.steps {
            step.sql = render_sql(&step.sql, &self.params, values)
                .map_err(|err| Error::InvalidInput(format!("step `{}`: {err}", step.name)))?;
        }
        instance.params.clear();
        instance.template = false;
        Ok(instance)
    }

    /// Lowercase hex SHA-256 of the definition's JSON: equal definitions
    /// hash equal, any change (including source positions) changes it.
    pub fn content_hash(&self) -> String {
        // Serializing cannot fail: every map key is a string.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }
}
