use std::path::PathBuf;
use std::time::Duration;

use basin_server::{Application, Config};
use serde_json::Value;

/// A server started for one test, stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub flight_addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// The access token test servers accept.
pub const TOKEN: &str = "test-token-0123456789";

/// An HTTP client presenting [`TOKEN`].
pub fn authed_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.flight.addr = "127.0.0.1:0".parse().unwrap();
    config.auth.token = Some(TOKEN.into());
    config.ingest.allowed_roots = vec![testdata("")];
    config
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
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
        Self {
            base,
            flight_addr,
            client: authed_client(),
            data_dir,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A server holding `orders` (testdata/orders.csv, malformed rows skipped).
    pub async fn with_orders() -> Self {
        let server = Self::start().await;
        let (status, body) = server
            .upload_file("orders", "on_error=skip", "orders.csv")
            .await;
        assert_eq!(status, 201, "{body}");
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        split(response).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub async fn upload(&self, dataset: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/datasets/{dataset}/upload?{query}")))
            .body(body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub async fn upload_file(&self, dataset: &str, query: &str, fixture: &str) -> (u16, Value) {
        self.upload(dataset, query, std::fs::read(testdata(fixture)).unwrap())
            .await
    }

    /// Rows of `sql` as JSON arrays.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let (status, body) = self
            .post_json("/api/v1/query", serde_json::json!({ "sql": sql }))
            .await;
        assert_eq!(status, 200, "{sql}: {body}");
        body["data"]["rows"].as_array().unwrap().clone()
    }

    pub async fn wait_job(&self, id: &str) -> Value {
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

    pub async fn stop(mut self) {
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

pub async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
