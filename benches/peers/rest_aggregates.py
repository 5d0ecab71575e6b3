"""REST aggregates under load: Basin's `POST /api/v1/query` vs DuckDB behind a
Python HTTP server (duckdb_http_server.py), same run, same client.

Both serve TPC-H `orders` (tpchgen-cli Parquet). Each of `--clients`
threads holds one keep-alive connection and sends the same aggregate for
`--seconds`; the script prints requests/s and p50/p99 latency for each.
Basin runs twice: with its result cache off (computing every answer, like the
peer), then on (the dashboard case: repeated queries over unchanged data).

    python benches/peers/rest_aggregates.py --basin target/release/basin --scale 1
"""
import http.client
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

from basin_process import ADMIN_PASSWORD, RESULT_CACHE_ON, ingest, serve_http
from flight_doget import tpch_parquet

SQL = "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders GROUP BY 1"


def load(host, port, path, headers, clients, seconds, expect_cache=None):
    """Sends SQL from `clients` threads for `seconds`; returns (requests/s, p50 ms, p99 ms).
    With `expect_cache`, every answer must say so in `meta.cache`."""
    body = json.dumps({"sql": SQL}).encode()
    latencies = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection(host, port, timeout=60)
        mine = []
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            connection.request("POST", path, body, {"content-type": "application/json", **headers})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200 or len(answer["data"]["rows"]) != 3:
                raise RuntimeError(f"{path}: {response.status} {answer}")
            if expect_cache and answer["meta"]["cache"] != expect_cache:
                raise RuntimeError(f"{path}: expected a cache {expect_cache}, got {answer['meta']}")
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def add_arguments(parser):
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)


def run(args):
    """Loads both servers in turn; returns the bench rows."""
    import duckdb
    from report import Row, bound

    orders = tpch_parquet(args.scale, "orders")
    script = pathlib.Path(__file__).with_name("duckdb_http_server.py")
    peer = subprocess.Popen([sys.executable, str(script), f"orders={orders}"], stdout=subprocess.PIPE, text=True)
    try:
        peer_port = int(peer.stdout.readline().split()[1])
        # Warm-up, then the measured window.
        load("127.0.0.1", peer_port, "/query", {}, args.clients, 1)
        duck = load("127.0.0.1", peer_port, "/query", {}, args.clients, args.seconds)
    finally:
        peer.kill()
    with tempfile.TemporaryDirectory() as data_dir:
        ingest(args.basin, data_dir, orders, "orders")
        mine = load_basin(args, data_dir, None, None)
        cached = load_basin(args, data_dir, RESULT_CACHE_ON, "hit")
    for name, (rate, p50, p99) in (("basin", mine), ("basin, result cache", cached), ("duckdb", duck)):
        print(f"  {name:<20} {rate:7.1f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    label = f"REST aggregate on orders, {args.clients} clients"
    return [
        Row(f"{label}, no caches", "req/s", mine[0], "higher", f"duckdb {duckdb.__version__} behind Python HTTP", duck[0], goal=1.2),
        bound(f"{label}, no caches: p99", "ms", "lower", mine[2]),
        Row(f"{label}, result cache", "req/s", cached[0], "higher", f"duckdb {duckdb.__version__} behind Python HTTP", duck[0]),
        bound(f"{label}, result cache: p99", "ms", "lower", cached[2], goal=25),
    ]


def load_basin(args, data_dir, extra_env, expect_cache):
    """Serves `data_dir` and loads it (after a warm-up second); returns what `load` does."""
    basin, base = serve_http(args.basin, data_dir, extra_env)
    try:
        host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
        connection = http.client.HTTPConnection(host, int(port))
        login = json.dumps({"username": "admin", "password": ADMIN_PASSWORD})
        connection.request("POST", "/api/v1/auth/login", login, {"content-type": "application/json"})
        token = json.loads(connection.getresponse().read())["data"]["token"]
        headers = {"authorization": f"Bearer {token}"}
        load(host, int(port), "/api/v1/query", headers, args.clients, 1)
        return load(host, int(port), "/api/v1/query", headers, args.clients, args.seconds, expect_cache)
    finally:
        basin.terminate()
        basin.wait(timeout=30)


if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
