//! `basin ingest FILE --dataset NAME`: one file into a dataset as one new
//! version, locally (with a progress bar) or through a running server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use basin_connectors::file::FormatKind;
use basin_engine::datasets::write::WriteMode;
use basin_engine::identity::Principal;
use basin_engine::ingest::{BadRowPolicy, IngestOptions};
use basin_engine::runtime::jobs::ProgressFn;
use clap::Args;

use super::remote::{api, check, print_json};
use crate::app::open_local;
use crate::config::Config;

/// Load a file into a dataset (one new version).
#[derive(Debug, Args)]
pub(super) struct IngestArgs {
    /// The file (CSV, NDJSON, JSON, Parquet, Arrow; .gz and .zst too).
    file: PathBuf,
    /// The dataset to write.
    #[arg(long)]
    dataset: String,
    /// create, append or overwrite.
    #[arg(long, default_value = "append")]
    mode: WriteMode,
    /// The file's format when its name does not tell.
    #[arg(long)]
    format: Option<String>,
    /// What to do with malformed rows: fail, skip or quarantine.
    #[arg(long, default_value = "fail")]
    on_error: BadRowPolicy,
    /// Send to a running server instead of opening the data directory.
    #[arg(long)]
    server: Option<String>,
}

pub(super) async fn run(
    args: IngestArgs,
    config: &Config,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let IngestArgs {
        file,
        dataset,
        mode,
        format,
        on_error,
        server,
    } = args;
    match server {
        Some(url) => {
            let client = super::remote::client(token)?;
            remote_ingest(&client, &url, &file, &dataset, mode, format, on_error).await
        }
        None => local_ingest(config, &file, &dataset, mode, format, on_error).await,
    }
}

async fn local_ingest(
    config: &Config,
    file: &std::path::Path,
    dataset: &str,
    mode: WriteMode,
    format: Option<String>,
    on_error: BadRowPolicy,
) -> anyhow::Result<()> {
    let engine = open_local(config).await?;
    let format = format.as_deref().map(FormatKind::parse).transpose()?;
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let progress: ProgressFn = Arc::new(move |fraction, message| {
        if let Some(fraction) = fraction {
            progress_bar.set_position((fraction * 1000.0) as u64);
        }
        progress_bar.set_message(message);
    });
    let options = IngestOptions {
        mode,
        format,
        file_name: file.file_name().and_then(|n| n.to_str()).map(str::to_owned),
        on_error,
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

async fn remote_ingest(
    client: &reqwest::Client,
    url: &str,
    file: &std::path::Path,
    dataset: &str,
    mode: WriteMode,
    format: Option<String>,
    on_error: BadRowPolicy,
) -> anyhow::Result<()> {
    let handle = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
    let mut query = vec![
        ("mode", mode.to_string()),
        ("on_error", on_error.to_string()),
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
