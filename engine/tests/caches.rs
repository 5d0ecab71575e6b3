//! The engine's caches of data: the result cache answers a repeated query
//! from memory while the datasets it read keep their versions, acceleration
//! scans hot dataset versions from memory; neither serves what the caller
//! could not compute or what a write has made stale.

use std::sync::Arc;

use basin_engine::identity::{ClientInfo, Door, Principal, Role, Scope, Via};
use basin_engine::ingest::IngestOptions;
use basin_engine::sql::query::QueryRequest;
use basin_engine::sql::results::CacheOutcome;
use basin_engine::{Engine, EngineConfig, Error};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::ScalarValue;
use futures::TryStreamExt;

async fn engine_with_orders(dir: &tempfile::TempDir, cache_bytes: u64) -> Engine {
    let mut config = EngineConfig::new(dir.path().join("data"));
    config.result_cache_bytes = cache_bytes;
    open_with_orders(dir, config).await
}

async fn open_with_orders(dir: &tempfile::TempDir, config: EngineConfig) -> Engine {
    let engine = Engine::open(config).await.expect("engine opens");
    let csv = dir.path().join("orders.csv");
    std::fs::write(&csv, "id,amount\n1,10\n2,20\n3,30\n").expect("csv written");
    for name in ["orders", "secrets"] {
        engine
            .ingest_file(
                &Principal::local(),
                name,
                &csv,
                IngestOptions::default(),
                None,
            )
            .await
            .expect("ingest");
    }
    engine
}

/// Runs `sql` and returns the answer as text and where it came from.
async fn ask(engine: &Engine, principal: &Principal, sql: &str) -> (String, CacheOutcome) {
    ask_with(engine, principal, sql, Vec::new()).await
}

async fn ask_with(
    engine: &Engine,
    principal: &Principal,
    sql: &str,
    params: Vec<ScalarValue>,
) -> (String, CacheOutcome) {
    let request = QueryRequest {
        sql: sql.into(),
        params,
        ..Default::default()
    };
    let output = engine.run_query(principal, request).await.expect("query");
    let batches: Vec<RecordBatch> = output.stream.try_collect().await.expect("rows");
    let text = pretty_format_batches(&batches).expect("format").to_string();
    (text, output.cache)
}

/// An API key that may read `orders` and nothing else.
fn orders_reader() -> Principal {
    Principal {
        user_id: Some("u1".into()),
        username: "ann".into(),
        role: Role::Viewer,
        via: Via::ApiKey {
            id: "k1".into(),
            scopes: vec![Scope::Read],
            datasets: Some(vec!["orders".into()]),
        },
        grants: Arc::from(Vec::new()),
        client: ClientInfo::through(Door::Rest),
    }
}

const TOTAL: &str = "SELECT count(*) AS n, sum(amount) AS total FROM orders";

#[tokio::test]
async fn a_repeated_query_is_answered_from_memory_until_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_orders(&dir, 64 << 20).await;
    let local = Principal::local();

    let (first, outcome) = ask(&engine, &local, TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    let (again, outcome) = ask(&engine, &local, TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(again, first);

    // The write's version is in the catalog before the write returns, so the
    // very next query computes the new answer.
    engine
        .execute_write(&local, "INSERT INTO orders VALUES (4, 40)", Vec::new())
        .await
        .expect("insert");
    let (after, outcome) = ask(&engine, &local, TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    assert!(after.contains("| 4 | 100   |"), "{after}");
    let (_, outcome) = ask(&engine, &local, TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Hit);
}

#[tokio::test]
async fn answers_are_kept_per_parameters_and_never_for_unfixed_functions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_orders(&dir, 64 << 20).await;
    let local = Principal::local();
    let lookup = "SELECT amount FROM orders WHERE id = $1";

    let (one, _) = ask_with(&engine, &local, lookup, vec![ScalarValue::Int64(Some(1))]).await;
    let (two, outcome) = ask_with(&engine, &local, lookup, vec![ScalarValue::Int64(Some(2))]).await;
    assert_eq!(
        outcome,
        CacheOutcome::Miss,
        "another parameter is another query"
    );
    assert_ne!(one, two);
    let (_, outcome) = ask_with(&engine, &local, lookup, vec![ScalarValue::Int64(Some(2))]).await;
    assert_eq!(outcome, CacheOutcome::Hit);

    for sql in [
        "SELECT now() AS at, count(*) FROM orders",
        "SELECT random() AS r FROM orders",
        "SELECT table_name FROM information_schema.tables",
        "EXPLAIN SELECT * FROM orders",
    ] {
        ask(&engine, &local, sql).await;
        let (_, outcome) = ask(&engine, &local, sql).await;
        assert_eq!(outcome, CacheOutcome::Miss, "{sql} must not be kept");
    }
}

#[tokio::test]
async fn a_kept_answer_is_served_only_to_callers_who_may_read_its_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_orders(&dir, 64 << 20).await;
    let local = Principal::local();
    let join = "SELECT count(*) AS n FROM orders JOIN secrets USING (id)";
    ask(&engine, &local, join).await;
    let (_, outcome) = ask(&engine, &local, join).await;
    assert_eq!(outcome, CacheOutcome::Hit);

    let request = QueryRequest {
        sql: join.into(),
        ..Default::default()
    };
    match engine.run_query(&orders_reader(), request).await {
        Err(Error::Sql { message, .. }) => assert!(message.contains("secrets"), "{message}"),
        Err(other) => panic!("expected the planning error, got {other:?}"),
        Ok(_) => panic!("a reader of orders alone got the join's answer"),
    }
    // What they may read is still answered (and shared) as usual.
    let (_, outcome) = ask(&engine, &orders_reader(), TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Miss);
    let (_, outcome) = ask(&engine, &local, TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Hit);
}

#[tokio::test]
async fn a_cache_of_zero_bytes_is_off_and_a_request_may_bypass_it() {
    let dir = tempfile::tempdir().unwrap();
    let off = engine_with_orders(&dir, 0).await;
    let (_, outcome) = ask(&off, &Principal::local(), TOTAL).await;
    assert_eq!(outcome, CacheOutcome::Bypass);

    let dir = tempfile::tempdir().unwrap();
    let on = engine_with_orders(&dir, 64 << 20).await;
    ask(&on, &Principal::local(), TOTAL).await;
    let request = QueryRequest {
        sql: TOTAL.into(),
        bypass_cache: true,
        ..Default::default()
    };
    let output = on
        .run_query(&Principal::local(), request)
        .await
        .expect("query");
    assert_eq!(output.cache, CacheOutcome::Bypass);
}

/// The physical plan of `sql`, as `EXPLAIN` shows it.
async fn physical_plan(engine: &Engine, sql: &str) -> String {
    let (text, _) = ask(engine, &Principal::local(), &format!("EXPLAIN {sql}")).await;
    text
}

/// An engine with `orders`, acceleration on and the result cache off (so
/// every query plans, and counts as a read).
async fn accelerating_engine(dir: &tempfile::TempDir) -> Engine {
    let mut config = EngineConfig::new(dir.path().join("data"));
    config.result_cache_bytes = 0;
    config.acceleration_bytes = 64 << 20;
    open_with_orders(dir, config).await
}

/// The plan of `sql` once it scans memory (the table loads in the
/// background); `None` if that does not happen within five seconds.
async fn accelerated_plan(engine: &Engine, sql: &str) -> Option<String> {
    for _ in 0..200 {
        let plan = physical_plan(engine, sql).await;
        if plan.contains("partition_sizes") {
            return Some(plan);
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    None
}

#[tokio::test]
async fn a_hot_dataset_version_is_scanned_from_memory_until_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let engine = accelerating_engine(&dir).await;
    let local = Principal::local();
    let sql = "SELECT id, amount FROM orders ORDER BY id";

    let (from_files, _) = ask(&engine, &local, sql).await;
    assert!(
        !physical_plan(&engine, sql)
            .await
            .contains("partition_sizes")
    );
    // The second read made the version hot; it loads in the background.
    assert!(
        accelerated_plan(&engine, sql).await.is_some(),
        "orders was not accelerated after repeated reads"
    );
    let (from_memory, _) = ask(&engine, &local, sql).await;
    assert_eq!(from_memory, from_files);

    // A write is visible at once: the stale version is never scanned.
    engine
        .execute_write(&local, "INSERT INTO orders VALUES (4, 40)", Vec::new())
        .await
        .expect("insert");
    assert!(
        !physical_plan(&engine, sql)
            .await
            .contains("partition_sizes")
    );
    let (after, _) = ask(&engine, &local, sql).await;
    assert!(after.contains("| 4  | 40     |"), "{after}");
}

#[tokio::test]
async fn acceleration_is_off_unless_given_memory() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_orders(&dir, 0).await;
    let sql = "SELECT * FROM orders";
    for _ in 0..3 {
        ask(&engine, &Principal::local(), sql).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !physical_plan(&engine, sql)
            .await
            .contains("partition_sizes")
    );
}

/// The batch counts of the first memory scan in `plan` (`partition_sizes=[…]`).
fn scanned_batches(plan: &str) -> Option<usize> {
    let sizes = plan.split("partition_sizes=[").nth(1)?.split(']').next()?;
    Some(
        sizes
            .split(',')
            .filter_map(|n| n.trim().parse::<usize>().ok())
            .sum(),
    )
}

#[tokio::test]
async fn an_accelerated_scan_skips_the_batches_its_filter_rules_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = accelerating_engine(&dir).await;
    let local = Principal::local();
    let csv = dir.path().join("events.csv");
    let rows: String = (0..100_000).map(|i| format!("{i},{}\n", i % 7)).collect();
    std::fs::write(&csv, format!("id,kind\n{rows}")).unwrap();
    engine
        .ingest_file(&local, "events", &csv, IngestOptions::default(), None)
        .await
        .expect("ingest");

    let lookup = "SELECT id, kind FROM events WHERE id = 54321";
    let range = "SELECT count(*) AS n, sum(kind) AS s FROM events WHERE id >= 90000";
    let (found, _) = ask(&engine, &local, lookup).await;
    let (counted, _) = ask(&engine, &local, range).await;
    let plan = accelerated_plan(&engine, lookup)
        .await
        .expect("events is accelerated");
    let whole = scanned_batches(&physical_plan(&engine, "SELECT * FROM events").await)
        .expect("the table is accelerated");
    assert!(
        whole > 2,
        "100,000 rows should be several batches, got {whole}"
    );
    // File order survives ingest, so ids are ordered and one batch holds 54321.
    assert_eq!(scanned_batches(&plan), Some(1), "{plan}");
    assert_eq!(ask(&engine, &local, lookup).await.0, found);
    assert_eq!(ask(&engine, &local, range).await.0, counted);
}
