//! The pipeline model, with no IO: what users save and what can be known
//! from it without running anything. A pipeline is a DAG of `SELECT` steps
//! whose dependencies come from the SQL itself.
//!
//! - [`model`]: definitions, typed params, the `.sql` file form, the visual
//!   form, and rendering a step's SQL with its params.
//! - [`graph`]: dependencies read from each step's SQL, cycles, order.
//! - [`lineage`]: columns followed through planned steps.
//! - [`schedule`]: cron schedules read in a time zone.
//!
//! The engine validates (plans every step), stores, schedules and runs them.

pub mod graph;
pub mod lineage;
pub mod model;
pub mod schedule;

/// Everything reading a pipeline can refuse with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field or param is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The definition does not convert; every diagnostic says where.
    #[error("{message}")]
    Invalid {
        /// A summary.
        message: String,
        /// Every diagnostic, with step, line and column.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Result with the pipeline model's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

use serde::{Deserialize, Serialize};

/// Something validation found, pointing at a step and a place in its SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diagnostic {
    /// The step, when the problem is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `error` (the pipeline cannot be saved as runnable) or `warning`.
    pub severity: Severity,
    /// A stable code: `sql_error`, `unknown_table`, `cycle`, `duplicate_step`,
    /// `invalid_name`, `invalid_param`, `unknown_param`, `not_a_query`, `invalid_definition`, ...
    pub code: String,
    /// For people.
    pub message: String,
    /// Line in the step's SQL (or in the `.sql` file, when the step came from one), from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Column, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = DiagnosticSeverity)]
pub enum Severity {
    /// Blocks running.
    Error,
    /// Worth knowing.
    Warning,
}

impl Diagnostic {
    /// An error about `step` (or the whole pipeline).
    pub fn error(step: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        Self {
            step: step.map(str::to_owned),
            severity: Severity::Error,
            code: code.to_owned(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// This diagnostic at `line`/`column` of its step's SQL, moved to the
    /// step's place in its file when it came from one.
    pub fn at(mut self, step: &model::Step, line: u64, column: u64) -> Self {
        let (line, column) = match (step.source_line, step.source_column) {
            (Some(first), start) => (
                first + line - 1,
                if line == 1 {
                    start.unwrap_or(1) + column - 1
                } else {
                    column
                },
            ),
            (None, _) => (line, column),
        };
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

/// How a definition arrives: exactly one of JSON, a `.sql` file's text, or
/// the visual form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSource {
    /// The JSON form.
    #[serde(default)]
    pub definition: Option<model::PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    pub sql: Option<String>,
    /// Nodes and edges.
    #[serde(default)]
    pub visual: Option<model::VisualDefinition>,
}

/// A definition, and the edges a visual form claimed (checked against the SQL).
#[derive(Debug, Clone)]
pub struct ParsedSource {
    /// The definition.
    pub definition: model::PipelineDefinition,
    /// `(from, to)` edges the visual form drew, when it was one.
    pub claimed_edges: Option<Vec<(String, String)>>,
}

impl PipelineSource {
    /// The definition; a `.sql` file or visual form that does not convert is
    /// `PipelineInvalid` with its diagnostics.
    pub fn parse(self) -> Result<ParsedSource> {
        let invalid = |diagnostics: Vec<Diagnostic>| Error::Invalid {
            message: format!(
                "the pipeline has {} error(s): {}",
                diagnostics.len(),
                diagnostics.first().map_or("", |d| d.message.as_str())
            ),
            diagnostics,
        };
        match (self.definition, self.sql, self.visual) {
            (Some(definition), None, None) => Ok(ParsedSource {
                definition,
                claimed_edges: None,
            }),
            (None, Some(sql), None) => Ok(ParsedSource {
                definition: model::PipelineDefinition::from_sql_file(&sql).map_err(invalid)?,
                claimed_edges: None,
            }),
            (None, None, Some(visual)) => {
                let edges: Vec<(String, String)> = visual
                    .edges
                    .iter()
                    .map(|e| (e.from.clone(), e.to.clone()))
                    .collect();
                let mut definition =
                    model::PipelineDefinition::from_visual(visual).map_err(invalid)?;
                // Positions where the automatic layout would put the node anyway
                // are not a change: a form saved back unmoved is the same version.
                let automatic = model::PipelineDefinition {
                    layout: Default::default(),
                    ..definition.clone()
                }
                .to_visual(&edges);
                definition.layout.retain(|name, position| {
                    !automatic
                        .nodes
                        .iter()
                        .any(|n| &n.id == name && n.position == *position)
                });
                Ok(ParsedSource {
                    definition,
                    claimed_edges: Some(edges),
                })
            }
            _ => Err(Error::InvalidInput(
                "give exactly one of `definition` (JSON), `sql` (a .sql file's text) or `visual` (nodes and edges)"
                    .into(),
            )),
        }
    }
}
