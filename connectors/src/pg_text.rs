//! PostgreSQL tables the table provider refuses (a column of a type it has
//! no mapping for): read with Basin's own SQL, where every column of a type
//! other than the plain numeric, boolean and text ones is cast to `text`.
//!
//! Nothing is pushed down here but the projection and a limit; filters are
//! applied by DataFusion. It is the slow path for odd tables, so that such
//! a table is readable at all.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, TryStreamExt};

use crate::sql_names::QualifiedName;
use crate::{Error, Result};

/// Rows per batch.
const BATCH_ROWS: usize = 8192;

/// The Arrow type a column is read as on this path: its own for the plain
/// types, text for everything else.
pub(crate) fn fallback_type(native: &str) -> DataType {
    match native {
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "boolean" => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// A table read through `SELECT col, other::text, … FROM table`.
pub(crate) fn table(
    client: Arc<tokio_postgres::Client>,
    name: &QualifiedName,
    columns: &[(String, String)],
) -> Result<Arc<dyn TableProvider>> {
    let schema = crate::source::text_path_schema(
        columns.iter().map(|(c, n)| (c.as_str(), n.as_str())),
        fallback_type,
    );
    let select = columns
        .iter()
        .map(|(column, native)| {
            let quoted = basin_sql::quote_ident(column);
            if fallback_type(native) == DataType::Utf8 {
                format!("{quoted}::text AS {quoted}")
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {select} FROM {}", name.quoted('"'));
    let partition = TextPartition {
        schema: schema.clone(),
        client,
        sql,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

struct TextPartition {
    schema: SchemaRef,
    client: Arc<tokio_postgres::Client>,
    sql: String,
}

impl std::fmt::Debug for TextPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextPartition")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for TextPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let client = self.client.clone();
        let sql = self.sql.clone();
        let schema = self.schema.clone();
        let rows = futures::stream::once(async move {
            client
                .query_raw(sql.as_str(), std::iter::empty::<&str>())
                .await
        })
        .try_flatten()
        .map_err(external_pg);
        let batches = rows.chunks(BATCH_ROWS).map(move |chunk| {
            let rows = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            decode(&schema, &rows)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

fn external_pg(err: tokio_postgres::Error) -> DataFusionError {
    DataFusionError::External(Box::new(Error::source(
        crate::FailureKind::System,
        err.to_string(),
    )))
}

fn decode(
    schema: &SchemaRef,
    rows: &[tokio_postgres::Row],
) -> datafusion::error::Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        macro_rules! column {
            ($builder:ty, $rust:ty) => {{
                let mut builder = <$builder>::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(row.try_get::<_, Option<$rust>>(i).map_err(external_pg)?);
                }
                Arc::new(builder.finish()) as ArrayRef
            }};
        }
        arrays.push(match field.data_type() {
            DataType::Int16 => column!(Int16Builder, i16),
            DataType::Int32 => column!(Int32Builder, i32),
            DataType::Int64 => column!(Int64Builder, i64),
            DataType::Float32 => column!(Float32Builder, f32),
            DataType::Float64 => column!(Float64Builder, f64),
            DataType::Boolean => column!(BooleanBuilder, bool),
            _ => {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for row in rows {
                    builder.append_option(row.try_get::<_, Option<&str>>(i).map_err(external_pg)?);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
        });
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
