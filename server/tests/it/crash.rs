//! A SIGKILL in the middle of a large ingest leaves the previous version, and
//! the restarted server reports the interrupted job as failed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(data_dir: &std::path::Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--flight-addr",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .env("BASIN_ADMIN_PASSWORD", crate::common::ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("basin serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.trim().strip_prefix("http:") {
            break rest.trim().trim_end_matches("/api/v1").to_owned();
        }
    };
    Served { child, base }
}

async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn sigkill_during_ingest_keeps_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path());
    let client = crate::common::client_with(
        &crate::common::login(&first.base, "admin", crate::common::ADMIN_PASSWORD).await,
    );
    let small = "id,payload\n1,a\n2,b\n";
    let response = client
        .post(format!("{}/api/v1/datasets/big/upload", first.base))
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let mut large = Vec::with_capacity(80 << 20);
    large.extend_from_slice(b"id,payload\n");
    for i in 0..2_000_000u64 {
        writeln!(large, "{i},payload-{i:0>24}-{}", i * 7919 % 104729).unwrap();
    }
    let response = client
        .post(format!(
            "{}/api/v1/datasets/big/upload?async=true",
            first.base
        ))
        .body(large)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: serde_json::Value = response.json().await.unwrap();
    let id = job["data"]["id"].as_str().unwrap().to_owned();
    // Kill as soon as the job is running: the write is then under way.
    for _ in 0..400 {
        let job: serde_json::Value =
            get_json(&client, format!("{}/api/v1/jobs/{id}", first.base)).await;
        match job["data"]["status"].as_str().unwrap() {
            "running" => break,
            "queued" => tokio::time::sleep(Duration::from_millis(5)).await,
            other => panic!("job ended before the kill: {other}: {job}"),
        }
    }
    drop(first);

    let second = serve(dir.path());
    let dataset: serde_json::Value =
        get_json(&client, format!("{}/api/v1/datasets/big", second.base)).await;
    assert_eq!(dataset["data"]["version"], 0, "{dataset}");
    assert_eq!(dataset["data"]["row_count"], 2);
    let rows: serde_json::Value = client
        .post(format!("{}/api/v1/query", second.base))
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM big"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows["data"]["rows"][0][0], 2, "{rows}");
    let job: serde_json::Value =
        get_json(&client, format!("{}/api/v1/jobs/{id}", second.base)).await;
    assert_eq!(job["data"]["status"], "failed", "{job}");
    assert_eq!(job["data"]["error"]["code"], "interrupted");
    let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "spooled uploads are cleaned on restart");
}
