//! Ingest (CSV → Delta) and query throughput of the engine, in process, and
//! what authentication costs a request.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::Duration;

use basin_engine::datasets::write::WriteMode;
use basin_engine::identity::Principal;
use basin_engine::ingest::IngestOptions;
use basin_engine::sql::query::QueryRequest;
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
                .block_on(engine.ingest_file(&Principal::local(), "orders", &csv, options, None))
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
                    // The bench measures computing the answer, not remembering it.
                    bypass_cache: true,
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

/// Sign-in (argon2id) and the per-request credential check: a session token
/// and an API key, each a lookup by SHA-256 plus the user and their grants.
fn auth_benches(c: &mut Criterion) {
    use basin_engine::identity::throttle::RateLimit;
    use basin_engine::identity::{
        Action, ClientInfo, Credentials, Door, NewApiKey, Resource, Scope,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EngineConfig::new(dir.path());
    // The benchmark measures the check, not the limiter.
    let unlimited = RateLimit {
        per_second: 0,
        burst: 0,
    };
    config.auth.rate_per_ip = unlimited;
    config.auth.rate_per_principal = unlimited;
    let engine = runtime.block_on(Engine::open(config)).expect("engine");
    let password = engine
        .take_first_admin_password()
        .expect("a fresh directory generates the admin's password");
    let client = ClientInfo::through(Door::Rest);
    let session = runtime
        .block_on(engine.login("admin", &password, &client))
        .expect("login")
        .token;
    let session = Credentials::Bearer(session);
    let principal = runtime
        .block_on(engine.authenticate(Some(&session), &client))
        .expect("session");
    let (key, _) = runtime
        .block_on(engine.create_api_key(
            &principal,
            NewApiKey {
                name: "bench".into(),
                scopes: vec![Scope::Read],
                ..Default::default()
            },
        ))
        .expect("key");
    let key = Credentials::Bearer(key);

    let mut group = c.benchmark_group("auth");
    group.sample_size(10);
    group.bench_function("login_argon2id", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.login("admin", &password, &client))
                .expect("login")
        })
    });
    group.sample_size(100);
    group.bench_function("authenticate_session", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.authenticate(Some(&session), &client))
                .expect("session")
        })
    });
    group.bench_function("authenticate_api_key", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.authenticate(Some(&key), &client))
                .expect("key")
        })
    });
    group.bench_function("authorize", |b| {
        b.iter(|| principal.authorize(Action::Read, Resource::Dataset("orders")))
    });
    group.finish();
}

criterion_group!(benches, engine_benches, auth_benches);
criterion_main!(benches);
