"""Runs the basin binary for the peer scripts: one-shot ingests and a served data directory."""
import os
import subprocess
import threading

TOKEN = "bench-token-0123456789abcdef"


def _env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASIN_")}
    env["BASIN_AUTH_TOKEN"] = TOKEN
    env.update(extra or {})
    return env


def ingest(binary, data_dir, path, dataset):
    """Writes a file into a dataset with `basin ingest` (replacing what was there)."""
    subprocess.run(
        [binary, "--data-dir", data_dir, "ingest", str(path), "--dataset", dataset, "--mode", "overwrite"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=_env(),
    )


def serve(binary, data_dir, extra_env=None):
    """Starts `basin serve` on free ports; returns the process and its Flight address."""
    process = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(extra_env),
        text=True,
    )
    for line in process.stdout:
        if line.strip().startswith("flight:"):
            # Keep draining stdout so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, line.split(None, 1)[1].strip()
    raise RuntimeError("basin did not start")
