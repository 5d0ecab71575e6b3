//! `basin pipeline validate|plan|run FILE.sql` on the data directory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use basin_engine::catalog::StepStatus;
use basin_engine::identity::Principal;
use basin_engine::pipelines::runs::RunRequest;
use basin_engine::pipelines::{Diagnostic, PipelineSource, Severity};
use basin_engine::runtime::events::{FeedEvent, kinds};
use basin_engine::{Engine, EngineConfig};

use crate::app::engine_config;
use crate::app::open_local;
use crate::config::Config;
use clap::Subcommand;

/// What `basin pipeline` does with a file.
#[derive(Debug, Subcommand)]
pub(super) enum PipelineCommand {
    /// Check the graph and plan every step; print diagnostics as FILE:LINE:COLUMN.
    Validate {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
    },
    /// Show what each step would do, its plan and sample rows; writes nothing.
    Plan {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
        /// Rows to sample per step.
        #[arg(long, default_value_t = 5)]
        sample_rows: u32,
    },
    /// Save the file as the pipeline's new version and run it, showing each
    /// step as it moves. Run it with the server stopped.
    Run {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
        /// The pipeline's name (default: the file's name without `.sql`).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `name=value`; the value is read as JSON when it is JSON (numbers,
/// booleans), as text otherwise.
fn parse_param(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not name=value"))?;
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((name.trim().to_owned(), value))
}

pub(super) async fn run(config: &Config, action: PipelineCommand) -> anyhow::Result<()> {
    match action {
        PipelineCommand::Validate { file, params } => {
            let engine = open_local(config).await?;
            let validation = engine
                .validate_source(&Principal::local(), source(&file)?, &params_map(params))
                .await?;
            let mut out = std::io::stdout().lock();
            print_diagnostics(&mut out, &file, &validation.diagnostics)?;
            if !validation.valid {
                bail!("{} does not validate", file.display());
            }
            writeln!(
                out,
                "{}: {} step(s) valid in {} ms; run order: {}",
                file.display(),
                validation.steps.len(),
                validation.elapsed_ms,
                validation
                    .levels
                    .iter()
                    .map(|level| level.join(" | "))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            )?;
            Ok(())
        }
        PipelineCommand::Plan {
            file,
            params,
            sample_rows,
        } => {
            let engine = open_local(config).await?;
            let definition = source(&file)?.parse()?.definition;
            let name = pipeline_name(&file, None)?;
            let plan = engine
                .plan_definition(
                    &Principal::local(),
                    &name,
                    definition,
                    &params_map(params),
                    sample_rows,
                )
                .await?;
            let mut out = std::io::stdout().lock();
            print_diagnostics(&mut out, &file, &plan.diagnostics)?;
            for step in &plan.steps {
                writeln!(out, "== {} ({})", step.name, step.action)?;
                for change in &step.schema_changes {
                    writeln!(
                        out,
                        "   schema: {:?} {} {}",
                        change.kind,
                        change.column,
                        if change.breaking { "(breaking)" } else { "" }
                    )?;
                }
                writeln!(out, "{}", step.explain.logical)?;
                for row in &step.sample {
                    writeln!(out, "   {row}")?;
                }
            }
            if !plan.valid {
                bail!("{} does not validate", file.display());
            }
            Ok(())
        }
        PipelineCommand::Run { file, params, name } => {
            let name = pipeline_name(&file, name.as_deref())?;
            // A run writes datasets: it takes the directory like a server does.
            let engine = Engine::open(EngineConfig {
                recover: true,
                ..engine_config(config)
            })
            .await?;
            if let Some(password) = engine.take_first_admin_password() {
                eprintln!(
                    "created user `admin` with password `{password}` (shown once; change it after signing in)"
                );
            }
            let outcome = run_file(&engine, &file, &name, params).await;
            engine.shutdown().await;
            outcome
        }
    }
}

fn source(file: &Path) -> anyhow::Result<PipelineSource> {
    let sql =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(PipelineSource {
        sql: Some(sql),
        ..Default::default()
    })
}

fn params_map(
    params: Vec<(String, serde_json::Value)>,
) -> serde_json::Map<String, serde_json::Value> {
    params.into_iter().collect()
}

fn pipeline_name(file: &Path, name: Option<&str>) -> anyhow::Result<String> {
    match name {
        Some(name) => Ok(name.to_owned()),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
            .context("the file has no name to name the pipeline after: give --name"),
    }
}

fn print_diagnostics(
    out: &mut impl Write,
    file: &Path,
    diagnostics: &[Diagnostic],
) -> anyhow::Result<()> {
    for d in diagnostics {
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let place = match (d.line, d.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}", file.display()),
            _ => file.display().to_string(),
        };
        let step = d
            .step
            .as_deref()
            .map_or(String::new(), |s| format!(" (step `{s}`)"));
        writeln!(out, "{place}: {severity}[{}]: {}{step}", d.code, d.message)?;
    }
    Ok(())
}

async fn run_file(
    engine: &Engine,
    file: &Path,
    name: &str,
    params: Vec<(String, serde_json::Value)>,
) -> anyhow::Result<()> {
    let principal = Principal::local();
    let exists = engine.pipeline_record(name).await.is_ok();
    if exists {
        engine
            .save_pipeline(&principal, name, source(file)?, None)
            .await?;
    } else {
        engine
            .create_pipeline(&principal, name, source(file)?)
            .await?;
    }
    let mut events = engine.event_feed(&principal).await?;
    let (run, _) = engine
        .start_run(
            &principal,
            name,
            RunRequest {
                params: params_map(params),
                idempotency_key: None,
            },
            "cli",
        )
        .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "run {} of pipeline `{name}`", run.id)?;
    let mut shown: HashMap<String, StepStatus> = HashMap::new();
    let started = std::time::Instant::now();
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
            Ok(Ok(FeedEvent::Visible(event))) => event,
            Ok(Ok(FeedEvent::Hidden(_))) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            Err(_) => {
                // Quiet for a while: make sure the run did not end unseen.
                if engine.wait_run(&run.id, Duration::ZERO).await.is_ok() {
                    break;
                }
                continue;
            }
        };
        if event.run_id.as_deref() != Some(run.id.as_str()) {
            continue;
        }
        if let Some(step) = event.data.get("step") {
            let name = step["name"].as_str().unwrap_or_default().to_owned();
            let status: Option<StepStatus> = serde_json::from_value(step["status"].clone()).ok();
            if let Some(status) = status
                && shown.get(&name) != Some(&status)
            {
                shown.insert(name.clone(), status);
                let detail = match status {
                    StepStatus::Succeeded => format!(
                        " {} rows read, {} written, {} ms",
                        step["rows_read"], step["rows_written"], step["duration_ms"]
                    ),
                    StepStatus::Failed | StepStatus::Retrying => {
                        format!(" {}", step["error"]["message"].as_str().unwrap_or_default())
                    }
                    _ => String::new(),
                };
                writeln!(
                    out,
                    "[{:>7.1}s] {name:<30} {}{detail}",
                    started.elapsed().as_secs_f64(),
                    serde_json::to_value(status)?.as_str().unwrap_or_default()
                )?;
            }
        }
        if matches!(
            event.kind.as_str(),
            kinds::PIPELINE_COMPLETED | kinds::PIPELINE_FAILED
        ) || event.data["status"] == "canceled"
        {
            break;
        }
    }
    let run = engine.wait_run(&run.id, Duration::from_secs(30)).await?;
    writeln!(out, "run {}: {}", run.id, run.status.as_str())?;
    if run.status != basin_engine::catalog::RunStatus::Succeeded {
        bail!(
            "the run {}: {}",
            run.status.as_str(),
            run.error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("see the steps above")
        );
    }
    Ok(())
}
