//! Talking to a running server (`--server URL`): the client that presents
//! the caller's token, API paths, and answers turned into errors.

use std::io::Write;

use anyhow::{Context, bail};

/// A command's result on standard output, as pretty JSON.
pub(super) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

pub(super) fn api(url: &str, path: &str) -> String {
    format!("{}/api/v1{path}", url.trim_end_matches('/'))
}

pub(super) async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = &body["error"];
    bail!(
        "server answered {status}: {} ({})",
        error["message"].as_str().unwrap_or("no message"),
        error["code"].as_str().unwrap_or("no code")
    )
}

/// An HTTP client that presents an API key or session token.
pub(super) fn client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let Some(token) = token else {
        bail!(
            "--server needs credentials: create an API key (POST /api/v1/api-keys) and pass it with --token or BASIN_TOKEN"
        );
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("the token is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}
