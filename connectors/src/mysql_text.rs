//! MySQL tables the table provider refuses (a column of a type it has no
//! mapping for, such as `YEAR`): read with Basin's own SQL, where integer
//! and floating columns keep a numeric type and every other column is cast
//! to text. Only the projection-free scan and a limit apply here; filters
//! are applied by DataFusion.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use mysql_async::prelude::Queryable;

use crate::sql_names::QualifiedName;
use crate::{Error, FailureKind, Result};

const BATCH_ROWS: usize = 8192;

/// The Arrow type a column is read as on this path.
pub(crate) fn fallback_type(native: &str) -> DataType {
    let base = native
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let unsigned = native.to_lowercase().contains("unsigned");
    match base.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" => DataType::Int64,
        "bigint" if !unsigned => DataType::Int64,
        "float" | "double" => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// A table read through `SELECT col, CAST(other AS CHAR), … FROM table` on
/// a connection of its own per scan.
pub(crate) fn table(
    opts: mysql_async::Opts,
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
            let quoted = format!("`{}`", column.replace('`', "``"));
            if fallback_type(native) == DataType::Utf8 {
                format!("CAST({quoted} AS CHAR) AS {quoted}")
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {select} FROM {}", name.quoted('`'));
    let partition = TextPartition {
        schema: schema.clone(),
        opts,
        sql,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

struct TextPartition {
    schema: SchemaRef,
    opts: mysql_async::Opts,
    sql: String,
}

impl std::fmt::Debug for TextPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextPartition")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

fn external(message: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(Error::source(
        FailureKind::System,
        message.to_string(),
    )))
}

impl PartitionStream for TextPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let (opts, sql, schema) = (self.opts.clone(), self.sql.clone(), self.schema.clone());
        // The rows borrow the connection; a task owns both and hands over batches.
        tokio::spawn(async move {
            let result: datafusion::error::Result<()> = async {
                let mut conn = mysql_async::Conn::new(opts).await.map_err(external)?;
                let mut rows = conn.query_iter(sql).await.map_err(external)?;
                let mut chunk = Vec::with_capacity(BATCH_ROWS);
                while let Some(row) = rows.next().await.map_err(external)? {
                    chunk.push(row);
                    if chunk.len() == BATCH_ROWS {
                        let batch = decode(&schema, std::mem::take(&mut chunk))?;
                        if sender.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = sender.send(Ok(decode(&schema, chunk)?)).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = sender.send(Err(e)).await;
            }
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

fn decode(
    schema: &SchemaRef,
    mut rows: Vec<mysql_async::Row>,
) -> datafusion::error::Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        arrays.push(match field.data_type() {
            DataType::Int64 => {
                let mut builder = Int64Builder::with_capacity(rows.len());
                for row in &mut rows {
                    let value: Option<i64> =
                        row.take_opt(i).transpose().map_err(external)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
            DataType::Float64 => {
                let mut builder = Float64Builder::with_capacity(rows.len());
                for row in &mut rows {
                    let value: Option<f64> =
                        row.take_opt(i).transpose().map_err(external)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
            _ => {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for row in &mut rows {
                    let value: Option<String> =
                        row.take_opt(i).transpose().map_err(external)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
        });
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
