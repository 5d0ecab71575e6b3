//! The command line: `serve`, `query`, `ingest`, `datasets`, `rotate-key`,
//! `pipeline validate|plan|run`, `openapi`.
//!
//! `query`, `ingest` and `datasets` work on the data directory directly, or on
//! a running server with `--server URL` and an API key or session token
//! (`--token` or `BASIN_TOKEN`).

mod datasets;
mod ingest;
mod pipeline;
mod query;
mod remote;
mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::open_local;
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
    Query(query::QueryArgs),
    /// Load a file into a dataset (one new version).
    Ingest(ingest::IngestArgs),
    /// List datasets.
    Datasets(datasets::DatasetsArgs),
    /// Re-seal every stored secret under a new data key, written to
    /// `<data_dir>/secret.key`. Run it with the server stopped.
    RotateKey,
    /// Validate, dry-run or run a pipeline defined in a `.sql` file, on the
    /// data directory.
    Pipeline {
        #[command(subcommand)]
        action: pipeline::PipelineCommand,
    },
    /// Print the REST API's OpenAPI 3.1 document (the one `GET
    /// /api/v1/openapi.json` serves), for client generators.
    Openapi,
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
        Command::Serve { .. } => serve::run(config).await,
        Command::Openapi => print_openapi(),
        Command::Pipeline { action } => pipeline::run(&config, action).await,
        Command::Query(args) => query::run(args, &config, token).await,
        Command::Ingest(args) => ingest::run(args, &config, token).await,
        Command::Datasets(args) => datasets::run(args, &config, token).await,
    }
}
