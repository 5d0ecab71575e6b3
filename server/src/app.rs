//! Startup: [`Application::build`] opens the engine and binds the listeners
//! (REST and Flight SQL; port 0 works, for tests), [`Application::run_until`]
//! serves until told to stop and then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::serve::ListenerExt;
use basin_engine::identity::AuthSettings;
use basin_engine::identity::secrets::KeySource;
use basin_engine::identity::throttle::RateLimit;
use basin_engine::{Engine, EngineConfig};
use basin_http_api::{ApiConfig, AppState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::config::Config;

/// A built, not yet serving, Basin server.
pub struct Application {
    engine: Engine,
    listener: TcpListener,
    http_addr: SocketAddr,
    flight_listener: TcpListener,
    flight_addr: SocketAddr,
    flight_tls: Option<basin_flight_server::TlsIdentity>,
    state: AppState,
    config: Config,
    first_admin_password: Option<String>,
}

/// The process-wide metrics recorder (a recorder can be installed once per process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// Opens the data directory for a one-shot command, without the startup
/// recovery a server performs (a server may be running on the same directory).
pub async fn open_local(config: &Config) -> anyhow::Result<Engine> {
    let mut engine = engine_config(config);
    engine.recover = false;
    Ok(Engine::open(engine).await?)
}

/// The engine settings a configuration implies.
pub fn engine_config(config: &Config) -> EngineConfig {
    let mut engine = EngineConfig::new(&config.data_dir);
    engine.allowed_roots = config.ingest.allowed_roots.clone();
    engine.allowed_urls = config.ingest.allowed_urls.clone();
    engine.memory_limit = config
        .query
        .memory_limit
        .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    engine.query_timeout = config.query.timeout;
    engine.result_cache_bytes = config.query.result_cache;
    engine.acceleration_bytes = config.query.acceleration;
    engine.pipeline_parallelism = config.pipelines.max_parallel_steps;
    engine.event_retention = config.pipelines.event_retention;
    engine.max_ingest_bytes = config.ingest.max_bytes;
    engine.auth = AuthSettings {
        anonymous: config.auth.anonymous,
        admin_password: config.auth.admin_password.clone(),
        session_idle: config.auth.session_idle_timeout,
        session_max_age: config.auth.session_max_age,
        max_failed_logins: config.auth.max_failed_logins,
        lockout: config.auth.lockout,
        login_delay: config.auth.login_delay,
        rate_per_ip: RateLimit {
            per_second: config.rate_limit.per_ip,
            burst: config.rate_limit.per_ip_burst,
        },
        rate_per_principal: RateLimit {
            per_second: config.rate_limit.per_user,
            burst: config.rate_limit.per_user_burst,
        },
    };
    engine.secrets_key = match &config.secrets.key {
        Some(key) => KeySource::Configured(key.clone()),
        None => KeySource::File,
    };
    engine
}

impl Application {
    /// Opens the engine (migrating and recovering the data directory) and binds the HTTP listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let engine = Engine::open(engine_config(&config)).await?;
        engine.start_scheduler();
        let first_admin_password = engine.take_first_admin_password();
        let listener = TcpListener::bind(config.http.addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (http.addr): {e}", config.http.addr)
        })?;
        let http_addr = listener.local_addr()?;
        let flight_listener = TcpListener::bind(config.flight.addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (flight.addr): {e}", config.flight.addr)
        })?;
        let flight_addr = flight_listener.local_addr()?;
        let flight_tls = match (&config.flight.tls_cert, &config.flight.tls_key) {
            (Some(cert), Some(key)) => Some(basin_flight_server::TlsIdentity {
                cert_pem: std::fs::read(cert)
                    .map_err(|e| anyhow::anyhow!("flight.tls_cert {}: {e}", cert.display()))?,
                key_pem: std::fs::read(key)
                    .map_err(|e| anyhow::anyhow!("flight.tls_key {}: {e}", key.display()))?,
            }),
            _ => None,
        };
        let state = AppState {
            engine: engine.clone(),
            config: Arc::new(ApiConfig {
                body_limit: config.http.body_limit,
                request_timeout: config.http.request_timeout,
                max_json_depth: config.http.max_json_depth as usize,
                cors_origins: config.http.cors_origins.clone(),
                cookie_secure: config.http.cookie_secure,
                ws_heartbeat: config.pipelines.ws_heartbeat,
            }),
            metrics: metrics_handle(),
        };
        Ok(Self {
            engine,
            listener,
            http_addr,
            flight_listener,
            flight_addr,
            flight_tls,
            state,
            config,
            first_admin_password,
        })
    }

    /// The first admin's password, when this start created the admin with a
    /// generated one; shown once, then only its hash exists.
    pub fn take_first_admin_password(&mut self) -> Option<String> {
        self.first_admin_password.take()
    }

    /// Where the REST API listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where Flight SQL listens.
    pub fn flight_addr(&self) -> SocketAddr {
        self.flight_addr
    }

    /// Whether Flight SQL is served over TLS.
    pub fn flight_tls(&self) -> bool {
        self.flight_tls.is_some()
    }

    /// The engine, for tests that inspect state directly.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until `shutdown` completes, then stops accepting, drains in-flight
    /// requests for up to `http.shutdown_timeout`, and closes the catalog.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = basin_http_api::router(self.state);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // TCP_NODELAY, as for Flight: otherwise a small answer can wait for
        // the client's delayed ACK (about 40 ms on Linux).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        let mut serving = tokio::spawn(async move { server.await });
        let (flight_stop_tx, flight_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut flight = tokio::spawn(basin_flight_server::serve(
            self.engine.clone(),
            self.flight_listener,
            self.flight_tls,
            async move {
                let _ = flight_stop_rx.await;
            },
        ));
        tokio::select! {
            result = &mut serving => {
                result??;
            }
            result = &mut flight => {
                result??;
            }
            () = shutdown => {
                tracing::info!("shutting down: draining in-flight requests");
                let _ = stop_tx.send(());
                let _ = flight_stop_tx.send(());
                let drained = async {
                    let (http, flight) = tokio::join!(&mut serving, &mut flight);
                    http??;
                    flight??;
                    anyhow::Ok(())
                };
                match tokio::time::timeout(self.config.http.shutdown_timeout, drained).await {
                    Ok(result) => result?,
                    Err(_) => {
                        tracing::warn!("in-flight requests did not finish in time; closing them");
                        serving.abort();
                        flight.abort();
                    }
                }
            }
        }
        self.engine.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
