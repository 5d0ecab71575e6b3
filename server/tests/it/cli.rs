use std::process::Command;

use crate::common::{ADMIN_PASSWORD, TestServer, door_of, testdata};

fn basin(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .env_remove("BASIN_TOKEN")
        .env("BASIN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("basin runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The audit entries for `action` that a server on the data directory lists.
async fn audit_entries(data: &str, action: &str) -> Vec<serde_json::Value> {
    let data = std::path::PathBuf::from(data);
    let server = TestServer::start_with(|config| config.data_dir = data).await;
    let (_, body) = server.get(&format!("/api/v1/audit?action={action}")).await;
    body["data"].as_array().cloned().unwrap_or_default()
}

#[test]
fn ingest_query_and_list_on_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let orders = testdata("orders.csv");
    let (ok, out, err) = basin(&[
        "--data-dir",
        data,
        "ingest",
        orders.to_str().unwrap(),
        "--dataset",
        "orders",
        "--on-error",
        "skip",
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["rows_written"], 12);

    let (ok, out, err) = basin(&[
        "--data-dir",
        data,
        "query",
        "SELECT count(*) AS n FROM orders",
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "n\n12\n");

    let (ok, out, _) = basin(&[
        "--data-dir",
        data,
        "query",
        "SELECT customer FROM orders WHERE order_id = 3",
    ]);
    assert!(ok);
    assert!(out.contains("Zoë Ørsted"), "{out}");

    let parquet = dir.path().join("out.parquet");
    let (ok, _, err) = basin(&[
        "--data-dir",
        data,
        "query",
        "SELECT * FROM orders",
        "--format",
        "parquet",
        "--output",
        parquet.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(std::fs::metadata(&parquet).unwrap().len() > 0);

    let (ok, out, _) = basin(&["--data-dir", data, "datasets"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("orders ") && l.contains(" 12 ")),
        "{out}"
    );

    let (ok, _, err) = basin(&["--data-dir", data, "query", "SELEC 1"]);
    assert!(!ok);
    assert!(err.contains("basin:"), "{err}");
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("basin.toml");
    std::fs::write(&config, "[http]\nbody_limit = \"lots\"\n").unwrap();
    let (ok, _, err) = basin(&["--config", config.to_str().unwrap(), "datasets"]);
    assert!(!ok);
    assert!(err.contains("config key `http.body_limit`"), "{err}");

    let output = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["datasets"])
        .env("BASIN_HTTP_PORT", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("BASIN_HTTP_PORT"));
}

#[tokio::test]
async fn commands_talk_to_a_running_server() {
    let server = TestServer::start().await;
    let base = server.base.clone();
    let token = server.token.clone();
    let orders = testdata("orders_april.csv");
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        basin(&[
            "ingest",
            orders.to_str().unwrap(),
            "--dataset",
            "april",
            "--server",
            &base,
            "--token",
            &token,
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("\"rows_written\": 2"), "{out}");
    let base = server.base.clone();
    let token = server.token.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        basin(&[
            "query",
            "SELECT sum(order_id) AS s FROM april",
            "--format",
            "json",
            "--server",
            &base,
            "--token",
            &token,
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "{\"s\":33}");

    // Without the token the server refuses, and the CLI says why.
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["--data-dir", empty.path().to_str().unwrap()])
        .args(["datasets", "--server", &server.base])
        .env_remove("BASIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--server needs credentials"), "{err}");
}

#[tokio::test]
async fn pipeline_validate_plan_and_run_from_a_sql_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let orders = testdata("orders.csv");
    let (ok, _, err) = basin(&[
        "--data-dir",
        data,
        "ingest",
        orders.to_str().unwrap(),
        "--dataset",
        "orders",
        "--on-error",
        "skip",
    ]);
    assert!(ok, "{err}");

    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "CREATE TABLE totals AS\nSELECT customer, sum(amont) AS total\nFROM orders GROUP BY customer;\n",
    )
    .unwrap();
    let (ok, out, _) = basin(&[
        "--data-dir",
        data,
        "pipeline",
        "validate",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok, "an invalid pipeline validated: {out}");
    assert!(out.contains("bad.sql:2:"), "{out}");
    assert!(out.contains("error[sql_error]"), "{out}");

    let good = dir.path().join("daily.sql");
    std::fs::write(
        &good,
        "-- basin: param currency string default 'EUR'\n\
         CREATE TABLE totals AS\n\
         SELECT customer, sum(amount) AS total FROM orders WHERE currency = {{ currency }} GROUP BY customer;\n\
         CREATE TABLE top AS SELECT * FROM totals ORDER BY total DESC LIMIT 1;\n",
    )
    .unwrap();
    let good = good.to_str().unwrap();
    let (ok, out, err) = basin(&["--data-dir", data, "pipeline", "validate", good]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 step(s) valid"), "{out}");
    let (ok, out, err) = basin(&["--data-dir", data, "pipeline", "plan", good]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("== totals (create)"), "{out}");
    let (ok, out, err) = basin(&[
        "--data-dir",
        data,
        "pipeline",
        "run",
        good,
        "--param",
        "currency=USD",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("totals") && out.contains("succeeded"), "{out}");
    let (ok, out, err) = basin(&[
        "--data-dir",
        data,
        "query",
        "SELECT count(*) AS n FROM top",
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\n1"), "{out}");
    let runs = audit_entries(data, "pipeline.run").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["target"], "pipeline:daily");
    assert_eq!(door_of(&runs[0]), "cli", "{runs:?}");
}

#[tokio::test]
async fn a_local_ingest_is_audited_with_its_door() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let orders = testdata("orders.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["--data-dir", data.to_str().unwrap(), "ingest"])
        .arg(&orders)
        .args(["--dataset", "orders", "--on-error", "skip"])
        .env_remove("BASIN_TOKEN")
        .env("BASIN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("basin runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let server = TestServer::start_with(|config| config.data_dir = data.clone()).await;
    let (_, body) = server.get("/api/v1/audit?action=dataset.ingest").await;
    let entries = body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["actor"], "local");
    assert_eq!(entries[0]["target"], "dataset:orders");
    assert_eq!(entries[0]["outcome"], "success");
    assert_eq!(door_of(&entries[0]), "cli", "{body}");
}
