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
        None => Ok(scan(ctx, path, format, options)
            .await?
            .schema()
            .inner()
            .clone()),
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
}
