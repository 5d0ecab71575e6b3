//! `basin datasets`: the dataset list, from the data directory or a running
//! server.

use std::io::Write;

use basin_engine::catalog::{DatasetFilter, DatasetSort, Page};
use basin_engine::identity::Principal;
use clap::Args;

use super::remote::{api, check};
use crate::app::open_local;
use crate::config::Config;

/// List datasets.
#[derive(Debug, Args)]
pub(super) struct DatasetsArgs {
    /// Ask a running server instead of opening the data directory.
    #[arg(long)]
    server: Option<String>,
}

pub(super) async fn run(
    args: DatasetsArgs,
    config: &Config,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64, i64)> = match args.server {
        Some(url) => remote_datasets(&super::remote::client(token)?, &url).await?,
        None => {
            let engine = open_local(config).await?;
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
