//! Connectors against the real PostgreSQL and MariaDB on this machine,
//! SQLite files, an S3-compatible server (moto, started by the test script)
//! and a local HTTP API: connections, checks, discovery, live queries,
//! syncs, schema history and diffs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

use crate::common::{TestServer, split};

/// A missing service fails the test under `CI=true`; elsewhere the test says
/// loudly that it did not run.
fn missing(service: &str, error: impl std::fmt::Display) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} is required under CI=true and is not reachable: {error}");
    }
    eprintln!("\n!!! SKIPPED: {service} is not reachable ({error}); this test did not run !!!\n");
}

/// A scratch schema in the local PostgreSQL, dropped when the test ends.
struct PgScratch {
    client: tokio_postgres::Client,
    schema: String,
}

impl PgScratch {
    async fn new() -> Option<Self> {
        let connected = tokio_postgres::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5",
            tokio_postgres::NoTls,
        )
        .await;
        let (client, connection) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                missing("PostgreSQL at 127.0.0.1:5432", e);
                return None;
            }
        };
        tokio::spawn(connection);
        let schema = format!("basin_it_{}", uuid_suffix());
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(Self { client, schema })
    }

    async fn run(&self, sql: &str) {
        self.client
            .batch_execute(&sql.replace("{s}", &self.schema))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn drop_schema(self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{}", nanos, std::process::id())
}

fn pg_config(schema: &str) -> Value {
    json!({
        "host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres",
        "password": "pg-secret-never-shown", "ssl_mode": "disable", "schemas": [schema]
    })
}

async fn create_connection(server: &TestServer, name: &str, kind: &str, config: Value) -> Value {
    let (status, body) = server
        .post_json(
            "/api/v1/connections",
            json!({"name": name, "type": kind, "config": config}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

async fn sync(server: &TestServer, connection: &str, request: Value) -> Value {
    let (status, body) = server
        .post_json(&format!("/api/v1/connections/{connection}/sync"), request)
        .await;
    assert_eq!(status, 202, "{body}");
    server.wait_job(body["data"]["id"].as_str().unwrap()).await
}

async fn sync_ok(server: &TestServer, connection: &str, request: Value) -> Value {
    let job = sync(server, connection, request).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    job["result"]["streams"][0].clone()
}

fn column_type<'a>(dataset: &'a Value, column: &str) -> &'a str {
    dataset["schema"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == column)
        .unwrap_or_else(|| panic!("no column {column} in {dataset}"))["type"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn postgres_types_round_trip_and_tables_query_live() {
    let Some(pg) = PgScratch::new().await else {
        return;
    };
    pg.run(
        "CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE {s}.everything (
            id bigint PRIMARY KEY, small smallint, int integer, big bigint,
            num numeric(12,3), real_v real, double_v double precision, flag boolean,
            name text, code varchar(10), raw bytea, uid uuid, doc json, docb jsonb,
            tags text[], nums integer[], day date, at_time time, at timestamp,
            at_tz timestamptz, span interval, feeling {s}.mood);
         COMMENT ON COLUMN {s}.everything.name IS 'who';
         INSERT INTO {s}.everything VALUES
           (1, 7, 70000, 9000000000, 12345.678, 1.5, 2.25, true, 'Ada', 'A1', '\\x0102ff',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [1, 2]}',
            ARRAY['x', 'y'], ARRAY[1, 2, 3], '2024-02-29', '13:45:30.5',
            '2024-03-01 08:15:00.123456', '2024-03-01 08:15:00+01', '1 day 02:03:04', 'happy'),
           (2, -7, -70000, -9000000000, -0.001, -1.5, -2.25, false, 'Zoë', '', '\\x',
            '00000000-0000-0000-0000-000000000000', '[]', 'null', ARRAY[]::text[], ARRAY[4, 5],
            '1970-01-01', '00:00:00', '1970-01-01 00:00:00', '1969-12-31 23:59:59+00', '-3 mons', 'sad'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await;
    let server = TestServer::with_orders().await;
    let created = create_connection(&server, "pg", "postgres", pg_config(&pg.schema)).await;
    // The password is stored sealed and never shown.
    assert!(created["config"].get("password").is_none(), "{created}");
    assert_eq!(created["secret_fields"], json!(["/password"]));
    let (_, shown) = server.get("/api/v1/connections/pg").await;
    assert!(!shown.to_string().contains("pg-secret-never-shown"));

    let (status, test) = server
        .post_json("/api/v1/connections/pg/test", json!({}))
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["data"]["status"], "succeeded", "{test}");

    let (status, discovered) = server
        .post_json("/api/v1/connections/pg/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{discovered}");
    let stream = &discovered["data"][0];
    assert_eq!(stream["name"], format!("{}.everything", pg.schema));
    assert_eq!(stream["primary_key"], json!(["id"]));
    assert_eq!(stream["cursor_candidates"][0], "at");
    let column = |name: &str| {
        stream["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(column("num")["native_type"], "numeric(12,3)");
    assert_eq!(column("num")["type"], "Decimal128(12, 3)");
    assert_eq!(column("name")["description"], "who");
    assert_eq!(column("id")["nullable"], false);

    let result = sync_ok(
        &server,
        "pg",
        json!({"streams": [{"stream": format!("{}.everything", pg.schema), "dataset": "pg_everything"}]}),
    )
    .await;
    assert_eq!(result["rows_written"], 3, "{result}");
    let (_, dataset) = server.get("/api/v1/datasets/pg_everything").await;
    let dataset = &dataset["data"];
    for (column, want) in [
        ("id", "Int64"),
        ("small", "Int16"),
        ("int", "Int32"),
        ("big", "Int64"),
        ("num", "Decimal128(12, 3)"),
        ("real_v", "Float32"),
        ("double_v", "Float64"),
        ("flag", "Boolean"),
        ("name", "Utf8"),
        ("code", "Utf8"),
        ("raw", "Binary"),
        ("uid", "Utf8"),
        ("doc", "Utf8"),
        ("docb", "Utf8"),
        ("day", "Date32"),
        ("at_time", "Utf8"),
        ("at", "Timestamp(µs)"),
        ("at_tz", "Timestamp(µs, \"UTC\")"),
        ("span", "Utf8"),
        ("feeling", "Utf8"),
    ] {
        assert_eq!(column_type(dataset, column), want, "{column}");
    }
    assert!(
        column_type(dataset, "tags").starts_with("List("),
        "{dataset}"
    );
    assert!(column_type(dataset, "nums").contains("Int32"), "{dataset}");

    let rows = server
        .rows(
            "SELECT id, small, int, big, CAST(num AS VARCHAR), real_v, double_v, flag, name, code, \
             encode(raw, 'hex'), uid, doc, docb, array_to_string(tags, '|'), nums[2], \
             CAST(day AS VARCHAR), at_time, CAST(at AS VARCHAR), CAST(at_tz AS VARCHAR), span, feeling \
             FROM pg_everything ORDER BY id",
        )
        .await;
    assert_eq!(
        rows[0],
        json!([
            1,
            7,
            70000,
            9000000000i64,
            "12345.678",
            1.5,
            2.25,
            true,
            "Ada",
            "A1",
            "0102ff",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{\"a\": 1}",
            "{\"b\": [1, 2]}",
            "x|y",
            2,
            "2024-02-29",
            "13:45:30.500",
            "2024-03-01T08:15:00.123456",
            "2024-03-01T07:15:00Z",
            rows[0][20].clone(),
            "happy"
        ])
    );
    assert!(
        rows[0][20].as_str().unwrap().contains("1 days"),
        "interval as text: {}",
        rows[0][20]
    );
    assert_eq!(rows[1][4], "-0.001");
    assert_eq!(rows[1][15], 5);
    assert_eq!(rows[1][21], "sad");
    assert!(
        rows[2].as_array().unwrap()[1..].iter().all(Value::is_null),
        "{}",
        rows[2]
    );

    // Live: filters go to PostgreSQL.
    let live = format!("pg.{}.everything", pg.schema);
    let counted = server
        .rows(&format!("SELECT count(*) FROM {live} WHERE big > 0"))
        .await;
    assert_eq!(counted, [json!([1])]);
    let plan = server
        .rows(&format!("EXPLAIN SELECT id FROM {live} WHERE big > 0"))
        .await;
    let plan_text = plan.iter().map(Value::to_string).collect::<String>();
    assert!(
        plan_text.contains("WHERE") && plan_text.contains("big"),
        "the filter is not in the SQL sent to PostgreSQL: {plan_text}"
    );

    // Types without a mapping: discovery warns, and the table reads them as text.
    pg.run(
        "CREATE TABLE {s}.odd (id integer, lsn pg_lsn, during tsrange, flag boolean);
         INSERT INTO {s}.odd VALUES (1, '16/B374D848', '[2024-01-01 10:00, 2024-01-01 12:00)', true),
                                    (2, NULL, NULL, NULL);",
    )
    .await;
    let (_, discovered) = server
        .post_json("/api/v1/connections/pg/discover", json!({}))
        .await;
    let odd = discovered["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "odd")
        .unwrap()
        .clone();
    assert!(odd["warnings"].to_string().contains("pg_lsn"), "{odd}");
    assert_eq!(odd["columns"][1]["type"], "Utf8", "{odd}");
    assert_eq!(odd["columns"][0]["type"], "Int32", "{odd}");
    let rows = server
        .rows(&format!(
            "SELECT id, lsn, during, flag FROM pg.{}.odd WHERE id = 1",
            pg.schema
        ))
        .await;
    assert_eq!(
        rows,
        [json!([
            1,
            "16/B374D848",
            "[\"2024-01-01 10:00:00\",\"2024-01-01 12:00:00\")",
            true
        ])]
    );
    let synced = sync_ok(
        &server,
        "pg",
        json!({"streams": [{"stream": format!("{}.odd", pg.schema), "dataset": "odd"}]}),
    )
    .await;
    assert_eq!(synced["rows_written"], 2, "{synced}");
    assert_eq!(server.rows("SELECT count(*) FROM odd").await, [json!([2])]);

    // Names go to PostgreSQL only for tables that exist: SQL in a name is
    // just an unknown table.
    let (status, body) = server
        .post_json(
            "/api/v1/query",
            json!({"sql": "SELECT * FROM pg.\"(SELECT pg_sleep(5)) s CROSS JOIN public\".everything"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "sql_error", "{body}");

    // One query across a database, a file and a dataset.
    pg.run(
        "CREATE TABLE {s}.customers (name text PRIMARY KEY, tier text);
         INSERT INTO {s}.customers VALUES ('Ada Lovelace', 'gold'), ('Grace Hopper', 'silver');",
    )
    .await;
    create_connection(
        &server,
        "files",
        "files",
        json!({"url": crate::common::testdata("order_refs.csv").to_string_lossy(), "stream": "orders_file"}),
    )
    .await;
    let joined = server
        .rows(&format!(
            "SELECT c.tier, count(*) FROM pg.{}.customers c \
             JOIN files.public.orders_file f ON f.customer = c.name \
             JOIN orders o ON o.order_id = f.order_id \
             GROUP BY c.tier ORDER BY c.tier",
            pg.schema
        ))
        .await;
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert!(
        joined.iter().all(|r| r[1].as_i64().unwrap() >= 1),
        "{joined:?}"
    );

    pg.drop_schema().await;
}

#[tokio::test]
async fn postgres_incremental_merge_and_schema_policies() {
    let Some(pg) = PgScratch::new().await else {
        return;
    };
    pg.run(
        "CREATE TABLE {s}.events (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
         INSERT INTO {s}.events SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 hour'
           FROM generate_series(1, 10) g;",
    )
    .await;
    let server = TestServer::start().await;
    create_connection(&server, "pg", "postgres", pg_config(&pg.schema)).await;
    let stream = format!("{}.events", pg.schema);
    let incremental = json!({
        "streams": [{"stream": stream, "dataset": "events"}],
        "mode": "incremental", "cursor_field": "updated_at"
    });
    let first = sync_ok(&server, "pg", incremental.clone()).await;
    assert_eq!(first["rows_written"], 10, "{first}");
    assert!(
        first["cursor_value"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-01T10:00:00")
    );

    pg.run(
        "INSERT INTO {s}.events VALUES (11, 'v11', '2024-01-02 00:00:00+00'), (12, 'v12', '2024-01-02 01:00:00+00');",
    )
    .await;
    let second = sync_ok(&server, "pg", incremental.clone()).await;
    assert_eq!(second["rows_written"], 2, "only new rows: {second}");
    assert_eq!(
        server.rows("SELECT count(*) FROM events").await,
        [json!([12])]
    );
    // Nothing new: nothing written.
    let third = sync_ok(&server, "pg", incremental.clone()).await;
    assert_eq!(third["rows_written"], 0, "{third}");

    // Merge on the key updates in place.
    pg.run("UPDATE {s}.events SET v = 'changed', updated_at = '2024-02-01+00' WHERE id = 3;")
        .await;
    let merged = sync_ok(
        &server,
        "pg",
        json!({"streams": [{"stream": stream, "dataset": "events"}],
               "mode": "incremental", "cursor_field": "updated_at", "write": "merge", "primary_key": ["id"]}),
    )
    .await;
    // The changed row, and the row at the last cursor value (merges re-read it).
    assert_eq!(merged["rows_written"], 2, "{merged}");
    assert_eq!(
        server.rows("SELECT count(*) FROM events").await,
        [json!([12])]
    );
    assert_eq!(
        server.rows("SELECT v FROM events WHERE id = 3").await,
        [json!(["changed"])]
    );

    // A new column: `fail` refuses and writes nothing; the default adds it.
    pg.run(
        "ALTER TABLE {s}.events ADD COLUMN score integer;
         INSERT INTO {s}.events VALUES (13, 'v13', '2024-03-01+00', 42);",
    )
    .await;
    let mut failing = incremental.clone();
    failing["schema_change"] = json!("fail");
    let job = sync(&server, "pg", failing).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "schema_changed", "{job}");
    assert_eq!(job["error"]["details"]["changes"][0]["kind"], "added");
    assert_eq!(
        server.rows("SELECT count(*) FROM events").await,
        [json!([12])]
    );

    let evolved = sync_ok(&server, "pg", incremental.clone()).await;
    assert_eq!(evolved["rows_written"], 1, "{evolved}");
    assert_eq!(
        server.rows("SELECT score FROM events WHERE id = 13").await,
        [json!([42])]
    );
    assert_eq!(
        server
            .rows("SELECT count(*) FROM events WHERE score IS NULL")
            .await,
        [json!([12])]
    );

    // Both histories recorded the change.
    let (_, history) = server.get("/api/v1/datasets/events/schema/history").await;
    let entries = history["data"].as_array().unwrap();
    assert!(entries.len() >= 2, "{history}");
    let last = entries.last().unwrap();
    assert_eq!(last["changes"][0]["kind"], "added", "{last}");
    assert_eq!(last["changes"][0]["column"], "score");
    let (_, stream_history) = server
        .get(&format!(
            "/api/v1/connections/pg/streams/{stream}/schema/history"
        ))
        .await;
    assert_eq!(
        stream_history["data"].as_array().unwrap().len(),
        2,
        "{stream_history}"
    );

    // `ignore` drops a new column rather than adding it.
    pg.run(
        "ALTER TABLE {s}.events ADD COLUMN extra text;
         INSERT INTO {s}.events VALUES (14, 'v14', '2024-04-01+00', 1, 'dropped');",
    )
    .await;
    let mut ignoring = incremental.clone();
    ignoring["schema_change"] = json!("ignore");
    sync_ok(&server, "pg", ignoring).await;
    let (_, dataset) = server.get("/api/v1/datasets/events").await;
    assert!(
        !dataset["data"]["schema"].to_string().contains("extra"),
        "{dataset}"
    );

    // Field mappings rename and cast.
    let (status, body) = server
        .client
        .put(server.url(&format!("/api/v1/connections/pg/streams/{stream}/mappings")))
        .json(&json!({"mappings": [
            {"source": "v", "target": "label"},
            {"source": "id", "type": "Int64"},
            {"source": "extra", "drop": true}
        ]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200, "{:?}", split(body).await);
    let mapped = sync_ok(
        &server,
        "pg",
        json!({"streams": [{"stream": stream, "dataset": "events_mapped"}]}),
    )
    .await;
    assert_eq!(mapped["rows_written"], 14);
    let (_, dataset) = server.get("/api/v1/datasets/events_mapped").await;
    assert_eq!(column_type(&dataset["data"], "id"), "Int64");
    assert_eq!(column_type(&dataset["data"], "label"), "Utf8");
    assert!(!dataset["data"]["schema"].to_string().contains("extra"));
    let (status, bad) = server
        .client
        .put(server.url(&format!("/api/v1/connections/pg/streams/{stream}/mappings")))
        .json(&json!({"mappings": [{"source": "nope"}]}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 400, "{:?}", split(bad).await);

    pg.drop_schema().await;
}

/// A scratch database in the local MariaDB, dropped when the test ends.
struct MyScratch {
    pool: mysql_async::Pool,
    database: String,
}

impl MyScratch {
    async fn new() -> Option<Self> {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(3306)
            .user(Some("root"))
            .db_name(Some("test"));
        let pool = mysql_async::Pool::new(opts);
        let mut conn = match tokio::time::timeout(Duration::from_secs(5), pool.get_conn()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                missing("MariaDB at 127.0.0.1:3306", e);
                return None;
            }
            Err(_) => {
                missing("MariaDB at 127.0.0.1:3306", "no answer in 5 s");
                return None;
            }
        };
        let database = format!("basin_it_{}", uuid_suffix());
        conn.query_drop(format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        Some(Self { pool, database })
    }

    async fn run(&self, sql: &str) {
        let mut conn = self.pool.get_conn().await.unwrap();
        conn.query_drop(format!("USE {}", self.database))
            .await
            .unwrap();
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn drop_database(self) {
        if let Ok(mut conn) = self.pool.get_conn().await {
            let _ = conn
                .query_drop(format!("DROP DATABASE {}", self.database))
                .await;
        }
        let _ = self.pool.disconnect().await;
    }
}

fn my_config(database: &str) -> Value {
    json!({"host": "127.0.0.1", "port": 3306, "database": database, "user": "root", "ssl_mode": "disabled"})
}

#[tokio::test]
async fn mysql_types_round_trip_into_a_dataset() {
    let Some(my) = MyScratch::new().await else {
        return;
    };
    my.run(
        "CREATE TABLE everything (
            id BIGINT PRIMARY KEY, tiny TINYINT, small SMALLINT, mid MEDIUMINT, normal INT, big BIGINT,
            ubig BIGINT UNSIGNED, num DECIMAL(12,3), f FLOAT, d DOUBLE, flag BOOLEAN,
            c CHAR(3), vc VARCHAR(20), t TEXT, b BLOB, bin VARBINARY(8), day DATE, tm TIME,
            dt DATETIME(6), ts TIMESTAMP NULL, mood ENUM('sad','happy'), doc JSON,
            updated_at DATETIME NOT NULL COMMENT 'last change')",
    )
    .await;
    my.run(
        "INSERT INTO everything VALUES
          (1, -8, 300, 70000, 2000000000, 9000000000, 18446744073709551615, 12345.678, 1.5, 2.25, TRUE,
           'abc', 'Zoë', 'long text', x'0102ff', x'cafe', '2024-02-29', '13:45:30', '2024-03-01 08:15:00.123456',
           '2024-03-01 08:15:00', 'happy', '{\"a\": 1}', '2024-03-01 00:00:00'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, '2024-03-02 00:00:00');
         CREATE TABLE odd (id INT PRIMARY KEY, yr YEAR);
         INSERT INTO odd VALUES (1, 2024), (2, NULL)",
    )
    .await;
    let server = TestServer::start().await;
    create_connection(&server, "maria", "mysql", my_config(&my.database)).await;
    let (status, discovered) = server
        .post_json("/api/v1/connections/maria/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{discovered}");
    // A type the provider cannot read: listed with a warning, discovery goes on.
    let odd = &discovered["data"][1];
    assert_eq!(odd["name"], "odd", "{discovered}");
    assert!(odd["warnings"].to_string().contains("year"), "{odd}");
    assert_eq!(
        server
            .rows(&format!(
                "SELECT id, yr FROM maria.{}.odd ORDER BY id",
                my.database
            ))
            .await,
        [json!([1, "2024"]), json!([2, null])]
    );
    let stream = &discovered["data"][0];
    assert_eq!(stream["name"], "everything");
    assert_eq!(stream["primary_key"], json!(["id"]));
    assert!(
        stream["cursor_candidates"]
            .to_string()
            .contains("updated_at"),
        "{stream}"
    );

    sync_ok(
        &server,
        "maria",
        json!({"streams": [{"stream": "everything", "dataset": "my_everything"}]}),
    )
    .await;
    let (_, dataset) = server.get("/api/v1/datasets/my_everything").await;
    let dataset = &dataset["data"];
    for (column, want) in [
        ("id", "Int64"),
        ("tiny", "Int8"),
        ("small", "Int16"),
        ("normal", "Int32"),
        ("big", "Int64"),
        ("ubig", "Decimal128(20, 0)"),
        ("num", "Decimal128(12, 3)"),
        ("f", "Float32"),
        ("d", "Float64"),
        ("vc", "Utf8"),
        ("t", "Utf8"),
        ("day", "Date32"),
        ("tm", "Utf8"),
        ("dt", "Timestamp(µs)"),
        ("mood", "Utf8"),
        ("doc", "Utf8"),
    ] {
        assert_eq!(column_type(dataset, column), want, "{column}: {dataset}");
    }
    let rows = server
        .rows(
            "SELECT tiny, small, mid, normal, big, CAST(ubig AS VARCHAR), CAST(num AS VARCHAR), f, d, \
             c, vc, t, encode(b, 'hex'), encode(bin, 'hex'), CAST(day AS VARCHAR), tm, CAST(dt AS VARCHAR), \
             mood, doc FROM my_everything ORDER BY id",
        )
        .await;
    assert_eq!(
        rows[0],
        json!([
            -8,
            300,
            70000,
            2000000000,
            9000000000i64,
            "18446744073709551615",
            "12345.678",
            1.5,
            2.25,
            "abc",
            "Zoë",
            "long text",
            "0102ff",
            "cafe",
            "2024-02-29",
            rows[0][15].clone(),
            "2024-03-01T08:15:00.123456",
            "happy",
            "{\"a\": 1}"
        ])
    );
    assert!(
        rows[0][15].as_str().unwrap().starts_with("13:45:30"),
        "{}",
        rows[0][15]
    );
    assert!(
        rows[1].as_array().unwrap().iter().all(Value::is_null),
        "{}",
        rows[1]
    );

    // Live, with the filter in the SQL sent to MariaDB.
    let plan = server
        .rows(&format!(
            "EXPLAIN SELECT id FROM maria.{}.everything WHERE big > 0",
            my.database
        ))
        .await;
    let plan_text = plan.iter().map(Value::to_string).collect::<String>();
    assert!(plan_text.contains("WHERE"), "{plan_text}");
    my.drop_database().await;
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn bad_configurations_are_classified() {
    let server = TestServer::start().await;
    let test = |kind: &'static str, config: Value| {
        let server = &server;
        async move {
            let (status, body) = server
                .post_json(
                    "/api/v1/connections/test",
                    json!({"type": kind, "config": config}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["data"].clone()
        }
    };

    // Shape errors name the field, without any IO.
    let shape = test(
        "postgres",
        json!({"host": "h", "database": "d", "user": "u", "port": "x"}),
    )
    .await;
    assert_eq!(shape["failure"], "config");
    assert_eq!(shape["field"], "/port");

    // Nothing listens: network.
    let port = closed_port();
    let refused = test(
        "postgres",
        json!({"host": "127.0.0.1", "port": port, "database": "test", "user": "postgres", "ssl_mode": "disable"}),
    )
    .await;
    assert_eq!(refused["failure"], "network", "{refused}");

    // A listener that accepts and never answers: a timeout, in about the configured time.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            keep.lock().await.push(socket);
        }
    });
    for kind in ["postgres", "mysql"] {
        let outcome = test(
            kind,
            json!({"host": "127.0.0.1", "port": silent_port, "database": "test", "user": "root",
                   "connect_timeout_secs": 1, "ssl_mode": if kind == "postgres" { "disable" } else { "disabled" }}),
        )
        .await;
        assert_eq!(outcome["failure"], "timeout", "{kind}: {outcome}");
        let latency = outcome["latency_ms"].as_u64().unwrap();
        assert!((900..5000).contains(&latency), "{kind}: {latency} ms");
    }

    if let Some(pg) = PgScratch::new().await {
        // An unknown role: the server refuses the login.
        let mut config = pg_config(&pg.schema);
        config["user"] = json!("basin_no_such_role");
        let auth = test("postgres", config).await;
        assert_eq!(auth["failure"], "auth", "{auth}");
        // An unknown database: the field at fault.
        let mut config = pg_config(&pg.schema);
        config["database"] = json!("basin_no_such_db");
        let db = test("postgres", config).await;
        assert_eq!(db["failure"], "config", "{db}");
        assert_eq!(db["field"], "/database");
        // A missing table.
        let mut config = pg_config(&pg.schema);
        config["tables"] = json!([format!("{}.nope", pg.schema)]);
        let missing_table = test("postgres", config).await;
        assert_eq!(missing_table["failure"], "config", "{missing_table}");
        assert_eq!(missing_table["field"], "/tables/0");
        // A table the user may not read.
        let role = format!("basin_noprv_{}", uuid_suffix());
        pg.run(&format!(
            "CREATE TABLE {{s}}.secret (x int); CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {{s}} TO {role};"
        ))
        .await;
        let mut config = pg_config(&pg.schema);
        config["user"] = json!(role);
        config["tables"] = json!([format!("{}.secret", pg.schema)]);
        let denied = test("postgres", config).await;
        assert_eq!(denied["failure"], "permission", "{denied}");
        pg.run(&format!(
            "DROP TABLE {{s}}.secret; DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .await;
        pg.drop_schema().await;
    }

    if let Some(my) = MyScratch::new().await {
        let user = format!("basin_noprv_{}", &uuid_suffix()[..8]);
        my.run(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'right-password'"
        ))
        .await;
        let mut config = my_config(&my.database);
        config["user"] = json!(user);
        config["password"] = json!("wrong-password");
        let auth = test("mysql", config.clone()).await;
        assert_eq!(auth["failure"], "auth", "{auth}");
        config["password"] = json!("right-password");
        let denied = test("mysql", config).await;
        assert_eq!(denied["failure"], "permission", "{denied}");
        let mut config = my_config(&my.database);
        config["tables"] = json!(["nope"]);
        let missing_table = test("mysql", config).await;
        assert_eq!(missing_table["failure"], "config", "{missing_table}");
        assert_eq!(missing_table["field"], "/tables/0");
        my.run(&format!("DROP USER '{user}'@'%'")).await;
        my.drop_database().await;
    }
}

#[tokio::test]
async fn sqlite_files_are_discovered_queried_and_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, added TEXT);
             INSERT INTO items VALUES (1, 'apple', 0.5, '2024-01-01'), (2, 'pear', 0.75, '2024-01-02'), (3, 'fig', NULL, NULL);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let root = dir.path().canonicalize().unwrap();
    let server = TestServer::start_with(|c| c.ingest.allowed_roots.push(root.clone())).await;
    create_connection(
        &server,
        "shop",
        "sqlite",
        json!({"path": path.to_string_lossy()}),
    )
    .await;
    let (status, discovered) = server
        .post_json("/api/v1/connections/shop/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{discovered}");
    assert_eq!(discovered["data"][0]["name"], "items");
    assert_eq!(discovered["data"][0]["primary_key"], json!(["id"]));
    assert_eq!(
        server
            .rows("SELECT name FROM shop.main.items WHERE price > 0.6")
            .await,
        [json!(["pear"])]
    );
    let result = sync_ok(&server, "shop", json!({"streams": ["items"]})).await;
    assert_eq!(result["dataset"], "shop_items");
    assert_eq!(
        server.rows("SELECT count(*) FROM shop_items").await,
        [json!([3])]
    );

    // Outside the import roots: refused whether or not the file exists.
    let (status, outside) = server
        .post_json(
            "/api/v1/connections/test",
            json!({"type": "sqlite", "config": {"path": "/etc/passwd"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(outside["data"]["failure"], "config", "{outside}");
    assert_eq!(outside["data"]["field"], "/path");
}

#[tokio::test]
async fn local_files_with_globs_and_compression_are_a_source() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("part-1.csv", "id,city\n1,Oslo\n2,Rome\n".to_owned()),
        ("part-2.csv", "id,city\n3,Lima\n".to_owned()),
    ] {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    std::fs::copy(
        crate::common::testdata("orders_april.csv.gz"),
        dir.path().join("april.csv.gz"),
    )
    .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let server = TestServer::start_with(|c| c.ingest.allowed_roots.push(root.clone())).await;
    create_connection(
        &server,
        "cities",
        "files",
        json!({"url": format!("{}/part-*.csv", root.display()), "stream": "cities"}),
    )
    .await;
    assert_eq!(
        server
            .rows("SELECT count(*) FROM cities.public.cities")
            .await,
        [json!([3])]
    );
    create_connection(
        &server,
        "april",
        "files",
        json!({"url": format!("{}/april.csv.gz", root.display())}),
    )
    .await;
    let (_, discovered) = server
        .post_json("/api/v1/connections/april/discover", json!({}))
        .await;
    assert_eq!(discovered["data"][0]["name"], "april", "{discovered}");
    let rows = server.rows("SELECT count(*) FROM april.public.april").await;
    assert!(rows[0][0].as_i64().unwrap() > 0);

    let (_, empty) = server
        .post_json(
            "/api/v1/connections/test",
            json!({"type": "files", "config": {"url": format!("{}/none-*.csv", root.display())}}),
        )
        .await;
    assert_eq!(empty["data"]["failure"], "config", "{empty}");
}

#[tokio::test]
async fn s3_compatible_storage_is_a_source() {
    let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") else {
        missing(
            "an S3-compatible server (TEST_S3_ENDPOINT, started by scripts/test.sh)",
            "not set",
        );
        return;
    };
    use object_store::ObjectStoreExt;
    let bucket = format!("basin-it-{}", uuid_suffix());
    // moto creates buckets on a plain PUT.
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_bucket_name(&bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_allow_http(true)
        .build()
        .unwrap();
    for (key, body) in [
        (
            "sales/2024-01.csv",
            "day,amount\n2024-01-01,10\n2024-01-02,20\n",
        ),
        ("sales/2024-02.csv", "day,amount\n2024-02-01,30\n"),
        ("other/skip.csv", "x\n1\n"),
    ] {
        store
            .put(&key.into(), body.as_bytes().to_vec().into())
            .await
            .unwrap();
    }
    let server = TestServer::start().await;
    let config = json!({
        "url": format!("s3://{bucket}/sales/*.csv"),
        "stream": "sales",
        "s3": {"endpoint": endpoint, "region": "us-east-1", "access_key_id": "testing",
               "secret_access_key": "s3-secret-never-shown", "allow_http": true}
    });
    let created = create_connection(&server, "lake", "files", config).await;
    assert!(!created.to_string().contains("s3-secret-never-shown"));
    assert_eq!(
        server
            .rows("SELECT sum(amount) FROM lake.public.sales")
            .await,
        [json!([60])]
    );
    let result = sync_ok(&server, "lake", json!({"streams": ["sales"]})).await;
    assert_eq!(result["rows_written"], 3);

    let (_, missing_bucket) = server
        .post_json(
            "/api/v1/connections/test",
            json!({"type": "files", "config": {"url": "s3://basin-no-such-bucket/x/*.csv",
                   "s3": {"endpoint": endpoint, "access_key_id": "testing", "secret_access_key": "testing", "allow_http": true}}}),
        )
        .await;
    assert_eq!(
        missing_bucket["data"]["status"], "failed",
        "{missing_bucket}"
    );
    assert_eq!(
        missing_bucket["data"]["failure"], "config",
        "{missing_bucket}"
    );
}

/// A paginated JSON API on loopback: `/items?page=N` (3 pages of 2 and one
/// short page), a 429 with `Retry-After` on the first request, a bearer token
/// required, and `/linked` paginated by `Link` headers.
async fn start_api() -> (String, Arc<AtomicUsize>) {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let items = move |headers: HeaderMap,
                      Query(q): Query<std::collections::HashMap<String, String>>| {
        let counted = counted.clone();
        async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some("Bearer api-token")
            {
                return (StatusCode::UNAUTHORIZED, "no").into_response();
            }
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "slow down",
                )
                    .into_response();
            }
            let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
            let records: Vec<Value> = match page {
                1..=3 => (0..2)
                    .map(|i| json!({"id": (page - 1) * 2 + i + 1, "name": format!("n{page}{i}"), "meta": {"ok": true}}))
                    .collect(),
                4 => vec![json!({"id": 7, "name": "last", "extra": 1.5})],
                _ => vec![],
            };
            axum::Json(json!({"data": records, "page": page})).into_response()
        }
    };
    let linked = |Query(q): Query<std::collections::HashMap<String, String>>| async move {
        let page: usize = q.get("p").and_then(|p| p.parse().ok()).unwrap_or(1);
        let mut headers = HeaderMap::new();
        if page < 3 {
            headers.insert(
                "link",
                format!("</linked?p={}>; rel=\"next\"", page + 1)
                    .parse()
                    .unwrap(),
            );
        }
        (headers, axum::Json(json!([{"n": page}])))
    };
    let csv = || async { "city,people\nOslo,700000\nLima,10000000\n" };
    let app = axum::Router::new()
        .route("/items", axum::routing::get(items))
        .route("/linked", axum::routing::get(linked))
        .route("/files/cities.csv", axum::routing::get(csv));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn http_apis_are_paged_retried_and_synced() {
    let (api, hits) = start_api().await;
    let server = TestServer::start().await;
    let config = json!({
        "url": format!("{api}/items"),
        "auth": {"type": "bearer", "value": "api-token"},
        "records": "/data",
        "pagination": {"type": "page", "size": 2},
        "infer_pages": 4,
        "max_retries": 3
    });
    let created = create_connection(&server, "api", "http_api", config).await;
    assert!(!created.to_string().contains("api-token"));
    let (status, discovered) = server
        .post_json("/api/v1/connections/api/discover", json!({}))
        .await;
    assert_eq!(status, 200, "{discovered}");
    let columns: Vec<&str> = discovered["data"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"extra") && columns.contains(&"meta"),
        "{columns:?}"
    );
    assert!(hits.load(Ordering::SeqCst) >= 2, "the 429 was retried");

    let result = sync_ok(&server, "api", json!({"streams": ["items"]})).await;
    assert_eq!(result["rows_written"], 7, "{result}");
    assert_eq!(
        server.rows("SELECT name FROM api_items WHERE id = 7").await,
        [json!(["last"])]
    );
    // A LIMIT stops the paging early.
    let before = hits.load(Ordering::SeqCst);
    let limited = server.rows("SELECT id FROM api.public.items LIMIT 1").await;
    assert_eq!(limited.len(), 1);
    assert!(
        hits.load(Ordering::SeqCst) - before <= 6,
        "pages fetched for LIMIT 1"
    );

    create_connection(
        &server,
        "linked",
        "http_api",
        json!({"url": format!("{api}/linked"), "pagination": {"type": "link_header"}}),
    )
    .await;
    assert_eq!(
        server.rows("SELECT sum(n) FROM linked.public.linked").await,
        [json!([6])]
    );

    let (_, refused) = server
        .post_json(
            "/api/v1/connections/test",
            json!({"type": "http_api", "config": {"url": format!("{api}/items"), "records": "/data"}}),
        )
        .await;
    assert_eq!(refused["data"]["failure"], "auth", "{refused}");

    // A file behind HTTP is a files source too.
    create_connection(
        &server,
        "web",
        "files",
        json!({"url": format!("{api}/files/cities.csv")}),
    )
    .await;
    assert_eq!(
        server
            .rows("SELECT sum(people) FROM web.public.cities")
            .await,
        [json!([10700000])]
    );
}

#[tokio::test]
async fn connections_are_managed_and_schemas_diffed() {
    let server = TestServer::with_orders().await;
    let (_, types) = server.get("/api/v1/connector-types").await;
    let kinds: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["postgres", "mysql", "sqlite", "files", "http_api"]);
    let (_, spec) = server.get("/api/v1/connector-types/http_api/spec").await;
    assert_eq!(
        spec["data"]["properties"]["auth"]["oneOf"][1]["properties"]["value"]["x-secret"],
        true
    );
    let (status, _) = server.get("/api/v1/connector-types/nope/spec").await;
    assert_eq!(status, 404);

    let (status, bad) = server
        .post_json(
            "/api/v1/connections",
            json!({"name": "Bad Name", "type": "files", "config": {"url": "/x.csv"}}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = server
        .post_json(
            "/api/v1/connections",
            json!({"name": "x", "type": "postgres", "config": {"host": "h"}}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["code"], "source_config_invalid");

    let config = json!({"url": "https://api.example.invalid/v1/items",
                        "auth": {"type": "header", "name": "X-Key", "value": "first-secret"}});
    create_connection(&server, "remote", "http_api", config).await;
    let (status, _) = server
        .post_json(
            "/api/v1/connections",
            json!({"name": "remote", "type": "http_api", "config": {"url": "https://x.invalid/"}}),
        )
        .await;
    assert_eq!(status, 409);
    // A patch without the secret keeps it…
    let response = server
        .client
        .patch(server.url("/api/v1/connections/remote"))
        .json(
            &json!({"name": "remote2", "config": {"url": "https://api.example.invalid/v1/items",
                      "auth": {"type": "header", "name": "X-Key"}, "max_pages": 10}}),
        )
        .send()
        .await
        .unwrap();
    let (status, patched) = split(response).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["data"]["secret_fields"], json!(["/auth/value"]));
    assert_eq!(patched["data"]["version"], 2);
    // …but never carries it to another server: pointing elsewhere needs it again.
    let response = server
        .client
        .patch(server.url("/api/v1/connections/remote2"))
        .json(
            &json!({"config": {"url": "https://elsewhere.example.invalid/items",
                      "auth": {"type": "header", "name": "X-Key"}}}),
        )
        .send()
        .await
        .unwrap();
    let (status, refused) = split(response).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["details"]["field"]
            .as_str()
            .unwrap()
            .starts_with("/auth"),
        "{refused}"
    );
    let catalog = std::fs::read(server.data_dir.path().join("catalog.db")).unwrap();
    assert!(
        !catalog.windows(12).any(|w| w == b"first-secret"),
        "the secret is stored sealed"
    );
    let response = server
        .client
        .delete(server.url("/api/v1/connections/remote2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = server.get("/api/v1/connections/remote2").await;
    assert_eq!(status, 404);

    let (status, diff) = server
        .post_json(
            "/api/v1/schemas/diff",
            json!({
                "from": [{"name": "id", "type": "Int32", "nullable": false}, {"name": "old", "type": "Utf8"},
                         {"name": "amount", "type": "decimal(10,2)"}],
                "to": [{"name": "id", "type": "bigint", "nullable": false}, {"name": "new", "type": "Utf8"},
                       {"name": "amount", "type": "Float32"}],
                "renames": {"old": "new"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{diff}");
    let kinds: Vec<(String, bool)> = diff["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["breaking"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("type_widened".to_owned(), false),
            ("renamed".to_owned(), true),
            ("type_changed".to_owned(), true)
        ]
    );
    assert_eq!(diff["meta"]["breaking"], true);

    // A dataset against itself at version 0: nothing changed.
    let (status, same) = server
        .post_json(
            "/api/v1/schemas/diff",
            json!({"from": {"dataset": "orders", "version": 0}, "to": {"dataset": "orders"}}),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["data"], json!([]));
    let (status, bad_type) = server
        .post_json(
            "/api/v1/schemas/diff",
            json!({"from": [{"name": "a", "type": "nonsense"}], "to": []}),
        )
        .await;
    assert_eq!(status, 400, "{bad_type}");
    let (_, history) = server.get("/api/v1/datasets/orders/schema/history").await;
    assert_eq!(history["data"].as_array().unwrap().len(), 1, "{history}");
}
