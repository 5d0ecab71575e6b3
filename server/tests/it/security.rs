//! Identity and access: the route × principal matrix over REST and Flight,
//! login throttling, rate limits, the audit chain, cookies, CORS, input
//! limits, WebSocket revocation, key rotation, and secrets kept out of logs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandStatementIngest, TableDefinitionOptions};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::{ADMIN_PASSWORD, TestServer, client_with, error_code, login, split};

const PASSWORD: &str = "correct horse battery staple";

/// Who calls, in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Editor,
    Admin,
    /// A viewer's key with the `read` scope only.
    ReadKey,
    /// An editor's key with the `write` scope only.
    WriteKey,
    ExpiredKey,
    RevokedKey,
    DisabledUser,
}

/// What a route needs, as the documentation states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// Any valid credentials.
    Caller,
    Read,
    Write,
    Admin,
    /// One's own account: a signed-in user, never an API key.
    Account,
}

/// Every route and what it needs; the test also checks this list is the
/// OpenAPI document's list, so a new route cannot go unchecked.
const ROUTES: &[(&str, &str, Needs)] = &[
    ("get", "/datasets", Needs::Read),
    ("post", "/datasets", Needs::Write),
    ("get", "/datasets/{name}", Needs::Read),
    ("patch", "/datasets/{name}", Needs::Write),
    ("delete", "/datasets/{name}", Needs::Write),
    ("post", "/datasets/{name}/upload", Needs::Write),
    ("get", "/datasets/{name}/preview", Needs::Read),
    ("get", "/datasets/{name}/versions", Needs::Read),
    ("post", "/datasets/{name}/restore", Needs::Write),
    ("get", "/datasets/{name}/statistics", Needs::Read),
    ("post", "/query", Needs::Read),
    ("get", "/jobs", Needs::Read),
    ("get", "/jobs/{id}", Needs::Read),
    ("post", "/jobs/{id}/cancel", Needs::Write),
    ("get", "/events", Needs::Read),
    ("post", "/auth/login", Needs::Nothing),
    ("post", "/auth/logout", Needs::Caller),
    ("get", "/auth/me", Needs::Caller),
    ("get", "/auth/sessions", Needs::Account),
    ("delete", "/auth/sessions/{id}", Needs::Account),
    ("post", "/auth/password", Needs::Account),
    ("get", "/api-keys", Needs::Account),
    ("post", "/api-keys", Needs::Account),
    ("delete", "/api-keys/{id}", Needs::Account),
    ("get", "/users", Needs::Admin),
    ("post", "/users", Needs::Admin),
    ("get", "/users/{username}", Needs::Admin),
    ("patch", "/users/{username}", Needs::Admin),
    ("delete", "/users/{username}", Needs::Admin),
    ("get", "/users/{username}/grants", Needs::Admin),
    ("put", "/users/{username}/grants/{dataset}", Needs::Admin),
    ("delete", "/users/{username}/grants/{dataset}", Needs::Admin),
    ("get", "/audit", Needs::Admin),
    ("get", "/audit/verify", Needs::Admin),
    ("get", "/datasets/{name}/schema/history", Needs::Read),
    ("get", "/connector-types", Needs::Read),
    ("get", "/connector-types/{type}/spec", Needs::Read),
    ("get", "/connections", Needs::Read),
    ("post", "/connections", Needs::Admin),
    ("post", "/connections/test", Needs::Admin),
    ("get", "/connections/{id}", Needs::Read),
    ("patch", "/connections/{id}", Needs::Admin),
    ("delete", "/connections/{id}", Needs::Admin),
    ("post", "/connections/{id}/test", Needs::Write),
    ("post", "/connections/{id}/discover", Needs::Write),
    ("post", "/connections/{id}/sync", Needs::Write),
    (
        "get",
        "/connections/{id}/streams/{stream}/schema/history",
        Needs::Read,
    ),
    (
        "get",
        "/connections/{id}/streams/{stream}/mappings",
        Needs::Read,
    ),
    (
        "put",
        "/connections/{id}/streams/{stream}/mappings",
        Needs::Write,
    ),
    (
        "delete",
        "/connections/{id}/streams/{stream}/mappings",
        Needs::Write,
    ),
    ("post", "/schemas/diff", Needs::Read),
    ("get", "/pipelines", Needs::Read),
    ("post", "/pipelines", Needs::Write),
    ("post", "/pipelines/validate", Needs::Read),
    ("get", "/pipelines/{id}", Needs::Read),
    ("put", "/pipelines/{id}", Needs::Write),
    ("post", "/pipelines/{id}/archive", Needs::Write),
    ("post", "/pipelines/{id}/unarchive", Needs::Write),
    ("get", "/pipelines/{id}/versions", Needs::Read),
    ("get", "/pipelines/{id}/versions/{version}", Needs::Read),
    (
        "post",
        "/pipelines/{id}/versions/{version}/activate",
        Needs::Write,
    ),
    ("get", "/pipelines/{id}/diff", Needs::Read),
    ("post", "/pipelines/{id}/plan", Needs::Read),
    ("post", "/pipelines/{id}/runs", Needs::Write),
    ("get", "/pipelines/{id}/runs", Needs::Read),
    ("post", "/pipelines/{id}/instantiate", Needs::Write),
    ("get", "/pipelines/{id}/lineage", Needs::Read),
    ("get", "/runs", Needs::Read),
    ("get", "/runs/{id}", Needs::Read),
    ("post", "/runs/{id}/cancel", Needs::Write),
    ("post", "/runs/{id}/retry", Needs::Write),
    ("get", "/runs/{id}/openlineage", Needs::Read),
    ("get", "/lineage", Needs::Read),
    ("get", "/ws", Needs::Read),
    ("post", "/datasets/{name}/profile", Needs::Read),
    ("get", "/datasets/{name}/profile", Needs::Read),
    ("get", "/datasets/{name}/checks", Needs::Read),
    ("post", "/datasets/{name}/checks", Needs::Write),
    ("get", "/datasets/{name}/checks/{check}", Needs::Read),
    ("put", "/datasets/{name}/checks/{check}", Needs::Write),
    ("delete", "/datasets/{name}/checks/{check}", Needs::Write),
    ("post", "/datasets/{name}/check-runs", Needs::Read),
    ("get", "/datasets/{name}/check-results", Needs::Read),
    ("get", "/datasets/{name}/metrics", Needs::Read),
    ("post", "/analytics/timeseries", Needs::Read),
    ("get", "/dashboard/stats", Needs::Read),
];

/// The status class a caller must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthorized,
    Forbidden,
    Allowed,
}

fn expected(who: Who, needs: Needs) -> Expect {
    use Expect::*;
    if needs == Needs::Nothing {
        return Allowed;
    }
    let role = match who {
        Who::Anonymous | Who::ExpiredKey | Who::RevokedKey | Who::DisabledUser => {
            return Unauthorized;
        }
        Who::Viewer => (true, false, false, true),
        Who::Editor => (true, true, false, true),
        Who::Admin => (true, true, true, true),
        // Keys: their scope, within their owner's role; never accounts.
        Who::ReadKey => (true, false, false, false),
        Who::WriteKey => (false, true, false, false),
    };
    let (read, write, admin, account) = role;
    let allowed = match needs {
        Needs::Nothing | Needs::Caller => true,
        Needs::Read => read,
        Needs::Write => write,
        Needs::Admin => admin,
        Needs::Account => account,
    };
    if allowed { Allowed } else { Forbidden }
}

/// Fills a route's parameters with targets that change nothing when the call
/// is allowed (missing names and ids), so the matrix leaves the server as it was.
fn concrete(method: &str, template: &str) -> String {
    let destructive = method != "get";
    template
        .replace(
            "{name}",
            if destructive {
                "no_such_dataset"
            } else {
                "orders"
            },
        )
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace(
            "{username}",
            if destructive {
                "no_such_user"
            } else {
                "viewer_user"
            },
        )
        .replace("{dataset}", "orders")
        .replace("{type}", "postgres")
        .replace("{stream}", "no_such_stream")
        .replace("{version}", "1")
        .replace("{check}", "no_such_check")
}

struct Cast {
    server: TestServer,
    credentials: Vec<(Who, Option<String>)>,
}

async fn create_user(server: &TestServer, username: &str, role: &str) {
    let (status, body) = server
        .post_json(
            "/api/v1/users",
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD, "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn create_key(server: &TestServer, token: &str, body: Value) -> (String, String) {
    let response = client_with(token)
        .post(server.url("/api/v1/api-keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 201, "{body}");
    (
        body["data"]["secret"].as_str().unwrap().to_owned(),
        body["data"]["id"].as_str().unwrap().to_owned(),
    )
}

/// A server with `orders`, users of each role and keys of each kind.
async fn cast() -> Cast {
    let server = TestServer::with_orders().await;
    create_user(&server, "viewer_user", "viewer").await;
    create_user(&server, "editor_user", "editor").await;
    create_user(&server, "gone_user", "editor").await;
    let viewer = login(&server.base, "viewer_user", PASSWORD).await;
    let editor = login(&server.base, "editor_user", PASSWORD).await;
    let disabled = login(&server.base, "gone_user", PASSWORD).await;
    // Its own session: the matrix logs it out, and the server's token must outlive that.
    let admin = login(&server.base, "admin", ADMIN_PASSWORD).await;
    let (read_key, _) = create_key(
        &server,
        &viewer,
        json!({"name": "read", "scopes": ["read"]}),
    )
    .await;
    let (write_key, _) = create_key(
        &server,
        &editor,
        json!({"name": "write", "scopes": ["write"]}),
    )
    .await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).to_rfc3339();
    let (expired_key, _) = create_key(
        &server,
        &server.token,
        json!({"name": "short", "scopes": ["read", "write", "admin"], "expires_at": soon}),
    )
    .await;
    let (revoked_key, revoked_id) = create_key(
        &server,
        &server.token,
        json!({"name": "revoked", "scopes": ["read", "write", "admin"]}),
    )
    .await;
    let response = server
        .client
        .delete(server.url(&format!("/api/v1/api-keys/{revoked_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .client
        .patch(server.url("/api/v1/users/gone_user"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Cast {
        credentials: vec![
            (Who::Anonymous, None),
            (Who::Viewer, Some(viewer)),
            (Who::Editor, Some(editor)),
            (Who::Admin, Some(admin)),
            (Who::ReadKey, Some(read_key)),
            (Who::WriteKey, Some(write_key)),
            (Who::ExpiredKey, Some(expired_key)),
            (Who::RevokedKey, Some(revoked_key)),
            (Who::DisabledUser, Some(disabled)),
        ],
        server,
    }
}

#[tokio::test]
async fn every_route_gives_each_principal_exactly_its_access() {
    let Cast {
        server,
        credentials,
    } = cast().await;
    // The matrix covers exactly the documented routes.
    let (_, doc) = server.get("/api/v1/openapi.json").await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, listed,
        "the matrix and the OpenAPI document disagree"
    );

    let plain = reqwest::Client::new();
    let mut failures = Vec::new();
    // Logging out ends the sessions the other rows use: it goes last.
    let (logout, others): (Vec<_>, Vec<_>) = ROUTES
        .iter()
        .partition(|(_, path, _)| *path == "/auth/logout");
    for &(method, template, needs) in others.into_iter().chain(logout) {
        for (who, token) in &credentials {
            let url = server.url(&format!("/api/v1{}", concrete(method, template)));
            let mut request = plain.request(method.to_uppercase().parse().unwrap(), url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if method != "get" && method != "delete" {
                request = request.json(&json!({}));
            }
            let status = request.send().await.unwrap().status().as_u16();
            let got = match status {
                401 => Expect::Unauthorized,
                403 => Expect::Forbidden,
                _ => Expect::Allowed,
            };
            let want = expected(*who, needs);
            if got != want {
                failures.push(format!(
                    "{method} {template} as {who:?}: {status}, want {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing in the matrix changed the data.
    assert_eq!(
        server.rows("SELECT count(*) FROM orders").await,
        [json!([12])]
    );
}

async fn flight_client(
    server: &TestServer,
    token: Option<&str>,
) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.flight_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = token {
        client.set_token(token.to_owned());
    }
    client
}

fn class_of(result: Result<(), arrow_flight::error::FlightError>) -> Expect {
    match result {
        Ok(()) => Expect::Allowed,
        Err(e) => {
            let text = e.to_string();
            if text.contains("Unauthenticated") || text.contains("unauthenticated:") {
                Expect::Unauthorized
            } else if text.contains("PermissionDenied") || text.contains("forbidden:") {
                Expect::Forbidden
            } else {
                Expect::Allowed
            }
        }
    }
}

/// Plain Flight: GetFlightInfo of the path `[orders]`, then DoGet.
async fn plain_flight_read(
    server: &TestServer,
    token: Option<&str>,
) -> Result<(), arrow_flight::error::FlightError> {
    let channel = Channel::from_shared(format!("http://{}", server.flight_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    fn with_token<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
    }
    let descriptor = arrow_flight::FlightDescriptor::new_path(vec!["orders".into()]);
    let info = raw
        .get_flight_info(with_token(token, descriptor))
        .await?
        .into_inner();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = raw.do_get(with_token(token, ticket)).await?.into_inner();
    while let Some(data) = stream.next().await {
        data?;
    }
    Ok(())
}

fn people() -> arrow::array::RecordBatch {
    let ids = arrow::array::Int64Array::from(vec![1_i64]);
    arrow::array::RecordBatch::try_from_iter([("id", std::sync::Arc::new(ids) as _)]).unwrap()
}

#[tokio::test]
async fn every_flight_command_gives_each_principal_exactly_its_access() {
    let Cast {
        server,
        credentials,
    } = cast().await;
    let mut failures = Vec::new();
    for (who, token) in &credentials {
        let mut client = flight_client(&server, token.as_deref()).await;
        let query = async {
            let info = client
                .execute("SELECT count(*) FROM orders".into(), None)
                .await?;
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            let batches: Vec<_> = client.do_get(ticket).await?.collect().await;
            for batch in batches {
                batch?;
            }
            Ok(())
        }
        .await;
        let tables = async {
            let info = client
                .get_tables(arrow_flight::sql::CommandGetTables::default())
                .await?;
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            let batches: Vec<_> = client.do_get(ticket).await?.collect().await;
            for batch in batches {
                batch?;
            }
            Ok(())
        }
        .await;
        let prepared = client.prepare("SELECT 1".into(), None).await.map(|_| ());
        let dataset = plain_flight_read(&server, token.as_deref()).await;
        let mut client = flight_client(&server, token.as_deref()).await;
        let ingest = client
            .execute_ingest(
                CommandStatementIngest {
                    table_definition_options: Some(TableDefinitionOptions {
                        if_not_exist: arrow_flight::sql::TableNotExistOption::Create.into(),
                        if_exists: arrow_flight::sql::TableExistsOption::Append.into(),
                    }),
                    table: "flight_matrix".into(),
                    ..Default::default()
                },
                futures::stream::iter(vec![Ok(people())]),
            )
            .await
            .map(|_| ());
        let update = client
            .execute_update("INSERT INTO orders_copy SELECT * FROM orders".into(), None)
            .await
            .map(|_| ());
        for (command, needs, result) in [
            ("statement query", Needs::Read, query),
            ("get tables", Needs::Read, tables),
            ("prepare", Needs::Read, prepared),
            ("dataset path DoGet", Needs::Read, dataset),
            ("ingest", Needs::Write, ingest),
            // A missing table: allowed callers get not-found, others 401 or 403.
            ("update", Needs::Write, update),
        ] {
            let (got, want) = (class_of(result), expected(*who, needs));
            if got != want {
                failures.push(format!("{command} as {who:?}: {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The handshake trades a user's password for a session; a disabled user gets nothing.
    let mut client = flight_client(&server, None).await;
    client.handshake("viewer_user", PASSWORD).await.unwrap();
    let mut client = flight_client(&server, None).await;
    let err = client.handshake("gone_user", PASSWORD).await.unwrap_err();
    assert!(err.to_string().contains("unauthenticated:"), "{err}");
}

#[tokio::test]
async fn keys_limited_to_datasets_see_only_those() {
    let server = TestServer::with_orders().await;
    let (status, body) = server
        .upload("secret_stuff", "mode=create", b"a\n1\n".to_vec())
        .await;
    assert_eq!(status, 201, "{body}");
    let (key, _) = create_key(
        &server,
        &server.token,
        json!({"name": "orders only", "scopes": ["read"], "datasets": ["orders"]}),
    )
    .await;
    let limited = client_with(&key);
    let response = limited
        .get(server.url("/api/v1/datasets"))
        .send()
        .await
        .unwrap();
    let (_, body) = split(response).await;
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"]);
    let response = limited
        .get(server.url("/api/v1/datasets/secret_stuff"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // In SQL the other dataset does not exist at all.
    let response = limited
        .post(server.url("/api/v1/query"))
        .json(&json!({"sql": "SELECT * FROM secret_stuff"}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret_stuff")
    );
    let response = limited
        .post(server.url("/api/v1/query"))
        .json(&json!({"sql": "SELECT count(*) AS n FROM orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut flight = flight_client(&server, Some(&key)).await;
    let tables = flight
        .get_tables(arrow_flight::sql::CommandGetTables::default())
        .await
        .unwrap();
    let ticket = tables.endpoint[0].ticket.clone().unwrap();
    let batches: Vec<_> = flight.do_get(ticket).await.unwrap().collect().await;
    let listed: Vec<String> = batches
        .into_iter()
        .map(Result::unwrap)
        .flat_map(|b| {
            let names = b.column_by_name("table_name").unwrap().clone();
            let names = arrow::array::as_string_array(&names);
            names
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(listed.contains(&"orders".to_owned()), "{listed:?}");
    assert!(!listed.contains(&"secret_stuff".to_owned()), "{listed:?}");

    // A viewer with a write grant on one dataset writes that one only.
    create_user(&server, "granted", "viewer").await;
    let response = server
        .client
        .put(server.url("/api/v1/users/granted/grants/orders"))
        .json(&json!({"access": "write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let granted = client_with(&login(&server.base, "granted", PASSWORD).await);
    let upload = |name: &'static str| {
        granted
            .post(server.url(&format!("/api/v1/datasets/{name}/upload?mode=append")))
            .body(std::fs::read(crate::common::testdata("orders_april.csv")).unwrap())
            .send()
    };
    assert_eq!(upload("orders").await.unwrap().status(), 200);
    assert_eq!(upload("secret_stuff").await.unwrap().status(), 403);
}

#[tokio::test]
async fn brute_force_logins_are_slowed_then_locked_and_the_lock_ends() {
    let server = TestServer::start_with(|c| {
        c.auth.max_failed_logins = 3;
        c.auth.lockout = Duration::from_secs(2);
        c.auth.login_delay = Duration::from_millis(200);
    })
    .await;
    let attempt = |password: &'static str| {
        reqwest::Client::new()
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
    };
    let started = Instant::now();
    assert_eq!(attempt("wrong-password-1").await.unwrap().status(), 401);
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(attempt("wrong-password-2").await.unwrap().status(), 401);
    let second = started.elapsed();
    // The second failure waited the base delay before answering.
    assert!(second >= Duration::from_millis(200), "{first:?} {second:?}");
    assert_eq!(attempt("wrong-password-3").await.unwrap().status(), 401);
    // Locked: even the right password is refused, with Retry-After.
    let response = attempt(ADMIN_PASSWORD).await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let (_, body) = split(response).await;
    assert_eq!(error_code(&body), "rate_limited");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(attempt(ADMIN_PASSWORD).await.unwrap().status(), 200);

    // The attempts are in the audit log.
    let (_, body) = server
        .get("/api/v1/audit?action=auth.login&outcome=failure")
        .await;
    assert_eq!(body["meta"]["page"]["total"], 3, "{body}");
    let (_, body) = server
        .get("/api/v1/audit?action=auth.login&outcome=denied")
        .await;
    assert_eq!(body["meta"]["page"]["total"], 1, "{body}");
}

#[tokio::test]
async fn request_rates_are_limited_per_address_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.rate_limit.per_ip = 1;
        c.rate_limit.per_ip_burst = 5;
    })
    .await;
    let mut limited = None;
    for _ in 0..10 {
        let response = server
            .client
            .get(server.url("/api/v1/datasets"))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("the burst ran out");
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = split(response).await;
    assert_eq!(error_code(&body), "rate_limited");
}

async fn catalog(server: &TestServer) -> sqlx::SqlitePool {
    let path = server.data_dir.path().join("catalog.db");
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

#[tokio::test]
async fn audit_log_records_changes_and_verify_finds_tampering() {
    let server = TestServer::with_orders().await;
    create_user(&server, "ann", "editor").await;
    for name in ["a1", "a2", "a3"] {
        let (status, _) = server.upload(name, "mode=create", b"x\n1\n".to_vec()).await;
        assert_eq!(status, 201);
    }
    let (_, body) = server.get("/api/v1/audit?action=dataset.").await;
    let entries = body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{body}");
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["action"], "dataset.upload");
    assert_eq!(entries[0]["target"], "dataset:a3");
    assert_eq!(entries[0]["outcome"], "success");
    assert!(entries[0]["request_id"].is_string());
    assert_eq!(entries[0]["source_ip"], "127.0.0.1");
    let (_, body) = server.get("/api/v1/audit/verify").await;
    assert_eq!(body["data"]["valid"], true, "{body}");
    let total = body["data"]["rows_checked"].as_i64().unwrap();
    assert!(total >= 6, "{body}");

    let pool = catalog(&server).await;
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    // An edited row.
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
        .execute(&pool)
        .await
        .unwrap();
    let (_, body) = server.get("/api/v1/audit/verify").await;
    assert_eq!(body["data"]["valid"], false);
    assert_eq!(body["data"]["first_broken"]["seq"], 4, "{body}");
    // A deleted row before it.
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (_, body) = server.get("/api/v1/audit/verify").await;
    assert_eq!(body["data"]["first_broken"]["seq"], 2, "{body}");
    assert!(
        body["data"]["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("missing")
    );
}

#[tokio::test]
async fn deleting_the_newest_audit_rows_is_detected() {
    let server = TestServer::with_orders().await;
    let pool = catalog(&server).await;
    let (_, body) = server.get("/api/v1/audit/verify").await;
    let rows = body["data"]["rows_checked"].as_i64().unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
        .execute(&pool)
        .await
        .unwrap();
    let (_, body) = server.get("/api/v1/audit/verify").await;
    assert_eq!(body["data"]["valid"], false, "{body}");
    assert_eq!(body["data"]["first_broken"]["seq"], rows, "{body}");
}

#[tokio::test]
async fn sessions_work_as_cookies_and_end_at_logout() {
    let server = TestServer::with_orders().await;
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let pool = catalog(&server).await;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let browser = reqwest::Client::new();
    let me = browser
        .get(server.url("/api/v1/auth/me"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    let (status, body) = split(me).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["user"]["username"], "admin");
    assert_eq!(body["data"]["via"]["kind"], "session");
    // A state-changing request with the cookie from a foreign page is refused.
    let response = browser
        .post(server.url("/api/v1/query"))
        .header("cookie", &pair)
        .header("origin", "https://evil.example")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Logout revokes the session everywhere it is used.
    let response = browser
        .post(server.url("/api/v1/auth/logout"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let me = browser
        .get(server.url("/api/v1/auth/me"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    // The next sign-in sweeps the ended session away.
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sessions")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = count().await;
    login(&server.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(count().await, before, "one session ended, one began");
}

#[tokio::test]
async fn users_change_passwords_and_admins_cannot_remove_the_last_admin() {
    let server = TestServer::start().await;
    create_user(&server, "ann", "viewer").await;
    let first = login(&server.base, "ann", PASSWORD).await;
    let second = login(&server.base, "ann", PASSWORD).await;
    let ann = client_with(&first);
    let change = |current: &'static str, new: &'static str| {
        ann.post(server.url("/api/v1/auth/password"))
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    let (status, body) = split(
        change("wrong password here", "another long password")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = split(change(PASSWORD, "short").await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (400, "weak_password"));
    assert_eq!(
        change(PASSWORD, "another long password")
            .await
            .unwrap()
            .status(),
        204
    );
    // The other session was signed out; this one lives on.
    let response = client_with(&second)
        .get(server.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        ann.get(server.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    login(&server.base, "ann", "another long password").await;

    let response = server
        .client
        .patch(server.url("/api/v1/users/admin"))
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!((status, error_code(&body)), (409, "last_admin"));
    let (status, body) = server
        .post_json(
            "/api/v1/users",
            json!({"username": "ann", "email": "a@example.com", "password": PASSWORD, "role": "viewer"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "user_exists"));
    // Users listings never carry password hashes.
    let (_, body) = server.get("/api/v1/users").await;
    let text = body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password_hash"),
        "{text}"
    );
}

#[tokio::test]
async fn websockets_authenticate_at_upgrade_and_close_on_revocation() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let url = format!("{}/api/v1/events", server.base.replace("http://", "ws://"));
    // Without credentials the upgrade is refused.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    let token = login(&server.base, "admin", ADMIN_PASSWORD).await;
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let ready = socket.next().await.unwrap().unwrap();
    assert!(ready.to_text().unwrap().contains("ready"));
    // Job events arrive.
    let (status, body) = server
        .upload("ws_events", "mode=create&async=true", b"a\n1\n".to_vec())
        .await;
    assert_eq!(status, 202, "{body}");
    let event = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_str(event.to_text().unwrap()).unwrap();
    assert_eq!(event["type"], "job", "{event}");
    // Revoking the session closes the socket with 4401.
    let sessions = client_with(&token)
        .get(server.url("/api/v1/auth/sessions"))
        .send()
        .await
        .unwrap();
    let (_, body) = split(sessions).await;
    let current = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = client_with(&token)
        .delete(server.url(&format!("/api/v1/auth/sessions/{current}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(4401));
    let _ = socket.send(Message::Close(None)).await;
}

#[tokio::test]
async fn input_limits_and_cors_come_from_config() {
    let server = TestServer::start_with(|c| {
        c.http.max_json_depth = 8;
        c.http.cors_origins = vec!["https://app.example".into()];
    })
    .await;
    let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
    let response = server
        .client
        .post(server.url("/api/v1/query"))
        .header("content-type", "application/json")
        .body(format!("{{\"sql\": \"SELECT 1\", \"limit\": {deep}}}"))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_json"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 8")
    );

    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, server.url("/api/v1/query"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn rotating_the_data_key_keeps_secrets_and_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = basin_engine::EngineConfig::new(dir.path());
    let engine = basin_engine::Engine::open(config.clone()).await.unwrap();
    engine
        .put_secret("connection:pg:password", b"s3cret-pg-password")
        .await
        .unwrap();
    let old_key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    let catalog_bytes = std::fs::read(dir.path().join("catalog.db")).unwrap();
    assert!(
        !catalog_bytes
            .windows(18)
            .any(|w| w == b"s3cret-pg-password"),
        "the secret is stored in the clear"
    );
    let rotate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_basin"))
            .args(["--data-dir", dir.path().to_str().unwrap(), "rotate-key"])
            .output()
            .unwrap()
    };
    // Not while a server holds the directory (it keeps the key it started with).
    let refused = rotate();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("another Basin process"));
    engine.shutdown().await;
    drop(engine);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "rotate-key"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-sealed 2 secret(s)"));
    let new_key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert_ne!(old_key, new_key);

    let engine = basin_engine::Engine::open(config).await.unwrap();
    assert_eq!(
        engine
            .secret("connection:pg:password")
            .await
            .unwrap()
            .unwrap(),
        b"s3cret-pg-password"
    );
    assert!(engine.verify_audit().await.unwrap().valid);
    engine.shutdown().await;
}

#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_api() {
    use std::io::{BufRead, Read};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let admin_password = "log-test-root-password-9f2c";
    let mut child = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"])
        .args(["--data-dir", dir.path().to_str().unwrap(), "--log-format", "json"])
        .env("BASIN_ADMIN_PASSWORD", admin_password)
        .env(
            "BASIN_LOG_LEVEL",
            "info,basin_server=debug,basin_engine=debug,basin_http_api=debug,basin_flight_server=debug",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut flight_addr) = (String::new(), String::new());
    while flight_addr.is_empty() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server printed its addresses"
        );
        let line = line.trim();
        if let Some(http) = line.strip_prefix("http:") {
            base = http.trim().trim_end_matches("/api/v1").to_owned();
        } else if let Some(flight) = line.strip_prefix("flight:") {
            flight_addr = flight.trim().trim_start_matches("grpc://").to_owned();
        }
    }

    let mut secrets = vec![
        admin_password.to_owned(),
        "wrong-password-in-logs".to_owned(),
    ];
    let plain = reqwest::Client::new();
    let response = plain
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": "wrong-password-in-logs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let token = login(&base, "admin", admin_password).await;
    secrets.push(token.clone());
    let admin = client_with(&token);
    let user_password = "user-password-in-logs-7a1";
    let mut responses = Vec::new();
    let response = admin
        .post(format!("{base}/api/v1/users"))
        .json(&json!({"username": "bob", "email": "bob@example.com", "password": user_password, "role": "editor"}))
        .send()
        .await
        .unwrap();
    responses.push(response.text().await.unwrap());
    secrets.push(user_password.to_owned());
    let response = admin
        .post(format!("{base}/api/v1/api-keys"))
        .json(&json!({"name": "ci", "scopes": ["read", "write"]}))
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let key = created["data"]["secret"].as_str().unwrap().to_owned();
    secrets.push(key.clone());
    let keyed = client_with(&key);
    for path in [
        "/api/v1/auth/me",
        "/api/v1/api-keys",
        "/api/v1/users",
        "/api/v1/audit",
    ] {
        responses.push(
            admin
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    responses.push(
        keyed
            .post(format!("{base}/api/v1/query"))
            .json(&json!({"sql": "SELECT 1 AS one"}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let new_password = "changed-password-in-logs-3c";
    let response = admin
        .post(format!("{base}/api/v1/auth/password"))
        .json(&json!({"current_password": admin_password, "new_password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    secrets.push(new_password.to_owned());
    // Flight: Basic in the handshake, then the session it returns.
    let channel = Channel::from_shared(format!("http://{flight_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut flight = FlightSqlServiceClient::new(channel);
    let flight_token = flight.handshake("bob", user_password).await.unwrap();
    secrets.push(String::from_utf8_lossy(&flight_token).into_owned());
    flight.execute("SELECT 1".into(), None).await.unwrap();
    let data_key = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    secrets.push(data_key.trim().to_owned());

    child.kill().unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    logs.push_str(&rest);
    let _ = child.wait();
    assert!(
        logs.contains("created the first admin"),
        "logs were captured: {logs}"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        for response in &responses {
            assert!(
                !response.contains(secret.as_str()),
                "a secret is in a response: {response}"
            );
        }
    }
    for response in &responses {
        assert!(
            !response.contains("argon2") && !response.contains("secret_hash"),
            "{response}"
        );
    }
}

#[tokio::test]
async fn catalog_migrations_revert_and_reapply() {
    use basin_engine::catalog::{IdentityStore, SqliteCatalog};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    catalog.migrate_down_to(0).await.unwrap();
    drop(catalog);
    let catalog = SqliteCatalog::open(&path).await.unwrap();
    assert_eq!(catalog.count_users().await.unwrap(), 0);
}

#[tokio::test]
async fn anonymous_access_is_off_by_default_and_read_only_when_on() {
    let off = TestServer::with_orders().await;
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(off.url("/api/v1/datasets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let on = TestServer::start_with(|c| c.auth.anonymous = true).await;
    let (status, _) = on
        .upload("public_data", "mode=create", b"a\n1\n".to_vec())
        .await;
    assert_eq!(status, 201);
    let response = anonymous
        .get(on.url("/api/v1/datasets/public_data"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = anonymous
        .post(on.url("/api/v1/datasets/public_data/upload"))
        .body("a\n2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = anonymous.get(on.url("/api/v1/users")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // Connections read with their own credentials: not for anonymous callers.
    let (status, body) = on
        .post_json(
            "/api/v1/connections",
            json!({"name": "files", "type": "files",
                   "config": {"url": crate::common::testdata("order_refs.csv").to_string_lossy()}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = anonymous
        .get(on.url("/api/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = anonymous
        .post(on.url("/api/v1/query"))
        .json(&json!({"sql": "SELECT count(*) FROM files.public.order_refs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        400,
        "the catalog does not exist for them"
    );
    assert_eq!(
        on.rows("SELECT count(*) FROM files.public.order_refs")
            .await,
        [json!([4])]
    );
}

#[tokio::test]
async fn logins_sent_at_once_cannot_outrun_the_lockout() {
    let server = TestServer::start_with(|c| {
        c.auth.max_failed_logins = 3;
        c.auth.login_delay = Duration::from_millis(1);
    })
    .await;
    let client = reqwest::Client::new();
    let attempts = (0..20).map(|i| {
        client
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": format!("guess-number-{i}")}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
}

#[tokio::test]
async fn api_keys_cannot_mint_keys_that_outlive_them() {
    let server = TestServer::start().await;
    let (key, _) = create_key(
        &server,
        &server.token,
        json!({"name": "limited", "scopes": ["read", "write", "admin"], "datasets": ["orders"]}),
    )
    .await;
    let response = client_with(&key)
        .post(server.url("/api/v1/api-keys"))
        .json(&json!({"name": "escape", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
    // Nor change the owner's password.
    let response = client_with(&key)
        .post(server.url("/api/v1/auth/password"))
        .json(&json!({"current_password": ADMIN_PASSWORD, "new_password": "some other long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
