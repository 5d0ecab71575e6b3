//! The pipeline model: what a user saves. A pipeline is a name, typed
//! params and SQL steps; dependencies are not written down but read from
//! the SQL (see [`crate::graph`]). The same model comes from JSON, from a
//! `.sql` file of `CREATE … AS SELECT` statements, or from a visual editor's
//! nodes and edges.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Diagnostic;
use crate::{Error, Result};
use basin_analytics::checks::CheckDefinition;
use basin_sql::quote_ident;
use basin_sql::scan::{self, SqlToken, TokenKind};
use basin_sql::{MAX_NAME_LEN, validate_name};

/// A pipeline's definition: one immutable version's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineDefinition {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Typed params that `{{ name }}` placeholders in step SQL refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    /// The steps, in the order the author wrote them (execution order comes
    /// from the dependencies).
    pub steps: Vec<Step>,
    /// Defaults every step inherits.
    #[serde(default)]
    pub defaults: StepPolicy,
    /// Most steps running at once (default: the engine's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// When it runs by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Datasets whose new versions start a run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Whether this is a template: not runnable, instantiated with params.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
    /// Where a visual editor placed each step (by step name); ignored by execution.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layout: BTreeMap<String, Position>,
}

/// One step: a `SELECT` and what becomes of its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's name; for `table` and `incremental` steps also the dataset
    /// it writes. Other steps refer to it by this name.
    pub name: String,
    /// A single `SELECT` (or `WITH … SELECT`, `VALUES`), possibly with `{{ param }}` placeholders.
    pub sql: String,
    /// What becomes of the rows.
    #[serde(default)]
    pub materialization: Materialization,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Retry, backoff and timeout for this step (unset fields inherit the pipeline's).
    #[serde(default, skip_serializing_if = "StepPolicy::is_empty")]
    pub policy: StepPolicy,
    /// The line of the file the SQL starts on, when the step came from a
    /// `.sql` file; diagnostics add it to their line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_line: Option<u64>,
    /// The column of that line the SQL starts at (file steps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_column: Option<u64>,
    /// Quality checks on the dataset the step writes, evaluated after each successful write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<StepCheck>,
}

/// A quality check attached to a step, like a dbt test on a model.
// No `deny_unknown_fields`: serde does not support it together with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepCheck {
    /// The check, in the form stored dataset checks take.
    #[serde(flatten)]
    pub check: CheckDefinition,
    /// Whether a failing (or erroring) check fails the step, so that steps
    /// downstream do not run; otherwise it is logged as a warning. Default
    /// true, like dbt's `error` severity.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub blocking: bool,
}

/// What a step's rows become.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Materialization {
    /// A Delta dataset named after the step, replaced on each run (one commit).
    #[default]
    Table,
    /// A stored view: no data is written; queries compute it when they read it.
    View,
    /// A Delta dataset that each run adds to.
    Incremental(Incremental),
    /// Not stored at all: inlined into the steps that read it.
    Ephemeral,
}

impl Materialization {
    /// Whether a run writes a dataset for the step.
    pub fn writes_dataset(&self) -> bool {
        matches!(self, Self::Table | Self::Incremental(_))
    }

    /// The spelling used in JSON and `.sql` files.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::View => "view",
            Self::Incremental(_) => "incremental",
            Self::Ephemeral => "ephemeral",
        }
    }
}

/// How an incremental step adds rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Incremental {
    /// Appends the rows whose `cursor` is above the dataset's largest.
    Append {
        /// The column that only grows (a timestamp or id).
        cursor: String,
    },
    /// Upserts the rows on `unique_key` (Delta MERGE).
    Merge {
        /// The columns that identify a row.
        unique_key: Vec<String>,
    },
}

/// Retries, backoff and deadline of a step. Unset fields inherit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepPolicy {
    /// Attempts after the first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// First backoff before a retry, in milliseconds, doubled each retry, with jitter (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Deadline of one attempt, in seconds (default: the engine's query timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl StepPolicy {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// This policy with unset fields taken from `defaults`.
    pub fn or(self, defaults: StepPolicy) -> StepPolicy {
        StepPolicy {
            retries: self.retries.or(defaults.retries),
            backoff_ms: self.backoff_ms.or(defaults.backoff_ms),
            timeout_secs: self.timeout_secs.or(defaults.timeout_secs),
        }
    }
}

/// A typed param.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// The name placeholders use: `{{ name }}`.
    pub name: String,
    /// Its type; values are rendered as SQL literals of this type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Used when a run or instantiation gives no value; a param without one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The only values allowed, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<serde_json::Value>>,
}

/// Types of params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Text, rendered as a quoted SQL string.
    String,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD`, rendered as `DATE '…'`.
    Date,
    /// RFC 3339, rendered as `TIMESTAMP '…'`.
    Timestamp,
    /// A SQL identifier (a column or table name), rendered quoted.
    Identifier,
}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Five fields (minute hour day-of-month month day-of-week), or six with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// What to do about fire times missed while the server was down.
    #[serde(default)]
    pub missed: MissedRuns,
    /// Off switch that keeps the expression.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Policy for fire times missed while the server was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedRuns {
    /// Run nothing for them; wait for the next fire time.
    #[default]
    Skip,
    /// Run once now for all of them.
    RunOnce,
}

/// Starts a run when a dataset gets a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The dataset to watch.
    pub dataset: String,
}

/// Where a visual editor drew a node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Horizontal.
    pub x: f64,
    /// Vertical.
    pub y: f64,
}

/// The visual shape of a pipeline: nodes with positions and edges. Edges
/// are derived from the SQL; on the way back in they are checked, not trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualDefinition {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Params as in the JSON form.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// One node per step, plus one per source table.
    pub nodes: Vec<VisualNode>,
    /// `from` feeds `to`.
    #[serde(default)]
    pub edges: Vec<VisualEdge>,
    /// Step defaults.
    #[serde(default)]
    pub defaults: StepPolicy,
    /// Most steps at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Dataset triggers.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Template flag.
    #[serde(default)]
    pub template: bool,
}

/// A node of the visual form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualNode {
    /// The step name, or the source table's name.
    pub id: String,
    /// `step` or `source`.
    pub kind: VisualNodeKind,
    /// Where it is drawn.
    pub position: Position,
    /// The step (steps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

/// Kinds of visual nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisualNodeKind {
    /// A step of this pipeline.
    Step,
    /// A table the pipeline reads but does not produce.
    Source,
}

/// An edge of the visual form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisualEdge {
    /// The upstream node id.
    pub from: String,
    /// The downstream node id.
    pub to: String,
}

// ---------------------------------------------------------------------------
// Shape checks

impl PipelineDefinition {
    /// Checks what can be checked without parsing the SQL: step names are
    /// valid dataset names (`invalid_name`) and unique (`duplicate_step`);
    /// every step has SQL, every incremental step its cursor or unique key
    /// (`invalid_definition`); params have unique identifier names, and
    /// defaults and allowed values of their type (`invalid_param`); every
    /// `{{ name }}` placeholder names a param (`unknown_param`, pointing at
    /// the placeholder); `layout` names only steps, `max_parallel` and
    /// `timeout_secs` are at least 1, and a template has params
    /// (`invalid_definition`); only steps that write a dataset have checks
    /// (`checks_on_non_table`), and a step's checks have unique names
    /// (`duplicate_check`).
    pub fn check_shape(&self) -> Vec<Diagnostic> {
        let mut found = Vec::new();

        let mut param_names = BTreeSet::new();
        for param in &self.params {
            let name = &param.name;
            if !is_identifier(name) {
                found.push(Diagnostic::error(
                    None,
                    "invalid_param",
                    format!(
                        "param name `{name}` is not an identifier: use letters, digits and _, starting with a letter or _"
                    ),
                ));
            }
            if !param_names.insert(name.as_str()) {
                found.push(Diagnostic::error(
                    None,
                    "invalid_param",
                    format!("param `{name}` is declared more than once"),
                ));
            }
            if let Some(default) = &param.default
                && let Some(problem) = value_problem(param, default)
            {
                found.push(Diagnostic::error(
                    None,
                    "invalid_param",
                    format!("invalid default: {problem}"),
                ));
            }
            for allowed in param.allowed.iter().flatten() {
                if let Some(problem) = type_problem(param, allowed) {
                    found.push(Diagnostic::error(
                        None,
                        "invalid_param",
                        format!("invalid allowed value: {problem}"),
                    ));
                }
            }
        }

        let mut step_names = BTreeSet::new();
        for step in &self.steps {
            let name = &step.name;
            let at = Some(name.as_str());
            if validate_name(name).is_err() {
                found.push(Diagnostic::error(
                    at,
                    "invalid_name",
                    format!(
                        "step name `{name}` is invalid: use lowercase letters, digits and _, starting with a letter or _, at most {MAX_NAME_LEN} characters"
                    ),
                ));
            }
            if !step_names.insert(name.as_str()) {
                found.push(Diagnostic::error(
                    at,
                    "duplicate_step",
                    format!("step `{name}` is defined more than once"),
                ));
            }
            if step.sql.trim().is_empty() {
                found.push(Diagnostic::error(
                    at,
                    "invalid_definition",
                    format!("step `{name}` has no SQL"),
                ));
            }
            let incomplete = match &step.materialization {
                Materialization::Incremental(Incremental::Append { cursor }) => cursor
                    .trim()
                    .is_empty()
                    .then_some("an append step needs a cursor column"),
                Materialization::Incremental(Incremental::Merge { unique_key }) => {
                    (unique_key.is_empty() || unique_key.iter().any(|key| key.trim().is_empty()))
                        .then_some("a merge step needs unique_key columns, none of them empty")
                }
                _ => None,
            };
            if let Some(problem) = incomplete {
                found.push(Diagnostic::error(
                    at,
                    "invalid_definition",
                    format!("step `{name}`: {problem}"),
                ));
            }
            if step.policy.timeout_secs == Some(0) {
                found.push(Diagnostic::error(
                    at,
                    "invalid_definition",
                    format!("step `{name}`: timeout_secs must be at least 1"),
                ));
            }
            if !step.checks.is_empty() && !step.materialization.writes_dataset() {
                found.push(Diagnostic::error(
                    at,
                    "checks_on_non_table",
                    format!(
                        "step `{name}` is a {} step: checks run on the dataset a step writes, \
                         so only table and incremental steps take them",
                        step.materialization.kind()
                    ),
                ));
            }
            let mut check_names = BTreeSet::new();
            for check in &step.checks {
                let check_name = &check.check.name;
                if !check_names.insert(check_name.as_str()) {
                    found.push(Diagnostic::error(
                        at,
                        "duplicate_check",
                        format!("step `{name}` has more than one check named `{check_name}`"),
                    ));
                }
            }
            for placeholder in placeholders(&step.sql) {
                if !param_names.contains(placeholder.name.as_str()) {
                    found.push(
                        Diagnostic::error(
                            at,
                            "unknown_param",
                            format!("`{{{{ {} }}}}` names no declared param", placeholder.name),
                        )
                        .at(step, placeholder.line, placeholder.column),
                    );
                }
            }
        }

        if self.defaults.timeout_secs == Some(0) {
            found.push(Diagnostic::error(
                None,
                "invalid_definition",
                "defaults: timeout_secs must be at least 1",
            ));
        }
        for name in self.layout.keys() {
            if !step_names.contains(name.as_str()) {
                found.push(Diagnostic::error(
                    None,
                    "invalid_definition",
                    format!("layout names `{name}`, which is not a step"),
                ));
            }
        }
        if self.max_parallel == Some(0) {
            found.push(Diagnostic::error(
                None,
                "invalid_definition",
                "max_parallel must be at least 1",
            ));
        }
        if self.template && self.params.is_empty() {
            found.push(Diagnostic::error(
                None,
                "invalid_definition",
                "a template needs params: they are what an instantiation fills in",
            ));
        }
        found
    }
}

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
fn placeholder_at(sql: &str, start: usize) -> Option<(&str, usize)> {
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
fn line_column(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line as u64, column as u64)
}

/// Whether `text` is `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a value of `kind` looks like, for messages.
fn expected(kind: ParamType) -> &'static str {
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

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// Why `value` is not of `spec`'s type, if it is not.
fn type_problem(spec: &ParamSpec, value: &Value) -> Option<String> {
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
fn value_problem(spec: &ParamSpec, value: &Value) -> Option<String> {
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
        if scan::inside_quotes(sql, placeholder.start) {
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
fn sql_literal(spec: &ParamSpec, value: &Value) -> Result<String> {
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

fn parenthesize_negative(number: String) -> String {
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

// ---------------------------------------------------------------------------
// `.sql` files

/// What marks a comment as a directive.
const DIRECTIVE_PREFIX: &str = "basin:";

/// Every kind of param, for reading their names.
const PARAM_TYPES: [ParamType; 7] = [
    ParamType::String,
    ParamType::Integer,
    ParamType::Number,
    ParamType::Boolean,
    ParamType::Date,
    ParamType::Timestamp,
    ParamType::Identifier,
];

impl PipelineDefinition {
    /// Reads a pipeline from a `.sql` file: one `CREATE [OR REPLACE]
    /// [TEMP|TEMPORARY] TABLE|VIEW name AS <select>` statement per step
    /// (a table, a view, or with `TEMP` an ephemeral step), each ended by
    /// `;` (the last one may omit it), and `-- basin: …` directive comments.
    ///
    /// A block of directives directly above a statement (no blank line
    /// between its last line and the `CREATE`; other comments may sit
    /// between) belongs to that step: `description TEXT` (one line each,
    /// joined with newlines), `retries N`, `backoff_ms N`, `timeout_secs N`,
    /// and `incremental append cursor COLUMN` or `incremental merge
    /// unique_key COLUMN, …` (on a `CREATE TABLE`). Every other directive is
    /// the pipeline's: `description TEXT`, `param NAME TYPE [default VALUE]
    /// [allowed VALUE, …] [description TEXT]` (values written `'text'`,
    /// numbers, `true`, `false` or `null`), `retries`, `backoff_ms` and
    /// `timeout_secs` (the step defaults), `max_parallel N`, `schedule "CRON"
    /// [timezone ZONE] [missed skip|run_once] [disabled]`, `trigger DATASET`
    /// and `template`; these pipeline kinds are the pipeline's even directly
    /// above a statement. Other comments are ignored.
    ///
    /// Unquoted step names are folded to lowercase, as SQL folds them; the
    /// step's SQL is the text after `AS`, trimmed, with `{{ param }}`
    /// placeholders as written, and `source_line`/`source_column` say where
    /// in the file it starts. Every problem (a statement of another kind, an
    /// unknown or malformed directive) is reported as an `invalid_definition`
    /// diagnostic at its place in the file.
    pub fn from_sql_file(text: &str) -> Result<PipelineDefinition, Vec<Diagnostic>> {
        let mut reader = SqlFileReader {
            text,
            definition: PipelineDefinition {
                description: String::new(),
                params: Vec::new(),
                steps: Vec::new(),
                defaults: StepPolicy::default(),
                max_parallel: None,
                schedule: None,
                triggers: Vec::new(),
                template: false,
                layout: BTreeMap::new(),
            },
            description: Vec::new(),
            diagnostics: Vec::new(),
        };
        let mut start = 0;
        for end in scan::statement_ends(text).into_iter().chain([text.len()]) {
            reader.statement(start, end);
            start = end + 1;
        }
        let SqlFileReader {
            mut definition,
            description,
            diagnostics,
            ..
        } = reader;
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        definition.description = description.join("\n");
        Ok(definition)
    }

    /// Writes the pipeline as a `.sql` file [`from_sql_file`](Self::from_sql_file)
    /// reads back to the same definition, except that `layout` is dropped,
    /// `source_line`/`source_column` are set, step SQL and description lines
    /// are trimmed, line breaks in param descriptions and param string
    /// values become spaces, and array or object param values and checks
    /// on steps that write no dataset do not read back.
    pub fn to_sql_file(&self) -> String {
        let mut header = description_directives(&self.description);
        header.extend(self.params.iter().map(param_directive));
        header.extend(policy_directives(&self.defaults));
        if let Some(max_parallel) = self.max_parallel {
            header.push(directive_line("max_parallel", &max_parallel.to_string()));
        }
        if let Some(schedule) = &self.schedule {
            header.push(schedule_directive(schedule));
        }
        header.extend(
            self.triggers
                .iter()
                .map(|trigger| directive_line("trigger", &directive_word(&trigger.dataset))),
        );
        if self.template {
            header.push(directive_line("template", ""));
        }

        let mut file = String::new();
        for line in &header {
            file.push_str(line);
            file.push('\n');
        }
        for step in &self.steps {
            if !file.is_empty() {
                file.push('\n');
            }
            let mut lines = description_directives(&step.description);
            lines.extend(policy_directives(&step.policy));
            if let Materialization::Incremental(incremental) = &step.materialization {
                lines.push(incremental_directive(incremental));
            }
            lines.extend(step.checks.iter().map(check_directive));
            for line in &lines {
                file.push_str(line);
                file.push('\n');
            }
            let head = match step.materialization {
                Materialization::Table => "CREATE OR REPLACE TABLE",
                Materialization::Incremental(_) => "CREATE TABLE",
                Materialization::View => "CREATE VIEW",
                Materialization::Ephemeral => "CREATE TEMPORARY VIEW",
            };
            file.push_str(&format!(
                "{head} {} AS\n{}",
                sql_name(&step.name),
                step.sql.trim()
            ));
            // A `;` after a trailing `--` comment would be part of the comment.
            let last_line = step.sql.trim().rsplit('\n').next().unwrap_or_default();
            file.push_str(if last_line.contains("--") {
                "\n;\n"
            } else {
                ";\n"
            });
        }
        file
    }
}

/// A `-- basin:` comment before a statement.
struct DirectiveLine<'a> {
    /// What follows `basin:`, trimmed.
    text: &'a str,
    /// Where its `--` is in the file.
    offset: usize,
    /// Whether no blank line separates it from what follows.
    attached: bool,
}

/// Reads the whitespace and comments of `start..end`: the directives among
/// them, and where the first other text (the statement) starts.
fn scan_leading(text: &str, start: usize, end: usize) -> (Vec<DirectiveLine<'_>>, usize) {
    let mut directives: Vec<DirectiveLine<'_>> = Vec::new();
    // What follows a `;` on its line is not a blank line.
    let mut line_has_content = start > 0 && text.as_bytes()[start - 1] != b'\n';
    for token in scan::tokens(&text[start..end]) {
        let at = start + token.start;
        match &token.kind {
            TokenKind::Newline => {
                if !line_has_content {
                    for directive in &mut directives {
                        directive.attached = false;
                    }
                }
                line_has_content = false;
            }
            TokenKind::Space => {}
            TokenKind::LineComment { prefix, .. } => {
                let comment = &text[at + prefix.len()..start + token.end];
                if prefix == "--"
                    && let Some(directive) = directive_text(comment)
                {
                    directives.push(DirectiveLine {
                        text: directive,
                        offset: at,
                        attached: true,
                    });
                }
                line_has_content = true;
            }
            TokenKind::BlockComment => line_has_content = true,
            _ => return (directives, at),
        }
    }
    (directives, end)
}

/// The directive in a `--` comment's text, if it is one.
fn directive_text(comment: &str) -> Option<&str> {
    let comment = comment.trim_start();
    let head = comment.get(..DIRECTIVE_PREFIX.len())?;
    head.eq_ignore_ascii_case(DIRECTIVE_PREFIX)
        .then_some(comment[DIRECTIVE_PREFIX.len()..].trim())
}

/// What a `CREATE` statement makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadKind {
    Table,
    View,
    TempView,
}

/// Reads `CREATE [OR REPLACE] [TEMP|TEMPORARY] TABLE|VIEW name AS` at the
/// start of `body`: the name, the kind and the offset after `AS`.
fn parse_head(body: &str) -> Option<(String, HeadKind, usize)> {
    let tokens = scan::tokens(body);
    let mut words = tokens.iter().filter(|t| !t.is_trivia());
    let mut next_word = || match words.next() {
        Some(SqlToken {
            kind: TokenKind::Word { value, quote },
            end,
            ..
        }) => Some((value.as_str(), *quote, *end)),
        _ => None,
    };
    /// The word, if it is the unquoted keyword `expected`.
    fn keyword<'t>(
        word: Option<(&'t str, Option<char>, usize)>,
        expected: &str,
    ) -> Option<(&'t str, Option<char>, usize)> {
        word.filter(|(value, quote, _)| quote.is_none() && value.eq_ignore_ascii_case(expected))
    }
    keyword(next_word(), "create")?;
    let mut word = next_word()?;
    if keyword(Some(word), "or").is_some() {
        keyword(next_word(), "replace")?;
        word = next_word()?;
    }
    let temporary =
        keyword(Some(word), "temp").is_some() || keyword(Some(word), "temporary").is_some();
    if temporary {
        word = next_word()?;
    }
    let kind = match (temporary, word) {
        (false, (value, None, _)) if value.eq_ignore_ascii_case("table") => HeadKind::Table,
        (false, (value, None, _)) if value.eq_ignore_ascii_case("view") => HeadKind::View,
        (true, (value, None, _)) if value.eq_ignore_ascii_case("view") => HeadKind::TempView,
        _ => return None,
    };
    let name = match next_word()? {
        (value, Some('"'), _) => value.to_owned(),
        (value, None, _) if is_identifier(value) => value.to_ascii_lowercase(),
        _ => return None,
    };
    let (_, _, after_as) = keyword(next_word(), "as")?;
    Some((name, kind, after_as))
}

/// `text` starts with `quote`: the text up to the closing quote, doubled
/// quotes standing for one, and the bytes used.
fn unquote(text: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut used = quote.len_utf8();
    loop {
        let rest = text.get(used..)?;
        let at = rest.find(quote)?;
        value.push_str(&rest[..at]);
        used += at + quote.len_utf8();
        if text[used..].starts_with(quote) {
            value.push(quote);
            used += quote.len_utf8();
        } else {
            return Some((value, used));
        }
    }
}

/// A parsed directive.
enum Directive {
    Description(String),
    Param(ParamSpec),
    Retries(u32),
    BackoffMs(u64),
    TimeoutSecs(u64),
    MaxParallel(u32),
    Schedule(Schedule),
    Trigger(Vec<String>),
    Template,
    Incremental(Incremental),
    Check(StepCheck),
}

impl Directive {
    /// Its spelling.
    fn kind(&self) -> &'static str {
        match self {
            Self::Description(_) => "description",
            Self::Param(_) => "param",
            Self::Retries(_) => "retries",
            Self::BackoffMs(_) => "backoff_ms",
            Self::TimeoutSecs(_) => "timeout_secs",
            Self::MaxParallel(_) => "max_parallel",
            Self::Schedule(_) => "schedule",
            Self::Trigger(_) => "trigger",
            Self::Template => "template",
            Self::Incremental(_) => "incremental",
            Self::Check(_) => "check",
        }
    }
}

/// Reads a directive (the text after `basin:`).
fn parse_directive(text: &str) -> Result<Directive, String> {
    let (kind, rest) = match text.split_once(char::is_whitespace) {
        Some((kind, rest)) => (kind, rest.trim()),
        None => (text, ""),
    };
    match kind.to_ascii_lowercase().as_str() {
        "description" => Ok(Directive::Description(rest.to_owned())),
        "param" => parse_param(rest).map(Directive::Param),
        "retries" => whole_number(rest, "retries").map(Directive::Retries),
        "backoff_ms" => whole_number(rest, "backoff_ms").map(Directive::BackoffMs),
        "timeout_secs" => whole_number(rest, "timeout_secs").map(Directive::TimeoutSecs),
        "max_parallel" => whole_number(rest, "max_parallel").map(Directive::MaxParallel),
        "schedule" => parse_schedule(rest).map(Directive::Schedule),
        "trigger" => parse_triggers(rest).map(Directive::Trigger),
        "template" if rest.is_empty() => Ok(Directive::Template),
        "template" => Err("`template` takes no arguments".to_owned()),
        "incremental" => parse_incremental(rest).map(Directive::Incremental),
        "check" => parse_check(rest).map(Directive::Check),
        _ => Err(format!(
            "unknown directive `{kind}`; directives are description, param, retries, backoff_ms, \
             timeout_secs, max_parallel, schedule, trigger, template, incremental and check"
        )),
    }
}

fn whole_number<T: std::str::FromStr>(text: &str, kind: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{kind}` takes a whole number, got `{text}`"))
}

fn parse_param(text: &str) -> Result<ParamSpec, String> {
    const USAGE: &str =
        "expected `param NAME TYPE [default VALUE] [allowed VALUE, …] [description TEXT]`";
    let mut args = Args::new(text);
    let name = args.text_arg(USAGE)?;
    let type_name = args.text_arg(USAGE)?;
    let lowercase = type_name.to_ascii_lowercase();
    let kind = PARAM_TYPES
        .into_iter()
        .find(|kind| param_type_name(*kind) == lowercase)
        .ok_or_else(|| {
            format!(
                "unknown param type `{type_name}`; types are string, integer, number, boolean, \
                 date, timestamp and identifier"
            )
        })?;
    let mut spec = ParamSpec {
        name,
        kind,
        default: None,
        description: String::new(),
        allowed: None,
    };
    while let Some(token) = args.token()? {
        match token {
            Token::Word(word) if word == "default" => spec.default = Some(args.literal(USAGE)?),
            Token::Word(word) if word == "allowed" => {
                let mut allowed = vec![args.literal(USAGE)?];
                while args.comma() {
                    allowed.push(args.literal(USAGE)?);
                }
                spec.allowed = Some(allowed);
            }
            Token::Word(word) if word == "description" => {
                spec.description = args.rest().to_owned();
            }
            other => return Err(format!("unexpected {}: {USAGE}", other.describe())),
        }
    }
    Ok(spec)
}

fn parse_schedule(text: &str) -> Result<Schedule, String> {
    const USAGE: &str =
        "expected `schedule \"CRON\" [timezone ZONE] [missed skip|run_once] [disabled]`";
    let mut args = Args::new(text);
    let mut schedule = Schedule {
        cron: args.text_arg(USAGE)?,
        timezone: utc(),
        missed: MissedRuns::Skip,
        enabled: true,
    };
    while let Some(token) = args.token()? {
        match token {
            Token::Word(word) if word == "timezone" => schedule.timezone = args.text_arg(USAGE)?,
            Token::Word(word) if word == "missed" => {
                schedule.missed = match args.text_arg(USAGE)?.as_str() {
                    "skip" => MissedRuns::Skip,
                    "run_once" => MissedRuns::RunOnce,
                    other => {
                        return Err(format!(
                            "unknown missed-run policy `{other}`; use skip or run_once"
                        ));
                    }
                }
            }
            Token::Word(word) if word == "disabled" => schedule.enabled = false,
            Token::Word(word) if word == "enabled" => schedule.enabled = true,
            other => return Err(format!("unexpected {}: {USAGE}", other.describe())),
        }
    }
    Ok(schedule)
}

fn parse_triggers(text: &str) -> Result<Vec<String>, String> {
    const USAGE: &str = "expected `trigger DATASET`";
    let mut args = Args::new(text);
    let mut datasets = vec![args.text_arg(USAGE)?];
    while args.comma() {
        datasets.push(args.text_arg(USAGE)?);
    }
    args.end(USAGE)?;
    Ok(datasets)
}

fn parse_incremental(text: &str) -> Result<Incremental, String> {
    const USAGE: &str =
        "expected `incremental append cursor COLUMN` or `incremental merge unique_key COLUMN, …`";
    let mut args = Args::new(text);
    let strategy = args.text_arg(USAGE)?;
    let key = args.text_arg(USAGE)?;
    let incremental = match (strategy.as_str(), key.as_str()) {
        ("append", "cursor") => Incremental::Append {
            cursor: args.text_arg(USAGE)?,
        },
        ("merge", "unique_key") => {
            let mut unique_key = vec![args.text_arg(USAGE)?];
            while args.comma() {
                unique_key.push(args.text_arg(USAGE)?);
            }
            Incremental::Merge { unique_key }
        }
        _ => return Err(USAGE.to_owned()),
    };
    args.end(USAGE)?;
    Ok(incremental)
}

fn parse_check(text: &str) -> Result<StepCheck, String> {
    const USAGE: &str = "expected `check {JSON}`, one line of JSON such as \
         {\"name\": \"ids_present\", \"type\": \"not_null\", \"column\": \"id\"}";
    if text.is_empty() {
        return Err(USAGE.to_owned());
    }
    serde_json::from_str(text).map_err(|e| format!("invalid check: {e}; {USAGE}"))
}

/// A token of a directive's arguments.
enum Token {
    /// Text up to whitespace, a comma or a quote.
    Word(String),
    /// `'text'`.
    Quoted(String),
    /// `"text"`.
    Ident(String),
    /// `,`.
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Word(word) => format!("`{word}`"),
            Self::Quoted(text) => format!("'{text}'"),
            Self::Ident(text) => format!("\"{text}\""),
            Self::Comma => "`,`".to_owned(),
        }
    }
}

/// A directive's arguments, read a token at a time.
struct Args<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Args<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    /// The next token, if any.
    fn token(&mut self) -> Result<Option<Token>, String> {
        self.skip_space();
        let text = self.text;
        let rest = &text[self.at..];
        let Some(first) = rest.chars().next() else {
            return Ok(None);
        };
        let token = match first {
            ',' => {
                self.at += 1;
                Token::Comma
            }
            '\'' | '"' => {
                let (value, used) =
                    unquote(rest, first).ok_or_else(|| format!("unterminated {first}…{first}"))?;
                self.at += used;
                if first == '\'' {
                    Token::Quoted(value)
                } else {
                    Token::Ident(value)
                }
            }
            _ => {
                let length = rest
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | '\'' | '"'))
                    .unwrap_or(rest.len());
                self.at += length;
                Token::Word(rest[..length].to_owned())
            }
        };
        Ok(Some(token))
    }

    /// Whether a comma comes next; reads it if so.
    fn comma(&mut self) -> bool {
        self.skip_space();
        if self.text[self.at..].starts_with(',') {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Everything left, trimmed.
    fn rest(&mut self) -> &'a str {
        let text = self.text;
        let rest = text[self.at..].trim();
        self.at = text.len();
        rest
    }

    /// A name or other text: a word or a quoted string.
    fn text_arg(&mut self, usage: &str) -> Result<String, String> {
        match self.token()? {
            Some(Token::Word(text) | Token::Quoted(text) | Token::Ident(text)) => Ok(text),
            Some(Token::Comma) | None => Err(usage.to_owned()),
        }
    }

    /// A value: `'text'`, a number, `true`, `false` or `null`.
    fn literal(&mut self, usage: &str) -> Result<Value, String> {
        match self.token()? {
            Some(Token::Quoted(text)) => Ok(Value::String(text)),
            Some(Token::Word(word)) => literal_word(&word).ok_or_else(|| {
                format!("`{word}` is not a value: write 'text', a number, true, false or null")
            }),
            Some(other) => Err(format!(
                "expected a value ('text', a number, true, false or null), found {}",
                other.describe()
            )),
            None => Err(usage.to_owned()),
        }
    }

    /// Fails unless nothing is left.
    fn end(&mut self, usage: &str) -> Result<(), String> {
        match self.token()? {
            None => Ok(()),
            Some(token) => Err(format!("unexpected {}: {usage}", token.describe())),
        }
    }
}

/// An unquoted value: `true`, `false`, `null` or a number.
fn literal_word(word: &str) -> Option<Value> {
    match word.to_ascii_lowercase().as_str() {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(number) = word.parse::<i64>() {
        return Some(Value::from(number));
    }
    if let Ok(number) = word.parse::<u64>() {
        return Some(Value::from(number));
    }
    // `inf` and `nan` parse as floats but are no JSON numbers.
    word.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

/// Reads a `.sql` file statement by statement.
struct SqlFileReader<'a> {
    text: &'a str,
    definition: PipelineDefinition,
    /// The pipeline's description lines.
    description: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

/// A step being read, with what its directives add.
struct PendingStep {
    step: Step,
    kind: HeadKind,
    description: Vec<String>,
}

impl SqlFileReader<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_column(self.text, offset);
        let mut diagnostic = Diagnostic::error(None, "invalid_definition", message);
        diagnostic.line = Some(line);
        diagnostic.column = Some(column);
        self.diagnostics.push(diagnostic);
    }

    /// The statement ending at `end` (its `;` or the end of the file) and
    /// the comments before it, from `start`.
    fn statement(&mut self, start: usize, end: usize) {
        let text = self.text;
        let (directives, body_start) = scan_leading(text, start, end);
        let body = text[body_start..end].trim_end();
        let has_body = !body.is_empty();
        let mut pending = if has_body {
            self.step(body_start, body)
        } else {
            None
        };
        for line in &directives {
            let directive = match parse_directive(line.text) {
                Ok(directive) => directive,
                Err(message) => {
                    self.error(line.offset, message);
                    continue;
                }
            };
            if line.attached && has_body {
                self.step_directive(directive, line.offset, pending.as_mut());
            } else {
                self.pipeline_directive(directive, line.offset);
            }
        }
        if let Some(PendingStep {
            mut step,
            description,
            ..
        }) = pending
        {
            step.description = description.join("\n");
            self.definition.steps.push(step);
        }
    }

    /// The step a statement defines, or `None` (and a diagnostic) when it
    /// is not a step.
    fn step(&mut self, body_start: usize, body: &str) -> Option<PendingStep> {
        let Some((name, kind, after_as)) = parse_head(body) else {
            self.error(
                body_start,
                "expected `CREATE [OR REPLACE] [TEMP|TEMPORARY] TABLE|VIEW name AS SELECT …`: \
                 each statement of a pipeline file is one step",
            );
            return None;
        };
        let rest = &body[after_as..];
        let sql = rest.trim();
        if sql.is_empty() {
            self.error(body_start, format!("step `{name}` has no query after AS"));
            return None;
        }
        let sql_start = body_start + after_as + (rest.len() - rest.trim_start().len());
        let (line, column) = line_column(self.text, sql_start);
        let materialization = match kind {
            HeadKind::Table => Materialization::Table,
            HeadKind::View => Materialization::View,
            HeadKind::TempView => Materialization::Ephemeral,
        };
        Some(PendingStep {
            step: Step {
                name,
                sql: sql.to_owned(),
                materialization,
                description: String::new(),
                policy: StepPolicy::default(),
                source_line: Some(line),
                source_column: Some(column),
                checks: Vec::new(),
            },
            kind,
            description: Vec::new(),
        })
    }

    /// Applies a directive directly above a statement; `pending` is `None`
    /// when the statement is no step (its step directives are then dropped).
    fn step_directive(
        &mut self,
        directive: Directive,
        offset: usize,
        pending: Option<&mut PendingStep>,
    ) {
        let kind = directive.kind();
        let fresh =
            match directive {
                Directive::Description(text) => {
                    if let Some(pending) = pending {
                        pending.description.push(text);
                    }
                    true
                }
                Directive::Retries(retries) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.retries, retries)),
                Directive::BackoffMs(backoff) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.backoff_ms, backoff)),
                Directive::TimeoutSecs(timeout) => pending
                    .is_none_or(|pending| set_once(&mut pending.step.policy.timeout_secs, timeout)),
                Directive::Incremental(incremental) => {
                    let Some(pending) = pending else { return };
                    if pending.kind != HeadKind::Table {
                        self.error(
                            offset,
                            "an incremental step writes a dataset: define it with CREATE TABLE",
                        );
                        return;
                    }
                    if matches!(
                        pending.step.materialization,
                        Materialization::Incremental(_)
                    ) {
                        false
                    } else {
                        pending.step.materialization = Materialization::Incremental(incremental);
                        true
                    }
                }
                Directive::Check(check) => {
                    let Some(pending) = pending else { return };
                    if pending.kind != HeadKind::Table {
                        self.error(
                            offset,
                            "a check runs on the dataset a step writes: \
                         define the step with CREATE TABLE",
                        );
                        return;
                    }
                    let name = &check.check.name;
                    if pending.step.checks.iter().any(|c| c.check.name == *name) {
                        self.error(
                            offset,
                            format!("check `{name}` is given twice for this step"),
                        );
                        return;
                    }
                    pending.step.checks.push(check);
                    true
                }
                other => {
                    self.pipeline_directive(other, offset);
                    return;
                }
            };
        if !fresh {
            self.error(offset, format!("`{kind}` is given twice for this step"));
        }
    }

    /// Applies a directive that is the pipeline's.
    fn pipeline_directive(&mut self, directive: Directive, offset: usize) {
        let kind = directive.kind();
        let definition = &mut self.definition;
        let fresh = match directive {
            Directive::Description(text) => {
                self.description.push(text);
                true
            }
            Directive::Param(spec) => {
                definition.params.push(spec);
                true
            }
            Directive::Retries(retries) => set_once(&mut definition.defaults.retries, retries),
            Directive::BackoffMs(backoff) => set_once(&mut definition.defaults.backoff_ms, backoff),
            Directive::TimeoutSecs(timeout) => {
                set_once(&mut definition.defaults.timeout_secs, timeout)
            }
            Directive::MaxParallel(max) => set_once(&mut definition.max_parallel, max),
            Directive::Schedule(schedule) => set_once(&mut definition.schedule, schedule),
            Directive::Trigger(datasets) => {
                definition
                    .triggers
                    .extend(datasets.into_iter().map(|dataset| Trigger { dataset }));
                true
            }
            Directive::Template => {
                definition.template = true;
                true
            }
            Directive::Incremental(_) | Directive::Check(_) => {
                self.error(
                    offset,
                    format!(
                        "`{kind}` belongs directly above its CREATE TABLE statement, \
                         with no blank line between"
                    ),
                );
                return;
            }
        };
        if !fresh {
            self.error(offset, format!("`{kind}` is given twice for the pipeline"));
        }
    }
}

/// Sets `slot` unless it is set already; false when it was.
fn set_once<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

/// `-- basin: KIND ARGS`.
fn directive_line(kind: &str, args: &str) -> String {
    if args.is_empty() {
        format!("-- basin: {kind}")
    } else {
        format!("-- basin: {kind} {args}")
    }
}

/// One `description` directive per line of `description`.
fn description_directives(description: &str) -> Vec<String> {
    if description.is_empty() {
        return Vec::new();
    }
    description
        .split('\n')
        .map(|line| directive_line("description", line.trim()))
        .collect()
}

fn policy_directives(policy: &StepPolicy) -> Vec<String> {
    [
        ("retries", policy.retries.map(u64::from)),
        ("backoff_ms", policy.backoff_ms),
        ("timeout_secs", policy.timeout_secs),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.map(|value| directive_line(kind, &value.to_string())))
    .collect()
}

fn param_directive(spec: &ParamSpec) -> String {
    let mut args = format!(
        "{} {}",
        directive_word(&spec.name),
        param_type_name(spec.kind)
    );
    if let Some(default) = &spec.default {
        args.push_str(" default ");
        args.push_str(&literal_text(default));
    }
    if let Some(allowed) = spec.allowed.as_ref().filter(|allowed| !allowed.is_empty()) {
        args.push_str(" allowed ");
        args.push_str(
            &allowed
                .iter()
                .map(literal_text)
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    if !spec.description.is_empty() {
        args.push_str(" description ");
        args.push_str(&one_line(&spec.description));
    }
    directive_line("param", &args)
}

fn schedule_directive(schedule: &Schedule) -> String {
    let mut args = format!(
        "{} timezone {}",
        quote_ident(&schedule.cron),
        directive_word(&schedule.timezone)
    );
    if schedule.missed == MissedRuns::RunOnce {
        args.push_str(" missed run_once");
    }
    if !schedule.enabled {
        args.push_str(" disabled");
    }
    directive_line("schedule", &args)
}

fn incremental_directive(incremental: &Incremental) -> String {
    let args = match incremental {
        Incremental::Append { cursor } => format!("append cursor {}", directive_word(cursor)),
        Incremental::Merge { unique_key } => format!(
            "merge unique_key {}",
            unique_key
                .iter()
                .map(String::as_str)
                .map(directive_word)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    directive_line("incremental", &args)
}

fn check_directive(check: &StepCheck) -> String {
    // Compact JSON is one line, as a directive must be. Serializing a derived
    // type with string keys does not fail.
    directive_line("check", &serde_json::to_string(check).unwrap_or_default())
}

fn param_type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Number => "number",
        ParamType::Boolean => "boolean",
        ParamType::Date => "date",
        ParamType::Timestamp => "timestamp",
        ParamType::Identifier => "identifier",
    }
}

/// A value as a directive writes it.
fn literal_text(value: &Value) -> String {
    match value {
        Value::String(text) => basin_sql::quote_literal(&one_line(text)),
        other => other.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// A name as a directive argument: bare when it is one word, else double-quoted.
fn directive_word(name: &str) -> String {
    let bare = !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '\'' | '"'));
    if bare {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// A step name in a `CREATE` statement: bare when SQL would not fold it.
fn sql_name(name: &str) -> String {
    if is_identifier(name) && !name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

// ---------------------------------------------------------------------------
// Visual form

/// Horizontal distance between columns of automatically placed nodes.
const COLUMN_WIDTH: f64 = 280.0;
/// Vertical distance between rows of automatically placed nodes.
const ROW_HEIGHT: f64 = 120.0;

impl PipelineDefinition {
    /// The visual form: one `step` node per step, at its `layout` position
    /// or else placed automatically (a column per dependency depth), one
    /// `source` node per edge origin that is not a step (in the first
    /// column), and `edges` (upstream, downstream) as given.
    pub fn to_visual(&self, edges: &[(String, String)]) -> VisualDefinition {
        let is_step = |name: &str| self.steps.iter().any(|step| step.name == name);
        let mut sources: Vec<&str> = Vec::new();
        for (from, _) in edges {
            if !is_step(from.as_str()) && !sources.contains(&from.as_str()) {
                sources.push(from);
            }
        }
        let first_step_column = usize::from(!sources.is_empty());
        let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
        let mut place = |column: usize| {
            let row = rows.entry(column).or_insert(0);
            let position = Position {
                x: COLUMN_WIDTH * column as f64,
                y: ROW_HEIGHT * *row as f64,
            };
            *row += 1;
            position
        };

        let mut nodes = Vec::with_capacity(self.steps.len() + sources.len());
        for (step, depth) in self.steps.iter().zip(step_depths(&self.steps, edges)) {
            let position = match self.layout.get(&step.name) {
                Some(position) => *position,
                None => place(first_step_column + depth),
            };
            nodes.push(VisualNode {
                id: step.name.clone(),
                kind: VisualNodeKind::Step,
                position,
                step: Some(step.clone()),
            });
        }
        for source in sources {
            nodes.push(VisualNode {
                id: source.to_owned(),
                kind: VisualNodeKind::Source,
                position: place(0),
                step: None,
            });
        }

        VisualDefinition {
            description: self.description.clone(),
            params: self.params.clone(),
            nodes,
            edges: edges
                .iter()
                .map(|(from, to)| VisualEdge {
                    from: from.clone(),
                    to: to.clone(),
                })
                .collect(),
            defaults: self.defaults,
            max_parallel: self.max_parallel,
            schedule: self.schedule.clone(),
            triggers: self.triggers.clone(),
            template: self.template,
        }
    }

    /// The definition a visual form describes: the steps of its `step`
    /// nodes in node order, each node's position as the step's `layout`.
    /// A step node must carry a step of its own name and a source node none
    /// (`invalid_definition`). Edges are not read: the caller checks them
    /// against the edges the SQL implies.
    pub fn from_visual(visual: VisualDefinition) -> Result<PipelineDefinition, Vec<Diagnostic>> {
        let mut steps = Vec::new();
        let mut layout = BTreeMap::new();
        let mut problems = Vec::new();
        for node in visual.nodes {
            let id = node.id;
            match (node.kind, node.step) {
                (VisualNodeKind::Step, Some(step)) if step.name == id => {
                    layout.insert(id, node.position);
                    steps.push(step);
                }
                (VisualNodeKind::Step, Some(step)) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!(
                        "node `{id}` carries step `{}`: a step node's id is its step's name",
                        step.name
                    ),
                )),
                (VisualNodeKind::Step, None) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!("step node `{id}` carries no step"),
                )),
                (VisualNodeKind::Source, Some(_)) => problems.push(Diagnostic::error(
                    Some(id.as_str()),
                    "invalid_definition",
                    format!("source node `{id}` carries a step; only step nodes do"),
                )),
                (VisualNodeKind::Source, None) => {}
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(PipelineDefinition {
            description: visual.description,
            params: visual.params,
            steps,
            defaults: visual.defaults,
            max_parallel: visual.max_parallel,
            schedule: visual.schedule,
            triggers: visual.triggers,
            template: visual.template,
            layout,
        })
    }
}

/// Each step's depth: the longest chain of `edges` leading to it, bounded
/// by the number of steps (so a cycle cannot loop forever).
fn step_depths(steps: &[Step], edges: &[(String, String)]) -> Vec<usize> {
    let index = |name: &str| steps.iter().position(|step| step.name == name);
    let links: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|(from, to)| Some((index(from.as_str())?, index(to.as_str())?)))
        .collect();
    let mut depths = vec![0; steps.len()];
    for _ in 0..steps.len() {
        let mut changed = false;
        for &(from, to) in &links {
            if depths[to] <= depths[from] && depths[from] < steps.len() {
                depths[to] = depths[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depths
}

#[cfg(test)]
mod quoting_tests {
    use super::*;

    #[test]
    fn placeholders_inside_quotes_are_refused() {
        let specs = vec![ParamSpec {
            name: "s".into(),
            kind: ParamType::String,
            default: None,
            description: String::new(),
            allowed: None,
        }];
        let values = BTreeMap::from([("s".to_owned(), Value::from("x OR 1=1 --"))]);
        assert!(render_sql("SELECT '{{ s }}'", &specs, &values).is_err());
        assert!(render_sql("SELECT \"{{ s }}\"", &specs, &values).is_err());
        assert_eq!(
            render_sql("SELECT 'a''b', {{ s }} -- 'x\n", &specs, &values).unwrap(),
            "SELECT 'a''b', 'x OR 1=1 --' -- 'x\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(name: &str, sql: &str) -> Step {
        Step {
            name: name.into(),
            sql: sql.into(),
            materialization: Materialization::Table,
            description: String::new(),
            policy: StepPolicy::default(),
            source_line: None,
            source_column: None,
            checks: Vec::new(),
        }
    }

    fn not_null(name: &str, column: &str, blocking: bool) -> StepCheck {
        StepCheck {
            check: serde_json::from_value(
                json!({ "name": name, "type": "not_null", "column": column }),
            )
            .unwrap(),
            blocking,
        }
    }

    fn param(name: &str, kind: ParamType, default: Option<Value>) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind,
            default,
            description: String::new(),
            allowed: None,
        }
    }

    fn pipeline(params: Vec<ParamSpec>, steps: Vec<Step>) -> PipelineDefinition {
        PipelineDefinition {
            description: String::new(),
            params,
            steps,
            defaults: StepPolicy::default(),
            max_parallel: None,
            schedule: None,
            triggers: Vec::new(),
            template: false,
            layout: BTreeMap::new(),
        }
    }

    fn codes(diagnostics: &[Diagnostic]) -> Vec<&str> {
        diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    fn clear_positions(definition: &mut PipelineDefinition) {
        for step in &mut definition.steps {
            step.source_line = None;
            step.source_column = None;
        }
    }

    /// A definition using every feature the `.sql` format can hold.
    fn full_definition() -> PipelineDefinition {
        PipelineDefinition {
            description: "Daily sales\nfrom raw orders".into(),
            params: vec![
                ParamSpec {
                    description: "The day to load".into(),
                    ..param("day", ParamType::Date, Some(json!("2024-01-01")))
                },
                ParamSpec {
                    allowed: Some(vec![json!("eu"), json!("it's")]),
                    ..param("region", ParamType::String, None)
                },
                param("lag", ParamType::Integer, Some(json!(-5))),
                param("ratio", ParamType::Number, Some(json!(0.5))),
                param("full", ParamType::Boolean, Some(json!(true))),
                param("since", ParamType::Timestamp, None),
                param("col", ParamType::Identifier, Some(json!("amount"))),
            ],
            steps: vec![
                Step {
                    materialization: Materialization::Incremental(Incremental::Append {
                        cursor: "updated_at".into(),
                    }),
                    description: "Cleaned orders".into(),
                    policy: StepPolicy {
                        retries: Some(3),
                        backoff_ms: Some(250),
                        timeout_secs: None,
                    },
                    checks: vec![
                        not_null("ids_present", "id", true),
                        not_null("days_present", "day", false),
                    ],
                    ..step(
                        "orders_clean",
                        "SELECT * FROM raw_orders\nWHERE day = {{ day }} AND note <> 'a;b' -- trailing; comment",
                    )
                },
                Step {
                    materialization: Materialization::Incremental(Incremental::Merge {
                        unique_key: vec!["id".into(), "day".into()],
                    }),
                    ..step(
                        "orders_daily",
                        "SELECT id, day, count(*) AS n\nFROM orders_clean\nGROUP BY id, day",
                    )
                },
                Step {
                    materialization: Materialization::View,
                    description: "Per day\nand more".into(),
                    ..step("summary", "SELECT * FROM orders_daily /* a ; comment */")
                },
                Step {
                    materialization: Materialization::Ephemeral,
                    policy: StepPolicy {
                        retries: None,
                        backoff_ms: None,
                        timeout_secs: Some(30),
                    },
                    ..step("helper", "WITH x AS (SELECT 1 AS \"a;b\") SELECT * FROM x")
                },
                Step {
                    checks: vec![not_null("total_present", "total", true)],
                    ..step("totals", "SELECT sum(n) AS total FROM summary")
                },
            ],
            defaults: StepPolicy {
                retries: Some(2),
                backoff_ms: Some(500),
                timeout_secs: Some(60),
            },
            max_parallel: Some(4),
            schedule: Some(Schedule {
                cron: "0 6 * * *".into(),
                timezone: "Europe/Berlin".into(),
                missed: MissedRuns::RunOnce,
                enabled: false,
            }),
            triggers: vec![
                Trigger {
                    dataset: "raw_orders".into(),
                },
                Trigger {
                    dataset: "raw_customers".into(),
                },
            ],
            template: true,
            layout: BTreeMap::new(),
        }
    }

    #[test]
    fn a_sound_definition_has_no_shape_problems() {
        assert_eq!(full_definition().check_shape(), Vec::new());
    }

    #[test]
    fn shape_problems_are_all_reported() {
        let mut definition = pipeline(
            vec![
                param("p", ParamType::Integer, Some(json!("x"))),
                param("p", ParamType::String, None),
                param("1x", ParamType::String, None),
            ],
            vec![
                step("Bad Name", "SELECT 1"),
                step("a", "SELECT 1"),
                step("a", "  "),
                Step {
                    materialization: Materialization::Incremental(Incremental::Append {
                        cursor: " ".into(),
                    }),
                    policy: StepPolicy {
                        timeout_secs: Some(0),
                        ..StepPolicy::default()
                    },
                    ..step("b", "SELECT {{ p }}")
                },
                step("c", "SELECT 1\nWHERE {{ nope }}"),
            ],
        );
        definition
            .layout
            .insert("ghost".into(), Position { x: 0.0, y: 0.0 });
        definition.max_parallel = Some(0);
        let found = definition.check_shape();
        let codes = codes(&found);
        for code in [
            "invalid_param",
            "invalid_name",
            "duplicate_step",
            "invalid_definition",
            "unknown_param",
        ] {
            assert!(codes.contains(&code), "{code} missing from {found:?}");
        }
        // Default of the wrong type, duplicate name, name not an identifier.
        assert_eq!(codes.iter().filter(|c| **c == "invalid_param").count(), 3);
        let unknown = found.iter().find(|d| d.code == "unknown_param").unwrap();
        assert_eq!(unknown.step.as_deref(), Some("c"));
        assert_eq!((unknown.line, unknown.column), (Some(2), Some(7)));
        for needle in ["no SQL", "cursor", "timeout_secs", "ghost", "max_parallel"] {
            assert!(
                found.iter().any(|d| d.message.contains(needle)),
                "nothing about {needle} in {found:?}"
            );
        }
    }

    #[test]
    fn templates_need_params() {
        let mut definition = pipeline(Vec::new(), vec![step("a", "SELECT 1")]);
        definition.template = true;
        assert_eq!(codes(&definition.check_shape()), ["invalid_definition"]);
    }

    #[test]
    fn unknown_params_point_into_the_file() {
        let definition = pipeline(
            Vec::new(),
            vec![Step {
                source_line: Some(10),
                source_column: Some(5),
                ..step("a", "SELECT {{ x }}")
            }],
        );
        let found = definition.check_shape();
        assert_eq!(codes(&found), ["unknown_param"]);
        assert_eq!((found[0].line, found[0].column), (Some(10), Some(12)));
    }

    #[test]
    fn placeholders_are_found_with_positions() {
        let sql = "SELECT {{a}}, {{  b_2 }}\n  , '{{ not a name }}', {{c}";
        let found = placeholders(sql);
        assert_eq!(
            found,
            [
                Placeholder {
                    name: "a".into(),
                    start: 7,
                    end: 12,
                    line: 1,
                    column: 8,
                },
                Placeholder {
                    name: "b_2".into(),
                    start: 14,
                    end: 24,
                    line: 1,
                    column: 15,
                },
            ]
        );
        assert_eq!(&sql[found[1].start..found[1].end], "{{  b_2 }}");
        let on_second_line = placeholders("SELECT\n  é, {{ x }}");
        assert_eq!((on_second_line[0].line, on_second_line[0].column), (2, 6));
    }

    #[test]
    fn params_resolve_to_given_values_and_defaults() {
        let specs = [
            param("day", ParamType::Date, Some(json!("2024-01-01"))),
            param("n", ParamType::Integer, None),
        ];
        let given = json!({ "n": 7 }).as_object().cloned().unwrap();
        let values = resolve_params(&specs, &given).unwrap();
        assert_eq!(values["day"], json!("2024-01-01"));
        assert_eq!(values["n"], json!(7));
    }

    #[test]
    fn bad_params_are_refused_with_reasons() {
        let specs = [
            param("n", ParamType::Integer, None),
            ParamSpec {
                allowed: Some(vec![json!("eu"), json!("us")]),
                ..param("region", ParamType::String, Some(json!("eu")))
            },
        ];
        let refuse = |given: Value| {
            let given = given.as_object().cloned().unwrap();
            match resolve_params(&specs, &given) {
                Err(Error::InvalidInput(message)) => message,
                other => panic!("expected invalid input, got {other:?}"),
            }
        };
        let message = refuse(json!({ "n": 1, "zone": "x" }));
        assert!(
            message.contains("`zone`") && message.contains("`region`"),
            "{message}"
        );
        assert_eq!(refuse(json!({})), "param `n` is required");
        let message = refuse(json!({ "n": 1.5 }));
        assert!(
            message.contains("`n`") && message.contains("an integer"),
            "{message}"
        );
        let message = refuse(json!({ "n": 1, "region": "mars" }));
        assert!(message.contains("one of"), "{message}");

        for (kind, bad, good) in [
            (ParamType::String, json!(1), json!("x")),
            (ParamType::Number, json!("1"), json!(1.5)),
            (ParamType::Boolean, json!(1), json!(false)),
            (ParamType::Date, json!("2024-02-30"), json!("2024-02-29")),
            (
                ParamType::Timestamp,
                json!("2024-01-31 10:00"),
                json!("2024-01-31T10:00:00+01:00"),
            ),
            (ParamType::Identifier, json!("a b"), json!("_a1")),
        ] {
            let specs = [param("v", kind, None)];
            let given = |value: &Value| json!({ "v": value }).as_object().cloned().unwrap();
            assert!(
                resolve_params(&specs, &given(&bad)).is_err(),
                "{kind:?} {bad}"
            );
            assert!(
                resolve_params(&specs, &given(&good)).is_ok(),
                "{kind:?} {good}"
            );
        }
    }

    #[test]
    fn values_render_as_typed_literals() {
        let specs = [
            param("s", ParamType::String, None),
            param("i", ParamType::Integer, None),
            param("neg", ParamType::Integer, None),
            param("f", ParamType::Number, None),
            param("b", ParamType::Boolean, None),
            param("d", ParamType::Date, None),
            param("t", ParamType::Timestamp, None),
            param("c", ParamType::Identifier, None),
        ];
        let values: BTreeMap<String, Value> = [
            ("s", json!("it's")),
            ("i", json!(42)),
            ("neg", json!(-3)),
            ("f", json!(2.5)),
            ("b", json!(true)),
            ("d", json!("2024-01-31")),
            ("t", json!("2024-01-31T11:00:00+01:00")),
            ("c", json!("amount")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
        let sql = "SELECT {{s}}, {{ i }}, x-{{neg}}, {{f}}, {{b}}, {{d}}, {{t}}, {{c}}";
        assert_eq!(
            render_sql(sql, &specs, &values).unwrap(),
            "SELECT 'it''s', 42, x-(-3), 2.5, TRUE, DATE '2024-01-31', \
             TIMESTAMP '2024-01-31T10:00:00Z', \"amount\""
        );
    }

    #[test]
    fn injection_renders_as_one_harmless_literal() {
        let specs = [param("name", ParamType::String, None)];
        let values = BTreeMap::from([("name".to_owned(), json!("x'; DROP TABLE t; --"))]);
        let rendered =
            render_sql("SELECT * FROM t WHERE name = {{ name }}", &specs, &values).unwrap();
        assert_eq!(
            rendered,
            "SELECT * FROM t WHERE name = 'x''; DROP TABLE t; --'"
        );
        // Parsed, it is still one statement comparing with one string.
        let statements = datafusion::sql::parser::DFParser::parse_sql(&rendered).unwrap();
        assert_eq!(statements.len(), 1);
        assert!(
            statements[0]
                .to_string()
                .contains("'x''; DROP TABLE t; --'")
        );

        // An identifier cannot smuggle a quote either.
        let specs = [param("col", ParamType::Identifier, None)];
        let values = BTreeMap::from([("col".to_owned(), json!("a\" FROM secrets --"))]);
        assert!(render_sql("SELECT {{ col }} FROM t", &specs, &values).is_err());
    }

    #[test]
    fn unknown_placeholders_do_not_render() {
        let err = render_sql("SELECT {{ x }}", &[], &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
    }

    #[test]
    fn validation_values_use_defaults_or_representatives() {
        let specs = [
            param("d", ParamType::Date, Some(json!("2024-05-01"))),
            param("s", ParamType::String, None),
            param("i", ParamType::Integer, None),
            param("b", ParamType::Boolean, None),
            param("t", ParamType::Timestamp, None),
            param("col", ParamType::Identifier, None),
        ];
        let values = placeholder_values_for_validation(&specs);
        assert_eq!(values["d"], json!("2024-05-01"));
        assert_eq!(values["s"], json!(""));
        assert_eq!(values["i"], json!(0));
        assert_eq!(values["b"], json!(false));
        assert_eq!(values["t"], json!("1970-01-01T00:00:00Z"));
        assert_eq!(values["col"], json!("col"));
        let sql = "SELECT {{ s }}, {{ i }}, {{ b }}, {{ d }}, {{ t }}, {{ col }}";
        render_sql(sql, &specs, &values).unwrap();
    }

    #[test]
    fn instantiating_renders_every_step() {
        let mut template = pipeline(
            vec![param("day", ParamType::Date, None)],
            vec![
                step("a", "SELECT * FROM raw WHERE day = {{ day }}"),
                step("b", "SELECT * FROM a"),
            ],
        );
        template.template = true;
        let values = BTreeMap::from([("day".to_owned(), json!("2024-01-31"))]);
        let instance = template.instantiate(&values).unwrap();
        assert!(!instance.template);
        assert!(instance.params.is_empty());
        assert_eq!(
            instance.steps[0].sql,
            "SELECT * FROM raw WHERE day = DATE '2024-01-31'"
        );
        assert_eq!(instance.steps[1].sql, "SELECT * FROM a");
        assert!(template.instantiate(&BTreeMap::new()).is_err());
    }

    #[test]
    fn content_hash_follows_content() {
        let a = full_definition();
        let hash = a.content_hash();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash, full_definition().content_hash());
        let mut b = full_definition();
        b.steps[4].sql.push(' ');
        assert_ne!(hash, b.content_hash());
    }

    #[test]
    fn sql_files_read_steps_and_directives() {
        let file = "\
-- basin: description Daily sales from raw orders
-- basin: param day date default '2024-01-01'
-- basin: param region string
-- basin: retries 2
-- basin: schedule \"0 6 * * *\" timezone Europe/Berlin missed run_once
-- basin: trigger raw_orders

-- a plain comment
-- basin: retries 3
-- basin: incremental append cursor updated_at
CREATE OR REPLACE TABLE orders_clean AS
SELECT * FROM raw_orders WHERE region = {{ region }};

-- basin: incremental merge unique_key id, day
create table \"Daily\" as select 1;
CREATE VIEW v AS SELECT 'x;y' AS s;
CREATE  TEMP
  VIEW e AS   SELECT 2
";
        let definition = PipelineDefinition::from_sql_file(file).unwrap();
        assert_eq!(definition.description, "Daily sales from raw orders");
        assert_eq!(definition.params.len(), 2);
        assert_eq!(definition.params[0].default, Some(json!("2024-01-01")));
        assert_eq!(definition.params[1].kind, ParamType::String);
        assert_eq!(definition.params[1].default, None);
        assert_eq!(definition.defaults.retries, Some(2));
        let schedule = definition.schedule.as_ref().unwrap();
        assert_eq!(schedule.cron, "0 6 * * *");
        assert_eq!(schedule.timezone, "Europe/Berlin");
        assert_eq!(schedule.missed, MissedRuns::RunOnce);
        assert!(schedule.enabled);
        assert_eq!(definition.triggers[0].dataset, "raw_orders");

        let steps = &definition.steps;
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["orders_clean", "Daily", "v", "e"]);

        assert_eq!(
            steps[0].sql,
            "SELECT * FROM raw_orders WHERE region = {{ region }}"
        );
        assert_eq!(steps[0].policy.retries, Some(3));
        assert_eq!(
            steps[0].materialization,
            Materialization::Incremental(Incremental::Append {
                cursor: "updated_at".into()
            })
        );
        assert_eq!(
            (steps[0].source_line, steps[0].source_column),
            (Some(12), Some(1))
        );

        assert_eq!(steps[1].sql, "select 1");
        assert_eq!(
            steps[1].materialization,
            Materialization::Incremental(Incremental::Merge {
                unique_key: vec!["id".into(), "day".into()]
            })
        );
        assert_eq!(
            (steps[1].source_line, steps[1].source_column),
            (Some(15), Some(25))
        );

        assert_eq!(steps[2].sql, "SELECT 'x;y' AS s");
        assert_eq!(steps[2].materialization, Materialization::View);
        assert_eq!(steps[2].policy, StepPolicy::default());
        assert_eq!(
            (steps[2].source_line, steps[2].source_column),
            (Some(16), Some(18))
        );

        assert_eq!(steps[3].sql, "SELECT 2");
        assert_eq!(steps[3].materialization, Materialization::Ephemeral);
        assert_eq!(
            (steps[3].source_line, steps[3].source_column),
            (Some(18), Some(15))
        );
    }

    #[test]
    fn sql_file_steps_can_carry_descriptions() {
        let file = "-- basin: description Orders without test data\nCREATE VIEW a AS SELECT 1";
        let definition = PipelineDefinition::from_sql_file(file).unwrap();
        assert!(definition.description.is_empty());
        assert_eq!(definition.steps[0].description, "Orders without test data");
    }

    #[test]
    fn sql_file_problems_are_all_reported_with_positions() {
        let file = "\
-- basin: retries many
CREATE TABLE a AS SELECT 1;
INSERT INTO a VALUES (1);
-- basin: frobnicate
CREATE VIEW b AS SELECT 2;
-- basin: incremental append cursor x
CREATE VIEW c AS SELECT 3;

-- basin: incremental append cursor y

CREATE TABLE d AS SELECT 4;
";
        let found = PipelineDefinition::from_sql_file(file).unwrap_err();
        assert!(
            found.iter().all(|d| d.code == "invalid_definition"),
            "{found:?}"
        );
        let places: Vec<(Option<u64>, Option<u64>)> =
            found.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(
            places,
            [
                (Some(1), Some(1)),
                (Some(3), Some(1)),
                (Some(4), Some(1)),
                (Some(6), Some(1)),
                (Some(9), Some(1)),
            ],
            "{found:?}"
        );
    }

    #[test]
    fn sql_files_round_trip() {
        let definition = full_definition();
        let file = definition.to_sql_file();
        let mut read = PipelineDefinition::from_sql_file(&file)
            .unwrap_or_else(|found| panic!("{found:?} in\n{file}"));
        assert!(read.steps.iter().all(|s| s.source_line.is_some()));
        clear_positions(&mut read);
        assert_eq!(read, definition, "\n{file}");
        // Writing what was read gives the same file.
        assert_eq!(read.to_sql_file(), file);
    }

    #[test]
    fn visual_form_round_trips() {
        let definition = full_definition();
        let edges = [
            ("raw_orders".to_owned(), "orders_clean".to_owned()),
            ("orders_clean".to_owned(), "orders_daily".to_owned()),
            ("orders_daily".to_owned(), "summary".to_owned()),
            ("summary".to_owned(), "totals".to_owned()),
        ];
        let visual = definition.to_visual(&edges);
        assert_eq!(visual.nodes.len(), 6);
        let source = visual.nodes.iter().find(|n| n.id == "raw_orders").unwrap();
        assert_eq!(source.kind, VisualNodeKind::Source);
        assert!(source.step.is_none());
        assert_eq!(visual.edges.len(), 4);
        assert_eq!(visual.edges[0].from, "raw_orders");
        // Automatic positions do not overlap.
        let mut positions: Vec<(i64, i64)> = visual
            .nodes
            .iter()
            .map(|n| (n.position.x as i64, n.position.y as i64))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        assert_eq!(positions.len(), visual.nodes.len());

        let mut expected = definition.clone();
        expected.layout = visual
            .nodes
            .iter()
            .filter(|n| n.kind == VisualNodeKind::Step)
            .map(|n| (n.id.clone(), n.position))
            .collect();
        let read = PipelineDefinition::from_visual(visual).unwrap();
        assert_eq!(read, expected);

        // A layout is kept as it is.
        let again = PipelineDefinition::from_visual(read.to_visual(&edges)).unwrap();
        assert_eq!(again, read);
    }

    #[test]
    fn step_checks_read_from_json() {
        let definition: PipelineDefinition = serde_json::from_value(json!({
            "steps": [{
                "name": "orders",
                "sql": "SELECT 1 AS id",
                "checks": [
                    { "name": "ids_present", "type": "not_null", "column": "id" },
                    { "name": "ids_soft", "type": "not_null", "column": "id", "blocking": false },
                ],
            }],
        }))
        .unwrap();
        let checks = &definition.steps[0].checks;
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0], not_null("ids_present", "id", true));
        assert_eq!(checks[1], not_null("ids_soft", "id", false));

        // Blocking is the default, so only a warning-only check says so.
        let written = serde_json::to_value(checks).unwrap();
        assert_eq!(written[0]["type"], "not_null");
        assert!(written[0].get("blocking").is_none(), "{written}");
        assert_eq!(written[1]["blocking"], false);
        let step: Step = serde_json::from_value(json!({ "name": "a", "sql": "SELECT 1" })).unwrap();
        assert!(step.checks.is_empty());
        assert!(serde_json::to_value(&step).unwrap().get("checks").is_none());
    }

    #[test]
    fn unknown_fields_inside_a_check_are_refused() {
        let refused = serde_json::from_value::<StepCheck>(json!({
            "name": "ids_present", "type": "not_null", "column": "id", "colour": "red",
        }));
        assert!(refused.is_err(), "{refused:?}");
        let refused = serde_json::from_value::<StepCheck>(json!({
            "name": "ids_present", "type": "no_such_check", "column": "id",
        }));
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn checks_need_a_written_dataset_and_unique_names() {
        let definition = pipeline(
            Vec::new(),
            vec![
                Step {
                    materialization: Materialization::View,
                    checks: vec![not_null("ids_present", "id", true)],
                    ..step("v", "SELECT 1 AS id")
                },
                Step {
                    materialization: Materialization::Ephemeral,
                    checks: vec![not_null("ids_present", "id", false)],
                    ..step("e", "SELECT 1 AS id")
                },
                Step {
                    checks: vec![
                        not_null("ids_present", "id", true),
                        not_null("ids_present", "id", false),
                    ],
                    ..step("t", "SELECT 1 AS id")
                },
            ],
        );
        let found = definition.check_shape();
        assert_eq!(
            codes(&found),
            [
                "checks_on_non_table",
                "checks_on_non_table",
                "duplicate_check"
            ],
            "{found:?}"
        );
        let steps: Vec<Option<&str>> = found.iter().map(|d| d.step.as_deref()).collect();
        assert_eq!(steps, [Some("v"), Some("e"), Some("t")]);
        assert!(found[0].message.contains("view"), "{found:?}");
    }

    #[test]
    fn sql_file_checks_attach_to_their_table_step() {
        let file = "\
-- basin: check {\"name\": \"ids_present\", \"type\": \"not_null\", \"column\": \"id\"}
-- basin: check {\"name\": \"ids_soft\", \"type\": \"not_null\", \"column\": \"id\", \"blocking\": false}
CREATE TABLE a AS SELECT 1 AS id;
";
        let definition = PipelineDefinition::from_sql_file(file).unwrap();
        assert_eq!(
            definition.steps[0].checks,
            [
                not_null("ids_present", "id", true),
                not_null("ids_soft", "id", false),
            ]
        );
        let written = definition.to_sql_file();
        let check_lines: Vec<&str> = written
            .lines()
            .filter(|line| line.starts_with("-- basin: check {"))
            .collect();
        assert_eq!(check_lines.len(), 2, "{written}");
        assert!(!check_lines[0].contains("blocking"), "{written}");
        assert!(
            check_lines[1].ends_with(",\"blocking\":false}"),
            "{written}"
        );
        assert_eq!(
            PipelineDefinition::from_sql_file(&written).unwrap().steps[0].checks,
            definition.steps[0].checks
        );
    }

    #[test]
    fn sql_file_checks_in_the_wrong_place_are_refused() {
        let file = "\
-- basin: check {\"name\": \"a\", \"type\": \"not_null\", \"column\": \"id\"}

-- basin: check {\"name\": \"b\", \"type\": \"not_null\", \"column\": \"id\"}
CREATE VIEW v AS SELECT 1 AS id;
-- basin: check {\"name\": \"c\", \"type\": \"not_null\"
CREATE TABLE t AS SELECT 1 AS id;
-- basin: check
CREATE TABLE u AS SELECT 1 AS id;
-- basin: check {\"name\": \"d\", \"type\": \"not_null\", \"column\": \"id\"}
-- basin: check {\"name\": \"d\", \"type\": \"not_null\", \"column\": \"id\"}
CREATE TABLE w AS SELECT 1 AS id;
";
        let found = PipelineDefinition::from_sql_file(file).unwrap_err();
        let lines: Vec<Option<u64>> = found.iter().map(|d| d.line).collect();
        assert_eq!(
            lines,
            [Some(1), Some(3), Some(5), Some(7), Some(10)],
            "{found:?}"
        );
        assert!(found[0].message.contains("directly above"), "{found:?}");
        assert!(found[1].message.contains("CREATE TABLE"), "{found:?}");
        assert!(found[2].message.starts_with("invalid check"), "{found:?}");
        assert!(found[4].message.contains("`d`"), "{found:?}");
    }

    #[test]
    fn visual_nodes_must_carry_their_own_step() {
        let definition = pipeline(Vec::new(), vec![step("a", "SELECT 1")]);
        let mut visual = definition.to_visual(&[]);
        visual.nodes[0].id = "b".into();
        let found = PipelineDefinition::from_visual(visual).unwrap_err();
        assert_eq!(codes(&found), ["invalid_definition"]);
    }
}
