use std::path::PathBuf;
use std::time::Duration;

use basin_server::{Application, Config};
use serde_json::Value;

/// A server started for one test, stopped when dropped.
pub(crate) struct TestServer {
    pub base: String,
    pub flight_addr: std::net::SocketAddr,
    /// An admin's session token.
    pub token: String,
    /// A client presenting [`TestServer::token`].
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// The first admin's password on test servers.
pub(crate) const ADMIN_PASSWORD: &str = "test-root-password-0123";

/// An HTTP client presenting `token` as a bearer token.
pub(crate) fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Signs in at the server at `base`; the session token.
pub(crate) async fn login(base: &str, username: &str, password: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 200, "login as {username}: {body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

pub(crate) fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

pub(crate) fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.flight.addr = "127.0.0.1:0".parse().unwrap();
    config.auth.admin_password = Some(ADMIN_PASSWORD.into());
    // Tests hammer one server from one address; the rate-limit test turns limits on.
    config.rate_limit.per_ip = 0;
    config.rate_limit.per_user = 0;
    config.ingest.allowed_roots = vec![testdata("")];
    config
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(std::env::var("TEST_LOG").unwrap())
                .with_test_writer()
                .try_init();
        }
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = test_config(data_dir.path());
        adjust(&mut config);
        let app = Application::build(config).await.expect("server builds");
        let base = format!("http://{}", app.http_addr());
        let flight_addr = app.flight_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let token = login(&base, "admin", ADMIN_PASSWORD).await;
        Self {
            base,
            flight_addr,
            client: client_with(&token),
            token,
            data_dir,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A server holding `orders` (testdata/orders.csv, malformed rows skipped).
    pub(crate) async fn with_orders() -> Self {
        let server = Self::start().await;
        let (status, body) = server
            .upload_file("orders", "on_error=skip", "orders.csv")
            .await;
        assert_eq!(status, 201, "{body}");
        server
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        split(response).await
    }

    pub(crate) async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub(crate) async fn upload(&self, dataset: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/datasets/{dataset}/upload?{query}")))
            .body(body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub(crate) async fn upload_file(
        &self,
        dataset: &str,
        query: &str,
        fixture: &str,
    ) -> (u16, Value) {
        self.upload(dataset, query, std::fs::read(testdata(fixture)).unwrap())
            .await
    }

    /// Rows of `sql` as JSON arrays.
    pub(crate) async fn rows(&self, sql: &str) -> Vec<Value> {
        let (status, body) = self
            .post_json("/api/v1/query", serde_json::json!({ "sql": sql }))
            .await;
        assert_eq!(status, 200, "{sql}: {body}");
        body["data"]["rows"].as_array().unwrap().clone()
    }

    pub(crate) async fn wait_job(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (_, body) = self.get(&format!("/api/v1/jobs/{id}")).await;
            let status = body["data"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if ["succeeded", "failed", "canceled"].contains(&status.as_str()) {
                return body["data"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// The door an audit entry records (its details are JSON text).
pub(crate) fn door_of(entry: &Value) -> String {
    let details: Value =
        serde_json::from_str(entry["details"].as_str().expect("details text")).expect("JSON");
    details["door"].as_str().unwrap_or_default().to_owned()
}

pub(crate) fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
