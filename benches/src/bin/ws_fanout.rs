//! WebSocket fan-out: event delivery latency to many subscribers, and the
//! server memory of many idle connections. Driven by
//! `benches/peers/ws_fanout.py` (the `ws` suite of `benches/run.sh`).
//!
//! Starts `basin serve` on a fresh data directory, creates a pipeline of
//! `--steps` independent ephemeral steps, opens `--subscribers` WebSockets
//! to `/api/v1/ws` all subscribed to `pipeline:fanout`, and runs the
//! pipeline three times (one run after the other; the sockets stay open).
//! Every `pipeline_*` event each subscriber receives is a latency sample:
//! client receive time minus the event's `at`, which the server stamps when
//! it numbers the event, before persisting it. A sample therefore covers
//! persisting the event, the broadcast, the fan-out to every socket and
//! the client reading it (client and server share this machine's clock,
//! and its CPUs). Subscribers that fall behind get a run's
//! `pipeline_progress` events merged, so per-subscriber counts may differ;
//! the report shows their range.
//!
//! Then it closes those sockets, reads the server's `VmRSS`, opens `--idle`
//! WebSockets subscribed to `jobs` (which stays quiet), waits 2 s, reads
//! `VmRSS` again and reports the difference per connection.
//!
//! Usage: `ws_fanout --basin target/release/basin [--subscribers 1000]
//! [--idle 10000] [--steps 20]`

#![allow(clippy::print_stdout)] // a benchmark reports on stdout for its driver script

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "bench-root-password-0123";
const RUNS: usize = 3;
/// The longest a subscriber waits for the next event of a run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The served process; killed when dropped, on success or error.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/<pid>/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("bad VmRSS line")?
        .parse()?)
}

/// POSTs JSON; the response body, or an error with the status and body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Value, BoxError> {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(format!("POST {url}: {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The next text message as JSON (pings and pongs skipped).
async fn next_json(socket: &mut Socket) -> Result<Value, BoxError> {
    loop {
        match socket.next().await.ok_or("socket closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Close(frame) => return Err(format!("closed by the server: {frame:?}").into()),
            _ => {}
        }
    }
}

/// Opens a WebSocket and subscribes it to one channel.
async fn open(url: &str, token: &str, channel: &str) -> Result<Socket, BoxError> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let subscribe = json!({"op": "subscribe", "channels": [channel]});
    socket.send(Message::text(subscribe.to_string())).await?;
    loop {
        let reply = next_json(&mut socket).await?;
        match reply["type"].as_str() {
            Some("subscribed") => return Ok(socket),
            Some("error") => return Err(format!("subscribe refused: {reply}").into()),
            // `ready`, heartbeats.
            _ => {}
        }
    }
}

/// What one subscriber saw of one run.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<i64>,
    events: usize,
    failed: bool,
}

/// Reads one run's events, up to its `pipeline_completed` or `pipeline_failed`.
async fn read_run(mut socket: Socket) -> Result<(Socket, Tally), BoxError> {
    let mut tally = Tally::default();
    loop {
        let message = tokio::time::timeout(RUN_TIMEOUT, socket.next())
            .await
            .map_err(|_| "no event for 120 s before the run ended")?
            .ok_or("socket closed")??;
        let received = chrono::Utc::now().timestamp_micros();
        let Message::Text(text) = message else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str())?;
        let kind = event["type"].as_str().unwrap_or_default();
        if !kind.starts_with("pipeline_") {
            continue; // heartbeats
        }
        let at = event["at"].as_str().ok_or("an event without `at`")?;
        let at = chrono::DateTime::parse_from_rfc3339(at)?.timestamp_micros();
        tally.latencies_us.push(received - at);
        tally.events += 1;
        if kind == "pipeline_completed" || kind == "pipeline_failed" {
            tally.failed = kind == "pipeline_failed";
            return Ok((socket, tally));
        }
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn quantile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let basin = arg(&args, "--basin").ok_or("--basin PATH (the basin binary) is required")?;
    let subscribers: usize = arg(&args, "--subscribers").map_or(Ok(1000), |v| v.parse())?;
    let idle: usize = arg(&args, "--idle").map_or(Ok(10_000), |v| v.parse())?;
    let steps: usize = arg(&args, "--steps").map_or(Ok(20), |v| v.parse())?;

    // Start the server (dropped, so killed, before its data directory).
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(&basin);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BASIN_") {
            command.env_remove(key);
        }
    }
    command
        .env("BASIN_ADMIN_PASSWORD", PASSWORD)
        .env("BASIN_RATE_LIMIT_PER_IP", "0")
        .env("BASIN_RATE_LIMIT_PER_USER", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = Server(command.spawn()?);
    let pid = server.0.id();
    let mut reader = BufReader::new(server.0.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    let mut api = None;
    while reader.read_line(&mut line)? > 0 {
        if let Some(url) = line.trim().strip_prefix("http:") {
            api = Some(url.trim().to_owned());
            break;
        }
        line.clear();
    }
    let api = api.ok_or("basin did not start (no `http:` line on its stdout)")?;
    // Keep draining stdout so the server never blocks on a full pipe.
    let _drain = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let ws_url = format!("{}/ws", api.replacen("http://", "ws://", 1));

    // Sign in, then a table and a pipeline of independent ephemeral steps.
    let client = reqwest::Client::new();
    let login = json!({"username": "admin", "password": PASSWORD});
    let login = post(&client, &format!("{api}/auth/login"), None, &login).await?;
    let token = login["data"]["token"]
        .as_str()
        .ok_or("no data.token in the login response")?
        .to_owned();
    let seeded = client
        .post(format!("{api}/datasets/seed/upload?mode=create"))
        .bearer_auth(&token)
        .body("id\n1\n")
        .send()
        .await?;
    if !seeded.status().is_success() {
        return Err(format!("seed upload: {}", seeded.text().await?).into());
    }
    let step_list: Vec<Value> = (0..steps)
        .map(|i| {
            json!({"name": format!("s{i}"), "sql": "SELECT id FROM seed",
                "materialization": {"kind": "ephemeral"}})
        })
        .collect();
    let pipeline = json!({"name": "fanout", "definition": {"max_parallel": 4, "steps": step_list}});
    post(
        &client,
        &format!("{api}/pipelines"),
        Some(&token),
        &pipeline,
    )
    .await?;

    // Subscribers, 100 handshakes at a time; each is back once `subscribed`.
    let mut sockets: Vec<Socket> = futures::stream::iter(0..subscribers)
        .map(|_| open(&ws_url, &token, "pipeline:fanout"))
        .buffer_unordered(100)
        .try_collect()
        .await?;

    // Runs, one after the other; every subscriber reads each to its end.
    let run_url = format!("{api}/pipelines/fanout/runs");
    let mut latencies: Vec<i64> = Vec::new();
    let (mut min_events, mut max_events, mut failed_runs) = (usize::MAX, 0, 0);
    for _ in 0..RUNS {
        let readers: Vec<_> = sockets
            .drain(..)
            .map(|s| tokio::spawn(read_run(s)))
            .collect();
        post(&client, &run_url, Some(&token), &json!({})).await?;
        let mut failed = false;
        for reader in readers {
            let (socket, tally) = reader.await??;
            min_events = min_events.min(tally.events);
            max_events = max_events.max(tally.events);
            failed |= tally.failed;
            latencies.extend(tally.latencies_us);
            sockets.push(socket);
        }
        failed_runs += usize::from(failed);
    }
    latencies.sort_unstable();
    let delivered = latencies.len();
    let [p50, p90, p99, max] = [0.5, 0.9, 0.99, 1.0].map(|p| quantile_ms(&latencies, p));
    futures::stream::iter(sockets)
        .for_each_concurrent(100, |mut socket| async move {
            let _ = socket.close(None).await;
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Idle connections: the server's resident memory before and after.
    let before = rss_kib(pid)?;
    let idle_sockets: Vec<Socket> = futures::stream::iter(0..idle)
        .map(|_| open(&ws_url, &token, "jobs"))
        .buffer_unordered(200)
        .try_collect()
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    let delta = after as i64 - before as i64;
    let per_connection = delta as f64 / idle_sockets.len().max(1) as f64;
    drop(server);
    drop(idle_sockets);

    let min_events = if min_events == usize::MAX {
        0
    } else {
        min_events
    };
    println!("ws_fanout: {subscribers} subscribers, {RUNS} runs of a {steps}-step pipeline");
    println!(
        "  events delivered: {delivered} (per subscriber per run: min {min_events}, max {max_events}); failed runs: {failed_runs}"
    );
    println!(
        "  latency, server record -> client receive: p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    println!(
        "  idle: {idle} connections, server RSS {before} -> {after} KiB ({delta:+} KiB, {per_connection:.1} KiB per connection)"
    );
    let result = json!({
        "subscribers": subscribers, "runs": RUNS, "steps": steps,
        "events_delivered": delivered,
        "events_per_subscriber_run": {"min": min_events, "max": max_events},
        "failed_runs": failed_runs,
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "max": max},
        "idle_connections": idle,
        "idle_rss_kib": {"before": before, "after": after, "delta": delta, "per_connection": per_connection},
    });
    println!("RESULT {result}");
    Ok(())
}
