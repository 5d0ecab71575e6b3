//! Dry runs: what each step would do, its plans, a sample of its rows and its schema change, writing nothing.

#[allow(unused_imports)]
use super::*;

impl Engine {
    /// A dry run: what each step would do, its plans, a sample of its rows
    /// and its schema change against what the active version produces. No
    /// dataset is written.
    pub async fn plan_pipeline(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: PlanRequest,
    ) -> Result<PipelinePlan> {
        self.authorize_pipelines(principal, Action::Read)?;
        let detail = self.pipeline_detail(principal, id_or_name).await?;
        let definition = match (&request.definition, &request.sql, &request.visual) {
            (None, None, None) => detail.definition.clone(),
            _ => {
                PipelineSource {
                    definition: request.definition.clone(),
                    sql: request.sql.clone(),
                    visual: request.visual.clone(),
                }
                .parse()?
                .definition
            }
        };
        self.plan_with(
            principal,
            Some(&detail),
            &detail.pipeline.name,
            definition,
            &request.params,
            request.sample_rows.unwrap_or(10),
        )
        .await
    }

    /// A dry run of `definition` as pipeline `name` (compared with that
    /// pipeline's active version when it exists).
    pub async fn plan_definition(
        &self,
        principal: &Principal,
        name: &str,
        definition: PipelineDefinition,
        params: &serde_json::Map<String, Value>,
        sample_rows: u32,
    ) -> Result<PipelinePlan> {
        self.authorize_pipelines(principal, Action::Read)?;
        let detail = match self.pipeline_detail(principal, name).await {
            Ok(detail) => Some(detail),
            Err(Error::NotFound {
                entity: Entity::Pipeline,
                ..
            }) => None,
            Err(e) => return Err(e),
        };
        self.plan_with(
            principal,
            detail.as_ref(),
            name,
            definition,
            params,
            sample_rows,
        )
        .await
    }

    async fn plan_with(
        &self,
        principal: &Principal,
        detail: Option<&crate::pipelines::manage::PipelineDetail>,
        name: &str,
        definition: PipelineDefinition,
        params: &serde_json::Map<String, Value>,
        sample_rows: u32,
    ) -> Result<PipelinePlan> {
        let started = Instant::now();
        let mut values =
            crate::pipelines::model::placeholder_values_for_validation(&definition.params);
        if !definition.template {
            values.extend(crate::pipelines::model::resolve_params(
                &definition.params,
                params,
            )?);
        }
        let validation = self
            .validate_pipeline(principal, &definition, params)
            .await?;
        let mut plan = PipelinePlan {
            pipeline: name.to_owned(),
            active_version: detail.map(|d| d.pipeline.active_version),
            valid: validation.valid,
            diagnostics: validation.diagnostics.clone(),
            levels: validation.levels.clone(),
            steps: Vec::new(),
            elapsed_ms: 0,
        };
        if !validation.valid {
            plan.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(plan);
        }
        let sample_rows = sample_rows.min(MAX_SAMPLE_ROWS) as usize;
        let mut diagnostics = Vec::new();
        let (prepared, _) = prepare(&definition, &values, &mut diagnostics);
        let ctx = self.query_context(principal).await?;
        for name in &validation.order {
            let Some(p) = prepared.iter().find(|p| &p.step.name == name) else {
                continue;
            };
            let existing = self.catalog().dataset_by_name(name).await?;
            let before: Option<Vec<SchemaField>> =
                match (&existing, p.step.materialization.writes_dataset()) {
                    (Some(record), true) => serde_json::from_value(record.schema.clone()).ok(),
                    _ => detail
                        .and_then(|d| d.validation.step(name))
                        .and_then(|s| s.schema.clone()),
                };
            let action = match (&p.step.materialization, existing.is_some()) {
                (Materialization::Table, true) => "replace",
                (Materialization::Table | Materialization::Incremental(_), false) => "create",
                (Materialization::Incremental(Incremental::Append { .. }), true) => "append",
                (Materialization::Incremental(Incremental::Merge { .. }), true) => "merge",
                (Materialization::View, _) => "view",
                (Materialization::Ephemeral, _) => "inline",
            };
            let (ctx2, sql) = (ctx.clone(), p.sql.clone());
            let deadline = self.config().query_timeout;
            let sampled = self.executor().run(async move {
                let logical = plan_step(&ctx2, &sql).await?;
                let state = ctx2.state();
                let optimized = state.optimize(&logical)?;
                let physical = state.create_physical_plan(&optimized).await?;
                let explain = Explain {
                    logical: optimized.display_indent().to_string(),
                    physical: displayable(physical.as_ref()).indent(false).to_string(),
                };
                let frame = DataFrame::new(state, logical.clone());
                let batches = frame.limit(0, Some(sample_rows))?.collect().await?;
                let sample = basin_analytics::rows_as_json(&batches)?;
                let fields = fields_of(logical.schema().as_arrow());
                Ok::<_, Error>((fields, explain, sample, logical))
            });
            let (fields, explain, sample, logical) = tokio::time::timeout(deadline, sampled)
                .await
                .map_err(|_| Error::Timeout(deadline.as_millis() as u64))??;
            // Later steps read this one's rows computed in place.
            ctx.register_table(
                name.as_str(),
                Arc::new(ViewTable::new(logical, None)) as Arc<dyn TableProvider>,
            )?;
            let schema_changes = match &before {
                Some(before) => diff(before, &fields, &Default::default())?,
                None => Vec::new(),
            };
            plan.steps.push(StepPlan {
                name: name.clone(),
                action: action.to_owned(),
                depends_on: p.depends_on.clone(),
                breaking: schema_changes.iter().any(|c| c.breaking),
                schema: fields,
                schema_changes,
                explain,
                sample,
            });
        }
        plan.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(plan)
    }
}
