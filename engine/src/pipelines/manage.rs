//! Saving pipelines as immutable versions, listing, diffing, activating,
//! archiving, instantiating templates, and the lineage graph across them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lineage::ColumnLineage;
use super::model::{PipelineDefinition, VisualDefinition};
use super::schedule::ParsedSchedule;
use super::validate::Validation;
use super::{Diagnostic, ParsedSource, PipelineSource};
use crate::catalog::{Page, PipelineRecord, PipelineVersionRecord, RunFilter, RunRecord};
use crate::datasets::schema::{SchemaChange, diff};
use crate::error::Entity;
use crate::identity::{Action, Principal, Resource};
use crate::{Engine, Error, Result};

/// How many next fire times a pipeline shows.
const NEXT_RUNS_SHOWN: usize = 5;

/// A pipeline as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineDetail {
    /// The row.
    #[serde(flatten)]
    pub pipeline: PipelineRecord,
    /// The active version's hash.
    pub hash: String,
    /// The active definition.
    pub definition: PipelineDefinition,
    /// What validation derived from it.
    pub validation: Validation,
    /// The next fire times of its schedule.
    pub next_runs: Vec<DateTime<Utc>>,
    /// Its latest run.
    pub last_run: Option<RunSummary>,
}

/// A line of a pipeline listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelineSummary {
    /// The row.
    #[serde(flatten)]
    pub pipeline: PipelineRecord,
    /// Free text.
    pub description: String,
    /// Steps in the active version.
    pub steps: usize,
    /// Whether it is a template.
    pub template: bool,
    /// The schedule's next fire time.
    pub next_run: Option<DateTime<Utc>>,
    /// Its latest run.
    pub last_run: Option<RunSummary>,
}

/// The gist of a run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Its status.
    pub status: crate::catalog::RunStatus,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&RunRecord> for RunSummary {
    fn from(run: &RunRecord) -> Self {
        Self {
            id: run.id.clone(),
            status: run.status,
            created_at: run.created_at,
            finished_at: run.finished_at,
        }
    }
}

/// What changed between two versions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionDiff {
    /// The older version.
    pub from: i64,
    /// The newer version.
    pub to: i64,
    /// Steps only in `to`.
    pub steps_added: Vec<String>,
    /// Steps only in `from`.
    pub steps_removed: Vec<String>,
    /// Steps in both that differ.
    pub steps_changed: Vec<StepDiff>,
    /// Whether params, defaults, schedule or triggers differ.
    pub settings_changed: Vec<String>,
    /// Whether any output schema change may break readers.
    pub breaking: bool,
}

/// How one step differs between versions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepDiff {
    /// The step.
    pub name: String,
    /// Its SQL before, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_from: Option<String>,
    /// Its SQL after, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_to: Option<String>,
    /// Materialization before and after, when it changed: `[before, after]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, min_items = 2, max_items = 2)]
    pub materialization: Option<(String, String)>,
    /// How its output columns changed.
    pub schema_changes: Vec<SchemaChange>,
    /// Whether any of those may break readers.
    pub breaking: bool,
}

/// A node of the lineage graph.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LineageNode {
    /// `dataset:<name>`, `view:<name>`, `table:<catalog.schema.table>` or `step:<pipeline>/<step>`.
    pub id: String,
    /// `dataset`, `view`, `table` or `step`.
    pub kind: String,
    /// The pipeline (steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Column lineage of a step's output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnLineage>,
}

/// An edge of the lineage graph: `from` feeds `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
pub struct LineageEdge {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
}

/// A part of the lineage graph.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineageGraph {
    /// The nodes.
    pub nodes: Vec<LineageNode>,
    /// The edges.
    pub edges: Vec<LineageEdge>,
}

/// Which way to walk from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Towards what it reads.
    Upstream,
    /// Towards what reads it.
    Downstream,
    /// Both.
    Both,
}

impl Engine {
    /// Checks `principal` may see (`Read`) or change and run (`Write`)
    /// pipelines: pipelines read any table, so keys limited to datasets may not.
    pub fn authorize_pipelines(&self, principal: &Principal, action: Action) -> Result<()> {
        principal.authorize(action, Resource::Global)?;
        if principal.dataset_limit().is_some() {
            return Err(Error::Forbidden(
                "this API key is limited to datasets: pipelines are out of its reach".into(),
            ));
        }
        Ok(())
    }

    /// A pipeline by id or name.
    pub async fn pipeline_record(&self, id_or_name: &str) -> Result<PipelineRecord> {
        self.catalog()
            .pipeline(id_or_name)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Pipeline, id_or_name.to_owned()))
    }

    /// One version of a pipeline.
    pub(crate) async fn version_record(
        &self,
        pipeline: &PipelineRecord,
        version: i64,
    ) -> Result<PipelineVersionRecord> {
        self.catalog()
            .pipeline_version(&pipeline.id, version)
            .await?
            .ok_or_else(|| {
                Error::VersionNotFound(format!(
                    "pipeline `{}` has no version {version}",
                    pipeline.name
                ))
            })
    }

    /// Validates a source as `principal` would save it, without saving.
    pub async fn validate_source(
        &self,
        principal: &Principal,
        source: PipelineSource,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Validation> {
        self.authorize_pipelines(principal, Action::Read)?;
        let parsed = match source.parse() {
            Ok(parsed) => parsed,
            Err(basin_pipeline_model::Error::Invalid { diagnostics, .. }) => {
                return Ok(Validation {
                    valid: false,
                    diagnostics,
                    order: Vec::new(),
                    levels: Vec::new(),
                    steps: Vec::new(),
                    elapsed_ms: 0,
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.validate_parsed(principal, &parsed, params).await
    }

    async fn validate_parsed(
        &self,
        principal: &Principal,
        parsed: &ParsedSource,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Validation> {
        let mut validation = self
            .validate_pipeline(principal, &parsed.definition, params)
            .await?;
        if let Some(claimed) = &parsed.claimed_edges {
            let derived: BTreeSet<(String, String)> =
                derived_edges(&validation).into_iter().collect();
            let claimed: BTreeSet<(String, String)> = claimed.iter().cloned().collect();
            for (from, to) in claimed.difference(&derived) {
                validation.diagnostics.push(Diagnostic::error(
                    Some(to),
                    "edge_mismatch",
                    format!(
                        "the edge {from} → {to} is drawn but the step's SQL does not read `{from}`"
                    ),
                ));
            }
            for (from, to) in derived.difference(&claimed) {
                validation.diagnostics.push(Diagnostic::error(
                    Some(to),
                    "edge_mismatch",
                    format!("step `{to}` reads `{from}` but no edge is drawn for it"),
                ));
            }
            validation.valid = validation
                .diagnostics
                .iter()
                .all(|d| d.severity != super::Severity::Error);
        }
        Ok(validation)
    }

    /// Creates a pipeline with its first version; refuses an invalid one.
    /// Audited, with the door it came through.
    pub async fn create_pipeline(
        &self,
        principal: &Principal,
        name: &str,
        source: PipelineSource,
    ) -> Result<PipelineDetail> {
        let create = async {
            self.authorize_pipelines(principal, Action::Write)?;
            basin_sql::validate_name(name)?;
            let parsed = source.parse()?;
            self.create_parsed(principal, name, parsed).await
        };
        self.audited(
            principal,
            "pipeline.create",
            &format!("pipeline:{name}"),
            create,
        )
        .await
    }

    async fn create_parsed(
        &self,
        principal: &Principal,
        name: &str,
        parsed: ParsedSource,
    ) -> Result<PipelineDetail> {
        let validation = self
            .validate_parsed(principal, &parsed, &serde_json::Map::new())
            .await?
            .into_result()?;
        let now = Utc::now();
        let pipeline = PipelineRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            active_version: 1,
            created_by: principal.user_id.clone(),
            created_at: now,
            updated_at: now,
            archived_at: None,
            schedule_cursor: Some(now),
        };
        let version = version_row(&pipeline.id, 1, &parsed.definition, &validation, principal)?;
        self.catalog().insert_pipeline(&pipeline, &version).await?;
        self.detail_of(&pipeline.id).await
    }

    /// Saves a new version and activates it; an unchanged definition keeps
    /// the active version. `expected_version` guards against lost updates.
    /// Audited, with the door it came through.
    pub async fn save_pipeline(
        &self,
        principal: &Principal,
        id_or_name: &str,
        source: PipelineSource,
        expected_version: Option<i64>,
    ) -> Result<(PipelineDetail, bool)> {
        let target = format!("pipeline:{id_or_name}");
        let save = self.save_pipeline_once(principal, id_or_name, source, expected_version);
        self.audited(principal, "pipeline.save", &target, save)
            .await
    }

    async fn save_pipeline_once(
        &self,
        principal: &Principal,
        id_or_name: &str,
        source: PipelineSource,
        expected_version: Option<i64>,
    ) -> Result<(PipelineDetail, bool)> {
        self.authorize_pipelines(principal, Action::Write)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        if let Some(expected) = expected_version
            && expected != pipeline.active_version
        {
            return Err(Error::Conflict(format!(
                "pipeline `{}` is at version {}, not {expected}: read it again and retry",
                pipeline.name, pipeline.active_version
            )));
        }
        let parsed = source.parse()?;
        let active = self
            .version_record(&pipeline, pipeline.active_version)
            .await?;
        if active.hash == parsed.definition.content_hash() {
            return Ok((self.detail_of(&pipeline.id).await?, false));
        }
        let validation = self
            .validate_parsed(principal, &parsed, &serde_json::Map::new())
            .await?
            .into_result()?;
        let latest = self
            .catalog()
            .pipeline_versions(&pipeline.id)
            .await?
            .first()
            .map_or(0, |v| v.version);
        let version = version_row(
            &pipeline.id,
            latest + 1,
            &parsed.definition,
            &validation,
            principal,
        )?;
        self.catalog()
            .add_pipeline_version(&version, pipeline.active_version)
            .await?;
        // A schedule that changed starts counting from now.
        self.catalog()
            .set_schedule_cursor(&pipeline.id, Utc::now())
            .await?;
        Ok((self.detail_of(&pipeline.id).await?, true))
    }

    /// A pipeline with its active definition, validation, schedule and last run.
    pub async fn pipeline_detail(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<PipelineDetail> {
        self.authorize_pipelines(principal, Action::Read)?;
        self.detail_of(id_or_name).await
    }

    /// A pipeline's detail, for callers that have authorized already.
    pub(crate) async fn detail_of(&self, id_or_name: &str) -> Result<PipelineDetail> {
        let pipeline = self.pipeline_record(id_or_name).await?;
        let version = self
            .version_record(&pipeline, pipeline.active_version)
            .await?;
        let definition: PipelineDefinition = serde_json::from_value(version.definition)
            .map_err(|e| Error::internal("stored pipeline definition", e))?;
        let validation: Validation = serde_json::from_value(version.outputs)
            .map_err(|e| Error::internal("stored pipeline outputs", e))?;
        let next_runs = next_runs(&definition, &pipeline, NEXT_RUNS_SHOWN);
        let last_run = self.last_run(&pipeline.id).await?;
        Ok(PipelineDetail {
            pipeline,
            hash: version.hash,
            definition,
            validation,
            next_runs,
            last_run,
        })
    }

    async fn last_run(&self, pipeline_id: &str) -> Result<Option<RunSummary>> {
        let filter = RunFilter {
            pipeline_id: Some(pipeline_id.to_owned()),
            status: None,
        };
        let (runs, _) = self
            .catalog()
            .list_runs(
                &filter,
                Page {
                    limit: 1,
                    offset: 0,
                },
            )
            .await?;
        Ok(runs.first().map(RunSummary::from))
    }

    /// A page of pipelines by name, and the total.
    pub async fn list_pipelines(
        &self,
        principal: &Principal,
        include_archived: bool,
        page: Page,
    ) -> Result<(Vec<PipelineSummary>, u64)> {
        self.authorize_pipelines(principal, Action::Read)?;
        let (pipelines, total) = self
            .catalog()
            .list_pipelines(include_archived, page)
            .await?;
        let mut summaries = Vec::with_capacity(pipelines.len());
        for pipeline in pipelines {
            let version = self
                .version_record(&pipeline, pipeline.active_version)
                .await?;
            let definition: PipelineDefinition = serde_json::from_value(version.definition)
                .map_err(|e| Error::internal("stored pipeline definition", e))?;
            summaries.push(PipelineSummary {
                description: definition.description.clone(),
                steps: definition.steps.len(),
                template: definition.template,
                next_run: next_runs(&definition, &pipeline, 1).first().copied(),
                last_run: self.last_run(&pipeline.id).await?,
                pipeline,
            });
        }
        Ok((summaries, total))
    }

    /// Every version of a pipeline, newest first.
    pub async fn pipeline_versions(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<Vec<PipelineVersionRecord>> {
        self.authorize_pipelines(principal, Action::Read)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        self.catalog()
            .pipeline_versions(&pipeline.id)
            .await
            .map_err(Error::from)
    }

    /// One version of a pipeline.
    pub async fn pipeline_version(
        &self,
        principal: &Principal,
        id_or_name: &str,
        version: i64,
    ) -> Result<PipelineVersionRecord> {
        self.authorize_pipelines(principal, Action::Read)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        self.version_record(&pipeline, version).await
    }

    /// What changed from version `from` to version `to`.
    pub async fn diff_pipeline_versions(
        &self,
        principal: &Principal,
        id_or_name: &str,
        from: i64,
        to: i64,
    ) -> Result<VersionDiff> {
        self.authorize_pipelines(principal, Action::Read)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        let (old, new) = (
            self.version_record(&pipeline, from).await?,
            self.version_record(&pipeline, to).await?,
        );
        let parse = |v: &PipelineVersionRecord| -> Result<(PipelineDefinition, Validation)> {
            Ok((
                serde_json::from_value(v.definition.clone())
                    .map_err(|e| Error::internal("stored pipeline definition", e))?,
                serde_json::from_value(v.outputs.clone())
                    .map_err(|e| Error::internal("stored pipeline outputs", e))?,
            ))
        };
        let (old_def, old_out) = parse(&old)?;
        let (new_def, new_out) = parse(&new)?;
        diff_definitions(from, to, (&old_def, &old_out), (&new_def, &new_out))
    }

    /// Makes an earlier (or later) version the active one: a rollback.
    pub async fn activate_pipeline_version(
        &self,
        principal: &Principal,
        id_or_name: &str,
        version: i64,
    ) -> Result<PipelineDetail> {
        self.authorize_pipelines(principal, Action::Write)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        self.version_record(&pipeline, version).await?;
        self.catalog()
            .activate_pipeline_version(&pipeline.id, version)
            .await?;
        // Fire times of a schedule that was not active are not owed.
        self.catalog()
            .set_schedule_cursor(&pipeline.id, Utc::now())
            .await?;
        self.detail_of(&pipeline.id).await
    }

    /// Archives (or with `false`, restores) a pipeline: an archived one
    /// keeps its versions and runs but does not run.
    pub async fn archive_pipeline(
        &self,
        principal: &Principal,
        id_or_name: &str,
        archived: bool,
    ) -> Result<PipelineDetail> {
        self.authorize_pipelines(principal, Action::Write)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        let now = Utc::now();
        if !archived {
            // Fire times missed while archived are not owed.
            self.catalog()
                .set_schedule_cursor(&pipeline.id, now)
                .await?;
        }
        self.catalog()
            .set_pipeline_archived(&pipeline.id, archived.then_some(now))
            .await?;
        self.detail_of(&pipeline.id).await
    }

    /// Creates pipeline `name` from a template with checked params.
    pub async fn instantiate_template(
        &self,
        principal: &Principal,
        template: &str,
        name: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<PipelineDetail> {
        self.authorize_pipelines(principal, Action::Write)?;
        basin_sql::validate_name(name)?;
        let detail = self.detail_of(template).await?;
        if !detail.definition.template {
            return Err(Error::RunState(format!(
                "pipeline `{}` is not a template",
                detail.pipeline.name
            )));
        }
        let values = super::model::resolve_params(&detail.definition.params, params)?;
        let definition = detail.definition.instantiate(&values)?;
        self.create_parsed(
            principal,
            name,
            ParsedSource {
                definition,
                claimed_edges: None,
            },
        )
        .await
    }

    /// The active definition in the visual form.
    pub async fn pipeline_visual(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<VisualDefinition> {
        let detail = self.pipeline_detail(principal, id_or_name).await?;
        Ok(detail
            .definition
            .to_visual(&derived_edges(&detail.validation)))
    }

    /// One pipeline's own lineage: its steps, the edges into and out of them
    /// and the nodes at their other ends.
    pub async fn pipeline_lineage(
        &self,
        principal: &Principal,
        id_or_name: &str,
    ) -> Result<LineageGraph> {
        let detail = self.pipeline_detail(principal, id_or_name).await?;
        let graph = self.lineage(principal, None, Direction::Both, 0).await?;
        let prefix = format!("step:{}/", detail.pipeline.name);
        let edges: Vec<LineageEdge> = graph
            .edges
            .into_iter()
            .filter(|e| e.from.starts_with(&prefix) || e.to.starts_with(&prefix))
            .collect();
        let touched: BTreeSet<&str> = edges
            .iter()
            .flat_map(|e| [e.from.as_str(), e.to.as_str()])
            .collect();
        let nodes = graph
            .nodes
            .into_iter()
            .filter(|n| n.id.starts_with(&prefix) || touched.contains(n.id.as_str()))
            .collect();
        Ok(LineageGraph { nodes, edges })
    }

    /// The lineage graph of every live pipeline's active version, walked
    /// from `node` (all of it when `None`) `depth` edges in `direction`.
    pub async fn lineage(
        &self,
        principal: &Principal,
        node: Option<&str>,
        direction: Direction,
        depth: usize,
    ) -> Result<LineageGraph> {
        self.authorize_pipelines(principal, Action::Read)?;
        let mut nodes: BTreeMap<String, LineageNode> = BTreeMap::new();
        let mut edges: BTreeSet<LineageEdge> = BTreeSet::new();
        for pipeline in self.catalog().live_pipelines().await? {
            let version = self
                .version_record(&pipeline, pipeline.active_version)
                .await?;
            let validation: Validation = serde_json::from_value(version.outputs)
                .map_err(|e| Error::internal("stored pipeline outputs", e))?;
            add_pipeline_lineage(&pipeline.name, &validation, &mut nodes, &mut edges);
        }
        let Some(start) = node else {
            return Ok(LineageGraph {
                nodes: nodes.into_values().collect(),
                edges: edges.into_iter().collect(),
            });
        };
        if !nodes.contains_key(start) {
            return Err(Error::InvalidInput(format!(
                "no lineage node `{start}`: nodes are dataset:<name>, view:<name>, table:<catalog.schema.table> or step:<pipeline>/<step>"
            )));
        }
        let mut keep: BTreeSet<String> = BTreeSet::from([start.to_owned()]);
        let mut kept_edges = BTreeSet::new();
        let mut queue = VecDeque::from([(start.to_owned(), 0usize)]);
        while let Some((at, hops)) = queue.pop_front() {
            if hops >= depth {
                continue;
            }
            for edge in &edges {
                let next = match direction {
                    Direction::Upstream if edge.to == at => &edge.from,
                    Direction::Downstream if edge.from == at => &edge.to,
                    Direction::Both if edge.to == at => &edge.from,
                    Direction::Both if edge.from == at => &edge.to,
                    _ => continue,
                };
                kept_edges.insert(edge.clone());
                if keep.insert(next.clone()) {
                    queue.push_back((next.clone(), hops + 1));
                }
            }
        }
        Ok(LineageGraph {
            nodes: nodes
                .into_values()
                .filter(|n| keep.contains(&n.id))
                .collect(),
            edges: kept_edges.into_iter().collect(),
        })
    }
}

/// The stored row of a new version.
fn version_row(
    pipeline_id: &str,
    version: i64,
    definition: &PipelineDefinition,
    validation: &Validation,
    principal: &Principal,
) -> Result<PipelineVersionRecord> {
    Ok(PipelineVersionRecord {
        pipeline_id: pipeline_id.to_owned(),
        version,
        hash: definition.content_hash(),
        definition: serde_json::to_value(definition)
            .map_err(|e| Error::internal("pipeline definition", e))?,
        outputs: serde_json::to_value(validation)
            .map_err(|e| Error::internal("pipeline outputs", e))?,
        created_by: principal.user_id.clone(),
        created_at: Utc::now(),
    })
}

/// The next fire times of a live pipeline's enabled schedule.
fn next_runs(
    definition: &PipelineDefinition,
    pipeline: &PipelineRecord,
    count: usize,
) -> Vec<DateTime<Utc>> {
    match &definition.schedule {
        Some(schedule) if schedule.enabled && pipeline.archived_at.is_none() => {
            ParsedSchedule::parse(schedule)
                .map(|s| s.next_times(Utc::now(), count))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// `(from, to)` edges the SQL implies: upstream step or source table → step.
pub fn derived_edges(validation: &Validation) -> Vec<(String, String)> {
    let mut edges = Vec::new();
    for step in &validation.steps {
        for upstream in step.depends_on.iter().chain(&step.sources) {
            edges.push((upstream.clone(), step.name.clone()));
        }
    }
    edges
}

/// The lineage node a table name read by a step stands for.
fn table_node(name: &str, producers: &HashMap<String, String>) -> (String, &'static str) {
    if let Some(id) = producers.get(name) {
        return (id.clone(), "");
    }
    let bare = name
        .strip_prefix("basin.public.")
        .or_else(|| name.strip_prefix("public."))
        .unwrap_or(name);
    if bare.contains('.') {
        (format!("table:{name}"), "table")
    } else {
        (format!("dataset:{bare}"), "dataset")
    }
}

fn add_pipeline_lineage(
    pipeline: &str,
    validation: &Validation,
    nodes: &mut BTreeMap<String, LineageNode>,
    edges: &mut BTreeSet<LineageEdge>,
) {
    // What each step's name stands for when another step reads it.
    let mut producers: HashMap<String, String> = HashMap::new();
    for step in &validation.steps {
        let step_id = format!("step:{pipeline}/{}", step.name);
        nodes.insert(
            step_id.clone(),
            LineageNode {
                id: step_id.clone(),
                kind: "step".into(),
                pipeline: Some(pipeline.to_owned()),
                columns: step.columns.clone(),
            },
        );
        let output = match step.materialization.as_str() {
            "table" | "incremental" => Some((format!("dataset:{}", step.name), "dataset")),
            "view" => Some((format!("view:{}", step.name), "view")),
            _ => None,
        };
        match output {
            Some((id, kind)) => {
                nodes.entry(id.clone()).or_insert_with(|| LineageNode {
                    id: id.clone(),
                    kind: kind.into(),
                    pipeline: None,
                    columns: Vec::new(),
                });
                edges.insert(LineageEdge {
                    from: step_id,
                    to: id.clone(),
                });
                producers.insert(step.name.clone(), id);
            }
            None => {
                producers.insert(step.name.clone(), step_id);
            }
        }
    }
    for step in &validation.steps {
        let step_id = format!("step:{pipeline}/{}", step.name);
        for name in step.depends_on.iter().chain(&step.sources) {
            let (id, kind) = table_node(name, &producers);
            if !kind.is_empty() {
                nodes.entry(id.clone()).or_insert_with(|| LineageNode {
                    id: id.clone(),
                    kind: kind.into(),
                    pipeline: None,
                    columns: Vec::new(),
                });
            }
            edges.insert(LineageEdge {
                from: id,
                to: step_id.clone(),
            });
        }
    }
}

fn diff_definitions(
    from: i64,
    to: i64,
    (old, old_out): (&PipelineDefinition, &Validation),
    (new, new_out): (&PipelineDefinition, &Validation),
) -> Result<VersionDiff> {
    let old_names: BTreeSet<&str> = old.steps.iter().map(|s| s.name.as_str()).collect();
    let new_names: BTreeSet<&str> = new.steps.iter().map(|s| s.name.as_str()).collect();
    let mut steps_changed = Vec::new();
    for step in &new.steps {
        let Some(before) = old.steps.iter().find(|s| s.name == step.name) else {
            continue;
        };
        let old_schema = old_out.step(&step.name).and_then(|s| s.schema.clone());
        let new_schema = new_out.step(&step.name).and_then(|s| s.schema.clone());
        let schema_changes = match (old_schema, new_schema) {
            (Some(a), Some(b)) => diff(&a, &b, &BTreeMap::new())?,
            _ => Vec::new(),
        };
        let sql_changed = before.sql != step.sql;
        let materialization = (before.materialization != step.materialization).then(|| {
            (
                before.materialization.kind().to_owned(),
                step.materialization.kind().to_owned(),
            )
        });
        if sql_changed || materialization.is_some() || !schema_changes.is_empty() || before != step
        {
            let breaking = schema_changes.iter().any(|c| c.breaking);
            steps_changed.push(StepDiff {
                name: step.name.clone(),
                sql_from: sql_changed.then(|| before.sql.clone()),
                sql_to: sql_changed.then(|| step.sql.clone()),
                materialization,
                schema_changes,
                breaking,
            });
        }
    }
    let mut settings_changed = Vec::new();
    if old.params != new.params {
        settings_changed.push("params".to_owned());
    }
    if old.defaults != new.defaults || old.max_parallel != new.max_parallel {
        settings_changed.push("defaults".to_owned());
    }
    if old.schedule != new.schedule {
        settings_changed.push("schedule".to_owned());
    }
    if old.triggers != new.triggers {
        settings_changed.push("triggers".to_owned());
    }
    if old.description != new.description {
        settings_changed.push("description".to_owned());
    }
    let steps_removed: Vec<String> = old_names
        .difference(&new_names)
        .map(|s| (*s).to_owned())
        .collect();
    let breaking = !steps_removed.is_empty() || steps_changed.iter().any(|s| s.breaking);
    Ok(VersionDiff {
        from,
        to,
        steps_added: new_names
            .difference(&old_names)
            .map(|s| (*s).to_owned())
            .collect(),
        steps_removed,
        steps_changed,
        settings_changed,
        breaking,
    })
}
