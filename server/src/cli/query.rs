//! `basin query SQL`: one query on the data directory or a running server,
//! printed as a table, CSV or JSON lines, or saved as Parquet.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use basin_engine::identity::Principal;
use basin_engine::sql::query::QueryRequest;
use clap::{Args, ValueEnum};
use futures::TryStreamExt;

use super::remote::{api, check};
use crate::app::open_local;
use crate::config::Config;

/// Run one SQL query and print or save the result.
#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    /// The SQL.
    sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Write to this file instead of standard output (required for parquet).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Ask a running server instead of opening the data directory.
    #[arg(long)]
    server: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
/// How a result is written.
enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

pub(super) async fn run(
    args: QueryArgs,
    config: &Config,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let QueryArgs {
        sql,
        format,
        output,
        server,
    } = args;
    let batches = match server {
        Some(url) => remote_query(&super::remote::client(token)?, &url, &sql).await?,
        None => {
            let engine = open_local(config).await?;
            let request = QueryRequest {
                sql,
                ..Default::default()
            };
            let stream = engine.query(&Principal::local(), request).await?;
            stream
                .try_collect()
                .await
                .map_err(basin_engine::Error::from)?
        }
    };
    write_output(&batches, format, output.as_deref())
}

async fn remote_query(
    client: &reqwest::Client,
    url: &str,
    sql: &str,
) -> anyhow::Result<Vec<RecordBatch>> {
    let response = client
        .post(api(url, "/query"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await?;
    let bytes = check(response).await?.bytes().await?;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

fn write_output(
    batches: &[RecordBatch],
    format: OutputFormat,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        OutputFormat::Table => writeln!(
            sink,
            "{}",
            arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut sink);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut sink);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => {
            let Some(path) = output else {
                bail!("--format parquet needs --output FILE")
            };
            drop(sink);
            let file = std::fs::File::create(path)?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
            return Ok(());
        }
    }
    sink.flush()?;
    Ok(())
}
