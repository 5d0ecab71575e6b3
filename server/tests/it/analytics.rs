//! Analytics end to end: profiles, quality checks (stored, run on demand,
//! after writes and in pipelines, with history, metrics and alerts), time
//! series with DST, gaps, fills, rolling windows, comparisons, downsampling,
//! Arrow IPC and caching, the dashboard, and the error codes of bad requests.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, error_code};
use crate::pipelines::{csv, next_json, open_ws, start_run, step, subscribe, wait_run};

/// Events around the Europe/Berlin spring-forward night (2026-03-29, 02:00 → 03:00 local).
const EVENTS: &str = "\
at,device,amount,city
2026-03-28T12:00:00Z,a,7,berlin
2026-03-28T23:30:00Z,a,10,berlin
2026-03-29T00:15:00Z,b,5,paris
2026-03-29T00:45:00Z,a,5,berlin
2026-03-29T01:10:00Z,b,20,paris
2026-03-29T21:59:00Z,a,40,rome
2026-03-29T22:00:00Z,b,1,rome
";

async fn timeseries(server: &TestServer, body: Value) -> (u16, Value) {
    server.post_json("/api/v1/analytics/timeseries", body).await
}

fn berlin_day(measures: Value, fill: &str) -> Value {
    json!({
        "source": {"dataset": "events"},
        "time_column": "at",
        "granularity": "hour",
        "date_range": ["2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"],
        "timezone": "Europe/Berlin",
        "measures": measures,
        "fill": fill,
    })
}

fn values(answer: &Value, measure: &str) -> Vec<Value> {
    answer["data"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["measure"] == measure)
        .unwrap_or_else(|| panic!("no series {measure} in {answer}"))["values"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn hourly_and_daily_buckets_follow_the_time_zone_across_dst() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;

    let (status, answer) = timeseries(&server, berlin_day(json!([{"agg": "count"}]), "zero")).await;
    assert_eq!(status, 200, "{answer}");
    let data = &answer["data"];
    assert_eq!(data["buckets"], 23, "a 23-hour day: {answer}");
    let time = data["series"][0]["time"].as_array().unwrap();
    assert_eq!(time[0], "2026-03-29T00:00:00+01:00");
    assert_eq!(time[1], "2026-03-29T01:00:00+01:00");
    assert_eq!(time[2], "2026-03-29T03:00:00+02:00");
    assert_eq!(time[22], "2026-03-29T23:00:00+02:00");
    let mut expected = vec![json!(0.0); 23];
    expected[0] = json!(1.0);
    expected[1] = json!(2.0);
    expected[2] = json!(1.0);
    expected[22] = json!(1.0);
    assert_eq!(values(&answer, "count"), expected);

    // Days are local days; a date-only end is inclusive.
    let (status, answer) = timeseries(
        &server,
        json!({
            "source": {"dataset": "events"}, "time_column": "at", "granularity": "day",
            "date_range": ["2026-03-28", "2026-03-30"], "timezone": "Europe/Berlin",
            "measures": [{"agg": "count"}, {"agg": "sum", "column": "amount", "name": "revenue"}],
            "fill": "zero",
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let time = answer["data"]["series"][0]["time"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        time,
        vec![
            json!("2026-03-28T00:00:00+01:00"),
            json!("2026-03-29T00:00:00+01:00"),
            json!("2026-03-30T00:00:00+02:00")
        ]
    );
    assert_eq!(
        values(&answer, "count"),
        vec![json!(1.0), json!(5.0), json!(1.0)]
    );
    assert_eq!(
        values(&answer, "revenue"),
        vec![json!(7.0), json!(80.0), json!(1.0)]
    );

    // The same instants in UTC days.
    let (_, answer) = timeseries(
        &server,
        json!({
            "source": {"dataset": "events"}, "time_column": "at", "granularity": "day",
            "date_range": ["2026-03-28", "2026-03-29"], "measures": [{"agg": "count"}],
        }),
    )
    .await;
    assert_eq!(
        values(&answer, "count"),
        vec![json!(2.0), json!(5.0)],
        "{answer}"
    );
}

#[tokio::test]
async fn gaps_fill_roll_compare_downsample_and_come_as_arrow() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;
    let revenue = json!([{"agg": "sum", "column": "amount", "name": "revenue"}]);

    let (_, nulls) = timeseries(&server, berlin_day(revenue.clone(), "null")).await;
    let nulls = values(&nulls, "revenue");
    assert_eq!(nulls[2], json!(20.0));
    assert_eq!(nulls[12], Value::Null);
    let (_, previous) = timeseries(&server, berlin_day(revenue.clone(), "previous")).await;
    assert_eq!(values(&previous, "revenue")[12], json!(20.0));
    let (_, linear) = timeseries(&server, berlin_day(revenue.clone(), "linear")).await;
    // Between 20 at bucket 2 and 40 at bucket 22: one per bucket.
    assert_eq!(values(&linear, "revenue")[12], json!(30.0));

    let (status, rolling) = timeseries(
        &server,
        berlin_day(
            json!([{"agg": "count", "name": "last_2h", "rolling": {"window": 2, "agg": "sum"}}]),
            "zero",
        ),
    )
    .await;
    assert_eq!(status, 200, "{rolling}");
    let rolled = values(&rolling, "last_2h");
    assert_eq!(
        &rolled[..4],
        &[json!(1.0), json!(3.0), json!(3.0), json!(1.0)]
    );

    let mut compared = berlin_day(json!([{"agg": "count"}]), "zero");
    compared["compare_to"] = json!("previous_period");
    let (status, compared) = timeseries(&server, compared).await;
    assert_eq!(status, 200, "{compared}");
    let comparison = &compared["data"]["comparison"];
    assert_eq!(
        comparison["buckets"], 24,
        "the day before has 24 hours: {compared}"
    );
    let earlier: f64 = comparison["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .sum();
    assert_eq!(earlier, 1.0);

    let mut downsampled = berlin_day(json!([{"agg": "count"}]), "zero");
    downsampled["max_points"] = json!(5);
    let (_, downsampled) = timeseries(&server, downsampled).await;
    assert_eq!(downsampled["data"]["downsampled"], true);
    assert_eq!(
        downsampled["data"]["series"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let mut by_device = berlin_day(json!([{"agg": "count"}]), "zero");
    by_device["dimensions"] = json!(["device"]);
    by_device["filters"] = json!({"or": [{"column": "city", "op": "eq", "value": "berlin"},
                                         {"column": "amount", "op": "gte", "value": 40}]});
    let (status, by_device) = timeseries(&server, by_device).await;
    assert_eq!(status, 200, "{by_device}");
    let series = by_device["data"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "only device a matches: {by_device}");
    assert_eq!(series[0]["dimensions"], json!({"device": "a"}));

    let response = server
        .client
        .post(server.url("/api/v1/analytics/timeseries"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&berlin_day(json!([{"agg": "count"}]), "zero"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 23);
}

#[tokio::test]
async fn answers_are_cached_until_the_dataset_changes() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;
    let request = berlin_day(json!([{"agg": "count"}]), "zero");
    let (_, first) = timeseries(&server, request.clone()).await;
    assert_eq!(first["data"]["cached"], false);
    let (_, second) = timeseries(&server, request.clone()).await;
    assert_eq!(second["data"]["cached"], true);
    assert_eq!(second["data"]["series"], first["data"]["series"]);
    let mut renewed = request.clone();
    renewed["renew"] = json!(true);
    let (_, renewed) = timeseries(&server, renewed).await;
    assert_eq!(renewed["data"]["cached"], false, "renew skips the cache");

    csv(
        &server,
        "events",
        "append",
        "at,device,amount,city\n2026-03-29T12:30:00Z,a,1,rome\n",
    )
    .await;
    let (_, third) = timeseries(&server, request).await;
    assert_eq!(
        third["data"]["cached"], false,
        "a new version is a new answer"
    );
    let counts = values(&third, "count");
    assert_eq!(counts.iter().filter_map(Value::as_f64).sum::<f64>(), 6.0);
}

#[tokio::test]
async fn bad_time_series_requests_get_documented_codes() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;
    let cases = [
        (json!({"time_column": "nope"}), "unknown_column"),
        (json!({"time_column": "city"}), "invalid_time_column"),
        (
            json!({"measures": [{"agg": "sum", "column": "city"}]}),
            "invalid_measure",
        ),
        (
            json!({"measures": [{"agg": "avg", "column": "ghost"}]}),
            "unknown_column",
        ),
        (
            json!({"granularity": "fortnight-ish"}),
            "invalid_granularity",
        ),
        (json!({"timezone": "Mars/Olympus"}), "invalid_timezone"),
        (
            json!({"date_range": ["2026-03-30", "2026-03-01"]}),
            "invalid_date_range",
        ),
        (json!({"date_range": "sometime soon"}), "invalid_date_range"),
        (
            json!({"granularity": "second", "date_range": ["2020-01-01", "2026-01-01"]}),
            "too_many_points",
        ),
        (
            json!({"filters": {"column": "amount", "op": "contains", "value": "x"}}),
            "invalid_filter",
        ),
        (json!({"source": {"dataset": "nope"}}), "dataset_not_found"),
    ];
    for (change, code) in cases {
        let mut request = berlin_day(json!([{"agg": "count"}]), "null");
        for (key, value) in change.as_object().unwrap() {
            request[key] = value.clone();
        }
        let (status, body) = timeseries(&server, request).await;
        let expected = if code == "dataset_not_found" {
            404
        } else {
            400
        };
        assert_eq!(
            (status, error_code(&body)),
            (expected, code),
            "{change}: {body}"
        );
    }
}

/// Polls a dataset's check results until one matches.
async fn wait_result(server: &TestServer, dataset: &str, check: &str, trigger: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = server
            .get(&format!(
                "/api/v1/datasets/{dataset}/check-results?check={check}"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        if let Some(found) = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == trigger)
        {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {trigger} result of {check}");
}

#[tokio::test]
async fn profiles_checks_history_metrics_alerts_and_the_dashboard() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;
    csv(&server, "secrets", "create", "code\n42\n").await;

    let (status, body) = server.get("/api/v1/datasets/events/profile").await;
    assert_eq!((status, error_code(&body)), (404, "profile_not_found"));
    let (status, job) = server
        .post_json("/api/v1/datasets/events/profile", json!({}))
        .await;
    assert_eq!(status, 202, "{job}");
    let job = server.wait_job(job["data"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let (status, profile) = server.get("/api/v1/datasets/events/profile").await;
    assert_eq!(status, 200, "{profile}");
    let profile = &profile["data"];
    assert_eq!(profile["rows"], 7);
    assert_eq!(profile["duplicate_rows"], 0);
    let amount = profile["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "amount")
        .unwrap();
    assert_eq!(amount["min"], 1);
    assert_eq!(amount["max"], 40);
    assert_eq!(amount["quantiles"]["p50"], 7.0);
    let (status, body) = server
        .post_json(
            "/api/v1/datasets/events/profile",
            json!({"columns": ["ghost"]}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "unknown_column"));

    // Checks: CRUD and validation.
    let not_null = json!({"name": "city_known", "type": "accepted_values", "column": "city",
                          "values": ["berlin", "paris"], "run_after_write": true});
    let (status, body) = server
        .post_json("/api/v1/datasets/events/checks", not_null.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .post_json("/api/v1/datasets/events/checks", not_null)
        .await;
    assert_eq!((status, error_code(&body)), (409, "check_exists"));
    for (bad, code) in [
        (
            json!({"name": "x", "type": "not_null", "column": "ghost"}),
            "unknown_column",
        ),
        (
            json!({"name": "x", "type": "regex", "column": "amount", "pattern": "a"}),
            "invalid_check",
        ),
        (
            json!({"name": "x", "type": "no_such_check"}),
            "invalid_check",
        ),
        // serde alone would read the index as the first type, `not_null`.
        (
            json!({"name": "x", "type": 0, "column": "city"}),
            "invalid_check",
        ),
        (
            json!({"name": "x", "type": "not_null", "column": "city", "mostly": 2}),
            "invalid_check",
        ),
        (
            json!({"name": "x", "type": "custom_sql", "sql": "SELECT * FROM nowhere"}),
            "sql_error",
        ),
        // A check reads its own dataset only, whoever wrote it.
        (
            json!({"name": "x", "type": "custom_sql", "sql": "SELECT * FROM secrets"}),
            "sql_error",
        ),
    ] {
        let (status, body) = server
            .post_json("/api/v1/datasets/events/checks", bad)
            .await;
        assert_eq!((status, error_code(&body)), (400, code), "{body}");
    }
    for check in [
        json!({"name": "rows", "type": "row_count", "min": 1, "max": 100}),
        json!({"name": "fresh", "type": "freshness", "column": "at", "max_age": "36500d"}),
        json!({"name": "shape", "type": "schema", "columns": [{"name": "at", "type": "timestamp"}, {"name": "amount", "type": "integer"}], "allow_extra": true}),
        json!({"name": "unique_at", "type": "unique", "columns": ["at"]}),
        json!({"name": "no_huge", "type": "custom_sql", "sql": "SELECT * FROM events WHERE amount > 1000"}),
    ] {
        let (status, body) = server
            .post_json("/api/v1/datasets/events/checks", check)
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let mut alerts = open_ws(&server).await;
    subscribe(&mut alerts, &["system"], None).await;
    let (status, run) = server
        .post_json("/api/v1/datasets/events/check-runs", json!({}))
        .await;
    assert_eq!(status, 200, "{run}");
    let results: std::collections::HashMap<String, Value> = run["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["check_name"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    let city = &results["city_known"];
    assert_eq!(city["outcome"], "fail", "{city}");
    assert_eq!(city["unexpected_count"], 2);
    assert_eq!(city["element_count"], 7);
    assert_eq!(city["sample"].as_array().unwrap().len(), 2);
    for name in ["rows", "fresh", "shape", "unique_at", "no_huge"] {
        assert_eq!(
            results[name]["outcome"], "pass",
            "{name}: {}",
            results[name]
        );
    }
    let alert = loop {
        let event = next_json(&mut alerts).await;
        if event["type"] == "system_alert" {
            break event;
        }
    };
    assert_eq!(alert["data"]["check"], "city_known", "{alert}");

    // A write runs the `run_after_write` checks.
    csv(
        &server,
        "events",
        "append",
        "at,device,amount,city\n2026-03-30T08:00:00Z,a,3,berlin\n",
    )
    .await;
    let after = wait_result(&server, "events", "city_known", "after_write").await;
    assert_eq!(after["outcome"], "fail");

    // Fixing the check makes it pass; the history keeps both.
    let response = server
        .client
        .put(server.url("/api/v1/datasets/events/checks/city_known"))
        .json(
            &json!({"name": "city_known", "type": "accepted_values", "column": "city",
                      "values": ["berlin", "paris", "rome"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, run) = server
        .post_json(
            "/api/v1/datasets/events/check-runs",
            json!({"checks": ["city_known"]}),
        )
        .await;
    assert_eq!(run["data"]["results"][0]["outcome"], "pass", "{run}");
    let (_, history) = server
        .get("/api/v1/datasets/events/check-results?check=city_known")
        .await;
    let outcomes: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["pass", "fail", "fail"]);

    let (status, metrics) = server.get("/api/v1/datasets/events/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    let metrics = &metrics["data"];
    assert_eq!(
        metrics["row_count"]["value"],
        json!([7.0, 8.0]),
        "{metrics}"
    );
    assert_eq!(metrics["completeness"]["value"], json!([1.0]));
    assert!(
        metrics["check_pass_rate"]["value"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert!(metrics["freshness_seconds"]["value"][0].as_f64().unwrap() > 0.0);
    let (status, body) = server
        .get("/api/v1/datasets/events/metrics?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z")
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_date_range"));

    let (status, stats) = server.get("/api/v1/dashboard/stats").await;
    assert_eq!(status, 200, "{stats}");
    let stats = &stats["data"];
    assert_eq!(stats["datasets"]["count"], 2);
    assert_eq!(stats["datasets"]["rows"], 9);
    assert_eq!(stats["recent_writes"][0]["dataset"], "events");
    assert!(stats["jobs"]["succeeded"].as_i64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["checks"]["pass"], 6, "{stats}");

    let response = server
        .client
        .delete(server.url("/api/v1/datasets/events/checks/city_known"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, body) = server
        .get("/api/v1/datasets/events/checks/city_known")
        .await;
    assert_eq!((status, error_code(&body)), (404, "check_not_found"));
}

#[tokio::test]
async fn a_blocking_step_check_fails_the_step_and_stops_its_downstream() {
    let server = TestServer::start().await;
    csv(&server, "events", "create", EVENTS).await;
    let (status, body) = server
        .post_json(
            "/api/v1/pipelines",
            json!({"name": "checked", "definition": {"steps": [
                {"name": "paris_events", "sql": "SELECT * FROM events WHERE city = 'paris'",
                 "checks": [
                    {"name": "some_rows", "type": "row_count", "min": 1},
                    {"name": "small", "type": "range", "column": "amount", "max": 10, "blocking": false}
                 ]},
                {"name": "berlin_events", "sql": "SELECT * FROM events WHERE city = 'berlin'",
                 "checks": [{"name": "many_rows", "type": "row_count", "min": 100}]},
                {"name": "berlin_total", "sql": "SELECT sum(amount) AS total FROM berlin_events"}
            ]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let run = wait_run(&server, &start_run(&server, "checked").await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let paris = step(&run, "paris_events");
    assert_eq!(
        paris["status"], "succeeded",
        "a non-blocking failure warns: {paris}"
    );
    let berlin = step(&run, "berlin_events");
    assert_eq!(berlin["status"], "failed", "{berlin}");
    assert_eq!(berlin["error"]["code"], "check_failed");
    assert_eq!(step(&run, "berlin_total")["status"], "upstream_failed");
    // The write itself was committed before the check ran.
    assert_eq!(
        server.rows("SELECT count(*) FROM berlin_events").await,
        vec![json!([3])]
    );

    let (status, body) = server
        .post_json(
            "/api/v1/pipelines/validate",
            json!({"definition": {"steps": [
                {"name": "v", "sql": "SELECT 1 AS x", "materialization": {"kind": "view"},
                 "checks": [{"name": "c", "type": "row_count", "min": 1}]}
            ]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["valid"], false, "{body}");
}
