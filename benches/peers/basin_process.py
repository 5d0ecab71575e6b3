"""Runs the basin binary for the peer scripts: one-shot ingests and a served data directory."""
import os
import subprocess
import threading
import time
import urllib.request

ADMIN_PASSWORD = "bench-root-password-0123"
# Benchmarks measure the engine, not the limiter.
NO_RATE_LIMITS = {"BASIN_RATE_LIMIT_PER_IP": "0", "BASIN_RATE_LIMIT_PER_USER": "0"}
# They measure computing answers: repeated queries would otherwise be answered
# from the result cache. A suite that measures the cache turns it back on.
NO_RESULT_CACHE = {"BASIN_QUERY_RESULT_CACHE": "0"}
RESULT_CACHE_ON = {"BASIN_QUERY_RESULT_CACHE": "64MiB"}


def adbc_login():
    """ADBC database options that sign in as the admin (the driver handshakes)."""
    return {"username": "admin", "password": ADMIN_PASSWORD}


def bearer_header(flight_address):
    """The `authorization` header pair of a session, from a Flight handshake."""
    import pyarrow.flight as flight

    return flight.FlightClient(flight_address).authenticate_basic_token("admin", ADMIN_PASSWORD)


def _env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASIN_")}
    env["BASIN_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    env.update(NO_RATE_LIMITS)
    env.update(NO_RESULT_CACHE)
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


def start(binary, data_dir, extra_env=None):
    """Starts `basin serve` on free ports; returns the process and its addresses
    from the banner (`{"http": "http://…/api/v1", "flight": "grpc://…"}`)."""
    process = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(extra_env),
        text=True,
    )
    addresses = {}
    for line in process.stdout:
        name, _, value = line.strip().partition(":")
        if name in ("http", "flight"):
            addresses[name] = value.strip()
        if "flight" in addresses:
            # Keep draining stdout so the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, addresses
    raise RuntimeError("basin did not start")


def serve(binary, data_dir, extra_env=None):
    """Starts `basin serve`; returns the process and its Flight address."""
    process, addresses = start(binary, data_dir, extra_env)
    return process, addresses["flight"]


def serve_http(binary, data_dir, extra_env=None):
    """Starts `basin serve`; returns the process and its REST base URL (`…/api/v1`)."""
    process, addresses = start(binary, data_dir, extra_env)
    return process, addresses["http"]


def accelerate(addresses, datasets):
    """Reads each dataset twice through ADBC, which makes its version hot, and
    waits until the server at `addresses` (from `start`) has loaded them all."""
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(addresses["flight"], db_kwargs=adbc_login(), autocommit=True) as conn:
        cur = conn.cursor()
        for name in datasets:
            for _ in range(2):
                cur.execute(f"SELECT count(*) FROM {name}")
                cur.fetch_arrow_table()
    wait_accelerated(addresses, len(datasets))


def wait_accelerated(addresses, count, timeout=300):
    """Waits until the server at `addresses` (from `start`) has loaded `count`
    dataset versions into memory, by its `basin_acceleration_loads_total`."""
    url = addresses["http"].replace("/api/v1", "/metrics")
    deadline = time.monotonic() + timeout
    while True:
        text = urllib.request.urlopen(url).read().decode()
        loads = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("basin_acceleration_loads_total")]
        if loads and loads[0] >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} datasets were not accelerated within {timeout} s")
        time.sleep(0.2)
