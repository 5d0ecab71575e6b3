//! The text path: tables a database's table provider refuses (a column of a
//! type it has no mapping for) are read with Basin's own `SELECT`, in which
//! the plain numeric and boolean columns keep their type and every other
//! column is cast to text by the database. Shared by the PostgreSQL and MySQL
//! connectors; each supplies a [`TextDialect`]: how it types, quotes and
//! casts a column, and how it runs the query and decodes its rows.
//!
//! Nothing is pushed down: DataFusion applies projection, filters and limits
//! after the scan. It is the slow path that makes such a table readable at all.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;

use crate::sql_names::QualifiedName;
use crate::{Error, FailureKind, Result};

/// Rows per batch.
pub(crate) const BATCH_ROWS: usize = 8192;

/// One database's side of the text path.
pub(crate) trait TextDialect: std::fmt::Debug + Send + Sync + 'static {
    /// The character the database quotes identifiers with.
    const QUOTE: char;

    /// The Arrow type a column of the database's `native` type is read as:
    /// its own for the plain types, [`DataType::Utf8`] for the rest.
    fn column_type(native: &str) -> DataType;

    /// The select-list item that reads the quoted column `quoted` as text.
    fn as_text(quoted: &str) -> String;

    /// Runs `sql` and streams its rows as batches of `schema`, at most
    /// [`BATCH_ROWS`] rows each.
    fn execute(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream;
}

/// The schema a table of `(column, native type)` pairs has on the text path,
/// every column nullable.
pub(crate) fn schema<D: TextDialect>(
    columns: impl IntoIterator<Item = (impl AsRef<str>, impl AsRef<str>)>,
) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .into_iter()
            .map(|(name, native)| Field::new(name.as_ref(), D::column_type(native.as_ref()), true))
            .collect::<Vec<_>>(),
    ))
}

/// The table `name` with `(column, native type)` columns, read through
/// `SELECT col, <col as text>, … FROM name` on `dialect`.
pub(crate) fn table<D: TextDialect>(
    dialect: D,
    name: &QualifiedName,
    columns: &[(String, String)],
) -> Result<Arc<dyn TableProvider>> {
    let schema = schema::<D>(columns.iter().map(|(c, n)| (c, n)));
    let select = columns
        .iter()
        .map(|(column, native)| {
            let escaped = column.replace(D::QUOTE, &format!("{0}{0}", D::QUOTE));
            let quoted = format!("{0}{escaped}{0}", D::QUOTE);
            if D::column_type(native) == DataType::Utf8 {
                format!("{} AS {quoted}", D::as_text(&quoted))
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let partition = TextPartition {
        schema: schema.clone(),
        sql: format!("SELECT {select} FROM {}", name.quoted(D::QUOTE)),
        dialect,
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

/// A driver failure while reading, as DataFusion carries it.
pub(crate) fn read_failure(message: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::External(Box::new(Error::source(
        FailureKind::System,
        message.to_string(),
    )))
}

/// The one partition of a text-path table: the whole `SELECT`.
struct TextPartition<D> {
    schema: SchemaRef,
    sql: String,
    dialect: D,
}

impl<D> std::fmt::Debug for TextPartition<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextPartition")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

impl<D: TextDialect> PartitionStream for TextPartition<D> {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.dialect.execute(self.sql.clone(), self.schema.clone())
    }
}
