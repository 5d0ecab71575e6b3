//! Ingest (CSV → Delta) and query throughput of the engine, in process.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::Duration;

use basin_engine::auth::Principal;
use basin_engine::ingest::{IngestOptions, WriteMode};
use basin_engine::query::QueryRequest;
use basin_engine::{Engine, EngineConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;

const ROWS: u64 = 500_000;

fn engine_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("orders.csv");
    let bytes = basin_benches::write_orders_csv(&csv, ROWS).expect("generate");
    let engine = runtime
        .block_on(Engine::open(EngineConfig::new(dir.path().join("data"))))
        .expect("engine");

    let mut group = c.benchmark_group("ingest");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("csv_to_delta_500k_rows", |b| {
        b.iter(|| {
            let options = IngestOptions {
                mode: WriteMode::Overwrite,
                ..Default::default()
            };
            runtime
                .block_on(engine.ingest_file("orders", &csv, options, None))
                .expect("ingest")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("query");
    group.sample_size(20);
    group.throughput(Throughput::Elements(ROWS));
    group.bench_function("group_by_currency_500k_rows", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = QueryRequest {
                    sql: "SELECT currency, count(*), sum(amount), avg(amount) FROM orders GROUP BY currency".into(),
                    ..Default::default()
                };
                let stream = engine
                    .query(&Principal::local(), request)
                    .await
                    .expect("query");
                let batches: Vec<_> = stream.try_collect().await.expect("collect");
                batches
            })
        })
    });
    group.finish();
}

criterion_group!(benches, engine_benches);
criterion_main!(benches);
