//! `basin serve`: the server, with its banner (addresses, data directory,
//! how to sign in) on standard output.

use std::io::Write;

use crate::app::{Application, shutdown_signal};
use crate::config::Config;

/// Runs the server until a shutdown signal.
pub(super) async fn run(config: Config) -> anyhow::Result<()> {
    let mut app = Application::build(config.clone()).await?;
    let data_dir = app.engine().data_dir().display().to_string();
    tracing::info!(http = %app.http_addr(), flight = %app.flight_addr(), data_dir, "basin is serving");
    let sign_in = match app.take_first_admin_password() {
        // Shown this once, on the terminal only: never logged, and only its hash is kept.
        Some(password) => format!(
            "user `admin`, password `{password}` (generated; shown once: change it with POST /api/v1/auth/password)"
        ),
        None => "POST /api/v1/auth/login, an API key, or Flight Basic credentials".to_owned(),
    };
    let scheme = if app.flight_tls() { "grpc+tls" } else { "grpc" };
    let banner = format!(
        "basin {} serving\n  http:     http://{}/api/v1\n  flight:   {scheme}://{}\n  data dir: {data_dir}\n  sign in:  {sign_in}\n",
        env!("CARGO_PKG_VERSION"),
        app.http_addr(),
        app.flight_addr(),
    );
    // Best effort: a closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = std::io::stdout().lock().write_all(banner.as_bytes());
    app.run_until(shutdown_signal()).await
}
