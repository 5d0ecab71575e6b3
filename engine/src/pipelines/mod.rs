//! Pipelines defined as SQL: a DAG of `SELECT` steps whose dependencies
//! come from the SQL itself. The model (what users save, the graph of
//! dependencies, lineage, schedules) is `basin-pipeline-model`, re-exported
//! here; [`validate`] plans every step without reading data, [`manage`]
//! keeps immutable versions, [`runs`] executes them in parallel with
//! retries, and [`scheduler`] starts them on time and on triggers.

pub mod manage;
pub mod runs;
pub mod scheduler;
pub mod validate;

pub use basin_pipeline_model::{
    Diagnostic, ParsedSource, PipelineSource, Severity, graph, lineage, model, schedule,
};
