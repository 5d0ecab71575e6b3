use serde_json::json;

use crate::common::{TestServer, error_code};

#[tokio::test]
async fn json_arrays_ndjson_parquet_and_semicolon_csv_ingest() {
    let server = TestServer::start().await;

    let (status, body) = server.upload_file("products", "", "products.json").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["format"], "ndjson");
    assert_eq!(
        server
            .rows("SELECT sku, price, active FROM products ORDER BY sku")
            .await,
        vec![
            json!(["basin-free", 0.0, true]),
            json!(["basin-pro", 49.0, true]),
            json!(["basin-team", 199.5, false])
        ]
    );

    let (status, body) = server
        .upload_file("events", "format=ndjson", "events.ndjson")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "malformed_rows"),
        "{body}"
    );
    let lines: Vec<u64> = body["error"]["details"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![6, 7]);

    let (status, body) = server.upload_file("metrics", "", "metrics.parquet").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["rows_written"], 48);
    let cost = server
        .rows("SELECT CAST(cost AS VARCHAR) FROM metrics ORDER BY at LIMIT 1 OFFSET 12")
        .await;
    assert_eq!(cost[0], json!(["12.12"]));

    let (status, body) = server
        .upload_file(
            "sensors",
            "null_values=NA&delimiter=%3B",
            "sensors_semicolon.csv",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let rows = server
        .rows("SELECT sensor, reading, unit FROM sensors ORDER BY sensor")
        .await;
    assert_eq!(rows[2], json!(["s3", null, "°C"]));
    assert_eq!(rows[0], json!(["s1", "21,5", "°C"]));
}

#[tokio::test]
async fn the_delimiter_is_sniffed_when_not_given() {
    let server = TestServer::start().await;
    let (status, body) = server
        .upload_file("sensors", "", "sensors_semicolon.csv")
        .await;
    assert_eq!(status, 201, "{body}");
    let columns: Vec<&str> = body["data"]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, vec!["sensor", "reading", "unit"]);
}

#[tokio::test]
async fn async_ingest_runs_as_a_job() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/api/v1/datasets/orders/upload?async=true&on_error=skip"))
        .body(std::fs::read(crate::common::testdata("orders.csv")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, body) = crate::common::split(response).await;
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/jobs/{id}"));
    let job = server.wait_job(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["result"]["rows_written"], 12);
    assert_eq!(job["kind"], "ingest");

    let (_, jobs) = server.get("/api/v1/jobs?status=succeeded").await;
    assert_eq!(jobs["data"].as_array().unwrap().len(), 1);
    let (status, body) = server
        .post_json(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "job_finished"));
    let (status, body) = server.get("/api/v1/jobs/nope").await;
    assert_eq!((status, error_code(&body)), (404, "job_not_found"));
}

#[tokio::test]
async fn failed_async_ingest_records_the_error() {
    let server = TestServer::start().await;
    let response = server
        .client
        .post(server.url("/api/v1/datasets/orders/upload?async=true"))
        .body(std::fs::read(crate::common::testdata("orders.csv")).unwrap())
        .send()
        .await
        .unwrap();
    let (_, body) = crate::common::split(response).await;
    let job = server.wait_job(body["data"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "malformed_rows");
    assert_eq!(job["error"]["details"]["count"], 3);
}

#[tokio::test]
async fn canceling_an_ingest_writes_nothing() {
    use std::io::Write;
    let server = TestServer::start().await;
    let (status, _) = server
        .upload("big", "", b"id,payload\n1,a\n".to_vec())
        .await;
    assert_eq!(status, 201);
    let mut large = b"id,payload\n".to_vec();
    for i in 0..1_500_000u64 {
        writeln!(large, "{i},payload-{i:0>24}").unwrap();
    }
    let (status, body) = server.upload("big", "async=true", large).await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .post_json(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let job = server.wait_job(&id).await;
    assert_eq!(job["status"], "canceled", "{job}");
    // Give an unaborted write time to commit, were it still running.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, dataset) = server.get("/api/v1/datasets/big").await;
    assert_eq!(dataset["data"]["version"], 0, "{dataset}");
    assert_eq!(server.rows("SELECT count(*) FROM big").await[0], json!([1]));
}

/// A loopback HTTP server serving the test fixtures under `/files/`, and a
/// redirect at `/away` to a URL outside the allowlist.
async fn file_server() -> String {
    use axum::extract::Path;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    let app = axum::Router::new()
        .route(
            "/files/{name}",
            axum::routing::get(|Path(name): Path<String>| async move {
                match std::fs::read(crate::common::testdata(&name)) {
                    Ok(bytes) => bytes.into_response(),
                    Err(_) => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/files/away/{name}",
            axum::routing::get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://127.0.0.1:9/elsewhere.csv")],
                )
            }),
        )
        .route(
            "/files/broken/{name}",
            axum::routing::get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn datasets_are_created_from_allowed_urls_only() {
    let files = file_server().await;
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let allowed = vec![format!("{files}/files/"), closed.clone()];
    let server = TestServer::start_with(|config| config.ingest.allowed_urls = allowed).await;

    let (status, body) = server
        .post_json(
            "/api/v1/datasets",
            json!({"name": "april", "source": format!("{files}/files/orders_april.csv.gz")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["rows_written"], 2);
    assert_eq!(body["data"]["format"], "csv");

    let cases = [
        (format!("{files}/other/orders.csv"), 403, "path_not_allowed"),
        (
            format!("{files}/files/missing.csv"),
            404,
            "source_not_found",
        ),
        (
            format!("{files}/files/broken/x.csv"),
            502,
            "source_unavailable",
        ),
        (format!("{files}/files/away/x.csv"), 403, "path_not_allowed"),
        (format!("{closed}orders.csv"), 502, "source_unavailable"),
    ];
    for (i, (url, want_status, want_code)) in cases.into_iter().enumerate() {
        let (status, body) = server
            .post_json(
                "/api/v1/datasets",
                json!({"name": format!("bad_{i}"), "source": url}),
            )
            .await;
        assert_eq!(status, want_status, "{url}: {body}");
        assert_eq!(error_code(&body), want_code, "{url}");
        let (status, _) = server.get(&format!("/api/v1/datasets/bad_{i}")).await;
        assert_eq!(status, 404, "{url} wrote a dataset");
    }
}
