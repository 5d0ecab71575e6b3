//! SQL pipelines end to end: define, validate, plan, run in parallel,
//! incremental steps, failures and retries, versions, templates, lineage,
//! schedules, triggers and the event WebSocket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{TestServer, error_code};

/// Five steps after `clean_orders`: two independent branches
/// (`daily_sales`; `big_orders` → `customer_totals`), an incremental log and a view.
const SALES: &str = "\
-- basin: description Daily sales from raw orders
-- basin: retries 1
-- basin: backoff_ms 50

CREATE OR REPLACE TABLE clean_orders AS
SELECT id, customer, amount, CAST(day AS DATE) AS day
FROM raw_orders
WHERE amount > 0;

CREATE TEMPORARY VIEW big_orders AS
SELECT * FROM clean_orders WHERE amount >= 10;

CREATE TABLE daily_sales AS
SELECT day, sum(amount) AS total, count(*) AS orders
FROM clean_orders GROUP BY day;

CREATE TABLE customer_totals AS
SELECT customer, sum(amount) AS total FROM big_orders GROUP BY customer;

-- basin: incremental append cursor id
CREATE TABLE order_log AS
SELECT id, customer, amount FROM clean_orders;

CREATE VIEW sales_summary AS
SELECT d.day, d.total, c.customers
FROM daily_sales d CROSS JOIN (SELECT count(*) AS customers FROM customer_totals) c;
";

/// Writes CSV text into a dataset (`mode` is `create`, `append` or `overwrite`).
pub(crate) async fn csv(server: &TestServer, dataset: &str, mode: &str, text: &str) {
    let (status, body) = server
        .upload(dataset, &format!("mode={mode}"), text.as_bytes().to_vec())
        .await;
    assert!(status == 200 || status == 201, "{dataset}: {body}");
}

async fn put_json(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .client
        .put(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::common::split(response).await
}

async fn seed_orders(server: &TestServer) {
    csv(
        server,
        "raw_orders",
        "create",
        "id,customer,amount,day\n1,ada,12.5,2024-03-01\n2,bob,3.0,2024-03-01\n\
         3,ada,20.0,2024-03-02\n4,cy,-1.0,2024-03-02\n5,bob,15.0,2024-03-03\n",
    )
    .await;
}

pub(crate) async fn start_run(server: &TestServer, pipeline: &str) -> String {
    let (status, body) = server
        .post_json(&format!("/api/v1/pipelines/{pipeline}/runs"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn wait_run(server: &TestServer, id: &str) -> Value {
    for _ in 0..1200 {
        let (status, body) = server.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let state = body["data"]["status"].as_str().unwrap_or_default();
        if ["succeeded", "failed", "canceled"].contains(&state) {
            return body["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} did not end");
}

pub(crate) fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn open_ws(server: &TestServer) -> Socket {
    open_ws_as(server, &server.token).await
}

/// A WebSocket signed in with `token` (a session token or an API key), past its `ready`.
async fn open_ws_as(server: &TestServer, token: &str) -> Socket {
    let url = format!("{}/api/v1/ws", server.base.replace("http://", "ws://"));
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let ready = next_json(&mut socket).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    socket
}

pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

pub(crate) async fn subscribe(socket: &mut Socket, channels: &[&str], since: Option<i64>) {
    let mut message = json!({ "op": "subscribe", "channels": channels });
    if let Some(since) = since {
        message["since"] = json!(since);
    }
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
    let reply = next_json(socket).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
}

/// Events until the run's final one (heartbeats skipped).
async fn events_until_end(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_json(socket).await;
        if event["type"] == "heartbeat" {
            continue;
        }
        let last = matches!(
            event["type"].as_str(),
            Some("pipeline_completed" | "pipeline_failed")
        );
        events.push(event);
        if last {
            return events;
        }
    }
}

#[tokio::test]
async fn a_branching_pipeline_validates_plans_runs_in_parallel_and_appends_incrementally() {
    let server = TestServer::start().await;
    seed_orders(&server).await;

    let (status, body) = server
        .post_json("/api/v1/pipelines/validate", json!({ "sql": SALES }))
        .await;
    assert_eq!(status, 200, "{body}");
    let validation = &body["data"];
    assert_eq!(validation["valid"], true, "{validation}");
    assert_eq!(validation["levels"][0], json!(["clean_orders"]));
    assert_eq!(
        validation["levels"][1],
        json!(["big_orders", "daily_sales", "order_log"])
    );
    let daily = validation["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "daily_sales")
        .unwrap();
    assert_eq!(daily["depends_on"], json!(["clean_orders"]));
    let total = daily["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "total")
        .unwrap();
    assert_eq!(total["transform"], "aggregation");
    assert_eq!(
        total["sources"],
        json!([{ "table": "clean_orders", "column": "amount" }])
    );

    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "sales", "sql": SALES }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["active_version"], 1);

    // A dry run writes nothing and shows samples computed through the steps.
    let (status, body) = server
        .post_json("/api/v1/pipelines/sales/plan", json!({ "sample_rows": 3 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let plan = &body["data"];
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    let daily = steps.iter().find(|s| s["name"] == "daily_sales").unwrap();
    assert_eq!(daily["action"], "create");
    assert_eq!(daily["sample"].as_array().unwrap().len(), 3);
    assert!(
        daily["explain"]["physical"]
            .as_str()
            .unwrap()
            .contains("Aggregate")
    );
    let (status, _) = server.get("/api/v1/datasets/daily_sales").await;
    assert_eq!(status, 404, "a plan must not write");

    let run_id = start_run(&server, "sales").await;
    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    for name in [
        "clean_orders",
        "big_orders",
        "daily_sales",
        "customer_totals",
        "order_log",
        "sales_summary",
    ] {
        assert_eq!(step(&run, name)["status"], "succeeded", "{name}: {run}");
    }
    // The scan reads the 5 raw orders; the filter keeps 4.
    assert_eq!(step(&run, "clean_orders")["rows_read"], 5);
    assert_eq!(step(&run, "daily_sales")["rows_read"], 4);
    assert_eq!(step(&run, "clean_orders")["rows_written"], 4);
    // The independent steps of one level ran together: each started before
    // any of them finished.
    let at = |name: &str, field: &str| {
        chrono::DateTime::parse_from_rfc3339(step(&run, name)[field].as_str().unwrap()).unwrap()
    };
    let level = ["big_orders", "daily_sales", "order_log"];
    let first_finish = level.iter().map(|s| at(s, "finished_at")).min().unwrap();
    assert!(
        level.iter().all(|s| at(s, "started_at") <= first_finish),
        "independent branches ran one after the other: {run}"
    );
    assert_eq!(
        server
            .rows("SELECT CAST(day AS VARCHAR) AS d, total, orders FROM daily_sales ORDER BY 1")
            .await,
        vec![
            json!(["2024-03-01", 15.5, 2]),
            json!(["2024-03-02", 20.0, 1]),
            json!(["2024-03-03", 15.0, 1]),
        ]
    );
    assert_eq!(
        server
            .rows("SELECT customer, total FROM customer_totals ORDER BY customer")
            .await,
        vec![json!(["ada", 32.5]), json!(["bob", 15.0])]
    );
    // The view is stored: queries read it.
    assert_eq!(
        server
            .rows("SELECT customers FROM sales_summary LIMIT 1")
            .await,
        vec![json!([2])]
    );
    assert_eq!(step(&run, "order_log")["rows_written"], 4);

    // New raw rows: the incremental step appends only them.
    csv(
        &server,
        "raw_orders",
        "append",
        "id,customer,amount,day\n6,dee,7.0,2024-03-04\n7,ada,1.0,2024-03-04\n",
    )
    .await;
    let run_id = start_run(&server, "sales").await;
    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(step(&run, "order_log")["rows_written"], 2);
    assert_eq!(
        server
            .rows("SELECT count(*), count(DISTINCT id) FROM order_log")
            .await,
        vec![json!([6, 6])]
    );

    // Run history, newest first; an idempotency key returns the same run.
    let (_, body) = server.get("/api/v1/pipelines/sales/runs?limit=1").await;
    assert_eq!(body["data"][0]["id"], run_id);
    assert_eq!(body["meta"]["page"]["total"], 2);
    let (first, body) = server
        .post_json(
            "/api/v1/pipelines/sales/runs",
            json!({ "idempotency_key": "k1" }),
        )
        .await;
    assert_eq!(first, 202, "{body}");
    let keyed = body["data"]["id"].clone();
    let (again, body) = server
        .post_json(
            "/api/v1/pipelines/sales/runs",
            json!({ "idempotency_key": "k1" }),
        )
        .await;
    assert_eq!(again, 200, "{body}");
    assert_eq!(body["data"]["id"], keyed);
    wait_run(&server, keyed.as_str().unwrap()).await;
}

#[tokio::test]
async fn validation_points_at_the_step_line_and_column() {
    let server = TestServer::start().await;
    seed_orders(&server).await;
    // The error is on line 7 of the file, column 8.
    let file = "\
CREATE TABLE a AS
SELECT id, amount FROM raw_orders;

-- basin: description broken
CREATE TABLE b AS
SELECT id,
       no_such_column
FROM a;
";
    let (status, body) = server
        .post_json("/api/v1/pipelines/validate", json!({ "sql": file }))
        .await;
    assert_eq!(status, 200, "{body}");
    let validation = &body["data"];
    assert_eq!(validation["valid"], false);
    let error = &validation["diagnostics"][0];
    assert_eq!(error["step"], "b", "{error}");
    assert_eq!(error["code"], "sql_error", "{error}");
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(7), Some(8)),
        "{error}"
    );
    // Saving it is refused with the same diagnostics.
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "broken", "sql": file }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "pipeline_invalid");
    assert_eq!(body["error"]["details"]["diagnostics"][0]["line"], 7);

    let check = |definition: Value| {
        let server = &server;
        async move {
            let (status, body) = server
                .post_json(
                    "/api/v1/pipelines/validate",
                    json!({ "definition": definition }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["data"]["diagnostics"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let steps = |steps: Value| json!({ "steps": steps });
    assert_eq!(
        check(steps(
            json!([{ "name": "x", "sql": "SELECT * FROM nowhere" }])
        ))
        .await,
        "unknown_table"
    );
    assert_eq!(
        check(steps(json!([
            { "name": "x", "sql": "SELECT * FROM y" },
            { "name": "y", "sql": "SELECT * FROM x" },
        ])))
        .await,
        "cycle"
    );
    assert_eq!(
        check(steps(
            json!([{ "name": "x", "sql": "DELETE FROM raw_orders" }])
        ))
        .await,
        "not_a_query"
    );
    assert_eq!(
        check(steps(json!([{ "name": "x", "sql": "SELECT {{ nope }}" }]))).await,
        "unknown_param"
    );
}

#[tokio::test]
async fn a_failing_step_retries_fails_its_downstream_and_a_retry_resumes_after_the_fix() {
    let server = TestServer::start().await;
    csv(&server, "raw_values", "create", "v\n1\nx\n").await;
    csv(&server, "other_input", "create", "k\n1\n").await;
    let definition = json!({
        "defaults": { "retries": 1, "backoff_ms": 20 },
        "steps": [
            { "name": "parsed", "sql": "SELECT CAST(v AS INT) AS n FROM raw_values" },
            { "name": "doubled", "sql": "SELECT n * 2 AS n2 FROM parsed" },
            { "name": "tripled", "sql": "SELECT n2 * 3 AS n6 FROM doubled" },
            { "name": "independent", "sql": "SELECT k FROM other_input" },
        ],
    });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "fragile", "definition": definition }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut socket = open_ws(&server).await;
    subscribe(&mut socket, &["pipeline:fragile"], None).await;
    let run_id = start_run(&server, "fragile").await;
    let events = events_until_end(&mut socket).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "pipeline_failed", "{last}");
    assert_eq!(last["data"]["failed_steps"], json!(["parsed"]));
    assert!(
        events
            .iter()
            .any(|e| e["data"]["step"]["status"] == "retrying"),
        "no retrying event in {events:?}"
    );

    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(step(&run, "parsed")["status"], "failed");
    assert_eq!(step(&run, "parsed")["attempts"], 2);
    assert!(
        step(&run, "parsed")["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x"),
        "{run}"
    );
    assert_eq!(step(&run, "doubled")["status"], "upstream_failed");
    assert_eq!(step(&run, "tripled")["status"], "upstream_failed");
    assert_eq!(step(&run, "independent")["status"], "succeeded");
    assert_eq!(run["error"]["code"], "step_failed");

    // A retry before the fix fails again; after it, it resumes from the failure.
    csv(&server, "raw_values", "overwrite", "v\n1\n2\n").await;
    let (status, body) = server
        .post_json(&format!("/api/v1/runs/{run_id}/retry"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let retry_id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["retry_of"], run_id.as_str());
    let retry = wait_run(&server, &retry_id).await;
    assert_eq!(retry["status"], "succeeded", "{retry}");
    assert_eq!(step(&retry, "independent")["status"], "reused");
    assert_eq!(step(&retry, "parsed")["status"], "succeeded");
    assert_eq!(
        server.rows("SELECT n2 FROM doubled ORDER BY n2").await,
        vec![json!([2]), json!([4])]
    );
    // A succeeded run is not retried; an ended one is not canceled.
    let (status, body) = server
        .post_json(&format!("/api/v1/runs/{retry_id}/retry"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "run_state"));
    let (status, body) = server
        .post_json(&format!("/api/v1/runs/{retry_id}/cancel"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "run_state"));
}

#[tokio::test]
async fn websocket_clients_get_every_event_in_order_and_resume_from_a_cursor() {
    let server = TestServer::start().await;
    seed_orders(&server).await;
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "sales", "sql": SALES }),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut first = open_ws(&server).await;
    subscribe(&mut first, &["pipeline:sales"], None).await;
    let run_id = start_run(&server, "sales").await;
    // The first progress event: then a second client "reconnects" from it.
    let mut seen = Vec::new();
    let cursor = loop {
        let event = next_json(&mut first).await;
        seen.push(event.clone());
        if event["type"] == "pipeline_progress" {
            break event["seq"].as_i64().unwrap();
        }
    };
    let mut second = open_ws(&server).await;
    subscribe(&mut second, &[&format!("run:{run_id}")], Some(cursor)).await;
    seen.extend(events_until_end(&mut first).await);
    let resumed = events_until_end(&mut second).await;

    let seqs: Vec<i64> = seen.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert_eq!(seen[0]["type"], "pipeline_status");
    assert_eq!(seen[0]["data"]["status"], "queued");
    assert_eq!(seen.last().unwrap()["type"], "pipeline_completed");
    // Six steps, each at least started and succeeded.
    let progress = seen
        .iter()
        .filter(|e| e["type"] == "pipeline_progress")
        .count();
    assert!(progress >= 12, "{progress} progress events");
    // The resumed client got exactly what came after its cursor.
    let after: Vec<i64> = seqs.iter().copied().filter(|s| *s > cursor).collect();
    let resumed_seqs: Vec<i64> = resumed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(resumed_seqs, after);

    // Bad messages and channels get an error, not a closed socket.
    first
        .send(Message::Text(
            json!({ "op": "subscribe", "channels": ["nonsense"] })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let error = next_json(&mut first).await;
    assert_eq!(error["code"], "invalid_channel", "{error}");
    first
        .send(Message::Text("{\"op\":\"ping\"}".into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut first).await["type"], "pong");
}

#[tokio::test]
async fn versions_diff_rollback_archive_templates_lineage_and_openlineage() {
    let server = TestServer::start().await;
    seed_orders(&server).await;
    let v1 = json!({ "steps": [
        { "name": "totals", "sql": "SELECT customer, sum(amount) AS total, count(*) AS n FROM raw_orders GROUP BY customer" },
    ] });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "totals", "definition": v1 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let hash1 = body["data"]["hash"].clone();

    // Saving the same content keeps the version; a change makes version 2.
    let (status, body) = put_json(
        &server,
        &format!("/api/v1/pipelines/{id}"),
        json!({ "definition": v1 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["created"], false);
    let v2 = json!({ "steps": [
        { "name": "totals", "sql": "SELECT customer, sum(amount) AS total FROM raw_orders GROUP BY customer" },
    ] });
    let (status, body) = put_json(
        &server,
        "/api/v1/pipelines/totals",
        json!({ "definition": v2, "expected_version": 1 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["active_version"], 2);
    assert_ne!(body["data"]["hash"], hash1);
    // A stale writer is told.
    let (status, body) = put_json(
        &server,
        "/api/v1/pipelines/totals",
        json!({ "definition": v1, "expected_version": 1 }),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));

    let (_, body) = server.get("/api/v1/pipelines/totals/versions").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, body) = server
        .get("/api/v1/pipelines/totals/diff?from=1&to=2")
        .await;
    assert_eq!(status, 200, "{body}");
    let diff = &body["data"];
    assert_eq!(diff["breaking"], true, "{diff}");
    assert_eq!(
        diff["steps_changed"][0]["schema_changes"][0]["kind"],
        "removed"
    );
    assert_eq!(diff["steps_changed"][0]["schema_changes"][0]["column"], "n");

    // Roll back to version 1, run it.
    let (status, body) = server
        .post_json("/api/v1/pipelines/totals/versions/1/activate", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["active_version"], 1);
    let run_id = start_run(&server, "totals").await;
    let run = wait_run(&server, &run_id).await;
    assert_eq!(
        (run["status"].as_str(), run["version"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    assert_eq!(
        server
            .rows("SELECT n FROM totals WHERE customer = 'ada'")
            .await,
        vec![json!([2])]
    );

    // OpenLineage: START and COMPLETE with column lineage.
    let (status, body) = server
        .get(&format!("/api/v1/runs/{run_id}/openlineage"))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = body["data"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventType"], "START");
    assert_eq!(events[1]["eventType"], "COMPLETE");
    assert_eq!(events[1]["job"]["name"], "totals.totals");
    assert_eq!(
        events[1]["outputs"][0]["facets"]["columnLineage"]["fields"]["total"]["inputFields"][0]["field"],
        "amount"
    );

    // Lineage across pipelines: raw_orders → totals step → totals dataset.
    let (status, body) = server
        .get("/api/v1/lineage?node=dataset:totals&direction=upstream&depth=2")
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["data"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["dataset:raw_orders", "dataset:totals", "step:totals/totals"]
    );
    let (status, body) = server.get("/api/v1/lineage?node=dataset:nowhere").await;
    assert_eq!((status, error_code(&body)), (400, "invalid_input"));

    // The visual form round-trips to the same version.
    let (status, body) = server.get("/api/v1/pipelines/totals?format=visual").await;
    assert_eq!(status, 200, "{body}");
    let visual = body["data"].clone();
    assert_eq!(
        visual["edges"],
        json!([{ "from": "raw_orders", "to": "totals" }])
    );
    let (status, body) = put_json(
        &server,
        "/api/v1/pipelines/totals",
        json!({ "visual": visual }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["created"], false, "{body}");

    // Archived pipelines do not run.
    let (status, _) = server
        .post_json("/api/v1/pipelines/totals/archive", json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post_json("/api/v1/pipelines/totals/runs", json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "run_state"));

    // Templates: typed params, checked; instantiated pipelines run.
    let template = json!({
        "template": true,
        "params": [{ "name": "min_amount", "type": "number" }, { "name": "who", "type": "string", "default": "ada" }],
        "steps": [{ "name": "big_spenders", "sql": "SELECT id, customer, amount FROM raw_orders WHERE amount >= {{ min_amount }} AND customer <> {{ who }}" }],
    });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "spenders_template", "definition": template }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .post_json("/api/v1/pipelines/spenders_template/runs", json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "run_state"));
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines/spenders_template/instantiate",
            json!({ "name": "spenders", "params": { "min_amount": "lots" } }),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "invalid_input"),
        "{body}"
    );
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines/spenders_template/instantiate",
            json!({ "name": "spenders", "params": { "min_amount": 10, "who": "x'; DROP TABLE t; --" } }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run_id = start_run(&server, "spenders").await;
    assert_eq!(wait_run(&server, &run_id).await["status"], "succeeded");
    assert_eq!(
        server.rows("SELECT id FROM big_spenders ORDER BY id").await,
        vec![json!([1]), json!([3]), json!([5])]
    );
}

#[tokio::test]
async fn schedules_fire_and_dataset_updates_trigger_runs() {
    let server = TestServer::start().await;
    seed_orders(&server).await;
    let scheduled = json!({
        "schedule": { "cron": "* * * * * *", "timezone": "Europe/Berlin" },
        "steps": [{ "name": "tick", "sql": "SELECT count(*) AS n FROM raw_orders" }],
    });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "every_second", "definition": scheduled }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["next_runs"].as_array().unwrap().len(), 5);
    let bad = json!({ "schedule": { "cron": "0 6 * * *", "timezone": "Mars/Base" }, "steps": [{ "name": "t", "sql": "SELECT 1 AS one" }] });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "bad_zone", "definition": bad }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"]["details"]["diagnostics"][0]["code"],
        "invalid_schedule"
    );

    let triggered = json!({
        "triggers": [{ "dataset": "raw_orders" }],
        "steps": [{ "name": "order_count", "sql": "SELECT count(*) AS n FROM raw_orders" }],
    });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "on_orders", "definition": triggered }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    csv(
        &server,
        "raw_orders",
        "append",
        "id,customer,amount,day\n9,eve,5.0,2024-03-05\n",
    )
    .await;

    let mut found = (false, false);
    for _ in 0..200 {
        let (_, body) = server.get("/api/v1/runs?limit=100").await;
        for run in body["data"].as_array().unwrap() {
            let trigger = run["trigger"].as_str().unwrap_or_default();
            found.0 |= trigger.starts_with("schedule:");
            found.1 |= trigger == "dataset:raw_orders";
        }
        if found == (true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, (true, true), "scheduled and triggered runs");
    let (status, _) = server
        .post_json("/api/v1/pipelines/every_second/archive", json!({}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn killing_the_server_mid_run_keeps_datasets_consistent_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let first = crate::crash::serve(dir.path());
    let token = crate::common::login(&first.base, "admin", crate::common::ADMIN_PASSWORD).await;
    let client = crate::common::client_with(&token);
    let base = first.base.clone();
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{base}/api/v1{path}")).json(&body);
        async move { crate::common::split(request.send().await.unwrap()).await }
    };
    let response = client
        .post(format!("{base}/api/v1/datasets/seed/upload?mode=create"))
        .body("id\n1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    // First a quick version of `heavy`, then one slow enough to be killed in.
    let definition = |sql: &str| json!({ "steps": [{ "name": "heavy", "sql": sql }] });
    let (status, body) = post(
        "/pipelines",
        json!({ "name": "slow", "definition": definition("SELECT id AS k, 1 AS c FROM seed") }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post("/pipelines/slow/runs", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let quick = body["data"]["id"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let request = client.get(format!("{base}/api/v1{path}"));
        async move { crate::common::split(request.send().await.unwrap()).await }
    };
    for _ in 0..200 {
        let (_, body) = get(format!("/runs/{quick}")).await;
        if body["data"]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow_sql = "SELECT value % 1000 AS k, count(DISTINCT md5(CAST(value AS VARCHAR))) AS c \
                    FROM generate_series(1, 50000000) GROUP BY 1";
    let response = client
        .put(format!("{base}/api/v1/pipelines/slow"))
        .json(&json!({ "definition": definition(slow_sql) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, body) = post("/pipelines/slow/runs", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let killed = body["data"]["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let (_, body) = get(format!("/runs/{killed}")).await;
        if body["data"]["steps"][0]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first); // SIGKILL

    let second = crate::crash::serve(dir.path());
    let token = crate::common::login(&second.base, "admin", crate::common::ADMIN_PASSWORD).await;
    let client = crate::common::client_with(&token);
    let run: Value = client
        .get(format!("{}/api/v1/runs/{killed}", second.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["data"]["status"], "failed", "{run}");
    assert_eq!(run["data"]["error"]["code"], "interrupted");
    assert_eq!(run["data"]["steps"][0]["status"], "failed");
    // `heavy` is still the quick run's version.
    let rows: Value = client
        .post(format!("{}/api/v1/query", second.base))
        .json(&json!({ "sql": "SELECT k, c FROM heavy" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows["data"]["rows"], json!([[1, 1]]), "{rows}");
}

#[tokio::test]
async fn canceling_a_run_stops_its_steps_and_keeps_the_previous_data() {
    let server = TestServer::start().await;
    csv(&server, "seed", "create", "id\n1\n").await;
    let definition = json!({ "steps": [
        { "name": "heavy", "sql": "SELECT value % 1000 AS k, count(DISTINCT md5(CAST(value AS VARCHAR))) AS c FROM generate_series(1, 50000000) GROUP BY 1" },
        { "name": "after", "sql": "SELECT k FROM heavy" },
    ] });
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({ "name": "long", "definition": definition }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run_id = start_run(&server, "long").await;
    for _ in 0..400 {
        let (_, body) = server.get(&format!("/api/v1/runs/{run_id}")).await;
        if body["data"]["steps"][0]["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, body) = server
        .post_json(&format!("/api/v1/runs/{run_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let run = wait_run(&server, &run_id).await;
    assert_eq!(run["status"], "canceled", "{run}");
    assert_eq!(step(&run, "heavy")["status"], "canceled");
    assert_eq!(step(&run, "after")["status"], "canceled");
    let (status, _) = server.get("/api/v1/datasets/heavy").await;
    assert_eq!(status, 404, "a canceled step must not commit");
    // A canceled run can be retried.
    let (status, body) = server
        .post_json(&format!("/api/v1/runs/{run_id}/retry"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let retry = body["data"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .post_json(&format!("/api/v1/runs/{retry}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_key_limited_to_datasets_sees_no_pipeline_events() {
    let server = TestServer::start().await;
    seed_orders(&server).await;
    let (status, body) = server
        .post_json(
            "/api/v1/api-keys",
            json!({ "name": "orders only", "scopes": ["read"], "datasets": ["raw_orders"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["secret"].as_str().unwrap().to_owned();
    let mut socket = open_ws_as(&server, &key).await;
    socket
        .send(Message::Text(
            json!({ "op": "subscribe", "channels": ["system"] })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "forbidden");
    // Its own dataset's channel is fine, and it hears about new versions.
    subscribe(&mut socket, &["dataset:raw_orders"], None).await;
    let (status, body) = server
        .post_json("/api/v1/pipelines", json!({ "name": "p", "definition": { "steps": [{ "name": "t", "sql": "SELECT 1 AS one" }] } }))
        .await;
    assert_eq!(status, 201, "{body}");
    socket
        .send(Message::Text(
            json!({ "op": "subscribe", "channels": ["pipeline:p"] })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "forbidden");
    csv(
        &server,
        "raw_orders",
        "append",
        "id,customer,amount,day\n8,fay,2.0,2024-03-06\n",
    )
    .await;
    let event = next_json(&mut socket).await;
    assert_eq!(event["type"], "dataset_updated", "{event}");
    assert_eq!(event["data"]["dataset"], "raw_orders");
}
