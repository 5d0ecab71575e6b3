//! Schema history: every schema a dataset or a connection stream has had,
//! recorded on each write, sync and discovery with its diff from the one
//! before; and the two sides of a schema diff a caller may ask for.

use std::collections::BTreeMap;

use arrow::datatypes::Schema;
use chrono::Utc;
use serde::Deserialize;

use crate::catalog::SchemaHistoryRecord;
use crate::datasets::schema::{
    SchemaChange, SchemaField, arrow_type, diff, fields_of, fingerprint,
};
use crate::error::Entity;
use crate::{Engine, Error, Result};

/// One side of a schema diff.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SchemaSide {
    /// Fields given inline.
    Fields(Vec<SchemaField>),
    /// A dataset's schema, at a version or the latest.
    Dataset {
        /// The dataset.
        dataset: String,
        /// A Delta version; the latest when absent.
        #[serde(default)]
        version: Option<i64>,
    },
    /// A connection stream's last recorded schema (from discovery or a sync).
    Stream {
        /// The connection's id or name.
        connection: String,
        /// The stream.
        stream: String,
    },
}

impl Engine {
    /// The fields of one side of a diff, checking the caller may read it.
    pub async fn schema_side(
        &self,
        principal: &crate::identity::Principal,
        side: SchemaSide,
    ) -> Result<Vec<SchemaField>> {
        match side {
            SchemaSide::Fields(fields) => {
                for f in &fields {
                    arrow_type(f)?;
                }
                Ok(fields)
            }
            SchemaSide::Dataset { dataset, version } => {
                if !principal.can_see_dataset(&dataset) {
                    return Err(Error::not_found(Entity::Dataset, dataset));
                }
                principal.authorize(
                    crate::identity::Action::Read,
                    crate::identity::Resource::Dataset(&dataset),
                )?;
                let at = version.map(crate::datasets::TimeTravel::Version);
                let record = self.dataset_record(&dataset).await?;
                let table = crate::datasets::open_table(&record.location, at).await?;
                let snapshot = crate::datasets::snapshot_of(&table).await?;
                Ok(fields_of(&snapshot.schema))
            }
            SchemaSide::Stream { connection, stream } => {
                self.authorize_connections(principal, crate::identity::Action::Read)?;
                let record = self.connection_record(&connection).await?;
                let latest = self
                    .catalog()
                    .latest_schema(&stream_subject(&record.id, &stream))
                    .await?
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "no schema is recorded for stream `{stream}` of `{connection}`: discover it first"
                        ))
                    })?;
                serde_json::from_value(latest.schema)
                    .map_err(|e| Error::internal("schema history", e))
            }
        }
    }

    /// Records `fields` as the subject's schema when it differs from the last
    /// recorded one; returns the changes (empty when unchanged).
    pub(crate) async fn record_schema(
        &self,
        subject: &str,
        version: Option<i64>,
        fields: &[SchemaField],
        cause: &str,
    ) -> Result<Vec<SchemaChange>> {
        // Discovery reads nullability from the source's catalog and syncs from
        // the table provider, which may disagree: for streams it is left out,
        // so the history records real changes only.
        let stream = subject.starts_with("stream:");
        let fields: Vec<SchemaField> = fields
            .iter()
            .cloned()
            .map(|mut f| {
                if stream {
                    f.nullable = true;
                }
                f
            })
            .collect();
        let fields = fields.as_slice();
        let print = fingerprint(fields);
        let previous = self.catalog().latest_schema(subject).await?;
        if previous.as_ref().is_some_and(|p| p.fingerprint == print) {
            return Ok(Vec::new());
        }
        let changes = match &previous {
            Some(p) => {
                let old: Vec<SchemaField> =
                    serde_json::from_value(p.schema.clone()).unwrap_or_default();
                diff(&old, fields, &BTreeMap::new())?
            }
            None => Vec::new(),
        };
        self.catalog()
            .append_schema(&SchemaHistoryRecord {
                seq: 0,
                subject: subject.to_owned(),
                version,
                fingerprint: print,
                schema: serde_json::to_value(fields)
                    .map_err(|e| Error::internal("schema history", e))?,
                changes: serde_json::to_value(&changes)
                    .map_err(|e| Error::internal("schema history", e))?,
                cause: cause.to_owned(),
                recorded_at: Utc::now(),
            })
            .await?;
        Ok(changes)
    }

    /// Records a dataset's current schema after a write.
    pub(crate) async fn record_dataset_schema(
        &self,
        dataset_id: &str,
        version: i64,
        schema: &Schema,
        cause: &str,
    ) {
        let subject = format!("dataset:{dataset_id}");
        if let Err(e) = self
            .record_schema(&subject, Some(version), &fields_of(schema), cause)
            .await
        {
            // History is a record, not part of the write: the write stands.
            tracing::warn!(error = %e, dataset = dataset_id, "could not record schema history");
        }
    }

    /// The schema history of a dataset, oldest first.
    pub async fn dataset_schema_history(
        &self,
        principal: &crate::identity::Principal,
        name: &str,
    ) -> Result<Vec<SchemaHistoryRecord>> {
        let record = self.dataset(principal, name).await?;
        self.catalog()
            .schema_history(&format!("dataset:{}", record.id))
            .await
            .map_err(Error::from)
    }
}

/// The schema history subject of a connection's stream.
pub(crate) fn stream_subject(connection_id: &str, stream: &str) -> String {
    format!("stream:{connection_id}:{stream}")
}
