//! Validation: the graph from the SQL, then every step planned by DataFusion
//! against its upstream steps' output schemas. No data is read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::TableProvider;
use datafusion::datasource::empty::EmptyTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::graph::{self, Dag};
use super::lineage::{ColumnLineage, column_lineage};
use super::model::{self, Incremental, Materialization, PipelineDefinition, Step};
use super::schedule::ParsedSchedule;
use super::{Diagnostic, Severity};
use crate::datasets::schema::{SchemaField, fields_of};
use crate::identity::Principal;
use crate::{Engine, Error, Result};

/// What validation derived for one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepOutput {
    /// The step.
    pub name: String,
    /// `table`, `view`, `incremental` or `ephemeral`.
    pub materialization: String,
    /// Steps of this pipeline it reads.
    pub depends_on: Vec<String>,
    /// Tables it reads that no step of this pipeline produces (datasets,
    /// views, connection tables), as written in the SQL.
    pub sources: Vec<String>,
    /// Its output columns, when it planned.
    pub schema: Option<Vec<SchemaField>>,
    /// Which input columns feed each output column.
    pub columns: Vec<ColumnLineage>,
}

/// A validation's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validation {
    /// No error diagnostics.
    pub valid: bool,
    /// Everything found, errors first.
    pub diagnostics: Vec<Diagnostic>,
    /// An order the steps can run in.
    pub order: Vec<String>,
    /// Steps grouped by depth: the steps of one level can run in parallel.
    pub levels: Vec<Vec<String>>,
    /// Per step, in `order`.
    pub steps: Vec<StepOutput>,
    /// How long validation took.
    pub elapsed_ms: u64,
}

impl Validation {
    /// The step's derived output.
    pub fn step(&self, name: &str) -> Option<&StepOutput> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The error this validation is when it found errors.
    pub fn into_result(self) -> Result<Self> {
        if self.valid {
            return Ok(self);
        }
        let errors: Vec<&Diagnostic> = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let first = errors.first().map_or(String::new(), |d| {
            let place = match (&d.step, d.line, d.column) {
                (Some(step), Some(line), Some(column)) => {
                    format!(" (step `{step}`, line {line}, column {column})")
                }
                (Some(step), _, _) => format!(" (step `{step}`)"),
                _ => String::new(),
            };
            format!(": {}{place}", d.message)
        });
        Err(Error::PipelineInvalid {
            message: format!("the pipeline has {} error(s){first}", errors.len()),
            diagnostics: serde_json::to_value(&self.diagnostics).unwrap_or_default(),
        })
    }
}

/// A step's SQL with params rendered and its references read.
pub(crate) struct PreparedStep {
    pub(crate) step: Step,
    pub(crate) sql: String,
    pub(crate) depends_on: Vec<String>,
    pub(crate) sources: Vec<String>,
}

/// Renders every step with `values` and reads its table references; the
/// graph when there is no cycle.
pub(crate) fn prepare(
    definition: &PipelineDefinition,
    values: &BTreeMap<String, serde_json::Value>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<PreparedStep>, Option<Dag>) {
    let names: Vec<&str> = definition.steps.iter().map(|s| s.name.as_str()).collect();
    let mut prepared = Vec::with_capacity(definition.steps.len());
    let mut ok = true;
    for step in &definition.steps {
        let sql = match model::render_sql(&step.sql, &definition.params, values) {
            Ok(sql) => sql,
            Err(e) => {
                diagnostics.push(Diagnostic::error(
                    Some(&step.name),
                    "invalid_param",
                    e.to_string(),
                ));
                ok = false;
                continue;
            }
        };
        let references = match graph::table_references(&sql) {
            Ok(references) => references,
            Err(d) => {
                diagnostics.push(graph::for_step(d, step));
                ok = false;
                continue;
            }
        };
        let mut depends_on = Vec::new();
        let mut sources = Vec::new();
        for reference in &references {
            match graph::step_for(reference, &names) {
                Some(upstream) => depends_on.push(upstream),
                None => sources.push(reference.to_string()),
            }
        }
        depends_on.sort();
        depends_on.dedup();
        sources.sort();
        sources.dedup();
        prepared.push(PreparedStep {
            step: step.clone(),
            sql,
            depends_on,
            sources,
        });
    }
    if !ok {
        return (prepared, None);
    }
    let nodes = prepared
        .iter()
        .map(|p| (p.step.name.clone(), p.depends_on.clone()))
        .collect();
    match Dag::build(nodes) {
        Ok(dag) => (prepared, Some(dag)),
        Err(cycle) => {
            diagnostics.push(Diagnostic::error(
                cycle.first().map(String::as_str),
                "cycle",
                format!("steps read each other in a cycle: {}", cycle.join(" → ")),
            ));
            (prepared, None)
        }
    }
}

/// The diagnostic for a step that did not plan.
pub(crate) fn plan_diagnostic(step: &Step, error: &Error) -> Diagnostic {
    let message = error.to_string();
    let code = if message.contains("not found") && message.contains("table") {
        "unknown_table"
    } else {
        "sql_error"
    };
    let diagnostic = Diagnostic::error(Some(&step.name), code, message);
    match error {
        Error::Sql {
            location: Some(location),
            ..
        } => diagnostic.at(step, location.line, location.column),
        _ => diagnostic,
    }
}

/// Plans `sql` in `ctx` (a query only: validation has checked it is one).
pub(crate) async fn plan_step(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
    Ok(ctx.state().create_logical_plan(sql).await?)
}

/// Registers a step's output for the steps after it: an empty table of its
/// schema while validating.
pub(crate) fn register_output(ctx: &SessionContext, name: &str, plan: &LogicalPlan) -> Result<()> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    let table: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(schema));
    ctx.register_table(name, table)?;
    Ok(())
}

impl Engine {
    /// Validates a definition as `principal` (whose rights decide which
    /// tables exist for it), with `params` over the params' defaults.
    pub async fn validate_pipeline(
        &self,
        principal: &Principal,
        definition: &PipelineDefinition,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Validation> {
        let started = Instant::now();
        let mut diagnostics = definition.check_shape();
        let mut values = model::placeholder_values_for_validation(&definition.params);
        for (name, value) in params {
            values.insert(name.clone(), value.clone());
        }
        if let Some(schedule) = &definition.schedule
            && let Err(e) = ParsedSchedule::parse(schedule)
        {
            diagnostics.push(Diagnostic::error(None, "invalid_schedule", e.to_string()));
        }
        for trigger in &definition.triggers {
            if definition
                .steps
                .iter()
                .any(|s| s.name == trigger.dataset && s.materialization.writes_dataset())
            {
                diagnostics.push(Diagnostic::error(
                    None,
                    "invalid_trigger",
                    format!(
                        "the pipeline writes `{}` itself: a trigger on it would start a run after every run",
                        trigger.dataset
                    ),
                ));
            }
        }
        let (prepared, dag) = prepare(definition, &values, &mut diagnostics);
        for p in prepared
            .iter()
            .filter(|p| p.step.materialization == Materialization::View)
        {
            let ephemeral = p.depends_on.iter().find(|d| {
                definition
                    .steps
                    .iter()
                    .any(|s| &s.name == *d && s.materialization == Materialization::Ephemeral)
            });
            if let Some(ephemeral) = ephemeral {
                diagnostics.push(Diagnostic::error(
                    Some(&p.step.name),
                    "view_reads_ephemeral",
                    format!(
                        "view `{}` reads ephemeral step `{ephemeral}`, which exists only during a run: make `{ephemeral}` a view or a table",
                        p.step.name
                    ),
                ));
            }
        }
        let mut outputs: HashMap<String, StepOutput> = prepared
            .iter()
            .map(|p| {
                (
                    p.step.name.clone(),
                    StepOutput {
                        name: p.step.name.clone(),
                        materialization: p.step.materialization.kind().to_owned(),
                        depends_on: p.depends_on.clone(),
                        sources: p.sources.clone(),
                        schema: None,
                        columns: Vec::new(),
                    },
                )
            })
            .collect();
        let (order, levels) = match &dag {
            Some(dag) => (dag.order().to_vec(), dag.levels()),
            None => (
                prepared.iter().map(|p| p.step.name.clone()).collect(),
                Vec::new(),
            ),
        };
        if dag.is_some() {
            let ctx = self.query_context(principal).await?;
            let by_name: HashMap<&str, &PreparedStep> =
                prepared.iter().map(|p| (p.step.name.as_str(), p)).collect();
            let mut planned_ok: HashMap<String, bool> = HashMap::new();
            for name in &order {
                let Some(p) = by_name.get(name.as_str()) else {
                    continue;
                };
                if p.depends_on
                    .iter()
                    .any(|d| !planned_ok.get(d).copied().unwrap_or(false))
                {
                    // Its upstream did not plan: that diagnostic says enough.
                    planned_ok.insert(name.clone(), false);
                    continue;
                }
                let planned = {
                    let ctx = ctx.clone();
                    let sql = p.sql.clone();
                    self.executor()
                        .run(async move { plan_step(&ctx, &sql).await })
                        .await
                };
                match planned {
                    Ok(plan) => {
                        let fields = fields_of(plan.schema().as_arrow());
                        check_columns(&p.step, &fields, &mut diagnostics);
                        if let Some(output) = outputs.get_mut(name) {
                            output.columns = column_lineage(&plan);
                            output.schema = Some(fields);
                        }
                        register_output(&ctx, name, &plan)?;
                        planned_ok.insert(name.clone(), true);
                    }
                    Err(e) => {
                        diagnostics.push(plan_diagnostic(&p.step, &e));
                        planned_ok.insert(name.clone(), false);
                    }
                }
            }
        }
        diagnostics.sort_by_key(|d| d.severity != Severity::Error);
        let valid = !diagnostics.iter().any(|d| d.severity == Severity::Error);
        let steps = order.iter().filter_map(|n| outputs.remove(n)).collect();
        Ok(Validation {
            valid,
            diagnostics,
            order,
            levels,
            steps,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// An incremental step's cursor and key must be among its output columns.
fn check_columns(step: &Step, fields: &[SchemaField], diagnostics: &mut Vec<Diagnostic>) {
    let needed: Vec<&String> = match &step.materialization {
        Materialization::Incremental(Incremental::Append { cursor }) => vec![cursor],
        Materialization::Incremental(Incremental::Merge { unique_key }) => {
            unique_key.iter().collect()
        }
        _ => Vec::new(),
    };
    for column in needed {
        if !fields.iter().any(|f| &f.name == column) {
            diagnostics.push(Diagnostic::error(
                Some(&step.name),
                "unknown_column",
                format!(
                    "incremental column `{column}` is not an output column of the step (columns: {})",
                    fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}
