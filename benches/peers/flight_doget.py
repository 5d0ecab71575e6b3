"""Flight DoGet throughput: Basin vs a pyarrow in-process Flight server, same run.

For TPC-H lineitem (tpchgen-cli Parquet) and a generated 10M-row, 10-column
table: Basin serves the dataset from Delta, pyarrow serves the same table from
memory. A pyarrow client reads each in full and the script prints MB/s and
rows/s for both, their ratio, and bytes on the wire / logical bytes (the wire
is the loopback interface's byte counter). It then times 1,000 point queries
through Basin's Flight SQL (ADBC) and prints p50/p99.

    python benches/peers/flight_doget.py --basin target/release/basin --scale 1
"""
import argparse
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
from basin_process import adbc_login, bearer_header, ingest, serve

ROOT = pathlib.Path(__file__).resolve().parents[2]


def lineitem_parquet(scale: float) -> pathlib.Path:
    out = ROOT / "benches" / "data" / f"tpch_sf{scale:g}"
    path = out / "lineitem.parquet"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tpchgen = pathlib.Path(sys.executable).parent / "tpchgen-cli"
        subprocess.run(
            [str(tpchgen), "parquet", "-s", str(scale), "--tables", "lineitem", "--output-dir", str(out)],
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


def plain_strings(table: pa.Table) -> pa.Table:
    """The types Basin sends: string views (as tpchgen-cli writes) become strings."""
    fields = [
        pa.field(f.name, pa.string(), f.nullable) if f.type == pa.string_view() else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


class MemoryServer(flight.FlightServerBase):
    def __init__(self, tables):
        super().__init__("grpc://127.0.0.1:0")
        self.tables = tables

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.tables[ticket.ticket.decode()])


def point_queries(address, key_max, calls):
    import adbc_driver_flightsql.dbapi as flightsql

    kwargs = adbc_login()
    latencies = []
    with flightsql.connect(address, db_kwargs=kwargs, autocommit=True) as conn:
        with conn.cursor() as cur:
            rng = np.random.default_rng(7)
            for key in rng.integers(0, key_max, calls):
                start = time.perf_counter()
                cur.execute("SELECT * FROM wide WHERE id = ?", parameters=(int(key),))
                rows = cur.fetchall()
                latencies.append(time.perf_counter() - start)
                assert len(rows) == 1
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"  point query (ADBC, prepared, 1 row of 10M): p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {statistics.mean(latencies) * 1000:.2f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--basin", default=str(ROOT / "target" / "release" / "basin"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    sources = {"lineitem": lineitem_parquet(args.scale), "wide": wide_parquet(args.rows)}
    with tempfile.TemporaryDirectory() as data_dir:
        for name, path in sources.items():
            ingest(args.basin, data_dir, path, name)
        basin, address = serve(args.basin, data_dir)
        try:
            memory = MemoryServer({name: plain_strings(pq.read_table(path)) for name, path in sources.items()})
            peer = flight.FlightClient(f"grpc://127.0.0.1:{memory.port}")
            client = flight.FlightClient(address)
            options = flight.FlightCallOptions(headers=[bearer_header(address)])
            for name in sources:
                print(f"{name}:")
                info = client.get_flight_info(flight.FlightDescriptor.for_path(name), options)
                b = measure("basin", client, info.endpoints[0].ticket, options, args.repeat)
                p = measure("pyarrow", peer, flight.Ticket(name.encode()), flight.FlightCallOptions(), args.repeat)
                print(
                    f"  ratio basin/pyarrow: {p[0] / b[0]:.2f} (rows/s); "
                    f"wire/logical basin {b[3] / b[2]:.3f}, pyarrow {p[3] / p[2]:.3f}"
                )
            point_queries(address, args.rows, args.calls)
            memory.shutdown()
        finally:
            basin.terminate()
            basin.wait(timeout=30)


if __name__ == "__main__":
    main()
