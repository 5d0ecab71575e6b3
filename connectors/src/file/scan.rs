use std::path::Path;

use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::options::ArrowReadOptions;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

use crate::file::{FileFormat, FormatKind};
use crate::{Error, Result};

/// How a file is scanned beyond its format.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// A schema to read with instead of inferring one.
    pub schema: Option<SchemaRef>,
}

use crate::file::INFER_RECORDS;

fn null_regex(format: &FileFormat) -> Option<String> {
    if format.csv.null_values.is_empty() {
        return None;
    }
    let alternatives: Vec<String> = format
        .csv
        .null_values
        .iter()
        .map(|v| regex_escape(v))
        .collect();
    // The empty field stays null, as it is without markers.
    Some(format!("^(?:{}|)$", alternatives.join("|")))
}

fn regex_escape(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// Opens a local file as a DataFusion [`DataFrame`]; nothing is read until it is executed.
///
/// JSON arrays must be rewritten as NDJSON first ([`crate::file::json_array_to_ndjson`]).
pub async fn scan(
    ctx: &SessionContext,
    path: &Path,
    format: &FileFormat,
    options: &ScanOptions,
) -> Result<DataFrame> {
    let location = path
        .to_str()
        .ok_or_else(|| Error::Malformed(format!("path is not UTF-8: {}", path.display())))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let schema = options.schema.as_deref();
    let frame = match format.kind {
        FormatKind::Csv => {
            let mut read = CsvReadOptions::new()
                .has_header(format.csv.has_header)
                .delimiter(format.csv.delimiter)
                .quote(format.csv.quote)
                .newlines_in_values(format.csv.newlines_in_values)
                .null_regex(null_regex(format))
                .schema_infer_max_records(INFER_RECORDS)
                .file_extension(&extension);
            if let Some(schema) = schema {
                read = read.schema(schema);
            }
            ctx.read_csv(location, read).await?
        }
        FormatKind::Ndjson => {
            let mut read = JsonReadOptions::default()
                .schema_infer_max_records(INFER_RECORDS)
                .file_extension(&extension);
            if let Some(schema) = schema {
                read = read.schema(schema);
            }
            ctx.read_json(location, read).await?
        }
        FormatKind::Json => {
            return Err(Error::UnsupportedFormat(
                "JSON arrays are scanned after conversion to NDJSON".into(),
            ));
        }
        FormatKind::Parquet => {
            let mut read = ParquetReadOptions::new().file_extension(&extension);
            if let Some(schema) = schema {
                read = read.schema(schema);
            }
            ctx.read_parquet(location, read).await?
        }
        FormatKind::Arrow => {
            let mut read = ArrowReadOptions {
                file_extension: &extension,
                ..Default::default()
            };
            if let Some(schema) = schema {
                read = read.schema(schema);
            }
            ctx.read_arrow(location, read).await?
        }
    };
    Ok(frame)
}

/// The schema to read the file with: the supplied one, Basin's bad-row-tolerant
/// inference for text formats, or the file's own for typed formats.
pub async fn infer_schema(
    ctx: &SessionContext,
    path: &Path,
    format: &FileFormat,
    options: &ScanOptions,
) -> Result<SchemaRef> {
    if let Some(schema) = &options.schema {
        return Ok(schema.clone());
    }
    let text_inference = match format.kind {
        FormatKind::Csv => {
            let (path, dialect) = (path.to_path_buf(), format.csv.clone());
            Some(tokio::task::spawn_blocking(move || crate::file::infer_csv(&path, &dialect)).await)
        }
        FormatKind::Ndjson => {
            let path = path.to_path_buf();
            Some(tokio::task::spawn_blocking(move || crate::file::infer_ndjson(&path)).await)
        }
        _ => None,
    };
    match text_inference {
        Some(joined) => {
            let schema = joined.map_err(|e| Error::Io(std::io::Error::other(e)))??;
            Ok(std::sync::Arc::new(schema))
        }
        // DataFusion reports an unreadable Arrow file as an internal error;
        // Arrow's own readers say what is wrong with it.
        None if format.kind == FormatKind::Arrow => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || arrow_schema(&path))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?
        }
        None => Ok(scan(ctx, path, format, options)
            .await?
            .schema()
            .inner()
            .clone()),
    }
}

/// The schema of an Arrow IPC file, or of an IPC stream.
fn arrow_schema(path: &Path) -> Result<SchemaRef> {
    let open = || std::fs::File::open(path).map(std::io::BufReader::new);
    let file_error = match arrow::ipc::reader::FileReader::try_new(open()?, None) {
        Ok(reader) => return Ok(reader.schema()),
        Err(e) => e,
    };
    match arrow::ipc::reader::StreamReader::try_new(open()?, None) {
        Ok(reader) => Ok(reader.schema()),
        Err(stream_error) => Err(Error::Malformed(format!(
            "not an Arrow IPC file ({file_error}) or stream ({stream_error})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_markers_become_an_anchored_regex() {
        let mut format = FileFormat {
            kind: FormatKind::Csv,
            csv: Default::default(),
        };
        assert_eq!(null_regex(&format), None);
        format.csv.null_values = vec!["NA".into(), "n/a".into(), "(null)".into()];
        assert_eq!(null_regex(&format).unwrap(), r"^(?:NA|n/a|\(null\)|)$");
    }

    #[test]
    fn arrow_files_and_streams_give_their_schema_and_garbage_is_malformed() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{DataType, Field, Schema};
        use arrow::record_batch::RecordBatch;
        let dir = tempfile::tempdir().unwrap();
        let schema =
            std::sync::Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![std::sync::Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let file_path = dir.path().join("t.arrow");
        let mut writer = arrow::ipc::writer::FileWriter::try_new(
            std::fs::File::create(&file_path).unwrap(),
            &schema,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let stream_path = dir.path().join("t.arrows");
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(
            std::fs::File::create(&stream_path).unwrap(),
            &schema,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        assert_eq!(arrow_schema(&file_path).unwrap(), schema);
        assert_eq!(arrow_schema(&stream_path).unwrap(), schema);
        let garbage = dir.path().join("bad.arrow");
        std::fs::write(&garbage, b"[12938, 126928]").unwrap();
        assert!(matches!(arrow_schema(&garbage), Err(Error::Malformed(_))));
    }
}
