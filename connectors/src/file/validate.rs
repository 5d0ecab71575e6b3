//! Row-level validation of text files against a schema.
//!
//! Arrow's readers stop at the first bad value. Basin's contract is that a
//! malformed row is never silently lost, so this pass walks a file record by
//! record with the same parsing rules, names every bad row (line number and
//! reason), and can split the file into a clean copy and a rejects file.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use arrow::compute::kernels::cast_utils::{Parser, parse_decimal, string_to_timestamp_nanos};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Schema, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use serde::Serialize;

use crate::file::{CsvDialect, FileFormat, FormatKind};
use crate::{Error, Result};

/// How many rejected rows a report carries inline; the rest are counted.
pub const REPORTED_REJECTS: usize = 100;

/// One row that could not be read as the schema says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// 1-based line in the (decompressed) file where the record starts.
    pub line: u64,
    /// Why the row was refused.
    pub reason: String,
    /// The record's text as read.
    pub raw: String,
}

/// The outcome of validating a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// Data records seen (header excluded).
    pub rows_total: u64,
    /// Records that parse under the schema.
    pub rows_valid: u64,
    /// Records that do not.
    pub rows_rejected: u64,
    /// The first [`REPORTED_REJECTS`] rejected rows.
    pub rejected_sample: Vec<RejectedRow>,
}

impl ValidationReport {
    fn reject(&mut self, row: RejectedRow, rejects: &mut Option<BufWriter<File>>) -> Result<()> {
        self.rows_rejected += 1;
        if let Some(out) = rejects {
            serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        if self.rejected_sample.len() < REPORTED_REJECTS {
            self.rejected_sample.push(row);
        }
        Ok(())
    }
}

/// Validates a CSV or NDJSON file against `schema`; blocking, run it off the async runtime.
///
/// With `clean_out`, valid records are copied there in the input's own format
/// (CSV null markers blanked, since DataFusion's CSV scan does not apply them);
/// with `rejects_out`, every rejected row is written there as NDJSON
/// `{line, reason, raw}`.
pub fn validate(
    path: &Path,
    format: &FileFormat,
    schema: &Schema,
    clean_out: Option<&Path>,
    rejects_out: Option<&Path>,
) -> Result<ValidationReport> {
    let mut rejects = rejects_out
        .map(|p| File::create(p).map(|f| BufWriter::with_capacity(256 * 1024, f)))
        .transpose()?;
    let report = match format.kind {
        FormatKind::Csv => validate_csv(path, &format.csv, schema, clean_out, &mut rejects)?,
        FormatKind::Ndjson => validate_ndjson(path, schema, clean_out, &mut rejects)?,
        other => {
            return Err(Error::UnsupportedFormat(format!(
                "row validation applies to csv and ndjson, not {other}"
            )));
        }
    };
    if let Some(mut out) = rejects {
        out.flush()?;
    }
    Ok(report)
}

fn validate_csv(
    path: &Path,
    dialect: &CsvDialect,
    schema: &Schema,
    clean_out: Option<&Path>,
    rejects: &mut Option<BufWriter<File>>,
) -> Result<ValidationReport> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1024 * 1024)
        .from_path(path)
        .map_err(csv_error)?;
    let mut clean = clean_out
        .map(|p| {
            csv::WriterBuilder::new()
                .delimiter(dialect.delimiter)
                .quote(dialect.quote)
                .buffer_capacity(1024 * 1024)
                .from_path(p)
        })
        .transpose()
        .map_err(csv_error)?;
    let mut report = ValidationReport::default();
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // A broken quote or invalid encoding: the csv reader cannot resync, so the
                // rest of the file is one rejected region starting at this line.
                let line = e.position().map_or(0, |p| p.line());
                report.rows_total += 1;
                report.reject(
                    RejectedRow {
                        line,
                        reason: format!("unreadable record: {e}"),
                        raw: String::new(),
                    },
                    rejects,
                )?;
                break;
            }
        }
        if first && dialect.has_header {
            first = false;
            if let Some(w) = clean.as_mut() {
                w.write_byte_record(&record).map_err(csv_error)?;
            }
            continue;
        }
        first = false;
        report.rows_total += 1;
        match check_csv_record(&record, dialect, schema) {
            Ok(()) => {
                report.rows_valid += 1;
                if let Some(w) = clean.as_mut() {
                    if dialect.null_values.is_empty() {
                        w.write_byte_record(&record).map_err(csv_error)?;
                    } else {
                        // Null markers become empty fields, which every reader takes as null.
                        let blanked = record.iter().map(|field| {
                            let is_marker =
                                dialect.null_values.iter().any(|n| n.as_bytes() == field);
                            if is_marker { &b""[..] } else { field }
                        });
                        w.write_record(blanked).map_err(csv_error)?;
                    }
                }
            }
            Err(reason) => {
                let line = record.position().map_or(0, |p| p.line());
                let raw = record
                    .iter()
                    .map(String::from_utf8_lossy)
                    .collect::<Vec<_>>()
                    .join(&(dialect.delimiter as char).to_string());
                report.reject(RejectedRow { line, reason, raw }, rejects)?;
            }
        }
    }
    if let Some(mut w) = clean {
        w.flush()?;
    }
    Ok(report)
}

fn check_csv_record(
    record: &csv::ByteRecord,
    dialect: &CsvDialect,
    schema: &Schema,
) -> std::result::Result<(), String> {
    if record.len() != schema.fields().len() {
        return Err(format!(
            "expected {} fields, found {}",
            schema.fields().len(),
            record.len()
        ));
    }
    for (bytes, field) in record.iter().zip(schema.fields()) {
        let Ok(value) = std::str::from_utf8(bytes) else {
            return Err(format!("column `{}`: invalid UTF-8", field.name()));
        };
        if value.is_empty() || dialect.null_values.iter().any(|n| n == value) {
            if !field.is_nullable() {
                return Err(format!(
                    "column `{}`: null in a non-nullable column",
                    field.name()
                ));
            }
            continue;
        }
        if !text_parses_as(value, field.data_type()) {
            return Err(format!(
                "column `{}`: {value:?} is not a valid {}",
                field.name(),
                field.data_type()
            ));
        }
    }
    Ok(())
}

/// Whether Arrow's CSV reader would accept `value` for `data_type`.
fn text_parses_as(value: &str, data_type: &DataType) -> bool {
    match data_type {
        DataType::Boolean => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        DataType::Int8 => Int8Type::parse(value).is_some(),
        DataType::Int16 => Int16Type::parse(value).is_some(),
        DataType::Int32 => Int32Type::parse(value).is_some(),
        DataType::Int64 => Int64Type::parse(value).is_some(),
        DataType::UInt8 => UInt8Type::parse(value).is_some(),
        DataType::UInt16 => UInt16Type::parse(value).is_some(),
        DataType::UInt32 => UInt32Type::parse(value).is_some(),
        DataType::UInt64 => UInt64Type::parse(value).is_some(),
        DataType::Float16 => Float16Type::parse(value).is_some(),
        DataType::Float32 => Float32Type::parse(value).is_some(),
        DataType::Float64 => Float64Type::parse(value).is_some(),
        DataType::Date32 => Date32Type::parse(value).is_some(),
        DataType::Date64 => Date64Type::parse(value).is_some(),
        DataType::Time32(TimeUnit::Second) => Time32SecondType::parse(value).is_some(),
        DataType::Time32(_) => Time32MillisecondType::parse(value).is_some(),
        DataType::Time64(TimeUnit::Microsecond) => Time64MicrosecondType::parse(value).is_some(),
        DataType::Time64(_) => Time64NanosecondType::parse(value).is_some(),
        DataType::Timestamp(_, _) => string_to_timestamp_nanos(value).is_ok(),
        DataType::Decimal128(p, s) => parse_decimal::<Decimal128Type>(value, *p, *s).is_ok(),
        _ => true,
    }
}

fn validate_ndjson(
    path: &Path,
    schema: &Schema,
    clean_out: Option<&Path>,
    rejects: &mut Option<BufWriter<File>>,
) -> Result<ValidationReport> {
    let reader = BufReader::with_capacity(1024 * 1024, File::open(path)?);
    let mut clean = clean_out
        .map(|p| File::create(p).map(|f| BufWriter::with_capacity(1024 * 1024, f)))
        .transpose()?;
    let mut report = ValidationReport::default();
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        report.rows_total += 1;
        match check_json_line(&line, schema) {
            Ok(()) => {
                report.rows_valid += 1;
                if let Some(w) = clean.as_mut() {
                    w.write_all(&line)?;
                    w.write_all(b"\n")?;
                }
            }
            Err(reason) => {
                let raw = String::from_utf8_lossy(&line).into_owned();
                report.reject(
                    RejectedRow {
                        line: index as u64 + 1,
                        reason,
                        raw,
                    },
                    rejects,
                )?;
            }
        }
    }
    if let Some(mut w) = clean {
        w.flush()?;
    }
    Ok(report)
}

fn check_json_line(line: &[u8], schema: &Schema) -> std::result::Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Object(object) = value else {
        return Err("expected a JSON object".into());
    };
    for field in schema.fields() {
        match object.get(field.name()) {
            None | Some(serde_json::Value::Null) => {
                if !field.is_nullable() {
                    return Err(format!(
                        "column `{}`: null in a non-nullable column",
                        field.name()
                    ));
                }
            }
            Some(value) => {
                if !json_fits(value, field.data_type()) {
                    return Err(format!(
                        "column `{}`: {value} is not a valid {}",
                        field.name(),
                        field.data_type()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn json_fits(value: &serde_json::Value, data_type: &DataType) -> bool {
    use serde_json::Value;
    match (value, data_type) {
        (Value::Bool(_), DataType::Boolean) => true,
        (Value::Number(n), t) if t.is_integer() => n.is_i64() || n.is_u64(),
        (Value::Number(_), t) if t.is_floating() || matches!(t, DataType::Decimal128(..)) => true,
        (Value::String(s), t) if t.is_numeric() || t.is_temporal() || *t == DataType::Boolean => {
            text_parses_as(s, t)
        }
        (Value::String(_), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => true,
        (Value::Array(_), DataType::List(_) | DataType::LargeList(_)) => true,
        (Value::Object(_), DataType::Struct(_) | DataType::Map(..)) => true,
        _ => false,
    }
}

/// Rewrites a JSON array of objects as NDJSON in one streaming pass; returns the element count.
///
/// A structurally broken document (unbalanced brackets, bad syntax) fails as a
/// whole with serde's line and column; elements are checked later row by row.
pub fn json_array_to_ndjson(src: &Path, dest: &Path) -> Result<u64> {
    use serde::de::{Deserializer, SeqAccess, Visitor};

    struct Elements<W: Write>(W, u64);

    impl<'de, W: Write> Visitor<'de> for &mut Elements<W> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            while let Some(element) = seq.next_element::<serde_json::Value>()? {
                serde_json::to_writer(&mut self.0, &element).map_err(serde::de::Error::custom)?;
                self.0.write_all(b"\n").map_err(serde::de::Error::custom)?;
                self.1 += 1;
            }
            Ok(())
        }
    }

    let reader = BufReader::with_capacity(1024 * 1024, File::open(src)?);
    let mut elements = Elements(
        BufWriter::with_capacity(1024 * 1024, File::create(dest)?),
        0,
    );
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_seq(&mut elements)
        .and_then(|()| de.end())
        .map_err(|e| Error::Malformed(format!("invalid JSON array: {e}")))?;
    elements.0.flush()?;
    Ok(elements.1)
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::Io(io),
        other => Error::Malformed(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::Field;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                true,
            ),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    fn csv_format() -> FileFormat {
        FileFormat {
            kind: FormatKind::Csv,
            csv: CsvDialect::default(),
        }
    }

    #[test]
    fn bad_csv_rows_are_named_with_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.csv");
        std::fs::write(
            &src,
            "id,amount,at,name\n1,2.50,2024-01-01T00:00:00Z,\"a, b\"\nx,1,2024-01-01T00:00:00Z,c\n3,1.00,2024-01-01T00:00:00+02:00,Zoë\n4,1\n",
        )
        .unwrap();
        let clean = dir.path().join("clean.csv");
        let rejects = dir.path().join("rejects.ndjson");
        let report =
            validate(&src, &csv_format(), &schema(), Some(&clean), Some(&rejects)).unwrap();
        assert_eq!(
            (report.rows_total, report.rows_valid, report.rows_rejected),
            (4, 2, 2)
        );
        assert_eq!(report.rejected_sample[0].line, 3);
        assert!(
            report.rejected_sample[0].reason.contains("`id`"),
            "{:?}",
            report.rejected_sample
        );
        assert_eq!(report.rejected_sample[1].line, 5);
        assert!(
            report.rejected_sample[1]
                .reason
                .contains("expected 4 fields, found 2")
        );
        let clean_text = std::fs::read_to_string(&clean).unwrap();
        assert_eq!(clean_text.lines().count(), 3);
        assert!(clean_text.contains("\"a, b\""));
        assert_eq!(
            std::fs::read_to_string(&rejects).unwrap().lines().count(),
            2
        );
    }

    #[test]
    fn ndjson_rows_are_checked_against_types() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.ndjson");
        std::fs::write(
            &src,
            "{\"id\":1,\"name\":\"a\"}\n{\"id\":\"nope\"}\nnot json\n\n{\"id\":2}\n",
        )
        .unwrap();
        let format = FileFormat {
            kind: FormatKind::Ndjson,
            csv: CsvDialect::default(),
        };
        let report = validate(&src, &format, &schema(), None, None).unwrap();
        assert_eq!(
            (report.rows_total, report.rows_valid, report.rows_rejected),
            (4, 2, 2)
        );
        assert_eq!(report.rejected_sample[0].line, 2);
        assert_eq!(report.rejected_sample[1].line, 3);
        assert!(report.rejected_sample[1].reason.starts_with("invalid JSON"));
    }

    #[test]
    fn json_arrays_become_ndjson() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in.json");
        let dest = dir.path().join("out.ndjson");
        std::fs::write(&src, "[{\"a\":1},\n {\"a\":2}]").unwrap();
        assert_eq!(json_array_to_ndjson(&src, &dest).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&dest).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        std::fs::write(&src, "[{\"a\":1},").unwrap();
        assert!(matches!(
            json_array_to_ndjson(&src, &dest),
            Err(Error::Malformed(_))
        ));
    }
}
