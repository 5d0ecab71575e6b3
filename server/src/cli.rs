//! The command line: `serve`, `query`, `ingest`, `datasets`, `rotate-key`,
//! `pipeline validate|plan|run`, `openapi`.
//!
//! `query`, `ingest` and `datasets` work on the data directory directly, or on
//! a running server with `--server URL` and an API key or session token
//! (`--token` or `BASIN_TOKEN`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use basin_connectors::file::FormatKind;
use basin_engine::auth::Principal;
use basin_engine::catalog::{DatasetFilter, DatasetSort, Page};
use basin_engine::ingest::{BadRowPolicy, IngestOptions, WriteMode};
use basin_engine::query::QueryRequest;
use clap::{Parser, Subcommand, ValueEnum};
use futures::TryStreamExt;

use crate::app::{Application, open_local, shutdown_signal};
use crate::config::{Config, LogFormat, Overrides};

/// Basin: pull data together, query it, check it, serve it.
#[derive(Debug, Parser)]
#[command(name = "basin", version, about)]
pub struct Cli {
    /// Configuration file (TOML); also BASIN_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (catalog and datasets); also BASIN_DATA_DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format; also BASIN_LOG_FORMAT.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// API key or session token for `--server`; also BASIN_TOKEN.
    #[arg(long, global = true, env = "BASIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// REST API address; also BASIN_HTTP_ADDR.
        #[arg(long)]
        http_addr: Option<String>,
        /// Arrow Flight SQL address; also BASIN_FLIGHT_ADDR.
        #[arg(long)]
        flight_addr: Option<String>,
    },
    /// Run one SQL query and print or save the result.
    Query {
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
    },
    /// Load a file into a dataset (one new version).
    Ingest {
        /// The file (CSV, NDJSON, JSON, Parquet, Arrow; .gz and .zst too).
        file: PathBuf,
        /// The dataset to write.
        #[arg(long)]
        dataset: String,
        /// create, append or overwrite.
        #[arg(long, value_enum, default_value = "append")]
        mode: CliMode,
        /// The file's format when its name does not tell.
        #[arg(long)]
        format: Option<String>,
        /// What to do with malformed rows.
        #[arg(long, value_enum, default_value = "fail")]
        on_error: CliPolicy,
        /// Send to a running server instead of opening the data directory.
        #[arg(long)]
        server: Option<String>,
    },
    /// List datasets.
    Datasets {
        /// Ask a running server instead of opening the data directory.
        #[arg(long)]
        server: Option<String>,
    },
    /// Re-seal every stored secret under a new data key, written to
    /// `<data_dir>/secret.key`. Run it with the server stopped.
    RotateKey,
    /// Validate, dry-run or run a pipeline defined in a `.sql` file, on the
    /// data directory.
    Pipeline {
        #[command(subcommand)]
        action: PipelineAction,
    },
    /// Print the REST API's OpenAPI 3.1 document (the one `GET
    /// /api/v1/openapi.json` serves), for client generators.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum PipelineAction {
    /// Check the graph and plan every step; print diagnostics as FILE:LINE:COLUMN.
    Validate {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
    },
    /// Show what each step would do, its plan and sample rows; writes nothing.
    Plan {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
        /// Rows to sample per step.
        #[arg(long, default_value_t = 5)]
        sample_rows: u32,
    },
    /// Save the file as the pipeline's new version and run it, showing each
    /// step as it moves. Run it with the server stopped.
    Run {
        /// The pipeline's `.sql` file.
        file: PathBuf,
        /// A param value, `name=value` (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, serde_json::Value)>,
        /// The pipeline's name (default: the file's name without `.sql`).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `name=value`; the value is read as JSON when it is JSON (numbers,
/// booleans), as text otherwise.
fn parse_param(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not name=value"))?;
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((name.trim().to_owned(), value))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliMode {
    Create,
    Append,
    Overwrite,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CliPolicy {
    Fail,
    Skip,
    Quarantine,
}

impl From<CliMode> for WriteMode {
    fn from(mode: CliMode) -> Self {
        match mode {
            CliMode::Create => Self::Create,
            CliMode::Append => Self::Append,
            CliMode::Overwrite => Self::Overwrite,
        }
    }
}

impl From<CliPolicy> for BadRowPolicy {
    fn from(policy: CliPolicy) -> Self {
        match policy {
            CliPolicy::Fail => Self::Fail,
            CliPolicy::Skip => Self::Skip,
            CliPolicy::Quarantine => Self::Quarantine,
        }
    }
}

/// Parses arguments, runs the command, and turns errors into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The document depends on no setting, so printing it reads none: a
    // generator script runs it in whatever environment it has.
    if matches!(cli.command, Command::Openapi) {
        return match print_openapi() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("basin: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut overrides: Overrides = Vec::new();
    if let Some(dir) = &cli.data_dir {
        overrides.push(("data_dir", dir.display().to_string()));
    }
    if let Some(format) = cli.log_format {
        overrides.push(("log.format", format!("{format:?}").to_lowercase()));
    }
    if let Command::Serve {
        http_addr,
        flight_addr,
    } = &cli.command
    {
        if let Some(addr) = http_addr {
            overrides.push(("http.addr", addr.clone()));
        }
        if let Some(addr) = flight_addr {
            overrides.push(("flight.addr", addr.clone()));
        }
    }
    let config = match Config::load(cli.config.as_deref(), std::env::vars(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("basin: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(&config, matches!(cli.command, Command::Serve { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("basin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config, cli.token.as_deref())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("basin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the OpenAPI document `GET /api/v1/openapi.json` serves to stdout.
fn print_openapi() -> anyhow::Result<()> {
    let document = basin_http_api::openapi_document();
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &document)?;
    writeln!(out)?;
    Ok(())
}

fn init_tracing(config: &Config, serving: bool) {
    // One-shot commands keep stderr for their own messages unless asked.
    let level = if serving {
        config.log.level.clone()
    } else {
        format!("warn,{}", config.log.level).replace("warn,info", "warn")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn run(command: Command, config: Config, token: Option<&str>) -> anyhow::Result<()> {
    match command {
        Command::RotateKey => {
            let engine = open_local(&config).await?;
            let rotation = engine.rotate_data_key().await?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "re-sealed {} secret(s): data key {} -> {} (in {})",
                rotation.resealed,
                rotation.old_key_id,
                rotation.new_key_id,
                rotation.key_file.display()
            )?;
            writeln!(
                out,
                "back up the new key file; the old key no longer opens anything"
            )?;
            Ok(())
        }
        Command::Serve { .. } => serve(config).await,
        Command::Openapi => print_openapi(),
        Command::Pipeline { action } => crate::pipeline_cli::run(&config, action_of(action)).await,
        Command::Query {
            sql,
            format,
            output,
            server,
        } => {
            let batches = match server {
                Some(url) => remote_query(&remote_client(token)?, &url, &sql).await?,
                None => {
                    let engine = open_local(&config).await?;
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
        Command::Ingest {
            file,
            dataset,
            mode,
            format,
            on_error,
            server,
        } => match server {
            Some(url) => {
                let client = remote_client(token)?;
                remote_ingest(&client, &url, &file, &dataset, mode, format, on_error).await
            }
            None => local_ingest(&config, &file, &dataset, mode, format, on_error).await,
        },
        Command::Datasets { server } => {
            let rows: Vec<(String, i64, i64, i64)> = match server {
                Some(url) => remote_datasets(&remote_client(token)?, &url).await?,
                None => {
                    let engine = open_local(&config).await?;
                    let page = Page {
                        limit: 1000,
                        offset: 0,
                    };
                    let (datasets, _) = engine
                        .list_datasets(
                            &Principal::local(),
                            DatasetFilter::default(),
                            DatasetSort::NameAsc,
                            page,
                        )
                        .await?;
                    datasets
                        .into_iter()
                        .map(|d| (d.name, d.row_count, d.version, d.size_bytes))
                        .collect()
                }
            };
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<40} {:>14} {:>8} {:>14}",
                "name", "rows", "version", "bytes"
            )?;
            for (name, rows, version, bytes) in rows {
                writeln!(out, "{name:<40} {rows:>14} {version:>8} {bytes:>14}")?;
            }
            Ok(())
        }
    }
}

fn action_of(action: PipelineAction) -> crate::pipeline_cli::Action {
    use crate::pipeline_cli::Action;
    match action {
        PipelineAction::Validate { file, params } => Action::Validate { file, params },
        PipelineAction::Plan {
            file,
            params,
            sample_rows,
        } => Action::Plan {
            file,
            params,
            sample_rows,
        },
        PipelineAction::Run { file, params, name } => Action::Run { file, params, name },
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut app = Application::build(config.clone()).await?;
    let data_dir = app.engine().data_dir().display().to_string();
    tracing::info!(http = %app.http_addr(), flight = %app.flight_addr(), data_dir, "basin is serving");
    let sign_in = match app.take_first_admin_password() {
        // Shown this once, on the terminal only: never logged, and only its hash is kept.
        Some(password) => format!(
            "user `admin`, password `{password}` (generated; shown once: change it with POST /api/v1/auth/password)"
        ),
        None => "POST /api/v1/auth/login, an API key, or Flight Basic credentials".to_owned(),
    };
    let scheme = if app.flight_tls() { "grpc+tls" } else { "grpc" };
    let banner = format!(
        "basin {} serving\n  http:     http://{}/api/v1\n  flight:   {scheme}://{}\n  data dir: {data_dir}\n  sign in:  {sign_in}\n",
        env!("CARGO_PKG_VERSION"),
        app.http_addr(),
        app.flight_addr(),
    );
    // Best effort: a closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    app.run_until(shutdown_signal()).await
}

async fn local_ingest(
    config: &Config,
    file: &std::path::Path,
    dataset: &str,
    mode: CliMode,
    format: Option<String>,
    on_error: CliPolicy,
) -> anyhow::Result<()> {
    let engine = open_local(config).await?;
    let format = format.as_deref().map(FormatKind::parse).transpose()?;
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let progress: basin_engine::ingest::ProgressFn = Arc::new(move |fraction, message| {
        if let Some(fraction) = fraction {
            progress_bar.set_position((fraction * 1000.0) as u64);
        }
        progress_bar.set_message(message);
    });
    let options = IngestOptions {
        mode: mode.into(),
        format,
        file_name: file.file_name().and_then(|n| n.to_str()).map(str::to_owned),
        on_error: on_error.into(),
        ..Default::default()
    };
    let path = tokio::fs::canonicalize(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let report = engine
        .ingest_file(&Principal::local(), dataset, &path, options, Some(progress))
        .await;
    bar.finish_and_clear();
    let report = report?;
    print_json(&serde_json::to_value(&report)?)
}

/// A command's result on standard output, as pretty JSON.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn api(url: &str, path: &str) -> String {
    format!("{}/api/v1{path}", url.trim_end_matches('/'))
}

async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = &body["error"];
    bail!(
        "server answered {status}: {} ({})",
        error["message"].as_str().unwrap_or("no message"),
        error["code"].as_str().unwrap_or("no code")
    )
}

/// An HTTP client that presents an API key or session token.
fn remote_client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let Some(token) = token else {
        bail!(
            "--server needs credentials: create an API key (POST /api/v1/api-keys) and pass it with --token or BASIN_TOKEN"
        );
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the token is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
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

async fn remote_ingest(
    client: &reqwest::Client,
    url: &str,
    file: &std::path::Path,
    dataset: &str,
    mode: CliMode,
    format: Option<String>,
    on_error: CliPolicy,
) -> anyhow::Result<()> {
    let handle = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
    let mut query = vec![
        ("mode", format!("{mode:?}").to_lowercase()),
        ("on_error", format!("{on_error:?}").to_lowercase()),
    ];
    let format = format.or_else(|| FormatKind::from_path(file).map(|f| f.to_string()));
    if let Some(format) = format {
        query.push(("format", format));
    }
    let response = client
        .post(api(url, &format!("/datasets/{dataset}/upload")))
        .query(&query)
        .body(body)
        .send()
        .await?;
    let body: serde_json::Value = check(response).await?.json().await?;
    print_json(&body["data"])
}

async fn remote_datasets(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Vec<(String, i64, i64, i64)>> {
    let response = client.get(api(url, "/datasets?limit=1000")).send().await?;
    let body: serde_json::Value = check(response).await?.json().await?;
    Ok(body["data"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap_or_default().to_owned(),
                        d["row_count"].as_i64().unwrap_or_default(),
                        d["version"].as_i64().unwrap_or_default(),
                        d["size_bytes"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
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
