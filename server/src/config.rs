//! The one typed configuration: `basin.toml`, then `BASIN_*` environment
//! variables, then command-line flags, each overriding the one before.
//! Unknown keys and bad values stop startup with a message naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::{Table, Value};

/// Errors found while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or its value is invalid.
    #[error("config key `{key}`: {message}")]
    Key {
        /// The key, dotted (`http.addr`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable starts with `BASIN_` but names no key.
    #[error("unknown environment variable {0}; known: {known}", known = env_names().join(", "))]
    UnknownEnv(String),
}

/// Every key, in dotted form; each may be set as `BASIN_<KEY>` with dots as underscores.
pub const KEYS: &[&str] = &[
    "data_dir",
    "http.addr",
    "http.body_limit",
    "http.request_timeout",
    "http.shutdown_timeout",
    "http.max_json_depth",
    "http.cors_origins",
    "http.cookie_secure",
    "flight.addr",
    "flight.tls_cert",
    "flight.tls_key",
    "auth.admin_password",
    "auth.anonymous",
    "auth.session_idle_timeout",
    "auth.session_max_age",
    "auth.max_failed_logins",
    "auth.lockout",
    "auth.login_delay",
    "rate_limit.per_ip",
    "rate_limit.per_ip_burst",
    "rate_limit.per_user",
    "rate_limit.per_user_burst",
    "secrets.key",
    "ingest.allowed_roots",
    "ingest.allowed_urls",
    "ingest.max_bytes",
    "query.memory_limit",
    "query.timeout",
    "query.result_cache",
    "query.acceleration",
    "pipelines.max_parallel_steps",
    "pipelines.event_retention",
    "pipelines.ws_heartbeat",
    "log.format",
    "log.level",
];

/// The variable naming the config file, read before everything else.
pub const CONFIG_FILE_ENV: &str = "BASIN_CONFIG";

/// Keys whose variable is not the mechanical `BASIN_<KEY>`: the names people look for.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("auth.admin_password", "BASIN_ADMIN_PASSWORD"),
    ("secrets.key", "BASIN_SECRETS_KEY"),
];

/// Variables read by the command line, not the server, and so not config keys.
pub const CLIENT_ENV: &[&str] = &["BASIN_TOKEN"];

fn env_name(key: &str) -> String {
    if let Some((_, name)) = ENV_ALIASES.iter().find(|(k, _)| *k == key) {
        return (*name).to_owned();
    }
    format!("BASIN_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn env_names() -> Vec<String> {
    let mut names: Vec<String> = KEYS.iter().map(|k| env_name(k)).collect();
    names.push(CONFIG_FILE_ENV.into());
    names.extend(CLIENT_ENV.iter().map(|n| (*n).to_owned()));
    names
}

/// Basin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Catalog, datasets and temporary files live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The REST API.
    #[serde(default)]
    pub http: HttpConfig,
    /// Arrow Flight SQL.
    #[serde(default)]
    pub flight: FlightConfig,
    /// Users, sessions, login protection.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request rate limits.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// The data key secrets are sealed with.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Ingest limits.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Query limits.
    #[serde(default)]
    pub query: QueryConfig,
    /// Pipeline runs and their events.
    #[serde(default)]
    pub pipelines: PipelinesConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port.
    #[serde(default = "default_http_addr")]
    pub addr: SocketAddr,
    /// Largest request body, uploads included (`"1GiB"`, `"512MB"` or bytes).
    #[serde(default = "default_body_limit", deserialize_with = "byte_size")]
    pub body_limit: u64,
    /// Deadline of ordinary requests (`"30s"`).
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Deepest nesting a JSON request body may have.
    #[serde(default = "default_json_depth", deserialize_with = "count")]
    pub max_json_depth: u32,
    /// Origins browsers may call the API from (CORS, with credentials).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Mark the session cookie `Secure`; set it when clients reach Basin over HTTPS.
    #[serde(default, deserialize_with = "flag")]
    pub cookie_secure: bool,
}

/// `[flight]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightConfig {
    /// Listen address; port 0 picks a free port.
    #[serde(default = "default_flight_addr")]
    pub addr: SocketAddr,
    /// PEM certificate chain; with `tls_key`, Flight is served over TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// `[auth]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The first admin's password (`BASIN_ADMIN_PASSWORD`); generated and shown once when absent.
    #[serde(default)]
    pub admin_password: Option<String>,
    /// Let callers without credentials read, as the `anonymous` viewer.
    #[serde(default, deserialize_with = "flag")]
    pub anonymous: bool,
    /// A session ends this long after its last use.
    #[serde(default = "default_session_idle", deserialize_with = "duration")]
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, however much it is used.
    #[serde(default = "default_session_max_age", deserialize_with = "duration")]
    pub session_max_age: Duration,
    /// Failed logins in a row before the username is locked.
    #[serde(default = "default_max_failed_logins", deserialize_with = "count")]
    pub max_failed_logins: u32,
    /// How long a locked username stays locked.
    #[serde(default = "default_lockout", deserialize_with = "duration")]
    pub lockout: Duration,
    /// Delay after the first failed login; it doubles with each failure (at most 5 s).
    #[serde(default = "default_login_delay", deserialize_with = "duration")]
    pub login_delay: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("anonymous", &self.anonymous)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_max_age", &self.session_max_age)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("lockout", &self.lockout)
            .field("login_delay", &self.login_delay)
            .finish()
    }
}

/// `[rate_limit]`: token buckets; a rate of 0 turns that limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second from one client address.
    #[serde(default = "default_rate", deserialize_with = "count")]
    pub per_ip: u32,
    /// Requests one address may send at once after a quiet spell.
    #[serde(default = "default_burst", deserialize_with = "count")]
    pub per_ip_burst: u32,
    /// Requests per second by one user (or API key owner).
    #[serde(default = "default_rate", deserialize_with = "count")]
    pub per_user: u32,
    /// Requests one user may send at once after a quiet spell.
    #[serde(default = "default_burst", deserialize_with = "count")]
    pub per_user_burst: u32,
}

/// `[secrets]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The data key (base64 of 32 bytes, `BASIN_SECRETS_KEY`); the key file
    /// `<data_dir>/secret.key` (generated on first start) when absent.
    #[serde(default)]
    pub key: Option<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Directories `POST /datasets` may read server-side files from; empty refuses all.
    #[serde(default)]
    pub allowed_roots: Vec<PathBuf>,
    /// URL prefixes `POST /datasets` may download from; empty refuses all.
    #[serde(default)]
    pub allowed_urls: Vec<String>,
    /// Largest decompressed input.
    #[serde(default = "default_max_ingest", deserialize_with = "byte_size")]
    pub max_bytes: u64,
}

/// `[query]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Memory all running queries may hold together; unlimited when absent.
    #[serde(default, deserialize_with = "optional_byte_size")]
    pub memory_limit: Option<u64>,
    /// Default query deadline.
    #[serde(default = "default_query_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Memory for answers kept by the versions of the datasets they read; `0` turns the cache off.
    #[serde(default = "default_result_cache", deserialize_with = "size_or_off")]
    pub result_cache: u64,
    /// Memory for decoded dataset versions read often enough; `0` (the default) turns acceleration off.
    #[serde(default, deserialize_with = "size_or_off")]
    pub acceleration: u64,
}

/// `[pipelines]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// Most steps of one run at once, unless the pipeline sets `max_parallel`.
    #[serde(default = "default_parallel_steps")]
    pub max_parallel_steps: usize,
    /// How long events are kept for WebSocket clients catching up with a cursor.
    #[serde(default = "default_event_retention", deserialize_with = "duration")]
    pub event_retention: Duration,
    /// How often the WebSocket sends a heartbeat.
    #[serde(default = "default_ws_heartbeat", deserialize_with = "duration")]
    pub ws_heartbeat: Duration,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        Self {
            max_parallel_steps: default_parallel_steps(),
            event_retention: default_event_retention(),
            ws_heartbeat: default_ws_heartbeat(),
        }
    }
}

fn default_parallel_steps() -> usize {
    4
}
fn default_event_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_ws_heartbeat() -> Duration {
    Duration::from_secs(15)
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// For people.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter (`info`, `basin=debug,info`).
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./basin-data")
}
fn default_http_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_flight_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_body_limit() -> u64 {
    1 << 30
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_ingest() -> u64 {
    64 << 30
}
fn default_result_cache() -> u64 {
    basin_engine::DEFAULT_RESULT_CACHE_BYTES
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_json_depth() -> u32 {
    32
}
fn default_session_idle() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_session_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_max_failed_logins() -> u32 {
    5
}
fn default_lockout() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_login_delay() -> Duration {
    Duration::from_millis(250)
}
fn default_rate() -> u32 {
    100
}
fn default_burst() -> u32 {
    200
}
fn default_log_level() -> String {
    // Basin's own events at info; the libraries' (delta-rs logs every snapshot) at warn.
    "warn,basin_server=info,basin_engine=info,basin_http_api=info,basin_flight_server=info,basin_connectors=info".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
            body_limit: default_body_limit(),
            request_timeout: default_request_timeout(),
            shutdown_timeout: default_shutdown_timeout(),
            max_json_depth: default_json_depth(),
            cors_origins: Vec::new(),
            cookie_secure: false,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_password: None,
            anonymous: false,
            session_idle_timeout: default_session_idle(),
            session_max_age: default_session_max_age(),
            max_failed_logins: default_max_failed_logins(),
            lockout: default_lockout(),
            login_delay: default_login_delay(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip: default_rate(),
            per_ip_burst: default_burst(),
            per_user: default_rate(),
            per_user_burst: default_burst(),
        }
    }
}

impl Default for FlightConfig {
    fn default() -> Self {
        Self {
            addr: default_flight_addr(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            allowed_roots: Vec::new(),
            allowed_urls: Vec::new(),
            max_bytes: default_max_ingest(),
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit: None,
            timeout: default_query_timeout(),
            result_cache: default_result_cache(),
            acceleration: 0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            http: HttpConfig::default(),
            flight: FlightConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            secrets: SecretsConfig::default(),
            ingest: IngestConfig::default(),
            query: QueryConfig::default(),
            pipelines: PipelinesConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// Parses a size as bytesize reads it (`"1GiB"`, `"512MB"`, `"64k"`,
/// `"1.5GiB"`) or a plain number of bytes.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let bytes = text
        .trim()
        .parse::<bytesize::ByteSize>()
        .map_err(|_| {
            format!(
                "invalid size {text:?}: write a number of bytes or a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            )
        })?
        .as_u64();
    if bytes == 0 {
        return Err(format!("size {text:?} must be positive"));
    }
    Ok(bytes)
}

/// Parses a duration in the grammar every Basin duration uses (humantime's:
/// `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"7d"`), or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("invalid duration {text:?}: {e}"))?,
    };
    if duration.is_zero() {
        return Err(format!("duration {text:?} must be positive"));
    }
    Ok(duration)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(0) => Err(serde::de::Error::custom("size must be positive")),
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) => parse_byte_size(&t).map_err(serde::de::Error::custom),
    }
}

/// A size that may be `0` (or `"0"`), which turns what it sizes off.
fn size_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => Ok(n),
        NumberOrText::Text(t) if t.trim() == "0" => Ok(0),
        NumberOrText::Text(t) => parse_byte_size(&t).map_err(serde::de::Error::custom),
    }
}

/// A count: a number, or text holding one (environment values are text).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(n) => u32::try_from(n).map_err(serde::de::Error::custom),
        NumberOrText::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid number {t:?}"))),
    }
}

/// A flag: a boolean, or `true`/`false`/`1`/`0` as text.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }
    match BoolOrText::deserialize(d)? {
        BoolOrText::Bool(b) => Ok(b),
        BoolOrText::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(serde::de::Error::custom(format!(
                "expected true or false, got {t:?}"
            ))),
        },
    }
}

fn optional_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match NumberOrText::deserialize(d)? {
        NumberOrText::Number(0) => Err(serde::de::Error::custom("duration must be positive")),
        NumberOrText::Number(n) => Ok(Duration::from_secs(n)),
        NumberOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
    }
}

/// Values set on the command line, by dotted key.
pub type Overrides = Vec<(&'static str, String)>;

impl Config {
    /// Loads the configuration: the file (if any), then the environment, then `overrides`.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let file = file.map(PathBuf::from).or_else(|| {
            env.iter()
                .find(|(k, _)| k == CONFIG_FILE_ENV)
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut table = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                text.parse::<Table>().map_err(|e| ConfigError::Syntax {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => Table::new(),
        };
        for (name, value) in &env {
            if !name.starts_with("BASIN_")
                || name == CONFIG_FILE_ENV
                || CLIENT_ENV.contains(&name.as_str())
            {
                continue;
            }
            let key = KEYS
                .iter()
                .find(|k| env_name(k) == *name)
                .ok_or_else(|| ConfigError::UnknownEnv(name.clone()))?;
            set(&mut table, key, env_value(key, value));
        }
        for (key, value) in overrides {
            set(&mut table, key, Value::String(value.clone()));
        }
        let config: Config =
            serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
                ConfigError::Key {
                    key: e.path().to_string(),
                    message: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.pipelines.max_parallel_steps == 0 {
            return Err(ConfigError::Key {
                key: "pipelines.max_parallel_steps".into(),
                message: "must be at least 1".into(),
            });
        }
        if self.pipelines.ws_heartbeat.is_zero() {
            return Err(ConfigError::Key {
                key: "pipelines.ws_heartbeat".into(),
                message: "must be longer than zero".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Key {
                key: "data_dir".into(),
                message: "must not be empty".into(),
            });
        }
        for root in &self.ingest.allowed_roots {
            if !root.is_dir() {
                return Err(ConfigError::Key {
                    key: "ingest.allowed_roots".into(),
                    message: format!("{} is not a directory", root.display()),
                });
            }
        }
        match (&self.flight.tls_cert, &self.flight.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                let missing = if self.flight.tls_cert.is_none() {
                    "flight.tls_cert"
                } else {
                    "flight.tls_key"
                };
                return Err(ConfigError::Key {
                    key: missing.into(),
                    message: "TLS needs both flight.tls_cert and flight.tls_key".into(),
                });
            }
            (Some(cert), Some(key)) => {
                for (name, path) in [("flight.tls_cert", cert), ("flight.tls_key", key)] {
                    if !path.is_file() {
                        return Err(ConfigError::Key {
                            key: name.into(),
                            message: format!("{} is not a file", path.display()),
                        });
                    }
                }
            }
            (None, None) => {}
        }
        if let Err(e) = basin_connectors::http::UrlAllowlist::new(&self.ingest.allowed_urls) {
            return Err(ConfigError::Key {
                key: "ingest.allowed_urls".into(),
                message: e.to_string(),
            });
        }
        if let Some(password) = &self.auth.admin_password
            && let Err(e) = basin_engine::identity::password::check_policy("admin", password)
        {
            return Err(ConfigError::Key {
                key: "auth.admin_password".into(),
                message: e.to_string(),
            });
        }
        if let Some(key) = &self.secrets.key
            && basin_engine::identity::secrets::DataKey::from_base64(key).is_err()
        {
            return Err(ConfigError::Key {
                key: "secrets.key".into(),
                message: "must be base64 of 32 bytes (e.g. `openssl rand -base64 32`)".into(),
            });
        }
        if self.auth.max_failed_logins == 0 {
            return Err(ConfigError::Key {
                key: "auth.max_failed_logins".into(),
                message: "must be at least 1".into(),
            });
        }
        if self.http.max_json_depth == 0 {
            return Err(ConfigError::Key {
                key: "http.max_json_depth".into(),
                message: "must be at least 1".into(),
            });
        }
        for origin in &self.http.cors_origins {
            let valid =
                url::Url::parse(origin).is_ok_and(|u| u.origin().ascii_serialization() == *origin);
            if !valid {
                return Err(ConfigError::Key {
                    key: "http.cors_origins".into(),
                    message: format!(
                        "{origin:?} is not an origin (scheme://host[:port], no path or trailing slash)"
                    ),
                });
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::Key {
                key: "log.level".into(),
                message: e.to_string(),
            });
        }
        Ok(())
    }
}

/// Environment values are text; numbers stay text (the parsers accept both) and lists split on commas.
fn env_value(key: &str, raw: &str) -> Value {
    if key == "ingest.allowed_roots" || key == "ingest.allowed_urls" || key == "http.cors_origins" {
        return Value::Array(
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.trim().into()))
                .collect(),
        );
    }
    Value::String(raw.to_owned())
}

fn set(table: &mut Table, dotted: &str, value: Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().unwrap_or(dotted);
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        current = next;
    }
    current.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)], overrides: Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basin.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(&path), env, &overrides)
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let config = Config::load(None, Vec::new(), &Vec::new()).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./basin-data"));
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.flight.addr.to_string(), "127.0.0.1:50051");
        assert!(config.auth.admin_password.is_none());
        assert!(!config.auth.anonymous);
    }

    #[test]
    fn flight_tls_auth_and_url_settings_are_checked() {
        let err = load(
            "[flight]\ntls_cert = \"/nonexistent.pem\"\n",
            &[],
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("config key `flight.tls_key`"), "{err}");
        let err = load("", &[("BASIN_ADMIN_PASSWORD", "short")], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `auth.admin_password`"), "{err}");
        let err = load("", &[("BASIN_SECRETS_KEY", "c2hvcnQ=")], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `secrets.key`"), "{err}");
        let err = load(
            "[http]\ncors_origins = [\"https://app.example/\"]\n",
            &[],
            Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("config key `http.cors_origins`"), "{err}");
        let err = load("[ingest]\nallowed_urls = [\"ftp://x/\"]\n", &[], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `ingest.allowed_urls`"), "{err}");
        let config = load(
            "",
            &[
                ("BASIN_FLIGHT_ADDR", "127.0.0.1:0"),
                (
                    "BASIN_INGEST_ALLOWED_URLS",
                    "http://127.0.0.1:9/a/,https://example.com/",
                ),
            ],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(config.flight.addr.port(), 0);
        assert_eq!(config.ingest.allowed_urls.len(), 2);
        // Secrets never show in debug output; flags and counts read from text.
        let config = load(
            "",
            &[
                ("BASIN_ADMIN_PASSWORD", "a-long-enough-secret"),
                ("BASIN_AUTH_ANONYMOUS", "true"),
                ("BASIN_AUTH_MAX_FAILED_LOGINS", "3"),
                ("BASIN_TOKEN", "read by the CLI, ignored here"),
            ],
            Vec::new(),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("a-long-enough-secret"));
        assert!(config.auth.anonymous);
        assert_eq!(config.auth.max_failed_logins, 3);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let config = load(
            "data_dir = \"/from/file\"\n[http]\naddr = \"127.0.0.1:1\"\nbody_limit = \"2MiB\"\n",
            &[
                ("BASIN_HTTP_ADDR", "127.0.0.1:2"),
                ("BASIN_DATA_DIR", "/from/env"),
            ],
            vec![("data_dir", "/from/flag".into())],
        )
        .unwrap();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:2");
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.http.body_limit, 2 << 20);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load("[http]\nadress = \"x\"\n", &[], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("adress"), "{err}");
        let err = load("", &[("BASIN_HTTP_ADRESS", "x")], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("BASIN_HTTP_ADRESS"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load("[http]\naddr = \"nowhere\"\n", &[], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `http.addr`"), "{err}");
        let err = load("", &[("BASIN_QUERY_TIMEOUT", "soon")], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `query.timeout`"), "{err}");
        let err = load("[query]\nmemory_limit = \"12 parsecs\"\n", &[], Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config key `query.memory_limit`"), "{err}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_byte_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_byte_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0s").is_err());
    }
}

/// The key list is the config type: every leaf of [`Config`], found by
/// deserializing it one path at a time, is in [`KEYS`], and nothing else is.
#[cfg(test)]
mod key_list {
    use std::cell::RefCell;
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

    use super::{Config, KEYS};

    /// Ends every probe: what it found is recorded beside it.
    #[derive(Debug)]
    struct Stop;

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe done")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    /// What is at a path: a struct with these fields, or a value.
    enum Found {
        Struct(&'static [&'static str]),
        Leaf,
    }

    /// A deserializer that walks down `path`, one map entry per level, and
    /// records what the type asks for at its end.
    struct Probe<'a> {
        path: &'a [&'static str],
        found: &'a RefCell<Option<Found>>,
    }

    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            if self.path.is_empty() {
                *self.found.borrow_mut() = Some(Found::Leaf);
            }
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Stop> {
            match self.path.split_first() {
                None => {
                    *self.found.borrow_mut() = Some(Found::Struct(fields));
                    Err(Stop)
                }
                Some((key, rest)) => visitor.visit_map(OneEntry {
                    key: Some(key),
                    value: Some(Probe {
                        path: rest,
                        found: self.found,
                    }),
                }),
            }
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    /// A map of the one entry a probe walks through.
    struct OneEntry<'a> {
        key: Option<&'static str>,
        value: Option<Probe<'a>>,
    }

    impl<'de> MapAccess<'de> for OneEntry<'_> {
        type Error = Stop;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Stop> {
            match self.key.take() {
                Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
                None => Ok(None),
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
            seed.deserialize(self.value.take().ok_or(Stop)?)
        }
    }

    fn leaves() -> Vec<String> {
        let mut leaves = Vec::new();
        let mut paths: Vec<Vec<&'static str>> = vec![Vec::new()];
        while let Some(path) = paths.pop() {
            let found = RefCell::new(None);
            let _ = Config::deserialize(Probe {
                path: &path,
                found: &found,
            });
            match found.into_inner() {
                Some(Found::Struct(fields)) => {
                    for field in fields {
                        let mut child = path.clone();
                        child.push(field);
                        paths.push(child);
                    }
                }
                Some(Found::Leaf) => leaves.push(path.join(".")),
                None => panic!("the probe found nothing at {path:?}"),
            }
        }
        leaves.sort();
        leaves
    }

    #[test]
    fn every_leaf_of_the_config_type_is_a_listed_key() {
        let mut keys: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
        keys.sort();
        assert_eq!(leaves(), keys);
    }
}
