//! PostgreSQL's side of the [text path](crate::text_path): `column::text`
//! for every column of a type other than the plain numeric, boolean and text
//! ones, read with `query_raw`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use crate::text_path::{BATCH_ROWS, TextDialect, read_failure};

/// A PostgreSQL connection reading on the text path.
#[derive(Debug)]
pub(crate) struct PostgresText(pub(crate) Arc<tokio_postgres::Client>);

impl TextDialect for PostgresText {
    const QUOTE: char = '"';

    fn column_type(native: &str) -> DataType {
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

    fn as_text(quoted: &str) -> String {
        format!("{quoted}::text")
    }

    fn execute(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream {
        let client = self.0.clone();
        let decoded = schema.clone();
        let rows = futures::stream::once(async move {
            client
                .query_raw(sql.as_str(), std::iter::empty::<&str>())
                .await
        })
        .try_flatten()
        .map_err(read_failure);
        let batches = rows.chunks(BATCH_ROWS).map(move |chunk| {
            let rows = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            decode(&decoded, &rows)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
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
                    builder
                        .append_option(row.try_get::<_, Option<$rust>>(i).map_err(read_failure)?);
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
                    builder.append_option(row.try_get::<_, Option<&str>>(i).map_err(read_failure)?);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
        });
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
