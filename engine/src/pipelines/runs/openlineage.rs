//! A run as OpenLineage run events.

#[allow(unused_imports)]
use super::*;

impl Engine {
    /// A run as OpenLineage run events: a START and a COMPLETE or FAIL per
    /// step that ran, with input and output datasets and column lineage.
    pub async fn openlineage_events(&self, principal: &Principal, id: &str) -> Result<Vec<Value>> {
        let run = self.run_record(principal, id).await?;
        let pipeline = self.pipeline_record(&run.pipeline_id).await?;
        let version = self.version_record(&pipeline, run.version).await?;
        let validation: Validation = serde_json::from_value(version.outputs)
            .map_err(|e| Error::internal("stored pipeline outputs", e))?;
        let mut events = Vec::new();
        for step in &run.steps {
            let (Some(started), Some(output)) = (step.started_at, validation.step(&step.name))
            else {
                continue;
            };
            let run_id = step_run_uuid(&run.id, &step.name);
            let job =
                json!({ "namespace": "basin", "name": format!("{}.{}", pipeline.name, step.name) });
            let inputs: Vec<Value> = output
                .depends_on
                .iter()
                .chain(&output.sources)
                .map(|t| json!({ "namespace": "basin", "name": t }))
                .collect();
            let mut fields = serde_json::Map::new();
            for column in &output.columns {
                fields.insert(
                    column.column.clone(),
                    json!({ "inputFields": column.sources.iter().map(|s| json!({
                        "namespace": "basin", "name": s.table, "field": s.column,
                    })).collect::<Vec<_>>() }),
                );
            }
            let schema_fields: Vec<Value> = output
                .schema
                .iter()
                .flatten()
                .map(|f| json!({ "name": f.name, "type": f.data_type }))
                .collect();
            let facet =
                |name: &str| format!("https://openlineage.io/spec/facets/1-0-1/{name}.json");
            let outputs = vec![json!({
                "namespace": "basin",
                "name": step.name,
                "facets": {
                    "schema": { "_producer": PRODUCER, "_schemaURL": facet("SchemaDatasetFacet"), "fields": schema_fields },
                    "columnLineage": { "_producer": PRODUCER, "_schemaURL": facet("ColumnLineageDatasetFacet"), "fields": fields },
                },
            })];
            let event = |kind: &str, at: chrono::DateTime<Utc>| {
                json!({
                    "eventType": kind,
                    "eventTime": at.to_rfc3339(),
                    "producer": PRODUCER,
                    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                    "run": { "runId": run_id, "facets": { "parent": {
                        "_producer": PRODUCER,
                        "_schemaURL": facet("ParentRunFacet"),
                        "run": { "runId": run.id },
                        "job": { "namespace": "basin", "name": pipeline.name },
                    } } },
                    "job": job,
                    "inputs": inputs,
                    "outputs": outputs,
                })
            };
            events.push(event("START", started));
            match (step.status, step.finished_at) {
                (StepStatus::Succeeded, Some(at)) => events.push(event("COMPLETE", at)),
                (StepStatus::Failed, Some(at)) => events.push(event("FAIL", at)),
                (StepStatus::Canceled, Some(at)) => events.push(event("ABORT", at)),
                _ => {}
            }
        }
        Ok(events)
    }
}

/// Who OpenLineage events say produced them.
pub(super) const PRODUCER: &str = "https://example.invalid/basin";

/// A stable UUID for one step of one run (OpenLineage wants a UUID per job run).
pub(super) fn step_run_uuid(run: &str, step: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{run}/{step}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
