//! How queries scan datasets: DataFusion's Parquet reader over the version's
//! files, with each file's statistics from the Delta log, so filters prune
//! files and row groups and exact counts answer without reading data.

use basin_engine::identity::Principal;
use basin_engine::ingest::IngestOptions;
use basin_engine::sql::query::QueryRequest;
use basin_engine::{Engine, EngineConfig};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;

/// An engine whose `orders` has two files: an ingest and an insert.
async fn engine_with_two_files(dir: &tempfile::TempDir) -> Engine {
    let mut config = EngineConfig::new(dir.path().join("data"));
    // Every query plans and reads (no answer comes from the result cache).
    config.result_cache_bytes = 0;
    let engine = Engine::open(config).await.expect("engine opens");
    let csv = dir.path().join("orders.csv");
    std::fs::write(&csv, "id,amount\n1,10\n2,20\n3,30\n").expect("csv written");
    let local = Principal::local();
    engine
        .ingest_file(&local, "orders", &csv, IngestOptions::default(), None)
        .await
        .expect("ingest");
    engine
        .execute_write(&local, "INSERT INTO orders VALUES (40, 400)", Vec::new())
        .await
        .expect("insert");
    engine
}

async fn ask(engine: &Engine, sql: &str) -> String {
    let request = QueryRequest {
        sql: sql.into(),
        ..Default::default()
    };
    let output = engine
        .run_query(&Principal::local(), request)
        .await
        .expect("query");
    let batches: Vec<RecordBatch> = output.stream.try_collect().await.expect("rows");
    pretty_format_batches(&batches).expect("format").to_string()
}

#[tokio::test]
async fn filters_prune_files_by_the_logs_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_two_files(&dir).await;
    let sql = "SELECT id FROM orders WHERE amount > 100";

    let plan = ask(&engine, &format!("EXPLAIN ANALYZE {sql}")).await;
    assert!(plan.contains("file_type=parquet"), "{plan}");
    assert!(plan.contains("predicate=amount@"), "{plan}");
    // The ingested file's maximum (30) rules it out before it is opened.
    assert!(
        plan.contains("files_ranges_pruned_statistics=2 total → 1 matched"),
        "{plan}"
    );
    assert!(ask(&engine, sql).await.contains("| 40 |"));
}

#[tokio::test]
async fn exact_counts_and_integer_bounds_answer_without_reading_data() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_two_files(&dir).await;
    let sql = "SELECT count(*) AS n, max(id) AS top FROM orders";

    let plan = ask(&engine, &format!("EXPLAIN {sql}")).await;
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    let answer = ask(&engine, sql).await;
    assert!(answer.contains("| 4 | 40  |"), "{answer}");
}
