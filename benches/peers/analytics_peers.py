"""Profiles and hourly time series: Basin vs DuckDB vs Polars, in the same run.

Generates a 10-column table (10M rows by default, cached under benches/data/),
writes it into Basin with `basin ingest`, then times on the same Parquet data:

- profile: Basin's profile job (`duration_ms`, and the wall time of the REST
  call until the job is done) against DuckDB `SUMMARIZE`, the equivalent DuckDB
  SQL (count, nulls, approx distinct, min, max, mean, std, 7 quantiles per
  column) and Polars `describe()` (with the same 7 quantiles);
- time series: count and average per hour over the whole table, and per hour
  and device, against the same GROUP BY in DuckDB and Polars.

Prints each best-of-N time and the ratios (peer time / Basin time: above 1
means Basin is faster).

    python benches/peers/analytics_peers.py --analytics-rows 10000000 --basin target/release/basin
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from basin_process import ADMIN_PASSWORD, _env  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]


def generate(rows: int) -> pathlib.Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = ROOT / "benches" / "data" / f"analytics_{rows}.parquet"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    start = np.datetime64("2026-01-01T00:00:00", "us")
    # 30 days of events, in time order like a log.
    offsets = np.sort(rng.integers(0, 30 * 24 * 3600 * 1_000_000, rows))
    user = rng.integers(0, rows // 4, rows)
    score = rng.normal(50, 15, rows)
    score_nulls = rng.random(rows) < 0.05
    table = pa.table(
        {
            "ts": pa.array(start + offsets.astype("timedelta64[us]"), pa.timestamp("us", "UTC")),
            "device": pa.array(np.char.add("device-", (rng.integers(0, 100, rows)).astype(str))),
            "user_id": pa.array(user, pa.int64()),
            "amount": pa.array(rng.gamma(2.0, 30.0, rows)),
            "qty": pa.array(rng.integers(0, 20, rows), pa.int32()),
            "latency_ms": pa.array(rng.lognormal(3, 1, rows)),
            "country": pa.array(np.array(["DE", "FR", "US", "GB", "JP", "BR", "IN", "NL"])[rng.integers(0, 8, rows)]),
            "ok": pa.array(rng.random(rows) < 0.97),
            "score": pa.array(score, mask=score_nulls),
            "email": pc.binary_join_element_wise(
                "user", pc.cast(pa.array(user), pa.string()), "@example.com", ""
            ),
        }
    )
    pq.write_table(table, out, row_group_size=1_000_000)
    return out


class Basin:
    def __init__(self, binary, data_dir):
        self.process = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--http-addr", "127.0.0.1:0", "--flight-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
            text=True,
        )
        self.base = None
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("http:"):
                self.base = line.split(None, 1)[1].strip()
            if line.startswith("flight:"):
                break
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        if not self.base:
            raise RuntimeError("basin did not start")
        self.token = self.call("POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})["data"]["token"]

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", **({"authorization": f"Bearer {self.token}"} if getattr(self, "token", None) else {})},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read() or b"null")

    def profile(self, dataset):
        started = time.perf_counter()
        job = self.call("POST", f"/datasets/{dataset}/profile")["data"]
        while job["status"] not in ("succeeded", "failed", "canceled"):
            time.sleep(0.01)
            job = self.call("GET", f"/jobs/{job['id']}")["data"]
        wall = time.perf_counter() - started
        if job["status"] != "succeeded":
            raise RuntimeError(f"profile job {job['status']}: {job.get('error')}")
        return wall, job["result"]["duration_ms"] / 1000

    def timeseries(self, body):
        started = time.perf_counter()
        answer = self.call("POST", "/analytics/timeseries", body)["data"]
        return time.perf_counter() - started, answer

    def stop(self):
        self.process.terminate()
        self.process.wait()


def duckdb_profile_sql(con, path, columns):
    parts = []
    for name, kind in columns:
        c = f'"{name}"'
        parts += [f"count({c})", f"count(*) - count({c})", f"approx_count_distinct({c})", f"min({c})", f"max({c})"]
        if kind == "numeric":
            parts += [f"avg({c})", f"stddev_samp({c})"]
            # The list form: one digest for all seven quantiles, as DuckDB's docs recommend.
            parts.append(f"approx_quantile({c}, {QUANTILES})")
    con.sql(f"SELECT {', '.join(parts)} FROM read_parquet('{path}')").to_arrow_table()


def polars_describe(path):
    import polars as pl

    # Lazy, as Polars' docs recommend: the scan reads only what describe() needs.
    pl.scan_parquet(path).describe(percentiles=QUANTILES)


def best(repeat, fn):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def add_arguments(parser):
    parser.add_argument("--analytics-rows", type=int, default=10_000_000)
    parser.add_argument("--analytics-repeat", type=int, default=3)


def run(args):
    """Times profiles and series in Basin and the peers; returns the bench rows."""
    import duckdb
    import polars as pl
    from report import versus

    rows, repeat = args.analytics_rows, args.analytics_repeat
    path = generate(rows)
    print(f"input: {path} ({rows:,} rows x 10 columns, {path.stat().st_size / 1e6:.0f} MB)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    try:
        data_dir = str(work / "data")
        subprocess.run(
            [args.basin, "--data-dir", data_dir, "ingest", str(path), "--dataset", "events", "--mode", "overwrite"],
            check=True, stdout=subprocess.DEVNULL, env=_env(),
        )
        basin = Basin(args.basin, data_dir)
        try:
            columns = [
                ("ts", "temporal"), ("device", "text"), ("user_id", "numeric"), ("amount", "numeric"),
                ("qty", "numeric"), ("latency_ms", "numeric"), ("country", "text"), ("ok", "bool"),
                ("score", "numeric"), ("email", "text"),
            ]
            results = {}
            runs = [basin.profile("events") for _ in range(repeat)]
            results["profile: basin (job wall)"] = min(r[0] for r in runs)
            results["profile: basin (engine)"] = min(r[1] for r in runs)
            con = duckdb.connect()
            results["profile: duckdb SUMMARIZE"] = best(
                repeat, lambda: con.sql(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").to_arrow_table())
            results["profile: duckdb SQL"] = best(repeat, lambda: duckdb_profile_sql(con, path, columns))
            results["profile: polars describe()"] = best(repeat, lambda: polars_describe(path))

            hourly = {
                "source": {"dataset": "events"}, "time_column": "ts", "granularity": "hour",
                "date_range": ["2026-01-01", "2026-01-30"], "timezone": "UTC",
                "measures": [{"agg": "count"}, {"agg": "avg", "column": "amount"}], "renew": True,
            }
            by_device = dict(hourly, dimensions=["device"])
            results["hourly: basin"] = best(repeat, lambda: basin.timeseries(hourly))
            results["hourly: duckdb"] = best(repeat, lambda: con.sql(
                f"SELECT time_bucket(INTERVAL '1 hour', ts) h, count(*), avg(amount) FROM read_parquet('{path}') GROUP BY h").to_arrow_table())
            results["hourly: polars"] = best(repeat, lambda: pl.scan_parquet(path).group_by(
                pl.col("ts").dt.truncate("1h")).agg(pl.len(), pl.col("amount").mean()).collect())
            results["hourly x device: basin"] = best(repeat, lambda: basin.timeseries(by_device))
            results["hourly x device: duckdb"] = best(repeat, lambda: con.sql(
                f"SELECT time_bucket(INTERVAL '1 hour', ts) h, device, count(*), avg(amount) FROM read_parquet('{path}') GROUP BY h, device").to_arrow_table())
            results["hourly x device: polars"] = best(repeat, lambda: pl.scan_parquet(path).group_by(
                pl.col("ts").dt.truncate("1h"), "device").agg(pl.len(), pl.col("amount").mean()).collect())
        finally:
            basin.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for label, seconds in results.items():
        print(f"{label:>34}: {seconds:7.3f} s")
    size = f"{rows / 1e6:g}M rows"
    duck, polars = f"duckdb {duckdb.__version__}", f"polars {pl.__version__}"
    table = [
        # The same figures in each: count, nulls, distinct, min, max, mean, stddev, 7 quantiles.
        versus(f"profile {size} x 10 columns", "s", "lower", results["profile: basin (job wall)"], {
            f"{duck} SQL": results["profile: duckdb SQL"],
            f"{polars} describe()": results["profile: polars describe()"],
        }, goal=1.0),
    ]
    for kind in ("hourly", "hourly x device"):
        table.append(versus(f"{kind} series, {size}", "s", "lower", results[f"{kind}: basin"], {
            f"{duck} time_bucket": results[f"{kind}: duckdb"],
            f"{polars} lazy": results[f"{kind}: polars"],
        }, goal=1.0))
    return table


if __name__ == "__main__":
    import report

    report.run_script(sys.modules[__name__])
