use serde_json::json;

use crate::common::{TestServer, error_code};

#[tokio::test]
async fn malformed_rows_under_fail_are_listed_and_nothing_is_written() {
    let server = TestServer::start().await;
    let (status, body) = server
        .upload_file("orders", "format=csv", "orders.csv")
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "malformed_rows");
    let rows = body["error"]["details"]["rows"].as_array().unwrap();
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![7, 10, 14], "{body}");
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("amount"),
        "{body}"
    );
    assert!(
        rows[1]["reason"]
            .as_str()
            .unwrap()
            .contains("expected 6 fields, found 8"),
        "{body}"
    );
    assert!(body["error"]["request_id"].is_string());
    let (status, body) = server.get("/api/v1/datasets/orders").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "dataset_not_found");
    let leftovers = std::fs::read_dir(server.data_dir.path().join("datasets"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "a failed create left files behind");
}

#[tokio::test]
async fn skip_writes_good_rows_exactly_and_reports_the_rest() {
    let server = TestServer::start().await;
    let (status, body) = server
        .upload_file("orders", "on_error=skip", "orders.csv")
        .await;
    assert_eq!(status, 201, "{body}");
    let report = &body["data"];
    assert_eq!(report["rows_written"], 12);
    assert_eq!(report["rows_rejected"], 3);
    assert_eq!(report["version"], 0);
    assert_eq!(report["format"], "csv");

    let rows = server
        .rows("SELECT order_id, customer, note FROM orders WHERE order_id IN (2, 3, 4, 5) ORDER BY order_id")
        .await;
    assert_eq!(rows[0], json!([2, "Grace Hopper", null]));
    assert_eq!(rows[1], json!([3, "Zoë Ørsted", "gift, wrapped"]));
    assert_eq!(rows[2], json!([4, "李小龍", "急件"]));
    assert_eq!(
        rows[3],
        json!([5, "Björk Guðmundsdóttir", "said \"hello\""])
    );
    let amounts = server
        .rows("SELECT CAST(amount AS VARCHAR) FROM orders WHERE order_id = 4")
        .await;
    assert_eq!(amounts[0], json!(["1200.75"]));
    // Offsets are honoured: 09:30+08:00 is 01:30Z.
    let at = server
        .rows("SELECT CAST(ordered_at AS VARCHAR) FROM basin.public.orders WHERE order_id = 4")
        .await;
    assert!(
        at[0][0]
            .as_str()
            .unwrap()
            .starts_with("2024-03-03T01:30:00"),
        "{at:?}"
    );
}

#[tokio::test]
async fn supplied_schema_keeps_decimals_exact() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post_json(
            "/api/v1/datasets",
            json!({
                "name": "orders",
                "source": crate::common::testdata("orders.csv").display().to_string(),
                "on_error": "skip",
                "schema": [
                    {"name": "order_id", "type": "bigint"},
                    {"name": "customer", "type": "text"},
                    {"name": "amount", "type": "decimal(12,2)"},
                    {"name": "currency", "type": "text"},
                    {"name": "ordered_at", "type": "timestamptz"},
                    {"name": "note", "type": "text"}
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let rows = server
        .rows("SELECT CAST(sum(amount) AS VARCHAR) FROM orders")
        .await;
    // 19.99+250.00+5.50+1200.75+0.99+42.00+77.10+8.00+1729.00+19.99+64.00+21.50
    assert_eq!(rows[0], json!(["3438.82"]));
}

#[tokio::test]
async fn quarantine_keeps_bad_rows_in_a_side_dataset() {
    let server = TestServer::start().await;
    let (status, body) = server
        .upload_file("orders", "on_error=quarantine", "orders.csv")
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["rejected_dataset"], "orders__rejected");
    let rows = server
        .rows("SELECT line, reason FROM orders__rejected ORDER BY line")
        .await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][0], 7);
}

#[tokio::test]
async fn append_versions_time_travel_and_restore() {
    let server = TestServer::start().await;
    let (status, _) = server
        .upload_file("orders", "on_error=skip", "orders.csv")
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .upload_file("orders", "mode=append", "orders_april.csv.gz")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(body["data"]["rows_written"], 2);

    let (_, dataset) = server.get("/api/v1/datasets/orders").await;
    assert_eq!(dataset["data"]["row_count"], 14);
    assert_eq!(dataset["data"]["version"], 1);
    assert!(dataset["data"].get("location").is_none());

    let (_, versions) = server.get("/api/v1/datasets/orders/versions").await;
    let versions = versions["data"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[1]["version"], 0);

    let (status, page) = server
        .get("/api/v1/datasets/orders/preview?version=0&limit=5&offset=10")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["rows"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["version"], 0);
    assert_eq!(page["meta"]["page"]["total"], 12);

    let v0_time = versions[1]["timestamp"].as_str().unwrap().to_owned();
    let (status, page) = server
        .client
        .get(server.url("/api/v1/datasets/orders/preview"))
        .query(&[("as_of", v0_time.as_str()), ("limit", "1")])
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|s| (s, ()))
        .unwrap();
    assert_eq!(status, 200, "{page:?}");
    let (_, page) = server
        .get(&format!(
            "/api/v1/datasets/orders/preview?as_of={}",
            v0_time.replace('+', "%2B")
        ))
        .await;
    assert_eq!(page["meta"]["version"], 0, "{page}");
    let (status, body) = server
        .get("/api/v1/datasets/orders/preview?as_of=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "version_not_found"),
        "{body}"
    );

    let (status, body) = server
        .get("/api/v1/datasets/orders/preview?version=7")
        .await;
    assert_eq!((status, error_code(&body)), (404, "version_not_found"));

    let (status, restored) = server
        .post_json("/api/v1/datasets/orders/restore", json!({"version": 0}))
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["data"]["version"], 2);
    assert_eq!(restored["data"]["row_count"], 12);
    assert_eq!(
        server.rows("SELECT count(*) FROM orders").await[0],
        json!([12])
    );

    // Restoring the current version, by number or by time, writes nothing.
    for target in [json!({"version": 2}), json!({"as_of": chrono::Utc::now()})] {
        let (status, again) = server
            .post_json("/api/v1/datasets/orders/restore", target)
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["data"]["version"], 2, "{again}");
    }
}

#[tokio::test]
async fn appending_a_different_schema_is_refused_and_writes_nothing() {
    let server = TestServer::start().await;
    server.upload_file("products", "", "products.json").await;
    let (status, body) = server
        .upload_file(
            "products",
            "mode=append&format=csv",
            "sensors_semicolon.csv",
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "schema_mismatch"),
        "{body}"
    );
    let (_, dataset) = server.get("/api/v1/datasets/products").await;
    assert_eq!(dataset["data"]["version"], 0);
}

#[tokio::test]
async fn statistics_describe_columns() {
    let server = TestServer::start().await;
    server.upload_file("metrics", "", "metrics.parquet").await;
    let (status, body) = server.get("/api/v1/datasets/metrics/statistics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["row_count"], 48);
    let columns = body["data"]["columns"].as_array().unwrap();
    let requests = columns.iter().find(|c| c["name"] == "requests").unwrap();
    assert_eq!(requests["null_count"], 5);
    assert_eq!(requests["min"], "7");
    let host = columns.iter().find(|c| c["name"] == "host").unwrap();
    assert_eq!(host["distinct_approx"], 3);
}

#[tokio::test]
async fn listing_filters_sorts_and_pages() {
    let server = TestServer::start().await;
    for name in ["alpha", "beta", "gamma"] {
        let (status, body) = server.upload_file(name, "", "products.json").await;
        assert_eq!(status, 201, "{body}");
    }
    let response = server
        .client
        .patch(server.url("/api/v1/datasets/beta"))
        .json(&json!({"tags": ["finance"], "description": "money"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (_, page) = server.get("/api/v1/datasets?limit=2&sort=-name").await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["gamma", "beta"]);
    assert_eq!(page["meta"]["page"]["total"], 3);
    assert_eq!(
        page["meta"]["page"]["next"],
        "/api/v1/datasets?sort=-name&limit=2&offset=2"
    );

    let (_, tagged) = server.get("/api/v1/datasets?tag=finance").await;
    assert_eq!(tagged["data"].as_array().unwrap().len(), 1);
    assert_eq!(tagged["data"][0]["description"], "money");

    let (status, body) = server.get("/api/v1/datasets?sort=size").await;
    assert_eq!((status, error_code(&body)), (400, "invalid_input"));
}

#[tokio::test]
async fn rename_soft_delete_and_purge() {
    let server = TestServer::start().await;
    server.upload_file("draft", "", "products.json").await;
    let response = server
        .client
        .patch(server.url("/api/v1/datasets/draft"))
        .json(&json!({"name": "products"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        server.rows("SELECT count(*) FROM products").await[0],
        json!([3])
    );

    let response = server
        .client
        .delete(server.url("/api/v1/datasets/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(server.get("/api/v1/datasets/products").await.0, 404);
    let (_, all) = server.get("/api/v1/datasets?include_deleted=true").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);

    server.upload_file("gone", "", "products.json").await;
    let response = server
        .client
        .delete(server.url("/api/v1/datasets/gone?purge=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, all) = server.get("/api/v1/datasets?include_deleted=true").await;
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        1,
        "purged row is gone"
    );
}

#[tokio::test]
async fn bad_names_paths_and_formats_are_refused() {
    let server = TestServer::start().await;
    for name in ["Orders", "a-b", "%2E%2E%2Fetc", "a%20b", "x%22y"] {
        let (status, body) = server.upload(name, "", b"a,b\n1,2\n".to_vec()).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_identifier"),
            "{name}: {body}"
        );
    }
    let (status, body) = server
        .post_json(
            "/api/v1/datasets",
            json!({"name": "passwd", "source": "/etc/passwd"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "path_not_allowed"),
        "{body}"
    );
    let escape = format!("{}/../Cargo.toml", crate::common::testdata("").display());
    let (status, body) = server
        .post_json(
            "/api/v1/datasets",
            json!({"name": "escape", "source": escape}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "path_not_allowed"),
        "{body}"
    );
    let missing = crate::common::testdata("missing.csv").display().to_string();
    let (status, body) = server
        .post_json("/api/v1/datasets", json!({"name": "m", "source": missing}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "source_not_found"),
        "{body}"
    );

    for query in ["", "async=true"] {
        let (status, body) = server.upload("x", query, Vec::new()).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "invalid_input"),
            "{body}"
        );
    }

    let (status, body) = server.upload("x", "format=xlsx", b"a,b\n".to_vec()).await;
    assert_eq!(
        (status, error_code(&body)),
        (415, "unsupported_format"),
        "{body}"
    );
    let (status, body) = server
        .upload("x", "format=parquet", b"not parquet at all".to_vec())
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .upload("x", "format=json", b"[{\"a\": 1},".to_vec())
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "malformed_input"),
        "{body}"
    );
    let (status, body) = server.upload("x", "bogus=1", b"a\n1\n".to_vec()).await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_query_parameter"),
        "{body}"
    );

    let (_, list) = server.get("/api/v1/datasets?include_deleted=true").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing was written: {list}"
    );
}

#[tokio::test]
async fn create_refuses_an_existing_name() {
    let server = TestServer::start().await;
    let source = crate::common::testdata("products.json")
        .display()
        .to_string();
    let (status, _) = server
        .post_json("/api/v1/datasets", json!({"name": "p", "source": source}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .post_json("/api/v1/datasets", json!({"name": "p", "source": source}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (409, "dataset_exists"),
        "{body}"
    );
}

#[tokio::test]
async fn oversize_bodies_get_413_and_write_nothing() {
    let server = TestServer::start_with(|c| c.http.body_limit = 1024).await;
    let big = "id,text\n".to_owned() + &"1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n".repeat(200);
    let (status, body) = server.upload("big", "", big.into_bytes()).await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "payload_too_large"),
        "{body}"
    );
    let (status, body) = server
        .post_json(
            "/api/v1/query",
            json!({"sql": format!("SELECT '{}'", "x".repeat(2000))}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (413, "payload_too_large"),
        "{body}"
    );
    assert_eq!(server.get("/api/v1/datasets/big").await.0, 404);
}

#[tokio::test]
async fn multipart_uploads_use_the_file_name() {
    let server = TestServer::start().await;
    let boundary = "basin-test-boundary";
    let mut body = Vec::new();
    body.extend(
        format!("--{boundary}\r\ncontent-disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    body.extend(
        format!("--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"events.ndjson\"\r\ncontent-type: application/octet-stream\r\n\r\n")
            .as_bytes(),
    );
    body.extend(std::fs::read(crate::common::testdata("events.ndjson")).unwrap());
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = server
        .client
        .post(server.url("/api/v1/datasets/events/upload?on_error=skip"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = crate::common::split(response).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["format"], "ndjson");
    assert_eq!(body["data"]["rows_written"], 6);
    assert_eq!(body["data"]["rows_rejected"], 2);
}
