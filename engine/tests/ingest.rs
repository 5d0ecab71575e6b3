//! Ingest of files large enough to be read in byte ranges: each range is
//! encoded by its own writer into files of its own, and all of them commit
//! as one version; a failure in any range commits nothing and leaves no file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use basin_engine::datasets::write::WriteMode;
use basin_engine::identity::Principal;
use basin_engine::ingest::IngestOptions;
use basin_engine::sql::query::QueryRequest;
use basin_engine::{Engine, EngineConfig};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;

/// Rows of the generated file: about 14 MB, past DataFusion's 10 MB minimum
/// for splitting a file into ranges.
const ROWS: usize = 500_000;

/// Writes `rows` rows of `id,label,amount` with ascending ids from `first`,
/// and `tail` after them.
fn write_csv(path: &Path, first: usize, rows: usize, tail: &str) {
    let mut text = String::with_capacity(rows * 30);
    text.push_str("id,label,amount\n");
    for id in first..first + rows {
        writeln!(text, "{id},label-{id},{}.5", id % 1000).unwrap();
    }
    text.push_str(tail);
    std::fs::write(path, text).expect("csv written");
}

async fn engine(dir: &tempfile::TempDir) -> Engine {
    let mut config = EngineConfig::new(dir.path().join("data"));
    config.result_cache_bytes = 0;
    config.cpu_threads = 4;
    Engine::open(config).await.expect("engine opens")
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

/// The Parquet files in a dataset's directory, committed or not.
fn parquet_files(location: &str) -> Vec<PathBuf> {
    let dir = url::Url::parse(location).unwrap().to_file_path().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_large_file_is_written_by_parallel_writers_as_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let local = Principal::local();
    let csv = dir.path().join("events.csv");
    write_csv(&csv, 1, ROWS, "");

    let report = engine
        .ingest_file(&local, "events", &csv, IngestOptions::default(), None)
        .await
        .expect("ingest");
    assert_eq!((report.version, report.rows_written), (0, ROWS as u64));
    let record = engine.dataset(&local, "events").await.unwrap();
    assert!(record.file_count >= 2, "one file per range: {record:?}");
    assert_eq!(record.row_count, ROWS as i64);

    let answer = ask(
        &engine,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi, \
         sum(amount) AS total FROM events",
    )
    .await;
    assert!(
        answer.contains("| 500000 | 500000 | 1  | 500000 | 250000000.0 |"),
        "{answer}"
    );
    // Each file holds consecutive rows, so a narrow range of ids reads one
    // file (in several byte ranges when there are fewer files than cores) and
    // skips the others by their statistics.
    let plan = ask(
        &engine,
        "EXPLAIN ANALYZE SELECT count(label) FROM events WHERE id < 1000",
    )
    .await;
    let (total, matched) = pruned_ranges(&plan);
    assert!(matched < total, "{plan}");

    // An append of another large file is one more version of the same kind.
    let more = dir.path().join("more.csv");
    write_csv(&more, ROWS + 1, ROWS, "");
    let append = IngestOptions {
        mode: WriteMode::Append,
        ..Default::default()
    };
    let report = engine
        .ingest_file(&local, "events", &more, append, None)
        .await
        .expect("append");
    assert_eq!((report.version, report.rows_written), (1, ROWS as u64));
    let answer = ask(&engine, "SELECT count(*) AS n, max(id) AS hi FROM events").await;
    assert!(answer.contains("| 1000000 | 1000000 |"), "{answer}");

    let versions = engine.versions(&local, "events", None).await.unwrap();
    let operations: Vec<_> = versions.iter().map(|v| v.operation.clone()).collect();
    assert_eq!(
        operations,
        [Some("WRITE".to_owned()), Some("CREATE TABLE".to_owned())]
    );
    assert_eq!(versions[0].metrics["num_added_rows"], ROWS);
}

#[tokio::test]
async fn a_bad_row_in_any_range_commits_nothing_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir).await;
    let local = Principal::local();
    let csv = dir.path().join("events.csv");
    write_csv(&csv, 1, ROWS, "");
    engine
        .ingest_file(&local, "events", &csv, IngestOptions::default(), None)
        .await
        .expect("ingest");
    let before = engine.dataset(&local, "events").await.unwrap();
    let files = parquet_files(&before.location);

    // The bad row is at the end, in the last range, read long after the
    // first ranges' writers have written files.
    let bad = dir.path().join("bad.csv");
    write_csv(&bad, ROWS + 1, ROWS, "oops,label,1.5\n");
    let append = IngestOptions {
        mode: WriteMode::Append,
        ..Default::default()
    };
    let err = engine
        .ingest_file(&local, "events", &bad, append, None)
        .await
        .expect_err("a malformed row fails the ingest");
    assert_eq!(err.code(), "malformed_rows", "{err}");

    let after = engine.dataset(&local, "events").await.unwrap();
    assert_eq!((after.version, after.row_count), (0, ROWS as i64));
    assert_eq!(parquet_files(&after.location), files);

    // A new dataset from the bad file leaves nothing behind at all.
    let err = engine
        .ingest_file(&local, "fresh", &bad, IngestOptions::default(), None)
        .await
        .expect_err("a malformed row fails the ingest");
    assert_eq!(err.code(), "malformed_rows", "{err}");
    assert!(engine.dataset(&local, "fresh").await.is_err());
    let data = dir.path().join("data");
    let leftovers: Vec<_> = walk(&data)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .filter(|path| !files.contains(path))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The scan's `files_ranges_pruned_statistics`: ranges in all, ranges read.
fn pruned_ranges(plan: &str) -> (usize, usize) {
    let metric = plan
        .split("files_ranges_pruned_statistics=")
        .nth(1)
        .expect("the scan reports pruning");
    let mut numbers = metric
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}
