//! SQL that writes datasets: `CREATE TABLE name AS SELECT …`, `CREATE TABLE
//! name (columns)`, and `INSERT INTO name [(columns)] SELECT … | VALUES …`.
//!
//! Each statement is one atomic Delta version: the query part is planned
//! read-only, conformed to the dataset's columns and committed like an ingest.
//! Everything else that changes state (`DROP`, `UPDATE`, `COPY`, …) is refused;
//! datasets are managed through the dataset API.

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    CreateTable, Ident, Insert, ObjectName, Query, Statement, TableObject,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::datasets::conform::{ColumnMapping, conform};
use crate::datasets::write::{WriteMode, WriteOutcome};
use crate::error::Entity;
use crate::identity::{Action, Principal, Resource};
use crate::sql::query::{bind_parameters, number_placeholders, parameter_schema};
use crate::{Engine, Error, Result};
use basin_sql::{CATALOG_NAME, SCHEMA_NAME};

/// Whether a statement reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A query (or `EXPLAIN`): it returns rows and changes nothing.
    Query,
    /// `CREATE TABLE` or `INSERT INTO` a dataset: it returns a row count.
    Write,
}

/// A parsed write.
enum Write {
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name AS query` or `(columns)`.
    Create {
        name: String,
        source: CreateSource,
        or_replace: bool,
        if_not_exists: bool,
    },
    /// `INSERT INTO name [(columns)] query`.
    Insert {
        name: String,
        columns: Vec<String>,
        query: Box<Query>,
    },
}

impl Write {
    /// The dataset the statement writes.
    fn target(&self) -> &str {
        match self {
            Self::Create { name, .. } | Self::Insert { name, .. } => name,
        }
    }
}

enum CreateSource {
    Query(Box<Query>),
    /// Column names and SQL type text: an empty dataset.
    Columns(Vec<(String, String)>),
}

impl Engine {
    /// Whether `sql` is a query or a write, from its syntax alone.
    pub fn statement_kind(&self, sql: &str) -> Result<StatementKind> {
        Ok(match parse_write(sql)? {
            Some(_) => StatementKind::Write,
            None => StatementKind::Query,
        })
    }

    /// The positional parameters of a write (`INSERT INTO t VALUES ($1, $2)`).
    pub async fn describe_write(&self, principal: &Principal, sql: &str) -> Result<SchemaRef> {
        let write = parse_write(sql)?.ok_or_else(not_a_write)?;
        principal.authorize(Action::Write, Resource::Dataset(write.target()))?;
        let query = match write {
            Write::Create {
                source: CreateSource::Query(query),
                ..
            }
            | Write::Insert { query, .. } => query,
            Write::Create { .. } => return Ok(std::sync::Arc::new(Schema::empty())),
        };
        let ctx = self.query_context(principal).await?;
        self.executor()
            .run(async move { parameter_schema(&plan_query(&ctx, *query).await?) })
            .await
    }

    /// Runs a `CREATE TABLE` or `INSERT INTO` statement as one new dataset
    /// version. Planning, like the write itself, runs on the CPU runtime.
    ///
    /// Audited, with the door it came through.
    pub async fn execute_write(
        &self,
        principal: &Principal,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<WriteOutcome> {
        let write = self.run_write(principal, sql, params);
        self.audited(principal, "sql.write", sql, write).await
    }

    async fn run_write(
        &self,
        principal: &Principal,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<WriteOutcome> {
        let write = parse_write(sql)?.ok_or_else(not_a_write)?;
        principal.authorize(Action::Write, Resource::Dataset(write.target()))?;
        let ctx = self.query_context(principal).await?;
        match write {
            Write::Create {
                name,
                source,
                or_replace,
                if_not_exists,
            } => {
                let existing = self.catalog().dataset_by_name(&name).await?;
                if let Some(record) = &existing
                    && !or_replace
                {
                    if if_not_exists {
                        return Ok(WriteOutcome {
                            dataset: name,
                            version: record.version,
                            rows_written: 0,
                        });
                    }
                    return Err(Error::already_exists(Entity::Dataset, name));
                }
                let frame = self
                    .executor()
                    .run(async move {
                        match source {
                            CreateSource::Query(query) => {
                                bind_parameters(plan_query(&ctx, *query).await?, params)
                            }
                            CreateSource::Columns(columns) => empty_frame(&ctx, &columns).await,
                        }
                    })
                    .await?;
                self.commit_write(&name, existing, WriteMode::Overwrite, frame)
                    .await
            }
            Write::Insert {
                name,
                columns,
                query,
            } => {
                let record = self.dataset_record(&name).await?;
                let table = crate::datasets::open_table(&record.location, None).await?;
                let target = crate::datasets::snapshot_of(&table).await?.schema;
                let mapping = if columns.is_empty() {
                    ColumnMapping::ByPosition
                } else {
                    ColumnMapping::Listed(columns)
                };
                let frame = self
                    .executor()
                    .run(async move {
                        let frame = bind_parameters(plan_query(&ctx, *query).await?, params)?;
                        conform(frame, &target, mapping)
                    })
                    .await?;
                self.commit_write(&name, Some(record), WriteMode::Append, frame)
                    .await
            }
        }
    }
}

fn not_a_write() -> Error {
    Error::InvalidInput("not a CREATE TABLE or INSERT INTO statement".into())
}

/// Parses `sql`: `Some` for a supported write, `None` for a read (query,
/// `EXPLAIN`, `SHOW`), an error for any other statement.
fn parse_write(sql: &str) -> Result<Option<Write>> {
    let sql = number_placeholders(sql)?;
    let mut statements =
        DFParser::parse_sql_with_dialect(&sql, &GenericDialect {}).map_err(Error::from)?;
    if statements.len() != 1 {
        return Err(Error::Sql {
            message: format!("expected exactly one statement, found {}", statements.len()),
            location: None,
        });
    }
    let statement = match statements.pop_front() {
        Some(DFStatement::Statement(statement)) => *statement,
        Some(DFStatement::Explain(_)) => return Ok(None),
        _ => return Err(unsupported_write()),
    };
    match statement {
        Statement::CreateTable(create) => parse_create(create).map(Some),
        Statement::Insert(insert) => parse_insert(insert).map(Some),
        Statement::Query(_) | Statement::Explain { .. } | Statement::ExplainTable { .. } => {
            Ok(None)
        }
        other if other.to_string().to_ascii_uppercase().starts_with("SHOW ") => Ok(None),
        _ => Err(unsupported_write()),
    }
}

fn unsupported_write() -> Error {
    unsupported(
        "Basin's SQL writes are CREATE TABLE … AS SELECT, CREATE TABLE (columns) and INSERT INTO; \
         rename, delete and restore datasets through the REST API",
    )
}

fn parse_create(create: CreateTable) -> Result<Write> {
    if create.temporary || create.external {
        return Err(unsupported(
            "TEMPORARY and EXTERNAL tables are not supported; datasets are Delta tables",
        ));
    }
    let name = dataset_name(&create.name)?;
    let source = match (create.query, create.columns.is_empty()) {
        (Some(query), true) => CreateSource::Query(query),
        (Some(_), false) => {
            return Err(unsupported(
                "column definitions and AS SELECT cannot be combined; cast in the SELECT instead",
            ));
        }
        (None, false) => CreateSource::Columns(
            create
                .columns
                .iter()
                .map(|c| (normalize(&c.name), c.data_type.to_string()))
                .collect(),
        ),
        (None, true) => return Err(unsupported("CREATE TABLE needs columns or AS SELECT")),
    };
    Ok(Write::Create {
        name,
        source,
        or_replace: create.or_replace,
        if_not_exists: create.if_not_exists,
    })
}

fn parse_insert(insert: Insert) -> Result<Write> {
    let TableObject::TableName(table) = &insert.table else {
        return Err(unsupported("INSERT INTO a table function is not supported"));
    };
    if insert.overwrite || insert.on.is_some() || insert.returning.is_some() {
        return Err(unsupported(
            "INSERT supports only INTO name [(columns)] SELECT … or VALUES …",
        ));
    }
    let query = insert
        .source
        .ok_or_else(|| unsupported("INSERT needs SELECT … or VALUES …"))?;
    let columns = insert
        .columns
        .iter()
        .map(|c| match c.0.as_slice() {
            [part] => part
                .as_ident()
                .map(normalize)
                .ok_or_else(|| unsupported("invalid column name")),
            _ => Err(unsupported("INSERT column names must be unqualified")),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Write::Insert {
        name: dataset_name(table)?,
        columns,
        query,
    })
}

/// `name`, `public.name` or `basin.public.name`, as a validated dataset name.
fn dataset_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(normalize)
                .ok_or_else(|| unsupported("invalid table name"))
        })
        .collect::<Result<_>>()?;
    let table = match parts.as_slice() {
        [table] => table,
        [schema, table] if schema == SCHEMA_NAME => table,
        [catalog, schema, table] if catalog == CATALOG_NAME && schema == SCHEMA_NAME => table,
        _ => {
            return Err(Error::InvalidInput(format!(
                "datasets live in {CATALOG_NAME}.{SCHEMA_NAME}; cannot write to `{name}`"
            )));
        }
    };
    basin_sql::validate_name(table)?;
    Ok(table.clone())
}

/// Unquoted identifiers fold to lowercase, as DataFusion folds them in queries.
fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn unsupported(message: &str) -> Error {
    Error::Sql {
        message: message.to_owned(),
        location: None,
    }
}

async fn plan_query(ctx: &SessionContext, query: Query) -> Result<DataFrame> {
    let state = ctx.state();
    let plan = state
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(
            Box::new(query),
        ))))
        .await?;
    Ok(DataFrame::new(state, plan))
}

async fn empty_frame(ctx: &SessionContext, columns: &[(String, String)]) -> Result<DataFrame> {
    let select = columns
        .iter()
        .map(|(name, ty)| format!("CAST(NULL AS {ty}) AS {}", basin_sql::quote_ident(name)))
        .collect::<Vec<_>>()
        .join(", ");
    let frame = ctx.sql(&format!("SELECT {select}")).await?;
    Ok(frame.limit(0, Some(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_told_from_queries() {
        let kind = |sql: &str| parse_write(sql).unwrap().is_some();
        assert!(kind("CREATE TABLE t AS SELECT 1"));
        assert!(kind("create or replace table basin.public.t as select 1"));
        assert!(kind("INSERT INTO t VALUES (1, 'a')"));
        assert!(kind("INSERT INTO t (a) SELECT 1"));
        assert!(kind("CREATE TABLE t (id BIGINT, name VARCHAR)"));
        assert!(!kind("SELECT 1"));
        assert!(!kind("EXPLAIN SELECT 1"));
        assert!(!kind("SHOW TABLES"));
        assert!(parse_write("DROP TABLE t").is_err());
        assert!(parse_write("DELETE FROM t").is_err());
    }

    #[test]
    fn bad_targets_are_refused() {
        assert!(parse_write("CREATE TABLE other.t AS SELECT 1").is_err());
        assert!(parse_write("CREATE TABLE \"Bad Name\" AS SELECT 1").is_err());
        assert!(parse_write("CREATE TABLE t (a INT) AS SELECT 1").is_err());
        assert!(parse_write("CREATE TEMPORARY TABLE t AS SELECT 1").is_err());
        assert!(parse_write("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn unquoted_names_fold_to_lowercase() {
        let Some(Write::Insert { name, columns, .. }) =
            parse_write("INSERT INTO Sales (Amount) VALUES (1)").unwrap()
        else {
            panic!("not an insert")
        };
        assert_eq!(name, "sales");
        assert_eq!(columns, vec!["amount"]);
    }
}
