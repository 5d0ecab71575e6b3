//! MySQL's side of the [text path](crate::text_path): integer and floating
//! columns keep a numeric type, every other column (such as `YEAR`) is read
//! as `CAST(column AS CHAR)`, on a connection of its own per scan.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use mysql_async::prelude::Queryable;

use crate::text_path::{BATCH_ROWS, TextDialect, read_failure};

/// MySQL connection options for reading on the text path.
#[derive(Debug)]
pub(crate) struct MysqlText(pub(crate) mysql_async::Opts);

impl TextDialect for MysqlText {
    const QUOTE: char = '`';

    fn column_type(native: &str) -> DataType {
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

    fn as_text(quoted: &str) -> String {
        format!("CAST({quoted} AS CHAR)")
    }

    fn execute(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let (opts, decoded) = (self.0.clone(), schema.clone());
        // The rows borrow the connection; a task owns both and hands over batches.
        tokio::spawn(async move {
            let result: datafusion::error::Result<()> = async {
                let mut conn = mysql_async::Conn::new(opts).await.map_err(read_failure)?;
                let mut rows = conn.query_iter(sql).await.map_err(read_failure)?;
                let mut chunk = Vec::with_capacity(BATCH_ROWS);
                while let Some(row) = rows.next().await.map_err(read_failure)? {
                    chunk.push(row);
                    if chunk.len() == BATCH_ROWS {
                        let batch = decode(&decoded, std::mem::take(&mut chunk))?;
                        if sender.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = sender.send(Ok(decode(&decoded, chunk)?)).await;
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
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
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
                        row.take_opt(i).transpose().map_err(read_failure)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
            DataType::Float64 => {
                let mut builder = Float64Builder::with_capacity(rows.len());
                for row in &mut rows {
                    let value: Option<f64> =
                        row.take_opt(i).transpose().map_err(read_failure)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
            _ => {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for row in &mut rows {
                    let value: Option<String> =
                        row.take_opt(i).transpose().map_err(read_failure)?.flatten();
                    builder.append_option(value);
                }
                Arc::new(builder.finish()) as ArrayRef
            }
        });
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
