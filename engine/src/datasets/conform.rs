//! How new rows meet a dataset's columns on every write path (ingest,
//! stream writes, SQL writes, pipeline steps): matched by name, by position or
//! by a column list, and cast to the dataset's types.

use arrow::datatypes::{DataType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast, lit};

use crate::{Error, Result};

/// How the columns of new rows meet a dataset's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnMapping {
    /// Same names (any order); every column must be present.
    ByName,
    /// In the dataset's order, as `INSERT INTO t SELECT …` does.
    ByPosition,
    /// The listed dataset columns, in order; the others get nulls.
    Listed(Vec<String>),
}

/// Projects `frame` onto `target`'s columns and types under `mapping`.
pub(crate) fn conform(
    frame: DataFrame,
    target: &Schema,
    mapping: ColumnMapping,
) -> Result<DataFrame> {
    let source: Vec<(String, DataType)> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let target_names = || {
        target
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // For each target column, the index of the source column feeding it.
    let feeding: Vec<Option<usize>> = match &mapping {
        ColumnMapping::ByName => {
            if let Some((extra, _)) = source
                .iter()
                .find(|(n, _)| target.field_with_name(n).is_err())
            {
                return Err(Error::SchemaMismatch(format!(
                    "column `{extra}` is not in the dataset (columns: {})",
                    target_names()
                )));
            }
            target
                .fields()
                .iter()
                .map(|f| source.iter().position(|(n, _)| n == f.name()))
                .collect()
        }
        ColumnMapping::ByPosition => {
            if source.len() != target.fields().len() {
                return Err(Error::SchemaMismatch(format!(
                    "the dataset has {} columns ({}) but {} values were given",
                    target.fields().len(),
                    target_names(),
                    source.len()
                )));
            }
            (0..source.len()).map(Some).collect()
        }
        ColumnMapping::Listed(columns) => {
            if columns.len() != source.len() {
                return Err(Error::SchemaMismatch(format!(
                    "{} columns are listed but {} values were given",
                    columns.len(),
                    source.len()
                )));
            }
            if let Some(unknown) = columns.iter().find(|c| target.field_with_name(c).is_err()) {
                return Err(Error::SchemaMismatch(format!(
                    "column `{unknown}` is not in the dataset (columns: {})",
                    target_names()
                )));
            }
            target
                .fields()
                .iter()
                .map(|f| columns.iter().position(|c| c == f.name()))
                .collect()
        }
    };
    let mut exprs: Vec<Expr> = Vec::with_capacity(target.fields().len());
    for (field, feed) in target.fields().iter().zip(feeding) {
        let expr = match feed {
            Some(i) => {
                let (name, data_type) = &source[i];
                if !arrow::compute::can_cast_types(data_type, field.data_type()) {
                    return Err(Error::SchemaMismatch(format!(
                        "column `{}` is {} but the value given is {data_type}",
                        field.name(),
                        field.data_type()
                    )));
                }
                cast(
                    Expr::Column(Column::from_name(name.clone())),
                    field.data_type().clone(),
                )
            }
            None if mapping == ColumnMapping::ByName => {
                return Err(Error::SchemaMismatch(format!(
                    "column `{}` of the dataset is missing",
                    field.name()
                )));
            }
            None => cast(lit(ScalarValue::Null), field.data_type().clone()),
        };
        exprs.push(expr.alias(field.name()));
    }
    Ok(frame.select(exprs)?)
}
