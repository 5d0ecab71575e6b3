//! Executing a run: steps in dependency order up to the concurrency limit, attempts with backoff, writes and the checks after them.

#[allow(unused_imports)]
use super::*;

/// Runs the steps of `state`'s run.
pub(super) async fn execute(
    engine: Engine,
    state: Arc<RunState>,
    pipeline: PipelineRecord,
    definition: PipelineDefinition,
    cancel: CancellationToken,
) -> Result<Value> {
    let run = state.snapshot().await;
    let values: std::collections::BTreeMap<String, Value> =
        serde_json::from_value(run.params.clone()).unwrap_or_default();
    let mut diagnostics = Vec::new();
    let (steps, dag) = prepare(&definition, &values, &mut diagnostics);
    if dag.is_none() || !diagnostics.is_empty() {
        let error = json!({ "code": "pipeline_invalid", "message": "the pipeline does not validate with these params", "diagnostics": diagnostics });
        state
            .change(kinds::PIPELINE_FAILED, None, |run| {
                run.status = RunStatus::Failed;
                run.error = Some(error.clone());
                run.started_at = Some(Utc::now());
                run.finished_at = Some(Utc::now());
            })
            .await;
        return Err(Error::PipelineInvalid {
            message: "the pipeline does not validate with these params".into(),
            diagnostics: error["diagnostics"].clone(),
        });
    }
    let max_parallel = definition
        .max_parallel
        .map(|n| n as usize)
        .unwrap_or(engine.config().pipeline_parallelism)
        .max(1);
    // Steps in dependency order: inlined steps are planned upstream first,
    // and ready steps start in a stable order.
    let mut steps = steps;
    if let Some(dag) = &dag {
        let rank: HashMap<&str, usize> = dag
            .order()
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        steps.sort_by_key(|s| {
            rank.get(s.step.name.as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
    }
    let plan = Arc::new(RunPlan {
        pipeline,
        steps,
        defaults: definition.defaults,
        max_parallel,
    });
    state
        .change(kinds::PIPELINE_STATUS, None, |run| {
            run.status = RunStatus::Running;
            run.started_at = Some(Utc::now());
        })
        .await;
    let mut tasks: JoinSet<(String, Result<Attempt, Value>)> = JoinSet::new();
    let mut task_steps: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut canceled = false;
    loop {
        let snapshot = state.snapshot().await;
        let mut status_of: HashMap<String, StepStatus> = snapshot
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.status))
            .collect();
        // Steps whose upstream failed will never run; in dependency order, so
        // that the mark travels down the whole branch in one pass.
        for step in &plan.steps {
            if status_of.get(step.step.name.as_str()) != Some(&StepStatus::Pending) {
                continue;
            }
            let blocked = step.depends_on.iter().find(|d| {
                matches!(
                    status_of.get(d.as_str()),
                    Some(StepStatus::Failed | StepStatus::UpstreamFailed)
                )
            });
            if let Some(blocked) = blocked.cloned() {
                status_of.insert(step.step.name.clone(), StepStatus::UpstreamFailed);
                let message = format!("not run: upstream step `{blocked}` failed");
                state
                    .change_step(&step.step.name, |s| {
                        s.status = StepStatus::UpstreamFailed;
                        s.finished_at = Some(Utc::now());
                        log(s, "warn", message);
                    })
                    .await;
            }
        }
        let snapshot = state.snapshot().await;
        let status_of: HashMap<&str, StepStatus> = snapshot
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        for step in plan.steps.iter().filter(|_| !canceled) {
            if running.len() >= plan.max_parallel {
                break;
            }
            let name = step.step.name.clone();
            let ready = status_of.get(name.as_str()) == Some(&StepStatus::Pending)
                && step
                    .depends_on
                    .iter()
                    .all(|d| status_of.get(d.as_str()).is_some_and(|s| s.is_done()));
            if !ready || running.contains(&name) {
                continue;
            }
            running.insert(name.clone());
            start_attempt(&state, &name, 1).await;
            let (engine, state, plan, cancel) =
                (engine.clone(), state.clone(), plan.clone(), cancel.clone());
            let step_name = name.clone();
            let task = tasks.spawn(async move {
                let outcome = run_step(&engine, &state, &plan, &name, &cancel).await;
                (name, outcome)
            });
            task_steps.insert(task.id(), step_name);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (name, outcome) = match joined {
                    Ok(done) => done,
                    // A step task that panicked fails its step, not the run's bookkeeping.
                    Err(e) => {
                        tracing::error!(error = %e, "pipeline step task failed");
                        let name = task_steps.get(&e.id()).cloned().unwrap_or_default();
                        (name, Err(json!({ "code": "internal", "message": "internal error; see the server log" })))
                    }
                };
                running.remove(&name);
                let finished = Utc::now();
                state.change_step(&name, |s| {
                    s.finished_at = Some(finished);
                    s.duration_ms = s.started_at.map(|at| (finished - at).num_milliseconds().max(0) as u64);
                    match outcome {
                        Ok(attempt) => {
                            s.rows_read = attempt.rows_read;
                            s.rows_written = attempt.rows_written;
                            s.dataset_version = attempt.version;
                            match attempt.check_failure {
                                None => {
                                    s.status = StepStatus::Succeeded;
                                    s.error = None;
                                    log(s, "info", format!("succeeded: {} rows read, {} written", attempt.rows_read, attempt.rows_written));
                                }
                                Some(error) => {
                                    s.status = StepStatus::Failed;
                                    s.error = Some(error);
                                    let kept = attempt.version.map_or_else(String::new, |v| format!(" as version {v}"));
                                    log(s, "error", format!(
                                        "failed its checks: {} rows read, {} written; the write stays committed{kept}, and steps that read it do not run",
                                        attempt.rows_read, attempt.rows_written,
                                    ));
                                }
                            }
                        }
                        Err(error) => {
                            s.status = if cancel.is_cancelled() { StepStatus::Canceled } else { StepStatus::Failed };
                            s.error = Some(error);
                        }
                    }
                }).await;
            }
            () = cancel.cancelled(), if !canceled => {
                canceled = true;
                state.change(kinds::PIPELINE_STATUS, None, |run| run.status = RunStatus::Canceling).await;
            }
        }
    }
    // Whatever is still pending did not start.
    let canceled = canceled || cancel.is_cancelled();
    let finished = Utc::now();
    let final_kind = {
        let run = state.snapshot().await;
        let failed = run.steps.iter().any(|s| s.status == StepStatus::Failed);
        if canceled {
            kinds::PIPELINE_STATUS
        } else if failed {
            kinds::PIPELINE_FAILED
        } else {
            kinds::PIPELINE_COMPLETED
        }
    };
    state
        .change(final_kind, None, |run| {
            for step in &mut run.steps {
                if !step.status.is_terminal() {
                    step.status = StepStatus::Canceled;
                    step.finished_at = Some(finished);
                }
            }
            run.finished_at = Some(finished);
            let failed: Vec<&str> = run
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Failed)
                .map(|s| s.name.as_str())
                .collect();
            run.status = if canceled {
                RunStatus::Canceled
            } else if failed.is_empty() {
                RunStatus::Succeeded
            } else {
                run.error = Some(json!({
                    "code": "step_failed",
                    "message": format!("step(s) failed: {}", failed.join(", ")),
                    "steps": failed,
                }));
                RunStatus::Failed
            };
        })
        .await;
    let run = state.snapshot().await;
    match run.status {
        RunStatus::Succeeded => Ok(json!({ "run": run.id, "status": run.status })),
        RunStatus::Canceled => Err(Error::Canceled),
        _ => Err(Error::RunState(format!(
            "run `{}` failed: {}",
            run.id,
            run.error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("a step failed")
        ))),
    }
}

/// Marks attempt `attempt` of step `name` running. The first attempt is
/// marked as the scheduler dispatches the step, before it awaits any step,
/// so steps started together have start times before any of them ended.
async fn start_attempt(state: &RunState, name: &str, attempt: u32) {
    state
        .change_step(name, |s| {
            s.status = StepStatus::Running;
            s.attempts = attempt;
            s.started_at.get_or_insert_with(Utc::now);
            log(s, "info", format!("attempt {attempt} started"));
        })
        .await;
}

/// Runs one step with its retries; the error is the last attempt's, as the run shows it.
pub(super) async fn run_step(
    engine: &Engine,
    state: &RunState,
    plan: &RunPlan,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Attempt, Value> {
    let Some(prepared) = plan.step(name) else {
        return Err(json!({ "code": "internal", "message": "step missing from the run plan" }));
    };
    let policy = prepared.step.policy.or(plan.defaults);
    let retries = policy.retries.unwrap_or(0);
    let timeout = policy
        .timeout_secs
        .map_or(engine.config().query_timeout, Duration::from_secs);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        // The scheduler marked the first attempt when it dispatched the step.
        if attempt > 1 {
            start_attempt(state, name, attempt).await;
        }
        let outcome = tokio::select! {
            () = cancel.cancelled() => Err(Error::Canceled),
            done = tokio::time::timeout(timeout, attempt_step(engine, plan, prepared)) => {
                done.unwrap_or(Err(Error::Timeout(timeout.as_millis() as u64)))
            }
        };
        let error = match outcome {
            Ok(done) => return Ok(check_written(engine, state, plan, prepared, done, cancel).await),
            Err(Error::Canceled) => {
                return Err(json!({ "code": "canceled", "message": "canceled" }));
            }
            Err(error) => error,
        };
        if matches!(error, Error::Internal(_)) {
            tracing::error!(step = name, error = %error, "pipeline step failed");
        }
        let shown = step_error(&prepared.step, &error);
        if attempt > retries {
            let message = format!("attempt {attempt} failed: {}", error.public_message());
            state.change_step(name, |s| log(s, "error", message)).await;
            return Err(shown);
        }
        let wait = backoff(policy.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS), attempt);
        let message = format!(
            "attempt {attempt} failed: {}; retrying in {} ms",
            error.public_message(),
            wait.as_millis()
        );
        state
            .change_step(name, |s| {
                s.status = StepStatus::Retrying;
                s.error = Some(shown);
                log(s, "warn", message);
            })
            .await;
        tokio::select! {
            () = cancel.cancelled() => {
                return Err(json!({ "code": "canceled", "message": "canceled while waiting to retry" }));
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Evaluates the checks of a step whose write just succeeded. A blocking
/// check that fails (or cannot be evaluated) fails the step; its commit
/// stays, and the step is not retried: retries are for failed writes, and
/// writing the same rows again would fail the same checks.
pub(super) async fn check_written(
    engine: &Engine,
    state: &RunState,
    plan: &RunPlan,
    prepared: &PreparedStep,
    mut attempt: Attempt,
    cancel: &CancellationToken,
) -> Attempt {
    let step = &prepared.step;
    if step.checks.is_empty() || !step.materialization.writes_dataset() {
        return attempt;
    }
    let count = step.checks.len();
    state
        .change_step(&step.name, |s| {
            log(
                s,
                "info",
                format!("write committed; evaluating {count} check(s)"),
            );
        })
        .await;
    let labeled: Vec<(String, CheckDefinition)> = step
        .checks
        .iter()
        .map(|c| {
            let label = format!(
                "pipeline:{}:{}:{}",
                plan.pipeline.id, step.name, c.check.name
            );
            (label, c.check.clone())
        })
        .collect();
    // Boxed: the evaluation's future holds query state, too big for the stack.
    let evaluation = Box::pin(async {
        let record = engine.dataset_record(&step.name).await?;
        engine
            .evaluate_checks(&record, labeled, CheckTrigger::Pipeline)
            .await
    });
    let report = tokio::select! {
        () = cancel.cancelled() => {
            state
                .change_step(&step.name, |s| {
                    log(s, "warn", "checks not evaluated: the run was canceled".to_owned());
                })
                .await;
            return attempt;
        }
        report = evaluation => report,
    };
    // When the evaluation as a whole fails, every check counts as an error,
    // so that blocking ones still fail the step.
    let evaluated: Vec<(String, String, Option<f64>, Option<Value>)> = match report {
        Ok(report) => report
            .results
            .into_iter()
            .map(|r| (r.check_name, r.outcome, r.observed, r.error))
            .collect(),
        Err(error) => {
            let shown = error.to_public_json();
            step.checks
                .iter()
                .map(|c| {
                    let name = c.check.name.clone();
                    (name, "error".to_owned(), None, Some(shown.clone()))
                })
                .collect()
        }
    };
    let mut lines = Vec::with_capacity(evaluated.len());
    let mut summaries = Vec::with_capacity(evaluated.len());
    let mut failures = Vec::new();
    for (name, outcome, observed, error) in evaluated {
        let blocking = step
            .checks
            .iter()
            .find(|c| c.check.name == name)
            .is_none_or(|c| c.blocking);
        let verb = match outcome.as_str() {
            "pass" => "passed",
            "warn" => "warned",
            "fail" => "failed",
            _ => "could not be evaluated",
        };
        let observed_text = observed.map_or_else(String::new, |o| format!(" (observed {o})"));
        let reason = error
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .map_or_else(String::new, |m| format!(": {m}"));
        let description = format!("check `{name}` {verb}{observed_text}{reason}");
        let (level, note) = match (outcome.as_str(), blocking) {
            ("pass", _) => ("info", ""),
            ("fail" | "error", true) => ("error", "; blocking"),
            ("fail" | "error", false) => ("warn", "; not blocking, so the step goes on"),
            _ => ("warn", ""),
        };
        lines.push((level, format!("{description}{note}")));
        if level == "error" {
            failures.push(description);
        }
        let mut summary = json!({
            "name": name,
            "blocking": blocking,
            "outcome": outcome,
            "observed": observed,
        });
        if let Some(error) = error {
            summary["error"] = error;
        }
        summaries.push(summary);
    }
    if !failures.is_empty() {
        attempt.check_failure = Some(json!({
            "code": "check_failed",
            "message": failures.join("; "),
        }));
    }
    state
        .change_step(&step.name, |s| {
            for (level, message) in lines {
                log(s, level, message);
            }
            s.checks = summaries;
        })
        .await;
    attempt
}

/// One attempt: plan the step in a fresh context (so it sees what its
/// upstream steps just committed), then write its rows as one commit.
pub(super) async fn attempt_step(
    engine: &Engine,
    plan: &RunPlan,
    prepared: &PreparedStep,
) -> Result<Attempt> {
    let ctx = engine.query_context(&Principal::local()).await?;
    let inlined: Vec<(String, String)> = plan
        .inlined_ancestors(&prepared.step.name)
        .into_iter()
        .map(|s| (s.step.name.clone(), s.sql.clone()))
        .collect();
    let name = prepared.step.name.as_str();
    let logical = {
        let (ctx, sql) = (ctx.clone(), prepared.sql.clone());
        engine
            .executor()
            .run(async move {
                // Inlined upstream steps first, in dependency order.
                for (upstream, upstream_sql) in inlined {
                    let logical = plan_step(&ctx, &upstream_sql).await?;
                    let view: Arc<dyn TableProvider> = Arc::new(ViewTable::new(logical, None));
                    ctx.register_table(upstream.as_str(), view)?;
                }
                plan_step(&ctx, &sql).await
            })
            .await?
    };
    let frame = DataFrame::new(ctx.state(), logical);
    let existing = engine.catalog().dataset_by_name(name).await?;
    match &prepared.step.materialization {
        Materialization::Ephemeral => Ok(Attempt::default()),
        Materialization::View => {
            if existing.is_some() {
                return Err(Error::already_exists(
                    Entity::Dataset,
                    format!(
                        "{name}` is a dataset: a view step cannot take its name; rename the step or delete the dataset `{name}"
                    ),
                ));
            }
            engine
                .catalog()
                .put_view(name, &prepared.sql, &plan.pipeline.id)
                .await?;
            Ok(Attempt::default())
        }
        Materialization::Table => {
            write(engine, &ctx, name, existing, WriteMode::Overwrite, frame).await
        }
        Materialization::Incremental(_) if existing.is_none() => {
            write(engine, &ctx, name, None, WriteMode::Overwrite, frame).await
        }
        Materialization::Incremental(Incremental::Append { cursor }) => {
            let Some(record) = existing else {
                return Err(Error::internal("incremental step", "dataset vanished"));
            };
            let table = crate::datasets::open_table(&record.location, None).await?;
            let target = crate::datasets::snapshot_of(&table).await?.schema;
            let last = engine.max_as_text(&ctx, &record.location, cursor).await?;
            let mut frame = frame;
            if let Some(last) = last {
                let field = frame
                    .schema()
                    .field_with_unqualified_name(cursor)
                    .map_err(|_| {
                        Error::InvalidInput(format!(
                            "cursor `{cursor}` is not a column of step `{name}`"
                        ))
                    })?;
                let bound = cast(lit(last), field.data_type().clone());
                frame =
                    frame.filter(col(datafusion::common::Column::from_name(cursor)).gt(bound))?;
            }
            let frame = conform(frame, &target, ColumnMapping::ByName)?;
            write(engine, &ctx, name, Some(record), WriteMode::Append, frame).await
        }
        Materialization::Incremental(Incremental::Merge { unique_key }) => {
            let Some(record) = existing else {
                return Err(Error::internal("incremental step", "dataset vanished"));
            };
            let (frame, physical) = {
                let (ctx, frame) = (ctx.clone(), crate::sources::sync::storable(frame)?);
                engine
                    .executor()
                    .run(async move { frame_over(&ctx, frame).await })
                    .await?
            };
            let (version, rows_written) =
                engine.merge_into(&record, frame, unique_key, false).await?;
            Ok(Attempt {
                rows_read: rows_read(&physical),
                rows_written,
                version: Some(version),
                check_failure: None,
            })
        }
    }
}

/// Commits a frame to a dataset, counting what its plan read.
pub(super) async fn write(
    engine: &Engine,
    ctx: &SessionContext,
    name: &str,
    existing: Option<crate::catalog::DatasetRecord>,
    mode: WriteMode,
    frame: DataFrame,
) -> Result<Attempt> {
    let (frame, physical) = {
        let ctx = ctx.clone();
        engine
            .executor()
            .run(async move { frame_over(&ctx, frame).await })
            .await?
    };
    let outcome = engine.commit_write(name, existing, mode, frame).await?;
    Ok(Attempt {
        rows_read: rows_read(&physical),
        rows_written: outcome.rows_written,
        version: Some(outcome.version),
        check_failure: None,
    })
}
