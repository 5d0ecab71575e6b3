//! Result encodings, chosen by `Accept`, streamed batch by batch.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::writer::{EncoderOptions, make_encoder};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// A tabular result as JSON (`Accept: application/json`), as
/// [`stream_body`] writes it for `/query`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryResult {
    /// The columns and rows.
    data: ResultSet,
    /// About the result.
    meta: QueryMeta,
    /// Set when the query failed after the rows began: the rows are incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<StreamError>,
}

/// A page of a dataset as JSON, as [`stream_body`] writes it for `/preview`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewResult {
    /// The columns and rows.
    data: ResultSet,
    /// About the page.
    meta: PreviewMeta,
    /// Set when reading failed after the rows began: the rows are incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<StreamError>,
}

/// Columns and rows; each row is an array in column order.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResultSet {
    /// The columns, in order.
    columns: Vec<ResultColumn>,
    /// The rows: one value per column, JSON as Arrow's writer encodes it.
    rows: Vec<Vec<Value>>,
}

/// One result column.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResultColumn {
    /// Column name.
    name: String,
    /// Arrow type as Arrow spells it.
    #[serde(rename = "type")]
    data_type: String,
}

/// `meta` of a query result.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryMeta {
    /// Time to plan the query.
    planning_ms: u64,
    /// Rows in `data`.
    row_count: u64,
    /// Whether the answer came from the result cache.
    cache: basin_engine::sql::results::CacheOutcome,
}

/// `meta` of a dataset page.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewMeta {
    /// The version read.
    version: i64,
    /// Where the page is.
    page: PreviewPage,
    /// Rows in `data`.
    row_count: u64,
}

/// A dataset page's place.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewPage {
    /// Page size asked for.
    limit: u64,
    /// Rows skipped.
    offset: u64,
    /// Rows in the version.
    total: i64,
}

/// How a streamed result ended early.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StreamError {
    /// The stable error code.
    code: String,
}

/// A response encoding for tabular results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// `{"data": {"columns", "rows"}, "meta": {...}}`, rows as arrays.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON object per row.
    Ndjson,
    /// Arrow IPC stream.
    Arrow,
}

impl ResultFormat {
    /// Picks the format from `Accept`; JSON when absent or `*/*`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
            return Ok(Self::Json);
        };
        for candidate in accept
            .split(',')
            .map(|p| p.split(';').next().unwrap_or("").trim())
        {
            match candidate {
                "application/json" | "*/*" | "application/*" | "" => return Ok(Self::Json),
                "text/csv" => return Ok(Self::Csv),
                "application/x-ndjson" | "application/jsonl" => return Ok(Self::Ndjson),
                "application/vnd.apache.arrow.stream" => return Ok(Self::Arrow),
                _ => {}
            }
        }
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            format!("cannot produce {accept}"),
        )
        .with_hint("accept application/json, text/csv, application/x-ndjson or application/vnd.apache.arrow.stream"))
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

struct Encoder {
    format: ResultFormat,
    schema: SchemaRef,
    rows: u64,
    started: bool,
    meta: Map<String, Value>,
    ipc: Option<arrow::ipc::writer::StreamWriter<Vec<u8>>>,
}

impl Encoder {
    fn head(&mut self) -> Result<Vec<u8>, arrow::error::ArrowError> {
        match self.format {
            ResultFormat::Json => {
                let columns: Vec<Value> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
                    .collect();
                let mut out = br#"{"data":{"columns":"#.to_vec();
                out.extend(serde_json::to_vec(&columns).unwrap_or_default());
                out.extend(br#","rows":["#);
                Ok(out)
            }
            ResultFormat::Csv => {
                let mut out = Vec::new();
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                writer.write(&RecordBatch::new_empty(self.schema.clone()))?;
                drop(writer);
                Ok(out)
            }
            ResultFormat::Ndjson => Ok(Vec::new()),
            ResultFormat::Arrow => {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.schema)?;
                let out = std::mem::take(writer.get_mut());
                self.ipc = Some(writer);
                Ok(out)
            }
        }
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
        let mut out = Vec::with_capacity(batch.get_array_memory_size());
        match self.format {
            ResultFormat::Json => {
                let options = EncoderOptions::default();
                let fields = self.schema.fields();
                let mut encoders = fields
                    .iter()
                    .zip(batch.columns())
                    .map(|(field, column)| make_encoder(field, column.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for row in 0..batch.num_rows() {
                    if self.rows > 0 || row > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    for (i, encoder) in encoders.iter_mut().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        if encoder.is_null(row) {
                            out.extend_from_slice(b"null");
                        } else {
                            encoder.encode(row, &mut out);
                        }
                    }
                    out.push(b']');
                }
            }
            ResultFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(false)
                    .build(&mut out);
                writer.write(batch)?;
            }
            ResultFormat::Ndjson => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
                writer.write(batch)?;
                writer.finish()?;
            }
            ResultFormat::Arrow => {
                if let Some(writer) = self.ipc.as_mut() {
                    writer.write(batch)?;
                    out = std::mem::take(writer.get_mut());
                }
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(out)
    }

    fn tail(&mut self, error: Option<ApiError>) -> Vec<u8> {
        match self.format {
            ResultFormat::Json => {
                self.meta.insert("row_count".into(), json!(self.rows));
                let mut out = br#"]},"meta":"#.to_vec();
                out.extend(serde_json::to_vec(&self.meta).unwrap_or_default());
                if let Some(error) = error {
                    // The status line is gone; the envelope still says what happened.
                    out.extend(br#","error":"#);
                    out.extend(
                        serde_json::to_vec(&json!({"code": error.code()})).unwrap_or_default(),
                    );
                }
                out.push(b'}');
                out
            }
            ResultFormat::Arrow => match self.ipc.as_mut() {
                Some(writer) if error.is_none() => {
                    let _ = writer.finish();
                    std::mem::take(writer.get_mut())
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// Streams `stream` as `format`. An error after the first byte ends the body:
/// JSON closes its envelope with an `error` member, the other formats end early
/// (an incomplete body, which clients detect).
pub(crate) fn stream_body(
    stream: SendableRecordBatchStream,
    format: ResultFormat,
    meta: Map<String, Value>,
) -> Body {
    let encoder = Encoder {
        format,
        schema: stream.schema(),
        rows: 0,
        started: false,
        meta,
        ipc: None,
    };
    let chunks = futures::stream::unfold(Some((encoder, stream)), |state| async move {
        let (mut encoder, mut stream) = state?;
        if !encoder.started {
            encoder.started = true;
            return match encoder.head() {
                Ok(head) => Some((Ok(Bytes::from(head)), Some((encoder, stream)))),
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            };
        }
        match stream.next().await {
            Some(Ok(batch)) => match encoder.batch(&batch) {
                Ok(bytes) => Some((Ok(Bytes::from(bytes)), Some((encoder, stream)))),
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            },
            Some(Err(e)) => {
                let error = ApiError::from(basin_engine::Error::from(e));
                if encoder.format == ResultFormat::Json {
                    Some((Ok(Bytes::from(encoder.tail(Some(error)))), None))
                } else {
                    Some((Err(std::io::Error::other(error.code())), None))
                }
            }
            None => Some((Ok(Bytes::from(encoder.tail(None))), None)),
        }
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    async fn json_of(meta: Map<String, Value>) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("city", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("Oslo"), None])),
            ],
        )
        .unwrap();
        let stream = RecordBatchStreamAdapter::new(schema, futures::stream::iter([Ok(batch)]));
        let body = stream_body(Box::pin(stream), ResultFormat::Json, meta);
        axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn json_results_have_the_documented_shape() {
        let mut meta = Map::new();
        meta.insert("planning_ms".into(), json!(3));
        meta.insert("cache".into(), json!("miss"));
        let query: QueryResult = serde_json::from_slice(&json_of(meta).await).unwrap();
        assert_eq!(query.meta.row_count, 2);
        assert_eq!(query.data.columns[1].name, "city");
        assert_eq!(query.data.rows[1], vec![json!(2), Value::Null]);

        let mut meta = Map::new();
        meta.insert("version".into(), json!(0));
        meta.insert(
            "page".into(),
            json!({"limit": 100, "offset": 0, "total": 2}),
        );
        let preview: PreviewResult = serde_json::from_slice(&json_of(meta).await).unwrap();
        assert_eq!(preview.meta.page.total, 2);
    }
}
