//! Schema inference that survives bad rows.
//!
//! Arrow's inference stops at a ragged CSV record or a broken JSON line, and
//! widens a numeric column to text because of one stray value. Basin infers
//! from a sample instead: ragged records and unparsable lines are left out,
//! and a column takes the narrowest type all its values fit, or, failing that,
//! the type all but a few outliers fit. The outliers then surface as malformed
//! rows with line numbers, instead of silently turning `amount` into text.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema, TimeUnit};

use crate::file::CsvDialect;
use crate::{Error, Result};

/// Records sampled for inference.
pub const INFER_RECORDS: usize = 10_000;

/// Scalar types a text value may have, narrowest first.
const CANDIDATES: [Kind; 5] = [
    Kind::Boolean,
    Kind::Int,
    Kind::Float,
    Kind::Date,
    Kind::Timestamp,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Int,
    Float,
    Date,
    Timestamp,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        }
    }

    fn parses(self, value: &str) -> bool {
        match self {
            Self::Boolean => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            Self::Int => Int64Type::parse(value).is_some(),
            Self::Float => Float64Type::parse(value).is_some(),
            // Arrow's date parser also takes full timestamps; a date column holds bare dates.
            Self::Date => value.len() <= 10 && Date32Type::parse(value).is_some(),
            Self::Timestamp => {
                arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(value).is_ok()
            }
        }
    }
}

/// How many values of a column may disagree with its type: none below five
/// values, then one in ten (at least one).
fn tolerance(values: usize) -> usize {
    if values < 5 { 0 } else { (values / 10).max(1) }
}

/// Picks a column's type from how many of its `values` parse as each candidate.
fn choose(values: usize, counts: &[usize; 5]) -> DataType {
    if values == 0 {
        return DataType::Utf8;
    }
    if let Some(i) = counts.iter().position(|&c| c == values) {
        return CANDIDATES[i].data_type();
    }
    let floor = values - tolerance(values);
    let best = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c >= floor && **c > 0)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
    match best {
        Some((i, _)) => CANDIDATES[i].data_type(),
        None => DataType::Utf8,
    }
}

/// Infers a CSV file's schema from its first [`INFER_RECORDS`] records.
pub fn infer_csv(path: &Path, dialect: &CsvDialect) -> Result<Schema> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    let mut records = reader.byte_records();
    let first = match records.next() {
        Some(Ok(record)) => record,
        Some(Err(e)) => return Err(Error::Malformed(format!("unreadable first record: {e}"))),
        None => return Err(Error::Malformed("the file is empty".into())),
    };
    let names: Vec<String> = if dialect.has_header {
        first
            .iter()
            .map(|n| String::from_utf8_lossy(n).trim().to_owned())
            .collect()
    } else {
        (1..=first.len()).map(|i| format!("column_{i}")).collect()
    };
    let width = names.len();
    let mut values = vec![0_usize; width];
    let mut counts = vec![[0_usize; 5]; width];
    let mut observe = |record: &csv::ByteRecord| {
        if record.len() != width {
            return;
        }
        for (col, bytes) in record.iter().enumerate() {
            let Ok(value) = std::str::from_utf8(bytes) else {
                continue;
            };
            if value.is_empty() || dialect.null_values.iter().any(|n| n == value) {
                continue;
            }
            values[col] += 1;
            for (i, kind) in CANDIDATES.iter().enumerate() {
                if kind.parses(value) {
                    counts[col][i] += 1;
                }
            }
        }
    };
    if !dialect.has_header {
        observe(&first);
    }
    for record in records.take(INFER_RECORDS) {
        match record {
            Ok(record) => observe(&record),
            // Past a broken quote nothing more can be sampled; what we have will do.
            Err(_) => break,
        }
    }
    let fields: Vec<Field> = names
        .into_iter()
        .enumerate()
        .map(|(col, name)| Field::new(name, choose(values[col], &counts[col]), true))
        .collect();
    Ok(Schema::new(fields))
}

#[derive(Default)]
struct JsonColumn {
    values: usize,
    counts: [usize; 5],
    strings: usize,
    nested: Vec<serde_json::Value>,
}

/// Infers an NDJSON file's schema from its first [`INFER_RECORDS`] lines that are JSON objects.
pub fn infer_ndjson(path: &Path) -> Result<Schema> {
    let reader = BufReader::new(File::open(path)?);
    let mut order: Vec<String> = Vec::new();
    let mut columns: std::collections::HashMap<String, JsonColumn> = Default::default();
    let mut seen = 0;
    for line in reader.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&line) else {
            continue;
        };
        for (key, value) in object {
            let column = columns.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                JsonColumn::default()
            });
            use serde_json::Value as V;
            match value {
                V::Null => continue,
                V::Bool(_) => column.counts[0] += 1,
                V::Number(n) if n.is_i64() || n.is_u64() => {
                    column.counts[1] += 1;
                    column.counts[2] += 1;
                }
                V::Number(_) => column.counts[2] += 1,
                V::String(_) => column.strings += 1,
                nested @ (V::Array(_) | V::Object(_)) => {
                    if column.nested.len() < 1000 {
                        column.nested.push(nested);
                    }
                }
            }
            column.values += 1;
        }
        seen += 1;
        if seen >= INFER_RECORDS {
            break;
        }
    }
    if order.is_empty() {
        return Err(Error::Malformed(
            "no JSON object found in the first records".into(),
        ));
    }
    let mut fields = Vec::with_capacity(order.len());
    for name in order {
        let column = &columns[&name];
        let data_type = if !column.nested.is_empty()
            && column.nested.len() + tolerance(column.values) >= column.values
        {
            nested_type(&name, &column.nested)?
        } else if column.strings + tolerance(column.values) >= column.values && column.strings > 0 {
            DataType::Utf8
        } else {
            // JSON scalars: booleans and numbers count; strings are outliers here.
            let mut counts = column.counts;
            counts[3] = 0;
            counts[4] = 0;
            choose(column.values, &counts)
        };
        fields.push(Field::new(name, data_type, true));
    }
    Ok(Schema::new(fields))
}

fn nested_type(name: &str, samples: &[serde_json::Value]) -> Result<DataType> {
    let objects = samples.iter().map(|v| Ok(serde_json::json!({ name: v })));
    let schema = arrow::json::reader::infer_json_schema_from_iterator(objects)?;
    Ok(schema.field(0).data_type().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_schema(text: &str) -> Schema {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, text).unwrap();
        infer_csv(&path, &CsvDialect::default()).unwrap()
    }

    #[test]
    fn outliers_and_ragged_rows_do_not_widen_types() {
        let mut text = "id,amount,at\n".to_owned();
        for i in 0..20 {
            text.push_str(&format!("{i},{i}.50,2024-03-01T08:00:00+01:00\n"));
        }
        text.push_str("21,abc,2024-03-01T08:00:00Z\n22,1,2,3,4\n");
        let schema = csv_schema(&text);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Float64);
        assert!(matches!(
            schema.field(2).data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_))
        ));
    }

    #[test]
    fn mixed_ints_and_floats_become_floats() {
        let schema = csv_schema("x\n1\n2\n3.5\n4\n5\n6\n");
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn text_stays_text() {
        let schema = csv_schema("code\n12345\nK1A 0B6\nSW1A 1AA\n90210\n");
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    }

    #[test]
    fn ndjson_inference_skips_broken_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        let mut text = String::new();
        for i in 0..9 {
            text.push_str(&format!(
                "{{\"id\":{i},\"tags\":[\"a\"],\"p\":{{\"k\":1}},\"name\":\"n{i}\"}}\n"
            ));
        }
        text.push_str("{\"id\":\"ten\"}\n{\"id\":11,\n");
        std::fs::write(&path, text).unwrap();
        let schema = infer_ndjson(&path).unwrap();
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            schema.field_with_name("name").unwrap().data_type(),
            &DataType::Utf8
        );
        assert!(matches!(
            schema.field_with_name("tags").unwrap().data_type(),
            DataType::List(_)
        ));
        assert!(matches!(
            schema.field_with_name("p").unwrap().data_type(),
            DataType::Struct(_)
        ));
    }
}
