//! Arrow types every client reads. DataFusion scans Parquet into view types
//! (`Utf8View`, `BinaryView`); answers and schemas leave Basin in their plain
//! forms, which every client library reads. Flight encoders also send a view
//! column's whole shared buffers with every slice, so this keeps the wire small.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// `schema` with view types in their plain forms.
pub fn portable_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match portable_type(f.data_type()) {
                Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
                None => f.clone(),
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

fn portable_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// Casts a stream's view columns to their plain forms (see [`portable_schema`]).
pub fn portable(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let schema = stream.schema();
    if !schema
        .fields()
        .iter()
        .any(|f| portable_type(f.data_type()).is_some())
    {
        return stream;
    }
    let target = portable_schema(&schema);
    let out = target.clone();
    let cast = stream.map(move |batch| {
        Ok(cast_batch(
            &batch?,
            &target,
            &arrow::compute::CastOptions::default(),
        )?)
    });
    Box::pin(RecordBatchStreamAdapter::new(out, cast))
}

/// `batch` with `target`'s schema, each column cast where its type differs.
pub(crate) fn cast_batch(
    batch: &RecordBatch,
    target: &SchemaRef,
    options: &arrow::compute::CastOptions<'_>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                arrow::compute::cast_with_options(column, field.data_type(), options)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn view_types_become_plain() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
        ]);
        let portable = portable_schema(&schema);
        assert_eq!(portable.field(0).data_type(), &DataType::Utf8);
        assert_eq!(portable.field(1).data_type(), &DataType::Int64);
    }
}
