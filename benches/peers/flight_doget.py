"""Flight DoGet throughput: Basin vs a pyarrow Flight server, same run.

For TPC-H lineitem (tpchgen-cli Parquet) and a generated 10M-row, 10-column
table: Basin serves the dataset from Delta, a pyarrow Flight server in its own
process (pyarrow_flight_server.py) serves the same table from memory. A
pyarrow client reads each in full and the script prints MB/s and rows/s for
both, their ratio, and bytes on the wire / logical bytes (the wire is the
loopback interface's byte counter), and ADBC's throughput reading the same
dataset. It then times prepared point queries through Basin's Flight SQL
(ADBC) on TPC-H `orders` and on the 10M-row table, and prints p50/p99.

    python benches/peers/flight_doget.py --basin target/release/basin --scale 1
"""
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
from basin_process import accelerate, adbc_login, bearer_header, ingest, serve, start

ROOT = pathlib.Path(__file__).resolve().parents[2]


def tpch_parquet(scale: float, table: str) -> pathlib.Path:
    out = ROOT / "benches" / "data" / f"tpch_sf{scale:g}"
    path = out / f"{table}.parquet"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tpchgen = pathlib.Path(sys.executable).parent / "tpchgen-cli"
        subprocess.run(
            [str(tpchgen), "parquet", "-s", str(scale), "--tables", table, "--output-dir", str(out)],
            check=True,
        )
    return path


def wide_parquet(rows: int) -> pathlib.Path:
    path = ROOT / "benches" / "data" / f"wide_{rows}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(42)
        ids = np.arange(rows, dtype=np.int64)
        table = pa.table(
            {
                "id": ids,
                "user_id": rng.integers(0, 1_000_000, rows),
                "amount": rng.random(rows) * 1000,
                "quantity": rng.integers(1, 100, rows).astype(np.int32),
                "score": rng.random(rows).astype(np.float32),
                "flag": rng.random(rows) < 0.5,
                "ts": pa.array(ids * 1_000_000 + 1_700_000_000_000_000, pa.timestamp("us", "UTC")),
                "country": pa.array(np.array(["NO", "CH", "PL", "FR", "DE", "US"])[ids % 6]),
                "label": pa.array([f"item-{i % 50_000}" for i in range(rows)]),
                "price": pa.array((ids % 100_000).astype(np.int64), pa.int64()),
            }
        )
        pq.write_table(table, path, row_group_size=1_000_000)
    return path


def loopback_tx_bytes() -> int:
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])
    raise RuntimeError("no loopback interface counter")


def read_all(client, ticket, options):
    """Reads a stream fully; returns rows and logical (in-memory) bytes."""
    reader = client.do_get(ticket, options)
    rows = nbytes = 0
    for chunk in reader:
        rows += chunk.data.num_rows
        nbytes += chunk.data.nbytes
    return rows, nbytes


def measure(label, client, ticket, options, repeat):
    best = None
    for _ in range(repeat):
        wire_before = loopback_tx_bytes()
        start = time.perf_counter()
        rows, nbytes = read_all(client, ticket, options)
        elapsed = time.perf_counter() - start
        wire = loopback_tx_bytes() - wire_before
        if best is None or elapsed < best[0]:
            best = (elapsed, rows, nbytes, wire)
    elapsed, rows, nbytes, wire = best
    print(
        f"  {label:<8} {rows:>11,} rows {nbytes / 1e6:>8.0f} MB in {elapsed:6.2f} s: "
        f"{nbytes / 1e6 / elapsed:7.0f} MB/s {rows / elapsed / 1e6:6.2f} M rows/s, wire/logical {wire / nbytes:.3f}"
    )
    return elapsed, rows, nbytes, wire


def pyarrow_server(sources):
    """Starts the peer server in its own process; returns it and its address."""
    script = pathlib.Path(__file__).with_name("pyarrow_flight_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), *(f"{name}={path}" for name, path in sources.items())],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("port "):
        process.kill()
        raise RuntimeError("the pyarrow Flight server did not start")
    return process, f"grpc://127.0.0.1:{line.split()[1]}"


def adbc_read(address, dataset, repeat):
    """Reads a whole dataset through ADBC; returns the best time and its logical bytes."""
    import adbc_driver_flightsql.dbapi as flightsql

    best = None
    with flightsql.connect(address, db_kwargs=adbc_login(), autocommit=True) as conn:
        with conn.cursor() as cur:
            for _ in range(repeat):
                start = time.perf_counter()
                cur.execute(f"SELECT * FROM {dataset}")
                table = cur.fetch_arrow_table()
                elapsed = time.perf_counter() - start
                if best is None or elapsed < best[0]:
                    best = (elapsed, table.nbytes)
    print(f"  adbc     {best[1] / 1e6:>8.0f} MB in {best[0]:6.2f} s: {best[1] / 1e6 / best[0]:7.0f} MB/s")
    return best


def point_queries(address, sql, keys):
    """Times one prepared lookup per key (each finds one row); returns p50 and p99 in ms."""
    import adbc_driver_flightsql.dbapi as flightsql

    latencies = []
    with flightsql.connect(address, db_kwargs=adbc_login(), autocommit=True) as conn:
        with conn.cursor() as cur:
            for key in keys:
                start = time.perf_counter()
                cur.execute(sql, parameters=(int(key),))
                rows = cur.fetchall()
                latencies.append(time.perf_counter() - start)
                assert len(rows) == 1, f"{sql} with {key}: {len(rows)} rows"
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"  {sql}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {statistics.mean(latencies) * 1000:.2f} ms")
    return p50, p99


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--flight-repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)


def run(args):
    """Measures reads and point lookups; returns the bench rows."""
    from report import Row, bound

    sources = {
        "lineitem": tpch_parquet(args.scale, "lineitem"),
        "wide": wide_parquet(args.rows),
    }
    orders = tpch_parquet(args.scale, "orders")
    rows = []
    # Per read: the peer's and Basin's (from files) figures, for the accelerated pass.
    peers, plain = {}, {}
    with tempfile.TemporaryDirectory() as data_dir:
        for name, path in [*sources.items(), ("orders", orders)]:
            ingest(args.basin, data_dir, path, name)
        basin, address = serve(args.basin, data_dir)
        peer_process, peer_address = pyarrow_server(sources)
        try:
            peer = flight.FlightClient(peer_address)
            for name in sources:
                print(f"{name}:")
                b = measure_basin(address, name, args.flight_repeat)
                p = measure("pyarrow", peer, flight.Ticket(name.encode()), flight.FlightCallOptions(), args.flight_repeat)
                a = adbc_read(address, name, args.flight_repeat)
                assert b[1] == p[1], f"{name}: basin sent {b[1]} rows, pyarrow {p[1]}"
                print(
                    f"  ratio basin/pyarrow: {p[0] / b[0]:.2f} (rows/s); "
                    f"wire/logical basin {b[3] / b[2]:.3f}, pyarrow {p[3] / p[2]:.3f}"
                )
                label = f"Flight read {name} ({b[1]:,} rows)"
                peers[name] = p
                plain[name] = b
                rows.append(Row(label, "MB/s", b[2] / 1e6 / b[0], "higher", f"pyarrow {pa.__version__} server", p[2] / 1e6 / p[0], goal=1.2))
                rows.append(bound(f"{label}: wire / logical", "x", "lower", b[3] / b[2], goal=1.05))
                rows.append(bound(f"{label}: through ADBC", "MB/s", "higher", a[1] / 1e6 / a[0]))
            rng = np.random.default_rng(7)
            order_keys = pq.read_table(orders, columns=["o_orderkey"]).column(0).to_numpy()
            lookups = [
                ("orders", "SELECT * FROM orders WHERE o_orderkey = ?", rng.choice(order_keys, args.calls)),
                ("wide", "SELECT * FROM wide WHERE id = ?", rng.integers(0, args.rows, args.calls)),
            ]
            for name, sql, keys in lookups:
                p50, p99 = point_queries(address, sql, keys)
                label = f"point lookup {name} (ADBC, prepared)"
                rows.append(bound(f"{label} p50", "ms", "lower", p50, goal=5))
                rows.append(bound(f"{label} p99", "ms", "lower", p99, goal=15))
        finally:
            peer_process.kill()
            basin.terminate()
            basin.wait(timeout=30)
        rows += accelerated(args, data_dir, [*sources, "orders"], lookups, plain, peers)
    return rows


def measure_basin(address, name, repeat, label="basin"):
    """Reads dataset `name` from Basin with a bearer token; returns what `measure` does."""
    import pyarrow.flight as flight

    client = flight.FlightClient(address)
    options = flight.FlightCallOptions(headers=[bearer_header(address)])
    info = client.get_flight_info(flight.FlightDescriptor.for_path(name), options)
    return measure(label, client, info.endpoints[0].ticket, options, repeat)


def accelerated(args, data_dir, datasets, lookups, plain, peers):
    """The reads and lookups again with every dataset accelerated (in memory):
    reads each twice so that it loads, waits for the loads, checks the reads
    return what they returned from files; returns the bench rows."""
    import pyarrow as pa
    from report import Row, bound

    basin, addresses = start(args.basin, data_dir, {"BASIN_QUERY_ACCELERATION": "6GiB"})
    rows = []
    try:
        address = addresses["flight"]
        accelerate(addresses, datasets)
        for name, p in peers.items():
            print(f"{name}, accelerated:")
            b = measure_basin(address, name, args.flight_repeat, "basin+acc")
            # The same rows and logical bytes as the read from files.
            assert b[1:3] == plain[name][1:3], f"{name}: accelerated read {b[1:3]}, from files {plain[name][1:3]}"
            label = f"Flight read {name} ({b[1]:,} rows), accelerated"
            rows.append(Row(label, "MB/s", b[2] / 1e6 / b[0], "higher", f"pyarrow {pa.__version__} server", p[2] / 1e6 / p[0], goal=1.2))
        for name, sql, keys in lookups:
            p50, p99 = point_queries(address, sql, keys)
            label = f"point lookup {name} (ADBC, prepared), accelerated"
            rows.append(bound(f"{label} p50", "ms", "lower", p50, goal=5))
            rows.append(bound(f"{label} p99", "ms", "lower", p99, goal=15))
    finally:
        basin.terminate()
        basin.wait(timeout=30)
    return rows



if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
