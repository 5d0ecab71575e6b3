//! The pipeline model: what a user saves. A pipeline is a name, typed
//! params and SQL steps; dependencies are not written down but read from
//! the SQL (see [`crate::graph`]). The same model comes from JSON, from a
//! `.sql` file of `CREATE … AS SELECT` statements, or from a visual editor's
//! nodes and edges.

mod params;
mod sql_file;
mod visual;

pub use params::*;

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

#[cfg(test)]
mod tests;
