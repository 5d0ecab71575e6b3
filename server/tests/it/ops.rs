use crate::common::{TestServer, error_code, split};

#[tokio::test]
async fn health_ready_and_headers() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    assert_eq!(response.headers()["api-version"], "1");
    let (status, body) = server.get("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["catalog"], "ok");

    let response = server
        .client
        .get(server.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = crate::common::split(response).await;
    assert_eq!((status, error_code(&body)), (404, "route_not_found"));
    assert_eq!(body["error"]["request_id"], id);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = TestServer::start().await;
    server.upload_file("products", "", "products.json").await;
    server.rows("SELECT 1").await;
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "basin_http_request_duration_seconds_bucket",
        "route=\"/api/v1/datasets/{name}/upload\"",
        "basin_http_requests_in_flight",
        "basin_ingest_rows_total",
        "basin_ingest_bytes_total",
        "basin_queries_total",
    ] {
        assert!(text.contains(metric), "missing {metric} in\n{text}");
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting() {
    let server = TestServer::start().await;
    let url = server.url("/health");
    assert_eq!(server.client.get(&url).send().await.unwrap().status(), 200);
    server.stop().await;
    assert!(
        reqwest::Client::new().get(&url).send().await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let server = TestServer::start().await;
    let (status, doc) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/datasets", "get"),
        ("/datasets", "post"),
        ("/datasets/{name}", "patch"),
        ("/datasets/{name}", "delete"),
        ("/datasets/{name}/upload", "post"),
        ("/datasets/{name}/preview", "get"),
        ("/datasets/{name}/versions", "get"),
        ("/datasets/{name}/restore", "post"),
        ("/datasets/{name}/statistics", "get"),
        ("/query", "post"),
        ("/jobs", "get"),
        ("/jobs/{id}", "get"),
        ("/jobs/{id}/cancel", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
}

#[tokio::test]
async fn api_routes_need_credentials() {
    let server = TestServer::start().await;
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(server.url("/api/v1/datasets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let (_, body) = split(response).await;
    assert_eq!(error_code(&body), "unauthenticated");

    let response = anonymous
        .post(server.url("/api/v1/query"))
        .bearer_auth("wrong-token-wrong-token")
        .json(&serde_json::json!({ "sql": "SELECT 1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let response = anonymous
        .get(server.url("/api/v1/datasets"))
        .basic_auth("admin", Some(crate::common::ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    for open in ["/health", "/api/v1/openapi.json"] {
        let response = anonymous.get(server.url(open)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
}
