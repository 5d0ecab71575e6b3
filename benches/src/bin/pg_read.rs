//! Reads a PostgreSQL table into Arrow through Basin's connector and prints
//! rows/s; with `--discover`, times discovery of a schema. Driven by
//! `benches/peers/postgres_read.py`, which times `COPY … (FORMAT binary)` in
//! the same run.
//!
//! Usage: `pg_read --dsn-host 127.0.0.1 --port 5432 --database test --user
//! postgres --stream bench.big [--discover SCHEMA]`

#![allow(clippy::print_stdout)] // a benchmark reports on stdout for its driver script

use std::sync::Arc;
use std::time::Instant;

use basin_connectors::source::{ReadOptions, SourceEnv, read};
use basin_connectors::{Connector, postgres::Postgres};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use futures::StreamExt;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let host = arg(&args, "--host").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = arg(&args, "--port").map_or(Ok(5432), |p| p.parse())?;
    let database = arg(&args, "--database").unwrap_or_else(|| "test".into());
    let user = arg(&args, "--user").unwrap_or_else(|| "postgres".into());
    let discover = arg(&args, "--discover");
    let config = serde_json::json!({
        "host": host, "port": port, "database": database, "user": user, "ssl_mode": "disable",
        "schemas": discover.iter().collect::<Vec<_>>(),
    });
    let runtime = RuntimeEnvBuilder::new().build_arc()?;
    let env = SourceEnv {
        allowed_roots: Vec::new(),
        runtime: runtime.clone(),
        io: tokio::runtime::Handle::current(),
    };
    let source = Postgres.connect(&config, &env).await?;
    if discover.is_some() {
        let started = Instant::now();
        let streams = source.discover().await?;
        // A machine-readable line for the driver script.
        println!(
            "discover streams={} seconds={:.4}",
            streams.len(),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let stream = arg(&args, "--stream").ok_or("--stream is required")?;
    let started = Instant::now();
    let mut batches = read(
        source.as_ref(),
        &stream,
        &ReadOptions::default(),
        Arc::clone(&runtime),
    )
    .await?;
    let (mut rows, mut bytes) = (0usize, 0usize);
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
    }
    println!(
        "read rows={rows} seconds={:.4} arrow_bytes={bytes}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
