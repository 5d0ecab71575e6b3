//! Ad-hoc SQL over datasets: read-only, streamed, with a deadline; with
//! positional parameters (`$1` or `?`) for prepared statements; answered
//! from the [result cache](crate::sql::results) while the datasets read are
//! unchanged.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;

use crate::datasets::portable::{portable, portable_schema};
use crate::datasets::{TimeTravel, open_table, snapshot_of};
use crate::identity::{Action, Principal, Resource};
use crate::sql::contexts::reads_of;
use crate::sql::results::{CacheOutcome, ResultCache, answer_is_stable};
use crate::{Engine, Error, Result};

/// A query as callers pose it.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    /// One SQL statement (a query or `EXPLAIN`).
    pub sql: String,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// Deadline for the whole query, results included; the engine default when absent.
    pub timeout: Option<Duration>,
    /// Values of the positional parameters `$1`, `$2`, … (or `?`, in order).
    pub params: Vec<ScalarValue>,
    /// Compute the answer even when the result cache holds it (and do not keep it).
    pub bypass_cache: bool,
}

/// A query's answer as it starts.
pub struct QueryOutput {
    /// The rows.
    pub stream: SendableRecordBatchStream,
    /// Whether they come from the result cache.
    pub cache: CacheOutcome,
}

/// What is known of a dataset version before reading it.
#[derive(Debug, Clone)]
pub struct DatasetShape {
    /// The version.
    pub version: i64,
    /// Its columns, as [`Engine::read_dataset`] streams them.
    pub schema: SchemaRef,
    /// Rows in that version.
    pub total_rows: i64,
    /// Bytes of its data files.
    pub total_bytes: i64,
}

impl Engine {
    /// Plans `request.sql` and returns its result as a stream of batches.
    ///
    /// Planning errors return here (with line and column); execution errors and
    /// the deadline arrive in the stream. Dropping the stream stops the query.
    pub async fn query(
        &self,
        principal: &Principal,
        request: QueryRequest,
    ) -> Result<SendableRecordBatchStream> {
        Ok(self.run_query(principal, request).await?.stream)
    }

    /// [`Engine::query`], telling whether the answer came from the result cache.
    pub async fn run_query(
        &self,
        principal: &Principal,
        request: QueryRequest,
    ) -> Result<QueryOutput> {
        principal.authorize(Action::Read, Resource::Global)?;
        let timeout = request.timeout.unwrap_or(self.config().query_timeout);
        let cache = self
            .result_cache()
            .filter(|_| !request.bypass_cache)
            .cloned();
        let key = cache
            .as_ref()
            .map(|_| ResultCache::key(&request.sql, &request.params, request.limit));
        if let (Some(cache), Some(key)) = (&cache, &key)
            && let Some(stream) = self.kept_answer(cache, principal, key).await?
        {
            metrics::counter!("basin_queries_total", "outcome" => "ok").increment(1);
            return Ok(QueryOutput {
                stream,
                cache: CacheOutcome::Hit,
            });
        }
        let outcome = if cache.is_some() {
            CacheOutcome::Miss
        } else {
            CacheOutcome::Bypass
        };
        let ctx = self.query_context(principal).await?;
        let started = std::time::Instant::now();
        let planned = self.executor().run_stream(move || async move {
            let mut frame = plan_read_only(&ctx, &request.sql).await?;
            frame = bind_parameters(frame, request.params)?;
            if let Some(limit) = request.limit {
                frame = frame.limit(0, Some(limit))?;
            }
            // Read before execution: what the plan resolved is all it reads.
            let keep = match (cache, key, reads_of(&ctx)) {
                (Some(cache), Some(key), Some(reads))
                    if answer_is_stable(frame.logical_plan(), &reads) =>
                {
                    Some((cache, key, reads))
                }
                _ => None,
            };
            let stream = portable(frame.execute_stream().await?);
            Ok(match keep {
                Some((cache, key, reads)) => cache.keep(key, reads, stream),
                None => stream,
            })
        });
        let stream = match tokio::time::timeout(timeout, planned).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                metrics::counter!("basin_queries_total", "outcome" => "error").increment(1);
                return Err(e);
            }
            Err(_) => return Err(Error::Timeout(timeout.as_millis() as u64)),
        };
        metrics::counter!("basin_queries_total", "outcome" => "ok").increment(1);
        Ok(QueryOutput {
            stream: with_deadline(stream, timeout.saturating_sub(started.elapsed())),
            cache: outcome,
        })
    }

    /// The columns `sql` returns and the parameters it takes, without running it.
    pub async fn describe_query(&self, principal: &Principal, sql: &str) -> Result<QueryShape> {
        principal.authorize(Action::Read, Resource::Global)?;
        let ctx = self.query_context(principal).await?;
        let sql = sql.to_owned();
        self.executor()
            .run(async move {
                let frame = plan_read_only(&ctx, &sql).await?;
                Ok(QueryShape {
                    schema: portable_schema(frame.schema().inner()),
                    parameters: parameter_schema(&frame)?,
                })
            })
            .await
    }

    /// A dataset version's columns and size.
    pub async fn dataset_shape(
        &self,
        principal: &Principal,
        name: &str,
        at: Option<TimeTravel>,
    ) -> Result<DatasetShape> {
        let record = self.dataset(principal, name).await?;
        let table = open_table(&record.location, at).await?;
        let snapshot = snapshot_of(&table).await?;
        Ok(DatasetShape {
            version: snapshot.version,
            schema: portable_schema(&snapshot.schema),
            total_rows: snapshot.row_count,
            total_bytes: snapshot.size_bytes,
        })
    }

    /// Streams a dataset (at a version, or the latest), batch by batch.
    pub async fn read_dataset(
        &self,
        principal: &Principal,
        name: &str,
        at: Option<TimeTravel>,
    ) -> Result<SendableRecordBatchStream> {
        let record = self.dataset(principal, name).await?;
        let provider = match at {
            // The current version, accelerated when it is hot.
            None => self.sessions().dataset_provider(&record).await?,
            Some(at) => {
                let table = open_table(&record.location, Some(at)).await?;
                crate::datasets::scan::table_provider(&table).await?
            }
        };
        // Files decode straight into the plain types the answer leaves in.
        let provider = crate::datasets::scan::with_plain_strings(&provider).unwrap_or(provider);
        let ctx = self.sessions().file_context();
        self.executor()
            .run_stream(move || async move {
                Ok(portable(ctx.read_table(provider)?.execute_stream().await?))
            })
            .await
    }
}

/// A table as SQL sees it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Catalog (`basin`, or `datafusion` for built-ins).
    pub catalog: String,
    /// Schema (`public`, `information_schema`).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// `TABLE` for datasets, `VIEW` for the information schema.
    pub table_type: &'static str,
    /// Columns, when asked for (as queries return them).
    pub columns: Option<SchemaRef>,
}

impl Engine {
    /// Every catalog and its schemas, in name order.
    pub async fn sql_schemas(&self, principal: &Principal) -> Result<Vec<(String, Vec<String>)>> {
        principal.authorize(Action::Read, Resource::Global)?;
        let ctx = self.query_context(principal).await?;
        let mut out = Vec::new();
        let mut catalogs = ctx.catalog_names();
        catalogs.sort();
        for catalog in catalogs {
            let Some(provider) = ctx.catalog(&catalog) else {
                continue;
            };
            let mut schemas = provider.schema_names();
            schemas.sort();
            out.push((catalog, schemas));
        }
        Ok(out)
    }

    /// Every table, in catalog, schema and name order; with columns when
    /// `with_columns` (which opens each dataset).
    pub async fn sql_tables(
        &self,
        principal: &Principal,
        with_columns: bool,
    ) -> Result<Vec<TableInfo>> {
        let ctx = self.query_context(principal).await?;
        let mut out = Vec::new();
        for (catalog, schemas) in self.sql_schemas(principal).await? {
            let Some(catalog_provider) = ctx.catalog(&catalog) else {
                continue;
            };
            for schema in schemas {
                let Some(schema_provider) = catalog_provider.schema(&schema) else {
                    continue;
                };
                let mut names = schema_provider.table_names();
                names.sort();
                for name in names {
                    let columns = if with_columns {
                        match schema_provider.table(&name).await? {
                            Some(table) => Some(portable_schema(&table.schema())),
                            None => continue,
                        }
                    } else {
                        None
                    };
                    out.push(TableInfo {
                        catalog: catalog.clone(),
                        schema: schema.clone(),
                        name,
                        table_type: if schema == "information_schema" {
                            "VIEW"
                        } else {
                            "TABLE"
                        },
                        columns,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// What a query returns and takes.
#[derive(Debug, Clone)]
pub struct QueryShape {
    /// The result's columns (as [`Engine::query`] streams them).
    pub schema: SchemaRef,
    /// One field per positional parameter, `$1` first; `Null` where the type is open.
    pub parameters: SchemaRef,
}

/// Plans one statement that may read anything but change nothing: writes go
/// through the dataset API and `execute_write`, where they are validated and versioned.
pub(crate) async fn plan_read_only(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let sql = number_placeholders(sql)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    Ok(ctx.sql_with_options(&sql, options).await?)
}

/// The positional parameters a plan takes, `$1` first.
pub(crate) fn parameter_schema(frame: &DataFrame) -> Result<SchemaRef> {
    let fields = parameter_fields(frame)?;
    Ok(Arc::new(Schema::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, field)| match field {
                Some(field) => Field::new(format!("${}", i + 1), field.data_type().clone(), true),
                None => Field::new(format!("${}", i + 1), DataType::Null, true),
            })
            .collect::<Vec<_>>(),
    )))
}

fn parameter_fields(frame: &DataFrame) -> Result<Vec<Option<FieldRef>>> {
    let found = frame.logical_plan().get_parameter_fields()?;
    let mut numbered = Vec::with_capacity(found.len());
    for (name, field) in found {
        let index = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::Sql {
                message: format!("parameter `{name}` is not positional: use $1, $2, … or ?"),
                location: None,
            })?;
        numbered.push((index, field));
    }
    numbered.sort_by_key(|(index, _)| *index);
    let count = numbered.last().map_or(0, |(index, _)| *index);
    let mut fields = vec![None; count];
    for (index, field) in numbered {
        fields[index - 1] = field;
    }
    Ok(fields)
}

/// Replaces placeholders with `values`, cast to the types the plan infers for them.
pub(crate) fn bind_parameters(frame: DataFrame, values: Vec<ScalarValue>) -> Result<DataFrame> {
    let fields = parameter_fields(&frame)?;
    if fields.len() != values.len() {
        return Err(Error::InvalidInput(format!(
            "the statement takes {} parameter(s) but {} were given",
            fields.len(),
            values.len()
        )));
    }
    if values.is_empty() {
        return Ok(frame);
    }
    let mut cast = Vec::with_capacity(values.len());
    for (i, (value, field)) in values.into_iter().zip(fields).enumerate() {
        let value = match field {
            Some(field) if value.data_type() != *field.data_type() => {
                value.cast_to(field.data_type()).map_err(|e| {
                    Error::InvalidInput(format!(
                        "parameter ${} does not fit type {}: {e}",
                        i + 1,
                        field.data_type()
                    ))
                })?
            }
            _ => value,
        };
        cast.push(value);
    }
    Ok(frame.with_param_values(cast)?)
}

/// Rewrites `?` placeholders as `$1`, `$2`, … (DataFusion understands only the
/// numbered form); text in strings and comments is left alone.
pub(crate) fn number_placeholders(sql: &str) -> Result<String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| Error::Sql {
            message: e.message.clone(),
            location: Some(crate::error::SqlLocation {
                line: e.location.line,
                column: e.location.column,
            }),
        })?;
    let marks: Vec<_> = tokens
        .iter()
        .filter(|t| matches!(&t.token, Token::Placeholder(p) if p == "?"))
        .map(|t| t.span.start)
        .collect();
    if marks.is_empty() {
        return Ok(sql.to_owned());
    }
    let mut out = String::with_capacity(sql.len() + marks.len() * 2);
    let mut next = 0;
    let (mut line, mut column) = (1_u64, 1_u64);
    for ch in sql.chars() {
        if next < marks.len() && marks[next].line == line && marks[next].column == column {
            next += 1;
            out.push_str(&format!("${next}"));
        } else {
            out.push(ch);
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(out)
}

/// Ends a stream with a timeout error once `remaining` has passed.
fn with_deadline(
    stream: SendableRecordBatchStream,
    remaining: Duration,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let deadline = tokio::time::Instant::now() + remaining;
    let total_ms = remaining.as_millis() as u64;
    let bounded = futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        tokio::select! {
            item = stream.next() => item.map(|item| (item, Some(stream))),
            () = tokio::time::sleep_until(deadline) => {
                let error = DataFusionError::External(Box::new(Error::Timeout(total_ms)));
                Some((Err(error), None))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, bounded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_become_numbered_outside_strings() {
        let sql = "SELECT '?', \"a?\" FROM t -- ?\nWHERE a = ? AND b > ?";
        assert_eq!(
            number_placeholders(sql).unwrap(),
            "SELECT '?', \"a?\" FROM t -- ?\nWHERE a = $1 AND b > $2"
        );
        assert_eq!(number_placeholders("SELECT $1").unwrap(), "SELECT $1");
    }
}
