//! SQL behaviour in sqllogictest files: every `engine/tests/slt/*.slt` runs
//! against a fresh engine on a temporary directory, as the local operator,
//! with no transport in front of it.
//!
//! A record's SQL is what a client would send: queries, `EXPLAIN`, and the
//! SQL writes (`CREATE TABLE`, `INSERT INTO`), which report the rows they
//! wrote. Errors read `<code>: <message>`, followed by ` (at line L, column C)`
//! when the engine knows where in the SQL the error is, so a file pins codes
//! and positions with `statement error` and `query error`.
//!
//! Two forms run the SQL Basin generates rather than SQL a client writes, so
//! the files pin what that SQL computes on real data:
//! - `CHECK ON <dataset> <definition JSON>` compiles a quality check and runs
//!   its counting query;
//! - `SERIES <request JSON>` plans a time series over the dataset its
//!   `source` names (relative ranges are read at 2026-01-01T00:00:00Z) and
//!   runs its aggregation query: one row per non-empty bucket (its start,
//!   then the measures), before gap filling.

use std::io::Write;
use std::path::{Path, PathBuf};

use basin_engine::identity::Principal;
use basin_engine::sql::query::QueryRequest;
use basin_engine::sql::writes::StatementKind;
use basin_engine::{Engine, EngineConfig};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// An engine error as a file sees it: its stable code, its message, and
/// where in the SQL it points.
#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

impl From<basin_engine::Error> for SltError {
    fn from(err: basin_engine::Error) -> Self {
        let location = match &err {
            basin_engine::Error::Sql {
                location: Some(at), ..
            } => format!(" (at line {}, column {})", at.line, at.column),
            _ => String::new(),
        };
        Self(format!(
            "{}: {}{location}",
            err.code(),
            err.public_message()
        ))
    }
}

impl From<datafusion::error::DataFusionError> for SltError {
    fn from(err: datafusion::error::DataFusionError) -> Self {
        basin_engine::Error::from(err).into()
    }
}

/// One engine on its own directory, for one file.
struct BasinDb {
    engine: Engine,
    principal: Principal,
    _dir: tempfile::TempDir,
}

impl BasinDb {
    async fn open() -> Result<Self, SltError> {
        let dir = tempfile::tempdir().map_err(|e| SltError(e.to_string()))?;
        let engine = Engine::open(EngineConfig::new(dir.path().join("data"))).await?;
        Ok(Self {
            engine,
            principal: Principal::local(),
            _dir: dir,
        })
    }

    async fn rows(&self, sql: String) -> Result<Vec<RecordBatch>, SltError> {
        let request = QueryRequest {
            sql,
            ..QueryRequest::default()
        };
        let stream = self.engine.query(&self.principal, request).await?;
        Ok(stream.try_collect().await?)
    }

    /// The dataset `name`'s columns and its quoted table reference.
    async fn dataset(
        &self,
        name: &str,
    ) -> Result<(datafusion::arrow::datatypes::SchemaRef, String), SltError> {
        let shape = self
            .engine
            .dataset_shape(&self.principal, name, None)
            .await?;
        Ok((shape.schema, basin_sql::quote_ident(name)))
    }

    async fn check(&self, rest: &str) -> Result<Vec<RecordBatch>, SltError> {
        let (name, definition) = split_generated(rest)?;
        let definition: basin_analytics::checks::CheckDefinition =
            serde_json::from_str(definition).map_err(|e| SltError(e.to_string()))?;
        let (schema, table) = self.dataset(name).await?;
        let queries = basin_analytics::checks::compile(&definition, &table, None, &schema, 0)
            .map_err(|e| SltError(e.to_string()))?;
        let sql = queries
            .counts_sql
            .ok_or_else(|| SltError(format!("the check on {name} has no counting query")))?;
        self.rows(sql).await
    }

    async fn series(&self, request: &str) -> Result<Vec<RecordBatch>, SltError> {
        let request: basin_analytics::timeseries::TimeseriesRequest =
            serde_json::from_str(request).map_err(|e| SltError(e.to_string()))?;
        let basin_analytics::timeseries::Source::Dataset { dataset } = &request.source else {
            return Err(SltError("SERIES reads a dataset source".into()));
        };
        let (schema, table) = self.dataset(dataset).await?;
        let now = "2026-01-01T00:00:00Z"
            .parse()
            .map_err(|e: chrono::ParseError| SltError(e.to_string()))?;
        let plan = basin_analytics::timeseries::plan(&request, &schema, &table, now)
            .map_err(|e| SltError(e.to_string()))?;
        self.rows(plan.sql().to_owned()).await
    }
}

/// `<dataset> <JSON>` of a generated-SQL form.
fn split_generated(rest: &str) -> Result<(&str, &str), SltError> {
    rest.trim()
        .split_once(char::is_whitespace)
        .map(|(name, json)| (name, json.trim()))
        .ok_or_else(|| SltError(format!("expected `<dataset> <JSON>`, got {rest:?}")))
}

#[async_trait::async_trait]
impl AsyncDB for BasinDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let trimmed = sql.trim_start();
        let batches = if let Some(rest) = trimmed.strip_prefix("CHECK ON ") {
            self.check(rest).await?
        } else if let Some(request) = trimmed.strip_prefix("SERIES ") {
            self.series(request).await?
        } else {
            match self.engine.statement_kind(sql)? {
                StatementKind::Write => {
                    let outcome = self
                        .engine
                        .execute_write(&self.principal, sql, Vec::new())
                        .await?;
                    return Ok(DBOutput::StatementComplete(outcome.rows_written));
                }
                StatementKind::Query => self.rows(sql.to_owned()).await?,
            }
        };
        to_output(&batches)
    }

    async fn shutdown(&mut self) {
        self.engine.shutdown().await;
    }

    fn engine_name(&self) -> &str {
        "basin"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Batches as rows of text, the way sqllogictest compares them: `NULL` for
/// nulls, `(empty)` for empty strings.
fn to_output(batches: &[RecordBatch]) -> Result<DBOutput<DefaultColumnType>, SltError> {
    let Some(first) = batches.first() else {
        return Ok(DBOutput::Rows {
            types: Vec::new(),
            rows: Vec::new(),
        });
    };
    let types = first
        .schema()
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| match f.value(row).to_string() {
                        text if text.is_empty() => "(empty)".to_owned(),
                        text => text,
                    })
                    .collect(),
            );
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .collect();
    files.sort();
    files
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let filter = std::env::args().nth(1).filter(|arg| !arg.starts_with('-'));
    let mut failed = Vec::new();
    for file in slt_files() {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let outcome = runtime.block_on(async {
            let mut runner = sqllogictest::Runner::new(BasinDb::open);
            let outcome = runner.run_file_async(&file).await;
            runner.shutdown_async().await;
            outcome
        });
        // The runner's report is this harness's output, as libtest's is.
        let mut out = std::io::stdout().lock();
        let written = match outcome {
            Ok(()) => writeln!(out, "slt {name} ... ok"),
            Err(e) => {
                let written = writeln!(out, "slt {name} ... FAILED\n{}", e.display(false));
                failed.push(name);
                written
            }
        };
        written.expect("stdout");
    }
    assert!(failed.is_empty(), "failed: {}", failed.join(", "));
}
