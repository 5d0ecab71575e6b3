use serde_json::json;

use crate::common::{TestServer, error_code};

#[tokio::test]
async fn json_envelope_has_columns_rows_and_meta() {
    let server = TestServer::with_orders().await;
    let (status, body) = server
        .post_json("/api/v1/query", json!({"sql": "SELECT currency, count(*) AS n FROM orders GROUP BY currency ORDER BY n DESC, currency LIMIT 2"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["columns"][0]["name"], "currency");
    assert_eq!(body["data"]["rows"], json!([["EUR", 5], ["ISK", 2]]));
    assert_eq!(body["meta"]["row_count"], 2);
    let (_, limited) = server
        .post_json(
            "/api/v1/query",
            json!({"sql": "SELECT * FROM orders", "limit": 3}),
        )
        .await;
    assert_eq!(limited["meta"]["row_count"], 3);
}

#[tokio::test]
async fn csv_ndjson_and_arrow_by_accept() {
    let server = TestServer::with_orders().await;
    let sql = json!({"sql": "SELECT order_id, note FROM orders WHERE order_id IN (2, 3) ORDER BY order_id"});
    let csv = server
        .client
        .post(server.url("/api/v1/query"))
        .header("accept", "text/csv")
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text().await.unwrap(),
        "order_id,note\n2,\n3,\"gift, wrapped\"\n"
    );

    let nd = server
        .client
        .post(server.url("/api/v1/query"))
        .header("accept", "application/x-ndjson")
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(
        nd.text().await.unwrap(),
        "{\"order_id\":2}\n{\"order_id\":3,\"note\":\"gift, wrapped\"}\n"
    );

    let arrow = server
        .client
        .post(server.url("/api/v1/query"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&sql)
        .send()
        .await
        .unwrap();
    let bytes = arrow.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);

    let refused = server
        .client
        .post(server.url("/api/v1/query"))
        .header("accept", "image/png")
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
}

#[tokio::test]
async fn bad_sql_reports_line_and_column() {
    let server = TestServer::with_orders().await;
    let (status, body) = server
        .post_json(
            "/api/v1/query",
            json!({"sql": "SELECT order_id,\n  FROM FROM orders"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "sql_error"), "{body}");
    assert_eq!(body["error"]["details"]["line"], 2, "{body}");
    assert!(body["error"]["details"]["column"].as_u64().is_some());

    let (status, body) = server
        .post_json("/api/v1/query", json!({"sql": "SELECT * FROM nowhere"}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "sql_error"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nowhere")
    );

    let (status, body) = server
        .post_json("/api/v1/query", json!({"sql": "SELECT nope FROM orders"}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "sql_error"), "{body}");
    assert_eq!(body["error"]["details"]["line"], 1, "{body}");

    let (status, body) = server
        .post_json("/api/v1/query", json!({"sq": "SELECT 1"}))
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_json"), "{body}");
    let response = server
        .client
        .post(server.url("/api/v1/query"))
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn writes_through_sql_are_refused() {
    let server = TestServer::with_orders().await;
    for sql in [
        "DROP TABLE orders",
        "INSERT INTO orders SELECT * FROM orders",
        "COPY orders TO '/tmp/x.csv'",
        "CREATE TABLE t AS SELECT 1",
    ] {
        let (status, body) = server.post_json("/api/v1/query", json!({"sql": sql})).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "sql_error"),
            "{sql}: {body}"
        );
    }
    assert_eq!(
        server.rows("SELECT count(*) FROM orders").await[0],
        json!([12])
    );
}

#[tokio::test]
async fn explain_and_information_schema_work() {
    let server = TestServer::with_orders().await;
    let rows = server.rows("EXPLAIN SELECT count(*) FROM orders").await;
    assert!(!rows.is_empty());
    let tables = server
        .rows("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        .await;
    assert_eq!(tables, vec![json!(["orders"])]);
}

#[tokio::test]
async fn queries_past_their_deadline_time_out() {
    let server = TestServer::start().await;
    let sql = "SELECT count(*) FROM generate_series(1, 2000000000) a";
    let (status, body) = server
        .post_json("/api/v1/query", json!({"sql": sql, "timeout_ms": 200}))
        .await;
    // The deadline can pass while planning (504) or while streaming (the envelope carries the error).
    if status == 200 {
        assert_eq!(body["error"]["code"], "timeout", "{body}");
    } else {
        assert_eq!((status, error_code(&body)), (504, "timeout"), "{body}");
    }
}

#[tokio::test]
async fn repeated_queries_are_answered_from_the_result_cache() {
    let server = TestServer::with_orders().await;
    let sql = json!({"sql": "SELECT currency, count(*) AS n FROM orders GROUP BY currency ORDER BY currency"});
    let (_, first) = server.post_json("/api/v1/query", sql.clone()).await;
    assert_eq!(first["meta"]["cache"], "miss", "{first}");
    let again = server
        .client
        .post(server.url("/api/v1/query"))
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["basin-cache"], "hit");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["meta"]["cache"], "hit");
    assert_eq!(again["data"], first["data"]);

    let mut fresh = sql.clone();
    fresh["cache"] = json!(false);
    let (_, fresh) = server.post_json("/api/v1/query", fresh).await;
    assert_eq!(fresh["meta"]["cache"], "bypass");
    assert_eq!(fresh["data"], first["data"]);
}
