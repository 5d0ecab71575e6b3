//! Starting, listing, canceling, retrying and waiting for runs.

#[allow(unused_imports)]
use super::*;

impl Engine {
    /// Starts a run of the active version as a job; returns the run and
    /// whether it is new (an idempotency key seen before returns the old one).
    /// Audited, with the door it came through (the scheduler's runs too).
    pub async fn start_run(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: RunRequest,
        trigger: &str,
    ) -> Result<(RunRecord, bool)> {
        let target = format!("pipeline:{id_or_name}");
        let start = self.start_run_once(principal, id_or_name, request, trigger);
        self.audited(principal, "pipeline.run", &target, start)
            .await
    }

    async fn start_run_once(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: RunRequest,
        trigger: &str,
    ) -> Result<(RunRecord, bool)> {
        self.authorize_pipelines(principal, Action::Write)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        if pipeline.archived_at.is_some() {
            return Err(Error::RunState(format!(
                "pipeline `{}` is archived: restore it to run it",
                pipeline.name
            )));
        }
        let version = self
            .version_record(&pipeline, pipeline.active_version)
            .await?;
        let definition: PipelineDefinition = serde_json::from_value(version.definition)
            .map_err(|e| Error::internal("stored pipeline definition", e))?;
        if definition.template {
            return Err(Error::RunState(format!(
                "pipeline `{}` is a template: instantiate it, then run the new pipeline",
                pipeline.name
            )));
        }
        let values = crate::pipelines::model::resolve_params(&definition.params, &request.params)?;
        let validation: Validation = serde_json::from_value(version.outputs)
            .map_err(|e| Error::internal("stored pipeline outputs", e))?;
        let now = Utc::now();
        let run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline_id: pipeline.id.clone(),
            version: version.version,
            status: RunStatus::Queued,
            trigger: trigger.to_owned(),
            params: serde_json::to_value(&values).unwrap_or_default(),
            idempotency_key: request.idempotency_key,
            retry_of: None,
            job_id: None,
            steps: validation
                .steps
                .iter()
                .map(|s| pending_step(&s.name, &s.materialization))
                .collect(),
            error: None,
            created_by: principal.user_id.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        if let Some(existing) = self.catalog().insert_run(&run).await? {
            return Ok((existing, false));
        }
        let run = self.launch(pipeline, definition, run).await?;
        Ok((run, true))
    }

    /// Queues the job that executes `run`.
    async fn launch(
        &self,
        pipeline: PipelineRecord,
        definition: PipelineDefinition,
        mut run: RunRecord,
    ) -> Result<RunRecord> {
        let pipeline_name = pipeline.name.clone();
        self.publish(run_event(
            kinds::PIPELINE_STATUS,
            &pipeline_name,
            &run,
            None,
        ));
        let engine = self.clone();
        let queued = run.clone();
        let submitted = self
            .submit_job(
                "pipeline_run",
                json!({ "pipeline": pipeline.name, "pipeline_id": pipeline.id, "run": run.id }),
                move |job| async move {
                    // The run owns its ending: canceling the job cancels the
                    // run, which records its steps as canceled itself.
                    let state = Arc::new(RunState {
                        engine: engine.clone(),
                        pipeline_name,
                        run: tokio::sync::Mutex::new(queued),
                    });
                    let task = tokio::spawn(execute(
                        engine,
                        state,
                        pipeline,
                        definition,
                        job.cancel.clone(),
                    ));
                    task.await.map_err(|e| Error::internal("pipeline run", e))?
                },
            )
            .await;
        let job = match submitted {
            Ok(job) => job,
            Err(e) => {
                // Never leave a run queued that nothing will execute.
                self.end_unexecuted(&run.id, RunStatus::Failed, &e).await?;
                return Err(e);
            }
        };
        // The executor may have moved on already: record the job id only.
        self.catalog().set_run_job(&run.id, &job.id).await?;
        run.job_id = Some(job.id);
        Ok(self.catalog().run(&run.id).await?.unwrap_or(run))
    }

    /// One run.
    pub async fn run_record(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Read)?;
        self.run_row(id).await
    }

    async fn run_row(&self, id: &str) -> Result<RunRecord> {
        self.catalog()
            .run(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Run, id.to_owned()))
    }

    /// A page of runs, newest first, and the total.
    pub async fn list_runs(
        &self,
        principal: &Principal,
        filter: &RunFilter,
        page: Page,
    ) -> Result<(Vec<RunRecord>, u64)> {
        self.authorize_pipelines(principal, Action::Read)?;
        self.catalog()
            .list_runs(filter, page)
            .await
            .map_err(Error::from)
    }

    /// A page of one pipeline's runs (by id or name), newest first, and the
    /// total; `status` narrows them.
    pub async fn list_pipeline_runs(
        &self,
        principal: &Principal,
        pipeline: &str,
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<(Vec<RunRecord>, u64)> {
        self.authorize_pipelines(principal, Action::Read)?;
        let pipeline = self.pipeline_record(pipeline).await?;
        let filter = RunFilter {
            pipeline_id: Some(pipeline.id),
            status,
        };
        self.catalog()
            .list_runs(&filter, page)
            .await
            .map_err(Error::from)
    }

    /// Cancels a run that has not ended; returns it as it is after the request.
    pub async fn cancel_run(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Write)?;
        let run = self.run_row(id).await?;
        if run.status.is_terminal() {
            return Err(Error::RunState(format!(
                "run `{id}` is already {}",
                run.status.as_str()
            )));
        }
        let orphaned = match &run.job_id {
            Some(job) => matches!(
                self.cancel_job_record(job).await,
                Err(Error::JobFinished { .. }
                    | Error::NotFound {
                        entity: Entity::Job,
                        ..
                    })
            ),
            None => true,
        };
        if orphaned {
            // No job will end this run: end it here.
            self.end_unexecuted(id, RunStatus::Canceled, &Error::Canceled)
                .await?;
        }
        match self.wait_run(id, Duration::from_secs(5)).await {
            Err(Error::Timeout(_)) => self.run_row(id).await,
            other => other,
        }
    }

    /// Ends a run no executor is working on (its job could not start, or ended).
    async fn end_unexecuted(&self, id: &str, status: RunStatus, error: &Error) -> Result<()> {
        let Some(mut run) = self.catalog().run(id).await? else {
            return Ok(());
        };
        if run.status.is_terminal() {
            return Ok(());
        }
        let now = Utc::now();
        for step in &mut run.steps {
            if !step.status.is_terminal() {
                step.status = StepStatus::Canceled;
                step.finished_at = Some(now);
            }
        }
        run.status = status;
        run.error = (status == RunStatus::Failed).then(|| error.to_public_json());
        run.finished_at = Some(now);
        run.updated_at = now;
        self.catalog().update_run(&run).await?;
        let pipeline = self.pipeline_record(&run.pipeline_id).await?;
        let kind = if status == RunStatus::Failed {
            kinds::PIPELINE_FAILED
        } else {
            kinds::PIPELINE_STATUS
        };
        self.publish(run_event(kind, &pipeline.name, &run, None));
        Ok(())
    }

    /// Starts a new run of the same version and params that redoes only the
    /// steps the given run did not finish; the ones it finished are `reused`.
    pub async fn retry_run(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Write)?;
        let old = self.run_row(id).await?;
        if !matches!(old.status, RunStatus::Failed | RunStatus::Canceled) {
            return Err(Error::RunState(format!(
                "run `{id}` is {}: only failed or canceled runs are retried",
                old.status.as_str()
            )));
        }
        let pipeline = self.pipeline_record(&old.pipeline_id).await?;
        if pipeline.archived_at.is_some() {
            return Err(Error::RunState(format!(
                "pipeline `{}` is archived: restore it to run it",
                pipeline.name
            )));
        }
        let version = self.version_record(&pipeline, old.version).await?;
        let definition: PipelineDefinition = serde_json::from_value(version.definition)
            .map_err(|e| Error::internal("stored pipeline definition", e))?;
        let now = Utc::now();
        let run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline_id: old.pipeline_id.clone(),
            version: old.version,
            status: RunStatus::Queued,
            trigger: format!("retry:{}", old.id),
            params: old.params.clone(),
            idempotency_key: None,
            retry_of: Some(old.id.clone()),
            job_id: None,
            steps: old
                .steps
                .iter()
                .map(|s| {
                    let mut step = pending_step(&s.name, &s.materialization);
                    if s.status.is_done() {
                        step.status = StepStatus::Reused;
                        step.dataset_version = s.dataset_version;
                    }
                    step
                })
                .collect(),
            error: None,
            created_by: principal.user_id.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        self.catalog().insert_run(&run).await?;
        self.launch(pipeline, definition, run).await
    }

    /// Waits until a run ends (polling the catalog), for the CLI and tests.
    pub async fn wait_run(&self, id: &str, timeout: Duration) -> Result<RunRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let run = self
                .catalog()
                .run(id)
                .await?
                .ok_or_else(|| Error::not_found(Entity::Run, id.to_owned()))?;
            if run.status.is_terminal() {
                return Ok(run);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(timeout.as_millis() as u64));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
