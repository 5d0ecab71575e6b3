//! JSON HTTP APIs as a source: one endpoint is one stream.
//!
//! Pages are fetched on demand as a scan pulls batches (a `LIMIT` stops the
//! paging), with page, offset, cursor or `Link`-header pagination. Records are
//! found by a JSON pointer; the schema is inferred from the first pages. A 429
//! or 5xx answer is retried after `Retry-After` or with exponential backoff
//! and jitter, up to `max_retries` times.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::json::reader::infer_json_schema_from_iterator;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::source::{
    Connector, FailureKind, Secret, Source, SourceEnv, StreamInfo, not_this_stream, parse_config,
};
use crate::{Error, Result};

/// The HTTP API connector.
#[derive(Debug, Default)]
pub struct JsonApi;

#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Auth {
    #[default]
    #[schemars(title = "None")]
    None,
    /// `Authorization: Bearer <value>`.
    #[schemars(title = "Bearer token")]
    Bearer { value: Secret },
    /// A header of the given name.
    #[schemars(title = "Header")]
    Header { name: String, value: Secret },
    /// A query parameter of the given name.
    #[schemars(title = "Query key")]
    Query { name: String, value: Secret },
    /// HTTP basic authentication.
    #[schemars(title = "Basic")]
    Basic {
        username: String,
        #[serde(default)]
        password: Option<Secret>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Pagination {
    /// One request.
    #[default]
    #[schemars(title = "None")]
    None,
    /// `?page=N&per_page=M`, from `start` until a short page.
    #[schemars(title = "Page number")]
    Page {
        #[serde(default = "page_param")]
        param: String,
        #[serde(default = "one")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default = "page_size")]
        size: u64,
    },
    /// `?offset=N&limit=M` until a short page.
    #[schemars(title = "Offset")]
    Offset {
        #[serde(default = "offset_param")]
        param: String,
        #[serde(default = "limit_param")]
        limit_param: String,
        #[serde(default = "page_size")]
        size: u64,
    },
    /// `?cursor=<value found at cursor_path>` until the cursor is missing.
    #[schemars(title = "Cursor")]
    Cursor {
        #[serde(default = "cursor_param")]
        param: String,
        /// JSON pointer of the next cursor in a response.
        cursor_path: String,
    },
    /// The `Link: <…>; rel="next"` header, until there is none.
    #[schemars(title = "Link header")]
    LinkHeader,
}

fn page_param() -> String {
    "page".into()
}
fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}
fn cursor_param() -> String {
    "cursor".into()
}
fn one() -> u64 {
    1
}
fn page_size() -> u64 {
    100
}
fn default_max_pages() -> u64 {
    1000
}
fn default_infer_pages() -> u64 {
    2
}
fn default_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "HTTP JSON API")]
struct Config {
    #[schemars(title = "Endpoint URL", url, extend("x-group" = "request"))]
    url: String,
    #[serde(default)]
    #[schemars(title = "Query parameters", extend("x-group" = "request"))]
    params: BTreeMap<String, String>,
    /// Not secret; put credentials in `auth`.
    #[serde(default)]
    #[schemars(title = "Headers", extend("x-group" = "request"))]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    #[schemars(title = "Authentication", extend("x-group" = "credentials"))]
    auth: Auth,
    /// JSON pointer of the array of records in a response (`/data`); empty for a body that is the array.
    #[serde(default)]
    #[schemars(title = "Records pointer", extend("x-group" = "response"))]
    records: String,
    #[serde(default)]
    #[schemars(title = "Pagination", extend("x-group" = "response"))]
    pagination: Pagination,
    #[serde(default = "default_max_pages")]
    #[schemars(range(min = 1), extend("x-group" = "advanced"))]
    max_pages: u64,
    #[serde(default = "default_infer_pages")]
    #[schemars(title = "Pages read to infer the schema", range(min = 1, max = 100), extend("x-group" = "advanced"))]
    infer_pages: u64,
    #[serde(default)]
    #[schemars(title = "Stream name", extend("x-group" = "advanced"))]
    stream: Option<String>,
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600), extend("x-group" = "advanced"))]
    timeout_secs: u64,
    #[serde(default = "default_retries")]
    #[schemars(range(max = 20), extend("x-group" = "advanced"))]
    max_retries: u32,
}

impl Config {
    fn stream_name(&self) -> String {
        if let Some(name) = &self.stream {
            return name.clone();
        }
        Url::parse(&self.url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_owned))
            })
            .map(|s| crate::sql_names::identifier_from(&s))
            .unwrap_or_else(|| "records".into())
    }
}

#[async_trait]
impl Connector for JsonApi {
    fn kind(&self) -> &'static str {
        "http_api"
    }

    fn title(&self) -> &'static str {
        "HTTP JSON API"
    }

    fn description(&self) -> &'static str {
        "Records from a paginated JSON HTTP endpoint."
    }

    fn spec(&self) -> Value {
        crate::spec::spec_of::<Config>()
    }

    fn destination_fields(&self) -> &'static [&'static str] {
        &["/url", "/auth/type", "/auth/name", "/auth/username"]
    }

    fn validate(&self, config: &Value) -> Result<()> {
        let config: Config = parse_config(config)?;
        let url = Url::parse(&config.url).map_err(|e| Error::config("/url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::config("/url", "the URL must be http or https"));
        }
        if !config.records.is_empty() && !config.records.starts_with('/') {
            return Err(Error::config("/records", "a JSON pointer starts with `/`"));
        }
        Ok(())
    }

    async fn connect(&self, raw: &Value, _env: &SourceEnv) -> Result<Arc<dyn Source>> {
        self.validate(raw)?;
        let config: Config = parse_config(raw)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(config.timeout_secs.clamp(1, 30)))
            .build()
            .map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
        Ok(Arc::new(ApiSource {
            stream: config.stream_name(),
            fetcher: Arc::new(Fetcher { config, client }),
            schema: tokio::sync::OnceCell::new(),
        }))
    }
}

/// Fetches pages with the configured auth, pagination and retries.
#[derive(Debug)]
struct Fetcher {
    config: Config,
    client: reqwest::Client,
}

/// Where the next page is.
#[derive(Debug, Clone)]
enum Next {
    /// The first request.
    Start,
    /// A page number or offset.
    Number(u64),
    /// A cursor value.
    Cursor(String),
    /// A full URL from a `Link` header.
    Url(String),
    /// No more pages.
    Done,
}

/// One fetched page.
struct Page {
    records: Vec<Value>,
    next: Next,
}

impl Fetcher {
    fn request_url(&self, next: &Next) -> Result<Url> {
        if let Next::Url(link) = next {
            let mut url =
                Url::parse(link).map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
            let base =
                Url::parse(&self.config.url).map_err(|e| Error::config("/url", e.to_string()))?;
            // Credentials go only where the connection points.
            if url.origin() != base.origin() {
                return Err(Error::source(
                    FailureKind::System,
                    "the API's next-page link leaves its origin; not followed",
                ));
            }
            if let Auth::Query { name, value } = &self.config.auth
                && !url.query_pairs().any(|(k, _)| k == name.as_str())
            {
                url.query_pairs_mut().append_pair(name, value.expose());
            }
            return Ok(url);
        }
        let mut url =
            Url::parse(&self.config.url).map_err(|e| Error::config("/url", e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in &self.config.params {
                query.append_pair(k, v);
            }
            if let Auth::Query { name, value } = &self.config.auth {
                query.append_pair(name, value.expose());
            }
            match (&self.config.pagination, next) {
                (
                    Pagination::Page {
                        param,
                        start,
                        size_param,
                        size,
                    },
                    _,
                ) => {
                    let page = match next {
                        Next::Number(n) => *n,
                        _ => *start,
                    };
                    query.append_pair(param, &page.to_string());
                    if let Some(size_param) = size_param {
                        query.append_pair(size_param, &size.to_string());
                    }
                }
                (
                    Pagination::Offset {
                        param,
                        limit_param,
                        size,
                    },
                    _,
                ) => {
                    let offset = match next {
                        Next::Number(n) => *n,
                        _ => 0,
                    };
                    query.append_pair(param, &offset.to_string());
                    query.append_pair(limit_param, &size.to_string());
                }
                (Pagination::Cursor { param, .. }, Next::Cursor(cursor)) => {
                    query.append_pair(param, cursor);
                }
                _ => {}
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    async fn send(&self, url: Url) -> Result<reqwest::Response> {
        let mut attempt = 0u32;
        loop {
            let mut request = self.client.get(url.clone());
            for (k, v) in &self.config.headers {
                request = request.header(k, v);
            }
            request = match &self.config.auth {
                Auth::Bearer { value } => request.bearer_auth(value.expose()),
                Auth::Header { name, value } => request.header(name, value.expose()),
                Auth::Basic { username, password } => {
                    request.basic_auth(username, password.as_ref().map(Secret::expose))
                }
                Auth::None | Auth::Query { .. } => request,
            };
            let response = request.send().await.map_err(request_error)?;
            let status = response.status();
            let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if retryable && attempt < self.config.max_retries {
                let wait = retry_after(&response).unwrap_or_else(|| backoff(attempt));
                tracing::debug!(%status, attempt, wait_ms = wait.as_millis() as u64, "retrying API request");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return match status {
                s if s.is_success() => Ok(response),
                StatusCode::UNAUTHORIZED => Err(Error::source(
                    FailureKind::Auth,
                    format!("the API refused the credentials ({status})"),
                )),
                StatusCode::FORBIDDEN => Err(Error::source(
                    FailureKind::Permission,
                    format!("the API denied access ({status})"),
                )),
                StatusCode::NOT_FOUND => Err(Error::config(
                    "/url",
                    format!(
                        "the API answered {status} for {}",
                        redact(&url, &self.config.auth)
                    ),
                )),
                s if s.is_client_error() => Err(Error::source(
                    FailureKind::Config,
                    format!("the API answered {status}"),
                )),
                _ => Err(Error::source(
                    FailureKind::System,
                    format!("the API answered {status} after {attempt} retries"),
                )),
            };
        }
    }

    async fn page(&self, next: &Next) -> Result<Page> {
        let url = self.request_url(next)?;
        let response = self.send(url.clone()).await?;
        // `Link` targets may be relative to the page that named them.
        let link_next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
            .and_then(|target| url.join(&target).ok())
            .map(String::from);
        let body: Value = response.json().await.map_err(|e| {
            Error::source(
                FailureKind::System,
                format!("the API's answer is not JSON: {e}"),
            )
        })?;
        let records = if self.config.records.is_empty() {
            &body
        } else {
            body.pointer(&self.config.records).ok_or_else(|| {
                Error::config(
                    "/records",
                    format!("the answer has nothing at {}", self.config.records),
                )
            })?
        };
        let records = match records {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        };
        let count = records.len() as u64;
        let next = match (&self.config.pagination, next) {
            (Pagination::None, _) => Next::Done,
            (Pagination::Page { start, size, .. }, previous) => {
                let current = match previous {
                    Next::Number(n) => *n,
                    _ => *start,
                };
                if count < *size || count == 0 {
                    Next::Done
                } else {
                    Next::Number(current + 1)
                }
            }
            (Pagination::Offset { size, .. }, previous) => {
                let current = match previous {
                    Next::Number(n) => *n,
                    _ => 0,
                };
                if count < *size || count == 0 {
                    Next::Done
                } else {
                    Next::Number(current + count)
                }
            }
            (Pagination::Cursor { cursor_path, .. }, _) => match body.pointer(cursor_path) {
                Some(Value::String(s)) if !s.is_empty() && count > 0 => Next::Cursor(s.clone()),
                Some(Value::Number(n)) if count > 0 => Next::Cursor(n.to_string()),
                _ => Next::Done,
            },
            (Pagination::LinkHeader, _) => link_next.map_or(Next::Done, Next::Url),
        };
        Ok(Page { records, next })
    }
}

/// The `rel="next"` target of a `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(300)))
}

/// 0.5 s, 1 s, 2 s … up to 30 s, each with up to 50 % random jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.saturating_pow(attempt.min(6));
    let base = base.min(Duration::from_secs(30));
    let jitter = rand::random::<f64>() * 0.5;
    base.mul_f64(1.0 + jitter)
}

fn redact(url: &Url, auth: &Auth) -> String {
    let mut shown = url.clone();
    if let Auth::Query { name, .. } = auth {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == name.as_str() {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

fn request_error(err: reqwest::Error) -> Error {
    let kind = if err.is_timeout() {
        FailureKind::Timeout
    } else if err.is_connect() {
        FailureKind::Network
    } else {
        FailureKind::System
    };
    // reqwest's message includes the URL, which may carry a query key.
    Error::source(kind, err.without_url().to_string())
}

/// An opened API endpoint.
#[derive(Debug)]
struct ApiSource {
    stream: String,
    fetcher: Arc<Fetcher>,
    /// Inferred once per opened source (a changed connection opens a new one).
    schema: tokio::sync::OnceCell<SchemaRef>,
}

impl ApiSource {
    async fn schema(&self) -> Result<SchemaRef> {
        self.schema.get_or_try_init(|| self.infer()).await.cloned()
    }

    /// The schema of the records of the first `infer_pages` pages.
    async fn infer(&self) -> Result<SchemaRef> {
        let mut next = Next::Start;
        let mut records = Vec::new();
        for _ in 0..self.fetcher.config.infer_pages.max(1) {
            if matches!(next, Next::Done) {
                break;
            }
            let page = self.fetcher.page(&next).await?;
            records.extend(page.records);
            next = page.next;
        }
        if records.is_empty() {
            return Err(Error::config(
                "/records",
                "the first pages hold no records to infer a schema from",
            ));
        }
        if let Some(bad) = records.iter().position(|r| !r.is_object()) {
            return Err(Error::config(
                "/records",
                format!("record {bad} is not a JSON object"),
            ));
        }
        let schema = infer_json_schema_from_iterator(records.iter().map(|v| Ok(v.clone())))?;
        Ok(Arc::new(schema))
    }
}

#[async_trait]
impl Source for ApiSource {
    async fn check(&self) -> Result<()> {
        self.fetcher.page(&Next::Start).await.map(|_| ())
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>> {
        let schema = self.schema().await?;
        Ok(vec![StreamInfo::single(
            &self.stream,
            "endpoint",
            &schema,
            |_| "json".into(),
        )])
    }

    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>> {
        if stream != self.stream {
            return Err(not_this_stream(stream, &self.stream));
        }
        let schema = self.schema().await?;
        let partition = ApiPartition {
            schema: schema.clone(),
            fetcher: self.fetcher.clone(),
        };
        Ok(Arc::new(StreamingTable::try_new(
            schema,
            vec![Arc::new(partition)],
        )?))
    }
}

/// The endpoint's pages as one partition, fetched as the scan pulls.
#[derive(Debug)]
struct ApiPartition {
    schema: SchemaRef,
    fetcher: Arc<Fetcher>,
}

impl PartitionStream for ApiPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let fetcher = self.fetcher.clone();
        let max_pages = fetcher.config.max_pages;
        let pages = futures::stream::try_unfold((Next::Start, 0u64), move |(next, fetched)| {
            let fetcher = fetcher.clone();
            let schema = schema.clone();
            async move {
                if matches!(next, Next::Done) {
                    return Ok(None);
                }
                if fetched >= max_pages {
                    // Stopping quietly would pass a partial read off as complete.
                    return Err(datafusion::error::DataFusionError::External(Box::new(
                        Error::config(
                            "/max_pages",
                            format!("the API has more than {max_pages} pages; raise max_pages"),
                        ),
                    )));
                }
                let page = fetcher
                    .page(&next)
                    .await
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                let batch = decode(&schema, &page.records)?;
                Ok(Some((batch, (page.next, fetched + 1))))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), pages))
    }
}

/// Decodes records into a batch of `schema`; fields the schema lacks are ignored.
fn decode(schema: &SchemaRef, records: &[Value]) -> datafusion::error::Result<RecordBatch> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()?;
    decoder.serialize(records)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn link_headers_give_the_next_page() {
        let header = r#"<https://api.example/items?page=1>; rel="prev", <https://api.example/items?page=3>; rel="next""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.example/items?page=3")
        );
        assert_eq!(next_link(r#"<https://x/1>; rel="last""#), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= Duration::from_millis(500));
        assert!(backoff(0) <= Duration::from_millis(750));
        assert!(backoff(10) <= Duration::from_secs(45));
    }

    #[test]
    fn query_keys_are_redacted() {
        let url = Url::parse("http://h/x?key=secret&page=2").unwrap();
        let auth = Auth::Query {
            name: "key".into(),
            value: serde_json::from_value(json!("secret")).unwrap(),
        };
        assert_eq!(format!("{auth:?}").matches("secret").count(), 0);
        let shown = redact(&url, &auth);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("page=2"));
    }
}
